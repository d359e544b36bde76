"""UCI Adult ("Census Income"; Becker & Kohavi 1996, CC BY 4.0) and Adult-1M built from it.

Adult
-----
Files `adult.data` (training, 32,561 rows) and `adult.test` (test, 16,281 rows; its first line,
starting with '|', is a comment; its labels end with '.'), found by `locate.find_data_file`
(`--data-dir`, `$SSLAUDIT_DATA`, each with an `adult/` subfolder).

- Encoder inputs: all 14 attributes (sex and race included; `exclude` can drop some); the income
  label is not an input. `y` = 1 if income is >50K, else 0 (`classes` = ['<=50K', '>50K']).
- Encoding: `TabularSchema.fit(train, categorical=CATEGORICAL, log1p=LOG1P)` on the training split
  only : numerics standardised
  (capital-gain/loss after log1p), categoricals one-hot, '?' (missing) a level of its own, levels
  seen only in adult.test encoded as all zeros.
- `Split.meta`: the 14 raw attributes (stripped strings; numerics as int64).
- `Split.index`: the 0-based data row in the file (adult.test's comment line not counted).
- `protected` defaults to ['sex', 'race'].

Adult-1M (recipe)
-----------------
1,000,000 training rows built from adult.data's 32,561 training rows only (adult.test plays no
part); the test split is the real adult.test. With `rng = numpy_rng(seed, "adult-1m")` (so
`seed` = 0 by default gives one fixed dataset), drawn in this order:

1. source rows: `rng.integers(0, 32561, 1_000_000)` — a bootstrap (uniform, with replacement);
   row i of Adult-1M copies every attribute and the label of training row `source[i]`, then
2. age: + `rng.integers(-2, 3)` (uniform integer in -2..2), clipped to [17, 90];
3. hours-per-week: + `rng.integers(-3, 4)` (-3..3), clipped to [1, 99];
4. fnlwgt: × exp(`rng.normal(0, 0.1)`) (log-normal, ≈ ±10 %), rounded, at least 1;
5. capital-gain: nonzero values × exp(`rng.normal(0, 0.05)`), rounded, clipped to [1, 99999]
   (99999 is the census top code); zeros stay zero;
6. capital-loss: nonzero values × exp(`rng.normal(0, 0.05)`), rounded, at least 1; zeros stay zero.
Each step draws one value per row (also for rows it leaves unchanged), so every step's draws are
fixed by the seed alone. education-num is kept (it is tied to education); the eight categorical
attributes are kept as they are. The schema is fitted on the 1,000,000 built rows.
`Split.index` of the training split is the row of the built dataset (0..999,999); the source
rows are not in `meta` (which holds only the 14 attributes): `adult_1m_source_rows(seed)`
recomputes them, and `Dataset.source["source_rows_sha256"]` (SHA-256 of them as little-endian
int64) pins them. Building takes about a second and well under 1 GB beyond the 432 MB inputs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UserError
from ..seeding import derive_seed, numpy_rng
from .dataset import Dataset, Split, TabularSchema
from .locate import find_data_file

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
]
CATEGORICAL = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
NUMERIC = [c for c in COLUMNS if c not in CATEGORICAL]
LOG1P = ("capital-gain", "capital-loss")
CLASSES = ["<=50K", ">50K"]
DEFAULT_PROTECTED = ["sex", "race"]
FULL_ROWS = {"train": 32561, "test": 16281}
ADULT_1M_ROWS = 1_000_000
FIX_HINT = "the file is damaged or not UCI Adult: download adult.data/adult.test again"


def read_adult_file(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read adult.data or adult.test: (the 14 raw attributes, y with 1 = income >50K)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e}; check the file's permissions") from None
    skip = 1 if first.lstrip().startswith("|") else 0
    try:
        df = pd.read_csv(
            path,
            header=None,
            names=COLUMNS + ["income"],
            skiprows=skip,
            skipinitialspace=True,
            dtype=str,
            na_filter=False,
            encoding="utf-8",
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} holds no rows; {FIX_HINT}") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"cannot parse {path} ({' '.join(str(e).split())}); {FIX_HINT}") from None
    if len(df) == 0:
        raise UserError(f"{path} holds no rows; {FIX_HINT}")
    short = df["income"].isna() | (df["income"] == "")
    if short.any():
        r = int(np.nonzero(short.to_numpy())[0][0])
        raise UserError(f"{path}: data row {r} has fewer than 15 comma-separated fields; {FIX_HINT}")
    meta = pd.DataFrame({c: df[c].str.strip() for c in COLUMNS})
    for c in NUMERIC:
        v = pd.to_numeric(meta[c], errors="coerce")
        if v.isna().any():
            r = int(np.nonzero(v.isna().to_numpy())[0][0])
            raise UserError(f"{path}: data row {r} has {c} = {meta[c].iloc[r]!r}, not a number; {FIX_HINT}")
        meta[c] = v.astype(np.int64)
    income = df["income"].str.strip().str.rstrip(".")
    ok = income.isin(CLASSES)
    if not ok.all():
        r = int(np.nonzero(~ok.to_numpy())[0][0])
        raise UserError(f"{path}: data row {r} has income {df['income'].iloc[r]!r}, not <=50K or >50K; {FIX_HINT}")
    y = (income == ">50K").to_numpy().astype(np.int64)
    return meta, y


def _options(protected: Sequence[str] | None, exclude: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    protected = list(DEFAULT_PROTECTED if not protected else protected)
    exclude = list(exclude or ())
    for what, names in (("protected", protected), ("excluded", exclude)):
        bad = [c for c in names if c not in COLUMNS]
        if bad:
            raise UserError(f"{what} column(s) {bad} are not Adult attributes; choose from {', '.join(COLUMNS)}")
    features = [c for c in COLUMNS if c not in exclude]
    if not features:
        raise UserError("--exclude removes every Adult attribute: keep at least one as encoder input")
    return protected, exclude, features


def _files(data_dir) -> dict[str, Path]:
    return find_data_file("adult", ["adult.data", "adult.test"], data_dir)


def _dataset(name, train_meta, y_tr, train_index, test_meta, y_te, features, protected, exclude, source) -> Dataset:
    schema = TabularSchema.fit(train_meta[features], categorical=[c for c in CATEGORICAL if c in features], log1p=LOG1P)
    return Dataset(
        name=name,
        kind="tabular",
        train=Split(schema.transform(train_meta), y_tr, train_index, train_meta),
        test=Split(schema.transform(test_meta), y_te, np.arange(len(test_meta), dtype=np.int64), test_meta),
        classes=list(CLASSES),
        schema=schema,
        protected=protected,
        source=dict(source, excluded=exclude),
    )


def load_adult(*, data_dir=None, protected: Sequence[str] | None = None, exclude: Sequence[str] = (), seed: int = 0) -> Dataset:
    """UCI Adult: train = adult.data, test = adult.test (`seed` is unused: no randomness)."""
    protected, exclude, features = _options(protected, exclude)
    files = _files(data_dir)
    tr, y_tr = read_adult_file(files["adult.data"])
    te, y_te = read_adult_file(files["adult.test"])
    return _dataset(
        "adult",
        tr,
        y_tr,
        np.arange(len(tr), dtype=np.int64),
        te,
        y_te,
        features,
        protected,
        exclude,
        {
            "origin": "UCI Adult / Census Income (Becker & Kohavi 1996), CC BY 4.0",
            "paths": {k: str(v) for k, v in files.items()},
        },
    )


def adult_1m_source_rows(seed: int = 0, n_source: int = FULL_ROWS["train"], n_rows: int = ADULT_1M_ROWS) -> np.ndarray:
    """The adult.data row behind each Adult-1M training row (step 1 of the recipe)."""
    return numpy_rng(seed, "adult-1m").integers(0, n_source, n_rows)


def build_adult_1m(meta: pd.DataFrame, y: np.ndarray, *, seed: int = 0, n_rows: int = ADULT_1M_ROWS) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Apply the recipe (module docstring) to adult.data's rows: (meta, y, source rows)."""
    rng = numpy_rng(seed, "adult-1m")
    src = rng.integers(0, len(meta), n_rows)  # same draw as adult_1m_source_rows
    age_d = rng.integers(-2, 3, n_rows)
    hours_d = rng.integers(-3, 4, n_rows)
    fnl_e = rng.normal(0.0, 0.1, n_rows)
    gain_e = rng.normal(0.0, 0.05, n_rows)
    loss_e = rng.normal(0.0, 0.05, n_rows)

    def col(c):
        return meta[c].to_numpy()[src]

    out = {}
    for c in COLUMNS:
        if c in CATEGORICAL:
            out[c] = meta[c].take(src).reset_index(drop=True)
        elif c == "age":
            out[c] = np.clip(col(c) + age_d, 17, 90)
        elif c == "hours-per-week":
            out[c] = np.clip(col(c) + hours_d, 1, 99)
        elif c == "fnlwgt":
            out[c] = np.maximum(np.rint(col(c) * np.exp(fnl_e)), 1).astype(np.int64)
        elif c == "capital-gain":
            v = col(c)
            out[c] = np.where(v > 0, np.clip(np.rint(v * np.exp(gain_e)), 1, 99999), 0).astype(np.int64)
        elif c == "capital-loss":
            v = col(c)
            out[c] = np.where(v > 0, np.maximum(np.rint(v * np.exp(loss_e)), 1), 0).astype(np.int64)
        else:  # education-num
            out[c] = col(c)
    built = pd.DataFrame(out)
    for c in NUMERIC:
        built[c] = built[c].astype(np.int64)
    return built, np.asarray(y)[src].astype(np.int64), src


