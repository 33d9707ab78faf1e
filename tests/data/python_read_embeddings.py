"""Reads a `facetrain embed` output with h5py and checks its layout.

  python_read_embeddings.py FILE N D   exits 0 when /embeddings is float32 [N, D] with unit rows,
                                        /names holds N sorted strings, attributes are present.
"""
import sys

import h5py
import numpy as np

path, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(path, "r") as f:
    emb = f["embeddings"][()]
    names = [s.decode() if isinstance(s, bytes) else s for s in f["names"][()]]
    assert emb.dtype == np.float32, emb.dtype
    assert emb.shape == (n, d), emb.shape
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert names == sorted(names) and len(names) == n, names
    assert f.attrs["network"] in ("mbf", b"mbf"), f.attrs["network"]
    assert f.attrs["flip"] in ("true", b"true")
print("ok")
