# Sanitizer builds: STOWAGE_SANITIZE="address;undefined" or "thread" (the
# asan and tsan presets of CMakePresets.json set it).
#
# Every target of the tree is compiled and linked with the sanitizers, so the
# executables that Node, Python and Chromium tests start are sanitized too and
# nothing needs LD_PRELOAD. Reports are never recovered from: the first one
# ends the process with a failure.
#
# Sanitized builds use -O1 -g1: the line tables are enough for the reports'
# stack traces. The optimisation level decides most of the build time (GCC 12
# with ASan+UBSan compiled a file of this tree in about half the time at -Og),
# but at -Og concurrency_test hits a null Asio service inside the HTTP
# client's connect (UBSan, every run) that -O1 and the plain -O2 build never
# show. The client compiled at -O1 inside an -Og tree still fails, so it is
# not that file's own code generation; until the cause is known, -O1 stays.
if(NOT STOWAGE_SANITIZE)
  return()
endif()

set(_stowage_known_sanitizers address undefined thread leak)
foreach(s IN LISTS STOWAGE_SANITIZE)
  if(NOT s IN_LIST _stowage_known_sanitizers)
    message(FATAL_ERROR "STOWAGE_SANITIZE: unknown sanitizer '${s}' "
                        "(known: ${_stowage_known_sanitizers})")
  endif()
endforeach()
if("thread" IN_LIST STOWAGE_SANITIZE AND "address" IN_LIST STOWAGE_SANITIZE)
  message(FATAL_ERROR "STOWAGE_SANITIZE: thread and address cannot be combined")
endif()

string(REPLACE ";" "," _stowage_san "${STOWAGE_SANITIZE}")
add_compile_options(-fsanitize=${_stowage_san} -fno-omit-frame-pointer
                    -fno-sanitize-recover=all -O1 -g1)
add_link_options(-fsanitize=${_stowage_san})
if("thread" IN_LIST STOWAGE_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # Boost.Asio's std::atomic_thread_fence: GCC warns at every use that TSan
  # does not model fences; Asio's own locks and atomics are still seen.
  add_compile_options(-Wno-tsan)
endif()
# For projects a test builds against this tree's install (an application
# linking a sanitized libstowage_core must be sanitized itself).
set(STOWAGE_SANITIZE_FLAGS "-fsanitize=${_stowage_san} -fno-omit-frame-pointer -fno-sanitize-recover=all")
message(STATUS "stowage: sanitizers ${_stowage_san}")
