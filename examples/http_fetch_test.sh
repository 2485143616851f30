#!/usr/bin/env bash
# Tests examples/http_fetch against a local HTTP server (http_fetch_server.py), started here on a
# loopback port the system chooses and always stopped on exit. Run by ctest.
#   http_fetch_test.sh HTTP_FETCH
# 1. 64 concurrent transfers of 0 bytes to 4 MiB: every one must arrive complete and correct.
#    The same, 8 at a time.
# 2. Against a server that gets one byte wrong in one transfer: http_fetch must notice and fail.
# 3. Transfers answered with HTTP 404 fail too.
# 4. An exception thrown in a write callback ends the run with status 2, and no crash.
set -euo pipefail
example=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
server_pid=
stop_server() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap 'stop_server; rm -rf "$tmp"' EXIT

fail() {
  echo "FAIL: $1"
  [[ -f $tmp/example.out ]] && { echo "--- http_fetch output ---"; cat "$tmp/example.out"; }
  [[ -s $tmp/server.err ]] && { echo "--- server errors ---"; tail -n 20 "$tmp/server.err"; }
  exit 1
}

# Starts the server with arguments "$@"; sets port once it printed "port N" (within 10 s).
start_server() {
  coproc SERVER { exec python3 "$here/http_fetch_server.py" "$@" 2>"$tmp/server.err"; }
  # shellcheck disable=SC2153 # SERVER_PID is set by coproc
  server_pid=$SERVER_PID
  local line=
  IFS= read -r -t 10 line <&"${SERVER[0]}" || true
  [[ $line =~ ^port\ ([0-9]+)$ ]] || fail "the server did not report its port (got '$line')"
  port=${BASH_REMATCH[1]}
  echo "http_fetch_server.py $* on 127.0.0.1:$port"
}

# Bounds every run of the example: killed after 20 s.
fetch() { timeout -s KILL 20 "$example" --base "http://127.0.0.1:$port" "$@"; }

transfers=64
start_server
status=0
fetch --transfers $transfers --max-size 4194304 >"$tmp/example.out" 2>&1 || status=$?
[[ $status -eq 0 ]] || fail "exit status $status"
summary=$(grep '^summary: ' "$tmp/example.out") || fail "no summary"
[[ $summary =~ ^summary:\ $transfers\ of\ $transfers\ transfers\ complete,\ ([0-9]+)\ bytes,\ every\ byte\ checked\;\ up\ to\ ([0-9]+)\ sockets ]] ||
  fail "not every transfer arrived intact"
((BASH_REMATCH[1] > 64 * 1024 * 1024)) || fail "fewer bytes than expected: ${BASH_REMATCH[1]}"
((BASH_REMATCH[2] >= 8)) || fail "the transfers did not run concurrently"
cat "$tmp/example.out"

# 1b. The same server, 8 at a time: the rest wait in the queue, and curl reuses its connections.
status=0
fetch --transfers $transfers --max-size 1048576 --parallel 8 >"$tmp/example.out" 2>&1 || status=$?
[[ $status -eq 0 ]] || fail "exit status $status (8 at a time)"
grep -q "^summary: $transfers of $transfers transfers complete, .*; up to [1-8] sockets watched at once\$" \
  "$tmp/example.out" || fail "not every transfer arrived intact, or more than 8 at a time"
cat "$tmp/example.out"
stop_server

start_server --corrupt 5
status=0
fetch --transfers 8 --max-size 100000 >"$tmp/example.out" 2>&1 || status=$?
[[ $status -eq 1 ]] || fail "exit status $status with one wrong byte, expected 1"
grep -q '^FAILED http://.*/pattern/5/[0-9]*: .*, wrong byte at offset [0-9]*$' "$tmp/example.out" ||
  fail "the wrong byte was not reported"
grep -q '^summary: 7 of 8 transfers complete' "$tmp/example.out" || fail "not 7 of 8 complete"
cat "$tmp/example.out"

# 3. Answers other than 200 fail the transfer.
status=0
timeout -s KILL 20 "$example" --base "http://127.0.0.1:$port/missing" --transfers 4 \
  >"$tmp/example.out" 2>&1 || status=$?
[[ $status -eq 1 ]] || fail "exit status $status with HTTP 404s, expected 1"
[[ $(grep -c '^FAILED .*, HTTP 404, ' "$tmp/example.out") -eq 4 ]] || fail "the 404s were not reported"
cat "$tmp/example.out"

# 4. An exception thrown in curl's write callback is caught by call_guarded(), rethrown by run()
#    and reported by main(): exit status 2, no crash.
status=0
fetch --transfers 8 --max-size 1000000 --throw-after 100000 >"$tmp/example.out" 2>&1 || status=$?
[[ $status -eq 2 ]] || fail "exit status $status when a write callback throws, expected 2"
grep -q '^http_fetch: the write callback of http://.* threw after [0-9]* bytes$' \
  "$tmp/example.out" || fail "the exception was not reported"
cat "$tmp/example.out"
echo "PASS"
