"""torch.save files from elsewhere, for the weights reader's tests (state_dict_test.cpp) and the
torch_save fuzzer's seed corpus (tests/fuzz/make_seeds.sh).

  python_torch_save.py write DIR
      DIR/plain.pt       a dict of a few tensors of several dtypes (torch.save)
      DIR/ordered.pt     the same as an OrderedDict with _metadata, as model.state_dict() returns
      DIR/ddp.pt         the same under "module." names (a DistributedDataParallel model's)
      DIR/params.pt      the same as nn.Parameters (_rebuild_parameter)
      DIR/shared.pt      two names viewing one storage (a tied weight and a slice of it)
      DIR/gpu.pt         the same as plain.pt, its storages marked as saved on cuda:0
      DIR/zip64.pt       plain.pt's entries rewritten with zip64 records
      DIR/crc.pt         plain.pt with one byte of a storage flipped (a damaged download)
      DIR/past.pt        a tensor of 1000 elements on a storage of 10
      DIR/repeated.pt    a 2^36-element view repeating a 1-element storage (strides 0)
      DIR/evil.pt        a pickle that would call os.system
      DIR/nested.pt      a training checkpoint: {"state_dict": {...}, "epoch": 3}
      DIR/legacy.pt      the pre-1.6 format (_use_new_zipfile_serialization=False)
The files made here without torch.save are written by this script's own pickler and zip calls,
the way torch.save lays them out (archive/data.pkl, archive/data/KEY, archive/byteorder).
"""
import collections
import io
import os
import pickle
import sys
import zipfile

import torch


def tensors():
    gen = torch.Generator().manual_seed(3)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
        "bn.running_var": torch.rand(4, generator=gen, dtype=torch.float64) + 0.5,
        "bn.num_batches_tracked": torch.tensor(17),
        "half": torch.randn(5, generator=gen).half(),
        "bf16": torch.randn(2, 3, generator=gen).bfloat16(),
        "mask": torch.tensor([True, False, True]),
        "transposed": torch.arange(6, dtype=torch.int32).reshape(2, 3).t(),
    }


class Storage:
    """A storage the pickler writes as a persistent reference."""

    def __init__(self, key, storage_type, numel, location="cpu"):
        self.key, self.storage_type, self.numel, self.location = key, storage_type, numel, location


class Tensor:
    """Pickled as torch.save pickles a tensor: _rebuild_tensor_v2(storage, offset, size, ...)."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.storage_type, obj.key, obj.location, obj.numel)
        return None


def write_archive(path, obj, storages):
    """obj pickled (protocol 2, as torch.save) with storages {key: bytes} beside it."""
    pkl = io.BytesIO()
    Pickler(pkl, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)


def float_storage(key, values, location="cpu"):
    t = torch.tensor(values, dtype=torch.float32)
    return Storage(key, torch.FloatStorage, t.numel(), location), t.numpy().tobytes()


def rezip_as_zip64(source, target):
    """source's entries written again (stored) with zip64 records."""
    with zipfile.ZipFile(source) as z_in, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z_out:
        for info in z_in.infolist():
            with z_out.open(info.filename, "w", force_zip64=True) as f:
                f.write(z_in.read(info.filename))


def write(out):
    t = tensors()
    torch.save(t, f"{out}/plain.pt")
    ordered = collections.OrderedDict(t)
    ordered._metadata = collections.OrderedDict({"": {"version": 1}})
    torch.save(ordered, f"{out}/ordered.pt")
    torch.save(collections.OrderedDict((f"module.{k}", v) for k, v in t.items()), f"{out}/ddp.pt")
    torch.save({k: torch.nn.Parameter(v, requires_grad=False) for k, v in t.items()},
               f"{out}/params.pt")
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save({"tied.a": base, "tied.b": base, "slice": base[1:, 2:]}, f"{out}/shared.pt")

    # gpu.pt: the same tensors, their storages' location "cuda:0".
    storages, entries = {}, {}
    for i, (name, value) in enumerate(t.items()):
        v = value.contiguous()
        storage_type = {torch.float32: torch.FloatStorage, torch.float64: torch.DoubleStorage,
                        torch.int64: torch.LongStorage, torch.float16: torch.HalfStorage,
                        torch.bfloat16: torch.BFloat16Storage, torch.bool: torch.BoolStorage,
                        torch.int32: torch.IntStorage}[v.dtype]
        s = Storage(str(i), storage_type, v.numel(), "cuda:0")
        storages[str(i)] = v.reshape(-1).view(torch.uint8).numpy().tobytes()
        entries[name] = Tensor(s, 0, tuple(v.shape), tuple(v.stride()))
    write_archive(f"{out}/gpu.pt", collections.OrderedDict(entries), storages)

    rezip_as_zip64(f"{out}/plain.pt", f"{out}/zip64.pt")

    # crc.pt: one byte of the first storage flipped in place; the CRC-32s stay as they were.
    with open(f"{out}/plain.pt", "rb") as f:
        data = bytearray(f.read())
    (info,) = [i for i in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()
               if i.filename.endswith("/data/0")]
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26:
                                                          info.header_offset + 28], "little") \
        + int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[start + 5] ^= 0x40
    with open(f"{out}/crc.pt", "wb") as f:
        f.write(bytes(data))

    s, data = float_storage("0", list(range(10)))
    write_archive(f"{out}/past.pt", {"w": Tensor(s, 0, (1000,), (1,))}, {"0": data})
    s, data = float_storage("0", [1.0])
    write_archive(f"{out}/repeated.pt", {"w": Tensor(s, 0, (2**18, 2**18), (0, 0))}, {"0": data})
    write_archive(f"{out}/evil.pt", {"w": Evil()}, {})
    torch.save({"state_dict": t, "epoch": 3}, f"{out}/nested.pt")
    torch.save(t, f"{out}/legacy.pt", _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit("usage: python_torch_save.py write DIR")
    write(sys.argv[2])
