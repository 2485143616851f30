# Compiles every ```cpp block of docs/ev++-migration.md, strict C++17 with warnings as errors: the
# ev++.h blocks against libev's own ev++.h (without evcxx's headers on the include path), the evcxx
# blocks against this build of evcxx. Its programs are linked and run; the whole program ported on
# the page runs in both versions, with a real socket, signal and thread, and both must print what the
# page says. The HTML comment right before each block says what the block is:
#   <!-- check: part NAME -->                         plain C++ that programs "after NAME" start with
#   <!-- check: ev++.h|evcxx program NAME [after PART] -->          a whole program: compiled and run
#   <!-- check: ev++.h|evcxx fragment -->             declarations, compiled after the page's includes
#   <!-- check: ev++.h|evcxx fragment(PARAMETERS) --> statements, compiled as a function's body
# A ```cpp block without such a comment fails the test, and so does a function, type, constant or
# watcher class of libev's ev++.h (EVPP_HEADER) that the page does not name.
cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/common.cmake")
split_bars(INCLUDE_FLAGS)        # evcxx's headers and libev's
split_bars(LIBEV_INCLUDE_FLAGS)  # libev's only

set(guide_name "docs/ev++-migration.md")
set(guide_file "${EVCXX_SOURCE_DIR}/${guide_name}")
file(READ "${guide_file}" rest)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
get_filename_component(library_dir "${EVCXX_LIBRARY}" DIRECTORY)
set(ENV{LD_LIBRARY_PATH} "${library_dir}")
set(warnings -std=c++17 -Wall -Wextra -Wpedantic -Werror)

# What "everything below assumes" at the top of the page, for fragments.
set(common_includes "#include <chrono>\n#include <cstdio>\n#include <functional>\n#include <string>\n")
set(prelude_evpp "#include <ev++.h>\n\n${common_includes}")
set(prelude_evcxx
    "#include <evcxx/evcxx.hpp>\n\n${common_includes}\nusing namespace std::chrono_literals;\n")

# compile(<flavour> <stem> <source text> <link: ON|OFF>): writes and compiles one block.
function(compile flavour stem source link)
  file(WRITE "${WORK_DIR}/${stem}.cpp" "${source}")
  if(flavour STREQUAL "evcxx")
    set(flags ${INCLUDE_FLAGS})
    set(libraries "${EVCXX_LIBRARY}" "${LIBEV_LIBRARY}" -pthread)
  else()
    set(flags ${LIBEV_INCLUDE_FLAGS})
    set(libraries "${LIBEV_LIBRARY}" -pthread)
  endif()
  if(link)
    run("compile and link ${stem}" COMMAND "${CXX_COMPILER}" ${warnings} ${flags}
        "${WORK_DIR}/${stem}.cpp" -o "${WORK_DIR}/${stem}" ${libraries})
  else()
    run("compile ${stem}" COMMAND "${CXX_COMPILER}" ${warnings} ${flags} -c
        "${WORK_DIR}/${stem}.cpp" -o "${WORK_DIR}/${stem}.o")
  endif()
endfunction()

# run_program(<stem> <output variable> [args...]): runs a compiled program, bounded; fails unless
# it exits with 0.
function(run_program stem output_var)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "run ${stem} ${shown}")
  execute_process(COMMAND "${WORK_DIR}/${stem}" ${ARGN} RESULT_VARIABLE result
                  OUTPUT_VARIABLE output ERROR_VARIABLE errors TIMEOUT 120)
  message(STATUS "${output}${errors}")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${stem} ${shown} failed (${result}):\n${output}${errors}")
  endif()
  set(${output_var} "${output}" PARENT_SCOPE)
endfunction()

# Every member of ev++.h has a row: each function, type and constant it declares is named on the
# page (functions and types by their name, constants and watchers as "ev::NAME").
if(NOT EXISTS "${EVPP_HEADER}")
  message(FATAL_ERROR "libev's ev++.h not found (EVPP_HEADER='${EVPP_HEADER}')")
endif()
set(members "")
file(READ "${EVPP_HEADER}" evpp)
# Functions: a line indented by 2 or 4 (a declaration, not a statement in a body) with a name and a
# " (" after a type.
string(REGEX MATCHALL "\n(  |    )[A-Za-z_][^(\n]* [a-z_]+ \\(" declarations "${evpp}")
foreach(declaration IN LISTS declarations)
  if(declaration MATCHES "^\n *(return|if|template|typedef) ")
    continue()
  endif()
  string(REGEX REPLACE "^.* ([a-z_]+) \\($" "\\1" name "${declaration}")
  list(APPEND members "${name}")
endforeach()
foreach(kind "\n +([A-Z][A-Z0-9]*) += EV;ev::" "\n *struct ([a-z_]+);"
             "EV_BEGIN_WATCHER \\(([a-z]+),;ev::")
  list(GET kind 0 pattern)
  list(GET kind 1 prefix)
  string(REGEX MATCHALL "${pattern}" found "${evpp}")
  foreach(name IN LISTS found)
    string(REGEX REPLACE "${pattern}" "${prefix}\\1" name "${name}")
    list(APPEND members "${name}")
  endforeach()
endforeach()
list(REMOVE_DUPLICATES members)
# libev's C struct, the watcher macro's parameter, and a template parameter's type
list(REMOVE_ITEM members "ev_loop" "cppstem" "void")
list(LENGTH members member_count)
if(member_count LESS 80)
  message(FATAL_ERROR "only ${member_count} members found in ${EVPP_HEADER}: ${members}")
