# Runs a command and checks its exit status and output (stdout and stderr
# together), for tests whose command must fail in a particular way:
#
#   cmake -DEXPECT=failure|success [-DMATCH=<regex>[|||<regex>...]]
#         [-DNO_MATCH=<regex>] [-DWORKING_DIRECTORY=<dir>]
#         -P expect_output.cmake -- <command> [args...]
#
# Every MATCH regex (separated by "|||") must occur in the output; NO_MATCH
# must not. The output is printed either way.
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
if(NOT EXPECT MATCHES "^(failure|success)$")
  message(FATAL_ERROR "expect_output.cmake: EXPECT must be failure or success")
endif()
if(NOT WORKING_DIRECTORY)
  set(WORKING_DIRECTORY ".")
endif()

execute_process(COMMAND ${command} WORKING_DIRECTORY "${WORKING_DIRECTORY}"
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
message("exit status: ${status}")

set(problems "")
if(EXPECT STREQUAL "failure" AND status EQUAL 0)
  string(APPEND problems "\n  the command succeeded; it had to fail")
elseif(EXPECT STREQUAL "success" AND NOT status EQUAL 0)
  string(APPEND problems "\n  the command failed (${status}); it had to succeed")
endif()
if(NOT status MATCHES "^[0-9]+$")
  string(APPEND problems "\n  the command did not exit normally: ${status}")
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
