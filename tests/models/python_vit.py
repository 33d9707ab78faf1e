"""Weights and embeddings of the tests' own Python Vision Transformer (Vit in
tests/app/export/insightface_backbones.py, written from arcface_torch's description).

  python_vit.py write DIR DIM DEPTH EMBEDDING
      Writes DIR/vit.pt (the state dict, random weights), DIR/input.pt ({"x": 4 images}) and
      DIR/expected.pt ({"y": the embeddings in eval mode}).
"""
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app", "export"))
from insightface_backbones import Vit  # noqa: E402


def write(out, dim, depth, embedding):
    torch.manual_seed(5)
    model = Vit(dim, depth, embedding)
    with torch.no_grad():  # non-trivial norms and BatchNorm statistics
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
    model.eval()
    x = torch.rand(4, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        y = model(x)
    torch.save(model.state_dict(), f"{out}/vit.pt")  # an OrderedDict, as arcface_torch saves
    torch.save({"x": x}, f"{out}/input.pt")
    torch.save({"y": y}, f"{out}/expected.pt")


if __name__ == "__main__":
    if sys.argv[1] != "write":
        sys.exit("usage: python_vit.py write DIR DIM DEPTH EMBEDDING")
    write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
