"""Concept sets for concept-conditioned scores: `NAME=SPEC` with SPEC one of

- `COLUMN==VALUE`: training rows whose metadata column equals VALUE (tables);
- `label==VALUE`: training rows of that class (the user's own concept definition);
- `@FILE`: one `split:index` per line (blank lines and `#` comments ignored).

The negative set is a seeded random sample, of the same size, of the other rows of the same
split(s) (TCAV's random counterpart).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data.dataset import parse_sample_ref
from ...errors import UserError
from ...seeding import numpy_rng

MAX_POSITIVE = 5000


@dataclass
class ConceptSet:
    name: str
    spec: str
    positive: list  # (split, position) pairs
    negative: list


def parse_concept(text: str) -> tuple[str, str]:
    name, sep, spec = str(text).partition("=")
    if not sep or not name.strip() or not spec.strip() or name.strip().startswith("@"):
        raise UserError(f"bad --concept {text!r}: write NAME=COLUMN==VALUE, NAME=label==VALUE or NAME=@FILE")
    return name.strip(), spec.strip()


def _matches(values: pd.Series, value: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values):
        try:
            return values.to_numpy(dtype=np.float64) == float(value)
        except ValueError:
            raise UserError(f"column {values.name!r} is numeric; {value!r} is not a number") from None
    return (values.astype(str).str.strip() == value.strip()).to_numpy()


def concept_set(name: str, spec: str, dataset, seed: int = 0) -> ConceptSet:
    if spec.startswith("@"):
        path = Path(spec[1:]).expanduser()
        if not path.is_file():
            raise UserError(f"concept {name!r}: file {str(path)!r} not found; give one split:index per line")
        pos = []
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                split, idx = parse_sample_ref(line)
                pos.append((split, dataset.split(split).position_of(idx, split)))
        pos = sorted(set(pos))
    else:
        col, sep, value = spec.partition("==")
        col = col.strip()
        if not sep:
            raise UserError(f"bad concept spec {spec!r}: write COLUMN==VALUE, label==VALUE or @FILE")
        tr = dataset.train
        if col == "label":
            if tr.y is None:
                raise UserError(f"concept {name!r} uses label==… but the data has no labels; use a metadata column or @FILE")
            hit = np.asarray(tr.y).astype(str) == value
            if dataset.classes and value in dataset.classes:
                hit |= np.asarray(tr.y) == list(dataset.classes).index(value)
        else:
            if tr.meta is None or col not in tr.meta.columns:
                cols = [] if tr.meta is None else list(tr.meta.columns)
                raise UserError(f"concept {name!r}: unknown column {col!r}; metadata columns are {cols or 'none (image data: use label==VALUE or @FILE)'}")
            hit = _matches(tr.meta[col], value)
        pos = [("train", int(i)) for i in np.nonzero(hit)[0]]
    if len(pos) < 2:
        raise UserError(f"concept {name!r} ({spec}) matches {len(pos)} sample(s); it needs at least 2")
    rng = numpy_rng(seed, "krepes", "concept", name)
    if len(pos) > MAX_POSITIVE:
        pos = [pos[i] for i in np.sort(rng.choice(len(pos), MAX_POSITIVE, replace=False))]
    taken = set(pos)
    splits = sorted({s for s, _ in pos})
    rest = [(s, i) for s in splits for i in range(len(dataset.split(s))) if (s, i) not in taken]
    if len(rest) < 2:
        raise UserError(f"concept {name!r} covers (almost) all of its split; nothing is left for the negative set")
    neg_idx = np.sort(rng.choice(len(rest), min(len(pos), len(rest)), replace=False))
    return ConceptSet(name, spec, pos, [rest[i] for i in neg_idx])
