"""The Q-Score regulariser for fine-tuning an SSL model.

L = L_SSL − λ1 · mean_{i: Q_i < α} Q_i + λ2 · Σ_{j: ‖H_:,j‖₁ > β} ‖H_:,j‖₁ / B

on the batch representation H (B×d, the encoder's output on every view of the batch): the first
term raises the discriminative activations of the batch's low-quality samples, the second damps
features that are active on every sample. α (mean Q) and β (mean column ℓ1 norm) are batch means,
treated as constants (no gradient through the thresholds). Q is the differentiable v6 Q-Score in
the paper's form mean_{L_i ∩ D}(h_ij − μ_i) with ε and D fixed from the initial run: the
membership mask j ∈ L_i ∩ D is a step function (no gradient), the activations inside it carry the
gradient. The first term is a mean over the low-Q samples, as the spec writes the paper's formula
(`low_q="mean"`, the default); `low_q="sum"` (what issue 19 reads in another transcription) is an
option — at B = 256 it is ≈ 128× stronger. `form="zscore"` uses the z-scored Q instead.

Use with `sslaudit.run.train_run(..., init=RUN, extra_loss=QScoreRegularizer.from_run(sslaudit.load(RUN)))`.
The extra forward pass runs in the method's mode (train mode: BatchNorm normalises with the
batch statistics, as in the SSL loss's own forward) but leaves BatchNorm running statistics
untouched, so with λ1 = λ2 = 0 fine-tuning is bit-identical to fine-tuning without the
regulariser — the control arm differs from the regularised one only by the loss.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ...errors import UserError


LOW_Q = ("sum", "mean")


def batch_qscore(h: torch.Tensor, discriminative: torch.Tensor, epsilon: float, form: str = "paper") -> torch.Tensor:
    """Differentiable v6 Q-Score of each row of h (0 where L_i ∩ D is empty); form as in `qscore_v6`."""
    mu = h.mean(dim=1, keepdim=True)
    sd = h.std(dim=1, unbiased=False, keepdim=True)
    ok = sd > 0
    z = torch.where(ok, (h - mu) / torch.where(ok, sd, torch.ones_like(sd)), torch.zeros_like(h))
    sel = (z.detach() > epsilon) & ok & discriminative.view(1, -1)
    count = sel.sum(dim=1)
    value = z if form == "zscore" else h - mu
    total = torch.where(sel, value, torch.zeros_like(value)).sum(dim=1)
    return total / count.clamp(min=1)


def regularizer_terms(h: torch.Tensor, discriminative: torch.Tensor, epsilon: float, *, form: str = "paper", low_q: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ or mean_{i: Q_i<α} Q_i, Σ_{j: ‖H_:,j‖₁>β} ‖H_:,j‖₁ / B) for a batch representation."""
    q = batch_qscore(h, discriminative, epsilon, form)
    alpha = q.detach().mean()
    low = q < alpha
    if not bool(low.any()):
        low_mean = q.sum() * 0.0
    else:
        low_mean = q[low].sum() if low_q == "sum" else q[low].mean()
    col = h.abs().sum(dim=0)
    beta = col.detach().mean()
    high = col > beta
    dense = col[high].sum() / h.shape[0] if bool(high.any()) else col.sum() * 0.0
    return low_mean, dense


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module):
    """BatchNorm layers keep normalising with batch statistics but do not update running ones."""
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            saved.append((m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class QScoreRegularizer:
    """`extra_loss(method, views) -> tensor` adding −λ1·(low-Q mean) + λ2·(dense-feature mass)."""

    def __init__(self, discriminative, epsilon: float, lambda1: float = 1e-4, lambda2: float = 1e-4, *, form: str = "paper", low_q: str = "mean"):
        d = np.asarray(discriminative, dtype=bool)
        if d.ndim != 1 or d.size < 2:
            raise UserError("the Q-Score regulariser needs a boolean mask of the discriminative features (one entry per feature)")
        if not (lambda1 >= 0 and lambda2 >= 0):
            raise UserError(f"--qscore-reg {lambda1:g},{lambda2:g}: the weights must be ≥ 0 (e.g. 1e-4,1e-4)")
        from .score import FORMS

        if form not in FORMS:
            raise UserError(f"unknown Q-Score form {form!r}: use one of {', '.join(FORMS)}")
        if low_q not in LOW_Q:
            raise UserError(f"unknown low-Q reduction {low_q!r}: use one of {', '.join(LOW_Q)}")
        self.form, self.low_q = form, low_q
        self.discriminative = torch.as_tensor(d)
        self.epsilon = float(epsilon)
        self.lambda1, self.lambda2 = float(lambda1), float(lambda2)
        self.last: dict = {}

    @classmethod
    def from_run(cls, run, lambda1: float = 1e-4, lambda2: float = 1e-4, qscore_config=None, device: str = "cpu", *, low_q: str = "mean") -> "QScoreRegularizer":
        """ε and D fitted on the training representation of `run` (an opened Run: `sslaudit.load(RUN)`)."""
        from .score import QScore

        if not hasattr(run, "embeddings"):
            raise TypeError("from_run takes an opened run (sslaudit.load(RUN)), not a path")
        qs = QScore(qscore_config).fit(run.embeddings("train"))
        return cls(qs.discriminative, qs.epsilon, lambda1, lambda2, form=qs.config.form, low_q=low_q)

    @property
    def config(self) -> dict:
        return {"qscore_reg": [self.lambda1, self.lambda2], "epsilon": self.epsilon, "form": self.form, "low_q": self.low_q, "discriminative": np.flatnonzero(self.discriminative.numpy()).tolist()}

    def value(self, h: torch.Tensor) -> torch.Tensor:
        """The regulariser on a batch representation h (B×d)."""
        if h.shape[1] != self.discriminative.numel():
            raise UserError(f"the representation has {h.shape[1]} features, the regulariser was fitted on {self.discriminative.numel()}; use the same architecture")
        low_mean, dense = regularizer_terms(h, self.discriminative.to(h.device), self.epsilon, form=self.form, low_q=self.low_q)
        self.last = {"low_q_term": float(low_mean.detach()), "dense_mass": float(dense.detach())}
        return -self.lambda1 * low_mean + self.lambda2 * dense

    def __call__(self, method, views) -> torch.Tensor:
        enc = method.encoder
        with frozen_batchnorm_stats(enc):
            h = enc(torch.cat(list(views)))
        return self.value(h)
