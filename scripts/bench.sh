#!/usr/bin/env bash
# Runs the published comparison: builds the benchmarks (Release) in build/bench, runs them with
# JSON output, and writes docs/benchmarks.md, docs/benchmarks.svg and docs/benchmarks-ratios.svg.
#
#   scripts/bench.sh            the full run (a few minutes)
#   scripts/bench.sh --quick    a smoke run (under a minute): few, short samples; the report goes
#                               to build/bench/benchmarks-quick.md (+ .svg), never to docs/
#
# What runs:
#   side_by_side_bench  issue 10's rows, each evcxx figure beside raw libev C (and Boost.Asio,
#                       bare futex/eventfd, a spinning floor) pair by pair, interleaved; also
#                       measures whether two threads really run at once, before, during the
#                       busy-core rows and after
#   compare_bench       waking another thread and handing it work, evcxx beside libev, libuv,
#                       Boost.Asio, std::condition_variable and eventfd
#   async_bench         evcxx::Async beside ev_async
#   coro_bench          evcxx::coro's waits beside the same waits with callbacks, and resume_on
#                       round trips beside Boost.Asio's co_spawn + post; run twice, the second
#                       time with a third thread spinning (--busy-core), each state measured
#
# Needs CMake, a C++ compiler, libev, Google Benchmark, libuv, Boost (headers), pkg-config,
# python3 and gnuplot; scripts/install-deps.sh installs them where it exists.
#
# Environment knobs (defaults keep the whole run to a few minutes):
#   EVCXX_BENCH_MIN_TIME     seconds per Google Benchmark repetition      (default 0.05; quick 0.01)
#   EVCXX_BENCH_REPETITIONS  repetitions; the fastest one is published    (default 20; quick 3)
#   EVCXX_BENCH_ROUNDS       side_by_side_bench rounds (pairs per row)    (default 15; quick 3)
#   EVCXX_BENCH_TARGET_MS    side_by_side_bench milliseconds per sample   (default 25; quick 4)
#   EVCXX_BENCH_PIN_SPINNER  1: pin the busy-core spinner to the last CPU (default 0)
#   EVCXX_BENCH_JOBS         parallel build jobs                          (default: nproc)
set -euo pipefail

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "bench.sh: unknown argument '$arg' (use --quick)" >&2
      exit 2
      ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/bench"
if ((quick)); then
  min_time="${EVCXX_BENCH_MIN_TIME:-0.01}"
  repetitions="${EVCXX_BENCH_REPETITIONS:-3}"
  rounds="${EVCXX_BENCH_ROUNDS:-3}"
  target_ms="${EVCXX_BENCH_TARGET_MS:-4}"
  out_md="$build/benchmarks-quick.md"
  out_svg="$build/benchmarks-quick.svg"
  out_ratios="$build/benchmarks-quick-ratios.svg"
else
  min_time="${EVCXX_BENCH_MIN_TIME:-0.05}"
  repetitions="${EVCXX_BENCH_REPETITIONS:-20}"
  rounds="${EVCXX_BENCH_ROUNDS:-15}"
  target_ms="${EVCXX_BENCH_TARGET_MS:-25}"
  out_md="$root/docs/benchmarks.md"
  out_svg="$root/docs/benchmarks.svg"
  out_ratios="$root/docs/benchmarks-ratios.svg"
fi
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
cmake --build "$build" --target side_by_side_bench compare_bench async_bench coro_bench --parallel "$jobs"

start=$(date +%s)

side_by_side=("$build/bench/side_by_side_bench" --rounds="$rounds" --target-ms="$target_ms"
  --out="$build/side_by_side_bench.json")
((quick)) && side_by_side+=(--quick --rounds="$rounds" --target-ms="$target_ms")
[ "${EVCXX_BENCH_PIN_SPINNER:-0}" = 1 ] && side_by_side+=(--pin-spinner)
echo
echo "== side_by_side_bench ($rounds rounds, ~${target_ms} ms per sample)"
"${side_by_side[@]}"

run() {
  local binary="$1" out="$2"
  shift 2
  echo
  echo "== $binary $* (min time ${min_time}s, $repetitions repetitions)"
  "$build/bench/$binary" "$@" \
    --benchmark_min_time="$min_time" \
    --benchmark_repetitions="$repetitions" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_display_aggregates_only=true \
    --benchmark_out="$build/$out.json" \
    --benchmark_out_format=json
}
run compare_bench compare_bench
run async_bench async_bench
run coro_bench coro_bench
# The coroutine rows again with one core kept busy (the machine's other state).
coro_busy=(--busy-core)
[ "${EVCXX_BENCH_PIN_SPINNER:-0}" = 1 ] && coro_busy+=(--pin-spinner)
run coro_bench coro_bench_busy "${coro_busy[@]}"
echo
echo "bench.sh: benchmarks ran in $(($(date +%s) - start)) s"

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
if [ -n "$commit" ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no -- . \
  ':!docs/benchmarks.md' ':!docs/benchmarks.svg' ':!docs/benchmarks-ratios.svg' 2>/dev/null)" ]; then
  commit="$commit (with local changes)"
fi
report=(python3 "$root/scripts/bench_report.py" "$build/compare_bench.json" "$build/async_bench.json"
  "$out_md" "$out_svg" --side-by-side "$build/side_by_side_bench.json" --ratios-svg "$out_ratios"
  --commit "$commit" --coro "$build/coro_bench.json" --coro-busy "$build/coro_bench_busy.json")
((quick)) && report+=(--smoke)
mkdir -p "$(dirname "$out_md")"
"${report[@]}"
