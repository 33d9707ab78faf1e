"""Python side of the state-dict interop test (tests/models/state_dict_test.cpp).

  python_state_dict.py write OURS.pt DIR
      Reads the state dict facetrain wrote (torch.load), and writes under the same names and
      shapes new tensors drawn by Python: DIR/plain.pt (a dict), DIR/ordered.pt (the same as an
      OrderedDict, as model.state_dict() returns), DIR/list.pt (not a dict), and DIR/sums.txt
      ("name float64-sum" per line).
  python_state_dict.py check A.pt B.pt
      Exits 0 when both files hold the same names with bitwise-equal tensors.
"""
import collections
import sys

import torch


def write(ours_path, out_dir):
    ours = torch.load(ours_path, map_location="cpu", weights_only=True)
    assert isinstance(ours, dict) and ours, "facetrain's file is not a non-empty dict"
    gen = torch.Generator().manual_seed(7)
    fresh = {}
    for name, t in ours.items():
        if t.dtype == torch.int64:
            fresh[name] = torch.tensor(123, dtype=torch.int64).reshape(t.shape)
        elif name.endswith("running_var"):
            fresh[name] = torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5
        else:
            fresh[name] = torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.05
    torch.save(fresh, f"{out_dir}/plain.pt")
    torch.save(collections.OrderedDict(fresh), f"{out_dir}/ordered.pt")
    torch.save([t for t in fresh.values()][:3], f"{out_dir}/list.pt")
    with open(f"{out_dir}/sums.txt", "w") as f:
        for name, t in fresh.items():
            f.write(f"{name} {t.double().sum().item():.17g}\n")


def check(a_path, b_path):
    a = torch.load(a_path, map_location="cpu", weights_only=True)
    b = torch.load(b_path, map_location="cpu", weights_only=True)
    if set(a) != set(b):
        sys.exit(f"different names: {sorted(set(a) ^ set(b))[:5]}")
    for name in a:
        if a[name].dtype != b[name].dtype or not torch.equal(a[name], b[name]):
            sys.exit(f"{name} differs")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        check(sys.argv[2], sys.argv[3])
