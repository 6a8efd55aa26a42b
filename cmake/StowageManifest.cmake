# The text of the plugin manifest stowage-<name>.json. stowage_add_plugin()
# (StowagePluginHelpers.cmake, the one definition, which the tree and the
# installed package both use) is its only caller and writes the file, so a
# plugin built in the tree or against the installed package is found alike.
#
#   stowage_manifest_json(out NAME n VERSION v SCHEMES s... [COMMANDS name=program ...])
#
# COMMANDS become the manifest's "commands"; a pair that is not
# name=program (lower-case name, program a plain file name) is a
# configuration error.
function(stowage_manifest_json out)
  cmake_parse_arguments(M "" "NAME;VERSION" "SCHEMES;COMMANDS" ${ARGN})
  set(schemes "")
  foreach(s IN LISTS M_SCHEMES)
    if(schemes)
      string(APPEND schemes ", ")
    endif()
    string(APPEND schemes "\"${s}\"")
  endforeach()
  set(commands "")
  foreach(pair IN LISTS M_COMMANDS)
    if(NOT pair MATCHES "^([a-z][a-z0-9-]*)=([^/=]+)$")
      message(FATAL_ERROR "stowage_add_plugin COMMANDS: '${pair}' is not name=program")
    endif()
    if(commands)
      string(APPEND commands ", ")
    endif()
    string(APPEND commands "\"${CMAKE_MATCH_1}\": \"${CMAKE_MATCH_2}\"")
  endforeach()
  if(commands)
    set(commands ",\n  \"commands\": {${commands}}")
  endif()
  set(${out} "{
  \"manifest_version\": 1,
  \"name\": \"${M_NAME}\",
  \"version\": \"${M_VERSION}\",
  \"library\": \"libstowage_${M_NAME}.so\",
  \"abi\": {\"major\": 1, \"minor\": 0},
  \"schemes\": [${schemes}]${commands}
}
" PARENT_SCOPE)
endfunction()
