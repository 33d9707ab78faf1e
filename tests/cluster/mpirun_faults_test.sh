#!/usr/bin/env bash
# A host lost in the middle of a run under mpirun, on two emulated hosts:
#   - partition (node2's link down) under scripts/launch.sh --max-restarts 1: every process of
#     the job on both hosts, mpirun included, is gone within dist.timeout_s + 10 s, the log names
#     the host and its ranks, and the job is relaunched on node1 alone (world 4 -> 2) from the
#     last checkpoint and finishes;
#   - under plain mpirun with OpenMPI's default keepalive: a partition, a host's death (kill -9
#     of all its processes) and a stalled host (SIGSTOP) each end every process on the hosts
#     that still run within dist.timeout_s + 10 s, non-zero; the stalled host's own processes
#     end once it runs again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
work=$CLUSTER_WORK/mpirun_faults
rm -rf "$work" && mkdir -p "$work"
start_cluster "mf$$" 2
export FACETRAIN_IFNAME=eth0

echo "--- partition under launch.sh, relaunch on the host that remains"
timeout_s=8
hostfile "$state/hosts" 2 node1 node2
log=$work/relaunch.log
on node1 timeout 300 "$launch" --hostfile "$state/hosts" --gpus-per-node 2 --max-restarts 1 -- \
  $(train_args "$work/relaunch" --set train.num_epoch=3 --set dist.timeout_s=$timeout_s) \
  >"$log" 2>&1 &
job=$!
wait_for "step 3/" "$log" 120
"$cluster" cut "$name" node2
t0=$(now)
wait_for "the job ended with exit code" "$log" 60
took=$(elapsed "$t0" "$(now)")
left=$(job_procs)
check "the first launch ended ${took} s after the cut (bound $((timeout_s + 10)) s)" \
  within "$took" $((timeout_s + 10))
check "no process of it is left on either host" [ -z "$left" ]
wait "$job"
code=$?
"$cluster" heal "$name" node2
grep -E "launch.sh|Remote daemon|no answer|resumed" "$log"
check "the log names the lost host" grep -qE "on node node2$|ranks 2-3 on node2" "$log"
check "launch.sh drops node2 and its ranks" \
  grep -q "dropping host node2 (ranks 2-3 of the failed launch): it does not answer" "$log"
check "the relaunch resumed at world 2 and finished" \
  eval '[ "$code" = 0 ] && grep -q "written at world 4, now 2" "$log"'

# Plain mpirun, 2 hosts x 1 rank, OpenMPI's default out-of-band keepalive (8 minutes).
timeout_s=6
hostfile "$state/hosts1" 1 node1 node2
fault() {
  local kind=$1
  log=$work/$kind.log
  on node1 timeout 120 mpirun -np 2 --map-by ppr:1:node --hostfile "$state/hosts1" \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 \
    "$FACETRAIN_BIN" train $(train_args "$work/$kind" --set train.num_epoch=50 \
    --set dist.timeout_s=$timeout_s) >"$log" 2>&1 &
  job=$!
  if ! wait_for "step 3/" "$log" 120; then
    check "$kind: the job started" false
    kill "$job"
    return
  fi
  case $kind in
    partition) "$cluster" cut "$name" node2 ;;
    death) "$cluster" signal "$name" node2 KILL ;;
    stall) "$cluster" signal "$name" node2 STOP ;;
  esac
  t0=$(now)
  if [ "$kind" = stall ]; then took=$(wait_gone "$t0" 30 node1); else took=$(wait_gone "$t0" 30); fi
  wait "$job"
  code=$?
  grep -E " E |ORTE has lost|Remote daemon" "$log" | head -4
  check "$kind: every process gone ${took} s after it (bound $((timeout_s + 10)) s)" \
    within "${took/never/1e9}" $((timeout_s + 10))
  check "$kind: mpirun exits non-zero ($code)" eval '[ "$code" != 0 ] && [ "$code" != 124 ]'
}
echo "--- partition under plain mpirun"
fault partition
check "partition: rank 0 names rank 1 on node2 as silent" \
  grep -q "no answer within .* from rank 1 on node2" "$work/partition.log"
"$cluster" heal "$name" node2
echo "--- host death under plain mpirun"
fault death
echo "--- stalled host under plain mpirun"
fault stall
check "stall: rank 0 names rank 1 on node2 as silent" \
  grep -q "no answer within .* from rank 1 on node2" "$work/stall.log"
"$cluster" signal "$name" node2 CONT
t0=$(now)
took=$(wait_gone "$t0" 15 node2)
check "stall: once resumed, node2's processes end too (${took} s)" within "${took/never/1e9}" 15
finish
