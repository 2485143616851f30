# Checks what `cmake --install` put into PREFIX: every public header (identical to the source),
# the library, the CMake package files and evcxx.pc, with no path into the source or build tree.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")

set(problems "")
macro(expect_file path)
  if(NOT EXISTS "${PREFIX}/${path}" OR IS_DIRECTORY "${PREFIX}/${path}")
    string(APPEND problems "  missing: ${path}\n")
  endif()
endmacro()

file(GLOB headers RELATIVE "${EVCXX_SOURCE_DIR}/include" "${EVCXX_SOURCE_DIR}/include/evcxx/*.hpp"
     "${EVCXX_SOURCE_DIR}/include/evcxx/coro/*.hpp")
if(NOT headers)
  string(APPEND problems "  no headers found in ${EVCXX_SOURCE_DIR}/include/evcxx\n")
endif()
foreach(header IN LISTS headers)
  expect_file("${INCLUDEDIR}/${header}")
  if(EXISTS "${PREFIX}/${INCLUDEDIR}/${header}")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files
                            "${EVCXX_SOURCE_DIR}/include/${header}" "${PREFIX}/${INCLUDEDIR}/${header}"
                    RESULT_VARIABLE differs)
    if(differs)
      string(APPEND problems "  differs from the source: ${INCLUDEDIR}/${header}\n")
    endif()
  endif()
endforeach()

expect_file("${LIBDIR}/${LIBRARY_FILE}")
foreach(file evcxxConfig.cmake evcxxConfigVersion.cmake "${TARGETS_FILE}" FindLibev.cmake)
  expect_file("${LIBDIR}/cmake/evcxx/${file}")
endforeach()
expect_file("${LIBDIR}/pkgconfig/evcxx.pc")
expect_file("${LIBDIR}/pkgconfig/evcxx-coro.pc")

# The installed package must be relocatable: no absolute path into the trees it was built from.
file(GLOB_RECURSE package_files "${PREFIX}/${LIBDIR}/cmake/*" "${PREFIX}/${LIBDIR}/pkgconfig/*")
foreach(file IN LISTS package_files)
  file(READ "${file}" content)
  foreach(tree "${EVCXX_SOURCE_DIR}" "${EVCXX_BINARY_DIR}" "${PREFIX}")
    string(FIND "${content}" "${tree}" at)
    if(at GREATER -1)
      string(APPEND problems "  ${file} contains the absolute path ${tree}\n")
    endif()
  endforeach()
endforeach()

if(problems)
  message(FATAL_ERROR "the install in ${PREFIX} is incomplete:\n${problems}")
endif()
list(LENGTH headers header_count)
message(STATUS "install in ${PREFIX}: ${header_count} headers, ${LIBRARY_FILE}, CMake package, evcxx.pc")
