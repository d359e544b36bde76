"""Which latent directions of a generative run carry content (class) and which carry style.

For each task (content = class of clean inputs; style = a nuisance bin, see `nuisance.py`) a
logistic-regression probe is fitted on the standardised posterior means of a training subset.
A latent dimension's importance for a task is the norm of its probe weights over classes
(standardised units, so dimensions compare); the task's direction is the leading right
singular vector of the weight matrix, mapped back to latent units (a step of 1 = one standard
deviation of the latent along that direction), oriented so that + goes toward higher labels
(larger angle, larger zoom factor, brighter, flipped; for the class: higher class index). Labels are used here only to *name* directions
for the explanation figures, never to train the model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ...models.embed import embed
from .content_style import subsample, task_data


@dataclass
class LatentDirections:
    tasks: list[str]
    importance: np.ndarray  # tasks × z: probe-weight norm per latent dimension (rows sum to 1)
    directions: np.ndarray  # tasks × z: traversal direction in latent units (one std per unit step)
    latent_mean: np.ndarray  # z: mean posterior mean of clean training inputs
    latent_std: np.ndarray  # z
    probe_accuracy: list[float]  # training-subset accuracy of each probe (a sanity check, not a score)

    def to_json(self) -> dict:
        return {
            "tasks": self.tasks,
            "importance": self.importance,
            "directions": self.directions,
            "latent_mean": self.latent_mean,
            "latent_std": self.latent_std,
            "probe_accuracy": self.probe_accuracy,
            "top_dims": {t: np.argsort(-self.importance[i])[:3].tolist() for i, t in enumerate(self.tasks)},
        }


def latent_directions(encoder: torch.nn.Module, dataset, tasks: list[str], *, n: int = 2000, seed: int = 0, device: str = "cpu") -> LatentDirections:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rows = subsample(len(dataset.train), n, seed, "directions")
    x, y = dataset.train.x[rows], np.asarray(dataset.train.y)[rows]
    clean = embed(encoder, x, 512, device).astype(np.float64)
    mean, std = clean.mean(0), np.maximum(clean.std(0), 1e-8)
    imp, dirs, accs = [], [], []
    for task in ["content", *tasks]:
        xt, yt = task_data(task, x, y, seed, "directions")
        f = (embed(encoder, xt, 512, device).astype(np.float64) - mean) / std
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(f, yt)
        w = np.atleast_2d(clf.coef_)  # classes × z (1 × z for two classes)
        norm = np.linalg.norm(w, axis=0)
        imp.append(norm / max(norm.sum(), 1e-12))
        u = np.linalg.svd(w, full_matrices=False)[2][0]
        numeric = np.issubdtype(yt.dtype, np.number) and np.ptp(yt) > 0
        corr = np.corrcoef(f @ u, yt.astype(np.float64))[0, 1] if numeric else 0.0
        u = -u if corr < 0 else u  # + along the direction = higher bin (brighter, larger, flipped)
        dirs.append(u * std)
        accs.append(float(clf.score(f, yt)))
    return LatentDirections(["content", *tasks], np.array(imp), np.array(dirs), mean, std, accs)
