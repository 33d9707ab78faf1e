#!/usr/bin/env bash
# Installs everything facetrain needs on Debian 12, idempotently: the Debian packages (only
# those missing), then a Python virtual environment in $FACETRAIN_CACHE (default /opt/facetrain)
# with torch 2.11.0 (LibTorch for the C++ build) and the interop-test packages. A second run
# checks and returns in seconds. `setup.sh --tests` also installs what the emulated-cluster tests
# run: Slurm (controller, node daemon, client and its PMIx plugin), munge, iproute2 and ping.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
start=$(date +%s)

packages=(build-essential cmake ninja-build ccache pkg-config git
  libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libfmt-dev libtomlplusplus-dev libcli11-dev
  libturbojpeg0-dev libjpeg-turbo-progs libonnx-dev libprotobuf-dev protobuf-compiler
  libgtest-dev nlohmann-json3-dev zlib1g-dev libstb-dev python3-venv clang libclang-rt-14-dev)
if [ "${1:-}" = --tests ]; then
  packages+=(slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge iproute2 iputils-ping)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

requirements="$FACETRAIN_ROOT/scripts/requirements.txt"
stamp="$FACETRAIN_VENV/.facetrain-requirements"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$FACETRAIN_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: building the Python environment in $FACETRAIN_VENV (torch and test packages)"
  mkdir -p "$FACETRAIN_CACHE"
  [ -x "$FACETRAIN_VENV/bin/python" ] || python3 -m venv "$FACETRAIN_VENV" ||
    /usr/bin/python3 -m venv "$FACETRAIN_VENV"
  "$FACETRAIN_VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
mkdir -p "$CCACHE_DIR"
echo "setup: ready in $(( $(date +%s) - start )) s ($("$FACETRAIN_VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'), cache $FACETRAIN_CACHE)"
