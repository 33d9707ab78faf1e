#!/usr/bin/env bash
# Prepares what a GPU host without package access needs to build facetrain: the Debian packages'
# files (headers, libraries, CMake configs, mpirun) unpacked into .gpu-prefix/ of the checkout,
# for scripts/gpu_check.sh. Run it here (where apt works); copy the checkout with .gpu-prefix.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=$root/.gpu-prefix
packages=(libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libhdf5-dev libhdf5-103-1
  libhdf5-hl-100 libsz2 libaec0 libcurl4 libtomlplusplus-dev libcli11-dev libturbojpeg0-dev
  libturbojpeg0 libonnx-dev libonnx1 libprotobuf-dev libprotobuf32 libgtest-dev
  nlohmann-json3-dev libstb-dev libstb0 libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libpmix2 libfabric1 libucx0 libibverbs1 librdmacm1 libpsm2-2 libpsm-infinipath1 libnl-3-200
  libnl-route-3-200 libmunge2 ninja-build cmake cmake-data libjsoncpp25 librhash0 libuv1)
rm -rf "$prefix" "$prefix.debs"
mkdir -p "$prefix.debs"
(cd "$prefix.debs" && apt-get download "${packages[@]}" 2>&1 | tail -1)
for deb in "$prefix.debs"/*.deb; do dpkg -x "$deb" "$prefix"; done
rm -rf "$prefix.debs"
# OpenMPI's wrappers and mpirun find their files relative to OPAL_PREFIX.
echo "unpacked $(ls "$prefix"/usr/lib/x86_64-linux-gnu | wc -l) library files into $prefix ($(du -sh "$prefix" | cut -f1))"
