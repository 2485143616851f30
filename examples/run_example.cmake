# Smoke test for an example: runs the command given after `--`, then requires exit status 0 and
# output matching EXPECT (a regular expression). PASS_REGULAR_EXPRESSION alone would ignore the
# exit status, and with it a sanitizer report.
#
# Usage: cmake -DEXPECT=<regex> -P run_example.cmake -- <program> [args...]

set(command "")
set(after_separator OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_separator ON)
  endif()
endforeach()
if(NOT command OR NOT DEFINED EXPECT)
  message(FATAL_ERROR "usage: cmake -DEXPECT=<regex> -P run_example.cmake -- <program> [args...]")
endif()

execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE output)
message("${output}")
if(NOT status STREQUAL "0")
  message(FATAL_ERROR "FAILED: exit status ${status}, expected 0")
endif()
if(NOT output MATCHES "${EXPECT}")
  message(FATAL_ERROR "FAILED: the output does not match: ${EXPECT}")
endif()
