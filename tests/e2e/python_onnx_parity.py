"""The exported ONNX model in onnxruntime on every image of a verification set against the
trained checkpoint's embeddings from `facetrain embed`: prints the worst cosine and difference
and exits 1 when they are not the same model.
usage: python_onnx_parity.py MODEL.onnx SET.h5 EMBEDDINGS.h5"""
import io
import sys

import h5py
import numpy as np
import onnxruntime as ort
from PIL import Image

model, pairs, embedded = sys.argv[1:4]
with h5py.File(pairs) as f:
    blob, offsets = f["jpeg"][()], f["offsets"][()]
images = np.stack([np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
                   for i in range(len(offsets) - 1)])
x = ((images.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
out = np.concatenate([session.run(None, {"data": x[i:i + 64]})[0] for i in range(0, len(x), 64)])
with h5py.File(embedded) as f:
    ref = f["embeddings"][()]
cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
diff = np.abs(out - ref).max()
print(f"onnxruntime vs the checkpoint on {len(x)} held-out faces: min cosine {cos.min():.8f}, max |diff| {diff:.3g}")
sys.exit(0 if cos.min() >= 0.99999 and diff <= 1e-4 else 1)
