# Compiles the C++ example in README.md (the block after the "readme-example" marker) against this
# build of evcxx, with warnings as errors, and runs it: the README must not show code that fails.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
split_bars(INCLUDE_FLAGS)

file(READ "${EVCXX_SOURCE_DIR}/README.md" readme)
string(FIND "${readme}" "<!-- readme-example" marker)
if(marker EQUAL -1)
  message(FATAL_ERROR "README.md has no <!-- readme-example --> marker before its example")
endif()
string(SUBSTRING "${readme}" ${marker} -1 readme)
string(FIND "${readme}" "```cpp\n" begin)
string(FIND "${readme}" "\n```\n" end)
if(begin EQUAL -1 OR end LESS begin)
  message(FATAL_ERROR "no ```cpp block after the readme-example marker in README.md")
endif()
math(EXPR begin "${begin} + 7")
math(EXPR length "${end} - ${begin} + 1")
string(SUBSTRING "${readme}" ${begin} ${length} example)

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(WRITE "${WORK_DIR}/readme_example.cpp" "${example}")
get_filename_component(library_dir "${EVCXX_LIBRARY}" DIRECTORY)
run("compile and link" COMMAND "${CXX_COMPILER}" -std=c++17 -Wall -Wextra -Wpedantic -Werror
    ${INCLUDE_FLAGS} "${WORK_DIR}/readme_example.cpp" -o "${WORK_DIR}/readme_example"
    "${EVCXX_LIBRARY}" "${LIBEV_LIBRARY}" -pthread)
set(ENV{LD_LIBRARY_PATH} "${library_dir}")
run("README example" COMMAND "${WORK_DIR}/readme_example")
