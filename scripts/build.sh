#!/usr/bin/env bash
# Configures (once) and builds facetrain in $FACETRAIN_BUILD (default ./build) with Ninja, ccache
# and the torch from the set-up's Python environment. Extra arguments go to CMake's configure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
if [ ! -f "$FACETRAIN_BUILD/build.ninja" ] || [ $# -gt 0 ]; then
  torch_prefix=$("$FACETRAIN_VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S "$FACETRAIN_ROOT" -B "$FACETRAIN_BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    "$@"
fi
cmake --build "$FACETRAIN_BUILD" -j "${FACETRAIN_JOBS:-2}"
