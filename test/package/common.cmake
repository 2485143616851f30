# Helpers for the packaging test scripts (run with cmake -P). Every failure is FATAL_ERROR, which
# makes cmake exit non-zero and ctest report the test as failed, with the output shown.

# run(<what> COMMAND <args>... [WORKING_DIRECTORY <dir>]): runs a command, fails on non-zero exit.
function(run what)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "WORKING_DIRECTORY" "COMMAND")
  if(NOT arg_WORKING_DIRECTORY)
    set(arg_WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  string(REPLACE ";" " " shown "${arg_COMMAND}")
  message(STATUS "${what}: ${shown}")
  execute_process(COMMAND ${arg_COMMAND} WORKING_DIRECTORY "${arg_WORKING_DIRECTORY}"
                  RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${what} failed (${result}): ${shown}")
  endif()
endfunction()

# Splits a "|"-separated list given with -D (";" would be split by add_test first).
macro(split_bars var)
  string(REPLACE "|" ";" ${var} "${${var}}")
endmacro()

# configure_and_build(<source> <build> <cmake -D args>...): a fresh configure and build with the
# generator and compiler of the evcxx build that runs the tests.
function(configure_and_build source build)
  file(REMOVE_RECURSE "${build}")
  set(generator -G "${GENERATOR}")
  if(MAKE_PROGRAM)
    list(APPEND generator "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  run("configure" COMMAND "${CMAKE_COMMAND}" -S "${source}" -B "${build}" ${generator}
      "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" --no-warn-unused-cli ${ARGN})
  run("build" COMMAND "${CMAKE_COMMAND}" --build "${build}" --parallel "${JOBS}")
endfunction()
