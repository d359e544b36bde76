"""`sslaudit influence`: label-free influence of the training examples on a run's encoder."""
from __future__ import annotations

import click

from .options import common, trust_option, sample_refs


def _queries(values) -> list[str]:
    out = []
    for v in values:
        out += [p for p in str(v).replace(",", " ").split() if p]
    return out


@click.command("influence")
@click.argument("run", type=click.Path())
@click.option("--strategy", type=click.Choice(["ekfac", "kfac", "identity"]), default="ekfac", show_default=True,
              help="Curvature: EK-FAC or K-FAC (kronfluence), or identity (plain gradient dot products).")
@click.option("--pairs", type=click.IntRange(1), default=100, show_default=True, help="Duplicate pairs kept in duplicates.parquet (K).")
@click.option("--neighbours", type=click.IntRange(0), default=5, show_default=True, help="Per training example, its most mutually influential other examples kept in neighbours.parquet (per-query duplicate search; 0: skip).")
@click.option("--queries", multiple=True, help="split:index of a query example (repeatable, or comma-separated), e.g. test:17; writes pairwise.parquet.")
@click.option("--damping", type=click.FloatRange(min=0), default=None, help="λ added to the curvature [default: 0.1 × each layer's mean eigenvalue].")
@click.option("--subsample", type=click.IntRange(2), default=None, help="Score a seeded subsample of N training examples instead of all.")
@click.option("--draws", type=click.IntRange(1), default=4, show_default=True, help="Augmentation pairs shared by every example in the loss ℓ_aug.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Examples per block of per-sample gradients.")
@click.option("--check", type=click.IntRange(0), default=200, show_default=True, help="Sample size for checking the duplicate search against exact pairwise scores (0: skip).")
@click.option("--remove", "remove", default=None, help="Run the removal experiment instead: drop the top (bottom, random) share, e.g. 5%, retrain, probe.")
@trust_option
@common
def command(run, strategy, pairs, neighbours, queries, damping, subsample, draws, batch_size, check, remove, seed, device, trust_code):
    """Which training examples does the encoder depend on — duplicates, outliers, groups?

    Scores every training example (or --subsample N) by self-influence under the label-free
    augmentation-stability loss with EK-FAC curvature, and writes RUN/influence/:
    self_influence.parquet (split, index, score, rank), duplicates.parquet (i, j, score; the
    globally top pairs), neighbours.parquet (index, rank, neighbour, score: each example's most
    mutually influential others — the per-query view that finds near copies),
    pairwise.parquet for --queries, fairness.json (tables with protected attributes), the
    embedding baselines knn_outliers.parquet and embedding_duplicates.parquet, and summary.json.
    With --remove 5% it runs the removal experiment into RUN/influence/removal.json.
    """
    import sslaudit
    from ..methods.influence.analyzer import InfluenceConfig
    from ..methods.influence.runner import run_influence

    r = sslaudit.load(run, device=device, trust_code=trust_code)
    cfg = InfluenceConfig(strategy=strategy, damping=damping, draws=draws, batch_size=batch_size, seed=seed)
    refs = sample_refs(_queries(queries))
    if remove is not None:
        from ..methods.influence.removal import parse_fraction, removal_experiment

        fraction = parse_fraction(remove)
        if r.dataset.has_labels is False:
            from ..errors import UserError

            raise UserError("the removal experiment needs labels for its linear probe; this dataset has none")
        res = run_influence(r, cfg, pairs=pairs, queries=[], subsample=subsample, check=0, device=device)
        s = res.self_influence
        out = removal_experiment(r, s["index"].to_numpy(), s["score"].to_numpy(), fraction, device=device)
        out["influence"] = res.summary
        with r.store.lock():
            p = r.store.write_json("influence/removal.json", out, stage="influence/removal")
        acc = out["summary"]["accuracy"]
        click.echo(f"removal ({fraction:.1%}): " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
        click.echo(f"written: {p}")
        return
    res = run_influence(r, cfg, pairs=pairs, queries=refs, subsample=subsample, check=check, device=device, neighbours=neighbours)
    with r.store.lock():
        st = r.store
        st.write_parquet("influence/self_influence.parquet", res.self_influence, stage="influence")
        st.write_parquet("influence/duplicates.parquet", res.duplicates, stage="influence")
        if res.neighbours is not None:
            st.write_parquet("influence/neighbours.parquet", res.neighbours, stage="influence")
        if res.pairwise is not None:
            st.write_parquet("influence/pairwise.parquet", res.pairwise, stage="influence")
        st.write_json("influence/fairness.json", res.fairness, stage="influence")
        st.write_parquet("influence/knn_outliers.parquet", res.knn_outliers, stage="influence")
        st.write_parquet("influence/embedding_duplicates.parquet", res.embedding_duplicates, stage="influence")
        st.write_json("influence/summary.json", res.summary, stage="influence")
    if res.summary.get("fallback"):
        click.echo(f"note: {res.summary['fallback']}")
    top = res.self_influence.sort_values("rank").head(3)
    click.echo(f"influence ({res.summary['strategy_used']}, {res.summary['n_scored']} examples): most self-influential train "
               + ", ".join(str(int(i)) for i in top["index"]) + f"; {len(res.duplicates)} duplicate pairs")
    click.echo(f"written: {r.store.path('influence')}/")
