"""Q-Score: label-free quality of each sample's representation from its discriminative features.

    from sslaudit.methods.qscore import QScore
    qs = QScore(epsilon="auto").fit(run.embeddings("train"))
    scores = qs.score(run.embeddings("test"))     # .qscore, .qscore_v1, .n_discriminative

See docs/qscore.md for the definitions, the decisions taken where the paper is open, and results.
"""

from .analysis import AnalysisConfig, QScoreAnalysis, analyze
from .compression import CompressionResult, compression_curve, feature_ranking
from .evaluation import baseline_scores, evaluate_scores, per_class, probe_correct, score_metrics
from .features import FeatureFit, activation_rates, check_representation, fit_features, highly_activating, percentile_band, zscores
from .regularizer import QScoreRegularizer, batch_qscore
from .saliency import FeatureSaliency, feature_gradients, feature_saliency
from .score import QScore, QScoreConfig, QScores, qscore_v1, qscore_v6

__all__ = [
    "AnalysisConfig",
    "CompressionResult",
    "FeatureFit",
    "FeatureSaliency",
    "QScore",
    "QScoreAnalysis",
    "QScoreConfig",
    "QScoreRegularizer",
    "QScores",
    "activation_rates",
    "analyze",
    "baseline_scores",
    "batch_qscore",
    "check_representation",
    "compression_curve",
    "evaluate_scores",
    "feature_gradients",
    "feature_ranking",
    "feature_saliency",
    "fit_features",
    "highly_activating",
    "per_class",
    "percentile_band",
    "probe_correct",
    "qscore_v1",
    "qscore_v6",
    "score_metrics",
    "zscores",
]
