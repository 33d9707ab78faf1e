#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, build, then every test (multi-rank ones as
# real mpirun processes). Arguments go to ctest (e.g. -R communicator, -L mpi).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/setup.sh" --tests
bash "$here/build.sh"
source "$here/env.sh"
ctest --test-dir "$FACETRAIN_BUILD" --output-on-failure -j "${FACETRAIN_JOBS:-2}" "$@"
