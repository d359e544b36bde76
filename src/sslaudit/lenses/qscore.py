"""The Q-Score lens: label-free quality of each sample's representation (methods/qscore)."""

from __future__ import annotations

from .base import Lens, LensResult
from .runner import Memo, lens_key


class QScoreLens(Lens):
    name = "qscore"
    title = "Representation quality (Q-Score)"

    @property
    def Config(self):  # the method's own config is the lens config (declared once, in methods/qscore)
        from ..methods.qscore import AnalysisConfig

        return AnalysisConfig

    # applies to every run: a signed representation is refused by Q-Score itself (or scored with --allow-negative)

    def compute(self, run, cfg, ctx) -> LensResult:
        from ..methods.qscore import analyze

        n = len(run.dataset.train) + len(run.dataset.test)
        ctx.require_memory(n * run.embedding_dim * 8 * 3, f"Q-Score on {n:,} embeddings", "score a smaller dataset or raise --max-memory")
        res = analyze(run, cfg, memo=Memo(run.store, self.name, lens_key(self, run, cfg)))
        out = LensResult(
            tables={"scores": res.scores, "features": res.features},
            documents={"evaluation": res.evaluation},
            arrays={"saliency": res.saliency},
            figures={k.removesuffix(".png"): v for k, v in res.figures.items()},
        )
        if res.compression is not None:
            out.documents["compression"] = res.compression
        return out

    def describe(self, result, run):
        ev = result.documents["evaluation"]
        parts = [f"{ev.get('form', 'zscore')} form", f"ε = {ev['epsilon']:g}", f"{ev['n_discriminative']}/{ev['n_features']} features discriminative", f"empty share {ev['empty_share']:.3f}"]
        if ev.get("auprc") is not None:
            parts.append(f"AUPRC {ev['auprc']:.4f} (prevalence {ev['prevalence']:.4f}), AUROC {ev['auroc']:.4f}")
        comp = result.documents.get("compression")
        if comp:
            parts.append(f"{comp['droppable_fraction']:.0%} of features droppable within {comp['tolerance'] * 100:g} point")
        return ["Q-Score: " + " · ".join(parts), f"results written to {run.path / self.name}"]

    def audit_config(self, run, *, focus, quick):
        if not run.store.read_json("metrics.json").get("nonnegative", True):
            return None, "Q-Score needs non-negative features and this representation has negative values (e.g. a VAE posterior mean)"
        cfg = self.Config(fractions=(0.5, 1.0) if quick else (0.1, 0.25, 0.5, 0.75, 1.0))
        return cfg, "quick audit: small samples and fixed settings (--quick)" if quick else ""

    def section(self, collector):
        return collector.qscore()
