#!/usr/bin/env python3
"""Hostile inputs for the facetrain binary: non-regular files, integer overflow, sizes read from
input, damaged checkpoints, odd strings and names, files written by other tools.

    /opt/facetrain/venv/bin/python tests/hostile/hostile_set.py build/app/cli/facetrain
        [--list] [--only SUBSTR]... [--jobs N] [--timeout S] [--keep] [-v]

Each case builds its inputs in a fresh folder under one temporary root (removed at exit unless
--keep) and runs the binary once (some cases run it again to check what came out) under a memory
cap (RLIMIT_AS 6 GiB) and a time limit (30 s by default), in a process group of its own that is
killed on timeout. Small fixtures (a 16-image synthetic dataset, a 2-step training with a
checkpoint per step, its exported weights, a 4-image synthetic IJB-C) are built once first. The
whole set takes about 90 s on 2 cores.

Verdicts:
  PASS     refused with exit 1 or 2, naming what it should and leaking no internals, or (cases
           marked valid) exit 0 with the output the case checks
  CRASH    killed by a signal
  HANG     still running at the time limit
  ALLOC    the allocator gave up (std::bad_alloc, "can't allocate memory")
  UNNAMED  a clean refusal whose message does not name the thing, or leaks C++/LibTorch internals
  WRONG    accepted what it should refuse, refused a valid input, or an unexpected exit code
  ERROR    the harness could not build the case (a bug here, not in facetrain)

Exit status 1 when any case fails. Needs numpy, h5py and torch (the project's venv has them).
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import gzip
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

MEMORY_CAP = 6 << 30
ALLOC_MARKERS = ["std::bad_alloc", "can't allocate memory", "Cannot allocate memory",
                 "out of memory"]
INTERNAL_MARKERS = ["terminate called", "Segmentation", "Aborted", "c10::Error",
                    "Exception raised from", "backtrace", "what():"]
# What a refusal of a non-regular file says about it (framework/core/input_file.cpp's words).
NON_REGULAR = ("FIFO", "folder", "regular file", "directory", "device")
# The real insightface pack beside the checkout (../shared/data), when there is one.
SHARED_BIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "small_lfw.bin"

Arg = Union[str, bytes, Path]
# A required substring, or a tuple of alternatives of which one must appear.
Expect = Union[str, tuple]


# ---------------------------------------------------------------------------------------------
# The harness


@dataclasses.dataclass
class Result:
    argv: list
    cwd: Path
    returncode: Optional[int]  # None: timed out
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "surrogateescape")


@dataclasses.dataclass
class Case:
    name: str
    klass: str
    # Builds the inputs in the case folder and returns the arguments after the binary's path.
    build: Callable[["Context", Path], Sequence[Arg]]
    # Substrings stderr must hold when the binary refuses (exit 1 or 2).
    expect: list[Expect] = dataclasses.field(default_factory=list)
    # The binary must succeed (exit 0).
    valid: bool = False
    # Either outcome is right: exit 0, or a refusal (1 or 2) naming `expect`.
    either: bool = False
    # Substrings stdout + stderr must hold on exit 0.
    expect_ok: list[Expect] = dataclasses.field(default_factory=list)
    # Further substrings stderr must not hold (besides the allocator's and C++ internals).
    forbid: list = dataclasses.field(default_factory=list)
    # On exit 0, a further check; returns what is wrong, or None.
    check: Optional[Callable[["Context", Path, Result], Optional[str]]] = None
    # The command reports problems on stdout (data verify's list): expectations search both.
    report_stdout: bool = False
    # Which fixtures it copies or reads (built once, before the cases).
    needs: tuple = ()
    # Likely to block without using CPU or memory (a FIFO): run in the wide pool.
    blocking: bool = False


@dataclasses.dataclass
class Verdict:
    case: Case
    verdict: str
    detail: str
    result: Optional[Result]


class Context:
    """The binary, the limits, the fixtures: what the case builders and checks share."""

    def __init__(self, binary: Path, root: Path, timeout: float):
        self.binary = binary
        self.root = root
        self.timeout = timeout
        self.fx = root / "fixtures"
        self.fx.mkdir()
        self.env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def run(self, argv: Sequence[Arg], cwd: Path, timeout: Optional[float] = None) -> Result:
        full = [str(self.binary)] + [a if isinstance(a, bytes) else str(a) for a in argv]
        start = time.monotonic()
        proc = subprocess.Popen(full, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_cap_memory, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout or self.timeout)
            rc: Optional[int] = proc.returncode
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            rc = None
        return Result(full, cwd, rc, out, err, time.monotonic() - start)

    def must(self, argv: Sequence[Arg], cwd: Optional[Path] = None) -> Result:
        """Runs a fixture-building command that has to succeed."""
        r = self.run(argv, cwd or self.fx, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"fixture command failed ({r.returncode}): {shell_line(r.argv)}\n"
                               f"{r.err[-2000:]}")
        return r


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def judge(case: Case, r: Result) -> tuple[str, str]:
    err = r.err
    if r.returncode is None:
        return "HANG", f"no exit after {r.seconds:.0f} s"
    if r.returncode < 0:
        sig = -r.returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return "CRASH", f"killed by {name}"
    alloc = [m for m in ALLOC_MARKERS if m in err]
    if alloc:
        return "ALLOC", f"allocator message {alloc[0]!r} (exit {r.returncode})"
    leaked = [f"leaks {m!r}" for m in INTERNAL_MARKERS if m in err]
    leaked += [f"says {m!r}" for m in case.forbid if m in err]
    if r.returncode == 0:
        if not (case.valid or case.either):
            return "WRONG", "accepted (exit 0) an input it should refuse"
        missing = missing_expectations(case.expect_ok, r.out + "\n" + err)
        if missing:
            return "WRONG", f"exit 0 but the output lacks {missing}"
        if case.check:
            problem = case.check(CTX, r.cwd, r)
            if problem:
                return "WRONG", f"exit 0 but {problem}"
        if leaked:
            return "UNNAMED", f"exit 0 but stderr {leaked[0]}"
        return "PASS", ""
    if r.returncode not in (1, 2):
        return "WRONG", f"exit code {r.returncode}, expected 1 or 2"
    if case.valid:
        return "WRONG", f"refused a valid input (exit {r.returncode})"
    if leaked:
        return "UNNAMED", f"the message {leaked[0]}"
    missing = missing_expectations(case.expect, err + ("\n" + r.out if case.report_stdout else ""))
    if missing:
        return "UNNAMED", f"stderr does not name {missing}"
    return "PASS", ""


def missing_expectations(expect: list, text: str) -> list:
    missing = []
    for e in expect:
        alternatives = e if isinstance(e, tuple) else (e,)
        if not any(a in text for a in alternatives):
            missing.append(" | ".join(alternatives) if isinstance(e, tuple) else e)
    return missing


def run_case(case: Case, index: int) -> Verdict:
    tmp = CTX.root / f"case-{index:03d}"
    tmp.mkdir()
    try:
        argv = case.build(CTX, tmp)
    except Exception as e:  # a harness bug, not the binary's
        return Verdict(case, "ERROR", f"building the case failed: {type(e).__name__}: {e}", None)
    r = CTX.run(argv, tmp)
    try:
        verdict, detail = judge(case, r)
    except Exception as e:
        verdict, detail = "ERROR", f"judging failed: {type(e).__name__}: {e}"
    return Verdict(case, verdict, detail, r)


def shell_word(a: Union[str, bytes]) -> str:
    raw = a if isinstance(a, bytes) else a.encode("utf-8", "surrogateescape")
    if raw and re.fullmatch(rb"[A-Za-z0-9_./=:,+@%-]+", raw):
        return raw.decode()
    if all(0x20 <= b < 0x7F for b in raw) and b"'" not in raw:
        return "'" + raw.decode() + "'"
    out = []
    for b in raw:
        if 0x20 <= b < 0x7F and b not in b"'\\":
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "$'" + "".join(out) + "'"


def shell_line(argv: Sequence) -> str:
    return " ".join(shell_word(a) for a in argv)


# ---------------------------------------------------------------------------------------------
# Fixtures: built once, copied by the cases that change them


TINY_RECIPE = """\
[model]
network = "mbf"
embedding_size = 8

[loss]
margin_list = [1.0, 0.5, 0.0]
scale = 32.0

[data]
path = "{ds}"
num_workers = 0

[optim]
warmup_epoch = 0.0

[train]
batch_size = 8
num_epoch = 1
checkpoint_every = 1
frequent = 1
verbose = 100000

[eval]
val_targets = []

