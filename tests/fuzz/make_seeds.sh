#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora under OUT/<target>/ from real files the tests make:
# verification packs (pickle protocols 2, 4, 5; the hostile ones too), RecordIO files, a
# synthetic dataset's manifest, the recipes in experiments/, a synthetic IJB's meta files, and
# torch.save files (plain, OrderedDict, GPU-saved, zip64, shared storages and the hostile ones),
# and byte strings the hdf5 target reads as its recipes for files.
# usage: make_seeds.sh OUT FACETRAIN_BINARY
set -euo pipefail
out=$1
bin=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${FACETRAIN_PYTHON:-${FACETRAIN_VENV:-/opt/facetrain/venv}/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"/{pickle_pack,recordio,manifest,config,landmarks,torch_save,class_names,checkpoint_state,hdf5}

"$python" "$root/tests/app/eval/python_verification.py" packs "$work" "$root/../shared/data/small_lfw.bin"
# Small packs only (libFuzzer mutates better); the big hostile ones stay as regression inputs.
find "$work" -maxdepth 1 -name '*.bin' -size -256k -exec cp {} "$out/pickle_pack/" \;

"$python" "$root/tests/data/python_faces.py" "$work/faces" >/dev/null
"$python" "$root/tests/data/python_recordio.py" "$work/faces/identities" "$work/train" >/dev/null
"$python" - "$work/train" "$out/recordio/train.seed" <<'PY'
import struct, sys
idx = open(sys.argv[1] + ".idx", "rb").read()
rec = open(sys.argv[1] + ".rec", "rb").read()
open(sys.argv[2], "wb").write(struct.pack("<I", len(idx)) + idx + rec[:65536])
PY

"$bin" data synth --identities 3 --per-identity 2 --out "$work/synth" --shard-size 2 >/dev/null
cp "$work/synth/manifest.json" "$out/manifest/"

cp "$root"/experiments/*.toml "$out/config/"

"$bin" data synth-ijb --out "$work/ijb" --identities 2 --templates 2 --media 1 --images 1 \
  --impostors 1 >/dev/null
cp "$work"/ijb/meta/*.txt "$out/landmarks/"

# classes.tsv of a packed folder whose names hold a tab, a newline, a backslash and UTF-8; and a
# checkpoint's state.json from a two-step training.
printf '0\tplain\n1\twith\\ttab\n2\tline\\nbreak\n3\tback\\\\slash\n4\t\xc3\xa9t\xc3\xa9\n' \
  >"$out/class_names/classes.tsv"
printf '\x01one\x01two\tthree\x01fo\nur\x01\\' >"$out/class_names/names.seed"
"$python" - "$out/checkpoint_state/state.json" <<'PY'
import json, sys
state = {"format": "facetrain-checkpoint", "version": 2, "step": 20, "epoch": 1, "consumed": 64,
         "loss_scale": 0.0, "good_steps": 0, "nonfinite_steps": 0, "global_batch": 32,
         "world_size": 2, "num_classes": 24, "seed": 3,
         "files": {"backbone.pt": {"bytes": 4096, "crc32": 305419896},
                   "optimizer.pt": {"bytes": 4096, "crc32": 1}, "config.toml": {"bytes": 900, "crc32": 2},
                   "fc-0-12.pt": {"bytes": 700, "crc32": 3}, "fc-12-24.pt": {"bytes": 700, "crc32": 4}}}
open(sys.argv[1], "w").write(json.dumps(state, indent=2) + "\n")
PY

mkdir -p "$work/torch_save"
"$python" "$root/tests/models/python_torch_save.py" write "$work/torch_save"
cp "$work"/torch_save/*.pt "$out/torch_save/"

# The hdf5 target reads its input as choices (FuzzedDataProvider), not as a file: seeds are
# byte strings that choose small, mostly consistent files.
"$python" - "$out/hdf5" <<'PY'
import random, sys
rng = random.Random(5)
for i in range(8):
    open(f"{sys.argv[1]}/seed{i}", "wb").write(bytes(rng.randrange(256) for _ in range(64 + 64 * i)))
PY
