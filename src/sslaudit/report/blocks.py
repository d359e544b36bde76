"""The report's building blocks: plain data that the HTML template renders (and escapes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Text:
    text: str
    kind: str = "text"
    tone: str = ""  # "", "good", "warn", "bad"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    kind: str = "table"


@dataclass
class Figure:
    uri: str
    caption: str = ""
    kind: str = "figure"
    alt: str = ""


@dataclass
class Tile:
    uri: str | None  # picture, or None for tabular samples (then `fields` is shown)
    caption: str
    anchor: str = ""  # id of this tile (for cross-links)
    link: str = ""  # href of a related tile elsewhere in the report
    link_text: str = ""
    tone: str = ""
    fields: list[tuple[str, Any]] = field(default_factory=list)


@dataclass
class Gallery:
    title: str
    tiles: list[Tile]
    kind: str = "gallery"
    anchor: str = ""


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)
    note: str = ""  # e.g. "subsampled to 5,000 of 60,000 training samples"


def fmt(v: Any, digits: int = 4) -> Any:
    """Numbers rounded for display; everything else unchanged (escaped by the template)."""
    if isinstance(v, bool) or v is None:
        return v
    try:
        import numpy as np

        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            v = float(v)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{v:.{digits}f}" else f"{v:.{digits}f}"
    return v
