# stowage_add_conformance_test(): runs the plugin conformance suite on one
# plugin as a CTest test. Part of the installed stowage CMake package, so a
# plugin built out of tree registers its test the same way:
#
#   stowage_add_conformance_test(
#     NAME sqlite_conformance
#     PLUGIN stowage_sqlite                # a plugin target, a manifest or a library
#     SCHEME sqlite
#     ROOT_URL "sqlite://${CMAKE_CURRENT_BINARY_DIR}/conformance.db#models"
#     [OPTIONS_JSON [[{"busy_timeout_ms": 5000}]]]   # given to every handler
#     [DEVIATIONS dotdot_resolves ...]     # see stowage-conformance --help
#     [ALLOW_SKIP "errors: list" list ...] # groups the plugin may skip
#     [ARGS <more runner or doctest arguments> ...]
#     [LABELS ...] [ENVIRONMENT VAR=value ...] [TIMEOUT seconds])
#
# A plugin target is tested through the manifest stowage_add_plugin()
# writes beside it (stowage-<name>.json), so the manifest is checked too.
# The suite writes only under ROOT_URL, in a new folder per run.
#
# The test runs with --require-all: a group the plugin's capabilities leave
# out fails the test, unless it is named in ALLOW_SKIP (write the reason
# beside it). A group in ALLOW_SKIP that runs fails the test too, so the
# list cannot go stale when the plugin gains a capability.
function(stowage_add_conformance_test)
  cmake_parse_arguments(C "" "NAME;PLUGIN;SCHEME;ROOT_URL;OPTIONS_JSON;TIMEOUT"
                        "DEVIATIONS;ALLOW_SKIP;ARGS;LABELS;ENVIRONMENT" ${ARGN})
  foreach(required NAME PLUGIN SCHEME ROOT_URL)
    if(NOT C_${required})
      message(FATAL_ERROR "stowage_add_conformance_test: ${required} is required")
    endif()
  endforeach()
  if(NOT TARGET stowage::conformance-runner)
    message(FATAL_ERROR "stowage_add_conformance_test: stowage::conformance-runner is not "
                        "defined; find_package(stowage CONFIG REQUIRED) first")
  endif()
  set(plugin "${C_PLUGIN}")
  if(TARGET ${C_PLUGIN})
    get_target_property(manifest ${C_PLUGIN} STOWAGE_MANIFEST)
    get_target_property(output_name ${C_PLUGIN} OUTPUT_NAME)
    if(manifest)
      set(plugin "${manifest}")
    elseif(output_name MATCHES "^stowage_(.+)$")
      set(plugin "$<TARGET_FILE_DIR:${C_PLUGIN}>/stowage-${CMAKE_MATCH_1}.json")
    else()
      set(plugin "$<TARGET_FILE:${C_PLUGIN}>")
    endif()
  endif()
  set(args --plugin "${plugin}" --scheme "${C_SCHEME}" --root "${C_ROOT_URL}")
  if(DEFINED C_OPTIONS_JSON)
    list(APPEND args --options "${C_OPTIONS_JSON}")
  endif()
  foreach(d IN LISTS C_DEVIATIONS)
    list(APPEND args --deviation "${d}")
  endforeach()
  list(APPEND args --require-all)
  foreach(g IN LISTS C_ALLOW_SKIP)
    list(APPEND args --allow-skip "${g}")
  endforeach()
  if(NOT C_TIMEOUT)
    set(C_TIMEOUT 900)
  endif()
  add_test(NAME ${C_NAME}
           COMMAND $<TARGET_FILE:stowage::conformance-runner> ${args} ${C_ARGS})
  set_tests_properties(${C_NAME} PROPERTIES LABELS "conformance;${C_LABELS}" TIMEOUT ${C_TIMEOUT})
  if(C_ENVIRONMENT)
    set_tests_properties(${C_NAME} PROPERTIES ENVIRONMENT "${C_ENVIRONMENT}")
  endif()
endfunction()
