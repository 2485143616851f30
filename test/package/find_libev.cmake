# Configures the evcxx source tree (library only) in one CASE and checks what FindLibev did:
#   root             -DLibev_ROOT=<fake prefix>            finds the fake prefix
#   root_env         Libev_ROOT=<fake prefix> in the env   finds the fake prefix
#   prefix_path      -DCMAKE_PREFIX_PATH=<fake prefix>     finds the fake prefix
#   missing          nothing findable (CMAKE_FIND_ROOT_PATH at an empty directory): configure
#                    fails, naming libev-dev
#   bad_include_dir  -DLibev_INCLUDE_DIR=<no ev.h there>   configure fails, naming libev-dev
# The fake prefix holds copies of the real ev.h and libev shared library.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

file(REMOVE_RECURSE "${WORK_DIR}")
set(fake "${WORK_DIR}/fake-libev")
file(MAKE_DIRECTORY "${fake}/include" "${fake}/lib" "${WORK_DIR}/empty")
file(COPY "${LIBEV_INCLUDE_DIR}/ev.h" DESTINATION "${fake}/include")
get_filename_component(real_library "${LIBEV_LIBRARY}" REALPATH)
get_filename_component(extension "${LIBEV_LIBRARY}" LAST_EXT)
configure_file("${real_library}" "${fake}/lib/libev${extension}" COPYONLY)

set(args -DEVCXX_BUILD_TESTS=OFF -DEVCXX_BUILD_EXAMPLES=OFF -DEVCXX_BUILD_BENCHMARKS=OFF
         -DEVCXX_INSTALL=OFF)
set(env "")
set(expect_found TRUE)
if(CASE STREQUAL "root")
  list(APPEND args "-DLibev_ROOT=${fake}")
elseif(CASE STREQUAL "root_env")
  set(env "Libev_ROOT=${fake}")
elseif(CASE STREQUAL "prefix_path")
  list(APPEND args "-DCMAKE_PREFIX_PATH=${fake}")
elseif(CASE STREQUAL "missing")
  list(APPEND args "-DCMAKE_FIND_ROOT_PATH=${WORK_DIR}/empty" -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
       -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY)
  set(expect_found FALSE)
elseif(CASE STREQUAL "bad_include_dir")
  list(APPEND args "-DLibev_INCLUDE_DIR=${WORK_DIR}/no-such-dir")
  set(expect_found FALSE)
else()
  message(FATAL_ERROR "unknown CASE '${CASE}'")
endif()

set(generator -G "${GENERATOR}")
if(MAKE_PROGRAM)
  list(APPEND generator "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env ${env} "${CMAKE_COMMAND}"
                        -S "${EVCXX_SOURCE_DIR}" -B "${WORK_DIR}/build" ${generator}
                        "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" ${args}
                OUTPUT_VARIABLE output ERROR_VARIABLE output RESULT_VARIABLE result)

if(expect_found)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "configure failed in case ${CASE}:\n${output}")
  endif()
  file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" include_dir REGEX "^Libev_INCLUDE_DIR:")
  file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" library REGEX "^Libev_LIBRARY:")
  string(REGEX REPLACE "^[^=]*=" "" include_dir "${include_dir}")
  string(REGEX REPLACE "^[^=]*=" "" library "${library}")
  if(NOT include_dir STREQUAL "${fake}/include" OR NOT library STREQUAL "${fake}/lib/libev${extension}")
    message(FATAL_ERROR "case ${CASE}: FindLibev chose ${include_dir} and ${library}, "
                        "expected the fake prefix ${fake}")
  endif()
  message(STATUS "case ${CASE}: found ${include_dir} and ${library}")
else()
  if(result EQUAL 0)
    message(FATAL_ERROR "case ${CASE}: configure succeeded without libev:\n${output}")
  endif()
  if(NOT output MATCHES "Could NOT find Libev" OR NOT output MATCHES "libev-dev")
    message(FATAL_ERROR "case ${CASE}: configure failed without naming libev-dev:\n${output}")
  endif()
  if(CASE STREQUAL "bad_include_dir" AND NOT output MATCHES "has no ev\\.h")
    message(FATAL_ERROR "case ${CASE}: the message does not say the given directory has no ev.h:\n${output}")
  endif()
  message(STATUS "case ${CASE}: configure stopped as expected:\n${output}")
endif()
