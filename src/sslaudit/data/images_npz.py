"""Images from a `.npz` file (numpy's `np.savez`).

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

KEYS = ("x", "y", "x_test", "y_test")


def _images(path: Path, arr: np.ndarray, key: str) -> np.ndarray:
    if arr.dtype == object:
        raise UserError(f"{path.name}: array {key!r} holds Python objects: store a numeric uint8 or float array")
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4:
        raise UserError(f"{path.name}: array {key!r} has shape {arr.shape}: expected N×H×W (grey) or N×C×H×W with C = 1 or 3")
    if arr.shape[0] == 0:
        raise UserError(f"{path.name}: array {key!r} holds no images: give at least one")
    if arr.shape[1] not in (1, 3):
        hint = " (channels last? use np.transpose(x, (0, 3, 1, 2)))" if arr.shape[-1] in (1, 3) else ""
        raise UserError(f"{path.name}: array {key!r} has shape {arr.shape}, so C = {arr.shape[1]}: expected N×C×H×W with C = 1 or 3{hint}")
    if arr.shape[2] < 1 or arr.shape[3] < 1:
        raise UserError(f"{path.name}: array {key!r} has shape {arr.shape}: images need a height and width ≥ 1")
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
                if "pickle" in str(e) or "bject arrays" in str(e):
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
