# Sanitizer builds: STOWAGE_SANITIZE="address;undefined" or "thread" (the
# asan and tsan presets of CMakePresets.json set it).
#
# Every target of the tree is compiled and linked with the sanitizers, so the
# executables that Node, Python and Chromium tests start are sanitized too and
# nothing needs LD_PRELOAD. Reports are never recovered from: the first one
# ends the process with a failure.
#
# Sanitized builds compile at -Og -g1 (the line tables are enough for the
# reports' stack traces): GCC 12 with ASan+UBSan builds a file of this tree in
# a little over half its -O1 time, and the optimisation level decides most of
# the build. The few files that include Boost.Asio or Beast stay at -O1
# (stowage_asio_files_at_o1 below): with Asio's templates compiled at -Og,
# UBSan reports a null service reference inside a socket's close in the HTTP
# client's connect, in every run of concurrency_test, which -O1 and the plain
# -O2 build never show. It took every Asio user at -O1, not the client's file
# alone: the linker keeps one copy of each inline Asio function, from whichever
# object comes first.
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
                    -fno-sanitize-recover=all -Og -g1)
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

# Every source of every target under `dir` that includes Boost.Asio or Beast
# itself compiles at -O1 (see the top of this file). Called once, after the
# whole tree is defined, so a new Asio file needs no list kept by hand.
function(stowage_asio_files_at_o1 dir)
  get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "INTERFACE_LIBRARY" OR type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(sources ${t} SOURCES)
    get_target_property(source_dir ${t} SOURCE_DIR)
    foreach(src IN LISTS sources)
      if(NOT src MATCHES "\\.cpp$" OR src MATCHES "^\\$<")
        continue()
      endif()
      cmake_path(ABSOLUTE_PATH src BASE_DIRECTORY "${source_dir}" OUTPUT_VARIABLE path)
      if(NOT EXISTS "${path}")
        continue()
      endif()
      file(STRINGS "${path}" asio_includes REGEX "^#include <boost/(asio|beast)")
      if(asio_includes)
        set_source_files_properties("${path}" TARGET_DIRECTORY ${t} PROPERTIES COMPILE_OPTIONS -O1)
      endif()
    endforeach()
  endforeach()
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    stowage_asio_files_at_o1("${sub}")
  endforeach()
endfunction()
