# Build helpers shared by every folder.

# One doctest main for every unit-test executable.
add_library(stowage_test_main STATIC ${CMAKE_SOURCE_DIR}/tests/doctest_main.cpp)
target_link_libraries(stowage_test_main PUBLIC doctest::doctest)
# tests/support: temporary folders, file I/O, running built programs.
target_include_directories(stowage_test_main PUBLIC ${CMAKE_SOURCE_DIR}/tests/support)

# stowage_add_test(NAME name SOURCES a_test.cpp ... [LIBS ...] [LABELS ...])
# A doctest executable registered with CTest. Plugins under test are found
# through the real loader in the build tree's plugin folder.
function(stowage_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS;DEPENDS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE stowage_test_main ${T_LIBS})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_BUILD_TYPE MATCHES "Rel")
    # A test's own code at -Og compiles in under half its -O2 time; what it
    # exercises (the libraries and plugins) keeps the build's optimisation.
    target_compile_options(${T_NAME} PRIVATE -Og)
  endif()
  target_compile_definitions(${T_NAME} PRIVATE
    STOWAGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    STOWAGE_PLUGIN_BUILD_DIR="${STOWAGE_PLUGIN_OUTPUT_DIR}")
  if(T_DEPENDS)
    add_dependencies(${T_NAME} ${T_DEPENDS})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT 600)
endfunction()

# stowage_add_plugin(): the one a plugin outside the tree uses too (installed
# with the package), with the project's plugin folders as its defaults.
include(${CMAKE_CURRENT_LIST_DIR}/StowagePluginHelpers.cmake)

# stowage_add_plugin_program(NAME stowage-browser SOURCES main.cpp [LIBS ...])
# A program a plugin ships as a stowage command: built beside the plugin's
# manifest (where `stowage` looks for it) and installed there, finding
# libstowage_core in the libdir above the plugin folder.
function(stowage_add_plugin_program)
  cmake_parse_arguments(C "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${C_NAME} ${C_SOURCES})
  target_link_libraries(${C_NAME} PRIVATE ${C_LIBS})
  set_target_properties(${C_NAME} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${STOWAGE_PLUGIN_OUTPUT_DIR}
    INSTALL_RPATH "$ORIGIN/../..")
  install(TARGETS ${C_NAME} RUNTIME DESTINATION ${STOWAGE_INSTALL_PLUGIN_DIR})
endfunction()
