#!/usr/bin/env bash
# Configures (once) and builds facetrain in $FACETRAIN_BUILD (default ./build) with Ninja, ccache
# and the torch from the set-up's Python environment, and prints how long it took.
# usage: build.sh [--target NAME]... [CMAKE_ARGS...]   (no --target: everything, tests included;
# CMake arguments reconfigure)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
targets=()
while [ $# -gt 0 ] && [ "$1" = --target ]; do
  targets+=(--target "$2")
  shift 2
done
start=$(date +%s)
if [ ! -f "$FACETRAIN_BUILD/build.ninja" ] || [ $# -gt 0 ]; then
  torch_prefix=$("$FACETRAIN_VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S "$FACETRAIN_ROOT" -B "$FACETRAIN_BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    "$@"
fi
cmake --build "$FACETRAIN_BUILD" -j "${FACETRAIN_JOBS:-2}" "${targets[@]}"
secs=$(( $(date +%s) - start ))
echo "build: ${targets[*]:-everything} in $((secs / 60)) min $((secs % 60)) s ($FACETRAIN_BUILD, ${FACETRAIN_JOBS:-2} jobs)"
