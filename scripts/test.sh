#!/usr/bin/env bash
# The evcxx test suite: builds and runs every test seven times, as a plain RelWithDebInfo g++ build
# (with the benchmarks and the packaging tests), under AddressSanitizer + UndefinedBehaviorSanitizer
# and under ThreadSanitizer, with clang-16 and libc++ (the library built as C++20, GoogleTest built
# from Debian's googletest sources with the same standard library), and with the portable platform
# layer (-DEVCXX_PLATFORM=posix) as a plain g++ build, under ASan + UBSan and under TSan (posix,
# posix-asan, posix-tsan: tests only, no benchmarks, examples or packaging tests). The library
# itself is built with -Wconversion -Wshadow -Werror in every tree. Any sanitizer report fails the
# test that caused it. With ccache installed, the trees share one cache in build/.ccache.
#
# It first checks that every C++ file matches .clang-format ("format") and that the API reference
# builds from the headers without a single Doxygen warning ("docs", scripts/docs.sh), and that
# clang-tidy finds nothing in the library ("tidy", scripts/tidy.sh), and that the Debian packages
# build, pass lintian and serve CMake and pkg-config consumers ("deb", scripts/deb-test.sh).
#
#   scripts/test.sh [format|docs|tidy|deb|plain|asan|tsan|clang|posix|posix-asan|posix-tsan]...
#                                                  (default: all; trees go to build/<name>)
#
# Ends with one line per tree and the total, "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh

