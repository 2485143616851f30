# Installs the static library (STATIC_PREFIX) and then the shared one (SHARED_PREFIX) into one
# prefix, as the Debian package does, and checks which evcxx::evcxx find_package(evcxx) gives:
# the shared one by default, the static one with evcxx_USE_STATIC_LIBS=ON; and that asking a
# static-only prefix for the shared one fails with a message that says so.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(COPY "${STATIC_PREFIX}/" DESTINATION "${prefix}")
# file(COPY) keeps a copy with the same time stamp (to the second): the shared build's evcxx.pc
# must replace the static one's, as in the Debian package.
file(REMOVE "${prefix}/${LIBDIR}/pkgconfig/evcxx.pc")
file(COPY "${SHARED_PREFIX}/" DESTINATION "${prefix}")

foreach(kind shared static)
  set(args "-DCMAKE_PREFIX_PATH=${prefix}" "-DEXPECTED_evcxx_DIR=${prefix}/${LIBDIR}/cmake/evcxx")
  if(kind STREQUAL "static")
    list(APPEND args -Devcxx_USE_STATIC_LIBS=ON -DEXPECTED_evcxx_TYPE=STATIC_LIBRARY)
  else()
    list(APPEND args -DEXPECTED_evcxx_TYPE=SHARED_LIBRARY)
  endif()
  configure_and_build("${CMAKE_CURRENT_LIST_DIR}/consumer" "${WORK_DIR}/${kind}"
                      -DEVCXX_CONSUME=find_package ${args})
  run("consumer program (${kind})" COMMAND "${WORK_DIR}/${kind}/app")
endforeach()

# The static-only prefix, asked for the shared library: configuring must fail and say why.
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${CMAKE_CURRENT_LIST_DIR}/consumer"
                        -B "${WORK_DIR}/missing" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
                        -DEVCXX_CONSUME=find_package "-DCMAKE_PREFIX_PATH=${STATIC_PREFIX}"
                        -Devcxx_USE_STATIC_LIBS=OFF
                RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "find_package(evcxx) with evcxx_USE_STATIC_LIBS=OFF found a static-only prefix:\n${output}")
endif()
if(NOT output MATCHES "the shared evcxx library is not installed in")
  message(FATAL_ERROR "find_package(evcxx) failed without saying the shared library is missing:\n${output}")
endif()
message(STATUS "one prefix, both libraries: shared by default, static with evcxx_USE_STATIC_LIBS=ON")
