#!/usr/bin/env bash
# facetrain jobs under a real Slurm (slurmctld and one slurmd per emulated host, munge), submitted
# as docs/examples/train.sbatch, which runs scripts/launch.sh --slurm (srun --mpi=pmix):
#   - a good run forms one world across both hosts, trains the reference losses and ends
#     COMPLETED; requeued in the middle (scontrol requeue, as Slurm does after a node failure)
#     it continues from its latest checkpoint with the same losses;
#   - a run whose rank fails ends FAILED, its log holding the rank's message;
#   - a Slurm without the PMIx plugin is refused with a message before any rank starts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start_slurm_test slurm_jobs "sj$$" 2

echo "--- a good run, requeued in the middle"
id=$(submit -- "$CLUSTER_WORK/cluster.toml" "$work/good")
wait_for "step 4/" "$work/job-$id.out" 120
on ctl scontrol requeue "$id"
# Slurm holds a requeued job back for a while before it may start again: release it now.
for i in $(seq 1 20); do
  [ "$(job_field "$id" JobState)" = PENDING ] && break
  sleep 0.5
done
on ctl scontrol update JobId="$id" StartTime=now
jobstate=$(wait_job "$id" 180)
grep -E "launch.sh|placement|resumed|done:" "$work/job-$id.out"
check "the job ended COMPLETED ($jobstate)" [ "$jobstate" = COMPLETED ]
check "it was restarted once" [ "$(job_field "$id" Restarts)" = 1 ]
check "srun formed one world of 4 across both hosts" grep -q \
  "placement: 4 ranks on 2 hosts: ranks 0-1 on node1, ranks 2-3 on node2" "$work/job-$id.out"
check "the requeued script continued its run folder" grep -q \
  "requeued job (SLURM_RESTART_COUNT=1): continuing its run folder" "$work/job-$id.out"
check "and resumed from a checkpoint" grep -q "resumed from .*written at world 4, now 4" \
  "$work/job-$id.out"
check "its losses are the reference's" same_losses "$work/good" "$CLUSTER_WORK/reference" 1e-5

echo "--- a rank fails"
id=$(FACETRAIN_MAX_RESTARTS=0 FACETRAIN_FAULT="throw@3:2" \
  submit -- "$CLUSTER_WORK/cluster.toml" "$work/bad")
jobstate=$(wait_job "$id" 120)
grep -E "injected|launch.sh: the job" "$work/job-$id.out"
check "the job ended FAILED ($jobstate, exit $(job_field "$id" ExitCode))" [ "$jobstate" = FAILED ]
check "its log holds the failing rank's message" grep -q "injected fault on rank 3 at step 2" \
  "$work/job-$id.out"

echo "--- no PMIx plugin"
plugins=$state/plugins-without-pmix
mkdir -p "$plugins"
plugin_dir=$(on ctl scontrol show config | awk -F= '/^PluginDir/ { gsub(/ /, "", $2); print $2 }')
for f in "$plugin_dir"/*.so; do
  case "$(basename "$f")" in mpi_pmix*) ;; *) ln -s "$f" "$plugins/" ;; esac
done
sed "s|^SlurmUser=|PluginDir=$plugins\nSlurmUser=|" "$slurm_conf" >"$state/slurm/nopmix.conf"
SLURM_CONF=$state/slurm/nopmix.conf on node1 "$launch" --slurm -- \
  $(train_args "$work/nopmix") >"$work/nopmix.log" 2>&1
code=$?
cat "$work/nopmix.log"
check "launch.sh --slurm refuses (exit $code) naming the missing PMIx plugin" \
  eval '[ "$code" = 2 ] && grep -q "this Slurm has no PMIx plugin" "$work/nopmix.log"'
check "no rank started" [ ! -e "$work/nopmix" ]
finish
