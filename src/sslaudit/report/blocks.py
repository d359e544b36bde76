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
    """A table; folded (inside <details>) unless it is the only way to show the numbers."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    kind: str = "table"
    folded: bool = True
    same: list[list[bool]] | None = None  # cells to mark as "the same value as the first row's"
    compact: bool = False  # one line per row (tables of samples)


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
    tip: str = ""  # tooltip of the tile


@dataclass
class Gallery:
    title: str
    tiles: list[Tile]
    kind: str = "gallery"
    anchor: str = ""
    caption: str = ""  # one sentence on how to read the gallery


@dataclass
class Card:
    """One lens's verdict on the first screen: plain words, one number, how far to trust it."""

    lens: str  # the lens's name as a reader knows it
    verdict: str  # one sentence
    number: str = ""  # the one number that supports the verdict, formatted
    number_label: str = ""  # what the number is (a glossary term when there is one)
    trust: str = ""  # how far to trust the verdict
    tone: str = ""  # good / warn / bad / skipped
    link: str = ""  # the lens's section
    command: str = ""  # the command that (re)runs the lens, when it did not run
    kind: str = "card"


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)
    note: str = ""  # e.g. "subsampled to 5,000 of 60,000 training samples"
    lead: str = ""  # one sentence: the question this section answers


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
        if v != v:
            return "n/a"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.{digits}g}"
        s = f"{v:.{digits}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s
    return v


def pct(v: Any, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage ('n/a' when missing)."""
    try:
        return f"{100 * float(v):.{digits}f}%"
    except (TypeError, ValueError):
        return "n/a"
