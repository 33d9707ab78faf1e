#!/usr/bin/env bash
# The main job on built-in synthetic data, on a fresh machine: set-up and build, a synthetic face
# dataset (200 training identities) with verification pairs over 40 held-out identities, mbf
# trained with ArcFace and Partial FC on 2 MPI ranks on the CPU, evaluation on the held-out
# pairs and on a synthetic IJB-C-style benchmark, ONNX and TorchScript export with parity checks, and a summary. Output: runs/demo/.
# DEMO_EPOCHS (default 2) sets the training length.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/setup.sh"
bash "$here/build.sh" --target facetrain  # only what the demo runs; tests build in test.sh
source "$here/env.sh"
bin="$FACETRAIN_BUILD/app/cli/facetrain"
out="$FACETRAIN_ROOT/runs/demo"
mpirun=(mpirun -np 2 --mca btl self,vader,tcp --mca btl_tcp_if_include lo
  --mca oob_tcp_if_include lo --mca btl_vader_single_copy_mechanism none)
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
"$bin" version
echo "== synthetic faces: 200 training identities x 20, 600 pairs over 40 held-out identities"
"$bin" data synth --identities 200 --per-identity 20 --out "$out/train" \
  --pairs 600 --pairs-out "$out/heldout.h5" --heldout-identities 40 --seed 1
"$bin" data verify "$out/train"
echo "== a synthetic IJB-C: 40 more unseen identities, unaligned crops with landmarks, 3 templates each"
"$bin" data synth-ijb --out "$out/ijb" --identities 40 --templates 3 --media 2 --images 2 \
  --impostors 20 --seed 1
echo "== training mbf (ArcFace, Partial FC) on 2 MPI ranks, CPU"
"${mpirun[@]}" "$bin" train --config "$FACETRAIN_ROOT/experiments/synthetic_mbf.toml" \
  --output "$out/run" --set data.path="$out/train" --set "train.num_epoch=${DEMO_EPOCHS:-2}"
echo "== evaluation on the held-out pairs (10-fold accuracy, TAR@FAR, ROC) and the IJB-C-style set"
"${mpirun[@]}" "$bin" eval --checkpoint "$out/run" --bench "$out/heldout.h5" --ijb "$out/ijb" \
  --out "$out/report.json" --roc-dir "$out"
"$FACETRAIN_VENV/bin/python" "$FACETRAIN_ROOT/scripts/plot_roc.py" "$out/heldout.roc.csv" \
  "$out/IJBC.roc.csv" --log-far --out "$out/roc.png"
echo "== export: ONNX (onnxruntime parity) and TorchScript, each checked against LibTorch"
"$bin" export --checkpoint "$out/run" --format onnx --out "$out/mbf.onnx" --verify
"$bin" export --checkpoint "$out/run" --format torchscript --out "$out/mbf.pt" --verify
"$FACETRAIN_VENV/bin/python" - "$out" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
out, secs = sys.argv[1], int(sys.argv[2])
full = json.load(open(f"{out}/report.json"))
report, ijb = full["verification"][0], full["ijb"]
rows = [json.loads(l) for l in open(f"{out}/run/metrics.jsonl") if '"images_per_second"' in l]
ips = sum(r["images_per_second"] for r in rows[1:]) / max(1, len(rows) - 1)
tar = ", ".join(f"{t['tar']:.3f} @ FAR {t['far']:g}" for t in report.get("tar_at_far", []))
ijb_tar = ", ".join(f"{t['tar']:.3f} @ FAR {t['far']:g}" for t in ijb["tar_at_far"][3:])
mean = ijb["identification"][-1]
ijb_1n = ", ".join([f"rank-1 {mean['rank']['rank1']:.3f}"] +
                   [f"TPIR {t['tpir']:.3f} @ FPIR {t['fpir']:g}" for t in mean["tpir_at_fpir"]])
print(f"""
== summary
held-out verification accuracy: {report['accuracy']:.4f} +- {report['accuracy_std']:.4f} \
(10-fold, {report['num_pairs']} pairs of identities never trained on)
TAR@FAR: {tar}   AUC: {report['auc']:.4f}   EER: {report['eer']:.4f}
IJB-C-style ({ijb['templates']} templates, {ijb['pairs']} pairs): TAR@FAR {ijb_tar};
  1:N mean of G1, G2: {ijb_1n}
training: {rows[-1]['step']} steps, {ips:.1f} img/s on 2 CPU ranks, final loss {rows[-1]['loss']:.3f}
files: run {out}/run (checkpoints, metrics.jsonl, tensorboard/, logs/), report {out}/report.json,
       ROC {out}/heldout.roc.csv {out}/IJBC.roc.csv {out}/roc.png, models {out}/mbf.onnx {out}/mbf.pt
demo time (after set-up and build): {secs // 60} min {secs % 60} s""")
PY
