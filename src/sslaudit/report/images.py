"""Small PNG pictures for the report, as data URIs so the HTML stays one self-contained file."""

from __future__ import annotations

import base64
import io

import numpy as np


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def thumbnail(img: np.ndarray, size: int = 56) -> str:
    """A C×H×W image in [0, 1] as a nearest-neighbour upscaled PNG data URI."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))
    a = (np.clip(np.nan_to_num(a), 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(a)
    scale = max(1, size // max(a.shape[0], a.shape[1]))
    im = im.resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return data_uri(buf.getvalue())


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buf.getvalue())


def plt():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # labels are data (column names): never mathtext, where "$\\foo$" crashes
    import matplotlib.pyplot as pyplot

    return pyplot
