"""Render RUN/report.html from what the lenses stored: static, self-contained, escaped.

The page opens with the findings (one verdict card per lens), then one section per lens with its
figures first and its tables folded below, then the lenses that did not run with the command that
runs them, and a glossary. Every diagnostic's name carries a tooltip (title=) from glossary.py.
Images are data URIs and the Content-Security-Policy forbids every other source, so the file works
offline and can be mailed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import jinja2

from .. import __version__
from ..errors import UserError
from ..store import RunStore
from .. import lenses
from .collect import LENS_TITLES, Collector
from .findings import collect_cards, rerun_command
from .glossary import GLOSSARY


def lens_title(name: str) -> str:
    try:
        return lenses.get(name).title or name
    except UserError:  # a lens recorded by the audit that is not installed here
        return LENS_TITLES.get(name, name)


def _env() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(Path(__file__).parent))
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


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
    cards = collect_cards(col)
    sections = [col.summary()]
    for name in lenses.names():  # each registered lens's own section
        lens = lenses.get(name)
        if not col.files(f"{name}/"):
            continue
        sec = lens.section(col)
        if sec is not None:
            sections.append(sec)
    not_run = []
    for k, v in (status.get("lenses") or {}).items():
        if v.get("state") in ("skipped", "failed"):
            not_run.append({"title": lens_title(k), "state": v.get("state"), "reason": v.get("reason", "no reason recorded"), "command": v.get("command") or rerun_command(k, store.root, v)})
    data = (config.get("data") or {}).get("spec", "?")
    objective = (config.get("train") or {}).get("objective") or (config.get("external") or {}).get("objective") or ""
    glossary = dict(sorted(GLOSSARY.items(), key=lambda kv: kv[0].lower()))

    def render(size: str) -> str:
        return (
            _env()
            .get_template("template.html")
            .render(
                title=f"{data} · {objective}",
                data=data,
                objective=objective,
                generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                version=__version__,
                cards=cards,
                sections=sections,
                not_run=not_run,
                glossary=glossary,
                run_path=str(store.root),
                size=size,
            )
        )

    html = render("")
    html = render(size_text(len(html.encode("utf-8"))))
    with store.lock():
        return store.write_bytes("report.html", html.encode("utf-8"), stage="report")
