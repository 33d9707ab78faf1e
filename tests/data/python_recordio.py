"""Writes insightface RecordIO files (train.rec + train.idx) from the documented layout, without
mxnet, for the RecordIO tests.

  python_recordio.py FACES OUT_PREFIX [headerless]

Images come from FACES/id_K/*.jpg (K = 0…4) with the original, non-contiguous labels
LABELS[K]. Record layout: u32 magic 0xced7230a, u32 (cflag << 29 | length), data padded to 4.
A record whose data holds the magic at a 4-aligned offset is cut there into parts (cflag 1, 2,
3) and the magic dropped, as MXNet's writer does; the first image gets a JPEG comment with the
magic twice, so it becomes a 3-part record. Its IRHeader (u32 flag, f32 label, u64 id, u64 id2)
uses flag = 2 with labels [label, 0.5] for the second image (the extra-label form). With a
header, record 0 is IRHeader(flag 2, labels [N + 1, N + 1 + identities]) and records
N + 1 … hold each identity's [first, end) image range, as insightface writes them.
Also writes OUT_PREFIX.expect: "key<TAB>original label<TAB>payload file" per image.
"""
import os
import struct
import sys

MAGIC = 0xCED7230A
LABELS = [100, 7, 205, 42, 3]


def pack_header(flag, label, id1, id2, extra=()):
    head = struct.pack("<IfQQ", flag, label if flag == 0 else 0.0, id1, id2)
    if flag > 0:
        head += struct.pack(f"<{flag}f", *extra)
    return head


def write_record(f, data):
    magic = struct.pack("<I", MAGIC)
    parts, start = [], 0
    for i in range(0, len(data) - 3, 4):
        if data[i:i + 4] == magic:
            parts.append(data[start:i])
            start = i + 4
    parts.append(data[start:])
    for k, part in enumerate(parts):
        if len(parts) == 1:
            cflag = 0
        else:
            cflag = 1 if k == 0 else (3 if k == len(parts) - 1 else 2)
        f.write(struct.pack("<II", MAGIC, (cflag << 29) | len(part)))
        f.write(part)
        f.write(b"\0" * ((4 - len(part) % 4) % 4))


def with_magic_comment(jpeg, header_len):
    # COM segment right after SOI: FF FE, 2-byte length, payload. The payload starts at record
    # offset header_len + 6; pad so the first magic lands on a multiple of 4.
    magic = struct.pack("<I", MAGIC)
    pad = (-(header_len + 6)) % 4
    payload = b"x" * pad + magic + b"yyyy" + magic + b"zz"
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def main(faces, prefix, headerless):
    images = []  # (original label, jpeg bytes)
    for k, label in enumerate(LABELS):
        folder = os.path.join(faces, f"id_{k}")
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                images.append((label, f.read()))
    os.makedirs(prefix + ".payloads", exist_ok=True)
    n = len(images)
    with open(prefix + ".rec", "wb") as rec, open(prefix + ".idx", "w") as idx, \
            open(prefix + ".expect", "w") as expect:
        first_key = 1
        if not headerless:
            idx.write(f"0\t{rec.tell()}\n")
            write_record(rec, pack_header(2, 0, 0, 0, (n + 1, n + 1 + len(LABELS))))
        for i, (label, jpeg) in enumerate(images):
            key = first_key + i
            if i == 1:
                head = pack_header(2, 0, key, 0, (label, 0.5))
            else:
                head = pack_header(0, float(label), key, 0)
            if i == 0:
                jpeg = with_magic_comment(jpeg, len(head))
            payload_file = os.path.join(prefix + ".payloads", f"{key}.jpg")
            with open(payload_file, "wb") as f:
                f.write(jpeg)
            idx.write(f"{key}\t{rec.tell()}\n")
            write_record(rec, head + jpeg)
            expect.write(f"{key}\t{label}\t{payload_file}\n")
        if not headerless:
            for k in range(len(LABELS)):
                key = n + 1 + k
                idx.write(f"{key}\t{rec.tell()}\n")
                write_record(rec, pack_header(2, 0, 0, 0, (1 + 3 * k, 4 + 3 * k)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "headerless")
