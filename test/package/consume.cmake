# Builds the consumer project against evcxx one way (CONSUME: find_package, add_subdirectory or
# fetchcontent) and runs it. Inputs: see test/package/CMakeLists.txt.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
split_bars(CONSUMER_ARGS)

configure_and_build("${CMAKE_CURRENT_LIST_DIR}/consumer" "${WORK_DIR}/build"
                    "-DEVCXX_CONSUME=${CONSUME}" ${CONSUMER_ARGS})
run("consumer program" COMMAND "${WORK_DIR}/build/app")
run("coroutine consumer program" COMMAND "${WORK_DIR}/build/coro_app")
