"""Image folders built from the committed Fashion-MNIST fixture (real images), written with PIL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sslaudit.data.fashion_mnist import load_fashion_mnist

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fashion-mnist"
FORMATS = ("png", "webp", "jpg")  # png and lossless WebP keep every pixel; JPEG is lossy


def fashion_mnist_uint8():
    """(train images, train labels, test images, test labels, class names): the fixture as uint8 N×28×28."""
    ds = load_fashion_mnist(data_dir=FIXTURE)
    to8 = lambda x: np.rint(np.asarray(x)[:, 0] * 255).astype(np.uint8)  # noqa: E731
    return to8(ds.train.x), ds.train.y, to8(ds.test.x), ds.test.y, [c.replace("/", "-") for c in ds.classes]


def save(img: np.ndarray, path: Path, rgb: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img)
    if rgb:
        im = im.convert("RGB")
    ext = path.suffix.lower()
    im.save(path, **({"lossless": True} if ext == ".webp" else {"quality": 95} if ext == ".jpg" else {}))


def write_folder(root: Path, *, layout: str = "train-test", n_train: int = 40, n_test: int = 20, rgb: bool = True, formats=("png",)) -> dict:
    """Write Fashion-MNIST images as files; returns {relative path: uint8 H×W image}.

    layout: "train-test" (root/train/<class>/…, root/test/<class>/…), "classes" (root/<class>/…)
    or "flat" (root/…, unlabelled). File i of a split gets the format formats[i % len(formats)].
    """
    xtr, ytr, xte, yte, classes = fashion_mnist_uint8()
    written = {}
    parts = [("train", xtr[:n_train], ytr[:n_train])] + ([("test", xte[:n_test], yte[:n_test])] if layout == "train-test" else [])
    for split, xs, ys in parts:
        for i, (img, y) in enumerate(zip(xs, ys)):
            name = f"{split}-{i:04d}.{formats[i % len(formats)]}"
            rel = {"train-test": f"{split}/{classes[int(y)]}/{name}", "classes": f"{classes[int(y)]}/{name}", "flat": name}[layout]
            save(img, root / rel, rgb)
            written[rel] = img
    return written