[log]
tensorboard = false
"""


def fx_ds(ctx: Context) -> None:
    """ds/: 4 identities x 4 images (2 training steps of 8); pairs.h5: 10 verification pairs."""
    ctx.must(["data", "synth", "--identities", "4", "--per-identity", "4", "--out", "ds",
              "--pairs", "10", "--pairs-out", "pairs.h5", "--heldout-identities", "4"])
    (ctx.fx / "recipe.toml").write_text(TINY_RECIPE.format(ds=ctx.fx / "ds"))


def fx_run(ctx: Context) -> None:
    """run/: a 2-step training with a checkpoint at each step; w.pt: its exported weights."""
    ctx.must(train_argv(ctx, ctx.fx / "run"))
    ctx.must(["export", "--checkpoint", "run", "--format", "pytorch", "--out", "w.pt"])


def fx_ijb(ctx: Context) -> None:
    """ijb/: a synthetic IJB-C benchmark of 4 images, 4 templates, 112x112 loose crops."""
    ctx.must(["data", "synth-ijb", "--out", "ijb", "--identities", "2", "--templates", "2",
              "--media", "1", "--images", "1", "--impostors", "1", "--photo-size", "112"])


def fx_faces(ctx: Context) -> None:
    """faces/: an image folder, two identities (id0, id1) of two JPEGs, cut from ds's shard."""
    jpegs = shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")
    for label in (0, 1):
        d = ctx.fx / "faces" / f"id{label}"
        d.mkdir(parents=True)
        for i, (data, lab) in enumerate(x for x in jpegs if x[1] == label):
            if i < 2:
                (d / f"{i}.jpg").write_bytes(data)


def fx_rec(ctx: Context) -> None:
    """rec/train.rec + train.idx: insightface RecordIO of four images, no header record."""
    jpegs = shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:4]
    write_recordio(ctx.fx / "rec", [(float(lab), data) for data, lab in jpegs])


FIXTURES = {"ds": (fx_ds, ()), "run": (fx_run, ("ds",)), "ijb": (fx_ijb, ()),
            "faces": (fx_faces, ("ds",)), "rec": (fx_rec, ("ds",))}


def build_fixtures(ctx: Context, names: set) -> None:
    done: set = set()

    def need(name: str) -> None:
        if name in done:
            return
        fn, deps = FIXTURES[name]
        for d in deps:
            need(d)
        fn(ctx)
        done.add(name)

    for n in sorted(names):
        need(n)


def train_argv(ctx: Context, output: Arg, *extra: str) -> list:
    return ["train", "--config", ctx.fx / "recipe.toml", "--output", output, *extra]


def copy_fx(ctx: Context, name: str, tmp: Path, as_name: Optional[Arg] = None) -> Path:
    src = ctx.fx / name
    dst = Path(os.fsdecode(as_name)) if as_name is not None else Path(name)
    dst = tmp / dst
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy(src, dst)
    return dst


def replace_with_fifo(path: Path) -> Path:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    os.mkfifo(path)
    return path


def replace_with_folder(path: Path) -> Path:
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("a folder where a file should be\n")
    return path


# ---- HDF5 (h5py) ----


def shard_jpegs(shard: Path) -> list:
    import h5py
    with h5py.File(shard, "r") as f:
        jpeg, offsets, labels = f["jpeg"][()], f["offsets"][()], f["labels"][()]
    return [(jpeg[offsets[i]:offsets[i + 1]].tobytes(), int(labels[i])) for i in range(len(labels))]


def read_h5(path: Path) -> dict:
    import h5py
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def rewrite_shard(ds: Path, arrays: dict, attr_writer: Callable, num_samples: Optional[int] = None):
    """Writes ds/shard-00000.h5 with h5py from `arrays` (attributes by `attr_writer(file)`) and
    brings the manifest's bytes and crc32 (and num_samples) up to date, so that only the change
    under test is wrong."""
    import h5py
    shard = ds / "shard-00000.h5"
    shard.unlink()
    with h5py.File(shard, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        attr_writer(f)
    data = shard.read_bytes()
    m = json.loads((ds / "manifest.json").read_text())
    m["shards"][0]["bytes"] = len(data)
    m["shards"][0]["crc32"] = zlib.crc32(data)
    if num_samples is not None:
        m["shards"][0]["num_samples"] = num_samples
        m["num_samples"] = num_samples
    (ds / "manifest.json").write_text(json.dumps(m, indent=2))


# ---- RecordIO ----

REC_MAGIC = 0xCED7230A


def rec_record(payload: bytes, cflag: int = 0, length: Optional[int] = None) -> bytes:
    n = len(payload) if length is None else length
    pad = (-len(payload)) % 4
    return struct.pack("<II", REC_MAGIC, (cflag << 29) | n) + payload + b"\0" * pad


def ir_header(label: float, ident: int, flag: int = 0) -> bytes:
    return struct.pack("<IfQQ", flag, label, ident, 0)


def write_recordio(folder: Path, images: list, idx_override: Optional[list] = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec, offsets = bytearray(), []
    for key, (label, data) in enumerate(images):
        payload = ir_header(label, key) + data
        magic = struct.pack("<I", REC_MAGIC)
        assert all(payload[i:i + 4] != magic for i in range(0, len(payload), 4)), "magic inside"
        offsets.append(len(rec))
        rec += rec_record(payload)
    (folder / "train.rec").write_bytes(bytes(rec))
    lines = idx_override if idx_override is not None else list(enumerate(offsets))
    (folder / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in lines))


# ---- Pickle (insightface .bin packs, torch.save archives), opcode by opcode ----


def p_int(n: int) -> bytes:
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def p_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def p_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def p_bytes(data: bytes, declared: Optional[int] = None) -> bytes:
    return b"B" + struct.pack("<I", len(data) if declared is None else declared) + data


def p_u8_array(data: bytes, length: Optional[int] = None, declared: Optional[int] = None) -> bytes:
    """numpy.core.multiarray._reconstruct of a uint8 array of shape (length, 1), as
    insightface's packs hold each image; `length` and `declared` (the BINBYTES count) may lie."""
    n = len(data) if length is None else length
    return (p_global("numpy.core.multiarray", "_reconstruct") + p_global("numpy", "ndarray")
            + p_int(0) + b"\x85" + b"C\x01b" + b"\x87" + b"R"
            + b"(" + p_int(1) + p_int(n) + p_int(1) + b"\x86"
            + p_global("numpy", "dtype") + p_str("u1") + b"\x89\x88\x87R"
            + b"(" + p_int(3) + p_str("|") + b"NNN" + p_int(-1) + p_int(-1) + p_int(0) + b"tb"
            + b"\x89" + p_bytes(data, declared) + b"tb")


def p_bin_pack(images: list, issame: list) -> bytes:
    """(bins, issame_list) at protocol 3: bins a list of uint8 arrays (pre-encoded opcodes)."""
    return (b"\x80\x03" + b"](" + b"".join(images) + b"e"
            + b"](" + b"".join(b"\x88" if s else b"\x89" for s in issame) + b"e"
            + b"\x86.")


def p_deep_list(depth: int, proto: int = 2) -> bytes:
    return bytes([0x80, proto]) + b"]" * depth + b"a" * (depth - 1) + b"."


def p_tensor(numel: int, size: tuple, stride: tuple, storage_key: str = "0") -> bytes:
    """torch._utils._rebuild_tensor_v2 of a float tensor over storage `storage_key` of `numel`
    elements, as torch.save writes it."""
    persid = (b"(" + p_str("storage") + p_global("torch", "FloatStorage") + p_str(storage_key)
              + p_str("cpu") + p_int(numel) + b"tQ")
    return (p_global("torch._utils", "_rebuild_tensor_v2") + b"(" + persid + p_int(0)
            + b"(" + b"".join(p_int(s) for s in size) + b"t"
            + b"(" + b"".join(p_int(s) for s in stride) + b"t"
            + b"\x89" + p_global("collections", "OrderedDict") + b")R" + b"tR")


def write_torch_zip(path: Path, data_pkl: bytes, storages: dict, base: Optional[Path] = None):
    """A torch.save zip archive (stored, as torch writes it); with `base`, its other entries
    are copied from that archive and only data.pkl and `storages` are replaced."""
    entries: dict = {}
    if base is not None:
        with zipfile.ZipFile(base) as z:
            for info in z.infolist():
                entries[info.filename] = z.read(info)
    prefix = next((n.split("/")[0] for n in entries), "archive")
    entries[f"{prefix}/data.pkl"] = data_pkl
    entries.setdefault(f"{prefix}/version", b"3\n")
    entries.setdefault(f"{prefix}/byteorder", b"little")
    for key, data in storages.items():
        entries[f"{prefix}/data/{key}"] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def torch_save(path: Path, tensors: dict) -> None:
    import torch
    torch.save(tensors, path)


# ---- Text files ----


def edit_lines(path: Path, fn: Callable[[list], list]) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def toml_string(s: str) -> str:
    """A TOML basic string holding s: control characters escaped, the rest as UTF-8."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------------------------
# Cases. Each builder gets the context and its empty folder and returns the arguments.

CASES: list = []


def case(name: str, klass: str, **kw) -> Callable:
    def register(build: Callable) -> Callable:
        CASES.append(Case(name, klass, build, **kw))
        return build
    return register


def add(name: str, klass: str, build: Callable, **kw) -> None:
    CASES.append(Case(name, klass, build, **kw))


# Per-case helpers shared by several builders.

def eval_weights_argv(weights: Arg, *rest: Arg) -> list:
    return ["eval", "--weights", weights, "--network", "mbf", *rest]


def align_inputs(ctx: Context, tmp: Path) -> tuple[Path, Path]:
    """An align job: ijb's loose crops and their landmarks file (insightface's format)."""
    ijb = copy_fx(ctx, "ijb", tmp)
    return ijb / "loose_crop", ijb / "meta" / "ijbc_name_5pts_score.txt"


def align_argv(images: Path, landmarks: Arg, *rest: str) -> list:
    return ["data", "align", "--input", images, "--landmarks", landmarks, "--out", "aligned", *rest]


# ===== 0 controls: the untouched fixtures must pass, or the other verdicts mean nothing =====

K0 = "0 controls"

add("verify-synth-dataset", K0, lambda c, t: ["data", "verify", c.fx / "ds"], valid=True,
    needs=("ds",))
add("eval-weights-bench", K0, lambda c, t: eval_weights_argv(c.fx / "w.pt", "--bench",
                                                             c.fx / "pairs.h5"),
    valid=True, needs=("run",))
add("eval-ijb", K0, lambda c, t: eval_weights_argv(c.fx / "w.pt", "--ijb", c.fx / "ijb"),
    valid=True, needs=("run", "ijb"))


@case("align-ijb-crops", K0, valid=True, needs=("ijb",))
def _(ctx, tmp):
    return align_argv(*align_inputs(ctx, tmp))


@case("pack-folder", K0, valid=True, needs=("faces",))
def _(ctx, tmp):
    return ["data", "pack", "--from", "folder", "--input", ctx.fx / "faces", "--out", "out"]


@case("pack-recordio", K0, valid=True, needs=("rec",))
def _(ctx, tmp):
    return ["data", "pack", "--from", "recordio", "--input", ctx.fx / "rec" / "train.rec",
            "--out", "out"]


@case("pack-bin-written-here", K0, valid=True, needs=("ds",))
def _(ctx, tmp):
    jpegs = [d for d, _ in shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:4]]
    (tmp / "p.bin").write_bytes(p_bin_pack([p_u8_array(j) for j in jpegs], [True, False]))
    return ["data", "pack", "--from", "bin", "--input", "p.bin", "--out", "p.h5"]


def real_bin_pack(ctx: Context) -> bytes:
    """insightface's own pickling (small_lfw.bin), or one written here when it is not there."""
    if SHARED_BIN.is_file():
        return SHARED_BIN.read_bytes()
    jpegs = [d for d, _ in shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:4]]
    return p_bin_pack([p_u8_array(j) for j in jpegs], [True, False])


