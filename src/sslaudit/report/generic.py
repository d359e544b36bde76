"""The report section of a lens that brings no section of its own: its stored figures, tables
(first rows) and documents (as name/value tables), from the files `run_lens` wrote."""

from __future__ import annotations

from .blocks import Figure, Section
from .collect import _table, humanise, json_blocks
from .images import data_uri


def generic_section(col, lens) -> Section | None:
    files = [p for p in col.files(f"{lens.name}/") if p.count("/") == 1 and not p.endswith("/config.json")]
    if not files:
        return None

    def build(sec: Section) -> None:
        for p in files:
            stem = humanise(p.split("/")[-1].rsplit(".", 1)[0])
            if p.endswith(".png"):
                sec.blocks.append(Figure(data_uri(col.store.read_bytes(p)), f"{lens.title or lens.name}: {stem}.", alt=stem))
        for p in files:
            stem = humanise(p.split("/")[-1].rsplit(".", 1)[0])
            if p.endswith(".parquet"):
                sec.blocks.append(_table(col.parquet(p), caption=f"{stem} (RUN/{p})"))
            elif p.endswith(".json"):
                sec.blocks.extend(json_blocks(col.json(p), stem))

    return col.safe(lens.name, lens.title or lens.name, build, lead=(type(lens).__doc__ or "").strip().split("\n")[0])
