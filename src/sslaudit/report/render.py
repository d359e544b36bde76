"""Render RUN/report.html from what the lenses stored: static, self-contained, escaped."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import jinja2

from .. import __version__
from ..errors import UserError
from ..store import RunStore
from .collect import Collector

LENS_ORDER = ("krepes", "influence", "relax", "qscore", "simvae")


def _env() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(Path(__file__).parent))
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def render_report(run_path: str | Path, *, data_dir=None) -> Path:
    """Write RUN/report.html from the run's artefacts and return its path."""
    store = RunStore(run_path)
    if not store.stage_done("train"):
        raise UserError(f"{run_path} has no finished model; run `sslaudit train` or `sslaudit audit` first")
    config = store.read_json("config.json")
    metrics = store.read_json("metrics.json") if "metrics.json" in store.manifest["artefacts"] else {}
    status = store.read_json("audit/status.json") if "audit/status.json" in store.manifest["artefacts"] else {}
    try:
        from ..run import load_data

        dataset = load_data(config["data"], data_dir)
    except UserError as e:
        raise UserError(f"the report shows samples from the run's data, which cannot be loaded: {e}") from None
    col = Collector(store, dataset, metrics, config, status)
    sections = [col.summary()]
    for lens in LENS_ORDER:
        sec = getattr(col, lens)()
        if sec is not None:
            sections.append(sec)
    skipped = [(k, v.get("reason", "")) for k, v in status.get("lenses", {}).items() if v.get("state") == "skipped"]
    html = _env().get_template("template.html").render(
        title=f"{config.get('data', {}).get('spec', '?')} · {config.get('train', {}).get('objective', '')}",
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        sections=sections,
        skipped=skipped,
        run_path=str(store.root),
    )
    with store.lock():
        return store.write_bytes("report.html", html.encode("utf-8"), stage="report")
