"""Datasets saved with Hugging Face `datasets.save_to_disk`, read with `load_from_disk`.

A folder holding `dataset_dict.json` (a DatasetDict) or `state.json` and `dataset_info.json`
(one Dataset) is read locally and offline (HF_DATASETS_OFFLINE=1; never the hub):
- splits: a DatasetDict's `train` and `test` (else `validation`) splits, `index` = row number in
  each; a single Dataset, or a DatasetDict with only `train`, gets a seeded held-out test split
  (stratified by label) and `index` = row number in it;
- images: the first column whose feature is `datasets.Image` holds the inputs. The encoded bytes
  stay in the Arrow files, memory-mapped, and are decoded per batch (RGB or grey as the images
  are; one size, unless `--image-size` resizes them all);
- labels: `--label COLUMN`, else the dataset's `ClassLabel` column (the only one, or the one named
  `label`/`labels`); classes are the ClassLabel's names in its own order;
- tables (no Image column): every other column, with the CSV rules (`table.table_dataset`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import Dataset, Split
from .lazy_images import LazyImages, decode_bytes

LABEL_NAMES = ("label", "labels")
TEST_SPLITS = ("test", "validation")


def is_saved_hf_dataset(path: Path) -> bool:
    """Whether `path` is a folder written by `save_to_disk` (a DatasetDict or one Dataset)."""
    path = Path(path)
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()))


_DIGESTS: dict = {}  # (folder, its files' names, sizes and mtimes) → digest: each split of a dataset, and every rerun, reads the Arrow files once


def folder_sha256(root: Path) -> str:
    """One digest over every file below `root` (relative path and bytes, in sorted order); reused
    while no file's size or modification time changes."""
    import hashlib

    from ..store import sha256_file

    files = sorted(q for q in Path(root).rglob("*") if q.is_file())
    key = (str(root), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _DIGESTS:
        h = hashlib.sha256()
        for p in files:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + sha256_file(p).encode())
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _load_from_disk(path: Path):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise UserError(f"{path} is a saved Hugging Face dataset; reading it needs the datasets package: pip install 'sslaudit[hf]'") from None
    datasets.disable_progress_bars()
    try:
        return datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError / ArrowInvalid / JSONDecodeError for damaged folders
        raise UserError(f"cannot read the saved Hugging Face dataset {path} ({type(e).__name__}: {' '.join(str(e).split())[:200]}): save it again with dataset.save_to_disk(path)") from None


class HFImages(LazyImages):
    """The images of an Image column of a saved HF dataset, decoded per batch from the Arrow
    files' bytes. Pickles as (folder, split, column, rows, …): a worker opens the folder again."""

    def __init__(self, root: str, split: str | None, column: str, rows: np.ndarray, channels: int, size: tuple[int, int], resize: bool, table=None):
        self.root, self.split, self.column = str(root), split, column
        self.rows = np.asarray(rows, dtype=np.int64)
        self.channels, self.size, self.resize = int(channels), (int(size[0]), int(size[1])), bool(resize)
        self.table = table if table is not None else raw_column(_pick_split(_load_from_disk(Path(self.root)), split), column)

    def __reduce__(self):
        return (HFImages, (self.root, self.split, self.column, self.rows, self.channels, self.size, self.resize))

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows) -> "HFImages":
        return HFImages(self.root, self.split, self.column, self.rows[np.asarray(rows, dtype=np.int64)], self.channels, self.size, self.resize, self.table)

    def digest(self) -> str:
        """sha256 of the saved folder's files, the split, the column, the size and the rows."""
        import hashlib

        head = f"hf {folder_sha256(Path(self.root))} {self.split} {self.column} {self.shape} {self.resize}"
        return hashlib.sha256(head.encode() + self.rows.tobytes()).hexdigest()

    def uint8(self, rows) -> np.ndarray:
        picked = self.rows[np.asarray(rows, dtype=np.int64).reshape(-1)]
        out = np.empty((len(picked), *self.shape[1:]), dtype=np.uint8)
        for i, (r, item) in enumerate(zip(picked, self.table[picked.tolist()][self.column])):
            out[i] = decode_bytes(image_bytes(item, self.root, int(r)), self.channels, self.size, self.resize, f"{self.column}[{int(r)}] of {self.root}")
        return out


def _pick_split(obj, split: str | None):
    return obj if split is None else obj[split]


