"""Writes an HDF5 file with attributes as h5py writes them: usage: python_h5_attributes.py OUT.h5

vlen: a Python str (h5py stores a variable-length UTF-8 string); many: an array of 2,000
strings; number: an integer. And datasets that declare more than they store: /declared, 10^11
int64 in chunks never written (read as fill values), and /names, 10^10 strings likewise.
"""
import sys

import h5py
import numpy as np

with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("x", data=np.zeros(3, dtype=np.uint8))
    f.attrs["vlen"] = "facetrain-verification-v1"
    f.attrs["many"] = np.array(["x"] * 2000, dtype=h5py.string_dtype())
    f.attrs["number"] = 3
    f.create_dataset("declared", shape=(10**11,), dtype=np.int64, chunks=(1024,))
    f.create_dataset("names", shape=(10**10,), dtype=h5py.string_dtype(), chunks=(1024,))
