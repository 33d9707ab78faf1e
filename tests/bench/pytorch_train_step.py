"""The baseline of the training benchmark: facetrain's training step written in plain PyTorch, the
way arcface_torch trains (DDP for the backbone over gloo on the CPU, embeddings all-gathered with
an autograd all-gather, the rank's shard of the class centres, the combined-margin head,
softmax cross-entropy computed across ranks, gradient-norm clip 5, SGD with momentum for the
backbone and the classifier), on the same backbone definition (insightface's, in tests/app/export),
the same images (a facetrain dataset's JPEGs, decoded once up front so that this side does no
decoding at all) and the same global batch.

usage: pytorch_train_step.py --data DIR --world W --threads T --batch B [--network mbf]
                             [--steps N] [--warmup K] [--margins 1,0.5,0] [--scale 64]
                             [--device cpu|cuda] [--amp none|bf16]
On CUDA (one GPU per rank, NCCL) the backbone runs under autocast when --amp bf16, as
arcface_torch's fp16 switch does, and each phase is timed to a device synchronisation.
Prints one line: `pytorch W x T img/s X step_ms Y = forward F fc C backward B optimizer O`.
"""
import argparse
import io
import json
import math
import os
import socket
import sys
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "app", "export"))
from insightface_backbones import get_model  # noqa: E402


def load_faces(folder):
    """Every image of a facetrain dataset as uint8 [N, H, W, 3] and its labels."""
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    images, labels = [], []
    for shard in manifest["shards"]:
        with h5py.File(os.path.join(folder, shard["file"]), "r") as f:
            data, offsets = f["jpeg"][()], f["offsets"][()]
            labels.append(f["labels"][()].astype(np.int64))
            for i in range(len(offsets) - 1):
                jpeg = data[offsets[i]:offsets[i + 1]].tobytes()
                images.append(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.concatenate(labels))


class AllGather(torch.autograd.Function):
    """Rows of every rank in rank order; backward: the sum over ranks of this rank's rows."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        r = dist.get_rank()
        return grad[r * ctx.rows:(r + 1) * ctx.rows]


class DistCrossEntropy(torch.autograd.Function):
    """Mean over rows of log sum_all exp(z) - z_target, each rank holding its own columns."""

    @staticmethod
    def forward(ctx, logits, labels):
        top = logits.max(dim=1, keepdim=True)[0]
        dist.all_reduce(top, dist.ReduceOp.MAX)
        exp = (logits - top).exp()
        total = exp.sum(dim=1, keepdim=True)
        dist.all_reduce(total)
        prob = exp / total
        valid = labels >= 0
        target = torch.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
        target[valid] = prob[valid, labels[valid]]
        dist.all_reduce(target)
        ctx.save_for_backward(prob, labels)
        return -target.clamp_min(1e-30).log().mean()

    @staticmethod
    def backward(ctx, grad):
        prob, labels = ctx.saved_tensors
        valid = labels >= 0
        g = prob.clone()
        g[valid, labels[valid]] -= 1
        return g * (grad / prob.shape[0]), None


class PartialFC(torch.nn.Module):
    """The rank's shard of the class centres with the combined margin cos(m1*theta + m2) - m3."""

    def __init__(self, num_classes, dim, rank, world, margins, scale):
        super().__init__()
        per, extra = divmod(num_classes, world)
        self.lo = rank * per + min(rank, extra)
        self.hi = self.lo + per + (1 if rank < extra else 0)
        self.weight = torch.nn.Parameter(torch.normal(0, 0.01, (self.hi - self.lo, dim)))
        self.m1, self.m2, self.m3 = margins
        self.scale = scale

    def forward(self, embeddings, labels):
        x = AllGather.apply(embeddings)
        gathered = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, labels)
        labels = torch.cat(gathered)
        mine = (labels >= self.lo) & (labels < self.hi)
        local = torch.where(mine, labels - self.lo, torch.full_like(labels, -1))
        cosine = F.linear(F.normalize(x), F.normalize(self.weight)).clamp(-1, 1)
        rows = torch.nonzero(local >= 0).squeeze(1)
        target = cosine[rows, local[rows]]
        theta = torch.acos(target.clamp(-1 + 1e-7, 1 - 1e-7))
        margined = torch.cos(theta * self.m1 + self.m2) - self.m3
        cosine = cosine.index_put((rows, local[rows]), margined)
        return DistCrossEntropy.apply(cosine * self.scale, local)


def worker(rank, args, port, faces, labels, results):
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=args.world)
    torch.manual_seed(2048)
    backbone = get_model(args.network, 512).to(device)
    model = torch.nn.parallel.DistributedDataParallel(backbone, bucket_cap_mb=25,
                                                      device_ids=[rank] if cuda else None)
    num_classes = int(labels.max()) + 1
    fc = PartialFC(num_classes, 512, rank, args.world, args.margins, args.scale).to(device)
    labels = labels.to(device)

    def now():
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    optimizer = torch.optim.SGD([{"params": model.parameters()}, {"params": fc.parameters()}],
                                lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    generator = torch.Generator().manual_seed(7)
    order = torch.randperm(faces.shape[0], generator=generator)
    times = {"forward": 0.0, "fc": 0.0, "backward": 0.0, "optimizer": 0.0}
    global_batch = args.batch * args.world
    start = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            times = {k: 0.0 for k in times}
            dist.barrier()
            start = now()
        first = (step * global_batch) % (faces.shape[0] - global_batch) + rank * args.batch
        index = order[first:first + args.batch]
        images = faces[index]
        flip = torch.rand(args.batch, generator=generator) < 0.5
        images[flip] = images[flip].flip(2)
        x = images.to(device).permute(0, 3, 1, 2).float().sub(127.5).div(127.5).contiguous()
        t0 = now()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            embeddings = model(x)
        t1 = now()
        loss = fc(embeddings.float(), labels[index.to(device)])
        t2 = now()
        loss.backward()
        t3 = now()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5)
        optimizer.step()
        optimizer.zero_grad()
        t4 = now()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[k] += v
    dist.barrier()
    elapsed = now() - start
    if rank == 0:
        results.put((args.steps * global_batch / elapsed, elapsed / args.steps,
                     {k: v / args.steps for k, v in times.items()}, loss.item()))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=32, help="images per rank")
    p.add_argument("--network", default="mbf")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--margins", default="1,0.5,0")
    p.add_argument("--scale", type=float, default=64.0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    args = p.parse_args()
    args.margins = [float(m) for m in args.margins.split(",")]
    faces, labels = load_faces(args.data)
    if faces.shape[0] < 2 * args.batch * args.world:
        sys.exit(f"{args.data}: {faces.shape[0]} images, fewer than two global batches")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.SimpleQueue()
    procs = [ctx.Process(target=worker, args=(r, args, port, faces, labels, results))
             for r in range(args.world)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    if any(proc.exitcode != 0 for proc in procs) or results.empty():
        sys.exit("pytorch baseline: a rank failed")
    ips, step, times, loss = results.get()
    if not math.isfinite(loss):
        sys.exit(f"pytorch baseline: the loss is {loss}")
    print(f"pytorch {args.world} x {args.threads} img/s {ips:.2f} step_ms {step * 1e3:.1f} = "
          + " ".join(f"{k} {v * 1e3:.1f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
