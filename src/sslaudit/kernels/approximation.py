"""How much a cheaper eNTK (parameter subset, per-layer projection) changes the kernel and its
landmark rankings, measured against the full per-sample-gradient kernel on a small seeded sample.

The sample's first half plays the landmarks, the second half the queries. Reported:

- kernel: relative Frobenius error ‖K̃ − K‖/‖K‖ and the Pearson correlation of the off-diagonal
  entries, on the whole sample × sample block;
- landmarks: for every query, the top-`top` landmarks by |k| under both kernels — their mean
  overlap (top-10 agreement), the share of queries whose top-1 landmark is the same, and (with
  labels) p@1 = the share of queries whose top-1 landmark has the query's label, for both kernels.

(KREPES ranks landmarks by the surrogate's influence scores, which are built on this kernel; the
benchmark compares those end to end — this diagnostic isolates the kernel's share.)

The full kernel is formed block pair by block pair, so only two blocks of its factors (bounded
to `max_block_bytes`) are held at once — at 88 MB a row for a ResNet-18 in float64.
"""

from __future__ import annotations

import numpy as np

from ..seeding import numpy_rng
from .entk import EntkKernel


def full_reference(approx: EntkKernel, module) -> EntkKernel:
    """The full per-sample-gradient kernel of `module` with the approximation's kind, normalisation and precision."""
    return EntkKernel(module, kind=approx.kind, normalize=approx.normalize, precision=approx.precision, seed=approx.seed, device=approx.device)


def blocked_gram(kernel: EntkKernel, x, max_block_bytes: int = 512 << 20) -> np.ndarray:
    """K(x, x) holding the factors of two blocks at a time (raw products, normalised at the end)."""
    n = len(x)
    kernel.factors(x[:1])
    rows = int(max(1, min(n, max_block_bytes // max(1, kernel.bytes_per_row or 1))))
    starts = list(range(0, n, rows))
    raw = np.zeros((n, n))
    for i, si in enumerate(starts):
        fa = kernel.factors(x[si : si + rows])
        for sj in starts[i:]:
            fb = fa if sj == si else kernel.factors(x[sj : sj + rows])
            blk = fa.raw_gram(fb).cpu().numpy()
            raw[si : si + fa.n, sj : sj + fb.n] = blk
            raw[sj : sj + fb.n, si : si + fa.n] = blk.T
        del fa
    if kernel.normalize:
        d = np.diag(raw).copy()
        inv = np.where(d > 0, 1.0 / np.sqrt(np.where(d > 0, d, 1.0)), 0.0)
        raw = raw * inv[:, None] * inv[None, :]
    return raw


def kernel_approximation_report(approx: EntkKernel, module, x, y=None, *, sample: int = 64, top: int = 10, seed: int = 0) -> dict:
    """The kernel and landmark-ranking agreement of `approx` with the full kernel on `sample` seeded rows of x."""
    n = len(x)
    size = int(min(sample, n))
    if size < 4:
        return {"sample": size, "note": "fewer than 4 samples: no kernel fidelity computed"}
    rows = np.sort(numpy_rng(seed, "kernel-fidelity", "rows").choice(n, size, replace=False))
    xs = np.asarray(x[rows])
    k_ref = blocked_gram(full_reference(approx, module), xs)
    k_apx = blocked_gram(approx, xs)
    off = ~np.eye(size, dtype=bool)
    a, b = k_apx[off], k_ref[off]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    half = size // 2
    lm, q = np.arange(half), np.arange(half, size)
    t = int(min(top, half))
    rank_ref = np.argsort(-np.abs(k_ref[np.ix_(q, lm)]), axis=1, kind="stable")[:, :t]
    rank_apx = np.argsort(-np.abs(k_apx[np.ix_(q, lm)]), axis=1, kind="stable")[:, :t]
    overlap = float(np.mean([len(set(r1) & set(r2)) / t for r1, r2 in zip(rank_ref, rank_apx)]))
    out = {
        "sample": size,
        "sample_rows": rows.tolist()[:16],
        "seed": int(seed),
        "reference": "full per-sample-gradient eNTK (every parameter, no projection)",
        "relative_frobenius_error": float(np.linalg.norm(k_apx - k_ref) / np.linalg.norm(k_ref)),
        "offdiagonal_correlation": corr,
        "n_landmarks": int(half),
        "n_queries": int(len(q)),
        "top": t,
        f"top{t}_landmark_agreement": overlap,
        "top1_landmark_agreement": float(np.mean(rank_ref[:, 0] == rank_apx[:, 0])),
    }
    if y is not None:
        ys = np.asarray(y)[rows]
        out["precision_at_1_full"] = float(np.mean(ys[lm][rank_ref[:, 0]] == ys[q]))
        out["precision_at_1_approx"] = float(np.mean(ys[lm][rank_apx[:, 0]] == ys[q]))
    return out


__all__ = ["blocked_gram", "full_reference", "kernel_approximation_report"]
