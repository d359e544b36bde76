"""Data loading: built-in datasets, user files, and the checks every loader shares.

`load_dataset(spec, ...)` is the single entry point. `spec` is a built-in name (see
`DATASET_NAMES`), a path to a `.csv` or `.parquet` table (`table.py`), a `.npz` or `.npy` of
images (`images_npz.py`; a 2-D `.npy` is a table), a folder written by Hugging Face
`save_to_disk` (`hf_saved.py`) or a folder of image files (`image_folder.py`); images from
files are read per batch (`lazy_images.py`), never all held in memory. Every loader returns a
`Dataset` (see `dataset.py`) whose splits have been validated by `validate_dataset`.

The loaders are imported lazily (inside `load_dataset`) so that importing `sslaudit.data` stays
cheap and the loader modules can import the helpers defined here without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..seeding import numpy_rng
from .dataset import SPLITS, Dataset, Feature, Split, TabularSchema, parse_sample_ref

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "Feature",
    "Split",
    "TabularSchema",
    "holdout_split",
    "load_dataset",
    "parse_sample_ref",
    "validate_dataset",
]

DATASET_NAMES: tuple[str, ...] = ("digits", "fashion-mnist", "adult", "adult-1m")
FILE_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet", ".npz", ".npy")
TABLE_EXTENSIONS: tuple[str, ...] = (".csv", ".parquet")


def load_dataset(
    spec: str | Path,
    *,
    data_dir: str | Path | None = None,
    label: str | None = None,
    protected: Sequence[str] = (),
    exclude: Sequence[str] = (),
    categorical: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    image_size=None,
) -> Dataset:
    """Load a built-in dataset by name, a user's file (`.csv`, `.parquet`, `.npz`, `.npy`), a saved
    Hugging Face dataset or a folder of images.

    Deterministic: the same arguments give the same splits, encodings and values.

    - `data_dir`: where to look for the files of `fashion-mnist`, `adult`, `adult-1m` (see
      `locate.find_data_file` for the other places searched).
    - `label`: tables (CSV, Parquet, a saved HF table) and saved HF datasets: the label column;
      `categorical`: tables only, columns forced to be categorical.
    - `protected`: attributes for group analyses (tables; adult defaults to sex and race).
    - `exclude`: table columns kept out of the encoder's inputs (still in `Split.meta`).
    - `test_fraction`, `seed`: the seeded held-out split used when the data has no test split
      (digits, tables, `.npy`, npz without `x_test`, an image folder without train/ and test/,
      a saved HF dataset without a test split); `seed` also seeds the adult-1m build.
    - `image_size`: image folders and saved HF image datasets: N or (H, W) or "HxW", every
      image resized to it.
    """
    protected = _as_names(protected, "protected")
    exclude = _as_names(exclude, "exclude")
    categorical = None if categorical is None else _as_names(categorical, "categorical")
    name = str(spec).strip()
    key = name.lower()
    if key in ("fashion_mnist", "fashionmnist"):
        key = "fashion-mnist"
    if key in ("adult1m", "adult_1m"):
        key = "adult-1m"

    if image_size is not None and (key in DATASET_NAMES or not Path(name).expanduser().is_dir()):
        raise UserError(f"--image-size applies to folders of image files; {name!r} is not one: drop it")
    if key in DATASET_NAMES:
        if label is not None:
            raise UserError(f"--label applies only to tables (CSV, Parquet) and saved Hugging Face datasets; the built-in dataset {key!r} has its own labels: drop --label")
        if categorical is not None:
            raise UserError(f"--categorical applies only to tables (CSV, Parquet); the built-in dataset {key!r} declares its own: drop it")
        if key in ("digits", "fashion-mnist"):
            _no_table_options(key, protected, exclude)
            if key == "digits":
                from .digits import load_digits_dataset

                ds = load_digits_dataset(test_fraction=test_fraction, seed=seed)
            else:
                from .fashion_mnist import load_fashion_mnist

                ds = load_fashion_mnist(data_dir=data_dir)
        else:
            from .adult import load_adult, load_adult_1m

            loader = load_adult if key == "adult" else load_adult_1m
            ds = loader(data_dir=data_dir, protected=protected or None, exclude=exclude, seed=seed)
        return validate_dataset(ds)

    path = Path(name).expanduser()
    from .hf_saved import is_saved_hf_dataset

    if is_saved_hf_dataset(path):
        from .hf_saved import load_hf_saved

        return validate_dataset(load_hf_saved(path, label=label, protected=protected, exclude=exclude, categorical=categorical, image_size=image_size, test_fraction=test_fraction, seed=seed))
    if path.is_dir() and path.suffix.lower() not in FILE_EXTENSIONS:
        if label is not None or categorical is not None:
            raise UserError(f"--label and --categorical apply only to tables and saved Hugging Face datasets; the images of {name!r} take their labels from class folders: drop them")
        _no_table_options(path.name, protected, exclude)
        from .image_folder import load_image_folder

        return validate_dataset(load_image_folder(path, image_size=image_size, test_fraction=test_fraction, seed=seed))
    suffix = path.suffix.lower()
    if suffix not in FILE_EXTENSIONS and not path.exists() and ("/" in name or name.startswith(".")):
        raise UserError(f"no folder or file {str(path)!r}: check the path (a dataset is a built-in name, a .csv, .parquet, .npz or .npy file, a saved Hugging Face dataset, or a folder of images)")
    if suffix not in FILE_EXTENSIONS:
        raise UserError(
            f"unknown dataset {name!r}: give one of {', '.join(DATASET_NAMES)}, a path to a .csv or .parquet table, a .npz or .npy of images, a folder saved by Hugging Face save_to_disk, or a folder of images (PNG, JPEG, WebP)"
        )
    if not path.exists():
        raise UserError(f"data file or folder {str(path)!r} does not exist: check the path (or use a built-in dataset: {', '.join(DATASET_NAMES)})")
    if not path.is_file():
        raise UserError(f"{str(path)!r} is not a file: give the path of a {suffix} file")
    if suffix in TABLE_EXTENSIONS:
        from .table import load_csv, load_parquet

        ds = (load_csv if suffix == ".csv" else load_parquet)(
            path,
            label=label,
            protected=protected,
            exclude=exclude,
            categorical=categorical,
            test_fraction=test_fraction,
            seed=seed,
        )
    elif suffix == ".npz":
        if label is not None or categorical is not None:
            raise UserError("--label and --categorical apply only to tables; a .npz holds its labels in 'y' and 'y_test': drop them")
        _no_table_options(path.name, protected, exclude)
        from .images_npz import load_images_npz

        ds = load_images_npz(path, test_fraction=test_fraction, seed=seed)
    else:
        if label is not None or categorical is not None:
            raise UserError("--label and --categorical do not apply to a .npy: it holds one unlabelled array (for labelled images, a .npz with x and y; for a labelled table, a .csv or .parquet)")
        _no_table_options(path.name, protected, exclude)
        from .images_npz import load_npy

        ds = load_npy(path, test_fraction=test_fraction, seed=seed)
    return validate_dataset(ds)


def _as_names(values, what: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out = [str(v) for v in values]
    if len(set(out)) != len(out):
        raise UserError(f"the {what} columns {out} name a column twice: list each column once")
    return out


def _no_table_options(name: str, protected: list[str], exclude: list[str]) -> None:
    if protected or exclude:
        raise UserError(f"--protected and --exclude name table columns, but {name!r} holds images: drop them (or use a .csv table)")


def check_test_fraction(test_fraction: float) -> float:
    try:
        f = float(test_fraction)
    except (TypeError, ValueError):
        raise UserError(f"test fraction {test_fraction!r} is not a number: give a value between 0 and 1, e.g. 0.2") from None
    if not (0.0 < f < 1.0):
        raise UserError(f"test fraction {f} is outside (0, 1): give a value between 0 and 1, e.g. 0.2")
    return f


def holdout_split(
    n: int,
    y: np.ndarray | None,
    test_fraction: float,
    seed: int,
    *keys: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded held-out split of `n` rows: (train_rows, test_rows), each sorted ascending.

    Stratified when `y` is given: each class contributes round(test_fraction * n_class) rows to
    the test split, but never all of a class's rows (a class of one row stays in train). The
    draw comes from `numpy_rng(seed, "holdout", *keys)`, so the same arguments give the same split.
    Both splits are non-empty (n must be at least 2).
    """
    f = check_test_fraction(test_fraction)
    if n < 2:
        raise UserError(f"the data has {n} row(s): at least 2 are needed to hold out a test split")
    rng = numpy_rng(seed, "holdout", *keys)
    if y is None:
        groups = [np.arange(n)]
    else:
        y = np.asarray(y)
        groups = [np.nonzero(y == c)[0] for c in np.unique(y)]
    test: list[np.ndarray] = []
    for rows in groups:
        k = int(round(f * len(rows)))
        k = min(k, len(rows) - 1) if y is not None else k
        if k > 0:
            test.append(rng.permutation(rows)[:k])
    test_rows = np.concatenate(test) if test else np.zeros(0, dtype=np.int64)
    if test_rows.size == 0:  # tiny data: hold out one row of the largest group
        big = max(groups, key=len)
        test_rows = rng.permutation(big)[:1]
    if test_rows.size >= n:  # unstratified, fraction close to 1: keep one training row
        test_rows = np.sort(test_rows)[1:]
    mask = np.zeros(n, dtype=bool)
    mask[test_rows] = True
    return np.nonzero(~mask)[0].astype(np.int64), np.nonzero(mask)[0].astype(np.int64)


