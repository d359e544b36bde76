"""PNG figures of the Q-Score lens, rendered to bytes (matplotlib Agg; no files, no display)."""

from __future__ import annotations

import io

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["text.parse_math"] = False  # labels are data (column names): never mathtext, where "$\\foo$" crashes
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def features_figure(rates: np.ndarray, discriminative: np.ndarray, band: tuple[float, float], epsilon: float) -> bytes:
    """Activation rate of every feature (sorted), discriminative ones highlighted, band shaded."""
    plt = _plt()
    order = np.argsort(rates, kind="stable")
    r, disc = np.asarray(rates)[order], np.asarray(discriminative, dtype=bool)[order]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(np.arange(len(r)), r, color=np.where(disc, "tab:orange", "tab:gray"), width=1.0)
    ax.axhspan(band[0], band[1], color="tab:orange", alpha=0.12, label=f"discriminative band [{band[0]:.3f}, {band[1]:.3f}]")
    ax.set_xlabel("feature (sorted by activation rate)")
    ax.set_ylabel("activation rate A_j")
    ax.set_title(f"{int(disc.sum())} of {len(r)} features discriminative (ε = {epsilon:g})")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def histogram_figure(qscore: np.ndarray, correct: np.ndarray | None = None) -> bytes:
    """Q-Score histogram; split into probe-correct and misclassified samples when known."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    bins = np.histogram_bin_edges(qscore, bins=40)
    if correct is None:
        ax.hist(qscore, bins=bins, color="tab:blue")
    else:
        c = np.asarray(correct, dtype=bool)
        ax.hist(qscore[c], bins=bins, alpha=0.6, density=True, label=f"correct ({int(c.sum())})", color="tab:green")
        ax.hist(qscore[~c], bins=bins, alpha=0.6, density=True, label=f"misclassified ({int((~c).sum())})", color="tab:red")
        ax.legend(fontsize=8)
    ax.set_xlabel("Q-Score")
    ax.set_ylabel("density" if correct is not None else "samples")
    return _png(fig)


def image_saliency_figure(images: np.ndarray, sal, labels: list[str] | None = None) -> bytes:
    """Grid: one row per feature; for each top sample, the image and then its saliency map."""
    plt = _plt()
    f, k = sal.positions.shape
    fig, axes = plt.subplots(max(f, 1), max(2 * k, 1), figsize=(1.1 * 2 * k + 0.6, 1.2 * f + 0.6), squeeze=False)
    for r in range(f):
        for c in range(k):
            img = np.asarray(images[sal.positions[r, c]])
            show = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
            a_img, a_sal = axes[r, 2 * c], axes[r, 2 * c + 1]
            a_img.imshow(show, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
            a_sal.imshow(sal.saliency[r, c], cmap="inferno")
            for ax in (a_img, a_sal):
                ax.set_xticks([]), ax.set_yticks([])
            if labels is not None:
                a_img.set_title(labels[r * k + c], fontsize=6)
            if c == 0:
                a_img.set_ylabel(f"f{int(sal.features[r])}", fontsize=8)
    fig.suptitle("discriminative features: top-activating test samples and |∂h_j/∂x|", fontsize=9)
    fig.tight_layout()
    return _png(fig)


TOP_ATTRIBUTES = 30  # attributes shown per feature: the figure's size must not grow with the table's width


def table_saliency_figure(sal, group_names: list[str]) -> bytes:
    """Per feature, a bar of mean input-gradient magnitude over its most salient table attributes
    (at most TOP_ATTRIBUTES: a 10,000-column table once made a figure 360,000 pixels tall)."""
    plt = _plt()
    f = len(sal.features)
    cols = min(4, max(f, 1))
    rows = int(np.ceil(max(f, 1) / cols))
    top = min(TOP_ATTRIBUTES, len(group_names))
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 0.18 * top * rows + 1.2 * rows), squeeze=False)
    y = np.arange(top)
    for i, ax in enumerate(axes.ravel()):
        if i >= f:
            ax.axis("off")
            continue
        m = np.asarray(sal.saliency[i]).mean(axis=0)
        order = np.argsort(-m, kind="stable")[:top]
        ax.barh(y, m[order], color="tab:orange")
        ax.set_yticks(y)
        ax.set_yticklabels([group_names[j] for j in order], fontsize=6)
        ax.invert_yaxis()
        ax.set_title(f"feature {int(sal.features[i])}", fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
    shown = "" if top == len(group_names) else f"; the {top} largest of {len(group_names)} attributes"
    fig.suptitle(f"largest |∂h_j/∂x| over each attribute's columns (mean over top-activating samples{shown})", fontsize=9)
    return _png(fig)


def compression_figure(curve: list[dict]) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    fr = [r["fraction_kept"] for r in curve]
    ax.plot(fr, [r["accuracy"] for r in curve], "o-", label="ranked (D first)")
    if "random_accuracy" in curve[0]:
        ax.plot(fr, [r["random_accuracy"] for r in curve], "s--", label="random features")
    ax.set_xlabel("fraction of features kept")
    ax.set_ylabel("linear-probe accuracy")
    ax.legend(fontsize=8)
    return _png(fig)
