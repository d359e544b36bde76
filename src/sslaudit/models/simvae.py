"""SimVAE (Bizeul, Schölkopf & Allen 2024) and its VAE / β-VAE baselines as training objectives.

Generative model of the J augmented views x_1..x_J of one sample:
    y ~ N(0, I)  (or a flat prior: `prior="uniform"`),   z_j | y ~ N(y, σ²I),   x_j | z_j ~ N(dec(z_j), σ_x² I).
The encoder q(z_j|x_j) = N(μ(x_j), diag exp(logvar(x_j))) is shared over views. The loss is the
negative ELBO, averaged over samples (summed over views):
    ELBO = Σ_j E_q[log p(x_j|z_j)] + Σ_j H[q(z_j|x_j)] + E_q[log p(z_1..J)],
with the entropy in closed form and the two expectations by one reparameterised draw. y is
integrated out exactly (`log_prior_simvae`). The VAE baseline replaces the prior by
Σ_j log N(z_j; 0, I) (the views are independent samples of the same VAE: the same data and
compute as SimVAE, only the prior differs); the β-VAE multiplies entropy + prior by β.

`reference_weighting=True` reproduces the authors' code: z̄ in place of y with −½‖z̄‖² for
log p(y) (uniform: no y term), the entropy ½Σ 2π·logvar (a stray 2π factor, no constant) and the
reconstruction without its normalising constant. It changes the optimum; it is for comparisons.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from ..seeding import derive_seed, torch_generator
from .generative_nets import GaussianEncoder, build_decoder, generative_arch
from .methods import Method

LOG_2PI = math.log(2 * math.pi)

DEFAULTS: dict[str, dict] = {
    "simvae": {"z_dim": 10, "sigma2": 0.15, "sigma_x2": 0.01, "prior": "gaussian", "J": 2, "beta": 1.0},
    "vae": {"z_dim": 10, "sigma_x2": 0.01, "J": 2, "beta": 1.0},
    "betavae": {"z_dim": 10, "sigma_x2": 0.01, "J": 2, "beta": 4.0},
}
COMMON = {"reference_weighting": False, "seed": 0, "hidden": None, "decoder": None}


def log_prior_simvae(z: torch.Tensor, sigma2: float, prior: str = "gaussian") -> torch.Tensor:
    """log p(z_1..J) per sample with y integrated out; z is J×N×d, returns N.

    gaussian: −Σ_j‖z_j − z̄‖²/(2σ²) − J‖z̄‖²/(2(σ²+J)) − d[J/2·log 2π + (J−1)/2·log σ² + ½ log(σ²+J)],
    the density of the joint normal with covariance (σ²I_J + 11ᵀ) ⊗ I_d.
    uniform (flat density 1 on y): −Σ_j‖z_j − z̄‖²/(2σ²) − d[(J−1)/2·log(2πσ²) + ½ log J].
    """
    J, d = z.shape[0], z.shape[-1]
    zbar = z.mean(0)
    within = ((z - zbar) ** 2).sum((0, 2)) / (2 * sigma2)
    if prior == "gaussian":
        const = d * (J / 2 * LOG_2PI + (J - 1) / 2 * math.log(sigma2) + 0.5 * math.log(sigma2 + J))
        return -within - J * (zbar**2).sum(-1) / (2 * (sigma2 + J)) - const
    if prior == "uniform":
        return -within - d * ((J - 1) / 2 * math.log(2 * math.pi * sigma2) + 0.5 * math.log(J))
    raise UserError(f"unknown prior {prior!r}: use 'gaussian' or 'uniform'")


def log_prior_reference(z: torch.Tensor, sigma2: float, prior: str = "gaussian") -> torch.Tensor:
    """The reference code's prior term: y replaced by z̄, −½‖z̄‖² once (gaussian), no constants."""
    zbar = z.mean(0)
    within = ((z - zbar) ** 2).sum((0, 2)) / (2 * sigma2)
    if prior == "gaussian":
        return -within - 0.5 * (zbar**2).sum(-1)
    if prior == "uniform":
        return -within
    raise UserError(f"unknown prior {prior!r}: use 'gaussian' or 'uniform'")


def log_prior_standard(z: torch.Tensor) -> torch.Tensor:
    """Σ_j log N(z_j; 0, I) per sample (the VAE prior); z is J×N×d, returns N.

    The reference code's standard-normal prior keeps the −½ log 2π constant, so both modes agree.
    """
    d = z.shape[-1]
    return -0.5 * ((z**2).sum(-1) + d * LOG_2PI).sum(0)