@case("pack-bin-shared-lfw", K0, valid=True, needs=("ds",))
def _(ctx, tmp):
    (tmp / "lfw.bin").write_bytes(real_bin_pack(ctx))
    return ["data", "pack", "--from", "bin", "--input", "lfw.bin", "--out", "lfw.h5"]


@case("train-resume-intact", K0, valid=True, needs=("run",),
      expect_ok=["resumed from", "step-0000002"])
def _(ctx, tmp):
    run = copy_fx(ctx, "run", tmp)
    return train_argv(ctx, run, "--resume", "auto")


# ===== 1 non-regular files =====

K1 = "1 non-regular files"


def nonreg(name: str, what: str, build: Callable, blocking: bool = True, **kw) -> None:
    """A case whose input `what` (a base name) is a FIFO, a folder or a device."""
    add(name, K1, build, expect=[what, NON_REGULAR], blocking=blocking, **kw)


def _align_image_fifo(ctx, tmp):
    images, landmarks = align_inputs(ctx, tmp)
    replace_with_fifo(images / "1.jpg")
    return align_argv(images, landmarks)


def _align_image_folder(ctx, tmp):
    images, landmarks = align_inputs(ctx, tmp)
    replace_with_folder(images / "1.jpg")
    return align_argv(images, landmarks)


def _align_landmarks_fifo(ctx, tmp):
    images, landmarks = align_inputs(ctx, tmp)
    return align_argv(images, replace_with_fifo(tmp / "lm.txt"))


def _align_landmarks_devzero(ctx, tmp):
    images, _ = align_inputs(ctx, tmp)
    return align_argv(images, "/dev/zero")


def _dataset_with(kind: Callable, file: str, command: str) -> Callable:
    def build(ctx, tmp):
        ds = copy_fx(ctx, "ds", tmp)
        kind(ds / file)
        return ["data", command, ds]
    return build


def _config_fifo(command: list) -> Callable:
    def build(ctx, tmp):
        replace_with_fifo(tmp / "c.toml")
        return [*command, "--config", "c.toml"]
    return build


def _train_config(path: str) -> Callable:
    def build(ctx, tmp):
        if path == "c.toml":
            replace_with_fifo(tmp / "c.toml")
        return ["train", "--config", path, "--output", "run"]
    return build


def _weights_fifo(command: str) -> Callable:
    def build(ctx, tmp):
        w = replace_with_fifo(tmp / "w.pt")
        if command == "eval":
            return eval_weights_argv(w, "--bench", ctx.fx / "pairs.h5")
        return ["export", "--weights", w, "--network", "mbf", "--format", "pytorch",
                "--out", "o.pt"]
    return build


def _weights_devzero(command: str) -> Callable:
    def build(ctx, tmp):
        if command == "eval":
            return eval_weights_argv("/dev/zero", "--bench", ctx.fx / "pairs.h5")
        return ["export", "--weights", "/dev/zero", "--network", "mbf", "--format", "pytorch",
                "--out", "o.pt"]
    return build


def _checkpoint_backbone(kind: Callable) -> Callable:
    def build(ctx, tmp):
        ckpt = copy_fx(ctx, "run/checkpoints/step-0000002", tmp, "ckpt")
        kind(ckpt / "backbone.pt")
        return ["export", "--checkpoint", ckpt, "--format", "pytorch", "--out", "o.pt"]
    return build


def _bench_fifo(ctx, tmp):
    return eval_weights_argv(ctx.fx / "w.pt", "--bench", replace_with_fifo(tmp / "set.h5"))


def _bench_devzero(ctx, tmp):
    return eval_weights_argv(ctx.fx / "w.pt", "--bench", "/dev/zero")


def _pack_bin_fifo(ctx, tmp):
    return ["data", "pack", "--from", "bin", "--input", replace_with_fifo(tmp / "lfw.bin"),
            "--out", "lfw.h5"]


def _pack_rec(file: str) -> Callable:
    def build(ctx, tmp):
        rec = copy_fx(ctx, "rec", tmp)
        replace_with_fifo(rec / file)
        return ["data", "pack", "--from", "recordio", "--input", rec / "train", "--out", "out"]
    return build


def _train_manifest(kind: Callable) -> Callable:
    def build(ctx, tmp):
        ds = copy_fx(ctx, "ds", tmp)
        kind(ds / "manifest.json")
        return train_argv(ctx, "run", "--set", f'data.path="{ds}"')
    return build


def _ijb_meta_fifo(ctx, tmp):
    ijb = copy_fx(ctx, "ijb", tmp)
    replace_with_fifo(ijb / "meta" / "ijbc_name_5pts_score.txt")
    return eval_weights_argv(ctx.fx / "w.pt", "--ijb", ijb)


nonreg("align-image-fifo", "1.jpg", _align_image_fifo, needs=("ijb",))
nonreg("align-image-folder", "1.jpg", _align_image_folder, needs=("ijb",), blocking=False)
nonreg("align-landmarks-fifo", "lm.txt", _align_landmarks_fifo, needs=("ijb",))
nonreg("align-landmarks-dev-zero", "/dev/zero", _align_landmarks_devzero, needs=("ijb",),
       blocking=False)
