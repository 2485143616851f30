# Fixture: builds evcxx from source as a shared library (BUILD_SHARED_LIBS=ON) and installs it
# into PREFIX, for the ABI check and the shared-library consumers. Build type None (no flags) is
# the quickest, and an unoptimised library keeps every weak instantiation, so the ABI check is
# at its strictest.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
file(REMOVE_RECURSE "${PREFIX}")
configure_and_build("${EVCXX_SOURCE_DIR}" "${WORK_DIR}" -DBUILD_SHARED_LIBS=ON
                    -DCMAKE_BUILD_TYPE=None -DEVCXX_BUILD_TESTS=OFF -DEVCXX_BUILD_EXAMPLES=OFF
                    -DEVCXX_BUILD_BENCHMARKS=OFF "-DCMAKE_INSTALL_PREFIX=${PREFIX}")
run("install" COMMAND "${CMAKE_COMMAND}" --install "${WORK_DIR}")
