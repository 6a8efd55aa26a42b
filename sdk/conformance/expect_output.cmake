# Runs a command and checks its exit status and output (stdout and stderr
# together), for tests whose command must fail in a particular way:
#
#   cmake -DEXIT_CODE=<n> [-DMATCH=<regex>[|||<regex>...]]
#         [-DNO_MATCH=<regex>] [-DWORKING_DIRECTORY=<dir>]
#         [-DAPPEND_FILE=<file>] -P expect_output.cmake -- <command> [args...]
#
# The exit status must be exactly EXIT_CODE: "any failure" would let a
# sanitizer's exit after the expected message pass. Every MATCH regex
# (separated by "|||") must occur in the output; NO_MATCH must not.
# APPEND_FILE, removed before the command runs, is a file the command
# writes: its text joins the output that MATCH and NO_MATCH see. The output
# is printed either way.
set(command "")
set(after_dashes FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 0 ${last})
  if(after_dashes)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_dashes TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "expect_output.cmake: no command after --")
endif()
if(NOT EXIT_CODE MATCHES "^[0-9]+$")
  message(FATAL_ERROR "expect_output.cmake: EXIT_CODE must be the exit status the command "
                      "must end with")
endif()
if(APPEND_FILE)
  file(REMOVE "${APPEND_FILE}")
endif()
if(NOT WORKING_DIRECTORY)
  set(WORKING_DIRECTORY ".")
endif()

execute_process(COMMAND ${command} WORKING_DIRECTORY "${WORKING_DIRECTORY}"
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(APPEND_FILE)
  if(EXISTS "${APPEND_FILE}")
    file(READ "${APPEND_FILE}" appended)
    string(APPEND out "\n${APPEND_FILE}:\n${appended}")
  else()
    string(APPEND out "\n${APPEND_FILE}: not written")
  endif()
endif()
message("${out}")
message("exit status: ${status}")

set(problems "")
if(NOT status MATCHES "^[0-9]+$")
  string(APPEND problems "\n  the command did not exit normally: ${status}")
elseif(NOT status EQUAL EXIT_CODE)
  string(APPEND problems "\n  the command exited with ${status}; it had to exit with ${EXIT_CODE}")
endif()
if(DEFINED MATCH)
  string(REPLACE "|||" ";" regexes "${MATCH}")
  foreach(re IN LISTS regexes)
    if(NOT out MATCHES "${re}")
      string(APPEND problems "\n  the output does not match: ${re}")
    endif()
  endforeach()
endif()
if(DEFINED NO_MATCH AND out MATCHES "${NO_MATCH}")
  string(APPEND problems "\n  the output matches what it must not: ${NO_MATCH}")
endif()
if(problems)
  message(FATAL_ERROR "expect_output.cmake:${problems}")
endif()
