#!/usr/bin/env bash
# Builds evcxx (build/plain, the same tree scripts/test.sh uses) and runs the main example,
# examples/wake_other_thread: worker threads report progress to the main loop through Async and
# Loop::post; it quits when all are done, Ctrl-C stops it early. Arguments go to the example.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh

dir=build/plain
mkdir -p "$dir"
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVCXX_BUILD_EXAMPLES=ON \
  >"$dir/configure.log" 2>&1; then
  cat "$dir/configure.log" >&2
  exit 1
fi
if ! cmake --build "$dir" --parallel "$(nproc 2>/dev/null || echo 2)" --target wake_other_thread; then
  echo "scripts/example.sh: could not build the wake_other_thread example" \
    "(examples/wake_other_thread.cpp must exist and be listed in examples/CMakeLists.txt)" >&2
  exit 1
fi

example="$dir/examples/wake_other_thread"
if [[ ! -x $example ]]; then
  echo "scripts/example.sh: $example is missing after the build" >&2
  exit 1
fi
exec "$example" "$@"