def raw_column(ds, column: str):
    """`ds` reduced to `column`, its images left encoded (dicts of bytes and path)."""
    from datasets import Image

    return ds.select_columns([column]).cast_column(column, Image(decode=False))


def image_bytes(item, root: str, row: int) -> bytes:
    """The encoded bytes of one undecoded Image value (embedded bytes, else the file it names)."""
    if isinstance(item, dict) and item.get("bytes"):
        return item["bytes"]
    path = item.get("path") if isinstance(item, dict) else None
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    raise UserError(f"image {row} of {root} has no bytes and no readable file ({path!r}): save the dataset again with its images embedded")


def load_hf_saved(path: Path, *, label: str | None = None, protected=(), exclude=(), categorical=None, image_size=None, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A Dataset from a `save_to_disk` folder (rules: the module docstring)."""
    from datasets import DatasetDict

    root = Path(path).resolve()
    obj = _load_from_disk(root)
    if isinstance(obj, DatasetDict):
        names = list(obj.keys())
        if "train" not in obj:
            raise UserError(f"{root} holds the splits {names} but no 'train': save the training rows as the 'train' split")
        test_name = next((t for t in TEST_SPLITS if t in obj), None)
        parts = {"train": obj["train"]} if test_name is None else {"train": obj["train"], "test": obj[test_name]}
        split_names = {"train": "train", "test": test_name}
    else:
        parts, split_names = {"train": obj}, {"train": None, "test": None}
    features = parts["train"].features
    for k, d in parts.items():
        if d.features != features:
            raise UserError(f"{root}: the {k} split's columns differ from the train split's: give both splits the same features")
    for k, d in parts.items():
        if len(d) == 0:
            raise UserError(f"the {split_names[k] or k} split of {root} is empty: supply data for it")
    label = _label_column(root, features, label)
    image_col = next((c for c, f in features.items() if type(f).__name__ == "Image"), None)
    if image_col is None:
        return _table(root, parts, features, label, protected, exclude, categorical, image_size, test_fraction, seed)
    if protected or exclude or categorical is not None:
        raise UserError(f"--protected, --exclude and --categorical name table columns, but {root.name!r} holds images: drop them")
    return _images(root, parts, split_names, features, image_col, label, image_size, test_fraction, seed)


def _label_column(root: Path, features, label: str | None) -> str | None:
    cols = list(features)
    if label is not None:
        if label not in features:
            raise UserError(f"label column {label!r} not found in {root.name}; its columns are {', '.join(map(repr, cols[:30]))}")
        return label
    class_cols = [c for c, f in features.items() if type(f).__name__ == "ClassLabel"]
    if len(class_cols) == 1:
        return class_cols[0]
    named = [c for c in class_cols if c.lower() in LABEL_NAMES]
    if len(named) == 1:
        return named[0]
    if class_cols:
        raise UserError(f"{root.name} has several ClassLabel columns ({', '.join(map(repr, class_cols))}): say which is the label with --label")
    return None


def _labels(ds, features, label: str | None) -> tuple[np.ndarray | None, list[str] | None]:
    """Label positions and class names: a ClassLabel's own order, else sorted values."""
    if label is None:
        return None, None
    values = np.asarray(ds.select_columns([label]).with_format("numpy")[label])
    feat = features[label]
    if type(feat).__name__ == "ClassLabel":
        if (values < 0).any():
            raise UserError(f"the label column {label!r} has rows without a class (-1): drop them or give them a class")
        return values.astype(np.int64), list(feat.names)
    if values.dtype.kind not in "iub" and values.dtype.kind not in "UO":
        raise UserError(f"the label column {label!r} holds {values.dtype} values: give class names or integer classes")
    return values, None


def _images(root: Path, parts: dict, split_names: dict, features, image_col: str, label, image_size, test_fraction, seed) -> Dataset:
    from . import holdout_split
    from .image_folder import parse_image_size

    size = parse_image_size(image_size)
    tables = {k: raw_column(d, image_col) for k, d in parts.items()}
    channels, sizes = _headers(root, tables, image_col)
    if size is None:
        if len(sizes) > 1:
            few = ", ".join(f"{w}×{h}" for h, w in sorted(sizes)[:4])
            raise UserError(f"the images of {root} have {len(sizes)} different sizes ({few}, …): give --image-size N (or HxW) to resize them all")
        size = next(iter(sizes))
    resize = image_size is not None
    labelled = {k: _labels(d, features, label) for k, d in parts.items()}
    y_tr, classes = labelled["train"]
    if classes is None and y_tr is not None:  # plain values: classes in sorted order over both splits
        classes = sorted({str(v) for part in labelled.values() for v in part[0].tolist()})
        labelled = {k: (np.searchsorted(np.asarray(classes), np.asarray([str(v) for v in ys])).astype(np.int64), classes) for k, (ys, _) in labelled.items()}

    def images(k: str, rows: np.ndarray) -> HFImages:
        return HFImages(str(root), split_names[k], image_col, rows, channels, size, resize, tables[k])

    if "test" in parts:
        n_tr, n_te = len(parts["train"]), len(parts["test"])
        tr, te = np.arange(n_tr), np.arange(n_te)
        train = Split(images("train", tr), labelled["train"][0], tr)
        test = Split(images("test", te), labelled["test"][0], te)
        held_out = {"splits": [split_names["train"], split_names["test"]]}
    else:
        y = labelled["train"][0]
        tr, te = holdout_split(len(parts["train"]), y, test_fraction, seed, "hf-saved")
        train = Split(images("train", tr), None if y is None else y[tr], tr)
        test = Split(images("train", te), None if y is None else y[te], te)
        held_out = {"test_fraction": float(test_fraction), "seed": int(seed), "stratified": y is not None}
    source = {
        "path": str(root),
        "format": "huggingface save_to_disk",
        "image_column": image_col,
        "label": label,
        "image_size": list(size),
        "channels": channels,
        "resized": resize,
        "held_out": held_out,
    }
    return Dataset(root.name, "image", train, test, classes=classes, source=source)


def _headers(root: Path, tables: dict, column: str, batch: int = 1024) -> tuple[int, set[tuple[int, int]]]:
    """(channels, distinct H×W sizes) from every image's header, a batch of bytes at a time."""
    import io

    from PIL import Image, UnidentifiedImageError

    from .image_folder import GREY_MODES

    colour, sizes = False, set()
    for k, t in tables.items():
        for a in range(0, len(t), batch):
            for r, item in enumerate(t[a : a + batch][column], start=a):
                try:
                    with Image.open(io.BytesIO(image_bytes(item, str(root), r))) as im:
                        w, h = im.size
                        colour = colour or im.mode not in GREY_MODES
                except (UnidentifiedImageError, OSError, ValueError) as e:
                    raise UserError(f"cannot read image {r} of the {k} split of {root} ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}): repair or remove it") from None
                sizes.add((h, w))
    return (3 if colour else 1), sizes


def _table(root: Path, parts: dict, features, label, protected, exclude, categorical, image_size, test_fraction, seed) -> Dataset:
    import pandas as pd

    from .table import table_dataset

    if image_size is not None:
        raise UserError(f"--image-size applies to images; {root.name!r} holds a table: drop it")
    nested = [c for c, f in features.items() if type(f).__name__ not in ("Value", "ClassLabel")]
    if nested:
        raise UserError(
            f"{root.name}: the column(s) {', '.join(map(repr, nested[:10]))} hold nested values (lists, arrays, audio…); sslaudit reads images (an Image column) or tables of numbers and text: drop those columns"
        )
    frames = [parts["train"].to_pandas()]
    if "test" in parts:
        frames.append(parts["test"].to_pandas())
    df = pd.concat(frames, ignore_index=True)
    class_names = list(features[label].names) if label is not None and type(features[label]).__name__ == "ClassLabel" else None
    if class_names is not None:  # the ClassLabel's names, so classes read as text (sorted by name)
        df[label] = [class_names[int(v)] if int(v) >= 0 else None for v in df[label]]
    if "test" in parts:  # the saved splits decide: a `split` column the table rules understand
        if "split" in df.columns:
            raise UserError(f"{root.name} has a column named 'split' and saved train/test splits: rename the column")
        df["split"] = ["train"] * len(parts["train"]) + ["test"] * len(parts["test"])
    ds = table_dataset(df, root, label=label, protected=protected, exclude=exclude, categorical=categorical, test_fraction=test_fraction, seed=seed, split_key="hf-saved", sha256=folder_sha256(root))
    if "test" in parts:  # index: the row number within each saved split, as for an image dataset
        ds.test.index = ds.test.index - len(parts["train"])
    ds.source.update({"format": "huggingface save_to_disk"})
    return ds
