#!/usr/bin/env bash
# Training throughput of facetrain train on synthetic faces, with the step-time breakdown from
# the run's metrics (data wait, backbone forward, Partial FC forward, backward, gradient
# all-reduce wait, optimizer), for several layouts measured in the same run.
#   CPU (default): mbf at 1 rank x 2 threads and 2 ranks x 1 thread, and the scaling efficiency
#                  (img/s at 2 x 1) / (img/s at 1 x 2).
#   --gpu:         iresnet50 and mbf, bf16, one rank on the GPU.
# usage: train_bench.sh [--gpu] [--steps N]   (FACETRAIN_BIN, FACETRAIN_MPIRUN may be set)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${FACETRAIN_BIN:-${FACETRAIN_BUILD:-$here/build}/framework/cli/facetrain}
mpirun=${FACETRAIN_MPIRUN:-mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none}
gpu=0 steps=12
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1; shift ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "usage: train_bench.sh [--gpu] [--steps N]" >&2; exit 2 ;;
  esac
done
work=${FACETRAIN_BENCH_DIR:-$(mktemp -d /tmp/facetrain-train-bench.XXXXXX)}
mkdir -p "$work"
if [ ! -f "$work/data/manifest.json" ]; then
  "$bin" data synth --identities 64 --per-identity 16 --out "$work/data" --seed 5 >/dev/null 2>&1
fi

# run NAME NP THREADS NETWORK BATCH_PER_RANK [SET...]: trains `steps` steps + 2 warm-up steps,
# prints img/s over the steps after the warm-up and the per-step phase times of rank 0.
run() {
  local name=$1 np=$2 threads=$3 network=$4 batch=$5; shift 5
  local out="$work/$name"
  rm -rf "$out"
  local total=$((steps + 2))
  local images=$((total * batch * np))
  local epochs=$(( (images + 1023) / 1024 ))
  cat > "$work/$name.toml" <<TOML
[model]
network = "$network"
[data]
path = "$work/data"
num_workers = 1
[optim]
warmup_epoch = 0
[train]
batch_size = $batch
num_epoch = $epochs
frequent = 1
verbose = 1000000
checkpoint_every = 1000000
output = "$out"
[eval]
val_targets = []
[log]
tensorboard = false
TOML
  local sets=(--set "train.device=$([ $gpu = 1 ] && echo cuda || echo cpu)")
  for s in "$@"; do sets+=(--set "$s"); done
  # Stop after `total` steps: the run is killed once its metrics show them (no checkpoint needed).
  $mpirun -np "$np" -x OMP_NUM_THREADS="$threads" "$bin" train --config "$work/$name.toml" \
    "${sets[@]}" > "$out.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -f "$out/metrics.jsonl" ] && [ "$(wc -l < "$out/metrics.jsonl")" -ge "$total" ]; then
      kill "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  wait "$pid" 2>/dev/null || true
  python3 - "$out/metrics.jsonl" "$name" "$np" "$threads" "$batch" <<'PY'
import json, sys
path, name, np_, threads, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(path) if '"loss"' in l]
warm, last = rows[1], rows[-1]
n = last["step"] - warm["step"]
dt = {k: (last[k] - warm[k]) / n * 1e3 for k in ("time_data", "time_forward", "time_fc", "time_backward", "time_comm", "time_optimizer")}
step_ms = sum(dt.values())
ips = sum(r["images_per_second"] for r in rows[2:]) / len(rows[2:])
print(f"{name:<22} {np_:>2} x {threads} thr  batch {np_ * batch:>4}  {ips:8.1f} img/s  step {step_ms:7.1f} ms = "
      + "  ".join(f"{k[5:]} {v:.1f}" for k, v in dt.items()))
with open(path + ".ips", "w") as f:
    f.write(f"{ips}\n")
PY
}

if [ "$gpu" = 1 ]; then
  echo "== training throughput on the GPU (bf16), $steps steps after 2 warm-up steps"
  run gpu_iresnet50 1 8 iresnet50 128 train.amp=bf16
  run gpu_mbf 1 8 mbf 256 train.amp=bf16
else
  echo "== CPU training throughput, mbf, global batch 32, $steps steps after 2 warm-up steps"
  echo "   (ms per step on rank 0; comm = waiting for the gradient all-reduce after backward)"
  run cpu_1rank_2threads 1 2 mbf 32
  run cpu_2ranks_1thread 2 1 mbf 16
  a=$(cat "$work/cpu_1rank_2threads/metrics.jsonl.ips") b=$(cat "$work/cpu_2ranks_1thread/metrics.jsonl.ips")
  python3 -c "print(f'scaling efficiency (2 ranks x 1 thread) / (1 rank x 2 threads) = {$b / $a:.3f}')"
fi
echo "runs and logs: $work"
