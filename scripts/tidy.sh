#!/usr/bin/env bash
# Runs clang-tidy (the repo's .clang-tidy) over the library: every source file in src/ (through a
# compile database in build/tidy) and the public headers through the umbrella header. Fails on any finding.
#
#   scripts/tidy.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tidy=clang-tidy-16
if ! command -v "$tidy" >/dev/null 2>&1; then
  echo "scripts/tidy.sh: $tidy not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

cmake -S . -B build/tidy -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_CXX_COMPILER=clang++-16 \
  -DEVCXX_BUILD_TESTS=OFF -DEVCXX_BUILD_EXAMPLES=OFF -DEVCXX_BUILD_BENCHMARKS=OFF \
  -DEVCXX_INSTALL=OFF >build/tidy.configure.log 2>&1 || {
  cat build/tidy.configure.log >&2
  exit 1
}

mapfile -t sources < <(git ls-files 'src/*.cpp')
# The public headers, all through the umbrella header (each one compiling on its own is the package
# tests' job), and the coroutine layer (C++20, not in the umbrella header).
echo '#include <evcxx/evcxx.hpp>' >build/tidy/all_headers.cpp
echo '#include <evcxx/coro.hpp>' >build/tidy/coro_headers.cpp
status=0
log=build/tidy/findings.log
: >"$log"
# One job per line, two at a time: the machine this runs on has two cores.
{
  printf -- '-p build/tidy --quiet %s\n' "${sources[@]}"
  echo '--quiet build/tidy/all_headers.cpp -- -x c++ -std=c++17 -Iinclude'
  echo '--quiet build/tidy/coro_headers.cpp -- -x c++ -std=c++20 -Iinclude'
} | xargs -P 2 -L 1 "$tidy" >>"$log" 2>&1 || status=1
if ((status != 0)) || grep -q 'error:\|warning:' "$log"; then
  grep -A3 'error:\|warning:' "$log" >&2 || cat "$log" >&2
  echo "scripts/tidy.sh: clang-tidy found problems (full log: $log)" >&2
  exit 1
fi
echo "clang-tidy: ${#sources[@]} sources and the public headers are clean"
