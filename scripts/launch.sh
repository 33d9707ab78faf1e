#!/usr/bin/env bash
# Starts `facetrain train` on one host or many, one process per GPU (or N CPU ranks), and
# optionally relaunches it from the latest checkpoint after a failure.
#
#   scripts/launch.sh [-np N] [--hostfile FILE] [--gpus-per-node G] [--slurm] [--max-restarts N]
#                     [--dry-run] -- TRAIN_ARGS...
#
#   -np N             processes in all (default: G x hosts; G = GPUs of this host, or 1)
#   --hostfile FILE   OpenMPI hostfile ("node1 slots=8" per line); G processes per host
#   --gpus-per-node G processes (GPUs) per host
#   --slurm           inside an salloc/sbatch allocation: srun --mpi=pmix instead of mpirun
#   --max-restarts N  when the job fails, relaunch it with --resume auto up to N times
#   --dry-run         print the launch command and exit
# NCCL_*, CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS and FACETRAIN_* are passed to every process.
# FACETRAIN_BIN overrides the binary (default: the build's app/cli/facetrain).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
np="" hostfile="" gpus="" slurm=0 restarts=0 dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    -np|--np) np=$2; shift 2 ;;
    --hostfile) hostfile=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --slurm) slurm=1; shift ;;
    --max-restarts) restarts=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option '$1' (train arguments go after --)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "launch.sh: no training arguments; e.g. -- --config experiments/ms1mv3_r50.toml" >&2; exit 2; }
for n in "$np" "$gpus" "$restarts"; do
  [[ -z "$n" || "$n" =~ ^[0-9]+$ ]] || { echo "launch.sh: '$n' is not a count" >&2; exit 2; }
done
bin=${FACETRAIN_BIN:-${FACETRAIN_BUILD:-$here/../build}/app/cli/facetrain}
[ -x "$bin" ] || { echo "launch.sh: $bin not found; run scripts/build.sh (or set FACETRAIN_BIN)" >&2; exit 2; }
if [ -z "$gpus" ]; then
  gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [ "$gpus" -gt 0 ] || gpus=1
fi
hosts=1
[ -n "$hostfile" ] && hosts=$(grep -cvE '^\s*(#|$)' "$hostfile")
[ "$slurm" = 1 ] && [ -n "${SLURM_NNODES:-}" ] && hosts=$SLURM_NNODES
[ -n "$np" ] || np=$((gpus * hosts))

pass=()
for v in $(env | cut -d= -f1 | grep -E '^(NCCL_|FACETRAIN_|CUDA_VISIBLE_DEVICES$|OMP_NUM_THREADS$)' || true); do
  pass+=(-x "$v")
done
if [ "$slurm" = 1 ]; then
  cmd=(srun --mpi=pmix --ntasks="$np" --ntasks-per-node="$gpus" --export=ALL "$bin" train)
  [ "$gpus" -gt 0 ] && command -v nvidia-smi >/dev/null && cmd=(srun --mpi=pmix --ntasks="$np" --ntasks-per-node="$gpus" --gpus-per-task=1 --export=ALL "$bin" train)
else
  cmd=(mpirun -np "$np" --bind-to none "${pass[@]}")
  # One process per GPU on each host; more processes than that (CPU ranks) share the cores.
  if [ "$np" -gt "$((gpus * hosts))" ]; then cmd+=(--oversubscribe); else cmd+=(--map-by "ppr:$gpus:node"); fi
  [ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
  [ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
  cmd+=("$bin" train)
fi

attempt=0
resume=()
while :; do
  echo "launch.sh: ${cmd[*]} $* ${resume[*]}" >&2
  [ "$dry" = 1 ] && exit 0
  set +e
  "${cmd[@]}" "$@" "${resume[@]}"
  code=$?
  set -e
  [ "$code" = 0 ] && exit 0
  if [ "$attempt" -ge "$restarts" ]; then
    echo "launch.sh: the job failed with exit code $code$([ "$restarts" -gt 0 ] && echo " after $attempt restart(s)")" >&2
    exit "$code"
  fi
  # A configuration error will not fix itself.
  [ "$code" = 2 ] && { echo "launch.sh: usage or configuration error (exit 2); not restarting" >&2; exit 2; }
  attempt=$((attempt + 1))
  echo "launch.sh: the job failed with exit code $code; restart $attempt of $restarts from the latest checkpoint" >&2
  # Continue from the latest checkpoint of the run folder, whatever --resume said at first.
  args=()
  skip=0
  for a in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case "$a" in
      --resume) skip=1 ;;
      --resume=*) ;;
      *) args+=("$a") ;;
    esac
  done
  set -- "${args[@]}"
  resume=(--resume auto)
done
