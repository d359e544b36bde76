"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its four IDX files.

Files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte, each gzipped (`.gz`, as distributed) or not. Found by
`locate.find_data_file` (`--data-dir`, `$SSLAUDIT_DATA`, /usr/share/datasets/fashion-mnist).
Images are float32 N×1×28×28 in [0, 1] (bytes / 255); `Split.index` is the row in the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import Dataset, Split
from .locate import find_data_file

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
FIX_HINT = "the file is damaged: download it again (or reinstall dataset-fashion-mnist)"


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path}: {e}; {FIX_HINT}") from None


def read_idx(path: Path, *, images: bool) -> np.ndarray:
    """Read an IDX file of unsigned bytes: images N×28×28 or labels N (uint8), validated."""
    buf = _read_bytes(Path(path))
    magic_want, ndim = (IMAGES_MAGIC, 3) if images else (LABELS_MAGIC, 1)
    hdr = 4 + 4 * ndim
    if len(buf) < hdr:
        raise UserError(f"{path} is too short ({len(buf)} bytes) to be an IDX file; {FIX_HINT}")
    magic = struct.unpack(">I", buf[:4])[0]
    if magic != magic_want:
        kind = "image" if images else "label"
        raise UserError(f"{path} has IDX magic number 0x{magic:08x}, not 0x{magic_want:08x} of a Fashion-MNIST {kind} file; {FIX_HINT} (or check the file names are not swapped)")
    dims = struct.unpack(">" + "I" * ndim, buf[4:hdr])
    if images and dims[1:] != (28, 28):
        raise UserError(f"{path} holds {dims[1]}×{dims[2]} images, not 28×28; {FIX_HINT}")
    want = hdr + int(np.prod(dims))
    if len(buf) != want:
        raise UserError(f"{path} has {len(buf)} bytes but its header announces {dims[0]} items ({want} bytes); {FIX_HINT}")
    return np.frombuffer(buf, dtype=np.uint8, offset=hdr).reshape(dims)


def _split(img_path: Path, lab_path: Path) -> Split:
    imgs = read_idx(img_path, images=True)
    labs = read_idx(lab_path, images=False)
    if len(imgs) != len(labs):
        raise UserError(f"{img_path} holds {len(imgs)} images but {lab_path} {len(labs)} labels: the files do not belong together; download them again")
    if labs.size and labs.max() > 9:
        raise UserError(f"{lab_path} has label {int(labs.max())}, outside 0-9; {FIX_HINT}")
    x = np.empty((len(imgs), 1, 28, 28), dtype=np.float32)
    np.divide(imgs[:, None], np.float32(255.0), out=x, casting="unsafe")
    return Split(x, labs.astype(np.int64), np.arange(len(imgs), dtype=np.int64))


def load_fashion_mnist(*, data_dir=None) -> Dataset:
    paths = find_data_file(
        "fashion-mnist",
        [(f, f[: -len(".gz")]) for f in FILES.values()],
        data_dir,
    )
    p = {k: paths[v] for k, v in FILES.items()}
    return Dataset(
        name="fashion-mnist",
        kind="image",
        train=_split(p["train_images"], p["train_labels"]),
        test=_split(p["test_images"], p["test_labels"]),
        classes=list(CLASSES),
        source={
            "origin": "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), MIT licence",
            "paths": {k: str(v) for k, v in p.items()},
        },
    )
