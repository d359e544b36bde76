"""The dataset every lens works on.

A `Dataset` has a train and a test `Split`. `Split.x` holds the encoder's inputs as float32
(images N×C×H×W in [0, 1]; tables N×F after encoding by the `TabularSchema`): an array, or for
an image folder a `FolderImages` that indexes like one and decodes only the rows asked for.
`Split.y` holds the class labels used only for evaluation, `Split.index` the row number of each
sample within that split of the user's file or the built-in dataset (never a position after
shuffling), `Split.meta` the raw attribute values (tables: the original columns, for group
analyses and the alignment gap) and `Split.paths` the files of an image folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import UserError

SPLITS = ("train", "test")


@dataclass
class Feature:
    """One original column of a table and where it lives in the encoded matrix."""

    name: str
    kind: Literal["numeric", "categorical"]
    start: int  # first column in the encoded matrix
    stop: int  # one past the last column
    categories: list[str] | None = None  # categorical: the levels, in column order
    mean: float = 0.0  # numeric: standardisation fitted on the training split
    std: float = 1.0
    log1p: bool = False  # numeric: log1p applied before standardising (heavy tails)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TabularSchema:
    """Encoding of raw table rows into encoder inputs, fitted on the training split only.

    Numeric columns are (optionally log1p-ed and) standardised; categorical columns are one-hot,
    with unseen levels encoded as all zeros; missing values ('?' or empty) are their own level for
    categoricals and the training mean for numerics.
    """

    features: list[Feature]

    @property
    def width(self) -> int:
        return self.features[-1].stop if self.features else 0

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def groups(self) -> list[tuple[int, int]]:
        """Column spans [start, stop) of each original feature in the encoded matrix."""
        return [(f.start, f.stop) for f in self.features]

    @classmethod
    def fit(
        cls,
        df: pd.DataFrame,
        categorical: list[str] | None = None,
        log1p: tuple[str, ...] = (),
    ) -> "TabularSchema":
        """Fit on training rows. `categorical` None: inferred (non-numeric dtype).

        Vectorised with `pd.factorize` (one Python step per distinct value, not per row).
        """
        feats: list[Feature] = []
        pos = 0
        for col in df.columns:
            s = df[col]
            is_cat = (col in categorical) if categorical is not None else not _is_numeric(s)
            if is_cat:
                codes, uniques = pd.factorize(s, use_na_sentinel=True)
                levels = {_level(u) for u in list(uniques)}
                if (codes < 0).any():
                    levels.add("?")
                levels = sorted(levels)
                feats.append(Feature(str(col), "categorical", pos, pos + len(levels), categories=levels))
                pos += len(levels)
            else:
                v = _numeric(s, col)
                use_log = col in log1p
                if use_log:
                    v = np.log1p(np.clip(v, 0, None))
                finite = v[np.isfinite(v)]
                mean = float(finite.mean()) if finite.size else 0.0
                std = float(finite.std()) if finite.size else 1.0
                feats.append(Feature(str(col), "numeric", pos, pos + 1, mean=mean, std=std if std > 0 else 1.0, log1p=use_log))
                pos += 1
        return cls(feats)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode raw rows (a DataFrame with the schema's columns) as float32 N×width."""
        missing = [f.name for f in self.features if f.name not in df.columns]
        if missing:
            raise UserError(f"rows lack the column(s) {missing}; the encoder expects {self.names}")
        out = np.zeros((len(df), self.width), dtype=np.float32)
        for f in self.features:
            s = df[f.name]
            if f.kind == "categorical":
                lookup = {c: i for i, c in enumerate(f.categories or [])}
                codes, uniques = pd.factorize(s, use_na_sentinel=True)
                per_unique = np.array([lookup.get(_level(u), -1) for u in list(uniques)] + [lookup.get("?", -1)], dtype=np.int64)
                idx = per_unique[codes]  # code -1 (missing) picks the last entry: the '?' level
                rows = np.nonzero(idx >= 0)[0]
                out[rows, f.start + idx[rows]] = 1.0
            else:
                v = _numeric(s, f.name)
                if f.log1p:
                    v = np.log1p(np.clip(v, 0, None))
                v = np.where(np.isfinite(v), v, f.mean)
                out[:, f.start] = (v - f.mean) / f.std
        return out

    def to_json(self) -> dict:
        return {"features": [f.to_json() for f in self.features]}

    @classmethod
    def from_json(cls, obj: dict) -> "TabularSchema":
        return cls([Feature(**f) for f in obj["features"]])


def _level(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "?"
    s = str(v).strip()
    return s if s else "?"


def _is_numeric(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s):
        return False
    if pd.api.types.is_numeric_dtype(s):
        return True
    conv = pd.to_numeric(s.replace({"?": np.nan, "": np.nan}), errors="coerce")
    return bool(conv.notna().sum() > 0 and conv.notna().sum() == s.replace({"?": np.nan, "": np.nan}).notna().sum())


def _numeric(s: pd.Series, col) -> np.ndarray:
    v = pd.to_numeric(s.replace({"?": np.nan, "": np.nan}), errors="coerce").to_numpy(dtype=np.float64)
    return v


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray | None = None
    index: np.ndarray | None = None
    meta: pd.DataFrame | None = None

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.x), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def paths(self) -> np.ndarray | None:
        """Each sample's file path relative to the image folder (image folders only; else None)."""
        return getattr(self.x, "paths", None)

    def take(self, rows: np.ndarray) -> "Split":
        """The samples at positions `rows` (positions, not `index` values)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Split(
            self.x.subset(rows) if hasattr(self.x, "subset") else self.x[rows],
            None if self.y is None else self.y[rows],
            self.index[rows],
            None if self.meta is None else self.meta.iloc[rows].reset_index(drop=True),
        )

    def position_of(self, index: int, split_name: str = "?") -> int:
        """Position of the sample whose `index` is `index` (raises a UserError if absent)."""
        hits = np.nonzero(self.index == index)[0]
        if hits.size == 0:
            sample = ", ".join(str(int(i)) for i in np.sort(self.index)[:5])
            raise UserError(
                f"{split_name}:{index} is not in the data: the {split_name} split holds {len(self)} samples whose indices are row numbers of the original data (e.g. {sample}, …); pick one of those"
            )
        return int(hits[0])


@dataclass
class Dataset:
    name: str
    kind: Literal["image", "tabular"]
    train: Split
    test: Split
    classes: list[str] | None = None
    schema: TabularSchema | None = None
    protected: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)  # provenance: paths, recipe, held-out fraction

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def has_labels(self) -> bool:
        return self.train.y is not None and self.test.y is not None

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}: use 'train' or 'test'")
        return getattr(self, name)


def parse_sample_ref(text: str) -> tuple[str, int]:
    """Parse 'test:17' or 'train:17' into (split, index)."""
    split, sep, idx = str(text).partition(":")
    if not sep or split not in SPLITS:
        raise UserError(f"bad sample reference {text!r}: write split:index, e.g. test:17 or train:3")
    try:
        i = int(idx)
    except ValueError:
        raise UserError(f"bad sample reference {text!r}: the index after ':' must be an integer") from None
    if i < 0:
        raise UserError(f"bad sample reference {text!r}: the index must be ≥ 0")
    return split, i


def parse_sample_refs(values) -> tuple[str, ...]:
    """'split:index' references, validated and normalised (e.g. ('test:17', 'train:3'))."""
    return tuple(f"{s}:{i}" for s, i in (parse_sample_ref(v) for v in values))
