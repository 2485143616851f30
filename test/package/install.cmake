# Fixture: installs the evcxx build tree that runs the tests into PREFIX (fresh each time).
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
file(REMOVE_RECURSE "${PREFIX}")
run("install" COMMAND "${CMAKE_COMMAND}" --install "${EVCXX_BINARY_DIR}" --prefix "${PREFIX}"
    ${CONFIG_ARGS})
