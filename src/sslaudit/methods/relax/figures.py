"""PNG figures of RELAX maps: input, importance, uncertainty and U-RELAX side by side."""

from __future__ import annotations

import io

import numpy as np


def _image(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C×H×W in [0, 1] → something imshow draws (gray for one channel)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[0] == 1:
        return np.clip(x[0], 0, 1), "gray"
    if x.ndim == 3 and x.shape[0] == 3:
        return np.clip(np.moveaxis(x, 0, -1), 0, 1), None
    if x.ndim == 3:
        return x.mean(axis=0), "gray"
    return x, "gray"


def overlay_png(x, importance, uncertainty, u_relax, *, title: str = "", labels: list[str] | None = None, dpi: int = 100) -> bytes:
    """Four panels as PNG bytes. Images: maps over the input; signals/tables: bar or line plots."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    matplotlib.rcParams["text.parse_math"] = False  # labels are data (column names): never mathtext, where "$\\foo$" crashes
    from matplotlib.figure import Figure

    maps = [("importance R", importance, "inferno"), ("uncertainty U", uncertainty, "viridis"), ("U-RELAX", u_relax, "inferno")]
    spatial = np.asarray(importance).ndim == 2
    fig = Figure(figsize=(12, 3.2) if spatial else (12, 3.8), dpi=dpi)
    axes = fig.subplots(1, 4)
    if spatial:
        img, cmap = _image(x)
        axes[0].imshow(img, cmap=cmap)
        axes[0].set_title("input")
        for ax, (name, m, cm) in zip(axes[1:], maps):
            ax.imshow(img, cmap=cmap)
            im = ax.imshow(np.asarray(m, dtype=np.float64), cmap=cm, alpha=0.6)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(name)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    else:
        v = np.asarray(x, dtype=np.float64).reshape(-1)
        axes[0].plot(v)
        axes[0].set_title("input")
        for ax, (name, m, _) in zip(axes[1:], maps):
            m = np.asarray(m, dtype=np.float64).reshape(-1)
            ax.bar(np.arange(len(m)), m)
            ax.set_title(name)
            if labels is not None and len(labels) == len(m):
                ax.set_xticks(np.arange(len(m)))
                ax.set_xticklabels(labels, rotation=90, fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
