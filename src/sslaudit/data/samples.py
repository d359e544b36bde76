"""One vocabulary for samples in every per-sample table a lens writes.

A row describes the sample (`split`, `index`) — `index` is the sample's `Split.index` value (its
row number in the original data), never a position. Any other sample a row names is
`train_index` when it is a training sample (a landmark, a duplicate, a neighbour), or
`<role>_split` + `<role>_index` otherwise. Where the data has labels, `label` rides along with
`index` and `<role>_label` with `<role>_index`, so tables of different lenses join with one
`merge(on=["split", "index"])`. docs/tables.md lists every table's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

INDEX = "index"
SPLIT = "split"
LABEL = "label"


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


def labels_of(split_obj, index: np.ndarray) -> np.ndarray:
    """Labels of the samples whose `Split.index` values are `index` (-1 where absent)."""
    pos = pd.Index(np.asarray(split_obj.index)).get_indexer(np.asarray(index, dtype=np.int64))
    out = np.full(len(pos), -1, dtype=np.int64)
    ok = pos >= 0
    out[ok] = np.asarray(split_obj.y)[pos[ok]]
    return out


def with_labels(df: pd.DataFrame, dataset) -> pd.DataFrame:
    """`df` with the label of every sample it names beside it (unchanged when the data has no
    labels or the table names no sample). Each label column follows its index column."""
    roles = sample_roles(df.columns)
    if not roles or dataset is None or not dataset.has_labels:
        return df
    out = df.copy()
    for label, index, split in roles:
        if label in out.columns:
            continue
        idx = out[index].to_numpy()
        if split is None:
            values = labels_of(dataset.train, idx)
        else:
            values = np.full(len(out), -1, dtype=np.int64)
            names = out[split].astype(str).to_numpy()
            for name in np.unique(names):
                rows = names == name
                values[rows] = labels_of(dataset.split(name), idx[rows])
        out.insert(out.columns.get_loc(index) + 1, label, values)
    return out
