"""Classical supervised influence: the self-influence of a classifier's cross-entropy loss.

The labelled counterpart of the label-free score, for comparisons (bench/influence_supervised.py).
Same recipe as Influence-SSL — kronfluence's EK-FAC (or K-FAC, or identity) fitted on the summed
per-example loss with the empirical Fisher, damping 0.1 × each layer's mean eigenvalue unless given,
the model's nn.Linear / nn.Conv2d layers (or the named ones), eval mode — with
ℓ(x, y) = CE(model(x), y) in place of ℓ_aug: s(x, y) = g(x, y)ᵀ (G + λI)⁻¹ g(x, y). The empirical
Fisher (rather than the sampled "true" Fisher kronfluence uses for classifiers by default) keeps the
curvature recipe identical on both sides, so only the loss differs.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from ...errors import UserError
from .curvature import check_damping, check_strategy


def _task_class():
    from kronfluence.task import Task

    class CrossEntropyTask(Task):
        """Σ_i CE(model(x_i), y_i) as both the training loss and the measurement."""

        def __init__(self, modules=None):
            self.modules = modules

        def get_influence_tracked_modules(self):
            return self.modules  # None: every Linear / Conv2d

        def compute_train_loss(self, batch, model: nn.Module, sample: bool = False) -> torch.Tensor:
            if sample:
                raise ValueError("fit the factors with use_empirical_fisher=True: the observed labels, not sampled ones")
            x, y = batch
            return F.cross_entropy(model(x), y, reduction="sum")

        def compute_measurement(self, batch, model: nn.Module) -> torch.Tensor:
            return self.compute_train_loss(batch, model)

    return CrossEntropyTask


def labelled_rows(x, y, n_classes: int | None = None) -> TensorDataset:
    """(inputs, integer labels) as a TensorDataset; one-line errors for mismatched or bad labels."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    y_np = np.asarray(y)
    if y_np.ndim != 1 or len(y_np) != len(x):
        raise UserError(f"supervised influence needs one integer label per row: {len(x)} rows, labels of shape {y_np.shape}")
    if len(x) < 2:
        raise UserError(f"supervised influence needs at least 2 training examples, got {len(x)}")
    if not np.issubdtype(y_np.dtype, np.integer) or y_np.min() < 0 or (n_classes is not None and y_np.max() >= n_classes):
        raise UserError(f"labels must be integers in 0..{'C−1' if n_classes is None else n_classes - 1} (class indices), got {y_np.dtype} in [{y_np.min()}, {y_np.max()}]")
    return TensorDataset(x, torch.as_tensor(y_np, dtype=torch.long))


def supervised_self_influence(
    model: nn.Module, x, y, *, strategy: str = "ekfac", damping: float | None = None, batch_size: int = 64, modules: list[str] | None = None, n_classes: int | None = None
) -> np.ndarray:
    """s_i = g_iᵀ (G + λI)⁻¹ g_i for ℓ = CE(model(x_i), y_i), computed by kronfluence on a copy of `model`
    (logits out); G is fitted on the same rows. `modules`: tracked module names (None = every Linear / Conv2d)."""
    from kronfluence import Analyzer, FactorArguments, ScoreArguments, prepare_model

    strategy = check_strategy(strategy)
    damping = check_damping(damping)
    data = labelled_rows(x, y, n_classes)
    task = _task_class()(modules)
    with tempfile.TemporaryDirectory(prefix="sslaudit-supervised-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)
        net = prepare_model(copy.deepcopy(model).eval(), task)
        an = Analyzer("supervised", net, task, cpu=True, output_dir=tmp, disable_tqdm=True, log_level=logging.WARNING)
        fargs = FactorArguments(strategy=strategy, use_empirical_fisher=True, covariance_max_examples=None, lambda_max_examples=None)
        an.fit_all_factors("factors", data, per_device_batch_size=int(batch_size), factor_args=fargs, overwrite_output_dir=True)
        an.compute_self_scores("self", "factors", data, per_device_train_batch_size=int(batch_size), score_args=ScoreArguments(damping_factor=damping), overwrite_output_dir=True)
        return an.load_self_scores("self")["all_modules"].double().numpy()


def linear_head(emb: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 1.0, seed: int = 0) -> nn.Linear:
    """The library's linear probe (multinomial logistic regression on standardised features, lbfgs)
    fitted on (emb, y) and folded into one nn.Linear on the raw features: the logits give the probe's
    probabilities (softmax), and equal its decision_function for more than two classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    emb = np.asarray(emb, dtype=np.float64)
    y = np.asarray(y)
    if len(np.unique(y)) != n_classes or y.min() < 0 or y.max() >= n_classes:
        raise UserError(f"linear_head needs labels covering all {n_classes} classes 0..{n_classes - 1}, got {len(np.unique(y))} distinct")
    sc = StandardScaler().fit(emb)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(sc.transform(emb), y)
    coef, icpt = (np.vstack([-clf.coef_ / 2, clf.coef_ / 2]), np.r_[-clf.intercept_ / 2, clf.intercept_ / 2]) if n_classes == 2 else (clf.coef_, clf.intercept_)
    w = coef / sc.scale_[None]
    b = icpt - w @ sc.mean_
    head = nn.Linear(emb.shape[1], n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
    return head
