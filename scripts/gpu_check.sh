#!/usr/bin/env bash
# On a GPU host, in one go: builds facetrain against this machine's own torch (python3 -c
# "import torch"), runs the GPU tests (NCCL communicator, Partial FC and gradient reducer on
# CUDA against the CPU) and the training benchmark on the GPU (facetrain against the same step
# in PyTorch on that GPU, which needs h5py and Pillow beside torch), and copies logs and
# figures to $OUT (or ./gpu-check). Without package access it uses .gpu-prefix/ made by
# scripts/gpu_bundle.sh for the Debian libraries.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$root/gpu-check}
mkdir -p "$out"
prefix=$root/.gpu-prefix
if [ -d "$prefix" ]; then
  export PATH=$prefix/usr/bin:$PATH
  export LD_LIBRARY_PATH=$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
  export OPAL_PREFIX=$prefix/usr/lib/x86_64-linux-gnu/openmpi
  export CMAKE_PREFIX_PATH=$prefix/usr:$prefix/usr/lib/x86_64-linux-gnu/cmake:${CMAKE_PREFIX_PATH:-}
  export PKG_CONFIG_PATH=$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/share/pkgconfig
  extra=(-DMPI_HOME="$prefix/usr/lib/x86_64-linux-gnu/openmpi" -DHDF5_ROOT="$prefix/usr")
else
  extra=()
fi
python=${FACETRAIN_PYTHON:-python3}
torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())' | tee "$out/gpu.txt"
nvidia-smi -L | tee -a "$out/gpu.txt" || true
build=${FACETRAIN_BUILD:-$root/build-gpu}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
start=$(date +%s)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DFACETRAIN_WITH_CUDA=ON -DFACETRAIN_PYTHON="$python" "${extra[@]}" > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target facetrain nccl_communicator_test partial_fc_test backbone_bench \
  > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
set +e
ctest --test-dir "$build" -R 'nccl_communicator|partial_fc_test_np1' --output-on-failure \
  > "$out/ctest.log" 2>&1
tests=$?
grep -E "SKIPPED|needs one CUDA|tests passed|Failed" "$out/ctest.log" | tee -a "$out/gpu.txt"
FACETRAIN_BIN=$build/app/cli/facetrain FACETRAIN_BENCH_DIR=$out/bench FACETRAIN_PYTHON=$python \
  bash "$root/tests/bench/train_bench.sh" --gpu --steps "${GPU_BENCH_STEPS:-20}" 2>&1 | tee -a "$out/gpu.txt"
bench=${PIPESTATUS[0]}
# Backbones forward + backward in bf16 on the GPU, MFU against a bf16 matmul measured in the same
# run and against the datasheet dense bf16 peak (H200: 989 TFLOP/s; GPU_PEAK_TFLOPS overrides).
"$build/tests/bench/backbone_bench" --device cuda --amp bf16 --batch 256 --iters 10 \
  --networks mbf,iresnet50,vit_t,vit_s,vit_b --peak-tflops "${GPU_PEAK_TFLOPS:-989}" 2>&1 | tee -a "$out/gpu.txt"
set -e
exit $(( tests != 0 || bench != 0 ))
