"""Runs an ONNX face-embedding model with onnxruntime (CPU) on saved inputs.

  verify_onnx.py MODEL.onnx INPUT.npy|INPUT.h5 ... --out-dir DIR

Each input is float32 [N, 3, H, W] (a .npy file, or the dataset named by --dataset, default
"input", of an HDF5 file); the embeddings go to DIR/<input stem>.embedding.npy as float32
[N, D]. `facetrain export --verify` runs this and compares the results with LibTorch's.
Exit status 1, with the reason on stderr, when the model cannot be loaded or run.
"""
import argparse
import os
import sys

import numpy as np


def load_input(path, dataset):
    if path.endswith(".h5") or path.endswith(".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            return np.asarray(f[dataset], dtype=np.float32)
    return np.load(path).astype(np.float32, copy=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--dataset", default="input", help="dataset name in HDF5 inputs")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: default)")
    args = parser.parse_args()

    import onnxruntime as ort

    options = ort.SessionOptions()
    if args.threads > 0:
        options.intra_op_num_threads = args.threads
    try:
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        sys.exit(f"{args.model}: onnxruntime cannot load the model: {e}")
    (model_input,) = session.get_inputs()
    output_name = session.get_outputs()[0].name
    for path in args.inputs:
        x = load_input(path, args.dataset)
        try:
            (y,) = session.run([output_name], {model_input.name: x})
        except Exception as e:
            sys.exit(f"{args.model}: onnxruntime failed on {path} (shape {list(x.shape)}): {e}")
        stem = os.path.splitext(os.path.basename(path))[0]
        np.save(os.path.join(args.out_dir, f"{stem}.embedding.npy"), y.astype(np.float32))
        print(f"{path}: {model_input.name} {list(x.shape)} -> {output_name} {list(y.shape)}")


if __name__ == "__main__":
    main()
