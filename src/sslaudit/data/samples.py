"""One vocabulary for samples in every per-sample table a lens writes.

A row describes the sample (`split`, `index`) — `index` is the sample's `Split.index` value (its
row number in the original data), never a position. Any other sample a row names is
`train_index` when it is a training sample (a landmark, a duplicate, a neighbour), or
`<role>_split` + `<role>_index` otherwise. Where the data has labels, `label` rides along with
`index` and `<role>_label` with `<role>_index` (for an image folder `path` / `<role>_path`, the
file relative to the folder, too), so tables of different lenses join with one
`merge(on=["split", "index"])`. docs/tables.md lists every table's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INDEX = "index"
SPLIT = "split"
LABEL = "label"
PATH = "path"


def sample_roles(columns) -> list[tuple[str, str, str | None]]:
    """(label column, index column, split column or None for the training split) of every sample
    a table with these columns names; a table that names no sample gives []."""
    cols = list(columns)
    roles = []
    if INDEX in cols:
        roles.append((LABEL, INDEX, SPLIT))
    for c in cols:
        if c.endswith("_" + INDEX):
            role = c[: -len(INDEX) - 1]
            split = f"{role}_{SPLIT}" if f"{role}_{SPLIT}" in cols else None
            roles.append((f"{role}_{LABEL}", c, split))
    return roles


def check_vocabulary(df: pd.DataFrame) -> list[str]:
    """What in a table's sample columns breaks the vocabulary (empty when it keeps it)."""
    problems = []
    cols = list(df.columns)
    if INDEX in cols and SPLIT not in cols:
        problems.append("`index` without `split`")
    for label, index, split in sample_roles(cols):
        if index != INDEX and split is None and not index.startswith("train_"):
            problems.append(f"`{index}` without `{index[: -len(INDEX)]}{SPLIT}` (only `train_index` may omit its split)")
    return problems


def values_of(split_obj, index: np.ndarray, column: np.ndarray, fill) -> np.ndarray:
    """`column[position]` of the samples whose `Split.index` values are `index` (`fill` where absent)."""
    pos = pd.Index(np.asarray(split_obj.index)).get_indexer(np.asarray(index, dtype=np.int64))
    out = np.full(len(pos), fill, dtype=np.asarray(column).dtype if not isinstance(fill, str) else object)
    ok = pos >= 0
    out[ok] = np.asarray(column)[pos[ok]]
    return out


def with_sample_columns(df: pd.DataFrame, dataset) -> pd.DataFrame:
    """`df` with what the data knows of every sample it names beside its index column: the label
    (`label`, `train_label`, …) where the data has labels, the file (`path`, `train_path`, …)
    for an image folder. Unchanged when there is nothing to add or the table names no sample."""
    roles = sample_roles(df.columns)
    if not roles or dataset is None:
        return df
    kinds = []  # (column suffix, the split's values, fill for an absent sample)
    if dataset.has_labels:
        kinds.append((LABEL, lambda s: np.asarray(s.y, dtype=np.int64), -1))
    if getattr(dataset.train, "paths", None) is not None:
        kinds.append((PATH, lambda s: np.asarray(s.paths, dtype=object), ""))
    if not kinds:
        return df
    out = df.copy()
    for label, index, split in roles:
        prefix = label[: -len(LABEL)]  # "" for the row's own sample, "train_" / "<role>_" otherwise
        at = out.columns.get_loc(index) + 1
        idx = out[index].to_numpy()
        names = np.full(len(out), "train", dtype=object) if split is None else out[split].astype(str).to_numpy()
        for suffix, column_of, fill in kinds:
            col = prefix + suffix
            if col not in out.columns:
                values = np.full(len(out), fill, dtype=object if isinstance(fill, str) else np.int64)
                for name in np.unique(names):
                    rows = names == name
                    s = dataset.split(name)
                    values[rows] = values_of(s, idx[rows], column_of(s), fill)
                out.insert(at, col, values)
            at = out.columns.get_loc(col) + 1
    return out
