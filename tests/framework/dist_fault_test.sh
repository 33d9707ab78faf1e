#!/usr/bin/env bash
# Fault paths of a real multi-process job, timed from outside:
#   stall: one rank sleeps far past dist.timeout_s; every rank must be gone within timeout + 10 s,
#          non-zero, with the timed-out collective named.
#   throw: one rank raises an error; every rank must be gone long before the timeout, non-zero,
#          with that error shown.
# usage: dist_fault_test.sh MODE NP PROBE MPIRUN [MPIRUN_FLAGS...]
set -u
mode=$1 np=$2 probe=$3
shift 3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bad_rank=$((np - 1))
start_ns=$(date +%s%N)
if [ "$mode" = stall ]; then
  timeout_s=3
  timeout 120 "$@" -np "$np" "$probe" stall "$timeout_s" "$bad_rank" 100 >"$log" 2>&1
  rc=$?
  bound=$((timeout_s + 10))
  want="all_reduce #2 .* timed out after 3.0 s"
else
  timeout 120 "$@" -np "$np" "$probe" throw 100 "$bad_rank" >"$log" 2>&1
  rc=$?
  bound=20
  want="shard-00003.h5: sample 17: injected failure on rank $bad_rank"
fi
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
cat "$log"
echo "exit code $rc after ${elapsed_ms} ms (bound ${bound} s)"
fail=0
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then echo "FAIL: expected a non-zero exit that is not timeout(1)'s"; fail=1; fi
if [ "$elapsed_ms" -gt $((bound * 1000)) ]; then echo "FAIL: took longer than ${bound} s"; fail=1; fi
if ! grep -Eq "$want" "$log"; then echo "FAIL: the message '$want' is missing"; fail=1; fi
if grep -q "second all_reduce done" "$log"; then echo "FAIL: a rank went on past the failure"; fail=1; fi
exit $fail
