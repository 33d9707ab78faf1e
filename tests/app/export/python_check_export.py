"""Python side of the export tests (tests/app/export/export_test.cpp): opens what `facetrain export`
wrote with the tools a deployment uses, and compares its embeddings with LibTorch's.

  python_check_export.py onnx MODEL.onnx INPUT.npy EXPECTED.npy --weights W [--config C]
        [--in-graph-normalization] [--bn-folded] [--require-op OP]... [--forbid-op OP]...
      onnxruntime at batch 1, 3 and all rows; input/output names and the symbolic batch
      dimension; the first nodes (Sub, Mul) as insightface's ArcFaceONNX looks for them; the
      BatchNorms left; the operator types present or absent; the metadata (hashes of W and C).
  python_check_export.py torchscript MODEL.pt INPUT.npy EXPECTED.npy --weights W
      torch.jit.load, the same embeddings, the metadata extra file.
  python_check_export.py pytorch FILE.pt INPUT.npy EXPECTED.npy --weights W --network NAME
      torch.load(weights_only=True): the same keys, shapes and values as W, and insightface's own
      backbone with these weights (load_state_dict strict) gives the same embeddings.

INPUT is what the exported model takes (raw pixels with in-graph normalisation); EXPECTED the
LibTorch embeddings. Exits 1 with the reason on the first failed check.
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

MIN_COSINE = 0.99999
MAX_ABS_DIFF = 1e-4


def fail(message):
    sys.exit(f"FAILED: {message}")


def compare(what, expected, actual):
    if expected.shape != actual.shape:
        fail(f"{what}: shape {actual.shape}, expected {expected.shape}")
    a = expected.astype(np.float64)
    b = actual.astype(np.float64)
    diff = np.abs(a - b).max()
    cos = ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min()
    print(f"{what}: max |diff| {diff:.3g}, min cosine {cos:.8f}")
    if diff > MAX_ABS_DIFF or cos < MIN_COSINE:
        fail(f"{what}: max |diff| {diff:.3g} (limit {MAX_ABS_DIFF}), min cosine {cos:.8f} "
             f"(limit {MIN_COSINE})")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_metadata(meta, args, bn_folded, in_graph):
    for key in ["network", "embedding_size", "normalisation", "input_mean", "input_std",
                "bn_folded", "weights_sha256", "producer"]:
        if key not in meta:
            fail(f"metadata has no '{key}': {sorted(meta)}")
    if meta["bn_folded"] != ("true" if bn_folded else "false"):
        fail(f"metadata bn_folded is {meta['bn_folded']}")
    if (meta["input_mean"], meta["input_std"]) != (("0", "1") if in_graph else ("127.5", "127.5")):
        fail(f"metadata input_mean/std {meta['input_mean']}/{meta['input_std']}")
    if meta["weights_sha256"] != sha256(args.weights):
        fail("metadata weights_sha256 is not the weights file's SHA-256")
    if args.config:
        if meta.get("config_sha256") != sha256(args.config):
            fail("metadata config_sha256 is not config.toml's SHA-256")
    elif "config_sha256" in meta:
        fail("config_sha256 without a checkpoint")


def check_onnx(args, x, expected):
    import onnx
    import onnxruntime as ort

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    (inp,) = graph.input
    (out,) = graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    if inp.name != "data" or not isinstance(dims[0], str) or dims[1:] != [3, 112, 112]:
        fail(f"input {inp.name} {dims}, expected data [N, 3, 112, 112]")
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    if out.name != "embedding" or out_dims != [dims[0], expected.shape[1]]:
        fail(f"output {out.name} {out_dims}, expected embedding [{dims[0]}, {expected.shape[1]}]")

    # insightface's ArcFaceONNX: Sub and Mul names among the first 8 nodes mean the model
    # normalises its input itself (input_mean 0, input_std 1).
    names = [n.name for n in graph.node[:8]]
    find_sub = any(n.startswith("Sub") or n.startswith("_minus") for n in names)
    find_mul = any(n.startswith("Mul") or n.startswith("_mul") for n in names)
    if args.in_graph_normalization:
        first = [n.op_type for n in graph.node[:2]]
        if first != ["Sub", "Mul"] or graph.node[0].input[0] != "data":
            fail(f"first nodes {first}, expected Sub then Mul on data")
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
        if not (np.allclose(inits[graph.node[0].input[1]], 127.5) and
                np.allclose(inits[graph.node[1].input[1]], 1 / 127.5)):
            fail("the Sub/Mul constants are not 127.5 and 1/127.5")
        if not (find_sub and find_mul):
            fail(f"ArcFaceONNX would not see the normalisation in {names}")
    elif find_sub or find_mul:
        fail(f"Sub/Mul nodes without in-graph normalisation: {names}")

    producers = {n.output[0]: n.op_type for n in graph.node}
    bns = [n for n in graph.node if n.op_type == "BatchNormalization"]
    after_layer = [n.name for n in bns if producers.get(n.input[0]) in ("Conv", "Gemm")]
    if args.bn_folded and after_layer:
        fail(f"BatchNorms left after a Conv/Gemm despite folding: {after_layer[:3]}")
    if not args.bn_folded and not after_layer:
        fail("no BatchNormalization after a Conv: were they folded?")
    op_types = {n.op_type for n in graph.node}
    for op in args.require_op:
        if op not in op_types:
            fail(f"no {op} node; the graph has {sorted(op_types)}")
    for op in args.forbid_op:
        if op in op_types:
            fail(f"a {op} node at opset {model.opset_import[0].version}")
    print(f"{len(graph.node)} nodes, {len(bns)} BatchNormalization, opset "
          f"{model.opset_import[0].version}")

    meta = {p.key: p.value for p in model.metadata_props}
    check_metadata(meta, args, args.bn_folded, args.in_graph_normalization)

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    for rows in (1, 3, len(x)):
        (y,) = session.run(["embedding"], {"data": x[:rows]})
        compare(f"onnxruntime batch {rows}", expected[:rows], y)


def check_torchscript(args, x, expected):
    import torch

    extra = {"facetrain.json": ""}
    module = torch.jit.load(args.model, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["facetrain.json"])
    check_metadata(meta, args, meta["bn_folded"] == "true", meta["input_mean"] == "0")
    with torch.no_grad():
        for rows in (1, len(x)):
            y = module(torch.from_numpy(x[:rows])).numpy()
            compare(f"torch.jit.load batch {rows}", expected[:rows], y)


def check_pytorch(args, x, expected):
    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    import insightface_backbones

    exported = torch.load(args.model, map_location="cpu", weights_only=True)
    source = torch.load(args.weights, map_location="cpu", weights_only=True)
    if not isinstance(exported, dict) or list(exported) != list(source):
        fail(f"keys differ from the weights file: {sorted(set(exported) ^ set(source))[:5]}")
    for name, t in source.items():
        if exported[name].shape != t.shape or not torch.equal(exported[name], t):
            fail(f"{name}: {tuple(exported[name].shape)} differs from the weights file")
    embedding_size = expected.shape[1]
    model = insightface_backbones.get_model(args.network, embedding_size)
    model.load_state_dict(exported, strict=True)
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    compare(f"insightface {args.network} with the exported state dict", expected, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("format", choices=["onnx", "torchscript", "pytorch"])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("expected")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--config")
    parser.add_argument("--network")
    parser.add_argument("--in-graph-normalization", action="store_true")
    parser.add_argument("--bn-folded", action="store_true")
    parser.add_argument("--require-op", action="append", default=[])
    parser.add_argument("--forbid-op", action="append", default=[])
    args = parser.parse_args()
    x = np.load(args.input)
    expected = np.load(args.expected)
    {"onnx": check_onnx, "torchscript": check_torchscript,
     "pytorch": check_pytorch}[args.format](args, x, expected)
    print("OK")


if __name__ == "__main__":
    main()
