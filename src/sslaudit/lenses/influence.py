"""The influence lens: label-free influence of the training examples on the encoder (methods/influence)."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.dataset import parse_sample_refs
from ..parsing import number
from .base import Lens, LensResult
from .config import nested, opt

BIG_SUBSAMPLE = 1_000  # training examples the audit scores when the encoder is above compute.plan.BIG_BACKBONE parameters (ResNet-18, last stage, EK-FAC on 2 cores: ≈ 0.35 s an example, 434 s for the 10,000-image audit: docs/scaling.md)


def _queries(values) -> tuple[str, ...]:
    out = []
    for v in values:
        out += [p for p in str(v).replace(",", " ").split() if p]
    return parse_sample_refs(out)


@dataclass
class InfluenceLensConfig:
    """Settings of the influence lens (saved in RUN/influence/config.json)."""

    influence: object = nested("sslaudit.methods.influence.analyzer:InfluenceConfig")
    pairs: int = opt(100, "Duplicate pairs kept in duplicates.parquet (K).", parse=number(int, "--pairs", "100", minimum=1))
    neighbours: int = opt(
        5, "Per training example, its most mutually influential other examples kept in neighbours.parquet (per-query duplicate search; 0: skip).", parse=number(int, "--neighbours", "5", minimum=0)
    )
    queries: tuple[str, ...] = opt((), "split:index of a query example (repeatable, or comma-separated), e.g. test:17; writes pairwise.parquet.", multiple=True, metavar="SPLIT:INDEX")
    subsample: int | None = opt(None, "Score a seeded subsample of N training examples instead of all.", parse=number(int, "--subsample", "1000", minimum=2))
    check: int = opt(200, "Sample size for checking the duplicate search against exact pairwise scores (0: skip).", parse=number(int, "--check", "200", minimum=0))

    def __post_init__(self):
        self.queries = _queries(self.queries)


class InfluenceLens(Lens):
    """Which training examples does the encoder depend on — duplicates, outliers, groups?

    Scores every training example (or --subsample N) by self-influence under the label-free
    augmentation-stability loss with EK-FAC curvature, and writes RUN/influence/:
    self_influence.parquet (split, index, score, rank), duplicates.parquet (the globally top
    pairs), neighbours.parquet (each example's most mutually influential others — the per-query
    view that finds near copies), pairwise.parquet for --queries, fairness.json (tables with
    protected attributes), the embedding baselines knn_outliers.parquet and
    embedding_duplicates.parquet, and summary.json. With --remove 5% it runs the removal
    experiment into RUN/influence/removal.json.
    """

    name = "influence"
    title = "Label-free influence"
    Config = InfluenceLensConfig
    uses_engine = True
    needs_parameter_gradients = True

    def compute(self, run, cfg, ctx) -> LensResult:
        from ..data.dataset import parse_sample_ref
        from ..methods.influence.runner import run_influence

        n = cfg.subsample or len(run.dataset.train)
        ctx.require_memory(n * run.embedding_dim * 4 * 4, f"influence baselines on {n:,} embeddings", "pass --subsample N or raise --max-memory")
        res = run_influence(
            run,
            cfg.influence,
            pairs=cfg.pairs,
            queries=[parse_sample_ref(q) for q in cfg.queries],
            subsample=cfg.subsample,
            check=cfg.check,
            device=ctx.device,
            engine=ctx.backend,
            neighbours=cfg.neighbours,
        )
        out = LensResult(tables={"self_influence": res.self_influence, "duplicates": res.duplicates}, documents={"fairness": res.fairness})
        if res.neighbours is not None:
            out.tables["neighbours"] = res.neighbours
        if res.pairwise is not None:
            out.tables["pairwise"] = res.pairwise
        out.tables.update(knn_outliers=res.knn_outliers, embedding_duplicates=res.embedding_duplicates)
        out.documents["summary"] = res.summary
        return out

    def describe(self, result, run):
        s = result.documents["summary"]
        lines = [f"note: {s['fallback']}"] if s.get("fallback") else []
        top = result.tables["self_influence"].sort_values("rank").head(3)
        lines.append(
            f"influence ({s['strategy_used']}, {s['n_scored']} examples): most self-influential train "
            + ", ".join(str(int(i)) for i in top["index"])
            + f"; {len(result.tables['duplicates'])} duplicate pairs"
        )
        return lines + [f"written: {run.store.path('influence')}/"]

    def audit_config(self, run, *, focus, quick):
        from ..methods.influence.analyzer import InfluenceConfig

        n_train = len(run.dataset.train)
        if quick:
            return InfluenceLensConfig(influence=InfluenceConfig(draws=1), subsample=min(n_train, 200), check=0), "quick audit: small samples and fixed settings (--quick)"
        from ..compute.plan import BIG_BACKBONE, parameter_count

        n_params = parameter_count(run.encoder)
        if n_params > BIG_BACKBONE:  # per-example gradients of every layer cost GBs and hours on a CPU (ResNet-18: 45 MB a view)
            sub = min(n_train, BIG_SUBSAMPLE)
            return (
                InfluenceLensConfig(influence=InfluenceConfig(draws=2, modules="last-stage"), subsample=sub if sub < n_train else None, check=0),
                f"The encoder has {n_params:,} parameters, so influence was computed for its last stage (`--modules last-stage`: the curvature is "
                f"block-diagonal per layer, so those layers' factors are exactly the full run's)"
                + (f" on a seeded subsample of {sub:,} of the {n_train:,} training samples" if sub < n_train else "")
                + "; `sslaudit influence RUN --modules all` asks for every layer.",
            )
        if n_train > 20_000:
            return (
                InfluenceLensConfig(influence=InfluenceConfig(draws=2), subsample=5_000, check=50),
                f"Influence was computed for a seeded subsample of 5,000 of the {n_train:,} training samples to fit the audit's CPU budget; run `sslaudit influence RUN` for all of them.",
            )
        return InfluenceLensConfig(influence=InfluenceConfig(draws=2), check=50), ""

    def section(self, collector):
        return collector.influence()
