#!/usr/bin/env bash
# Failures inside a Slurm allocation of two emulated hosts, docs/examples/train.sbatch running
# scripts/launch.sh --slurm --max-restarts:
#   - a rank killed in the middle: the job is relaunched inside the allocation on both hosts
#     from its latest checkpoint and ends COMPLETED with the reference's losses;
#   - node2 cut off: every facetrain process and srun end within dist.timeout_s + 10 s (Slurm's
#     own daemon on the cut host excepted: it waits for the network), the log names the silent
#     ranks and their host, and the job goes on on node1 alone and ends COMPLETED.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_slurm_test slurm_faults "sf$$" 2

echo "--- a rank killed, relaunched inside the allocation"
id=$(FACETRAIN_FAULT="kill@3:5" FACETRAIN_FAULT_ONCE=$work/fired \
  submit -- "$CLUSTER_WORK/cluster.toml" "$work/killed")
jobstate=$(wait_job "$id" 180)
grep -E "launch.sh|resumed" "$work/job-$id.out"
check "the job ended COMPLETED ($jobstate)" [ "$jobstate" = COMPLETED ]
check "launch.sh relaunched it once on both hosts" grep -q \
  "restart 1 of 3 from the latest checkpoint on 2 host(s), 4 rank(s)" "$work/job-$id.out"
check "its losses are the reference's" same_losses "$work/killed" "$CLUSTER_WORK/reference" 1e-5

echo "--- node2 cut off"
timeout_s=8
id=$(submit -- "$CLUSTER_WORK/cluster.toml" "$work/cut" --set train.num_epoch=3 \
  --set dist.timeout_s=$timeout_s)
wait_for "step 3/" "$work/job-$id.out" 120
"$cluster" cut "$name" node2
t0=$(now)
wait_for "the job ended with exit code" "$work/job-$id.out" 60
took=$(elapsed "$t0" "$(now)")
left=$(job_procs node1)
check "the step ended ${took} s after the cut (bound $((timeout_s + 10)) s)" \
  within "$took" $((timeout_s + 10))
check "then no facetrain process or srun of it was left on node1" [ -z "$left" ]
took=$(wait_gone "$t0" $((timeout_s + 10)) node2)
check "the cut-off ranks on node2 ended by themselves ${took} s after the cut" \
  within "${took/never/1e9}" $((timeout_s + 10))
jobstate=$(wait_job "$id" 180)
"$cluster" heal "$name" node2
grep -E "launch.sh|no answer|resumed" "$work/job-$id.out"
check "a rank on node1 names the silent ranks and their host" \
  grep -q "no answer within .* from ranks 2-3 on node2" "$work/job-$id.out"
check "launch.sh drops node2" grep -q "dropping host node2 (ranks 2-3 of the failed launch)" \
  "$work/job-$id.out"
check "the job went on at world 2 and ended COMPLETED ($jobstate)" \
  eval '[ "$jobstate" = COMPLETED ] && grep -q "written at world 4, now 2" "$work/job-$id.out"'
finish
