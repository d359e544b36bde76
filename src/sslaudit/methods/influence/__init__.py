"""Influence-SSL: label-free influence functions for self-supervised encoders.

See `InfluenceAnalyzer` (library API), `run_influence` (a run directory, cached stages) and
docs/influence.md.
"""

from .analyzer import InfluenceAnalyzer, InfluenceConfig
from .curvature import STRATEGIES, Preconditioner
from .fairness import fairness_report, group_comparison
from .loss import AugmentationStability

__all__ = ["InfluenceAnalyzer", "InfluenceConfig", "Preconditioner", "STRATEGIES", "AugmentationStability", "fairness_report", "group_comparison"]
