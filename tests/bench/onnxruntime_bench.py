"""onnxruntime CPU inference throughput of an exported face-embedding model, for
tests/bench/export_bench.cpp.

  onnxruntime_bench.py MODEL.onnx --batches 1,32 --threads T --seconds S [--raw]

Prints one line "BATCH IMAGES_PER_SECOND" per batch size (random inputs, after a warm-up).
"""
import argparse
import time

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    for batch in [int(b) for b in args.batches.split(",")]:
        x = rng.uniform(-1, 1, size=(batch, 3, 112, 112)).astype(np.float32)
        for _ in range(2):
            session.run(None, {name: x})
        runs = 0
        start = time.perf_counter()
        while True:
            session.run(None, {name: x})
            runs += 1
            elapsed = time.perf_counter() - start
            if elapsed >= args.seconds and runs >= 2:
                break
        print(f"{batch} {runs * batch / elapsed:.2f}", flush=True)


if __name__ == "__main__":
    main()
