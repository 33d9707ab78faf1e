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
mkdir -p "$out"/{pickle_pack,recordio,manifest,config,landmarks,torch_save,hdf5}

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