def gaussian_entropy(logvar: torch.Tensor, reference: bool = False) -> torch.Tensor:
    """H[N(μ, diag e^logvar)] summed over the last axis; reference: ½Σ 2π·logvar (the stray 2π)."""
    if reference:
        return 0.5 * (2 * math.pi * logvar).sum(-1)
    return 0.5 * (logvar + 1 + LOG_2PI).sum(-1)


def gaussian_loglik(x: torch.Tensor, mean: torch.Tensor, sigma_x2: float, reference: bool = False) -> torch.Tensor:
    """log N(x; mean, σ_x² I) summed over all but the first axis; reference: without the constant."""
    sq = ((x - mean) ** 2).flatten(1).sum(-1)
    if reference:
        return -sq / (2 * sigma_x2)
    return -sq / (2 * sigma_x2) - 0.5 * x[0].numel() * math.log(2 * math.pi * sigma_x2)


class GenerativeMethod(Method):
    """SimVAE, VAE or β-VAE: `loss(views)` is the negative ELBO (mean over samples)."""

    def __init__(self, objective: str, arch: dict, params: dict):
        super().__init__()
        self.objective = objective
        self.params = params
        self.n_views = int(params["J"])
        self.arch = generative_arch(arch, params)
        z = int(params["z_dim"])
        self.q = GaussianEncoder(self.arch, z)
        self.decoder = build_decoder(self.arch, params, z)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def encoder(self) -> nn.Module:
        return self.q

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def noise(self, shape, device) -> torch.Tensor:
        """Reparameterisation noise of this step, from (seed, step): resumed runs draw the same."""
        g = torch_generator(int(self.params["seed"]), "simvae-noise", int(self.step))
        return torch.randn(*shape, generator=g).to(device)

    def terms(self, views: list[torch.Tensor], eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-sample ELBO terms (each N): recon and entropy summed over views, prior, elbo."""
        if len(views) != self.n_views:
            raise ValueError(f"{self.objective} expects {self.n_views} views per sample, got {len(views)}")
        J, n = len(views), len(views[0])
        x = torch.cat(views)
        mu, logvar = self.q.posterior(x)
        if eps is None:
            eps = self.noise(mu.shape, mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps.reshape(mu.shape)
        ref = bool(self.params["reference_weighting"])
        sx2 = float(self.params["sigma_x2"])
        recon = gaussian_loglik(x, self.decoder(z), sx2, ref).view(J, n).sum(0)
        entropy = gaussian_entropy(logvar, ref).view(J, n).sum(0)
        zj = z.view(J, n, -1)
        if self.objective == "simvae":
            sigma2, prior = float(self.params["sigma2"]), self.params["prior"]
            lp = log_prior_reference(zj, sigma2, prior) if ref else log_prior_simvae(zj, sigma2, prior)
        else:
            lp = log_prior_standard(zj)
        beta = float(self.params["beta"])
        return {"recon": recon, "entropy": entropy, "prior": lp, "elbo": recon + beta * (entropy + lp)}

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        return -self.terms(views)["elbo"].mean()

    def on_step_end(self, progress: float) -> None:
        self.step += 1


def check_params(objective: str, params: dict) -> dict:
    known = {**DEFAULTS[objective], **COMMON}
    bad = sorted(set(params) - set(known))
    if bad:
        raise UserError(f"unknown {objective} parameter(s) {bad}: use {', '.join(sorted(known))}")
    p = {**known, **params}
    for k in ("sigma_x2", "beta") + (("sigma2",) if objective == "simvae" else ()):
        if not (isinstance(p[k], (int, float)) and p[k] > 0):
            raise UserError(f"{objective} parameter {k}={p[k]!r} must be a positive number")
    if not (isinstance(p["z_dim"], int) and p["z_dim"] >= 1):
        raise UserError(f"z_dim={p['z_dim']!r} must be a positive integer (e.g. 10)")
    if not (isinstance(p["J"], int) and p["J"] >= (2 if objective == "simvae" else 1)):
        raise UserError(f"J={p['J']!r}: SimVAE needs at least 2 views per sample (the paper used 2 or 6)")
    if objective == "simvae" and p["prior"] not in ("gaussian", "uniform"):
        raise UserError(f"unknown prior {p['prior']!r}: use 'gaussian' or 'uniform'")
    return p


def build_generative(objective: str, arch: dict, params: dict | None = None) -> GenerativeMethod:
    """SimVAE / VAE / β-VAE on `arch`; weights initialised from (seed, objective) only."""
    if objective not in DEFAULTS:
        raise UserError(f"unknown generative objective {objective!r}: use simvae, vae or betavae")
    p = check_params(objective, dict(params or {}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(int(p["seed"]), "generative-init", objective))
        return GenerativeMethod(objective, arch, p)
