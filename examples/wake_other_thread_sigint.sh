#!/bin/bash
# ctest: Ctrl-C stops wake_other_thread cleanly. Usage: wake_other_thread_sigint.sh PROGRAM
set -u
program=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/out"

"$program" --workers 3 --steps 100000 --step-ms 5 >"$dir/out" &
pid=$!
exec 3<"$dir/out"
# Block until the program says it is working: no guessing with sleeps.
if ! read -r -t 60 first <&3; then
  echo "FAIL: no start line"; kill -KILL "$pid"; exit 1
fi
echo "$first"
kill -INT "$pid"
rest=$(timeout 60 cat <&3)
wait "$pid"
status=$?
echo "$rest"
[ "$status" -eq 0 ] || { echo "FAIL: exit status $status"; exit 1; }
echo "$rest" | grep -q '^interrupted: stopped cleanly' || { echo "FAIL: no clean stop"; exit 1; }
[ "$(echo "$rest" | grep -c '^worker .* stopped after')" -eq 3 ] || {
  echo "FAIL: not every worker stopped"; exit 1; }
echo PASS
