"""`sslaudit simvae RUN`: content-vs-style table of any run; explanation views of generative runs."""
from __future__ import annotations

import click

from ..errors import UserError
from .options import common, trust_option

STAGE = "simvae/content_style"


def parse_tasks(text: str | None) -> list[str] | None:
    from ..methods.simvae.nuisance import NUISANCES

    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tasks if t not in NUISANCES]
    if bad:
        raise UserError(f"--tasks {text!r}: unknown task(s) {bad}; choose from {', '.join(NUISANCES)} (comma-separated) or none")
    return tasks


@click.command("simvae")
@click.argument("run", type=click.Path())
@click.option("--tasks", default=None, help="Style tasks, comma-separated, from rotation,scale,brightness,hflip,vflip, or 'none' [default: all for images, none for tables].")
@click.option("--n-train", type=click.IntRange(20), default=5000, show_default=True, help="Probe-training samples (seeded subsample of the train split; a share is held out for model selection).")
@click.option("--n-test", type=click.IntRange(20), default=2000, show_default=True, help="Evaluation samples (seeded subsample of the test split).")
@click.option("--val-fraction", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True, help="Share of the probe-training samples used to choose each probe's regularisation and k.")
@click.option("--mlp-hidden", type=click.IntRange(1), default=128, show_default=True, help="Hidden units of the 1-hidden-layer MLP probe.")
@click.option("--no-gmm", is_flag=True, help="Skip the Gaussian-mixture clustering (ARI/NMI) of the content representation.")
@click.option("--no-views", is_flag=True, help="Skip the explanation figures of a generative run.")
@trust_option
@common
def command(run, tasks, n_train, n_test, val_fraction, mlp_hidden, no_gmm, no_views, seed, device, trust_code):
    """What a representation keeps about content (the class) and style (known nuisances).

    For ANY run (SimVAE, VAE, SimCLR, VICReg, imported): rotation, scale, brightness and flips
    with known values are applied to clean inputs, and linear, 1-hidden-layer MLP and k-NN
    probes of the frozen representation predict them (and the class), with regularisation chosen
    on a validation split; the class also gets GMM clustering (ARI, NMI). Writes
    RUN/simvae/content_style.parquet and .json. For simvae/vae/betavae runs it also (re)writes the
    explanation views: reconstructions, latent traversals along content and style directions,
    decoded view means (RUN/simvae/figures/*.png, latent_directions.json).
    """
    from dataclasses import asdict

    from ..methods.simvae import ContentStyle, ContentStyleConfig, write_explanations
    from ..progress import info
    from ..run import load

    r = load(run, device=device, trust_code=trust_code)
    ds = r.dataset
    cfg = ContentStyleConfig(tasks=parse_tasks(tasks), n_train=n_train, n_test=n_test, val_fraction=val_fraction, mlp_hidden=mlp_hidden, gmm=not no_gmm, seed=seed)
    cfg = cfg.resolved(ds.kind)
    key = {"config": asdict(cfg), "weights": r.weights_key}
    if r.store.stage_done(STAGE, key):
        info("content/style results with this configuration are already in the run; nothing to do")
    else:
        res = ContentStyle(r.encoder, cfg, device=device).evaluate(ds)
        with r.store.lock():
            r.store.write_parquet("simvae/content_style.parquet", res.table, stage=STAGE)
            r.store.write_json("simvae/content_style.json", {"objective": r.objective, "config": res.config, "rows": res.table.to_dict(orient="records")}, stage=STAGE)
            r.store.mark_done(STAGE, key, ["simvae/content_style.parquet", "simvae/content_style.json"])
    table = r.store.read_parquet("simvae/content_style.parquet")
    for row in table.itertuples():
        click.echo(f"{row.task:>10} ({row.kind}): linear {row.linear:.3f} · MLP {row.mlp:.3f} · k-NN {row.knn:.3f} (chance {row.chance:.3f})")
    if not no_views and r.objective in ("simvae", "vae", "betavae") and "external" not in r.config:
        written = write_explanations(r, tasks=cfg.tasks, seed=seed)
        click.echo(f"explanation views: {', '.join(str(r.path / w) for w in written)}")
    elif not no_views:
        info(f"{r.objective} runs have no decoder: explanation views are written only for simvae, vae and betavae runs")
    click.echo(f"results: {r.path / 'simvae'}")
