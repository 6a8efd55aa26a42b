# One bounded fuzz run for CTest (fuzz/CMakeLists.txt registers it):
#   cmake -DFUZZER=<exe> -DWORK=<dir> -DCORPUS=<dir> -DRUNS=<n> [-DDICT=<file>]
#         -DARTIFACTS=<prefix> -P run_fuzzer.cmake
# WORK starts empty on every run, so a run does the same executions each
# time (fixed seed) and new inputs never land in the source tree.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(dict_arg "")
if(DICT)
  set(dict_arg -dict=${DICT})
endif()
execute_process(
  COMMAND ${FUZZER} -runs=${RUNS} -seed=1 -max_len=65536 -rss_limit_mb=2048 -timeout=10
          -print_final_stats=1 -artifact_prefix=${ARTIFACTS} ${dict_arg} ${WORK} ${CORPUS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${rc}); the input is saved as ${ARTIFACTS}*")
endif()