for _cmd in ("info", "verify"):
    _rs = _cmd == "verify"
    nonreg(f"{_cmd}-shard-fifo", "shard-00000.h5",
           _dataset_with(replace_with_fifo, "shard-00000.h5", _cmd), needs=("ds",),
           report_stdout=_rs)
    nonreg(f"{_cmd}-shard-folder", "shard-00000.h5",
           _dataset_with(replace_with_folder, "shard-00000.h5", _cmd), needs=("ds",),
           blocking=False, report_stdout=_rs)
    nonreg(f"{_cmd}-manifest-fifo", "manifest.json",
           _dataset_with(replace_with_fifo, "manifest.json", _cmd), needs=("ds",),
           report_stdout=_rs)
    nonreg(f"{_cmd}-manifest-folder", "manifest.json",
           _dataset_with(replace_with_folder, "manifest.json", _cmd), needs=("ds",),
           blocking=False, report_stdout=_rs)
nonreg("train-manifest-folder", "manifest.json", _train_manifest(replace_with_folder),
       needs=("ds",), blocking=False)
nonreg("train-manifest-fifo", "manifest.json", _train_manifest(replace_with_fifo), needs=("ds",))
nonreg("config-show-fifo", "c.toml", _config_fifo(["config", "show"]))
nonreg("train-config-fifo", "c.toml", _train_config("c.toml"))
nonreg("config-show-dev-zero", "/dev/zero",
       lambda c, t: ["config", "show", "--config", "/dev/zero"], blocking=False)
nonreg("train-config-dev-zero", "/dev/zero", _train_config("/dev/zero"), blocking=False)
nonreg("eval-weights-fifo", "w.pt", _weights_fifo("eval"), needs=("run",))
nonreg("export-weights-fifo", "w.pt", _weights_fifo("export"))
nonreg("eval-weights-dev-zero", "/dev/zero", _weights_devzero("eval"), needs=("run",),
       blocking=False)
nonreg("export-weights-dev-zero", "/dev/zero", _weights_devzero("export"), blocking=False)
nonreg("export-checkpoint-backbone-fifo", "backbone.pt", _checkpoint_backbone(replace_with_fifo),
       needs=("run",))
nonreg("export-checkpoint-backbone-folder", "backbone.pt",
       _checkpoint_backbone(replace_with_folder), needs=("run",), blocking=False)
nonreg("eval-bench-fifo", "set.h5", _bench_fifo, needs=("run",))
nonreg("eval-bench-dev-zero", "/dev/zero", _bench_devzero, needs=("run",), blocking=False)
nonreg("pack-bin-fifo", "lfw.bin", _pack_bin_fifo)
nonreg("pack-recordio-idx-fifo", "train.idx", _pack_rec("train.idx"), needs=("rec",))
nonreg("pack-recordio-rec-fifo", "train.rec", _pack_rec("train.rec"), needs=("rec",))
nonreg("eval-ijb-landmarks-fifo", "ijbc_name_5pts_score.txt", _ijb_meta_fifo,
       needs=("run", "ijb"))


# ===== 2 integer overflow =====

K2 = "2 integer overflow"
I64_MAX = 2**63 - 1
I64_MIN = -2**63


def train_set(*sets: str) -> Callable:
    def build(ctx, tmp):
        args = train_argv(ctx, "run")
        for s in sets:
            args += ["--set", s]
        return args
    return build


add("train-batch-size-option", K2,
    lambda c, t: train_argv(c, "run", "--batch-size", str(I64_MAX)),
    expect=["--batch-size"], needs=("ds",))
for _v in (I64_MAX, 2**63, -2**63 - 1):
    add(f"set-train.batch_size={_v}", K2, train_set(f"train.batch_size={_v}"),
        expect=["train.batch_size"], needs=("ds",))
add("set-train.num_epoch=int64-max", K2, train_set(f"train.num_epoch={I64_MAX}"),
    expect=["train.num_epoch"], needs=("ds",))
add("set-data.num_samples=2^63", K2, train_set(f"data.num_samples={2**63}"),
    expect=["data.num_samples"], needs=("ds",))
for _v in ("inf", "nan"):
    add(f"set-dist.timeout_s={_v}", K2, train_set(f"dist.timeout_s={_v}"),
        expect=["dist.timeout_s"], needs=("ds",))
# Seconds beyond any clock's range: refused by name, or honoured (the run completes).
for _v in ("1e12", "1e300"):
    add(f"set-dist.timeout_s={_v}", K2, train_set(f"dist.timeout_s={_v}"),
        expect=["dist.timeout_s"], either=True, needs=("ds",))
add("env-timeout=1e300", K2, lambda c, t: ["env", "--timeout", "1e300", "--check",
                                           "--check-mb", "0.01"],
    expect=["--timeout"], either=True)
add("eval-timeout=1e300", K2, lambda c, t: eval_weights_argv(c.fx / "w.pt", "--bench",
                                                             c.fx / "pairs.h5", "--timeout",
                                                             "1e300"),
    expect=["--timeout"], either=True, needs=("run",))
add("intervals-int64-max", K2,
    train_set(f"train.checkpoint_every={I64_MAX}", f"train.frequent={I64_MAX}",
              f"train.verbose={I64_MAX}", f"train.seed={I64_MAX}"),
    valid=True, needs=("ds",))
add("eval-batch-size-int64-max", K2,
    lambda c, t: eval_weights_argv(c.fx / "w.pt", "--bench", c.fx / "pairs.h5", "--batch-size",
                                   str(I64_MAX)),
    expect=["--batch-size"], either=True, needs=("run",))
add("synth-identities-x-per-identity", K2,
    lambda c, t: ["data", "synth", "--identities", str(I64_MAX), "--per-identity", str(I64_MAX),
                  "--out", "ds"],
    expect=[("--identities", "--per-identity")])
add("synth-ijb-image-count", K2,
    lambda c, t: ["data", "synth-ijb", "--out", "ijb", "--identities", "1000000", "--templates",
                  "1000", "--media", "1000", "--images", "1000"],
    expect=[("--identities", "--templates", "--media", "--images")])
add("pack-shard-size-int64-max", K2,
    lambda c, t: ["data", "pack", "--from", "folder", "--input", c.fx / "faces", "--out", "out",
                  "--shard-size", str(I64_MAX)],
    valid=True, needs=("faces",))

IJB_META = ("ijbc_face_tid_mid.txt", "ijbc_template_pair_label.txt", "ijbc_1N_gallery_G1.csv",
            "ijbc_1N_gallery_G2.csv", "ijbc_1N_probe_mixed.csv")


def renumber_templates(ijb: Path, mapping: dict) -> None:
    """Replaces template ids in every meta file that holds them."""
    def sub(field: str) -> str:
        return str(mapping.get(int(field), field)) if field.lstrip("-").isdigit() else field

    meta = ijb / "meta"
    edit_lines(meta / "ijbc_face_tid_mid.txt",
               lambda ls: [" ".join([f[0], sub(f[1]), *f[2:]]) for f in map(str.split, ls)])
    edit_lines(meta / "ijbc_template_pair_label.txt",
               lambda ls: [" ".join([sub(f[0]), sub(f[1]), *f[2:]]) for f in map(str.split, ls)])
    for csv in IJB_META[2:]:
        edit_lines(meta / csv, lambda ls: ls[:1] + [",".join([sub(l.split(",")[0]),
                                                               *l.split(",")[1:]])
                                                     for l in ls[1:]])


def _ijb_templates(mapping: dict) -> Callable:
    def build(ctx, tmp):
        ijb = copy_fx(ctx, "ijb", tmp)
        renumber_templates(ijb, mapping)
        return eval_weights_argv(ctx.fx / "w.pt", "--ijb", ijb)
    return build


# int64's extremes are ids like any other: evaluated, or refused naming the file.
add("ijb-template-ids-int64-extremes", K2, _ijb_templates({1: I64_MAX, 2: I64_MIN}),
    expect=[IJB_META], either=True, needs=("run", "ijb"))
add("ijb-template-id-int64-min", K2, _ijb_templates({2: I64_MIN}),
    expect=[IJB_META], either=True, needs=("run", "ijb"))
add("ijb-template-id-2^63", K2, _ijb_templates({1: 2**63}),
    expect=[IJB_META, "9223372036854775808"], needs=("run", "ijb"))
add("ijb-template-id-minus-2^63-1", K2, _ijb_templates({2: -2**63 - 1}),
    expect=[IJB_META, "9223372036854775809"], needs=("run", "ijb"))


# ===== 3 sizes from input, bounded before allocation =====