def load_adult_1m(
    *,
    data_dir=None,
    protected: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    seed: int = 0,
    n_rows: int = ADULT_1M_ROWS,
) -> Dataset:
    """Adult-1M: `n_rows` training rows built from adult.data by the recipe; test = adult.test."""
    protected, exclude, features = _options(protected, exclude)
    files = _files(data_dir)
    src_meta, src_y = read_adult_file(files["adult.data"])
    te, y_te = read_adult_file(files["adult.test"])
    tr, y_tr, src = build_adult_1m(src_meta, src_y, seed=seed, n_rows=n_rows)
    return _dataset(
        "adult-1m",
        tr,
        y_tr,
        np.arange(n_rows, dtype=np.int64),
        te,
        y_te,
        features,
        protected,
        exclude,
        {
            "origin": "built from UCI Adult's training rows (Becker & Kohavi 1996, CC BY 4.0) by the recipe in sslaudit.data.adult",
            "paths": {k: str(v) for k, v in files.items()},
            "recipe": {
                "n_rows": int(n_rows),
                "n_source_rows": int(len(src_meta)),
                "seed": int(seed),
                "rng_seed": derive_seed(seed, "adult-1m"),
                "bootstrap": "uniform with replacement",
                "age": "+U{-2..2}, clip [17, 90]",
                "hours-per-week": "+U{-3..3}, clip [1, 99]",
                "fnlwgt": "x exp(N(0, 0.1)), round, >= 1",
                "capital-gain": "nonzero x exp(N(0, 0.05)), round, clip [1, 99999]; zero stays",
                "capital-loss": "nonzero x exp(N(0, 0.05)), round, >= 1; zero stays",
                "kept": ["education-num"] + CATEGORICAL,
            },
            "source_rows_sha256": hashlib.sha256(src.astype("<i8").tobytes()).hexdigest(),
        },
    )
