"""Generic tables from a CSV file, and vectorised schema fitting/encoding shared by the tables.

CSV rules (`load_csv`):
- The first line is the header; column names are kept verbatim as strings (any text, HTML
  included; a UTF-8 byte-order mark is dropped). Names must be unique.
- `label` (optional): the class column. Numeric labels are ordered numerically, text labels
  alphabetically; `Dataset.classes` lists them and `y` holds positions in that list. Rows with a
  missing label are an error.
- `exclude`: columns kept out of the encoder's inputs (still in `Split.meta`).
- `protected`: attributes for group analyses; they stay encoder inputs unless also excluded and
  are always in `Split.meta`. `Split.meta` holds every column but the label (and the `split`
  column below) as read, unless the label is itself protected.
- `categorical`: columns forced to be categorical (e.g. numeric codes); every column that is not
  numeric is categorical anyway. A column is numeric when every non-missing value parses as a
  number. Missing values (empty, '?', NA, NaN, null, ...) are their own level in categorical
  columns; in numeric columns NaN and ±inf are imputed with the training mean by the schema.
  Columns with no value at all are dropped from the encoder (listed in `source["dropped_columns"]`).
- Test split: a column named exactly `split` whose values are all `train` / `test` (any case)
  selects the splits; otherwise a seeded held-out fraction, stratified by label when there is
  one. `Split.index` is the 0-based data row number in the file (header and blank lines not
  counted) in both splits.
- At least 4 data rows and one usable feature column are required.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from . import holdout_split
from .dataset import Dataset, Split, TabularSchema, _is_numeric

MIN_ROWS = 4
SPLIT_COLUMN = "split"


# --------------------------------------------------------------------------------------------


def _show(cols: Sequence[str], limit: int = 30) -> str:
    cols = [str(c) for c in cols]
    shown = ", ".join(repr(c) for c in cols[:limit])
    return shown + (f", … ({len(cols)} in all)" if len(cols) > limit else "")


def _read_csv(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty: give a CSV file with a header line and data rows")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, skipinitialspace=True), None)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: save the table as a UTF-8 CSV file") from None
    if not header or all(h.strip() == "" for h in header):
        raise UserError(f"{path} has no header line: the first line must name the columns")
    dup = sorted({h for h in header if h.strip() and header.count(h) > 1})
    if dup:
        raise UserError(f"{path} names the column(s) {_show(dup)} more than once: give every column a unique name")
    try:
        df = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True, low_memory=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} holds no table: give a CSV file with a header line and data rows") from None
    except (pd.errors.ParserError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise UserError(f"cannot parse {path} as CSV ({msg}): every row needs as many fields as the header") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: save the table as a UTF-8 CSV file") from None
    df.columns = [str(c) for c in df.columns]
    return df


def _check_columns(path: Path, df: pd.DataFrame, names: Sequence[str], what: str) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise UserError(f"{what} column(s) {_show(missing)} not found in {path.name}; its columns are {_show(list(df.columns))}")


def _labels(path: Path, s: pd.Series, label: str) -> tuple[np.ndarray, list[str]]:
    miss = s.isna() | (s.astype(str).str.strip().isin(["", "?"]))
    if miss.any():
        rows = np.nonzero(miss.to_numpy())[0]
        raise UserError(f"the label column {label!r} of {path.name} is missing in {len(rows)} row(s) (first: data row {int(rows[0])}): fill in or drop those rows")
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        vals = s.to_numpy(dtype=np.float64)
        if not np.isfinite(vals).all():
            raise UserError(f"the label column {label!r} of {path.name} holds infinite values: use class names or integers")
        uniq = np.unique(vals)
        y = np.searchsorted(uniq, vals).astype(np.int64)
        classes = [str(int(u)) if float(u).is_integer() else repr(float(u)) for u in uniq]
        return y, classes
    text = s.astype(str).str.strip().to_numpy(dtype=object)
    uniq = sorted(set(text.tolist()))
    lookup = {c: i for i, c in enumerate(uniq)}
    y = np.array([lookup[t] for t in text.tolist()], dtype=np.int64)
    return y, uniq


LABEL_LIKE = ("label", "labels", "class", "target", "y", "income", "outcome", "category")


def _warn_suspicious_columns(path: Path, feats: pd.DataFrame, cats: list[str], label: str | None) -> None:
    """Warn about encoder inputs that are likely mistakes: an ID (a categorical with a distinct
    value in every row becomes one one-hot column per row) and, without --label, a label."""
    from ..progress import warn

    n = len(feats)
    for c in cats:
        levels = int(feats[c].nunique(dropna=True))
        if n >= 20 and levels >= 0.9 * n:
            warn(f"column {c!r} of {path.name} has a distinct value in {levels} of {n} rows (an ID?): as an encoder input it becomes {levels} one-hot columns; pass --exclude {c}")
    if label is None:
        for c in feats.columns:
            if str(c).strip().lower() in LABEL_LIKE:
                warn(f"no --label given, so column {c!r} of {path.name} is an encoder input although it looks like a label; pass --label {c} (or --exclude {c})")


def load_csv(
    path: str | Path,
    *,
    label: str | None = None,
    protected: Sequence[str] = (),
    exclude: Sequence[str] = (),
    categorical: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """A CSV table (rules: the module docstring)."""
    path = Path(path)
    return table_dataset(_read_csv(path), path, label=label, protected=protected, exclude=exclude, categorical=categorical, test_fraction=test_fraction, seed=seed, split_key="csv")


def load_parquet(
    path: str | Path,
    *,
    label: str | None = None,
    protected: Sequence[str] = (),
    exclude: Sequence[str] = (),
    categorical: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """A Parquet table (pyarrow), with the CSV rules; columns of numbers, text, booleans or
    categories (nested and binary columns are refused with the reason); `index` = row in the file."""
    path = Path(path)
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
        raise UserError(f"cannot read {path} as Parquet ({type(e).__name__}: {' '.join(str(e).split())[:200]}): give a file written by pandas.to_parquet or pyarrow") from None
    import pyarrow as pa

    odd = [f.name for f in table.schema if pa.types.is_nested(f.type) or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if odd:
        raise UserError(
            f"{path.name}: the column(s) {_show(odd)} hold nested or binary values (images?); a Parquet input is a table of numbers and text: drop them, or give images as a folder, a .npy or a Hugging Face dataset saved with save_to_disk"
        )
    df = table.to_pandas()
    df.columns = [str(c) for c in df.columns]
    dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup:
        raise UserError(f"{path} names the column(s) {_show(dup)} more than once: give every column a unique name")
    return table_dataset(df.reset_index(drop=True), path, label=label, protected=protected, exclude=exclude, categorical=categorical, test_fraction=test_fraction, seed=seed, split_key="parquet")


def table_dataset(
    df: pd.DataFrame,
    path: Path,
    *,
    label: str | None = None,
    protected: Sequence[str] = (),
    exclude: Sequence[str] = (),
    categorical: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    split_key: str = "csv",
    sha256: str | None = None,
) -> Dataset:
    """A Dataset from the rows of a table read from `path` (the CSV rules: module docstring).

    `split_key` seeds the held-out split per input kind (a CSV and a Parquet file of the same
    rows get different, each reproducible, splits); `path` names the file in errors and provenance;
    `sha256` is its digest (computed from the file when not given)."""
    if len(df) < MIN_ROWS:
        raise UserError(f"{path.name} has {len(df)} data row(s): at least {MIN_ROWS} are needed (train and test splits)")
    protected, exclude = list(protected), list(exclude)
    if label is not None:
        label = str(label)
        if label not in df.columns:
            raise UserError(f"label column {label!r} not found in {path.name}; its columns are {_show(list(df.columns))}")
    _check_columns(path, df, protected, "protected")
    _check_columns(path, df, exclude, "excluded")
    declared = list(categorical or [])
    _check_columns(path, df, declared, "categorical")
    bad = [c for c in declared if c == label or c in exclude]
    if bad:
        raise UserError(f"column(s) {_show(bad)} are declared categorical but are the label or excluded: drop them from --categorical")

    named = set(protected) | set(exclude) | set(declared) | ({label} if label else set())
    split_col = None
    if SPLIT_COLUMN in df.columns and SPLIT_COLUMN not in named:
        vals = df[SPLIT_COLUMN].astype(str).str.strip().str.lower()
        if vals.isin(["train", "test"]).all() and vals.nunique() == 2:
            split_col = SPLIT_COLUMN

    y, classes = (None, None) if label is None else _labels(path, df[label], label)

    feature_cols = [c for c in df.columns if c != label and c not in exclude and c != split_col]
    dropped = [c for c in feature_cols if df[c].isna().all()]
    feature_cols = [c for c in feature_cols if c not in dropped]
    if not feature_cols:
        parts = []
        if label is not None:
            parts.append(f"label {label!r}")
        if exclude:
            parts.append(f"excluded {_show(exclude)}")
        if dropped:
            parts.append(f"without any value {_show(dropped)}")
        raise UserError(f"{path.name} leaves no column as encoder input ({'; '.join(parts) or 'no columns'}): keep at least one feature column with values (exclude fewer columns)")

    if split_col is not None:
        is_test = (df[split_col].astype(str).str.strip().str.lower() == "test").to_numpy()
        tr, te = np.nonzero(~is_test)[0].astype(np.int64), np.nonzero(is_test)[0].astype(np.int64)
        held_out = {"split_column": split_col}
    else:
        tr, te = holdout_split(len(df), y, test_fraction, seed, split_key)
        held_out = {"test_fraction": float(test_fraction), "seed": int(seed), "stratified": y is not None}

    feats = df[feature_cols]
    cats = [c for c in feature_cols if c in declared or not _is_numeric(feats[c])]
    _warn_suspicious_columns(path, feats, cats, label)
    schema = TabularSchema.fit(feats.iloc[tr].reset_index(drop=True), categorical=cats)
    x_all = schema.transform(feats)

    meta_cols = [c for c in df.columns if c != split_col and (c != label or c in protected)]
    meta = df[meta_cols]

    def split(rows: np.ndarray) -> Split:
        return Split(
            np.ascontiguousarray(x_all[rows]),
            None if y is None else y[rows],
            rows,
            meta.iloc[rows].reset_index(drop=True),
        )

    from ..store import sha256_file

    digest = sha256 or sha256_file(path)
    return Dataset(
        name=path.stem,
        kind="tabular",
        train=split(tr),
        test=split(te),
        classes=classes,
        schema=schema,
        protected=list(protected),
        source={
            "path": str(path),
            "sha256": digest,
            "label": label,
            "excluded": list(exclude),
            "dropped_columns": dropped,
            "categorical": cats,
            "held_out": held_out,
        },
    )