K3 = "3 sizes bounded"
MBF_EMBEDDING = "features.layers.2.weight"  # models/backbone.cpp: mbf's embedding_weight


def _embedding_shape(rows: int, full: bool, command: str) -> Callable:
    def build(ctx, tmp):
        import torch
        tensors = torch.load(ctx.fx / "w.pt") if full else {}
        tensors[MBF_EMBEDDING] = torch.empty(rows, 0)
        torch_save(tmp / "big.pt", tensors)
        if command == "eval":
            return eval_weights_argv("big.pt", "--bench", ctx.fx / "pairs.h5")
        return ["export", "--weights", "big.pt", "--network", "mbf", "--format", "pytorch",
                "--out", "o.pt"]
    return build


add("eval-embedding-weight-2^31x0", K3, _embedding_shape(2**31, False, "eval"),
    expect=["big.pt"], needs=("run",))
add("export-full-weights-embedding-2^31x0", K3, _embedding_shape(2**31, True, "export"),
    expect=["big.pt"], needs=("run",))
add("export-embedding-weight-2^62x0", K3, _embedding_shape(2**62, False, "export"),
    expect=["big.pt"], needs=("run",))


def _torch_zip_tensor(numel: int, size: tuple, stride: tuple, storage_bytes: int) -> Callable:
    def build(ctx, tmp):
        pkl = (b"\x80\x02" + p_global("collections", "OrderedDict") + b")R(" + p_str(MBF_EMBEDDING)
               + p_tensor(numel, size, stride) + b"u.")
        write_torch_zip(tmp / "big.pt", pkl, {"0": b"\0" * storage_bytes})
        return ["export", "--weights", "big.pt", "--network", "mbf", "--format", "pytorch",
                "--out", "o.pt"]
    return build


add("pt-storage-numel-2^40-holds-16-bytes", K3, _torch_zip_tensor(2**40, (2**20, 2**20),
                                                                   (2**20, 1), 16),
    expect=["big.pt"])
add("pt-size-x-stride-overflows", K3, _torch_zip_tensor(4, (2**62, 4), (4, 1), 16),
    expect=["big.pt"])
add("pt-negative-size", K3, _torch_zip_tensor(4, (-1, 4), (4, 1), 16), expect=["big.pt"])


def _manifest_num_classes(text: str, command: str) -> Callable:
    def build(ctx, tmp):
        ds = copy_fx(ctx, "ds", tmp)
        edit_text(ds / "manifest.json", '"num_classes": 4', f'"num_classes": {text}')
        if command == "train":
            return train_argv(ctx, "run", "--set", f'data.path="{ds}"')
        return ["data", command, ds]
    return build


for _text in ("1e12", "1000000000000"):
    for _cmd in ("info", "verify", "train"):
        add(f"{_cmd}-manifest-num_classes={_text}", K3, _manifest_num_classes(_text, _cmd),
            expect=["num_classes"], needs=("ds",), report_stdout=_cmd == "verify")


@case("verify-manifest-num_samples-2^40", K3, expect=["num_samples"], needs=("ds",),
      report_stdout=True)
def _(ctx, tmp):
    ds = copy_fx(ctx, "ds", tmp)
    edit_text(ds / "manifest.json", '"num_samples": 16', f'"num_samples": {2**40}')
    return ["data", "verify", ds]


for _size in ("1000000", str(I64_MAX)):
    add(f"align-size-{_size}", K3,
        lambda c, t, s=_size: align_argv(*align_inputs(c, t), "--size", s),
        expect=["--size"], needs=("ijb",))


@case("recordio-idx-keys-share-offset", K3, expect=["train.idx", "offset"], needs=("ds",))
def _(ctx, tmp):
    jpegs = shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:3]
    write_recordio(tmp / "rec", [(float(l), d) for d, l in jpegs],
                   idx_override=[(0, 0), (1, 0), (2, 0)])
    return ["data", "pack", "--from", "recordio", "--input", tmp / "rec" / "train", "--out", "out"]


@case("recordio-length-beyond-file", K3, expect=["train.rec"], needs=("ds",))
def _(ctx, tmp):
    (tmp / "rec").mkdir()
    (tmp / "rec" / "train.rec").write_bytes(rec_record(ir_header(0, 0) + b"\xff\xd8",
                                                       length=(1 << 29) - 1))
    (tmp / "rec" / "train.idx").write_text("0\t0\n")
    return ["data", "pack", "--from", "recordio", "--input", tmp / "rec" / "train", "--out", "out"]


@case("recordio-header-record-range-1e12", K3, expect=["train.rec"], needs=("ds",))
def _(ctx, tmp):
    # insightface's header record 0: flag 2, labels [a, b] = images 1..a-1, identities a..b-1.
    header = struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<ff", 1e12, 2e12)
    jpegs = shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:1]
    rec = rec_record(header)
    offsets = [0, len(rec)]
    rec += rec_record(ir_header(0, 1) + jpegs[0][0])
    (tmp / "rec").mkdir()
    (tmp / "rec" / "train.rec").write_bytes(rec)
    (tmp / "rec" / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in enumerate(offsets)))
    return ["data", "pack", "--from", "recordio", "--input", tmp / "rec" / "train", "--out", "out"]


def _bin(content: Callable[[list], bytes], name: str = "evil.bin") -> Callable:
    def build(ctx, tmp):
        jpegs = [d for d, _ in shard_jpegs(ctx.fx / "ds" / "shard-00000.h5")[:4]]
        (tmp / name).write_bytes(content(jpegs))
        return ["data", "pack", "--from", "bin", "--input", name, "--out", "out.h5"]
    return build


add("bin-array-shape-524M-holds-100-bytes", K3,
    _bin(lambda j: p_bin_pack([p_u8_array(j[0][:100], length=524_288_000)]
                              + [p_u8_array(x) for x in j[1:]], [True, False])),
    expect=["evil.bin"], needs=("ds",))
add("bin-binbytes-524M-file-ends", K3,
    _bin(lambda j: (b"\x80\x03](" + p_u8_array(j[0][:100], length=524_288_000,
                                               declared=524_288_000))),
    expect=["evil.bin"], needs=("ds",))
add("bin-shape-2^62", K3,
    _bin(lambda j: p_bin_pack([p_u8_array(j[0][:100], length=2**62)]
                              + [p_u8_array(x) for x in j[1:]], [True, False])),
    expect=["evil.bin"], needs=("ds",))
# A memo index is a key, not a size: taken (a sparse memo) or refused, never allocated.
add("bin-memo-index-4G", K3,
    _bin(lambda j: p_bin_pack([p_u8_array(x) for x in j], [True, False]).replace(
        b"\x80\x03](", b"\x80\x03]r" + struct.pack("<I", 0xFFFFFFF0) + b"(", 1)),
    expect=["evil.bin"], either=True, needs=("ds",))
add("bin-deep-nesting-200000", K3, _bin(lambda j: p_deep_list(200_000, 3)),
    expect=["evil.bin"], needs=("ds",))
@case("bin-gzip-compressed", K3, expect=["lfw.bin.gz"], needs=("ds",))
def _(ctx, tmp):
    # The reader has no gzip support: a compressed pack is refused by name, not misread.
    (tmp / "lfw.bin.gz").write_bytes(gzip.compress(real_bin_pack(ctx)))
    return ["data", "pack", "--from", "bin", "--input", "lfw.bin.gz", "--out", "lfw.h5"]


# ===== 4 resume from a damaged newest checkpoint =====

K4 = "4 resume"
NEWEST = "step-0000002"


def fell_back(ctx, tmp, r: Result) -> Optional[str]:
    """The run warned about the newest checkpoint and resumed from the previous one."""
    lines = (r.out + "\n" + r.err).splitlines()
    warned = [l for l in lines if NEWEST in l and re.search(r"damaged|skipp|unusable|cannot", l)]
    resumed = [l for l in lines if "resumed from" in l]
    if not warned:
        return f"no warning naming {NEWEST}"
    if not resumed:
        return "no 'resumed from' line (a fresh start?)"
    if "step-0000001" not in resumed[0]:
        return f"it resumed from elsewhere: {resumed[0].strip()}"
    return None


def resume_case(name: str, damage: Callable[[Path], None], **kw) -> None:
    """A copy of the 2-checkpoint run with its newest checkpoint damaged by `damage(dir)`:
    `train --resume auto` must warn naming it and resume from step-0000001."""
    def build(ctx, tmp):
        run = copy_fx(ctx, "run", tmp)
        damage(run / "checkpoints" / NEWEST)
        return train_argv(ctx, run, "--resume", "auto")
    opts = dict(valid=True, check=fell_back, needs=("run",))
    opts.update(kw)
    add(name, K4, build, **opts)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def edit_state(**changes) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        state = json.loads((ckpt / "state.json").read_text())
        state.update(changes)
        (ckpt / "state.json").write_text(json.dumps(state, indent=2))
    return damage


