#!/usr/bin/env bash
# Tests examples/redis_counter against a real redis-server, started here on a free loopback port
# with its own empty directory and no persistence, and always stopped on exit. Run by ctest.
#   redis_counter_test.sh REDIS_COUNTER complete   every worker finishes its INCRs
#   redis_counter_test.sh REDIS_COUNTER sigterm    SIGTERM mid-way: it stops cleanly, exit status 0,
#                                                  and every reply in flight was accounted for
#   redis_counter_test.sh REDIS_COUNTER sigint     the same with SIGINT
# Both check the example's own summary and, independently, the counter's value in the server.
set -euo pipefail
example=$1
scenario=$2
workers=4

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $1"
  [[ -f $tmp/example.out ]] && { echo "--- redis_counter output ---"; cat "$tmp/example.out"; }
  [[ -f $tmp/server.log ]] && { echo "--- redis-server log (last lines) ---"; tail -n 20 "$tmp/server.log"; }
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts redis-server on a port that was free a moment ago; another process may take it first,
# so a server that exits is retried on a new port.
start_server() {
  local tries
  for _ in 1 2 3; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
      --daemonize no --logfile "$tmp/server.log" &
    server_pid=$!
    for ((tries = 0; tries < 40; tries++)); do  # up to 2 s
      [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && return 0
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  done
  fail "redis-server did not answer PING (3 attempts)"
}

# The counter the example used, as the server has it.
server_counter() {
  local key
  key=$(sed -nE 's/^connected to .*; counter ([^;]+);.*/\1/p' "$tmp/example.out")
  [[ -n $key ]] || fail "no counter key in the output"
  redis-cli -p "$port" get "$key"
}

# Bounds every run of the example: killed after 20 s (with the server's start, the test takes
# less than 30 s whatever happens).
example=(timeout -s KILL 20 "$example")

start_server
echo "redis-server on 127.0.0.1:$port"

case $scenario in
  complete)
    incrs=2500
    status=0
    "${example[@]}" --port "$port" --workers $workers --incrs $incrs >"$tmp/example.out" 2>&1 ||
      status=$?
    [[ $status -eq 0 ]] || fail "exit status $status"
    total=$((workers * incrs))
    grep -q "^summary: stopped by work done; INCR sent $total, answered $total, refused 0, failed 0; counter $total; .*; all accounted for\$" \
      "$tmp/example.out" || fail "the summary does not account for all $total INCRs"
    [[ $(server_counter) == "$total" ]] || fail "the server's counter is not $total"
    ;;
  sigterm | sigint)
    signal=${scenario#sig}
    signal=${signal^^}
    signum=$(kill -l "$signal")
    # Far more work than can finish before the signal: it arrives mid-way, after the first
    # 2000 replies.
    incrs=10000000
    # timeout passes the signal on to the example.
    coproc EXAMPLE { exec "${example[@]}" --port "$port" --workers $workers --incrs $incrs --progress-at 2000 2>&1; }
    pid=$EXAMPLE_PID
    exec {from_example}<&"${EXAMPLE[0]}"
    : >"$tmp/example.out"
    signalled=
    while IFS= read -r -t 20 line <&"$from_example"; do
      echo "$line" >>"$tmp/example.out"
      if [[ -z $signalled && $line == progress:* ]]; then
        kill -s "$signal" "$pid"
        signalled=yes
      fi
    done
    status=0
    wait "$pid" || status=$?
    [[ -n $signalled ]] || fail "no progress line before the output ended"
    [[ $status -eq 0 ]] || fail "exit status $status after SIG$signal"
    summary=$(grep '^summary: ' "$tmp/example.out") || fail "no summary"
    [[ $summary == "summary: stopped by signal $signum; "*"; all accounted for" ]] ||
      fail "the summary does not account for every reply"
    answered=$(sed -E 's/.* answered ([0-9]+),.*/\1/' <<<"$summary")
    ((answered >= 2000 && answered < workers * incrs)) || fail "not stopped mid-way: $answered"
    [[ $summary == *"; counter $answered; "* ]] || fail "the counter is not $answered"
    [[ $(server_counter) == "$answered" ]] || fail "the server's counter is not $answered"
    ;;
  *)
    echo "usage: $0 REDIS_COUNTER complete|sigterm|sigint"
    exit 2
    ;;
esac
cat "$tmp/example.out"
echo "PASS"