trees=("$@")
((${#trees[@]})) || trees=(format docs tidy deb plain asan tsan clang posix posix-asan posix-tsan)
jobs=$(nproc 2>/dev/null || echo 2)

# Sanitizer runtime options: stop at the first report and exit non-zero. Ours come last so they win
# over anything inherited from the environment.
asan_options="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
ubsan_options="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
tsan_options="${TSAN_OPTIONS:+$TSAN_OPTIONS:}halt_on_error=1:second_deadlock_stack=1"

# With high ASLR entropy (vm.mmap_rnd_bits=32, e.g. Ubuntu 24.04) GCC's sanitizer runtimes fail to
# map their shadow memory; running the tests without address randomization avoids that.
no_aslr=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
  no_aslr=(setarch "$(uname -m)" -R)
fi

# ccache, when installed (install-deps.sh installs it): the test files compile the same against
# either platform layer, so each posix tree reuses its Linux twin's objects and builds in seconds.
# Paths are hashed relative to the repo, so two trees of the same depth share; PCH needs the two
# sloppiness options.
if command -v ccache >/dev/null 2>&1; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_DIR="${CCACHE_DIR:-$root/build/.ccache}" CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true
  export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
fi

total_passed=0
total_failed=0
summary=()
failures=()  # "tree: test name"; the end of each one's output goes to failure_log, printed last
failure_log=$(mktemp)
trap 'rm -f "$failure_log"' EXIT

# A check that counts as one test: `name` passes when the command succeeds.
one_check() {
  local name=$1
  shift
  if "$@"; then
    summary+=("$name: 1 passed, 0 failed")
    total_passed=$((total_passed + 1))
  else
    summary+=("$name: 0 passed, 1 failed")
    total_failed=$((total_failed + 1))
  fi
}

# Every C++ file git knows, against the repo's .clang-format: failed by any difference.
format_matches() {
  local bad
  bad=$(git ls-files '*.cpp' '*.hpp' '*.h' | xargs -r clang-format --dry-run -Werror 2>&1 |
    grep -oE '^[^:]+\.(cpp|hpp|h):' | sort -u | tr -d ':' || true)
  [[ -z $bad ]] && return 0
  echo "=== format: these files differ from .clang-format (run clang-format -i on them):" >&2
  echo "$bad" >&2
  return 1
}

run_tree() {
  local name=$1
  case $name in
    format) one_check format format_matches; return ;;
    docs) one_check docs bash scripts/docs.sh; return ;;  # the API reference, warning-free
    tidy) one_check tidy bash scripts/tidy.sh; return ;;  # clang-tidy over src/ and include/
    deb) one_check deb bash scripts/deb-test.sh; return ;;  # debian/: build, lintian, consumers
  esac
  local dir="build/$name"
  # The examples on C libraries are required: install-deps.sh installed what they need.
  local configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVCXX_BUILD_TESTS=ON -DEVCXX_BUILD_EXAMPLES=ON
    -DEVCXX_REQUIRE_C_EXAMPLES=ON -DEVCXX_WERROR=ON)
  local runner=(env)
  # The portable platform layer on Linux: the tests only, to keep the run short.
  if [[ $name == posix* ]]; then
    configure=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVCXX_BUILD_TESTS=ON -DEVCXX_BUILD_EXAMPLES=OFF
      -DEVCXX_BUILD_BENCHMARKS=OFF -DEVCXX_PACKAGE_TESTS=OFF -DEVCXX_WERROR=ON
      -DEVCXX_PLATFORM=posix)
  fi
  # Sanitizer trees: the library at -O1 (what the sanitizers recommend), line tables only (enough
  # for their stack traces), and the test files at -O0, which cuts the asan build by a third.
  if [[ $name == *san ]]; then
    configure+=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DEVCXX_TEST_CXX_FLAGS=-O0)
  fi
  case $name in
    plain) configure+=(-DEVCXX_BUILD_BENCHMARKS=ON -DEVCXX_SANITIZE=) ;;
    asan)
      configure+=(-DEVCXX_BUILD_BENCHMARKS=OFF -DEVCXX_SANITIZE=address,undefined)
      runner=(env "ASAN_OPTIONS=$asan_options" "UBSAN_OPTIONS=$ubsan_options" "${no_aslr[@]}")
      ;;
    tsan)
      configure+=(-DEVCXX_BUILD_BENCHMARKS=OFF -DEVCXX_SANITIZE=thread)
      runner=(env "TSAN_OPTIONS=$tsan_options" "${no_aslr[@]}")
      ;;
    posix) configure+=(-DEVCXX_SANITIZE=) ;;
    posix-asan)
      configure+=(-DEVCXX_SANITIZE=address,undefined)
      runner=(env "ASAN_OPTIONS=$asan_options" "UBSAN_OPTIONS=$ubsan_options" "${no_aslr[@]}")
      ;;
    posix-tsan)
      configure+=(-DEVCXX_SANITIZE=thread)
      runner=(env "TSAN_OPTIONS=$tsan_options" "${no_aslr[@]}")
      ;;
    clang)
      # CMake links C++ targets with CMAKE_CXX_FLAGS, so -stdlib=libc++ there covers linking too.
      configure+=(-DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16
        -DCMAKE_CXX_STANDARD=20 -DCMAKE_CXX_FLAGS=-stdlib=libc++
        -DEVCXX_GTEST_SOURCE_DIR=/usr/src/googletest
        -DEVCXX_BUILD_BENCHMARKS=OFF -DEVCXX_PACKAGE_TESTS=OFF -DEVCXX_SANITIZE=)
      ;;
    *)
      echo "scripts/test.sh: unknown tree '$name' (use format, docs, tidy, deb, plain, asan, tsan," \
        "clang, posix, posix-asan or posix-tsan)" >&2
      exit 2
      ;;
  esac

  local start=$SECONDS
  mkdir -p "$dir"
  echo "=== $name: configure and build in $dir" >&2
  if ! cmake -S . -B "$dir" "${configure[@]}" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log" >&2
    summary+=("$name: configure FAILED (see $dir/configure.log)")
    total_failed=$((total_failed + 1))
    return
  fi
  if ! cmake --build "$dir" --parallel "$jobs"; then
    summary+=("$name: build FAILED")
    total_failed=$((total_failed + 1))
    return
  fi

  echo "=== $name: ctest" >&2
  local log="$dir/ctest.log"
  local status=0
  (cd "$dir" && "${runner[@]}" ctest --output-on-failure --no-tests=error -j2) 2>&1 | tee "$log" || status=$?
  # ctest's summary line: "97% tests passed, 1 tests failed out of 34"
  local passed=0 failed=1 line
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=${BASH_REMATCH[1]}
    passed=$((BASH_REMATCH[2] - failed))
    # ctest failing without a failed test (it crashed, or found no tests) still fails the tree.
    ((status == 0 || failed > 0)) || failed=1
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  summary+=("$name: $passed passed, $failed failed ($(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s)")
  local test_name
  while IFS= read -r test_name; do
    [[ -n $test_name ]] || continue
    failures+=("$name: $test_name")
    {
      echo "=== $name: the end of the output of $test_name"
      # ctest keeps each test's output in LastTest.log, between "Test: <name>" and "<end of output>".
      awk -v t="$test_name" '$0 ~ "^[0-9]+/[0-9]+ Test: " && substr($0, index($0, "Test: ") + 6) == t \
        { on = 1; next } on && /^<end of output>/ { exit } on' \
        "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | tail -n 40 || true
    } >>"$failure_log"
  done < <(sed -n '/The following tests FAILED:/,$p' "$log" |
    sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) .*/\1/p')
}

for tree in "${trees[@]}"; do
  run_tree "$tree"
done

echo
cat "$failure_log"
printf '%s\n' "${summary[@]}"
if ((${#failures[@]})); then
  echo "failed tests:"
  printf '  %s\n' "${failures[@]}"
fi
echo "$total_passed passed, $total_failed failed"
((total_failed == 0))
