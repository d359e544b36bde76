"""Images from numpy files: a `.npz` archive (`np.savez`, below) or a single `.npy` array (`load_npy`).

Arrays:
- `x` (required): N×H×W (grey) or N×C×H×W with C = 1 or 3 (channels first), dtype uint8
  (0..255, divided by 255) or float (values must lie in [0, 1]); no NaN/inf.
- `y` (optional): N class labels (integers or strings). Classes are the sorted distinct labels
  of `y` and `y_test` together; `y` holds positions in that list.
- `x_test`, `y_test` (optional): a test split of the same image shape; without `x_test` a
  seeded held-out fraction of `x` is the test split (stratified when `y` is given).
`Split.index` is the row in `x` (train, and the held-out test rows) or in `x_test`.
The file is read with `allow_pickle=False`: object arrays are refused.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import holdout_split
from .dataset import Dataset, Split
from .lazy_images import LazyImages

KEYS = ("x", "y", "x_test", "y_test")


def image_array_shape(arr, where: str, also: str = ""):
    """`arr` as N×C×H×W (a grey N×H×W gets C = 1), refused in one line unless C is 1 or 3 and N, H,
    W ≥ 1; `where` names the array in the message, `also` adds what else the file may hold."""
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4:
        raise UserError(f"{where} has shape {arr.shape}: expected N×H×W (grey) or N×C×H×W images with C = 1 or 3{also}")
    if arr.shape[0] == 0:
        raise UserError(f"{where} holds no images: give at least one")
    if arr.shape[1] not in (1, 3):
        hint = " (channels last? use np.transpose(x, (0, 3, 1, 2)))" if arr.shape[-1] in (1, 3) else ""
        raise UserError(f"{where} has shape {arr.shape}, so C = {arr.shape[1]}: expected N×C×H×W with C = 1 or 3{hint}")
    if arr.shape[2] < 1 or arr.shape[3] < 1:
        raise UserError(f"{where} has shape {arr.shape}: images need a height and width ≥ 1")
    return arr


def _images(path: Path, arr: np.ndarray, key: str) -> np.ndarray:
    if arr.dtype == object:
        raise UserError(f"{path.name}: array {key!r} holds Python objects: store a numeric uint8 or float array")
    arr = image_array_shape(arr, f"{path.name}: array {key!r}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if not np.isfinite(x).all():
            n = int((~np.isfinite(x.reshape(len(x), -1))).any(axis=1).sum())
            raise UserError(f"{path.name}: array {key!r} has NaN or infinite values in {n} image(s): remove or repair them")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise UserError(f"{path.name}: array {key!r} has values in [{lo:g}, {hi:g}], outside [0, 1]: rescale to [0, 1] (e.g. divide 0..255 values by 255) or store uint8")
        return x
    raise UserError(f"{path.name}: array {key!r} has dtype {arr.dtype}: store uint8 (0..255) or float in [0, 1]")


def _labels(path: Path, arr: np.ndarray, key: str, n: int) -> np.ndarray:
    if arr.dtype == object:
        raise UserError(f"{path.name}: array {key!r} holds Python objects: store integer or string labels")
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise UserError(f"{path.name}: array {key!r} has shape {arr.shape}: expected one label per image (a 1-D array)")
    if len(arr) != n:
        xk = "x_test" if key == "y_test" else "x"
        raise UserError(f"{path.name}: {key!r} has {len(arr)} labels but {xk!r} has {n} images: give one label per image")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise UserError(f"{path.name}: array {key!r} has NaN or infinite labels: give a class for every image")
        if not np.all(arr == np.round(arr)):
            raise UserError(f"{path.name}: array {key!r} has non-integer labels: labels must be classes (integers or strings)")
        arr = arr.astype(np.int64)
    elif not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_) or arr.dtype.kind in "US"):
        raise UserError(f"{path.name}: array {key!r} has dtype {arr.dtype}: labels must be integers or strings")
    return arr


def memory_budget() -> int:
    """Bytes the loaded data may take: SSLAUDIT_MAX_MEMORY (e.g. 8GB) if set, else the free memory."""
    import os

    import psutil

    text = os.environ.get("SSLAUDIT_MAX_MEMORY")
    if text:
        from ..compute.memory import parse_size

        return parse_size(text)
    return int(psutil.virtual_memory().available)


def npz_header_sizes(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array of a .npz, read from the .npy headers only (nothing is inflated
    beyond the first bytes of each member)."""
    from numpy.lib import format as npy_format

    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name not in KEYS:
                    continue
                with zf.open(info) as f:
                    version = npy_format.read_magic(f)
                    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
                    shape, _, dtype = read(f, max_header_size=10_000)
                out[name] = (tuple(int(d) for d in shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError):
        return {}  # not a plain npz: np.load below gives the precise message
    return out


def check_npz_size(path: Path) -> None:
    """Refuse, from the headers alone, an .npz whose arrays would not fit the memory budget."""
    import math

    need, parts = 0, []
    for k, (shape, dtype) in npz_header_sizes(path).items():
        b = math.prod(shape) * dtype.itemsize
        if k.startswith("x") and dtype != np.float32:
            b += math.prod(shape) * 4  # converted to float32
        need += b
        parts.append(f"{k}: {'×'.join(map(str, shape)) or 'scalar'} {dtype}")
    budget = memory_budget()
    if need > budget:
        raise UserError(
            f"{path.name} would need {_size(need)} in memory once decompressed ({', '.join(parts)}), more than the "
            f"{_size(budget)} available (free memory, or SSLAUDIT_MAX_MEMORY); use a smaller file or raise SSLAUDIT_MAX_MEMORY"
        )


def _size(b: int) -> str:
    return f"{b / 2**30:.1f} GB" if b >= 2**30 else f"{b / 2**20:.0f} MB"


def load_images_npz(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    check_npz_size(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read {path.name} as a .npz archive ({' '.join(str(e).split())}): save it with np.savez(path, x=..., y=...)") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a single .npy array under a .npz name
        raise UserError(f"{path.name} is not a .npz archive but a single array: save with np.savez(path, x=..., y=...)")
    with npz:
        names = list(npz.files)
        if "x" not in names:
            raise UserError(f"{path.name} has no array named 'x' (it has {names or 'none'}): save the images as x, e.g. np.savez(path, x=images, y=labels)")
        for k in KEYS:
            if k not in names:
                continue
            try:
                arrays[k] = npz[k]
            except ValueError as e:
                if "pickle" in str(e) or "bject arrays" in str(e) or "Python objects" in str(e):
                    raise UserError(f"{path.name}: array {k!r} holds Python objects (loading them needs pickle, refused for safety): store numeric arrays") from None
                raise UserError(f"cannot read array {k!r} of {path.name} ({e}): save the file again with np.savez") from None
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise UserError(f"cannot read array {k!r} of {path.name} ({e}): save the file again with np.savez") from None

    x = _images(path, arrays["x"], "x")
    y = _labels(path, arrays["y"], "y", len(x)) if "y" in arrays else None
    has_test = "x_test" in arrays
    if "y_test" in arrays and not has_test:
        raise UserError(f"{path.name} has 'y_test' but no 'x_test': add the test images or drop y_test")
    if has_test:
        x_te = _images(path, arrays["x_test"], "x_test")
        if x_te.shape[1:] != x.shape[1:]:
            raise UserError(f"{path.name}: 'x' images are {x.shape[1:]} (C×H×W) but 'x_test' images {x_te.shape[1:]}: both need the same shape")
        y_te = _labels(path, arrays["y_test"], "y_test", len(x_te)) if "y_test" in arrays else None
        if (y is None) != (y_te is None):
            raise UserError(f"{path.name} has labels for one split only ('y' or 'y_test'): give both or neither")
    classes = None
    if y is not None:
        parts = [y, y_te] if has_test else [y]
        if any(p.dtype.kind in "US" for p in parts):
            parts = [p.astype(str) for p in parts]
        all_y = np.concatenate(parts)
        uniq = np.unique(all_y)
        classes = [str(c) for c in uniq.tolist()]
        codes = np.searchsorted(uniq, all_y).astype(np.int64)
        y = codes[: len(x)]
        if has_test:
            y_te = codes[len(x) :]

    if has_test:
        train = Split(x, y, np.arange(len(x), dtype=np.int64))
        test = Split(x_te, y_te, np.arange(len(x_te), dtype=np.int64))
        held_out = None
    else:
        tr, te = holdout_split(len(x), y, test_fraction, seed, "npz")
        train = Split(np.ascontiguousarray(x[tr]), None if y is None else y[tr], tr)
        test = Split(np.ascontiguousarray(x[te]), None if y is None else y[te], te)
        held_out = {"test_fraction": float(test_fraction), "seed": int(seed), "stratified": y is not None}
    return Dataset(
        name=path.stem,
        kind="image",
        train=train,
        test=test,
        classes=classes,
        source={
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "held_out": held_out,
        },
    )


class ArrayImages(LazyImages):
    """Images of a memory-mapped N×C×H×W (or N×H×W) `.npy`, uint8 or float in [0, 1], read per
    batch. Pickles as its path and rows (a Ray worker maps the file again; nothing is copied)."""

    def __init__(self, path: str | Path, rows: np.ndarray):
        self.path, self.rows = str(path), np.asarray(rows, dtype=np.int64)
        arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.array = arr[:, None] if arr.ndim == 3 else arr
        self.channels, self.size = int(self.array.shape[1]), (int(self.array.shape[2]), int(self.array.shape[3]))

    def __reduce__(self):
        return (ArrayImages, (self.path, self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows) -> "ArrayImages":
        return ArrayImages(self.path, self.rows[np.asarray(rows, dtype=np.int64)])

    def digest(self) -> str:
        """sha256 of the file's bytes and the rows taken from it."""
        import hashlib

        from ..store import sha256_file

        return hashlib.sha256(f"npy {sha256_file(self.path)} {self.shape}".encode() + self.rows.tobytes()).hexdigest()

    def _read(self, rows) -> np.ndarray:
        """The rows in the array's own dtype, read from the memory map in file order."""
        picked = self.rows[np.asarray(rows, dtype=np.int64).reshape(-1)]
        order = np.argsort(picked, kind="stable")
        block = np.empty((len(picked), *self.shape[1:]), dtype=self.array.dtype)
        block[order] = self.array[picked[order]]
        return block

    def uint8(self, rows) -> np.ndarray:
        block = self._read(rows)
        return block if block.dtype == np.uint8 else np.round(block.astype(np.float32) * 255).astype(np.uint8)

    def floats(self, rows) -> np.ndarray:
        block = self._read(rows)
        return block.astype(np.float32) / np.float32(255.0) if block.dtype == np.uint8 else block.astype(np.float32)


def _check_float_images(path: Path, arr: np.ndarray, block: int = 4096) -> None:
    """NaN/inf and the [0, 1] range of a float image array, checked block by block (never all in memory)."""
    for s in range(0, len(arr), block):
        x = np.asarray(arr[s : s + block], dtype=np.float32)
        if not np.isfinite(x).all():
            bad = s + int(np.nonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0][0])
            raise UserError(f"{path.name}: image {bad} has NaN or infinite values: remove or repair it")
        if x.min() < 0.0 or x.max() > 1.0:
            raise UserError(f"{path.name}: values in [{float(x.min()):g}, {float(x.max()):g}] near image {s}, outside [0, 1]: rescale to [0, 1] (e.g. divide 0..255 values by 255) or store uint8")


def load_npy(path: str | Path, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A `.npy` array: N×H×W or N×C×H×W images (uint8, or float in [0, 1]; memory-mapped, read per
    batch), or an N×F numeric table (columns `0` … `F−1`, standardised like a CSV's). No labels;
    a seeded held-out test split; `index` = row in the array."""
    from ..store import sha256_file
    from .table import table_dataset

    path = Path(path)
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":  # np.load would take any other file for a pickle
            raise UserError(f"{path.name} is not a .npy file (no numpy header): save the array with np.save(path, array)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) or "bject arrays" in str(e) or "Python objects" in str(e):
            raise UserError(f"{path.name} holds Python objects (loading them needs pickle, refused for safety): store a numeric array") from None
        raise UserError(f"cannot read {path.name} as a .npy array ({' '.join(str(e).split())}): save it with np.save(path, array)") from None
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path.name} as a .npy array ({' '.join(str(e).split())}): save it with np.save(path, array)") from None
    if not isinstance(arr, np.ndarray):
        raise UserError(f"{path.name} is not a single .npy array: give an array saved with np.save (for images with labels, a .npz with x and y)")
    if arr.dtype == object or arr.dtype.kind not in "uifb":
        raise UserError(f"{path.name} has dtype {arr.dtype}: store a numeric array (uint8 or float images, or a numeric table)")
    if arr.ndim == 2:
        import pandas as pd

        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise UserError(f"{path.name} has shape {arr.shape}: a table needs at least one row and one column")
        df = pd.DataFrame(np.asarray(arr, dtype=np.float64), columns=[str(j) for j in range(arr.shape[1])])
        return table_dataset(df, path, test_fraction=test_fraction, seed=seed, split_key="npy")
    arr = image_array_shape(arr, path.name, ", or an N×F table")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise UserError(f"{path.name} has dtype {arr.dtype}: store images as uint8 (0..255) or float in [0, 1]")
        _check_float_images(path, arr)
    tr, te = holdout_split(len(arr), None, test_fraction, seed, "npy")
    return Dataset(
        name=path.stem,
        kind="image",
        train=Split(ArrayImages(path, tr), None, tr),
        test=Split(ArrayImages(path, te), None, te),
        source={"path": str(path), "sha256": sha256_file(path), "held_out": {"test_fraction": float(test_fraction), "seed": int(seed), "stratified": False}},
    )
