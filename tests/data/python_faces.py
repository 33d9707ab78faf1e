"""Writes JPEG test images with Pillow (independently of facetrain), and what Pillow decodes.

  python_faces.py DIR
    DIR/faces/a/0.jpg … a/3.jpg, DIR/faces/b/4.jpg   112x112 RGB, quality 90
    DIR/raw/<i>.rgb                                  Pillow's decoded pixels, HWC RGB bytes
    DIR/wrong_size/face.jpg                          100x90
    DIR/png/face.png                                 a PNG
    DIR/broken/face.jpg                              the first half of a JPEG
    DIR/identities/id_0 … id_4/k.jpg                 5 identities × 3 faces, 112x112
    DIR/identities_mixed/id_0/{0.jpg (112), 1.jpg (128x128)}
    DIR/identities_png/id_0/0.png, id_1/0.jpg      a PNG identity beside a JPEG one
    DIR/empty/, DIR/hollow/id_0/ (an identity without images)
"""
import os
import sys

import numpy as np
from PIL import Image


def face(seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:112, 0:112].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(x / (7 + seed) + seed),
        128 + 100 * np.cos(y / (9 + seed)),
        128 + 60 * np.sin((x + y) / 11.0),
    ], axis=-1)
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main(root):
    for sub in ("faces/a", "faces/b", "raw", "wrong_size", "png", "broken"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(5):
        path = os.path.join(root, "faces", "a" if i < 4 else "b", f"{i}.jpg")
        face(i).save(path, quality=90)
        decoded = np.asarray(Image.open(path).convert("RGB"))
        decoded.tofile(os.path.join(root, "raw", f"{i}.rgb"))
    face(9).resize((100, 90)).save(os.path.join(root, "wrong_size", "face.jpg"), quality=90)
    face(9).save(os.path.join(root, "png", "face.png"))
    for ident in range(5):
        d = os.path.join(root, "identities", f"id_{ident}")
        os.makedirs(d, exist_ok=True)
        for k in range(3):
            face(10 + 3 * ident + k).save(os.path.join(d, f"{k}.jpg"), quality=85 + k)
    mixed = os.path.join(root, "identities_mixed", "id_0")
    os.makedirs(mixed, exist_ok=True)
    face(30).save(os.path.join(mixed, "0.jpg"), quality=90)
    face(31).resize((128, 128)).save(os.path.join(mixed, "1.jpg"), quality=90)
    for ident, ext in ((0, "png"), (1, "jpg")):
        d = os.path.join(root, "identities_png", f"id_{ident}")
        os.makedirs(d, exist_ok=True)
        face(40 + ident).save(os.path.join(d, f"0.{ext}"))
    os.makedirs(os.path.join(root, "empty"), exist_ok=True)
    os.makedirs(os.path.join(root, "hollow", "id_0"), exist_ok=True)
    with open(os.path.join(root, "faces", "a", "0.jpg"), "rb") as f:
        whole = f.read()
        head = whole[: len(whole) // 2]
    with open(os.path.join(root, "broken", "face.jpg"), "wb") as f:
        f.write(head)


if __name__ == "__main__":
    main(sys.argv[1])
