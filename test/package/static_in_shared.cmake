# A shared library that links the static evcxx exports no symbol of evcxx (the static library
# is built with hidden visibility and EVCXX_API marks nothing there; the plugin hides the inline
# functions it instantiates, as shared objects usually do), and works. Inputs: see
# test/package/CMakeLists.txt.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

configure_and_build("${CMAKE_CURRENT_LIST_DIR}/plugin" "${WORK_DIR}/build"
                    "-DCMAKE_PREFIX_PATH=${PREFIX}")
run("host program" COMMAND "${WORK_DIR}/build/host")

file(GLOB plugin "${WORK_DIR}/build/libplugin.so")
execute_process(COMMAND "${NM}" -D --defined-only "${plugin}" OUTPUT_VARIABLE symbols
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${NM} -D ${plugin} failed")
endif()
if(NOT symbols MATCHES " plugin_run\n")
  message(FATAL_ERROR "the check itself is broken: plugin_run is not among\n${symbols}")
endif()
string(REGEX MATCHALL "[^\n]*5evcxx[^\n]*" leaks "${symbols}")
if(leaks)
  string(REPLACE ";" "\n" leaks "${leaks}")
  message(FATAL_ERROR "${plugin} exports evcxx symbols from the static library:\n${leaks}")
endif()