def fc_zero_dim(ckpt: Path) -> None:
    import torch
    torch_save(ckpt / "fc-0-4.pt", {"weight": torch.tensor(1.0), "momentum": torch.tensor(1.0)})


def deep_zip(file: str) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        write_torch_zip(ckpt / f"{file}.new", p_deep_list(200_000), {}, base=ckpt / file)
        os.replace(ckpt / f"{file}.new", ckpt / file)
    return damage


resume_case("optimizer-truncated", lambda d: truncate(d / "optimizer.pt"))
resume_case("backbone-truncated", lambda d: truncate(d / "backbone.pt"))
resume_case("fc-0-dim-tensors", fc_zero_dim)
resume_case("fc-truncated", lambda d: truncate(d / "fc-0-4.pt"))
resume_case("state-step-not-folder", edit_state(step=7))
resume_case("state-world-size-2-one-fc-file", edit_state(world_size=2))
resume_case("state-consumed-10^15", edit_state(consumed=10**15))
resume_case("state-consumed-negative", edit_state(consumed=-1))
resume_case("state-epoch-int64-max", edit_state(epoch=I64_MAX))
resume_case("state-fifo", lambda d: replace_with_fifo(d / "state.json"), blocking=True)
# A deeply nested pickle must not overflow the stack: refused naming the file, or skipped.
resume_case("optimizer-deep-pickle-200000", deep_zip("optimizer.pt"), valid=False, either=True,
            expect=["optimizer.pt"])
resume_case("optimizer-raw-deep-pickle", lambda d: (d / "optimizer.pt").write_bytes(
    p_deep_list(200_000)), valid=False, either=True, expect=["optimizer.pt"])
resume_case("fc-deep-pickle-200000", deep_zip("fc-0-4.pt"))


def forge(file: str, write: Callable[[Path], None]) -> Callable[[Path], None]:
    """Rewrites `file` of the checkpoint with `write(path)` and lists its new size and CRC-32 in
    state.json, so that only its content is wrong (the checks past the checksums are reached)."""
    def damage(ckpt: Path) -> None:
        write(ckpt / file)
        data = (ckpt / file).read_bytes()
        state = json.loads((ckpt / "state.json").read_text())
        state["files"][file] = {"bytes": len(data), "crc32": zlib.crc32(data)}
        (ckpt / "state.json").write_text(json.dumps(state, indent=2))
    return damage


def _fc_rows(rows: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch
        torch_save(path, {"weight": torch.zeros(rows, 8), "momentum": torch.zeros(rows, 8)})
    return write


def _optimizer_wrong_shape(path: Path) -> None:
    import torch
    torch_save(path, {"state.0.momentum_buffer": torch.zeros(3, 5, 7)})


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))


def _head_unlisted(ckpt: Path) -> None:
    import torch
    torch_save(ckpt / "head.pt", {"t": torch.tensor(0.5)})


def _state_long_name(ckpt: Path) -> None:
    state = json.loads((ckpt / "state.json").read_text())
    state["files"]["x" * 300] = {"bytes": 1, "crc32": 0}
    (ckpt / "state.json").write_text(json.dumps(state, indent=2))


def _fc_zero_dim_file(path: Path) -> None:
    import torch
    torch_save(path, {"weight": torch.tensor(1.0), "momentum": torch.tensor(1.0)})


resume_case("fc-0-dim-listed", forge("fc-0-4.pt", _fc_zero_dim_file))
resume_case("fc-no-rows-listed", forge("fc-0-4.pt", _fc_rows(0)))
resume_case("fc-wrong-rows-listed", forge("fc-0-4.pt", _fc_rows(3)))
resume_case("optimizer-wrong-shape-listed", forge("optimizer.pt", _optimizer_wrong_shape))
resume_case("optimizer-deep-pickle-listed", forge("optimizer.pt", lambda p: p.write_bytes(
    p_deep_list(200_000))))
resume_case("backbone-byte-flipped", lambda d: _flip_last_byte(d / "backbone.pt"))
resume_case("optimizer-grown", lambda d: (d / "optimizer.pt").write_bytes(
    (d / "optimizer.pt").read_bytes() + b"\0"))
resume_case("head-unlisted", _head_unlisted)
resume_case("state-file-name-300-bytes", _state_long_name)
resume_case("state-version-1", edit_state(version=1))
resume_case("state-no-files", lambda d: (d / "state.json").write_text(json.dumps(
    {k: v for k, v in json.loads((d / "state.json").read_text()).items() if k != "files"})))


@case("run-folder-not-utf8", K4, valid=True, expect_ok=["resumed from"], needs=("run",))
def _(ctx, tmp):
    name = os.fsencode(tmp) + b"/run-\xff\xfe"
    shutil.copytree(ctx.fx / "run", os.fsdecode(name), symlinks=True)
    return train_argv(ctx, name, "--resume", "auto")


# ===== 5 config strings: config show's output must read back as the same configuration =====

K5 = "5 config strings"


