"""RELAX: which parts of an input a representation depends on, and how sure that map is.

Wickstrøm et al., "RELAX: Representation Learning Explainability" (IJCV 2023). Batched over
inputs and masks, seeded, with a stable float64 estimator and an adaptive number of masks.
"""

from .embedding_similarity import EmbeddingSimilarity, explain, gradient_saliency
from .estimator import RelaxMoments, WeightedMoments, estimate
from .masks import MaskFamily, SpatialMasks, relax_masks
from .relax import Relax, RelaxResult, gaussian_blur, u_relax
from .tabular import GroupMasks, group_masks, schema_masks

__all__ = [
    "EmbeddingSimilarity",
    "GroupMasks",
    "MaskFamily",
    "Relax",
    "RelaxMoments",
    "RelaxResult",
    "SpatialMasks",
    "WeightedMoments",
    "estimate",
    "explain",
    "gaussian_blur",
    "gradient_saliency",
    "group_masks",
    "relax_masks",
    "schema_masks",
    "u_relax",
]
