"""Q-Score of each sample, and the `QScore` estimator (fit on train, score any split).

- v6 (AAAI 2024, as transcribed in the spec): Q_i = mean_{j ∈ L_i ∩ D} (h_ij − μ_i), and 0 when
  L_i ∩ D is empty — the default (`form="paper"`). Low Q-Score: the sample activates no
  discriminative feature strongly — it is likely misclassified downstream. The score keeps the
  magnitude of the activations (it is in the units of h).
- z-scored form (ours, `form="zscore"`): Q_i = mean_{j ∈ L_i ∩ D} (h_ij − μ_i)/σ_i. Dividing by
  σ_i discards the magnitude; on a Fashion-MNIST ConvNet it scored below chance (docs/qscore.md).
- v1 (arXiv v1): Q_i = max_j z_ij / ‖ĥ_i‖₁ with ĥ_i = h_i / ‖h_i‖₂ (z-scores are scale-free, so
  z on ĥ equals z on h); high when one feature stands out in a sparse representation. 0 for an
  all-zero sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ...errors import UserError
from ...parsing import keyword_or, number, number_list
from .features import EPSILON_CANDIDATES, FeatureFit, check_representation, fit_features, highly_activating, zscores


FORMS = ("paper", "zscore")


def parse_percentiles(text) -> tuple[float, float]:
    """'50,95' → (50.0, 95.0), with 0 ≤ LOW < HIGH ≤ 100."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UserError(f"--percentiles {text!r}: give two numbers LOW,HIGH such as 50,95") from None
    if not 0 <= lo < hi <= 100:
        raise UserError(f"--percentiles {text!r}: need 0 ≤ LOW < HIGH ≤ 100 (e.g. 50,95)")
    return lo, hi


def qscore_v6(h: np.ndarray, discriminative: np.ndarray, epsilon: float, form: str = "paper") -> tuple[np.ndarray, np.ndarray]:
    """Q-Score and |L_i ∩ D| for every sample (0 when L_i ∩ D is empty).

    form="paper": mean of h_ij − μ_i over L_i ∩ D (the v6 formula); form="zscore": mean of the
    z-scores (h_ij − μ_i)/σ_i over the same set (our earlier default, kept as an option).
    """
    if form not in FORMS:
        raise UserError(f"unknown Q-Score form {form!r}: use one of {', '.join(FORMS)} (paper = the v6 formula)")
    z, _ = zscores(h)
    value = z if form == "zscore" else h - h.mean(axis=1, keepdims=True)
    sel = highly_activating(h, epsilon) & np.asarray(discriminative, dtype=bool)[None, :]
    count = sel.sum(axis=1)
    total = np.where(sel, value, 0.0).sum(axis=1)
    q = np.divide(total, count, out=np.zeros(len(h)), where=count > 0)
    return q, count


def qscore_v1(h: np.ndarray) -> np.ndarray:
    """max_j z_ij / ‖ĥ_i‖₁ on the ℓ2-normalised representation (0 for a zero sample)."""
    z, ok = zscores(h)
    norm2 = np.linalg.norm(h, axis=1, keepdims=True)
    hn = np.divide(h, norm2, out=np.zeros_like(h), where=norm2 > 0)
    l1 = np.abs(hn).sum(axis=1)
    q = np.zeros(len(h))
    good = ok & (l1 > 0)
    q[good] = z[good].max(axis=1) / l1[good]
    return q


