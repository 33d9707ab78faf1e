"""Independent references for the evaluation tests.

  protocol EMB.f64 ISSAME.u8 N D   insightface's verification protocol in numpy (calculate_roc,
                                   calculate_val with 10 folds, no shuffle), plus ROC, AUC, EER
                                   and TAR@FAR by brute force; prints "key value" lines
  packs DIR                        writes .bin packs in other pickle forms and malformed ones
  compare BIN H5                   checks a converted verification set against pickle.load
"""
import pickle
import sys

import numpy as np


def folds(n, k=10):
    # sklearn's KFold(n_splits=k, shuffle=False)
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    start = 0
    for s in sizes:
        test = np.arange(start, start + s)
        train = np.setdiff1d(np.arange(n), test)
        yield train, test
        start += s


def accuracy(threshold, dist, same):
    predict = dist < threshold
    tp = np.sum(predict & same)
    tn = np.sum(~predict & ~same)
    return float(tp + tn) / dist.size


def val_far(threshold, dist, same):
    predict = dist < threshold
    ta = np.sum(predict & same)
    fa = np.sum(predict & ~same)
    ns, nd = np.sum(same), np.sum(~same)
    return (ta / ns if ns else 0.0), (fa / nd if nd else 0.0)


def protocol(emb_path, same_path, n, d):
    n, d = int(n), int(d)
    emb = np.fromfile(emb_path, dtype=np.float64).reshape(2 * n, d)
    same = np.fromfile(same_path, dtype=np.uint8).astype(bool)
    xnorm = np.mean(np.linalg.norm(emb, axis=1))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dist = np.sum(np.square(unit[0::2] - unit[1::2]), 1)

    thresholds = np.arange(0, 4, 0.01)
    accs, best = [], []
    for train, test in folds(n):
        acc_train = [accuracy(t, dist[train], same[train]) for t in thresholds]
        b = int(np.argmax(acc_train))
        accs.append(accuracy(thresholds[b], dist[test], same[test]))
        best.append(thresholds[b])

    fine = np.arange(0, 4, 0.001)
    vals, fars = [], []
    for train, test in folds(n):
        far_train = np.array([val_far(t, dist[train], same[train])[1] for t in fine])
        if np.max(far_train) >= 1e-3:
            # scipy's interp1d(kind='slinear') on the distinct FARs (x must not repeat)
            xs, first = np.unique(far_train, return_index=True)
            threshold = np.interp(1e-3, xs, fine[first])
        else:
            threshold = 0.0
        v, f = val_far(threshold, dist[test], same[test])
        vals.append(v)
        fars.append(f)

    # ROC by brute force: accept distance <= each distinct value.
    values = np.unique(dist)
    pos, neg = np.sum(same), np.sum(~same)
    tpr = np.concatenate([[0.0], [np.sum((dist <= v) & same) / pos for v in values]])
    fpr = np.concatenate([[0.0], [np.sum((dist <= v) & ~same) / neg for v in values]])
    auc = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    gap = fpr - (1 - tpr)
    k = int(np.argmax(gap >= 0))
    s = gap[k - 1] / (gap[k - 1] - gap[k])
    eer = fpr[k - 1] + s * (fpr[k] - fpr[k - 1])
    out = {
        "accuracy": np.mean(accs), "accuracy_std": np.std(accs), "best_threshold": np.mean(best),
        "val": np.mean(vals), "val_std": np.std(vals), "far": np.mean(fars),
        "auc": auc, "eer": eer, "xnorm": xnorm, "roc_points": len(fpr),
    }
    decade = 1
    while 10.0 ** -decade * neg >= 1 - 1e-9:
        out["tar_%d" % decade] = float(np.max(tpr[fpr <= 10.0 ** -decade]))
        decade += 1
    for key, value in out.items():
        print(key, repr(float(value)))


class Shell:
    def __reduce__(self):
        import os
        return (os.system, ("echo this must never run",))


def packs(out):
    bins, issame = pickle.load(open(sys.argv[3], "rb"))
    plain = [bytes(b.reshape(-1)) for b in bins]
    mixed = [True, False] * (len(issame) // 2)
    # Python 3 protocol 2: bytes pickled through _codecs.encode; protocol 5: SHORT_BINBYTES,
    # FRAME, MEMOIZE; and issame as a numpy bool array.
    with open(out + "/plain_p2.bin", "wb") as f:
        pickle.dump((plain, mixed), f, protocol=2)
    with open(out + "/plain_p5.bin", "wb") as f:
        pickle.dump((plain, np.array(mixed)), f, protocol=5)
    with open(out + "/evil.bin", "wb") as f:
        pickle.dump((plain[:2], [Shell()]), f, protocol=2)
    with open(out + "/wrong_count.bin", "wb") as f:
        pickle.dump((plain[:3], [True, False]), f, protocol=4)
    data = open(sys.argv[3], "rb").read()
    with open(out + "/truncated.bin", "wb") as f:
        f.write(data[: len(data) // 2])
    with open(out + "/not_a_pair.bin", "wb") as f:
        pickle.dump({"bins": plain}, f, protocol=2)
    # Hostile packs: one image referenced 2,000 times through the memo (a copy bomb), and lists
    # nested a million deep (recursive destructors would overflow the stack).
    with open(out + "/memo_bomb.bin", "wb") as f:
        pickle.dump(([plain[0]] * 2000, [True, False] * 500), f, protocol=4)
    with open(out + "/deep.bin", "wb") as f:
        f.write(b"\x80\x02" + b"(" * 1000000 + b"l" * 1000000 + b".")


def compare(bin_path, h5_path):
    import h5py
    bins, issame = pickle.load(open(bin_path, "rb"), encoding="bytes")
    with h5py.File(h5_path, "r") as f:
        jpeg, offsets, same = f["jpeg"][()], f["offsets"][()], f["issame"][()]
        assert f.attrs["format"] in ("facetrain-verification", b"facetrain-verification")
    assert len(same) == len(issame), (len(same), len(issame))
    assert len(offsets) == 2 * len(issame) + 1
    assert list(same.astype(bool)) == [bool(x) for x in issame]
    for i, b in enumerate(bins):
        want = bytes(np.asarray(b).reshape(-1)) if hasattr(b, "dtype") else bytes(b)
        assert jpeg[offsets[i]:offsets[i + 1]].tobytes() == want, "image %d differs" % i
    print("pairs", len(issame), "images", len(bins), "identical")


if __name__ == "__main__":
    if sys.argv[1] == "protocol":
        protocol(*sys.argv[2:])
    elif sys.argv[1] == "packs":
        packs(sys.argv[2])
    else:
        compare(*sys.argv[2:])
