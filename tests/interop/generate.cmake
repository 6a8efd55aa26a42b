# Runs make_models.js into a fresh folder, failing with a clear message when
# TensorFlow.js is not installed. Variables: NODE, SCRIPT_DIR, OUT.
if(NOT NODE)
  message(FATAL_ERROR "Node.js was not found when the build was configured; "
                      "install node (20 or newer), then run `npm ci` in tests/interop.")
endif()
if(NOT EXISTS "${SCRIPT_DIR}/node_modules/@tensorflow/tfjs/package.json")
  message(FATAL_ERROR "@tensorflow/tfjs is not installed for the interop tests: "
                      "run `npm ci` in tests/interop (it installs the pinned 4.22.0).")
endif()
file(REMOVE_RECURSE "${OUT}")
execute_process(COMMAND "${NODE}" "${SCRIPT_DIR}/make_models.js" --out "${OUT}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make_models.js failed (${rc})")
endif()
