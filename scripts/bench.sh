#!/usr/bin/env bash
# Builds and runs the benchmarks; each prints its figures and ratios against a baseline measured
# in the same run. usage: scripts/bench.sh [backbone|loader|fc|allreduce|eval|ijb|export|train] [ARGS...]
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
which=${1:-all}
[ $# -gt 0 ] && shift
# The benchmarks are not in the default build: build the ones this run needs, and the executable.
case "$which" in
  all) targets=(backbone_bench loader_bench partial_fc_bench eval_bench ijb_bench export_bench facetrain) ;;
  fc | allreduce) targets=(partial_fc_bench) ;;
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
