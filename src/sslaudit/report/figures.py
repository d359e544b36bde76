"""Matplotlib figures of the report (heatmaps, curves, bars), each returned as a PNG data URI."""

from __future__ import annotations

import numpy as np

from .images import figure_uri, plt

BLUE, RED, GREY = "#4c78a8", "#e45756", "#9aa3ad"


def heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], *, xlabel: str, ylabel: str, cbar: str, vmax: float | None = 1.0) -> str:
    """A matrix with its values written in the cells when it is small enough to read them."""
    p = plt()
    m = np.asarray(matrix, dtype=float)
    h, w = m.shape
    fig, ax = p.subplots(figsize=(min(1.0 + 0.42 * w, 9), min(0.9 + 0.36 * h, 8)))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=vmax if vmax is not None else np.nanmax(m), aspect="auto")
    ax.set_xticks(range(w), [str(c)[:14] for c in cols], rotation=45 if w > 6 else 0, ha="right" if w > 6 else "center", fontsize=8)
    ax.set_yticks(range(h), [str(r)[:18] for r in rows], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if h * w <= 144:
        top = np.nanmax(m) if np.isfinite(m).any() else 1.0
        for i in range(h):
            for j in range(w):
                if np.isfinite(m[i, j]) and m[i, j] >= 0.005:
                    ax.text(j, i, f"{m[i, j]:.2f}".lstrip("0") if m[i, j] < 1 else "1", ha="center", va="center", fontsize=7, color="white" if m[i, j] > 0.6 * top else "#1d2430")
    fig.colorbar(im, ax=ax, label=cbar, fraction=0.05)
    return figure_uri(fig)


def training_curves(history) -> str:
    """Loss per epoch and, where the run has labels, the per-epoch k-NN probe on a twin axis."""
    p = plt()
    fig, ax = p.subplots(figsize=(6, 2.8))
    ax.plot(history["epoch"], history["loss"], color=BLUE, marker="o" if len(history) <= 20 else None, ms=3, label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color=BLUE)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if "knn_accuracy" in history and history["knn_accuracy"].notna().any():
        ax2 = ax.twinx()
        probed = history[history["knn_accuracy"].notna()]
        ax2.plot(probed["epoch"], probed["knn_accuracy"], color=RED, marker="o", ms=3, label="k-NN accuracy")
        ax2.set_ylabel("k-NN accuracy (probe)", color=RED)
        ax2.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    return figure_uri(fig)


def alignment_figure(ag) -> str:
    """Feature Alignment Gap per feature with its bootstrap CI, the largest at the top."""
    p = plt()
    ag = ag.sort_values("gap_normalised")
    fig, ax = p.subplots(figsize=(6, 0.32 * len(ag) + 1))
    y = np.arange(len(ag))
    ax.barh(y, ag["gap_normalised"], color=BLUE, label="normalised gap (0 = chance, 1 = always shared)")
    if {"ci_low_normalised", "ci_high_normalised"} <= set(ag.columns):
        g, lo, hi = ag["gap_normalised"], ag["ci_low_normalised"], ag["ci_high_normalised"]
        ax.errorbar(g, y, xerr=[np.maximum(g - lo, 0), np.maximum(hi - g, 0)], fmt="none", ecolor="black", capsize=2, label="bootstrap 95% interval")
    ax.set_yticks(y, [str(f) for f in ag["feature"]])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("Feature Alignment Gap (normalised)")
    ax.legend(loc="lower right", fontsize=8)
    return figure_uri(fig)


def bars(labels: list[str], values: list[float], *, xlabel: str, highlight: int = 0) -> str:
    """Horizontal bars, the first `highlight` in red (e.g. the worst classes)."""
    p = plt()
    fig, ax = p.subplots(figsize=(5.5, 0.28 * len(labels) + 0.9))
    y = np.arange(len(labels))
    ax.barh(y, values, color=[RED if i < highlight else BLUE for i in range(len(labels))])
    ax.set_yticks(y, [str(s)[:24] for s in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return figure_uri(fig)
