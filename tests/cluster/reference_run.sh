#!/usr/bin/env bash
# The emulated-cluster tests' shared set-up (a CTest fixture): a small synthetic dataset, the
# recipe every cluster run trains, and the reference run on one host with four ranks whose
# per-step losses the multi-host runs must reproduce.
#   reference_run.sh WORK
set -euo pipefail
work=$1
rm -rf "$work"
mkdir -p "$work"
"$FACETRAIN_BIN" data synth --identities 24 --per-identity 4 --out "$work/train" --seed 3 >/dev/null
cat >"$work/cluster.toml" <<TOML
# mbf with a 128-d embedding on 24 synthetic identities: 6 steps an epoch at 4 ranks x 4.
[model]
network = "mbf"
embedding_size = 128
[loss]
margin_list = [1.0, 0.0, 0.35]
scale = 32.0
[data]
path = "$work/train"
num_workers = 1
prefetch = 2
[optim]
lr = 0.1
warmup_epoch = 0
[train]
batch_size = 4
num_epoch = 2
seed = 7
frequent = 1
verbose = 100000
checkpoint_every = 2
checkpoint_keep = 2
[eval]
val_targets = []
[dist]
timeout_s = 60.0
TOML
# shellcheck disable=SC2086
$FACETRAIN_MPIRUN -np 4 "$FACETRAIN_BIN" train --config "$work/cluster.toml" --output "$work/reference"