def validate_dataset(ds: Dataset) -> Dataset:
    """Checks every loader's output must pass (raises UserError naming the problem)."""
    what = ds.source.get("path", ds.name)
    for split_name in SPLITS:
        s: Split = ds.split(split_name)
        if len(s) == 0:
            raise UserError(f"the {split_name} split of {what} is empty: supply data for it (or a test fraction that leaves rows in both splits)")
        if not isinstance(s.x, np.ndarray):  # images decoded from files on demand: uint8 by construction, so in [0, 1]
            _check_rows(s, split_name, what)
            continue
        if s.x.dtype != np.float32:
            s.x = s.x.astype(np.float32)
        if s.x.ndim < 2:
            raise UserError(f"the {split_name} inputs of {what} have shape {s.x.shape}: expected one row per sample")
        if not np.isfinite(s.x).all():
            bad = int((~np.isfinite(s.x.reshape(len(s.x), -1))).any(axis=1).sum())
            raise UserError(f"the {split_name} inputs of {what} contain NaN or infinite values in {bad} sample(s): remove or repair them")
        if ds.kind == "image":
            if s.x.ndim != 4:
                raise UserError(f"the {split_name} images of {what} have shape {s.x.shape}: expected N×C×H×W")
            if s.x.min() < 0 or s.x.max() > 1:
                raise UserError(f"the {split_name} images of {what} are not in [0, 1]: rescale them")
        _check_rows(s, split_name, what)
    if ds.train.x.shape[1:] != ds.test.x.shape[1:]:
        raise UserError(f"train inputs of {what} have shape {ds.train.x.shape[1:]} per sample but test inputs {ds.test.x.shape[1:]}: both splits need the same shape")
    if (ds.train.y is None) != (ds.test.y is None):
        raise UserError(f"{what} has labels for one split only: give labels for both splits or for neither")
    return ds


def _check_rows(s: Split, split_name: str, what) -> None:
    """One label, index and attribute row per sample; no repeated index."""
    for arr, nm in ((s.y, "labels"), (s.index, "index")):
        if arr is not None and len(arr) != len(s):
            raise UserError(f"the {split_name} split of {what} has {len(s)} samples but {len(arr)} {nm}: give one per sample")
    if s.meta is not None and len(s.meta) != len(s):
        raise UserError(f"the {split_name} split of {what} has {len(s)} samples but {len(s.meta)} attribute rows")
    idx = np.asarray(s.index)
    if not (idx[1:] > idx[:-1]).all() and len(np.unique(idx)) != len(idx):
        raise UserError(f"the {split_name} split of {what} repeats sample indices: each sample needs its own row number")
