# stowage_add_plugin(), for plugins built against the installed package
# (find_package(stowage)) and for the in-tree ones alike: a MODULE library
# libstowage_<name>.so that exports only the entry point, and its manifest
# stowage-<name>.json beside it, both installed to <libdir>/stowage/plugins
# by default.
#
#   stowage_add_plugin(NAME sqlite SOURCES sqlite_plugin.cpp SCHEMES sqlite
#                      [VERSION 1.0.0] [LIBS SQLite::SQLite3]
#                      [COMMANDS name=program ...]
#                      [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir])
#
# COMMANDS become the manifest's "commands": `stowage name ARGS` runs the
# program of that file name beside the manifest; build and install the
# program into OUTPUT_DIRECTORY and INSTALL_DESTINATION yourself.
#
# The target is stowage_<name>; its STOWAGE_MANIFEST property holds the
# manifest's path (stowage_add_conformance_test uses it).
include(GNUInstallDirs)
include("${CMAKE_CURRENT_LIST_DIR}/StowageManifest.cmake")

function(stowage_add_plugin)
  cmake_parse_arguments(P "" "NAME;VERSION;OUTPUT_DIRECTORY;INSTALL_DESTINATION"
                        "SOURCES;SCHEMES;LIBS;COMMANDS" ${ARGN})
  if(NOT P_NAME OR NOT P_SOURCES OR NOT P_SCHEMES)
    message(FATAL_ERROR "stowage_add_plugin: NAME, SOURCES and SCHEMES are required")
  endif()
  if(NOT P_VERSION)
    set(P_VERSION "${PROJECT_VERSION}")
  endif()
  if(NOT P_VERSION)
    set(P_VERSION "0.0.0")
  endif()
  # Inside the stowage tree the project's plugin folders are the defaults.
  if(NOT P_OUTPUT_DIRECTORY AND STOWAGE_PLUGIN_OUTPUT_DIR)
    set(P_OUTPUT_DIRECTORY "${STOWAGE_PLUGIN_OUTPUT_DIR}")
  elseif(NOT P_OUTPUT_DIRECTORY)
    set(P_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}/plugins")
  endif()
  if(NOT P_INSTALL_DESTINATION AND STOWAGE_INSTALL_PLUGIN_DIR)
    set(P_INSTALL_DESTINATION "${STOWAGE_INSTALL_PLUGIN_DIR}")
  elseif(NOT P_INSTALL_DESTINATION)
    set(P_INSTALL_DESTINATION "${CMAKE_INSTALL_LIBDIR}/stowage/plugins")
  endif()
  set(target stowage_${P_NAME})
  add_library(${target} MODULE ${P_SOURCES})
  target_link_libraries(${target} PRIVATE stowage::sdk ${P_LIBS})
  target_compile_features(${target} PRIVATE cxx_std_20)
  set(exports "${CMAKE_CURRENT_BINARY_DIR}/stowage-plugin-exports.map")
  file(CONFIGURE OUTPUT "${exports}"
       CONTENT "{\n  global: stowage_plugin_entry_v1;\n  local: *;\n};\n")
  set(manifest "${P_OUTPUT_DIRECTORY}/stowage-${P_NAME}.json")
  set_target_properties(${target} PROPERTIES
    PREFIX "lib" OUTPUT_NAME stowage_${P_NAME}
    LIBRARY_OUTPUT_DIRECTORY "${P_OUTPUT_DIRECTORY}"
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${exports}"
    STOWAGE_MANIFEST "${manifest}")
  target_link_options(${target} PRIVATE -Wl,--no-undefined -Wl,--version-script=${exports})
  target_compile_definitions(${target} PRIVATE
    STOWAGE_PLUGIN_NAME="${P_NAME}" STOWAGE_PLUGIN_VERSION="${P_VERSION}")
  stowage_manifest_json(manifest_json NAME ${P_NAME} VERSION ${P_VERSION}
                        SCHEMES ${P_SCHEMES} COMMANDS ${P_COMMANDS})
  file(GENERATE OUTPUT "${manifest}" CONTENT "${manifest_json}")
  install(TARGETS ${target} LIBRARY DESTINATION "${P_INSTALL_DESTINATION}")
  install(FILES "${manifest}" DESTINATION "${P_INSTALL_DESTINATION}")
endfunction()
