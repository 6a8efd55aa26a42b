# Build helpers shared by every folder.
include(${CMAKE_CURRENT_LIST_DIR}/StowageManifest.cmake)

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
  target_compile_definitions(${T_NAME} PRIVATE
    STOWAGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    STOWAGE_PLUGIN_BUILD_DIR="${STOWAGE_PLUGIN_OUTPUT_DIR}")
  if(T_DEPENDS)
    add_dependencies(${T_NAME} ${T_DEPENDS})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT 600)
endfunction()

# stowage_add_plugin(NAME file SOURCES file_plugin.cpp SCHEMES file [LIBS ...]
#                    [COMMANDS name=program ...]
#                    [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir])
# Builds libstowage_<name>.so into the plugin folder (or OUTPUT_DIRECTORY)
# with its manifest stowage-<name>.json beside it. Plugins export one symbol
# and never link the core library (no second registry in the process).
# COMMANDS go to the manifest's "commands": `stowage name` runs the program
# of that file name beside the manifest (stowage_add_plugin_program builds it).
function(stowage_add_plugin)
  cmake_parse_arguments(P "" "NAME;VERSION;OUTPUT_DIRECTORY;INSTALL_DESTINATION"
                        "SOURCES;SCHEMES;LIBS;COMMANDS" ${ARGN})
  if(NOT P_VERSION)
    set(P_VERSION ${PROJECT_VERSION})
  endif()
  if(NOT P_OUTPUT_DIRECTORY)
    set(P_OUTPUT_DIRECTORY ${STOWAGE_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT P_INSTALL_DESTINATION)
    set(P_INSTALL_DESTINATION ${STOWAGE_INSTALL_PLUGIN_DIR})
  endif()
  set(target stowage_${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE stowage::sdk ${P_LIBS})
  set_target_properties(${target} PROPERTIES
    PREFIX "lib" OUTPUT_NAME stowage_${P_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${P_OUTPUT_DIRECTORY}
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  # The entry point is the only exported symbol: the version script also
  # hides the C++ library's template instantiations and the format library.
  set(exports ${CMAKE_BINARY_DIR}/stowage-plugin-exports.map)
  file(CONFIGURE OUTPUT ${exports}
    CONTENT "{\n  global: stowage_plugin_entry_v1;\n  local: *;\n};\n")
  target_link_options(${target} PRIVATE -Wl,--no-undefined -Wl,--version-script=${exports})
  set_target_properties(${target} PROPERTIES LINK_DEPENDS ${exports})
  target_compile_definitions(${target} PRIVATE
    STOWAGE_PLUGIN_NAME="${P_NAME}" STOWAGE_PLUGIN_VERSION="${P_VERSION}")
  stowage_manifest_json(manifest NAME ${P_NAME} VERSION ${P_VERSION}
                        SCHEMES ${P_SCHEMES} COMMANDS ${P_COMMANDS})
  file(GENERATE OUTPUT ${P_OUTPUT_DIRECTORY}/stowage-${P_NAME}.json CONTENT "${manifest}")
  install(TARGETS ${target} LIBRARY DESTINATION ${P_INSTALL_DESTINATION})
  install(FILES ${P_OUTPUT_DIRECTORY}/stowage-${P_NAME}.json DESTINATION ${P_INSTALL_DESTINATION})
endfunction()


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
