#!/bin/sh
# Smoke tests for the supervisor example, run by ctest.
#   supervisor_smoke.sh SUPERVISOR restarts   a worker that always fails is restarted 3 times
#   supervisor_smoke.sh SUPERVISOR signal     SIGTERM stops the supervisor and its worker
set -u
supervisor=$1

fail() {
  echo "FAIL: $1"
  echo "--- supervisor output ---"
  echo "$out"
  exit 1
}

case $2 in
  restarts)
    out=$("$supervisor" --restarts 3 --backoff 0.01 --worker 'exit 3') || fail "exit status $?"
    [ "$(echo "$out" | grep -c 'started worker')" -eq 4 ] || fail "expected 4 worker runs"
    [ "$(echo "$out" | grep -c 'exited with status 3')" -eq 4 ] || fail "expected 4 exits"
    echo "$out" | grep -q 'restart 3 of 3' || fail "no third restart"
    echo "$out" | grep -q 'gave up after 3 restarts' || fail "did not give up after 3"
    ;;
  signal)
    # The worker itself sends SIGTERM to the supervisor ($PPID), then waits to be terminated.
    out=$("$supervisor" --restarts 5 --worker 'kill -TERM $PPID; exec sleep 60') ||
      fail "exit status $?"
    echo "$out" | grep -q 'stopping on signal 15 after 0 restarts' || fail "no stop on SIGTERM"
    echo "$out" | grep -q 'was killed by signal 15' || fail "worker was not terminated"
    [ "$(echo "$out" | grep -c 'started worker')" -eq 1 ] || fail "restarted while stopping"
    ;;
  *)
    echo "usage: $0 SUPERVISOR restarts|signal"
    exit 2
    ;;
esac
echo "$out"
echo "PASS"
