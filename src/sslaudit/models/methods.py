"""Training methods: a model plus the loss it is trained with on augmented views.

A `Method` owns every network it trains (and any target network), computes the loss from a list
of augmented views, and updates non-gradient state after each step (BYOL's EMA target). The
trainer knows nothing else about the objective, so SimVAE and regularised variants plug in here.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import UserError
from .encoders import SSLModel
from .objectives import DEFAULTS, OBJECTIVES, byol_loss, pair_loss

GENERATIVE = ("simvae", "vae", "betavae")
ALL_OBJECTIVES = OBJECTIVES + GENERATIVE


class Method(nn.Module):
    n_views: int = 2
    objective: str = ""

    @property
    def encoder(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def on_step_end(self, progress: float) -> None:
        """Called after each optimiser step; `progress` ∈ [0, 1] is the share of training done."""

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]


class SSLMethod(Method):
    """SimCLR, BYOL, VICReg or Barlow Twins on an `SSLModel`."""

    def __init__(self, objective: str, arch: dict, params: dict | None = None):
        super().__init__()
        if objective not in OBJECTIVES:
            raise UserError(f"unknown objective {objective!r}: use one of {', '.join(ALL_OBJECTIVES)}")
        self.objective = objective
        unknown = sorted(set(params or {}) - set(DEFAULTS[objective]))
        if unknown:
            raise UserError(f"unknown {objective} parameter(s) {unknown}: it takes {sorted(DEFAULTS[objective])}")
        self.params = {**DEFAULTS[objective], **(params or {})}
        self.model = SSLModel(arch, predictor=objective == "byol")
        if objective == "byol":
            self.target = copy.deepcopy(nn.ModuleDict({"encoder": self.model.encoder, "projector": self.model.projector}))
            for p in self.target.parameters():
                p.requires_grad_(False)
            self.register_buffer("ema", torch.tensor(float(self.params["ema_start"])))

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    def trainable_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("target.")]

    def loss(self, views):
        x1, x2 = views
        if self.objective != "byol":
            p = {k: v for k, v in self.params.items()}
            return pair_loss(self.objective, self.model(x1), self.model(x2), **p)
        z = self.model(torch.cat([x1, x2]))
        p = self.model.predictor(z)
        with torch.no_grad():
            self.target.train(self.training)
            t = self.target["projector"](self.target["encoder"](torch.cat([x1, x2])))
        b = x1.shape[0]
        return byol_loss(p[:b], t[b:]) + byol_loss(p[b:], t[:b])

    @torch.no_grad()
    def on_step_end(self, progress: float) -> None:
        if self.objective != "byol":
            return
        tau0 = float(self.params["ema_start"])
        tau = 1 - (1 - tau0) * (math.cos(math.pi * progress) + 1) / 2
        self.ema.fill_(tau)
        online = dict(self.model.encoder.named_parameters(prefix="encoder")) | dict(self.model.projector.named_parameters(prefix="projector"))
        for name, tp in self.target.named_parameters():
            tp.mul_(tau).add_(online[name].detach(), alpha=1 - tau)
        online_b = dict(self.model.encoder.named_buffers(prefix="encoder")) | dict(self.model.projector.named_buffers(prefix="projector"))
        for name, tb in self.target.named_buffers():
            tb.copy_(online_b[name])


def build_method(objective: str, arch: dict, params: dict | None = None) -> Method:
    if objective in OBJECTIVES:
        return SSLMethod(objective, arch, params)
    if objective in GENERATIVE:
        from .simvae import build_generative  # noqa: PLC0415 - optional model family

        return build_generative(objective, arch, params)
    raise UserError(f"unknown objective {objective!r}: use one of {', '.join(ALL_OBJECTIVES)}")
