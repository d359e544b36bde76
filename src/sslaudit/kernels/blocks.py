"""Block-wise eNTK work through an `Engine`: factors of many rows, and K(X, landmarks) streamed.

The job functions are top-level (picklable) and receive the kernel itself (its private module
copy pickles with it) and the inputs through `shared`, so a Ray engine ships them once per
worker; results come back in block order, so every engine gives the same arrays.
Memory is bounded by the block size: K_nn is never formed, K_nm arrives block by block.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..engine import block_ranges, get_engine
from .entk import EntkKernel
from .factors import KernelFactors

BLOCK_BYTES = 256 << 20  # default cap on the kernel factors of one block


def factor_block(rng: tuple[int, int], *, kernel: EntkKernel, x, rows=None) -> KernelFactors:
    """Factors of x[rows[s:e]] (or x[s:e]) on the CPU, so that they travel between processes."""
    s, e = rng
    sel = x[s:e] if rows is None else x[np.asarray(rows[s:e])]
    return kernel.factors(sel).to("cpu")


def kernel_block(rng: tuple[int, int], *, kernel: EntkKernel, x, landmark_factors: KernelFactors) -> np.ndarray:
    """K(x[s:e], landmarks) as a float64 array."""
    s, e = rng
    fa = kernel.factors(x[s:e])
    return kernel.between(fa, landmark_factors.to(kernel.device)).cpu().numpy()


def compute_factors(kernel: EntkKernel, x, rows=None, block_size: int | None = None, engine=None, desc: str = "eNTK factors") -> KernelFactors:
    """Factors of x (or of x[rows]) computed block by block, stacked in row order."""
    n = len(x) if rows is None else len(rows)
    engine = engine or get_engine("local")
    _probe_first(kernel, x[:2] if rows is None else x[np.asarray(rows[:2])])
    ranges = block_ranges(n, rows_per_block(kernel, block_size))
    parts = engine.map(factor_block, ranges, shared={"kernel": kernel, "x": x, "rows": rows}, desc=desc)
    return KernelFactors.assemble(parts, n).to(kernel.device)


def stream_kernel_blocks(kernel: EntkKernel, x, landmark_factors: KernelFactors, block_size: int | None = None, engine=None, desc: str = "K(X, landmarks)") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (start, stop, K(x[start:stop], landmarks)) in order, never holding K_nm whole."""
    engine = engine or get_engine("local")
    _probe_first(kernel, x[:2])
    ranges = block_ranges(len(x), rows_per_block(kernel, block_size))
    shared = {"kernel": kernel, "x": x, "landmark_factors": landmark_factors.to("cpu")}
    for (s, e), block in zip(ranges, engine.map(kernel_block, ranges, shared=shared, desc=desc)):
        yield s, e, block


def kernel_to_landmarks(kernel: EntkKernel, x, landmark_factors: KernelFactors, block_size: int | None = None, engine=None, desc: str = "K(X, landmarks)") -> np.ndarray:
    """The whole n × m block K(X, landmarks) (float64) — for when n·m fits in memory."""
    out = np.empty((len(x), landmark_factors.n), dtype=np.float64)
    for s, e, block in stream_kernel_blocks(kernel, x, landmark_factors, block_size, engine, desc):
        out[s:e] = block
    return out


def _probe_first(kernel: EntkKernel, x_small) -> None:
    """Run the factorised-path check (and measure the factor size) here, before the kernel is shipped."""
    if not kernel._checked or kernel.bytes_per_row is None:
        kernel.factors(x_small)


def rows_per_block(kernel: EntkKernel, block_size: int | None) -> int:
    """`block_size` if given; else the kernel's block size, capped so a block's factors stay under 256 MB."""
    if block_size is not None:
        return int(block_size)
    per_row = kernel.bytes_per_row or 1
    return int(max(1, min(kernel.block_size, BLOCK_BYTES // per_row)))


__all__ = ["compute_factors", "factor_block", "kernel_block", "kernel_to_landmarks", "rows_per_block", "stream_kernel_blocks"]
