#!/usr/bin/env bash
# The main job on a fresh machine. Today it sets up, builds, shows how mpirun places 2 ranks and
# checks their collectives (with all_reduce bandwidth), and prints the resolved demo recipe.
# Synthetic data, training, evaluation and export join here as those parts land.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/setup.sh"
bash "$here/build.sh"
source "$here/env.sh"
bin="$FACETRAIN_BUILD/framework/cli/facetrain"
echo "== facetrain version"
"$bin" version
echo "== 2 MPI ranks on this host: placement and collective checks"
mpirun -np 2 --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
  --mca btl_vader_single_copy_mechanism none "$bin" env --check
echo "== the demo recipe, resolved (experiments/synthetic_mbf.toml)"
"$bin" config show --config "$FACETRAIN_ROOT/experiments/synthetic_mbf.toml" --origins
