# Checks that the umbrella header <evcxx/evcxx.hpp> brings in every public header, directly or
# through the others, by asking the compiler for the headers a TU including it depends on.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
split_bars(INCLUDE_FLAGS)

file(GLOB headers RELATIVE "${EVCXX_SOURCE_DIR}/include" "${EVCXX_SOURCE_DIR}/include/evcxx/*.hpp")
list(REMOVE_ITEM headers evcxx/coro.hpp)  # C++20, its own umbrella: not in the C++17 one
file(WRITE "${WORK_DIR}/umbrella.cpp" "#include <evcxx/evcxx.hpp>\n")
execute_process(COMMAND "${CXX_COMPILER}" -std=c++17 -M ${INCLUDE_FLAGS}
                        "-I${EVCXX_SOURCE_DIR}/include" "${WORK_DIR}/umbrella.cpp"
                OUTPUT_VARIABLE dependencies RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the compiler could not preprocess <evcxx/evcxx.hpp>")
endif()
set(missing "")
foreach(header IN LISTS headers)
  if(NOT dependencies MATCHES "/include/${header}[ \\\\\n]")
    string(APPEND missing "  ${header}\n")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "add these to include/evcxx/evcxx.hpp (it should give the whole API):\n${missing}")
endif()
