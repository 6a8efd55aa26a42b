# The Node tests (label node), with real TensorFlow.js 4.22 from
# tests/interop/node_modules and real servers started by the tests:
#   node_types      tsc --noEmit: index.d.ts, and a TF.js program using it
#   node_roundtrip  layers models saved and loaded through every scheme
#   node_graph      a graph model through stowage.io vs TF.js's http loader
#   node_errors     error codes, redaction, cancellation
#   node_api        copy/move/list/remove/info/plugins/configure, progress,
#                   the event loop, zero-copy buffers, worker_threads
#   node_leak       20 load/dispose cycles of a 64 MiB model, RSS flat
#   node_leak_200   the same, 200 cycles (label bench: minutes)
#   node_pack       npm pack + npm install against a cmake --install prefix
#   node_require    require('<repo>/bindings/node') after README's build
find_program(STOWAGE_PYTHON3_FOR_NODE NAMES python3)
set(_node_dir ${CMAKE_CURRENT_SOURCE_DIR})
set(_node_env
  STOWAGE_NODE_ADDON=$<TARGET_FILE:stowage_node>
  STOWAGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}
  STOWAGE_BIN=$<TARGET_FILE:stowage>
  STOWAGE_INTEROP_DIR=${CMAKE_BINARY_DIR}/interop/tfjs
  CMAKE=${CMAKE_COMMAND}
  STOWAGE_BUILD_DIR=${CMAKE_BINARY_DIR})

function(stowage_node_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "ARGS;LABELS;FIXTURES;ENV" ${ARGN})
  add_test(NAME ${name} COMMAND ${STOWAGE_NODE_EXECUTABLE} ${T_ARGS} ${_node_dir}/test/${script})
  set_tests_properties(${name} PROPERTIES
    LABELS "node;${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "${_node_env};${T_ENV}")
  if(T_FIXTURES)
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES}")
  endif()
endfunction()

stowage_node_test(node_types typecheck.js TIMEOUT 300)
stowage_node_test(node_roundtrip roundtrip_test.js TIMEOUT 600 FIXTURES interop_models
                  LABELS "interop;s3;serve")
stowage_node_test(node_graph graph_test.js TIMEOUT 600 FIXTURES interop_models
                  LABELS "interop;s3")
stowage_node_test(node_errors errors_test.js TIMEOUT 600 FIXTURES interop_models LABELS s3)
stowage_node_test(node_api api_test.js ARGS --expose-gc TIMEOUT 600 FIXTURES interop_models
                  LABELS s3)
stowage_node_test(node_leak leak_test.js ARGS --expose-gc TIMEOUT 600
                  ENV STOWAGE_LEAK_CYCLES=20)
stowage_node_test(node_leak_200 leak_test.js ARGS --expose-gc TIMEOUT 1800 LABELS bench
                  ENV STOWAGE_LEAK_CYCLES=200)
stowage_node_test(node_pack pack_test.js TIMEOUT 1200 LABELS install)

# The default build folder of README's first command is <repo>/build.
if(CMAKE_BINARY_DIR STREQUAL "${CMAKE_SOURCE_DIR}/build")
  stowage_node_test(node_require require_test.js TIMEOUT 120
                    ENV STOWAGE_EXPECTED_ADDON=$<TARGET_FILE:stowage_node>)
endif()

# The benchmark against TF.js's own loaders (bench/node_load_bench.js, a
# 256 MiB model): label bench only, minutes long.
add_test(NAME bench_node
  COMMAND ${STOWAGE_NODE_EXECUTABLE} ${CMAKE_SOURCE_DIR}/bench/node_load_bench.js
          --stowage $<TARGET_FILE:stowage> --addon $<TARGET_FILE:stowage_node>
          --dir ${CMAKE_BINARY_DIR}/bench-node)
set_tests_properties(bench_node PROPERTIES LABELS bench TIMEOUT 3600)