def config_roundtrip(key: str, value, via_set: bool = False, raw_file_text: Optional[str] = None):
    """`config show` of a configuration whose `key` holds `value` must be TOML that holds the
    value (read by Python's tomllib), and, written to a file and shown again, the same bytes."""
    section, leaf = key.split(".")
    literal = ("[" + ", ".join(toml_string(v) for v in value) + "]"
               if isinstance(value, list) else toml_string(value))

    def build(ctx, tmp):
        if via_set:
            return ["config", "show", "--set", f"{key}={literal}"]
        text = raw_file_text if raw_file_text is not None else f"[{section}]\n{leaf} = {literal}\n"
        (tmp / "c.toml").write_bytes(text.encode("utf-8", "surrogatepass"))
        return ["config", "show", "--config", "c.toml"]

    def check(ctx, tmp, r: Result) -> Optional[str]:
        try:
            shown = tomllib.loads(r.stdout.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            return f"its output is not TOML: {e}"
        if shown.get(section, {}).get(leaf) != value:
            return f"its output has {key} = {shown.get(section, {}).get(leaf)!r}, not {value!r}"
        (tmp / "shown.toml").write_bytes(r.stdout)
        again = ctx.run(["config", "show", "--config", "shown.toml"], tmp)
        if again.returncode != 0:
            last = again.err.strip().splitlines()[-1:] or [""]
            return f"its output does not read back (exit {again.returncode}): {last[0]}"
        if again.stdout != r.stdout:
            return "its output, read back and shown again, differs"
        return None

    return build, check


CONFIG_STRINGS = [
    ("data.path", "U+0001", "a\x01b"),
    ("data.path", "U+001F-U+007F", "a\x1fb\x7fc"),
    ("train.output", "U+0008-U+000C-U+001B", "run\b\x0c\x1b[0m"),
    ("train.output", "newline-tab-cr", "a\nb\tc\rd"),
    ("eval.val_dir", "U+FFFF", "v\uffffw"),
    ("eval.val_dir", "emoji", "faces \U0001F600 \U0001F469\u200d\U0001F4BB"),
    ("dist.interface", "quote-backslash", 'e"t\\h0'),
    ("dist.interface", "U+0085-U+2028-U+FEFF", "a\x85b\u2028c\ufeffd"),
    ("data.path", "U+0000", "a\x00b"),
]
for _key, _label, _value in CONFIG_STRINGS:
    _b, _c = config_roundtrip(_key, _value)
    add(f"{_key}-{_label}", K5, _b, valid=True, check=_c)
_b, _c = config_roundtrip("data.path", "x\x01y", via_set=True)
add("set-data.path-U+0001", K5, _b, valid=True, check=_c)
_b, _c = config_roundtrip("eval.val_targets", ["lfw\x01", "a\u007fb", "\U0001F600"])
add("eval.val_targets-control-chars", K5, _b, valid=True, check=_c)
_b, _c = config_roundtrip("eval.val_dir", "d\uffff\U0001F600",
                          raw_file_text='[eval]\nval_dir = "d\\uFFFF\\U0001F600"\n')
add("eval.val_dir-escaped-U+FFFF-U+1F600", K5, _b, valid=True, check=_c)


# ===== 6 files written by h5py =====

K6 = "6 h5py-written files"
VSET_FORMAT = "facetrain-verification"


def _vset(write_attr: Callable, extra: Optional[Callable] = None, chunked: bool = False):
    def build(ctx, tmp):
        import h5py
        arrays = read_h5(ctx.fx / "pairs.h5")
        with h5py.File(tmp / "v.h5", "w") as f:
            for k, v in arrays.items():
                if chunked:
                    f.create_dataset(k, data=v, chunks=True, compression="gzip", shuffle=True)
                else:
                    f.create_dataset(k, data=v)
            write_attr(f)
            if extra:
                extra(f, arrays)
        return eval_weights_argv(ctx.fx / "w.pt", "--bench", "v.h5")
    return build


def attr_vlen_utf8(f):
    f.attrs["format"] = VSET_FORMAT  # h5py: variable-length UTF-8


def attr_vlen_ascii(f):
    import h5py
    f.attrs.create("format", VSET_FORMAT.encode(), dtype=h5py.string_dtype("ascii"))


def attr_fixed_ascii(f):
    import numpy as np
    f.attrs["format"] = np.bytes_(VSET_FORMAT)  # h5py: fixed-length ASCII, null-padded


def attr_fixed_padded(f):
    import numpy as np
    f.attrs.create("format", np.bytes_(VSET_FORMAT), dtype="S40")


def names_vlen(f, arrays):
    import h5py
    n = len(arrays["offsets"]) - 1
    f.create_dataset("names", data=[f"img-{i}-é\U0001F600" for i in range(n)],
                     dtype=h5py.string_dtype("utf-8"))


def names_fixed(f, arrays):
    import numpy as np
    n = len(arrays["offsets"]) - 1
    f.create_dataset("names", data=np.array([f"img-{i}".encode() for i in range(n)], dtype="S16"))


add("bench-attr-vlen-utf8", K6, _vset(attr_vlen_utf8), valid=True, needs=("run",))
add("bench-attr-vlen-ascii", K6, _vset(attr_vlen_ascii), valid=True, needs=("run",))
add("bench-attr-fixed-ascii", K6, _vset(attr_fixed_ascii), valid=True, needs=("run",))
add("bench-attr-fixed-S40-null-padded", K6, _vset(attr_fixed_padded), valid=True, needs=("run",))
add("bench-names-vlen-utf8-dataset", K6, _vset(attr_fixed_ascii, names_vlen), valid=True,
    needs=("run",))
add("bench-names-fixed-dataset", K6, _vset(attr_fixed_ascii, names_fixed), valid=True,
    needs=("run",))
add("bench-chunked-gzip", K6, _vset(attr_fixed_ascii, chunked=True), valid=True,
    needs=("run",))


def _shard_attr(write_attr: Callable) -> Callable:
    def build(ctx, tmp):
        ds = copy_fx(ctx, "ds", tmp)
        rewrite_shard(ds, read_h5(ds / "shard-00000.h5"), write_attr)
        return ["data", "verify", ds]
    return build


add("shard-attr-vlen-utf8", K6, _shard_attr(lambda f: f.attrs.__setitem__("format",
                                                                          "facetrain-shards")),
    valid=True, needs=("ds",))
add("shard-attr-fixed-ascii", K6, _shard_attr(
    lambda f: f.attrs.__setitem__("format", __import__("numpy").bytes_(b"facetrain-shards"))),
    valid=True, needs=("ds",))


# ===== 7 names and packs =====

K7 = "7 names and packs"


def _manifest_shard_twice(command: str) -> Callable:
    def build(ctx, tmp):
        ds = copy_fx(ctx, "ds", tmp)
        m = json.loads((ds / "manifest.json").read_text())
        m["shards"].append(dict(m["shards"][0]))
        m["num_samples"] *= 2
        (ds / "manifest.json").write_text(json.dumps(m, indent=2))
        if command == "train":
            return train_argv(ctx, "run", "--set", f'data.path="{ds}"')
        return ["data", command, ds]
    return build


for _cmd in ("verify", "info", "train"):
    add(f"{_cmd}-manifest-lists-shard-twice", K7, _manifest_shard_twice(_cmd),
        expect=["shard-00000.h5"], needs=("ds",), report_stdout=_cmd == "verify")

add("bin-zero-pairs", K7, _bin(lambda j: p_bin_pack([], []), "empty.bin"),
    expect=["empty.bin"], needs=("ds",))
add("bin-zero-pairs-empty-tuple-items", K7, _bin(lambda j: b"\x80\x02]]\x86.", "empty.bin"),
    expect=["empty.bin"], needs=("ds",))


def escaped_forms(name: bytes) -> tuple:
    """How a message may show a name with control characters: raw, or escaped."""
    text = name.decode("utf-8", "surrogateescape")
    forms = {text, name.decode("utf-8", "replace")}

    def code(c: str) -> Optional[int]:
        o = ord(c)
        return o - 0xDC00 if 0xDC80 <= o <= 0xDCFF else o if o < 0x20 or o == 0x7F else None

    for style in ("\\x{:02x}", "\\x{:02X}", "\\u{:04x}", "\\u{:04X}", "\\{:03o}"):
        forms.add("".join(c if code(c) is None else style.format(code(c)) for c in text))
    forms.add(text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r"))
    return tuple(forms)


def classes_tsv_holds(names: list) -> Callable:
    """On success, classes.tsv must give every identity folder back (raw or escaped)."""
    def check(ctx, tmp, r: Result) -> Optional[str]:
        path = tmp / "out" / "classes.tsv"
        if not path.exists():
            return "no classes.tsv"
        records = [l for l in path.read_bytes().split(b"\n") if l]
        if len(records) != len(names):
            return f"classes.tsv has {len(records)} lines for {len(names)} identities"
        got = set()
        for rec in records:
            field = rec.split(b"\t", 1)[1] if b"\t" in rec else b""
            got.add(field)
            try:
                got.add(codecs.escape_decode(field)[0])
            except Exception:
                pass
        lost = [n for n in names if n not in got]
        return f"classes.tsv does not give back {lost!r}" if lost else None
    return check


def identity_name_case(label: str, name: bytes) -> None:
    def build(ctx, tmp):
        faces = copy_fx(ctx, "faces", tmp)
        os.rename(faces / "id1", os.fsencode(faces) + b"/" + name)
        return ["data", "pack", "--from", "folder", "--input", faces, "--out", "out"]
    add(f"pack-identity-folder-{label}", K7, build, either=True, expect=[escaped_forms(name)],
        check=classes_tsv_holds([b"id0", name]), needs=("faces",))


identity_name_case("newline", b"id\nX")
identity_name_case("U+0001", b"id\x01X")
identity_name_case("tab", b"id\tX")
identity_name_case("not-utf8", b"id\xffX")


def aligned_all(ctx, tmp, r: Result) -> Optional[str]:
    missing = [f"{i}.jpg" for i in range(1, 5) if not (tmp / "aligned" / f"{i}.jpg").exists()]
    return f"aligned/ lacks {missing}" if missing else None


def _landmarks_bytes(fn: Callable[[bytes], bytes]) -> Callable:
    def build(ctx, tmp):
        images, landmarks = align_inputs(ctx, tmp)
        landmarks.write_bytes(fn(landmarks.read_bytes()))
        return align_argv(images, landmarks)
    return build


add("align-landmarks-utf8-bom", K7, _landmarks_bytes(lambda b: b"\xef\xbb\xbf" + b),
    valid=True, check=aligned_all, needs=("ijb",))
add("align-landmarks-crlf", K7, _landmarks_bytes(lambda b: b.replace(b"\n", b"\r\n")),
    valid=True, check=aligned_all, needs=("ijb",))
add("align-landmarks-bom-crlf-no-final-newline", K7,
    _landmarks_bytes(lambda b: b"\xef\xbb\xbf" + b.rstrip(b"\n").replace(b"\n", b"\r\n")),
    valid=True, check=aligned_all, needs=("ijb",))


def _jpeg_elsewhere(command: str, kind: str) -> Callable:
    """A shard whose /jpeg keeps its bytes outside the file: in raw storage that is then a FIFO
    (HDF5 would open and wait on it), or behind an external link."""
    def build(ctx, tmp):
        import h5py
        import numpy as np
        ds = copy_fx(ctx, "ds", tmp)
        arrays = read_h5(ds / "shard-00000.h5")
        raw = tmp / "jpeg.raw"
        raw.write_bytes(arrays["jpeg"].tobytes())

        def write(f):
            f.attrs["format"] = np.bytes_(b"facetrain-shards")
            if kind == "external":
                f.create_dataset("jpeg", shape=arrays["jpeg"].shape, dtype=np.uint8,
                                 external=[(str(raw), 0, len(arrays["jpeg"]))])
            else:
                with h5py.File(tmp / "other.h5", "w") as o:
                    o.create_dataset("jpeg", data=arrays["jpeg"])
                f["jpeg"] = h5py.ExternalLink(str(tmp / "other.h5"), "/jpeg")
        rewrite_shard(ds, {k: v for k, v in arrays.items() if k != "jpeg"}, write)
        if kind == "external":
            replace_with_fifo(raw)
        if command == "train":
            return train_argv(ctx, "run", "--set", f'data.path="{ds}"')
        return ["data", command, ds]
    return build


for _cmd in ("verify", "info", "train"):
    for _kind in ("external", "link"):
        add(f"{_cmd}-shard-jpeg-{_kind}", K1, _jpeg_elsewhere(_cmd, _kind),
            expect=["shard-00000.h5", "jpeg"], needs=("ds",), blocking=True,
            report_stdout=_cmd == "verify")


def _labels_2d(command: str) -> Callable:
    def build(ctx, tmp):
        import numpy as np
        ds = copy_fx(ctx, "ds", tmp)
        arrays = read_h5(ds / "shard-00000.h5")
        arrays["labels"] = np.stack([arrays["labels"], arrays["labels"]], axis=1)
        rewrite_shard(ds, arrays, lambda f: f.attrs.__setitem__(
            "format", np.bytes_(b"facetrain-shards")))
        if command == "train":
            return train_argv(ctx, "run", "--set", f'data.path="{ds}"')
        return ["data", command, ds]
    return build


for _cmd in ("verify", "info", "train"):
    add(f"{_cmd}-shard-labels-2d", K7, _labels_2d(_cmd), expect=["shard-00000.h5", "labels"],
        needs=("ds",), report_stdout=_cmd == "verify")


def _ijb_landmarks(edit: Callable[[list], list]) -> Callable:
    def build(ctx, tmp):
        ijb = copy_fx(ctx, "ijb", tmp)
        edit_lines(ijb / "meta" / "ijbc_name_5pts_score.txt",
                   lambda ls: [" ".join(edit(l.split())) if l.startswith("1.jpg ") else l
                               for l in ls])
        return eval_weights_argv(ctx.fx / "w.pt", "--ijb", ijb)
    return build


def set_field(index: int, value: str) -> Callable[[list], list]:
    def edit(fields: list) -> list:
        fields[index] = value
        return fields
    return edit


def no_nan_in_report(ctx, tmp, r: Result) -> Optional[str]:
    return "its figures hold NaN" if re.search(r"\bnan\b", r.out, re.I) else None


MODEL_BLAME = ["diverged", "the model", "non-finite embedding", "backbone"]
add("ijb-landmark-far-outside-crop", K7, _ijb_landmarks(set_field(1, "100000.0")), valid=True,
    needs=("run", "ijb"))
add("ijb-landmarks-all-far-outside", K7,
    _ijb_landmarks(lambda f: [f[0]] + ["1e6"] * 10 + [f[11]]), valid=True, needs=("run", "ijb"))
add("ijb-landmark-nan", K7, _ijb_landmarks(set_field(1, "nan")),
    expect=["ijbc_name_5pts_score.txt"], needs=("run", "ijb"))
add("ijb-landmark-1e200", K7, _ijb_landmarks(set_field(1, "1e200")),
    expect=["ijbc_name_5pts_score.txt"], needs=("run", "ijb"))
add("ijb-score-1e300", K7, _ijb_landmarks(set_field(11, "1e300")), either=True,
    expect=["ijbc_name_5pts_score.txt"], forbid=MODEL_BLAME, check=no_nan_in_report,
    needs=("run", "ijb"))
add("ijb-score-inf", K7, _ijb_landmarks(set_field(11, "inf")),
    expect=["ijbc_name_5pts_score.txt"], forbid=MODEL_BLAME, needs=("run", "ijb"))
add("ijb-score-nan", K7, _ijb_landmarks(set_field(11, "nan")),
    expect=["ijbc_name_5pts_score.txt"], forbid=MODEL_BLAME, needs=("run", "ijb"))


# ---------------------------------------------------------------------------------------------
# Report


CTX: Context  # set in main(); the cases' checks reach it through judge()


def last_lines(r: Result, n: int) -> list:
    """The last n non-blank lines of stderr, or of stdout when stderr has none."""
    for stream, text in (("stderr", r.err), ("stdout", r.out)):
        lines = [l for l in text.splitlines() if l.strip()]
        if lines:
            return [(stream, l) for l in lines[-n:]]
    return []


def report(verdicts: list, seconds: float) -> bool:
    classes: dict = {}
    for v in verdicts:
        classes.setdefault(v.case.klass, []).append(v)
    print()
    print(f"{'class':<26} {'passed/total':>12}   failures")
    print("-" * 78)
    passed_all = 0
    for klass in sorted(classes):
        vs = classes[klass]
        passed = sum(v.verdict == "PASS" for v in vs)
        passed_all += passed
        kinds: dict = {}
        for v in vs:
            if v.verdict != "PASS":
                kinds[v.verdict] = kinds.get(v.verdict, 0) + 1
        summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        print(f"{klass:<26} {f'{passed}/{len(vs)}':>12}   {summary}")
    print("-" * 78)
    print(f"{'total':<26} {f'{passed_all}/{len(verdicts)}':>12}   ({seconds:.0f} s)")

    failures = [v for v in verdicts if v.verdict != "PASS"]
    if failures:
        print("\nFAILURES")
    for v in failures:
        print(f"\n[{v.verdict}] {v.case.klass} / {v.case.name}: {v.detail}")
        r = v.result
        if r is None:
            continue
        print(f"  cwd  {r.cwd}")
        print(f"  $ {shell_line(r.argv)}")
        print(f"  exit {r.returncode if r.returncode is not None else 'none (timed out)'}"
              f" after {r.seconds:.1f} s")
        for stream, line in last_lines(r, 3):
            print(f"  {stream} | " + line.encode("ascii", "backslashreplace").decode()[:300])
    return not failures


def main() -> int:
    global CTX
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", type=Path, help="the facetrain executable")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                        help="run the cases whose 'class / name' contains SUBSTR (repeatable)")
    parser.add_argument("--jobs", type=int, default=(os.cpu_count() or 2) + 1,
                        help="cases run at once (those that may block on a FIFO run apart)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds per case (the slowest sound case takes about 3)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show each case's last line of output as it finishes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    selected = [c for c in CASES
                if not args.only or any(s in f"{c.klass} / {c.name}" for s in args.only)]
    if args.list:
        for c in selected:
            kind = "valid" if c.valid else "either" if c.either else "refuse"
            print(f"{c.klass:<26} {c.name:<44} {kind:<6} {c.expect if not c.valid else ''}")
        print(f"{len(selected)} cases")
        return 0
    if not selected:
        print("no case matches", file=sys.stderr)
        return 2
    binary = args.binary.resolve()
    if not os.access(binary, os.X_OK):
        print(f"{binary}: not an executable", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="facetrain-hostile-"))
    start = time.monotonic()
    try:
        CTX = Context(binary, root, args.timeout)
        build_fixtures(CTX, {n for c in selected for n in c.needs})
        print(f"fixtures built in {time.monotonic() - start:.1f} s; running {len(selected)} cases",
              flush=True)
        lock = threading.Lock()

        def one(item):
            index, c = item
            v = run_case(c, index)
            with lock:
                took = f" ({v.result.seconds:.1f} s)" if v.result else ""
                print(f"  {v.verdict:<7} {c.klass} / {c.name}{took}", flush=True)
                if args.verbose and v.result:
                    for stream, line in last_lines(v.result, 1):
                        line = line.encode("ascii", "backslashreplace").decode()
                        print(f"          {stream} | {line[:200]}")
            return v

        items = list(enumerate(selected))
        # Those likeliest to run into the time limit first, then the slow ones (a training, a
        # forward pass per image), so that the pool ends together.
        order = {K2: 0, K3: 0, K4: 1, K6: 1}
        items.sort(key=lambda it: (order.get(it[1].klass, 2), it[0]))
        blocking = [it for it in items if it[1].blocking]
        working = [it for it in items if not it[1].blocking]
        with ThreadPoolExecutor(max(1, len(blocking))) as wide, \
                ThreadPoolExecutor(max(1, args.jobs)) as narrow:
            futures = [wide.submit(one, it) for it in blocking]
            futures += [narrow.submit(one, it) for it in working]
            verdicts = [f.result() for f in futures]
        verdicts.sort(key=lambda v: CASES.index(v.case))
        ok = report(verdicts, time.monotonic() - start)
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
