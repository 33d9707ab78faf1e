# Shared by the emulated-cluster tests (sourced). Expects FACETRAIN_BIN, FACETRAIN_SOURCE_DIR,
# FACETRAIN_PYTHON and CLUSTER_WORK (the folder the reference run filled: train/, cluster.toml,
# reference/).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cluster=$here/cluster.sh
launch=$FACETRAIN_SOURCE_DIR/scripts/launch.sh
failures=0

check() {
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
finish() {
  [ "$failures" = 0 ] && echo "all checks passed" || echo "$failures check(s) failed"
  exit $((failures > 0))
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
within() { awk -v t="$1" -v b="$2" 'BEGIN { exit !(t <= b) }'; }

# Makes cluster NAME with N nodes (more arguments go to cluster.sh up) and removes it when the
# test ends, however it ends. A machine that cannot make one skips the test (exit 77).
start_cluster() {
  name=$1
  local reason
  reason=$("$cluster" check) || { echo "skipped: $reason"; exit 77; }
  trap 'end_cluster' EXIT
  "$cluster" up "$@" || { echo "FAIL: cluster $name did not start"; exit 1; }
  state=$("$cluster" state-dir "$name")
  export OMPI_MCA_plm_rsh_agent=$("$cluster" rsh-agent "$name")
  # Shared memory within a host; OpenMPI must be told to use the 127.x interface.
  export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export FACETRAIN_BIN FACETRAIN_ROOT=$FACETRAIN_SOURCE_DIR
}
end_cluster() {
  local rc=$?
  [ -n "${slurm_conf:-}" ] && cp "$state/slurm/slurmctld.log" "$work/slurmctld.log" 2>/dev/null
  "$cluster" down "$name"
  exit "$rc"
}
on() {
  local host=$1
  shift
  "$cluster" exec "$name" "$host" "$@"
}
hostfile() {  # hostfile PATH PER_HOST HOST...
  local path=$1 slots=$2 h
  shift 2
  : >"$path"
  for h in "$@"; do echo "$h slots=$slots" >>"$path"; done
}

# The job's processes on HOSTS (default: all nodes): facetrain ranks, mpirun, orted, and the
# srun that started facetrain (not launch.sh's one-task probes).
job_procs() {
  local p comm
  for p in $("$cluster" procs "$name" "$@"); do
    comm=$(cat "/proc/$p/comm" 2>/dev/null)
    case "$comm" in
      facetrain | mpirun | orted) echo "$p $comm" ;;
      srun) tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q facetrain && echo "$p $comm" ;;
    esac
  done
  return 0
}
# Waits up to SECONDS for the job's processes on HOSTS to be gone; prints the seconds it took
# (from T0) or "never".
wait_gone() {
  local t0=$1 seconds=$2
  shift 2
  local end
  end=$(awk -v a="$(now)" -v s="$seconds" 'BEGIN { printf "%.3f", a + s }')
  while within "$(now)" "$end"; do
    if [ -z "$(job_procs "$@")" ]; then elapsed "$t0" "$(now)"; return 0; fi
    sleep 0.2
  done
  echo never
  job_procs "$@" >&2
  return 1
}
# Waits up to SECONDS for PATTERN (grep -E) in FILE.
wait_for() {
  local pattern=$1 file=$2 seconds=$3 i
  for ((i = 0; i < seconds * 5; ++i)); do
    grep -qE "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "did not see '$pattern' in $file within $seconds s" >&2
  return 1
}

# The recipe of the cluster runs, with a run folder and overrides.
train_args() {
  local run=$1
  shift
  echo --config "$CLUSTER_WORK/cluster.toml" --output "$run" "$@"
}

# Compares the per-step losses of two runs (metrics.jsonl): steps FROM..TO of RUN against the
# reference, relative tolerance TOL.
same_losses() {
  "$FACETRAIN_PYTHON" - "$1" "$2" "$3" <<'EOF'
import json, sys
def losses(run):
    out = {}
    for line in open(run + "/metrics.jsonl"):
        j = json.loads(line)
        if "loss" in j:
            out[j["step"]] = j["loss"]
    return out
run, ref, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
steps = sorted(ref)
missing = [s for s in steps if s not in run]
worst = max(abs(run[s] - ref[s]) / abs(ref[s]) for s in steps if s in run)
print(f"{len(steps)} steps, worst relative difference {worst:.2e}, missing {missing}")
sys.exit(0 if not missing and worst <= tol else 1)
EOF
}

# --- Slurm -------------------------------------------------------------------------------------
# A Slurm test: its folder $work (emptied), cluster NAME of N nodes with Slurm on it, the job's
# traffic on eth0.
start_slurm_test() {
  local test=$1 cluster_name=$2 nodes=$3
  work=$CLUSTER_WORK/$test
  rm -rf "$work" && mkdir -p "$work"
  command -v slurmctld >/dev/null ||
    { echo "FAIL: Slurm is not installed (scripts/setup.sh --tests installs it)"; exit 1; }
  start_cluster "$cluster_name" "$nodes"
  "$cluster" slurm-up "$name" || { echo "FAIL: Slurm did not start"; exit 1; }
  slurm_conf=$state/slurm/slurm.conf
  export SLURM_CONF=$slurm_conf FACETRAIN_IFNAME=eth0
}
# Submits docs/examples/train.sbatch (2 tasks per node, its log in $work/job-ID.out) with more
# sbatch options before "--" and train arguments after it; prints the job id.
submit() {
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  # Without FACETRAIN_ROOT: the script finds its checkout from where it was submitted from.
  on node1 env -u FACETRAIN_ROOT sbatch --parsable --ntasks-per-node=2 \
    --output="$work/job-%j.out" "${opts[@]}" "$FACETRAIN_SOURCE_DIR/docs/examples/train.sbatch" "$@"
}
job_field() { on ctl scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# Waits up to SECONDS for job ID to leave the queue; prints its final state.
wait_job() {
  local id=$1 seconds=$2 i
  for ((i = 0; i < seconds * 2; ++i)); do
    [ -z "$(on ctl squeue -h -j "$id" -o %T 2>/dev/null)" ] && break
    sleep 0.5
  done
  job_field "$id" JobState
}
