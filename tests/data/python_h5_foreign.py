"""Writes HDF5 files as h5py writes them, each a valid facetrain file in another encoding.

usage: python_h5_foreign.py OUT_DIR

verification-STYLE.h5: a verification set of two pairs whose `format` attribute is a string of
STYLE (vlen_utf8: a Python str, h5py's default; vlen_ascii; fixed_ascii: numpy bytes;
fixed_utf8), /issame a numpy bool array (an HDF5 enumeration), /offsets int64.
strings.h5: the datasets vlen_utf8, vlen_ascii, fixed_ascii, fixed_utf8 holding
["alpha", "é", ""] (ASCII ones without "é").
elsewhere.h5: datasets whose data is not in the file, as h5py can write them: /link (an
external link to other.h5:/x), /external (raw storage in raw.bin), /virtual (a virtual dataset
over other.h5:/x), and /here, an ordinary one.
"""
import os
import sys

import h5py
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
FORMAT = "facetrain-verification"
STYLES = {
    "vlen_utf8": None,
    "vlen_ascii": h5py.string_dtype("ascii"),
    "fixed_ascii": "bytes",
    "fixed_utf8": h5py.string_dtype("utf-8", 40),
}
jpeg = open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else b"\xff\xd8\xff"
for style, dtype in STYLES.items():
    with h5py.File(os.path.join(out, f"verification-{style}.h5"), "w") as f:
        f.create_dataset("jpeg", data=np.frombuffer(jpeg * 4, dtype=np.uint8))
        f.create_dataset("offsets", data=np.arange(5, dtype=np.int64) * len(jpeg))
        f.create_dataset("issame", data=np.array([True, False]))
        if dtype is None:
            f.attrs["format"] = FORMAT
        elif dtype == "bytes":
            f.attrs["format"] = np.bytes_(FORMAT)
        else:
            f.attrs.create("format", FORMAT, dtype=dtype)

with h5py.File(os.path.join(out, "strings.h5"), "w") as f:
    utf8 = ["alpha", "é", ""]
    ascii_ = ["alpha", "beta", ""]
    f.create_dataset("vlen_utf8", data=utf8, dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("vlen_ascii", data=ascii_, dtype=h5py.string_dtype("ascii"))
    f.create_dataset("fixed_ascii", data=np.array([s.encode() for s in ascii_], dtype="S8"))
    f.create_dataset("fixed_utf8", data=[s.encode() for s in utf8],
                     dtype=h5py.string_dtype("utf-8", 8))

with h5py.File(os.path.join(out, "other.h5"), "w") as f:
    f.create_dataset("x", data=np.arange(4, dtype=np.uint8))
with open(os.path.join(out, "raw.bin"), "wb") as f:
    f.write(bytes(range(4)))
with h5py.File(os.path.join(out, "elsewhere.h5"), "w") as f:
    f.create_dataset("here", data=np.arange(4, dtype=np.uint8))
    f["link"] = h5py.ExternalLink("other.h5", "/x")
    f.create_dataset("external", shape=(4,), dtype=np.uint8,
                     external=[(os.path.join(out, "raw.bin"), 0, 4)])
    layout = h5py.VirtualLayout(shape=(4,), dtype=np.uint8)
    layout[:] = h5py.VirtualSource(os.path.join(out, "other.h5"), "x", shape=(4,))
    f.create_virtual_dataset("virtual", layout)
