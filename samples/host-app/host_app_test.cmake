# One case of the host app's tests: writes a config into WORK, runs the app
# with it, and checks its exit status and what it printed.
#   cmake -DCASE=<case> -DAPP=<stowage-host-app> -DPLUGIN_DIR=<plugins> -DWORK=<dir>
#         -P host_app_test.cmake
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(SHA256 "${PLUGIN_DIR}/libstowage_memory.so" memory_sha256)
set(memory_manifest "${PLUGIN_DIR}/stowage-memory.json")
set(urls "models://demo/dense" "scratch://dense" "file://${WORK}/direct")
set(expect success)
set(match "")

# Every key of the core's config format, once.
set(good "{
  \"plugin_paths\": [\"${PLUGIN_DIR}\"],
  \"plugins\": [{\"path\": \"${memory_manifest}\", \"sha256\": \"${memory_sha256}\"}],
  \"allow\": [\"file\", \"memory\"],
  \"aliases\": {\"models\": \"file://${WORK}/models\", \"scratch\": \"memory://host-app\"},
  \"scheme_plugins\": {\"memory\": \"memory\"},
  \"defaults\": {\"file\": {\"shard_size\": 64, \"durable\": false}},
  \"sha256\": {\"memory\": \"${memory_sha256}\"}
}")

if(CASE STREQUAL "works")
  set(config "${good}")
  set(match "save  models://demo/dense"
            "-> file://${WORK}/models/demo/dense via plugin 'file'"
            "-> memory://host-app/dense via plugin 'memory' [^ ]+ \\(${memory_manifest}\\)"
            "36 weight bytes, identical to what was saved")
elseif(CASE STREQUAL "unknown_key")
  string(REPLACE "\"plugin_paths\"" "\"plugin_path\"" config "${good}")
  set(expect failure)
  set(match "config.json: plugin_path: unknown key")
elseif(CASE STREQUAL "wrong_type")
  string(REPLACE "{\"shard_size\": 64, \"durable\": false}" "64" config "${good}")
  set(expect failure)
  set(match "config.json: defaults.file: expected an object, got a number")
elseif(CASE STREQUAL "wrong_nested_type")
  string(REPLACE "\"sha256\": \"${memory_sha256}\"}]" "\"sha256\": 5}]" config "${good}")
  set(expect failure)
  set(match "config.json: plugins\\[0\\].sha256: expected a string, got a number")
elseif(CASE STREQUAL "allow_list")
  string(REPLACE "[\"file\", \"memory\"]" "[\"file\"]" config "${good}")
  string(REPLACE "\"scheme_plugins\": {\"memory\": \"memory\"}," "" config "${config}")
  set(expect failure)
  set(match "Plugin 'memory' .* serves 'memory' but is not in the config's \"allow\" list")
elseif(CASE STREQUAL "bad_pin")
  string(REPEAT "0" 64 zeros)
  string(REPLACE "{\"memory\": \"${memory_sha256}\"}" "{\"memory\": \"${zeros}\"}" config "${good}")
  set(expect failure)
  set(match "does not match its SHA-256 pin: expected ${zeros}")
elseif(CASE STREQUAL "bad_entry_pin")
  # A pin on a "plugins" entry holds although "plugin_paths" finds the same
  # manifest too.
  string(REPEAT "0" 64 zeros)
  string(REPLACE "\"sha256\": \"${memory_sha256}\"}]" "\"sha256\": \"${zeros}\"}]" config
         "${good}")
  set(expect failure)
  set(match "does not match its SHA-256 pin: expected ${zeros}")
elseif(CASE STREQUAL "unknown_option")
  string(REPLACE "\"durable\": false" "\"sharding\": 3" config "${good}")
  set(expect failure)
  set(match "Unknown option \"sharding\"")
else()
  message(FATAL_ERROR "unknown CASE ${CASE}")
endif()

file(WRITE "${WORK}/config.json" "${config}")
execute_process(COMMAND "${APP}" --config "${WORK}/config.json" ${urls}
                WORKING_DIRECTORY "${WORK}"
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}exit status: ${status}")
if(expect STREQUAL "success" AND NOT status EQUAL 0)
  message(FATAL_ERROR "the host app failed; it had to succeed")
endif()
if(expect STREQUAL "failure" AND NOT status EQUAL 1)
  message(FATAL_ERROR "the host app exited with ${status}; it had to fail with 1")
endif()
foreach(re IN LISTS match)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "the output does not match: ${re}")
  endif()
endforeach()
if(CASE STREQUAL "works")
  # The per-scheme default options reached the file plugin: 64-byte shards.
  file(GLOB shards "${WORK}/models/demo/dense/group1-shard*of1.bin")
  if(NOT shards)
    message(FATAL_ERROR "models://demo/dense was not saved with shard_size 64 from \"defaults\"")
  endif()
endif()
