#!/usr/bin/env bash
# Runs the published comparison: builds the benchmarks (Release) in build/bench, runs them side by
# side with JSON output, and writes docs/benchmarks.md and docs/benchmarks.svg.
#
# Needs CMake, a C++ compiler, libev, Google Benchmark, libuv, Boost (headers), pkg-config,
# python3 and gnuplot; scripts/install-deps.sh installs them where it exists.
#
# Environment knobs (defaults keep the whole run to a couple of minutes):
#   EVCXX_BENCH_MIN_TIME     seconds per benchmark repetition             (default 0.05)
#   EVCXX_BENCH_REPETITIONS  repetitions; the fastest one is published    (default 20)
#   EVCXX_BENCH_JOBS         parallel build jobs                          (default: nproc)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/bench"
min_time="${EVCXX_BENCH_MIN_TIME:-0.05}"
repetitions="${EVCXX_BENCH_REPETITIONS:-20}"
jobs="${EVCXX_BENCH_JOBS:-$(nproc 2>/dev/null || echo 2)}"

if [ -x "$root/scripts/install-deps.sh" ]; then
  "$root/scripts/install-deps.sh"
fi

missing=()
for tool in cmake python3 gnuplot pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench.sh: missing ${missing[*]}. On Debian/Ubuntu:" >&2
  echo "  sudo apt-get install -y cmake g++ libev-dev libbenchmark-dev libuv1-dev libboost-dev pkg-config python3 gnuplot-nox" >&2
  exit 1
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DEVCXX_BUILD_BENCHMARKS=ON \
  -DEVCXX_BUILD_TESTS=OFF -DEVCXX_BUILD_EXAMPLES=OFF -DEVCXX_INSTALL=OFF >/dev/null
cmake --build "$build" --target compare_bench async_bench --parallel "$jobs"

run() {
  local binary="$1"
  echo
  echo "== $binary (min time ${min_time}s, $repetitions repetitions)"
  "$build/bench/$binary" \
    --benchmark_min_time="$min_time" \
    --benchmark_repetitions="$repetitions" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_display_aggregates_only=true \
    --benchmark_out="$build/$binary.json" \
    --benchmark_out_format=json
}
run compare_bench
run async_bench

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
if [ -n "$commit" ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no -- . \
  ':!docs/benchmarks.md' ':!docs/benchmarks.svg' 2>/dev/null)" ]; then
  commit="$commit (with local changes)"
fi
mkdir -p "$root/docs"
python3 "$root/scripts/bench_report.py" "$build/compare_bench.json" "$build/async_bench.json" \
  "$root/docs/benchmarks.md" "$root/docs/benchmarks.svg" --commit "$commit"
