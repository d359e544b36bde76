"""`sslaudit audit`: run every registered lens that applies to a run, then the report.

Each lens runs through `run_lens` (the same path as `sslaudit <lens> RUN` and as the library),
with the configuration its `audit_config` sizes to the data; a lens that does not apply, or that
its `audit_config` leaves out, is recorded as skipped with its reason. RUN/audit/status.json holds
each lens's state, configuration, time, peak resident memory (`compute.memory.PeakRSS`) and note, and a rerun reuses every lens whose stored
results match. The lowest-Q-Score test samples ("focus") are passed to every lens that explains
chosen inputs (KREPES, RELAX), so the report can link each to its landmarks and its map.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import lenses
from .compute.memory import PeakRSS
from .errors import UserError
from .lenses import config as lens_config
from .lenses.context import Context
from .progress import info

STATUS = "audit/status.json"
FOCUS = 6  # lowest-Q-Score test samples examined by the lenses that explain chosen inputs
QUICK_FOCUS = 3


def quick_epochs(default: int) -> int:
    """Training epochs of `audit --quick`: a sixth of the default (digits: 10 instead of 60), at least 2."""
    return max(2, default // 6)


class Audit:
    """Every lens on one run; `run_all()` runs them, `status` says what happened to each."""

    def __init__(self, run_path: Path, ctx: Context, *, quick: bool = False):
        self.path = Path(run_path)
        self.ctx, self.quick = ctx, quick
        self.run = ctx.open(self.path)
        self.store = self.run.store
        self.status = self.store.read_json(STATUS) if STATUS in self.store.manifest["artefacts"] else {"lenses": {}, "focus": {}}

    def save(self) -> None:
        with self.store.lock():
            self.store.write_json(STATUS, self.status, stage="audit")

    def stage(self, name: str, focus: list[str]) -> None:
        """Run one lens (or record why it is skipped). A lens that fails is recorded with its
        error and the command that reruns it, and the audit goes on with the other lenses."""
        lens = lenses.get(name)
        ok, reason = lens.applies(self.run)
        cfg, note = lens.audit_config(self.run, focus=focus, quick=self.quick) if ok else (None, reason)
        if cfg is None:
            self.status["lenses"][name] = {"state": "skipped", "reason": note or reason, "command": lens.skip_command(self.run) or f"sslaudit {name} {self.path}"}
            info(f"[audit] {name}: skipped — {note or reason}")
            self.save()
            return
        cfg = lens_config.with_context(cfg, seed=self.ctx.seed, device=self.ctx.device, max_memory=self.ctx.max_memory)
        command = lens_config.command_line(name, self.path, cfg, {"seed": self.ctx.seed, "max_memory": self.ctx.max_memory, "trust_code": self.ctx.trust_code})
        info(f"[audit] {name} …")
        t = time.perf_counter()
        try:
            with PeakRSS() as mem:
                lenses.run_lens(lens, self.run, cfg, self.ctx)
        except Exception as e:  # noqa: BLE001 — one lens's failure must not lose the others' results
            msg = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            self.status["lenses"][name] = {"state": "failed", "reason": msg, "command": command, "seconds": round(time.perf_counter() - t, 2)}
            info(f"[audit] {name}: failed — {msg}")
            self.save()
            return
        self.status["lenses"][name] = {
            "state": "done",
            "config": lens_config.to_json(cfg),
            "command": command,
            "seconds": round(time.perf_counter() - t, 2),
            "peak_rss_gb": round(mem.peak / 2**30, 3),
            "peak_rss_exact": mem.exact,
            "note": note,
        }
        self.save()

    def failed(self) -> list[str]:
        return [k for k, v in self.status["lenses"].items() if v.get("state") == "failed"]

    def focus(self) -> list[str]:
        """Test samples with the lowest Q-Score (or a seeded sample when Q-Score was skipped)."""
        n = QUICK_FOCUS if self.quick else FOCUS
        if self.store.stage_done("qscore"):
            sc = self.store.read_parquet("qscore/scores.parquet")
            low = sc[sc["split"] == "test"].sort_values("qscore").head(n)
            ids = [int(i) for i in low["index"]]
        else:
            from .seeding import numpy_rng

            idx = self.run.dataset.test.index
            ids = sorted(int(i) for i in numpy_rng(self.ctx.seed, "audit", "focus").choice(idx, size=min(n, len(idx)), replace=False))
        self.status["focus"] = {"test": ids}
        return [f"test:{i}" for i in ids]

    def run_all(self) -> None:
        """Q-Score first (it chooses the focus samples), then every other registered lens."""
        order = lenses.names()
        focus: list[str] = []
        if "qscore" in order:
            self.stage("qscore", focus)
        focus = self.focus()
        self.save()
        for name in order:
            if name != "qscore":
                self.stage(name, focus)
