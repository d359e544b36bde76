"""`sslaudit audit`: train or load an encoder, run every lens that applies, write the report.

The audit is a list of stages. Each lens runs through its own command (the same code path as
`sslaudit <lens> RUN ...`), with defaults sized to the data; a lens that does not apply is
skipped with its reason. Finished stages are recorded in RUN/audit/status.json and in the run's
manifest, so a rerun skips them. The lowest-Q-Score test samples are passed to KREPES and RELAX so
that the report can link each to its landmarks and its attribution map.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import UserError
from .progress import info

STATUS = "audit/status.json"


AUDIT_STEP_SAMPLE = 8_192  # training samples in the audit's KREPES step when the data has more than 20,000


def quick_epochs(default: int) -> int:
    """Training epochs of `audit --quick`: a sixth of the default (digits: 10 instead of 60), at least 2."""
    return max(2, default // 6)


@dataclass
class AuditPlan:
    """Sizes of the lens runs, chosen from the data so the whole audit fits a CPU budget."""

    focus: int = 6  # lowest-Q-Score test samples examined by KREPES and RELAX
    test_points: int = 500  # KREPES test points (plus the focus samples)
    relax_masks: str = "auto"
    influence_subsample: int | None = None  # training samples scored by influence (None: all)
    influence_check: int = 50  # rows on which the duplicate search is checked against exact scores
    influence_draws: int = 2  # augmentation pairs in the label-free loss
    krepes_extra: list = field(default_factory=list)
    relax_extra: list = field(default_factory=list)
    qscore_fractions: str = "0.1,0.25,0.5,0.75,1"
    notes: dict = field(default_factory=dict)

    @classmethod
    def for_data(cls, n_train: int, n_test: int, kind: str, quick: bool = False) -> "AuditPlan":
        p = cls()
        if quick:  # a coarse smoke audit: every lens runs, on small samples with fixed settings
            p.focus, p.test_points, p.relax_masks = 3, min(n_test, 30), "300"
            p.influence_subsample, p.influence_check, p.influence_draws = min(n_train, 200), 0, 1
            p.krepes_extra = ["--lambda", "10", "--step-sample", "256", "--landmarks", str(min(n_train, 64)), "--cg-max-iter", "10"]
            p.relax_extra = ["--no-sanity"]
            p.qscore_fractions = "0.5,1"
            p.notes = {lens: "quick audit: small samples and fixed settings (--quick)" for lens in ("krepes", "relax", "influence", "qscore")}
            return p
        p.test_points = min(n_test, 1000 if n_train > 20_000 else 300)
        if n_train > 20_000:
            p.influence_subsample = 5_000
            p.notes["influence"] = f"Influence was computed for a seeded subsample of {p.influence_subsample:,} of the {n_train:,} training samples to fit the audit's CPU budget; run `sslaudit influence RUN` for all of them."
        krepes_notes = []
        if p.test_points < n_test:
            krepes_notes.append(f"Landmarks were computed for {p.test_points:,} seeded test points (of {n_test:,}) plus the focus samples.")
        if n_train > 20_000:  # the step's cost grows with its sample (each CG product is a pass over it); the kernel still covers all rows
            p.krepes_extra = ["--step-sample", str(AUDIT_STEP_SAMPLE)]
            krepes_notes.append(f"The Gauss–Newton step used a seeded subsample of {AUDIT_STEP_SAMPLE:,} of the {n_train:,} training samples "
                                f"(two views each) to fit the audit's CPU budget; landmarks and scores cover all of them. "
                                f"`sslaudit krepes RUN` uses up to 131,072.")
        if krepes_notes:
            p.notes["krepes"] = " ".join(krepes_notes)
        return p


def _invoke(verb: str, args: list[str]) -> None:
    """Run a lens through its CLI command in-process (same code path as the command line)."""
    from .cli.main import cli

    cmd = cli.get_command(None, verb)
    if cmd is None:
        raise UserError(f"the {verb} lens is not installed")
    cmd.main(args=args, prog_name=f"sslaudit {verb}", standalone_mode=False)


class Audit:
    def __init__(self, run_path: Path, *, seed: int, device: str, quiet: bool, data_dir=None, quick: bool = False, trust_code: bool = False):
        from .run import load

        self.path = Path(run_path)
        self.trust_code = trust_code
        self.run = load(self.path, data_dir=data_dir, device=device, trust_code=trust_code)
        self.seed, self.device, self.quiet = seed, device, quiet
        self.store = self.run.store
        self.status = self.store.read_json(STATUS) if STATUS in self.store.manifest["artefacts"] else {"lenses": {}, "focus": {}}
        ds = self.run.dataset
        self.plan = AuditPlan.for_data(len(ds.train), len(ds.test), ds.kind, quick)

    def common(self) -> list[str]:
        out = ["--seed", str(self.seed), "--device", self.device]
        return out + (["--quiet"] if self.quiet else []) + (["--trust-code"] if self.trust_code else [])

    def save(self) -> None:
        with self.store.lock():
            self.store.write_json(STATUS, self.status, stage="audit")

    def stage(self, lens: str, args: list[str] | None, reason: str | None = None, after: Callable[[], None] | None = None, command: str = "") -> None:
        """Run one lens (or record why it is skipped). A lens that fails is recorded with its
        error and the command that reruns it, and the audit goes on with the other lenses."""
        entry = self.status["lenses"].get(lens, {})
        key = {"args": args, "seed": self.seed}
        if reason is not None:
            self.status["lenses"][lens] = {"state": "skipped", "reason": reason, "command": command}
            info(f"[audit] {lens}: skipped — {reason}")
            self.save()
            return
        if entry.get("state") == "done" and entry.get("key") == key:
            if self.lens_files_verify(lens):
                info(f"[audit] {lens}: already done, reusing it")
                return
            info(f"[audit] {lens}: its stored files are missing or fail their checksums; recomputing it")
        info(f"[audit] {lens} …")
        t = time.perf_counter()
        try:
            _invoke(lens, [str(self.path), *args, *self.common()])
            if after:
                after()
        except Exception as e:  # noqa: BLE001 — one lens's failure must not lose the others' results
            msg = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            cmd = "sslaudit " + " ".join([lens, str(self.path), *args])
            self.status["lenses"][lens] = {"state": "failed", "key": key, "reason": msg, "command": cmd, "seconds": round(time.perf_counter() - t, 2)}
            info(f"[audit] {lens}: failed — {msg}")
            self.save()
            return
        self.status["lenses"][lens] = {"state": "done", "key": key, "seconds": round(time.perf_counter() - t, 2), "note": self.plan.notes.get(lens, "")}
        self.save()

    def lens_files_verify(self, lens: str) -> bool:
        """True if the lens stored results and every one of them matches its manifest checksum
        (caches under a cache/ folder are excluded: the lens verifies those itself)."""
        self.store.reload()
        files = [rel for rel in self.store.manifest["artefacts"] if rel.startswith(f"{lens}/") and "/cache/" not in rel]
        return bool(files) and all(self.store.verify(rel) for rel in files)

    def failed(self) -> list[str]:
        return [k for k, v in self.status["lenses"].items() if v.get("state") == "failed"]

    # --- which lenses apply ----------------------------------------------------------------
    def applicability(self) -> dict[str, str | None]:
        ds = self.run.dataset
        metrics = self.store.read_json("metrics.json")
        generative = self.run.objective in ("simvae", "vae", "betavae")
        reasons: dict[str, str | None] = {}
        reasons["qscore"] = None if metrics.get("nonnegative", True) else "Q-Score needs non-negative features and this representation has negative values (e.g. a VAE posterior mean)"
        reasons["krepes"] = None
        reasons["relax"] = None if ds.kind == "image" else "RELAX masks spatial regions and these inputs are table rows (run `sslaudit relax RUN --tabular-groups` for feature-group masks)"
        reasons["influence"] = None
        reasons["simvae"] = None if generative else "the model is discriminative; train with --objective simvae for the generative view"
        if ds.kind == "image":
            self.plan.notes.setdefault("krepes_alignment", "The Feature Alignment Gap applies to tabular data and is skipped on images.")
        return reasons

    def focus(self) -> list[str]:
        """Test samples with the lowest Q-Score (or a seeded sample when Q-Score was skipped)."""
        if "qscore/scores.parquet" in self.store.manifest["artefacts"]:
            sc = self.store.read_parquet("qscore/scores.parquet")
            low = sc[sc["split"] == "test"].sort_values("qscore").head(self.plan.focus)
            ids = [int(i) for i in low["index"]]
        else:
            from .seeding import numpy_rng

            idx = self.run.dataset.test.index
            ids = sorted(int(i) for i in numpy_rng(self.seed, "audit", "focus").choice(idx, size=min(self.plan.focus, len(idx)), replace=False))
        self.status["focus"] = {"test": ids}
        return [f"test:{i}" for i in ids]

    def run_all(self) -> None:
        reasons = self.applicability()
        spec = (self.run.config.get("data") or {}).get("spec", "DATA")
        self.stage("qscore", ["--fractions", self.plan.qscore_fractions], reasons["qscore"])
        focus = self.focus()
        self.save()
        idx_args = [a for f in focus for a in ("--index", f)]
        self.stage("krepes", [*idx_args, "--test-points", str(self.plan.test_points), *self.plan.krepes_extra], reasons["krepes"])
        self.stage("relax", [*idx_args, "--masks", self.plan.relax_masks, *self.plan.relax_extra], reasons["relax"], command=f"sslaudit relax {self.path} --tabular-groups")
        inf_args = ["--check", str(self.plan.influence_check), "--draws", str(self.plan.influence_draws)]
        if self.plan.influence_subsample:
            inf_args += ["--subsample", str(self.plan.influence_subsample)]
        self.stage("influence", inf_args, reasons["influence"])
        self.stage("simvae", [], reasons["simvae"], command=f"sslaudit audit --data {spec} --objective simvae --out {self.path}-simvae")