@dataclass
class QScoreConfig:
    """How Q-Score picks its features; saved beside the results."""

    form: str = field(
        default="paper",
        metadata={
            "choices": FORMS,
            "help": "Q-Score formula: paper = the v6 formula, mean over the sample's discriminative active features of (h − μ); zscore = mean of (h − μ)/σ (our earlier form; both are written to scores.parquet).",
        },
    )
    epsilon: float | str = field(
        default="auto",
        metadata={
            "parse": keyword_or("auto", float, "--epsilon", "2", positive=True),
            "help": "z-score threshold of 'highly activating' features, or auto = the largest of --candidates leaving ≥ --min-nonempty of the training samples with a discriminative active feature.",
        },
    )
    percentiles: tuple[float, float] = field(
        default=(50.0, 95.0), metadata={"parse": parse_percentiles, "help": "Activation-rate percentiles LOW,HIGH (inclusive, linear interpolation) that delimit the discriminative features."}
    )
    min_nonempty: float = field(
        default=0.9,
        metadata={"parse": number(float, "--min-nonempty", "0.9", minimum=0.0, maximum=1.0), "help": "Share of training samples that must keep a discriminative active feature for --epsilon auto."},
    )
    candidates: tuple[float, ...] = field(
        default=EPSILON_CANDIDATES, metadata={"parse": number_list("--candidates", "4,3,2,1", lo=0, open_lo=True), "help": "Candidate ε values for --epsilon auto, tried from the largest."}
    )
    allow_negative: bool = field(default=False, metadata={"help": "Apply Q-Score to a representation with negative values (after a ReLU, or see --negative)."})
    negative: str = field(default="relu", metadata={"choices": ("relu", "shift"), "help": "With --allow-negative: relu (negative values set to 0) or shift (subtract the training minimum)."})

    def to_json(self) -> dict:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        d["candidates"] = list(self.candidates)
        return d


@dataclass
class QScores:
    """Per-sample results for one split (rows in the order of the input)."""

    qscore: np.ndarray  # in the configured form (default: the paper's v6 formula)
    qscore_v1: np.ndarray
    n_discriminative: np.ndarray  # |L_i ∩ D|
    qscore_paper: np.ndarray | None = None  # both v6 forms, whatever the configured one
    qscore_zscore: np.ndarray | None = None

    @property
    def empty_share(self) -> float:
        return float((self.n_discriminative == 0).mean()) if len(self.qscore) else 0.0


class QScore:
    """Label-free representation quality: `QScore(cfg).fit(train_h).score(test_h)`.

    `fit` chooses ε and the discriminative features D on the training representation; `score`
    gives Q-Scores for any representation of the same encoder with D and ε fixed.
    """

    def __init__(self, config: QScoreConfig | None = None, **kw):
        self.config = config if config is not None else QScoreConfig(**kw)
        if self.config.form not in FORMS:
            raise UserError(f"unknown Q-Score form {self.config.form!r}: use one of {', '.join(FORMS)} (paper = the v6 formula)")
        self.fit_: FeatureFit | None = None
        self.shift_: float | None = None

    def prepare(self, h: np.ndarray) -> np.ndarray:
        c = self.config
        return check_representation(h, allow_negative=c.allow_negative, negative=c.negative, shift=self.shift_)

    def fit(self, train_h: np.ndarray) -> "QScore":
        raw = np.asarray(train_h, dtype=np.float64)
        if self.config.allow_negative and self.config.negative == "shift" and raw.size:
            self.shift_ = min(float(raw.min()), 0.0)
        h = self.prepare(raw)
        c = self.config
        self.fit_ = fit_features(h, epsilon=c.epsilon, percentiles=c.percentiles, candidates=c.candidates, min_nonempty=c.min_nonempty)
        return self

    def _fitted(self) -> FeatureFit:
        if self.fit_ is None:
            raise UserError("QScore is not fitted: call .fit(train_representation) first")
        return self.fit_

    @property
    def epsilon(self) -> float:
        return self._fitted().epsilon

    @property
    def discriminative(self) -> np.ndarray:
        return self._fitted().discriminative

    @property
    def activation_rate(self) -> np.ndarray:
        return self._fitted().activation_rate

    def score(self, h: np.ndarray) -> QScores:
        fit = self._fitted()
        h = self.prepare(h)
        if h.shape[1] != len(fit.discriminative):
            raise UserError(f"the representation has {h.shape[1]} features but Q-Score was fitted on {len(fit.discriminative)}; use the same encoder")
        paper, n = qscore_v6(h, fit.discriminative, fit.epsilon, "paper")
        zs, _ = qscore_v6(h, fit.discriminative, fit.epsilon, "zscore")
        return QScores(zs if self.config.form == "zscore" else paper, qscore_v1(h), n, paper, zs)

    def summary(self) -> dict:
        fit = self._fitted()
        return {
            "form": self.config.form,
            "epsilon": fit.epsilon,
            "epsilon_met_target": fit.met_target,
            "epsilon_candidates": fit.candidates,
            "train_empty_share": fit.empty_share,
            "band": list(fit.band),
            "n_features": int(len(fit.discriminative)),
            "n_discriminative": int(fit.discriminative.sum()),
            "config": self.config.to_json(),
        }
