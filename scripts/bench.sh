#!/usr/bin/env bash
# Builds and runs the benchmarks; each prints its figures and ratios against a baseline measured
# in the same run. usage: scripts/bench.sh [backbone|loader|fc|allreduce|hosts|eval|ijb|export|train] [ARGS...]
# hosts: the all-reduce across two emulated hosts (tests/cluster/cluster.sh, needs root) against
# the same on one host; not part of "all".
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
which=${1:-all}
[ $# -gt 0 ] && shift
# The benchmarks are not in the default build: build the ones this run needs, and the executable.
case "$which" in
  all) targets=(backbone_bench loader_bench partial_fc_bench eval_bench ijb_bench export_bench facetrain) ;;
  fc | allreduce | hosts) targets=(partial_fc_bench) ;;
  train) targets=(facetrain) ;;
  *) targets=("${which}_bench" facetrain) ;;
esac
bash "$here/setup.sh" >/dev/null
bash "$here/build.sh" $(printf -- '--target %s ' "${targets[@]}") >/dev/null
source "$here/env.sh"
if [ "$which" = all ] || [ "$which" = backbone ]; then
  echo "== backbones: CPU forward+backward"
  "$FACETRAIN_BUILD/tests/bench/backbone_bench" "$@"
fi
if [ "$which" = all ] || [ "$which" = loader ]; then
  echo "== loader: pipeline against raw libjpeg-turbo decoding of the same bytes"
  "$FACETRAIN_BUILD/tests/bench/loader_bench" "$@"
fi
mpirun_local="mpirun --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo
  --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none"
if [ "$which" = all ] || [ "$which" = fc ]; then
  echo "== Partial FC: step time and memory per rank (world 1: 2 threads; world 2: 1 thread/rank)"
  echo "   one process per case, so the RSS figures are not blurred by memory freed by an earlier case"
  for np in 1 2; do
    header=1
    for classes in 10000 100000 1000000; do
      steps=3; [ "$classes" = 1000000 ] && steps=1
      for rate in 1.0 0.1; do
        $mpirun_local -np $np -x OMP_NUM_THREADS=$((2 / np)) "$FACETRAIN_BUILD/tests/bench/partial_fc_bench" \
          fc --classes $classes --rates $rate --steps $steps --header $header "$@"
        header=0
      done
    done
  done
fi
if [ "$which" = all ] || [ "$which" = allreduce ]; then
  echo "== gradient all-reduce: buckets against one raw MPI_Allreduce, world 2"
  $mpirun_local -np 2 -x OMP_NUM_THREADS=1 "$FACETRAIN_BUILD/tests/bench/partial_fc_bench" allreduce "$@"
fi
if [ "$which" = hosts ]; then
  echo "== gradient all-reduce across 2 emulated hosts (1 rank each, TCP over veth and a bridge)"
  echo "   against 2 ranks on one host (shared memory, then TCP on loopback)"
  cluster=$FACETRAIN_ROOT/tests/cluster/cluster.sh
  reason=$("$cluster" check) || { echo "   skipped: $reason"; exit 0; }
  name=bench$$
  trap '"$cluster" down "$name"' EXIT
  "$cluster" up "$name" 2
  state=$("$cluster" state-dir "$name")
  printf 'node1 slots=1\nnode2 slots=1\n' >"$state/hosts"
  run_case() {  # label, then the command
    local label=$1 out
    shift
    out=$("$@" "$FACETRAIN_BUILD/tests/bench/partial_fc_bench" allreduce "${bench_args[@]}")
    raw=$(sed -n 's/^raw MPI_Allreduce (one buffer): *\([0-9.]*\) ms.*/\1/p' <<<"$out")
    buckets=$(sed -n 's/^GradientReducer (buckets): *\([0-9.]*\) ms.*/\1/p' <<<"$out")
    grep -q "sums correct" <<<"$out" || { echo "$out"; echo "   $label: WRONG sums"; exit 1; }
    printf '   %-34s raw MPI_Allreduce %8.1f ms   buckets %8.1f ms   raw/buckets %.3f\n' \
      "$label" "$raw" "$buckets" "$(awk -v a="$raw" -v b="$buckets" 'BEGIN { print a / b }')"
  }
  bench_args=("$@")
  run_case "one host, shared memory" $mpirun_local -np 2 -x OMP_NUM_THREADS=1
  one_raw=$raw one_buckets=$buckets
  run_case "one host, TCP on loopback" mpirun --oversubscribe --mca btl self,tcp \
    --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo -np 2 -x OMP_NUM_THREADS=1
  tcp_raw=$raw tcp_buckets=$buckets
  run_case "two hosts, TCP across the bridge" "$cluster" exec "$name" node1 env \
    OMPI_MCA_plm_rsh_agent="$("$cluster" rsh-agent "$name")" mpirun -np 2 \
    --hostfile "$state/hosts" --map-by ppr:1:node --mca btl self,tcp \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 -x OMP_NUM_THREADS=1
  awk -v r="$raw" -v b="$buckets" -v r1="$one_raw" -v b1="$one_buckets" -v rt="$tcp_raw" \
    -v bt="$tcp_buckets" 'BEGIN {
      printf "   two hosts / one host (shared memory): raw %.2fx, buckets %.2fx the time\n", r / r1, b / b1
      printf "   two hosts / one host (TCP loopback):  raw %.2fx, buckets %.2fx the time\n", r / rt, b / bt }'
fi
if [ "$which" = all ] || [ "$which" = eval ]; then
  echo "== eval: verification metrics against one sort and insightface's threshold scan"
  "$FACETRAIN_BUILD/tests/bench/eval_bench" "$@"
fi
if [ "$which" = all ] || [ "$which" = ijb ]; then
  echo "== IJB-C at full size (random features): templates, 15.6M pair scores and the ROC against one sort"
  "$FACETRAIN_BUILD/tests/bench/ijb_bench" "$@"
  echo "== IJB embedding throughput (align + image and mirror through an untrained mbf), 1 and 2 ranks"
  work=$(mktemp -d)
  "$FACETRAIN_BUILD/tests/bench/ijb_bench" --write-weights "$work/mbf.pt"
  "$FACETRAIN_BUILD/app/cli/facetrain" data synth-ijb --out "$work/ijb" --identities 50 \
    --templates 3 --media 2 --images 2 --impostors 4 >/dev/null
  for np in 1 2; do
    $mpirun_local -np $np "$FACETRAIN_BUILD/app/cli/facetrain" eval --weights "$work/mbf.pt" \
      --network mbf --ijb "$work/ijb" --out "$work/np$np.json" >/dev/null 2>&1
    "$FACETRAIN_VENV/bin/python" -c "import json,sys; r=json.load(open(sys.argv[1]))['ijb']; \
print(f'  {sys.argv[2]} rank(s): {r[\"images\"]} images in {r[\"embed_seconds\"]:.1f} s, {r[\"images_per_second\"]:.1f} img/s')" \
      "$work/np$np.json" "$np"
  done
  rm -rf "$work"
fi
if [ "$which" = all ] || [ "$which" = export ]; then
  echo "== export: onnxruntime and TorchScript inference against LibTorch on CPU"
  "$FACETRAIN_BUILD/tests/bench/export_bench" "$@"
fi
if [ "$which" = all ] || [ "$which" = train ]; then
  bash "$FACETRAIN_ROOT/tests/bench/train_bench.sh" "$@"
fi
