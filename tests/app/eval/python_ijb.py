"""The IJB protocol written for the test from its description, in numpy, against facetrain.

usage: python_ijb.py ROOT NAME FEATURES.h5 REPORT.json

Reads the benchmark's meta files and the image features `facetrain eval --ijb --ijb-features`
wrote (each image's and its mirror's embedding summed), computes the 1:1 and 1:N figures and
exits 1 unless every figure in the report agrees to 1e-6.

1:1: features weighted by the detector score; per template, the mean of each media's images,
summed over media (in float32, as the features are) and L2-normalised (in float64); cosine per pair; the ROC as scikit-learn's roc_curve
(points at distinct scores, collinear points dropped, (0, 0) first); TAR at a FAR taken at the
point with the closest FPR (the highest TPR among equally close ones), and the highest TPR with
FPR <= FAR.
1:N per gallery: probes whose subject is in the gallery are mated; rank-k is the share of mated
probes with fewer than k gallery templates scoring above the mate; TPIR at FPIR f counts mated
probes whose mate is first and scores above the (floor(f*M)+1)-th best top score of the M
non-mated probes.
"""
import json
import sys

import h5py
import numpy as np


def table(path, skip=0):
    rows = []
    with open(path) as f:
        for number, line in enumerate(f):
            if number < skip:
                continue
            fields = line.replace(",", " ").split()
            if fields:
                rows.append(fields)
    return rows


def templates_of(features, templates, medias):
    ids = np.unique(templates)
    out = np.zeros((len(ids), features.shape[1]))
    for row, t in enumerate(ids):
        mine = templates == t
        total = np.zeros(features.shape[1], dtype=features.dtype)
        for m in np.unique(medias[mine]):
            total += features[mine & (medias == m)].mean(axis=0)
        total = total.astype(np.float64)
        out[row] = total / np.sqrt(np.einsum("i,i->", total, total))
    return ids, out


def roc(scores, labels):
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_value = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last_of_value].astype(float)
    fps = (last_of_value + 1 - tps).astype(float)
    if len(tps) > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        tps, fps = tps[keep], fps[keep]
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def open_set(gallery, gallery_subjects, probes, probe_subjects, ranks, fpirs):
    sim = probes @ gallery.T
    column = {s: k for k, s in enumerate(gallery_subjects)}
    mate_rank, mate_score, nonmated = [], [], []
    for i, s in enumerate(probe_subjects):
        if s in column:
            score = sim[i, column[s]]
            mate_score.append(score)
            mate_rank.append(1 + int(np.sum(sim[i] > score)))
        else:
            nonmated.append(sim[i].max())
    mate_rank, mate_score = np.array(mate_rank), np.array(mate_score)
    nonmated = np.sort(np.array(nonmated))[::-1]
    out = {"rank%d" % k: float(np.mean(mate_rank <= k)) for k in ranks}
    for f in fpirs:
        allowed = int(np.floor(f * len(nonmated)))
        t = nonmated[allowed] if allowed < len(nonmated) else -np.inf
        out["tpir%g" % f] = float(np.mean((mate_rank == 1) & (mate_score > t)))
    return out


def main():
    root, name, features_file, report_file = sys.argv[1:5]
    prefix = "%s/meta/%s" % (root, name.lower())
    lmk = table(prefix + "_name_5pts_score.txt")
    tid_mid = table(prefix + "_face_tid_mid.txt")
    score = np.array([float(r[-1]) for r in lmk], dtype=np.float32)
    templates = np.array([int(r[1]) for r in tid_mid])
    medias = np.array([int(r[2]) for r in tid_mid])
    with h5py.File(features_file, "r") as f:
        features = f["features"][...].astype(np.float32)
    weighted = features * score[:, None]
    ids, feats = templates_of(weighted, templates, medias)
    row = {t: k for k, t in enumerate(ids)}
    pairs = np.array([[int(x) for x in r] for r in table(prefix + "_template_pair_label.txt")])
    first = feats[[row[a] for a in pairs[:, 0]]]
    second = feats[[row[b] for b in pairs[:, 1]]]
    scores = np.sum(first * second, axis=-1)
    fpr, tpr = roc(scores, pairs[:, 2])

    report = json.load(open(report_file))["ijb"]
    failures = 0

    def check(what, mine, theirs):
        nonlocal failures
        ok = abs(mine - theirs) <= 1e-6
        failures += not ok
        print("%-24s numpy %.8f facetrain %.8f %s" % (what, mine, theirs, "" if ok else "MISMATCH"))

    check("roc points", len(fpr), report["roc_points"])
    check("auc", float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)), report["auc"])
    for entry in report["tar_at_far"]:
        far = entry["far"]
        # Searched over the reversed curve: among equally close points the highest TPR.
        check("TAR@FAR=%g" % far, tpr[::-1][np.argmin(np.abs(fpr[::-1] - far))], entry["tar"])
        check("TAR@FAR<=%g" % far, tpr[fpr <= far].max(), entry["tar_at_most_far"])

    galleries = ["G1", "G2"] if name.upper() == "IJBC" else ["S1", "S2"]
    probe_rows = table(prefix + "_1N_probe_mixed.csv", skip=1)
    probe_of = dict((int(r[0]), int(r[1])) for r in probe_rows)
    probe_ids = sorted(probe_of)
    probes = feats[[row[t] for t in probe_ids]]
    means = {}
    for entry, g in zip(report["identification"], galleries):
        rows = table(prefix + "_1N_gallery_%s.csv" % g, skip=1)
        subject_of = dict((int(r[0]), int(r[1])) for r in rows)
        gallery_ids = sorted(subject_of)
        ranks = [int(k[4:]) for k in entry["rank"]]
        fpirs = [t["fpir"] for t in entry["tpir_at_fpir"]]
        mine = open_set(feats[[row[t] for t in gallery_ids]], [subject_of[t] for t in gallery_ids],
                        probes, [probe_of[t] for t in probe_ids], ranks, fpirs)
        for k in ranks:
            check("%s rank-%d" % (g, k), mine["rank%d" % k], entry["rank"]["rank%d" % k])
        for t in entry["tpir_at_fpir"]:
            check("%s TPIR@FPIR=%g" % (g, t["fpir"]), mine["tpir%g" % t["fpir"]], t["tpir"])
        for key, value in mine.items():
            means[key] = means.get(key, 0) + value / len(galleries)
    mean = report["identification"][-1]
    for k, v in mean["rank"].items():
        check("mean " + k, means[k], v)
    for t in mean["tpir_at_fpir"]:
        check("mean TPIR@FPIR=%g" % t["fpir"], means["tpir%g" % t["fpir"]], t["tpir"])
    sys.exit(1 if failures else 0)


main()
