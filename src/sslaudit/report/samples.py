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

    @property
    def is_image(self) -> bool:
        return self.ds.kind == "image"

    def attributes(self, split: str, index: int) -> list[tuple[str, Any]]:
        """The raw attributes of a table row (empty for images or rows not in the data)."""
        p = self.position(split, index)
        s = self.ds.split(split)
        if p is None or s.meta is None:
            return []
        row = s.meta.iloc[p]
        return [(str(c), fmt(row[c]) if isinstance(row[c], (float, np.floating)) else str(row[c])) for c in list(s.meta.columns)[: self.max_fields]]

    def rows_table(self, items: list[tuple[list[Any], str, int]], lead: list[str], caption: str, folded: bool = False, compare_first: bool = False):
        """Table rows as a table: `lead` columns (e.g. rank, sign) then the label and the raw attributes.

        With `compare_first`, attribute cells equal to the first row's are marked (what a test
        point shares with its landmarks)."""
        from .blocks import Table

        names: list[str] = []
        rows, same = [], []
        for vals, split, index in items:
            attrs = self.attributes(split, index)
            if not names:
                names = [k for k, _ in attrs]
            lab = self.label(split, index)
            rows.append([*vals, f"{split}:{index}", lab if lab is not None else "", *[v for _, v in attrs]])
        if compare_first and rows:
            k = len(lead) + 1  # the label and the attributes are compared
            same = [[False] * k + [i > 0 and j >= k and str(r[j]) == str(rows[0][j]) for j in range(k, len(r))] for i, r in enumerate(rows)]
        return Table([*lead, "sample", "label", *names], rows, caption, folded=folded, same=same or None, compact=True)

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
