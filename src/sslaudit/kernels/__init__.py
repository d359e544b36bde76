"""Kernels of a frozen network for KREPES: the eNTK, landmark selection, Nyström, the exact reference.

- `EntkKernel` (entk.py): pNTK / trNTK, cosine-normalised or raw; a factorised fast path for
  Linear / Conv2d / BatchNorm networks and a general torch.func path for any module.
- `select_landmarks`, `auto_landmarks` (landmarks.py): uniform, kernel k-means++, BLESS leverage.
- `fit_nystrom`, `nystrom_coordinates`, `NystromBasis` (nystrom.py): K_mm ≈ U_r Λ_r U_rᵀ, Ã0.
- `stream_kernel_blocks`, `compute_factors`, `kernel_to_landmarks` (blocks.py): block-wise work
  through an engine.
- `exact_kernel`, `per_sample_gradients_loop` (exact.py): the independent small-n reference.
"""

from .blocks import compute_factors, factor_block, kernel_block, kernel_to_landmarks, stream_kernel_blocks
from .entk import KINDS, PATHS, EntkKernel
from .exact import exact_kernel, per_sample_gradients_loop
from .factors import DenseTerm, KernelFactors, OuterTerm
from .landmarks import METHODS, approximate_leverage, auto_landmarks, resolve_landmark_count, select_landmarks
from .nystrom import NystromBasis, fit_nystrom, nystrom_coordinates

__all__ = [
    "DenseTerm",
    "EntkKernel",
    "KINDS",
    "KernelFactors",
    "METHODS",
    "NystromBasis",
    "OuterTerm",
    "PATHS",
    "approximate_leverage",
    "auto_landmarks",
    "compute_factors",
    "exact_kernel",
    "factor_block",
    "fit_nystrom",
    "kernel_block",
    "kernel_to_landmarks",
    "nystrom_coordinates",
    "per_sample_gradients_loop",
    "resolve_landmark_count",
    "select_landmarks",
    "stream_kernel_blocks",
]
