"""`run_lens`: run one lens on one run through the store, the same way from Python, the CLI and
the audit.

The lens's results are one named stage of the run (`RUN/manifest.json` → stages → <lens>),
keyed by the lens's configuration, the context's seed and the encoder's identity. A rerun with
the same key reads the stored results back (checksums verified) and computes nothing; a lens
interrupted mid-way keeps the sub-stages it finished (RELAX's inputs, KREPES's kernel blocks,
Q-Score's probes) and resumes from them. Every result file and RUN/<lens>/config.json (the
configuration, context and encoder identity) are written atomically under the run's lock.
"""

from __future__ import annotations

from pathlib import Path

from ..data.samples import with_sample_columns
from ..errors import UserError
from ..progress import info
from . import config as lens_config
from .base import Lens, LensResult
from .context import Context

CONFIG_FILE = "config.json"
TABLE_SCHEMA = 2  # the sample vocabulary of data/samples.py; results stored under another schema are recomputed


def lens_key(lens: Lens, run, cfg) -> dict:
    """What a lens's stored results depend on."""
    return {"lens": lens.name, "config": lens_config.to_json(cfg), "encoder": run.encoder_id, "tables": TABLE_SCHEMA}


def prepare(lens: Lens | str, run, config=None, ctx: Context | None = None):
    """(lens, run, config, context) with the context's seed/device/max_memory set in the config."""
    from . import get

    lens = get(lens) if isinstance(lens, str) else lens
    if isinstance(run, (str, Path)):
        ctx = ctx or Context()
        run = ctx.open(run)
    ctx = ctx or Context(device=run.device, trust_code=run.trust_code)
    cfg = config if config is not None else lens.Config()
    if not isinstance(cfg, lens.Config):
        raise TypeError(f"the {lens.name} lens takes a {lens.Config.__name__}, not a {type(cfg).__name__}")
    cfg = lens_config.with_context(cfg, seed=ctx.seed, device=ctx.device, max_memory=ctx.max_memory)
    return lens, run, cfg, ctx


def run_lens(lens: Lens | str, run, config=None, ctx: Context | None = None) -> LensResult:
    """Compute (or reuse) a lens's results on a run and return them as stored.

    `lens`: a registered name or a Lens; `run`: a Run or its path; `config`: the lens's Config
    (default: its defaults); `ctx`: the shared settings (default: seed 0 on the run's device).
    """
    lens, run, cfg, ctx = prepare(lens, run, config, ctx)
    ok, reason = lens.applies(run)
    if not ok:
        alt = lens.skip_command(run)
        raise UserError(f"the {lens.name} lens does not apply to {run.path}: {reason}" + (f" (try `{alt}`)" if alt else ""))
    store, key = run.store, lens_key(lens, run, cfg)
    if store.stage_done(lens.name, key):
        info(f"{lens.title or lens.name}: results with this configuration are already in the run; reusing them")
        return load_result(store, lens.name)
    with store.lock():
        result = lens.compute(run, cfg, ctx)
        result.tables = {name: with_sample_columns(table, run.dataset) for name, table in result.tables.items()}
        files = result.files()
        previous = (store.manifest["stages"].get(lens.name) or {}).get("info", {}).get("results", [])
        store.invalidate(lens.name)
        for rel in previous:  # results of an earlier configuration that this one does not produce
            if rel.removeprefix(f"{lens.name}/") not in files and rel not in result.depends:
                store.remove(rel)
        written = []
        for name, (kind, value) in files.items():
            rel = f"{lens.name}/{name}"
            if kind == "table":
                store.write_parquet(rel, value, stage=lens.name)
            elif kind == "document":
                store.write_json(rel, value, stage=lens.name)
            elif kind == "arrays":
                store.write_npz(rel, stage=lens.name, **value)
            else:
                store.write_bytes(rel, value, stage=lens.name)
            written.append(rel)
        rel = f"{lens.name}/{CONFIG_FILE}"
        store.write_json(rel, {"lens": lens.name, "config": key["config"], "context": ctx.to_json(), "encoder": key["encoder"]}, stage=lens.name)
        store.mark_done(lens.name, key, [*written, rel, *result.depends], {"results": written})
    return load_result(store, lens.name)


def load_result(store, name: str) -> LensResult:
    """The stored results of lens `name` (checksum-verified), as a LensResult."""
    stage = store.manifest["stages"].get(name)
    if stage is None:
        raise UserError(f"{store.root} holds no results of the {name} lens; run `sslaudit {name} {store.root}`")
    out = LensResult()
    for rel in stage.get("info", {}).get("results", stage["artefacts"]):
        base = rel.removeprefix(f"{name}/")
        if base == CONFIG_FILE or "/" in base:
            continue
        stem, ext = base.rsplit(".", 1)
        if ext == "parquet":
            out.tables[stem] = store.read_parquet(rel)
        elif ext == "json":
            out.documents[stem] = store.read_json(rel)
        elif ext == "npz":
            out.arrays[stem] = store.read_npz(rel)
        elif ext == "png":
            out.figures[stem] = store.read_bytes(rel)
    return out


class Memo:
    """Costly parts of a lens kept as their own stages (RUN/<lens>/parts/<name>.npz|.json), so a
    computation interrupted after them resumes without redoing them.

    `memo(name, compute)` returns `compute()`'s value — a dict of arrays and JSON-able values —
    as stored (read back even when just computed, so a fresh and a resumed run see the same values).
    """

    def __init__(self, store, lens: str, key: dict):
        self.store, self.lens, self.key = store, lens, key

    def __call__(self, name: str, compute):
        import numpy as np

        stage = base = f"{self.lens}/parts/{name}"  # the stage and its files share the name
        store = self.store
        if not store.stage_done(stage, self.key):
            value = compute()
            arrays = {k: v for k, v in value.items() if isinstance(v, np.ndarray)}
            rest = {k: v for k, v in value.items() if k not in arrays}
            with store.lock():
                files = [str(store.write_json(f"{base}.json", rest, stage=stage).relative_to(store.root.resolve()))]
                if arrays:
                    files.append(str(store.write_npz(f"{base}.npz", stage=stage, **arrays).relative_to(store.root.resolve())))
                store.mark_done(stage, self.key, files)
        out = dict(store.read_json(f"{base}.json"))
        if f"{base}.npz" in store.manifest["stages"][stage]["artefacts"]:
            out.update(store.read_npz(f"{base}.npz"))
        return out
