# Compiles and links the consumer program with nothing but `pkg-config --cflags --libs [--static]
# evcxx` against the install in PREFIX, then runs it.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
if(NOT PKG_CONFIG OR NOT EXISTS "${PKG_CONFIG}")
  message(FATAL_ERROR "pkg-config was not found when evcxx was configured (apt-get install pkg-config)")
endif()

set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${LIBDIR}/pkgconfig")
split_bars(PKG_CONFIG_ARGS)
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs ${PKG_CONFIG_ARGS} evcxx
                OUTPUT_VARIABLE flags RESULT_VARIABLE result OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs ${PKG_CONFIG_ARGS} evcxx failed (${result})")
endif()
message(STATUS "pkg-config ${PKG_CONFIG_ARGS} evcxx: ${flags}")
separate_arguments(flags UNIX_COMMAND "${flags}")

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
run("compile and link" COMMAND "${CXX_COMPILER}" -std=c++17 -Wall -Wextra -Werror
    "${CMAKE_CURRENT_LIST_DIR}/consumer/main.cpp" -o "${WORK_DIR}/app" ${flags})
# A shared libevcxx in the prefix is found at run time through LD_LIBRARY_PATH, as pkg-config
# users do for a non-system prefix.
set(ENV{LD_LIBRARY_PATH} "${PREFIX}/${LIBDIR}")
run("consumer program" COMMAND "${WORK_DIR}/app")

# The coroutine layer: `pkg-config evcxx-coro` brings evcxx and C++20.
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs ${PKG_CONFIG_ARGS} evcxx-coro
                OUTPUT_VARIABLE coro_flags RESULT_VARIABLE result OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs ${PKG_CONFIG_ARGS} evcxx-coro failed (${result})")
endif()
separate_arguments(coro_flags UNIX_COMMAND "${coro_flags}")
run("compile and link the coroutine consumer" COMMAND "${CXX_COMPILER}" -Wall -Wextra -Werror
    "${CMAKE_CURRENT_LIST_DIR}/consumer/coro_main.cpp" -o "${WORK_DIR}/coro_app" ${coro_flags})
run("coroutine consumer program" COMMAND "${WORK_DIR}/coro_app")