endif()
set(missing "")
foreach(member IN LISTS members)
  string(FIND "${rest}" "${member}" found)
  if(found EQUAL -1)
    list(APPEND missing "${member}")
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "${guide_name} has no row for these members of ev++.h: ${missing}")
endif()
message(STATUS "${guide_name} names all ${member_count} members found in ${EVPP_HEADER}")

set(line 1)  # the guide's line number at the start of rest
set(blocks 0)
set(programs "")
while(TRUE)
  string(FIND "${rest}" "```cpp\n" begin)
  if(begin EQUAL -1)
    break()
  endif()
  string(SUBSTRING "${rest}" 0 ${begin} before)
  string(REGEX MATCHALL "\n" newlines "${before}")
  list(LENGTH newlines count)
  math(EXPR line "${line} + ${count} + 1")  # the first line of the code
  math(EXPR begin "${begin} + 7")
  string(SUBSTRING "${rest}" ${begin} -1 rest)
  string(FIND "${rest}" "\n```\n" end)
  if(end EQUAL -1)
    message(FATAL_ERROR "${guide_name}:${line}: a ```cpp block without its closing ```")
  endif()
  math(EXPR length "${end} + 1")
  string(SUBSTRING "${rest}" 0 ${length} code)
  math(EXPR end "${end} + 5")
  string(SUBSTRING "${rest}" ${end} -1 rest)
  math(EXPR blocks "${blocks} + 1")
  set(stem "block${blocks}")
  set(source "#line ${line} \"${guide_name}\"\n${code}")
  string(REGEX MATCHALL "\n" newlines "${code}")
  list(LENGTH newlines count)
  set(block_line ${line})
  math(EXPR line "${line} + ${count} + 1")  # the line after the closing ```

  if(NOT before MATCHES "<!-- check: ([^>]*) -->\n$")
    message(FATAL_ERROR "${guide_name}:${block_line}: a ```cpp block without a check marker "
                        "(say how it is checked: see test/package/migration_guide.cmake)")
  endif()
  set(marker "${CMAKE_MATCH_1}")
  if(marker MATCHES "^part ([a-z_]+)$")
    set(part_${CMAKE_MATCH_1} "${source}")
  elseif(marker MATCHES "^(ev\\+\\+\\.h|evcxx) program ([a-z_]+)( after ([a-z_]+))?$")
    set(flavour "${CMAKE_MATCH_1}")
    set(name "${CMAKE_MATCH_2}")
    set(part "${CMAKE_MATCH_4}")
    if(flavour STREQUAL "ev++.h")
      set(flavour "evpp")
      set(include "#include <ev++.h>")
    else()
      set(include "#include <evcxx/evcxx.hpp>")
    endif()
    string(FIND "${code}" "${include}" found)
    if(found EQUAL -1)
      message(FATAL_ERROR "${guide_name}:${block_line}: program ${name} does not ${include}")
    endif()
    if(part)
      if(NOT DEFINED part_${part})
        message(FATAL_ERROR "${guide_name}:${block_line}: no part ${part} before program ${name}")
      endif()
      set(source "${part_${part}}${source}")
    endif()
    compile(${flavour} "${name}" "${source}" ON)
    list(APPEND programs "${name}")
  elseif(marker MATCHES "^(ev\\+\\+\\.h|evcxx) fragment(\\((.*)\\))?$")
    set(flavour "${CMAKE_MATCH_1}")
    set(parameters "${CMAKE_MATCH_3}")
    if(flavour STREQUAL "ev++.h")
      set(flavour "evpp")
    endif()
    if(CMAKE_MATCH_2)
      # Statements: the body of a function taking the names they use.
      if(parameters)
        string(REPLACE ", " ", [[maybe_unused]] " parameters "[[maybe_unused]] ${parameters}")
      endif()
      set(source "void guide_fragment_${blocks}(${parameters}) {\n${source}}\n")
    endif()
    compile(${flavour} "${stem}" "${prelude_${flavour}}${source}" OFF)
  else()
    message(FATAL_ERROR "${guide_name}:${block_line}: unknown check marker '${marker}'")
  endif()
endwhile()
if(blocks EQUAL 0)
  message(FATAL_ERROR "no ```cpp block found in ${guide_name}")
endif()

# Every program runs by itself and succeeds.
foreach(program IN LISTS programs)
  run_program(${program} output_${program})
endforeach()

# The whole program, in both versions: closed by the SIGTERM its peer thread sends, and, with a
# peer that falls silent, by its inactivity timer; each version prints the same.
foreach(program line_session_evpp line_session_evcxx)
  if(NOT program IN_LIST programs)
    message(FATAL_ERROR "${guide_name} has no program ${program} (the whole program, ported)")
  endif()
  run_program(${program} quiet_${program} --quiet-peer)
endforeach()
set(expected_signal "received: pong\nclosed by: SIGTERM\n")
set(expected_quiet "received: pong\nclosed by: idle\n")
foreach(program line_session_evpp line_session_evcxx)
  if(NOT output_${program} STREQUAL expected_signal)
    message(FATAL_ERROR "${program} printed\n${output_${program}}instead of\n${expected_signal}")
  endif()
  if(NOT quiet_${program} STREQUAL expected_quiet)
    message(FATAL_ERROR
            "${program} --quiet-peer printed\n${quiet_${program}}instead of\n${expected_quiet}")
  endif()
endforeach()
string(REPLACE ";" ", " programs "${programs}")
message(STATUS "${guide_name}: ${blocks} blocks checked; programs run: ${programs}")
