#!/usr/bin/env bash
# The main job on a fresh machine, as far as it exists today: set-up and build, a 2-rank MPI
# launch check, a synthetic face dataset with held-out verification pairs (rendered, verified,
# summarised), and the demo recipe resolved. Training, evaluation and export join here as they
# land. Output goes to runs/demo.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/setup.sh"
bash "$here/build.sh"
source "$here/env.sh"
bin="$FACETRAIN_BUILD/framework/cli/facetrain"
out="$FACETRAIN_ROOT/runs/demo"
rm -rf "$out"
mkdir -p "$out"
echo "== facetrain version"
"$bin" version
echo "== 2 MPI ranks on this host: placement and collective checks"
mpirun -np 2 --mca btl self,vader,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
  --mca btl_vader_single_copy_mechanism none "$bin" env --check
echo "== synthetic faces: 200 training identities x 20, 1000 pairs over 40 held-out identities"
"$bin" data synth --identities 200 --per-identity 20 --out "$out/train" \
  --pairs 1000 --pairs-out "$out/heldout.h5" --heldout-identities 40 --seed 1
"$bin" data verify "$out/train"
"$bin" data info "$out/train"
echo "== the demo recipe, resolved (experiments/synthetic_mbf.toml)"
"$bin" config show --config "$FACETRAIN_ROOT/experiments/synthetic_mbf.toml"
echo "== done: dataset in $out/train, held-out pairs in $out/heldout.h5"
