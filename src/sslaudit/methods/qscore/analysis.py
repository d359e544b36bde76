"""The whole Q-Score lens on a run: scores, features, evaluation, compression, saliency, figures.

`analyze(run, AnalysisConfig(...))` returns tables, JSON-able summaries and PNG bytes; it writes
nothing (`run_lens` stores the result). `memo(name, compute)` lets the caller keep the costly
parts (the probes, the compression curve, the saliency gradients) so an interrupted run resumes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ...parsing import number, number_list
from ...progress import info
from . import figures
from .compression import DEFAULT_FRACTIONS, compression_curve
from .evaluation import baseline_scores, evaluate_scores, per_class, probe_correct
from .saliency import FeatureSaliency, feature_saliency, pick_features
from .score import QScore, QScoreConfig


@dataclass
class AnalysisConfig:
    """What `analyze` computes; saved in RUN/qscore/config.json."""

    qscore: QScoreConfig = field(default_factory=QScoreConfig)
    seed: int = field(default=0, metadata={"help": "Seed of the probe subsample and the random-feature baseline."})
    max_probe_train: int | None = field(
        default=20_000,
        metadata={
            "parse": number(int, "--max-probe-train", "20000", minimum=10, none="all"),
            "help": "Training samples (seeded subsample) for each linear probe of the evaluation and compression curve, or all.",
        },
    )
    fractions: tuple[float, ...] = field(
        default=DEFAULT_FRACTIONS,
        metadata={
            "parse": number_list("--fractions", "0.25,0.5,1", lo=0, hi=1, open_lo=True, sort=True),
            "help": "Fractions of features kept on the compression curve (comma-separated, in (0, 1]; |D| is always added).",
        },
    )
    tolerance: float = field(default=0.01, metadata={"parse": number(float, "--tolerance", "0.01", minimum=0.0, maximum=1.0), "help": "Accuracy drop (absolute) allowed when dropping features."})
    saliency_features: int = field(default=8, metadata={"parse": number(int, "--saliency-features", "8", minimum=1), "help": "Discriminative features shown in saliency.png."})
    saliency_samples: int = field(default=6, metadata={"parse": number(int, "--saliency-samples", "6", minimum=1), "help": "Top-activating test samples per feature in saliency.png."})

    def to_json(self) -> dict:
        d = asdict(self)
        d["qscore"] = self.qscore.to_json()
        d["fractions"] = list(self.fractions)
        return d


@dataclass
class QScoreAnalysis:
    scores: pd.DataFrame  # split, index, qscore, qscore_v1, n_discriminative, qscore_paper, qscore_zscore
    features: pd.DataFrame  # feature, activation_rate, discriminative
    evaluation: dict | None
    compression: dict | None
    saliency: dict  # arrays for RUN/qscore/saliency.npz
    figures: dict[str, bytes]  # file name → PNG


def analyze(run, cfg: AnalysisConfig | None = None, memo=None) -> QScoreAnalysis:
    cfg = cfg or AnalysisConfig()
    memo = memo or (lambda name, compute: compute())
    ds = run.dataset
    h_train, h_test = run.embeddings("train"), run.embeddings("test")
    qs = QScore(cfg.qscore).fit(h_train)
    summary = qs.summary()
    info(f"Q-Score: ε = {qs.epsilon:g}, {summary['n_discriminative']} of {summary['n_features']} features discriminative")
    rows, per_split = [], {}
    for name, h in (("train", h_train), ("test", h_test)):
        s = qs.score(h)
        per_split[name] = s
        rows.append(
            pd.DataFrame(
                {
                    "split": name,
                    "index": ds.split(name).index.astype(np.int64),
                    "qscore": s.qscore,
                    "qscore_v1": s.qscore_v1,
                    "n_discriminative": s.n_discriminative.astype(np.int64),
                    "qscore_paper": s.qscore_paper,
                    "qscore_zscore": s.qscore_zscore,
                }
            )
        )
    scores = pd.concat(rows, ignore_index=True)
    feats = pd.DataFrame({"feature": np.arange(len(qs.discriminative), dtype=np.int64), "activation_rate": qs.activation_rate, "discriminative": qs.discriminative})

    test = per_split["test"]
    base = {**summary, "epsilon": qs.epsilon, "empty_share": test.empty_share, "train_empty_share": per_split["train"].empty_share}
    evaluation = compression = None
    correct = None
    figs = {"features.png": figures.features_figure(qs.activation_rate, qs.discriminative, qs.fit_.band, qs.epsilon)}
    if ds.has_labels:
        hp_train, hp_test = qs.prepare(h_train), qs.prepare(h_test)
        info("Q-Score: linear probe for the correct/misclassified evaluation")
        probe = memo("probe", lambda: dict(zip(("correct", "accuracy"), probe_correct(hp_train, ds.train.y, hp_test, ds.test.y, seed=cfg.seed, max_train=cfg.max_probe_train))))
        correct, acc = np.asarray(probe["correct"]), float(probe["accuracy"])
        base_scores = baseline_scores(hp_test)
        ev = evaluate_scores({"qscore": test.qscore, "qscore_v1": test.qscore_v1, "qscore_paper": test.qscore_paper, "qscore_zscore": test.qscore_zscore}, base_scores, correct)
        views = {"qscore": test.qscore, **base_scores}
        within = {k: per_class(v, correct, ds.test.y) for k, v in views.items()}
        evaluation = {**base, **ev, "probe_accuracy": acc, "within_class_auroc": {k: w["within_class_auroc"] for k, w in within.items()}, "per_class": within["qscore"]["classes"]}
        info("Q-Score: compression curve (linear probes on feature subsets)")
        compression = memo(
            "compression",
            lambda: compression_curve(
                hp_train,
                ds.train.y,
                hp_test,
                ds.test.y,
                rates=qs.activation_rate,
                discriminative=qs.discriminative,
                band=qs.fit_.band,
                fractions=cfg.fractions,
                tolerance=cfg.tolerance,
                seed=cfg.seed,
                max_train=cfg.max_probe_train,
            ).to_json(),
        )
        figs["compression.png"] = figures.compression_figure(compression["curve"])
    else:
        evaluation = {**base, "note": "no labels: AUPRC/AUROC need a linear probe; only scores and features were computed"}
    figs["histogram.png"] = figures.histogram_figure(test.qscore, correct)

    chosen = pick_features(qs.activation_rate, qs.discriminative, cfg.saliency_features)
    groups = ds.schema.groups() if ds.kind == "tabular" and ds.schema is not None else None
    sal = FeatureSaliency(**memo("saliency", lambda: vars(feature_saliency(run.encoder, ds.test.x, qs.prepare(h_test), chosen, k=cfg.saliency_samples, groups=groups, device=run.device))))
    if groups is None:
        labels = [f"test:{int(ds.test.index[p])}" for p in sal.positions.ravel()]
        figs["saliency.png"] = figures.image_saliency_figure(ds.test.x, sal, labels)
    else:
        figs["saliency.png"] = figures.table_saliency_figure(sal, ds.schema.names)
    saliency = {"features": sal.features, "index": ds.test.index[sal.positions], "activation": sal.activations, "saliency": sal.saliency.astype(np.float32)}
    return QScoreAnalysis(scores, feats, evaluation, compression, saliency, figs)
