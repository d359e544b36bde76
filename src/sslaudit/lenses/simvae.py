"""The SimVAE lens: what a representation keeps about content and style; explanation views of
generative runs (methods/simvae)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Lens, LensResult
from .config import nested, opt


@dataclass
class SimVAEConfig:
    """Settings of the SimVAE lens (saved in RUN/simvae/config.json)."""

    content_style: object = nested("sslaudit.methods.simvae:ContentStyleConfig")
    views: bool = opt(True, "Skip the explanation figures of a generative run.", flag="--no-views")


class SimVAELens(Lens):
    """What a representation keeps about content (the class) and style (known nuisances).

    For ANY run (SimVAE, VAE, SimCLR, VICReg, imported): rotation, scale, brightness and flips
    with known values are applied to clean inputs, and linear, 1-hidden-layer MLP and k-NN
    probes of the frozen representation predict them (and the class), with regularisation chosen
    on a validation split; the class also gets GMM clustering (ARI, NMI). Writes
    RUN/simvae/content_style.parquet and .json. For simvae/vae/betavae runs it also (re)writes the
    explanation views: reconstructions, latent traversals along content and style directions,
    decoded view means (RUN/simvae/figures/*.png, latent_directions.json).
    """

    name = "simvae"
    title = "Generative view (SimVAE)"
    Config = SimVAEConfig

    def compute(self, run, cfg, ctx) -> LensResult:
        from ..methods.simvae import ContentStyle, write_explanations
        from ..progress import info

        import numpy as np

        cs = cfg.content_style.resolved(run.dataset.kind)
        ds = run.dataset
        n = min(len(ds.train), cs.n_train) + min(len(ds.test), cs.n_test)
        per_sample = int(np.prod(ds.input_shape)) * 4 * 3 + run.embedding_dim * 8 * 4  # a task's transformed inputs; embeddings and probe features
        ctx.require_memory(n * per_sample * (1 + len(cs.tasks)), f"content/style probes on {n:,} samples × {1 + len(cs.tasks)} tasks", "lower --n-train / --n-test or raise --max-memory")
        res = ContentStyle(run.encoder, cs, device=ctx.device).evaluate(ds)
        out = LensResult(tables={"content_style": res.table}, documents={"content_style": {"objective": run.objective, "config": res.config, "rows": res.table.to_dict(orient="records")}})
        if cfg.views and run.objective in ("simvae", "vae", "betavae") and "external" not in run.config:
            write_explanations(run, tasks=cs.tasks, seed=cs.seed)  # a sub-stage of its own (RUN/simvae/figures/)
        elif cfg.views:
            info(f"{run.objective} runs have no decoder: explanation views are written only for simvae, vae and betavae runs")
        return out

    def describe(self, result, run):
        lines = [f"{row.task:>10} ({row.kind}): linear {row.linear:.3f} · MLP {row.mlp:.3f} · k-NN {row.knn:.3f} (chance {row.chance:.3f})" for row in result.tables["content_style"].itertuples()]
        views = sorted(a for a in run.store.manifest["artefacts"] if a.startswith("simvae/figures/"))
        if views:
            lines.append(f"explanation views: {', '.join(str(run.path / v) for v in views)}")
        return lines + [f"results: {run.path / 'simvae'}"]

    def audit_config(self, run, *, focus, quick):
        if run.objective not in ("simvae", "vae", "betavae"):
            return None, "the model is discriminative; train with --objective simvae for the generative view"
        return SimVAEConfig(), ""

    def skip_command(self, run):
        spec = (run.config.get("data") or {}).get("spec", "DATA")
        return f"sslaudit audit --data {spec} --objective simvae --out {run.path}-simvae"

    def section(self, collector):
        return collector.simvae()
