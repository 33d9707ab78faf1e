"""A Vision Transformer as arcface_torch's backbones/vit.py describes it, written for the test:
9x9 patches of a 112x112 face (144 tokens), a learned position embedding, pre-norm blocks
(LayerNorm, 8-head self-attention without qkv bias, LayerNorm, MLP x4 with ReLU6), a final
LayerNorm and the feature head Linear(144*D, D) -> BN -> Linear(D, E) -> BN. Inference only
(no masking, no drop path).

  python_vit.py write DIR DIM DEPTH EMBEDDING
      Writes DIR/vit.pt (the state dict, random weights), DIR/input.pt ({"x": 4 images}) and
      DIR/expected.pt ({"y": the embeddings in eval mode}).
"""
import sys

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(torch.clamp(self.fc1(x), 0, 6))


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 8)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=9, stride=9)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Vit(nn.Module):
    def __init__(self, dim, depth, embedding):
        super().__init__()
        self.patch_embed = PatchEmbed(dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 144, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.feature = nn.Sequential(
            nn.Linear(144 * dim, dim, bias=False), nn.BatchNorm1d(dim, eps=2e-5),
            nn.Linear(dim, embedding, bias=False), nn.BatchNorm1d(embedding, eps=2e-5))
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.feature(x.reshape(x.shape[0], -1))


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
    torch.save(dict(model.state_dict()), f"{out}/vit.pt")
    torch.save({"x": x}, f"{out}/input.pt")
    torch.save({"y": y}, f"{out}/expected.pt")


if __name__ == "__main__":
    if sys.argv[1] != "write":
        sys.exit("usage: python_vit.py write DIR DIM DEPTH EMBEDDING")
    write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
