"""Show a sample (by split and index) as a picture or a small table of its raw attributes."""
from __future__ import annotations

from typing import Any

import numpy as np

from .blocks import Tile, fmt
from .images import thumbnail


class SampleView:
    """Looks samples up by (split, index) in a dataset and renders them as report tiles."""

    def __init__(self, dataset, max_fields: int = 14, thumb: int = 100):
        self.ds = dataset
        self.thumb = thumb  # pixels of a thumbnail's longer side (nearest-neighbour upscaling)
        self.max_fields = max_fields
        self._pos: dict[str, dict[int, int]] = {}

    def position(self, split: str, index: int) -> int | None:
        if split not in self._pos:
            idx = self.ds.split(split).index
            self._pos[split] = {int(v): i for i, v in enumerate(idx)}
        return self._pos[split].get(int(index))

    def label(self, split: str, index: int) -> str | None:
        s = self.ds.split(split)
        p = self.position(split, index)
        if p is None or s.y is None:
            return None
        y = int(s.y[p])
        classes = self.ds.classes
        return str(classes[y]) if classes and 0 <= y < len(classes) else str(y)

    def tile(self, split: str, index: int, caption: str, **kw: Any) -> Tile:
        p = self.position(split, index)
        lab = self.label(split, index)
        cap = caption + (f" · label {lab}" if lab is not None else "")
        if p is None:
            return Tile(None, cap + " (not in the data)", **kw)
        s = self.ds.split(split)
        if self.ds.kind == "image":
            return Tile(thumbnail(s.x[p], size=self.thumb), cap, **kw)
        fields: list[tuple[str, Any]] = []
        if s.meta is not None:
            row = s.meta.iloc[p]
            fields = [(str(c), fmt(row[c]) if isinstance(row[c], (float, np.floating)) else str(row[c])) for c in list(s.meta.columns)[: self.max_fields]]
        return Tile(None, cap, fields=fields, **kw)
