"""Explanation views of a generative run (SimVAE, VAE, β-VAE), as PNG figures a person can read.

- reconstructions.png: test inputs above the decoded posterior means dec(μ(x)).
- traversals.png: for a few test inputs, dec(μ(x) + t·d) for t = −3..3 along the latent direction
  d that carries the class (content) and each nuisance (style), see `directions.py`.
- latent_importance.png: which latent dimensions carry content and which carry style.
- view_means.png: J augmented views of an input, dec(μ_j) of each view, and dec(z̄) of the
  view-mean z̄ = mean_j μ_j — what the model treats as shared by the views.
Written under RUN/simvae/ via the run's store, with latent_directions.json.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ...errors import UserError
from ...seeding import torch_generator
from .content_style import subsample
from .directions import latent_directions
from .nuisance import DEFAULT_TASKS

STEPS = np.linspace(-3, 3, 7)


def _fig_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str] | None, title: str) -> bytes:
    """One mosaic image of C×H×W tiles in [0, 1] (grey or RGB), labelled rows and columns."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # labels are data (column names): never mathtext, where "$\\foo$" crashes
    import matplotlib.pyplot as plt

    nr, nc = len(rows), max(len(r) for r in rows)
    c, h, w = np.asarray(rows[0][0]).shape
    pad = max(1, h // 10)
    mosaic = np.ones((nr * (h + pad) + pad, nc * (w + pad) + pad, 3))
    for i, r in enumerate(rows):
        for j, img in enumerate(r):
            tile = np.clip(np.asarray(img, dtype=np.float64), 0, 1).transpose(1, 2, 0)
            y0, x0 = pad + i * (h + pad), pad + j * (w + pad)
            mosaic[y0 : y0 + h, x0 : x0 + w] = tile if c == 3 else tile[..., :1]
    scale = 0.9  # inches per tile, whatever the image size
    fig, ax = plt.subplots(figsize=(nc * scale * (w + pad) / w + 1.8, nr * scale * (h + pad) / h + 0.7))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(nr)], row_labels, fontsize=9)
    if col_labels:
        ax.xaxis.tick_top()
        ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(nc)], col_labels, fontsize=8)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.set_title(title, fontsize=10)
    return _fig_bytes(fig)


@torch.no_grad()
def reconstructions(method, x: np.ndarray, device: str = "cpu") -> bytes:
    xt = torch.as_tensor(x, device=device)
    rec = method.decode(method.encoder(xt)).cpu().numpy()
    return _grid([list(x), list(rec)], ["input", "dec(μ(x))"], None, f"{method.objective}: inputs and decoded posterior means")


@torch.no_grad()
def traversals(method, x: np.ndarray, dirs, device: str = "cpu") -> bytes:
    rows, labels = [], []
    mu = method.encoder(torch.as_tensor(x, device=device))
    for b in range(len(x)):
        for t, task in enumerate(dirs.tasks):
            d = torch.as_tensor(dirs.directions[t], dtype=mu.dtype, device=device)
            z = mu[b][None] + torch.as_tensor(STEPS, dtype=mu.dtype, device=device)[:, None] * d[None]
            rows.append(list(method.decode(z).cpu().numpy()))
            labels.append(f"#{b + 1} {task}" + (" (class)" if task == "content" else ""))
    cols = [f"{s:+.0f}σ" for s in STEPS]
    return _grid(rows, labels, cols, f"{method.objective}: latent traversals along the content and style directions")


def importance_figure(dirs, objective: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # labels are data (column names): never mathtext, where "$\\foo$" crashes
    import matplotlib.pyplot as plt

    imp = dirs.importance
    fig, ax = plt.subplots(figsize=(0.45 * imp.shape[1] + 3.0, 0.45 * imp.shape[0] + 1.2), layout="constrained")
    im = ax.imshow(imp, cmap="viridis", aspect="auto", vmin=0)
    ax.set_yticks(range(len(dirs.tasks)), [t + (" (class)" if t == "content" else "") for t in dirs.tasks])
    ax.set_xticks(range(imp.shape[1]))
    ax.set_xlabel("latent dimension")
    fig.colorbar(im, ax=ax, label="share of probe weight")
    ax.set_title(f"{objective}: which latent dimensions carry content vs style", fontsize=10)
    return _fig_bytes(fig)


@torch.no_grad()
def view_means(method, augment, x: np.ndarray, seed: int = 0, device: str = "cpu") -> bytes:
    J = max(int(method.n_views), 2)
    g = torch_generator(seed, "simvae-views")
    xt = torch.as_tensor(x)
    views = [augment.view(j)(xt, g).to(device) for j in range(J)]
    mus = [method.encoder(v) for v in views]
    zbar = torch.stack(mus).mean(0)
    rows, labels = [], []
    for b in range(len(x)):
        rows.append([x[b]] + [v[b].cpu().numpy() for v in views] + [method.decode(m[b : b + 1])[0].cpu().numpy() for m in mus] + [method.decode(zbar[b : b + 1])[0].cpu().numpy()])
        labels.append(f"#{b + 1}")
    cols = ["input"] + [f"view {j + 1}" for j in range(J)] + [f"dec(μ{j + 1})" for j in range(J)] + ["dec(z̄)"]
    return _grid(rows, labels, cols, f"{method.objective}: augmented views, their decodings and the decoded view mean z̄")


def write_explanations(run, *, tasks=None, n_examples: int = 10, n_directions: int = 2000, seed: int = 0) -> list[str]:
    """Write the explanation figures and latent_directions.json of a generative run into RUN/simvae/."""
    from ...models.simvae import GenerativeMethod

    if "external" in run.config or run.objective not in ("simvae", "vae", "betavae"):
        raise UserError(f"explanation views decode latents: they need a simvae, vae or betavae run, and {run.path} is {run.objective}; the content/style table still applies")
    method = run.method
    if not isinstance(method, GenerativeMethod):
        raise UserError(f"{run.path} holds no decoder; train with --objective simvae, vae or betavae")
    ds, dev = run.dataset, run.device
    tasks = (list(DEFAULT_TASKS) if ds.kind == "image" else []) if tasks is None else list(tasks)
    written: dict[str, bytes] = {}
    dirs = latent_directions(method.encoder, ds, tasks, n=n_directions, seed=seed, device=dev) if ds.has_labels else None
    if ds.kind == "image":
        rows = subsample(len(ds.test), n_examples, seed, "figures")
        x = ds.test.x[rows]
        written["simvae/figures/reconstructions.png"] = reconstructions(method, x, dev)
        written["simvae/figures/view_means.png"] = view_means(method, run.augment, x[:4], seed, dev)
        if dirs is not None:
            written["simvae/figures/traversals.png"] = traversals(method, x[:2], dirs, dev)
    if dirs is not None:
        written["simvae/figures/latent_importance.png"] = importance_figure(dirs, method.objective)
    with run.store.lock():
        for rel, data in written.items():
            run.store.write_bytes(rel, data, stage="simvae/views")
        if dirs is not None:
            run.store.write_json("simvae/latent_directions.json", dirs.to_json(), stage="simvae/views")
            written["simvae/latent_directions.json"] = b""
        run.store.mark_done("simvae/views", {"tasks": tasks, "seed": seed, "n_examples": n_examples}, list(written))
    return list(written)
