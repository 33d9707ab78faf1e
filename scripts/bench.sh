#!/usr/bin/env bash
# Builds and runs the benchmarks; each prints its figures and ratios against a baseline measured
# in the same run. usage: scripts/bench.sh [backbone|loader|export] [ARGS...]
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/setup.sh" >/dev/null
bash "$here/build.sh" >/dev/null
source "$here/env.sh"
which=${1:-all}
[ $# -gt 0 ] && shift
if [ "$which" = all ] || [ "$which" = backbone ]; then
  echo "== backbones: CPU forward+backward"
  "$FACETRAIN_BUILD/tests/bench/backbone_bench" "$@"
fi
if [ "$which" = all ] || [ "$which" = loader ]; then
  echo "== loader: pipeline against raw libjpeg-turbo decoding of the same bytes"
  "$FACETRAIN_BUILD/tests/bench/loader_bench" "$@"
fi
if [ "$which" = all ] || [ "$which" = export ]; then
  echo "== export: onnxruntime and TorchScript inference against LibTorch on CPU"
  "$FACETRAIN_BUILD/tests/bench/export_bench" "$@"
fi
