#!/usr/bin/env bash
# Training throughput of `facetrain train` against the same training step in plain PyTorch
# (tests/bench/pytorch_train_step.py: DDP over gloo, the same backbone definition, margin head
# and distributed softmax, on the venv's torch), measured in the same run on the same synthetic
# faces and global batch, with facetrain's step split into data wait, backbone forward, Partial
# FC forward, backward, gradient all-reduce wait and optimizer.
#   CPU (default): mbf at 1 rank x 2 threads, 2 ranks x 1 thread and 1 rank x 1 thread; prints
#                  facetrain / PyTorch for each. facetrain runs with its default thread plan
#                  (no OMP_NUM_THREADS) wherever that is the layout's; train.cpu_threads otherwise.
#   --gpu:         iresnet50 and mbf, bf16, one rank on the GPU, against PyTorch on the GPU.
# usage: train_bench.sh [--gpu] [--steps N] [--layouts 1x2,2x1,1x1] [--rounds N]
#        (FACETRAIN_BIN, FACETRAIN_MPIRUN, FACETRAIN_PYTHON may be set)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${FACETRAIN_BIN:-${FACETRAIN_BUILD:-$here/build}/app/cli/facetrain}
python=${FACETRAIN_PYTHON:-${FACETRAIN_VENV:-/opt/facetrain/venv}/bin/python}
mpirun=${FACETRAIN_MPIRUN:-mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none}
gpu=0 steps=12 layouts=1x2,2x1,1x1 rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu) gpu=1; shift ;;
    --steps) steps=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: train_bench.sh [--gpu] [--steps N] [--layouts 1x2,2x1,1x1] [--rounds N]" >&2; exit 2 ;;
  esac
done
cores=$(nproc)
work=${FACETRAIN_BENCH_DIR:-$(mktemp -d /tmp/facetrain-train-bench.XXXXXX)}
mkdir -p "$work"
if [ ! -f "$work/data/manifest.json" ]; then
  "$bin" data synth --identities 200 --per-identity 8 --out "$work/data" --seed 5 >/dev/null 2>&1
fi

# run NAME NP THREADS NETWORK BATCH_PER_RANK [SET...]: trains `steps` steps + 2 warm-up steps,
# prints img/s over the steps after the warm-up and the per-step phase times of rank 0.
run() {
  local name=$1 np=$2 threads=$3 network=$4 batch=$5; shift 5
  local out="$work/$name"
  rm -rf "$out"
  local total=$((steps + 2))
  local images=$((total * batch * np))
  local epochs=$(( (images + 1599) / 1600 ))
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
  # The default plan (the host's cores shared by its ranks) unless the layout asks for fewer.
  [ "$gpu" = 1 ] || [ "$threads" = $(( cores / np > 0 ? cores / np : 1 )) ] ||
    sets+=(--set "train.cpu_threads=$threads")
  for s in "$@"; do sets+=(--set "$s"); done
  # Stop after `total` steps: the run is killed once its metrics show them (no checkpoint needed).
  # One rank runs as a user would on a laptop, without a launcher (mpirun binds a lone process
  # to one core); several under mpirun, one core each.
  local launch=()
  [ "$np" = 1 ] || launch=($mpirun -np "$np")
  env -u OMP_NUM_THREADS "${launch[@]}" "$bin" train --config "$work/$name.toml" \
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
# Images over time (the harmonic mean of the per-step rates: every step has the same images).
ips = len(rows[2:]) / sum(1 / r["images_per_second"] for r in rows[2:])
print(f"{name:<22} {np_:>2} x {threads} thr  batch {np_ * batch:>4}  {ips:8.1f} img/s  step {step_ms:7.1f} ms = "
      + "  ".join(f"{k[5:]} {v:.1f}" for k, v in dt.items()))
with open(path + ".ips", "w") as f:
    f.write(f"{ips}\n")
with open(path.rsplit("/", 2)[0] + "/facetrain.ips", "a") as f:
    f.write(f"{ips}\n")
PY
}

# baseline NP THREADS NETWORK BATCH_PER_RANK [ARGS...]: the PyTorch step; prints its line and
# leaves its img/s in $work/baseline.ips.
baseline() {
  local np=$1 threads=$2 network=$3 batch=$4; shift 4
  local line
  line=$(env -u OMP_NUM_THREADS "$python" "$here/tests/bench/pytorch_train_step.py" --data "$work/data" \
    --world "$np" --threads "$threads" --network "$network" --batch "$batch" --steps "$steps" "$@")
  echo "$line" | awk '{ printf "%-22s %2s x %s thr  %s\n", "pytorch (same step)", $2, $4, substr($0, index($0, "img/s")) }'
  echo "$line" | awk '{ print $6 }' >> "$work/baseline.ips"
}

# compare LABEL RUN_ARGS... -- BASELINE_ARGS...: `rounds` alternating runs of each side, then
# facetrain / PyTorch from the medians (this machine's run-to-run noise is ±10-20 %).
compare() {
  local label=$1; shift
  local mine=() theirs=()
  while [ "$1" != -- ]; do mine+=("$1"); shift; done
  shift
  theirs=("$@")
  rm -f "$work/facetrain.ips" "$work/baseline.ips"
  for ((round = 0; round < rounds; round++)); do
    run "${mine[@]}"
    baseline "${theirs[@]}"
  done
  python3 -c "import statistics as s, sys; a = s.median(map(float, open(sys.argv[1]))); b = s.median(map(float, open(sys.argv[2]))); print(f'{sys.argv[3]:<22} facetrain / pytorch = {a / b:.2f}  (medians of {sys.argv[4]} run(s): {a:.2f} / {b:.2f} img/s)')" \
    "$work/facetrain.ips" "$work/baseline.ips" "$label" "$rounds"
}

if [ "$gpu" = 1 ]; then
  echo "== training throughput on the GPU (bf16), $steps steps after 2 warm-up steps"
  for spec in iresnet50:128 mbf:256; do
    network=${spec%%:*} batch=${spec##*:}
    compare "gpu_$network" "gpu_$network" 1 8 "$network" "$batch" train.amp=bf16 -- \
      1 8 "$network" "$batch" --device cuda --amp bf16
  done
else
  echo "== CPU training throughput, mbf, 200 classes, global batch 32, $steps steps after 2 warm-up"
  echo "   steps ($cores cores; ms per step on rank 0; comm = waiting for the gradient all-reduce)"
  for layout in ${layouts//,/ }; do
    np=${layout%%x*} threads=${layout##*x}
    compare "cpu_${np}x${threads}" "cpu_${np}x${threads}" "$np" "$threads" mbf $((32 / np)) -- \
      "$np" "$threads" mbf $((32 / np))
  done
fi
echo "runs and logs: $work"
