"""The SimVAE prior term against an independent computation (joint normal density)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from sslaudit.models.simvae import log_prior_reference, log_prior_simvae, log_prior_standard


def joint_logpdf(z: np.ndarray, sigma2: float, s2: float = 1.0) -> np.ndarray:
    """log N((z_1..z_J); 0, (σ²I_J + s²11ᵀ) ⊗ I_d) per sample; z is J×N×d."""
    J, n, d = z.shape
    cov = np.kron(sigma2 * np.eye(J) + s2 * np.ones((J, J)), np.eye(d))
    flat = z.transpose(1, 0, 2).reshape(n, J * d)  # index j·d + k
    return multivariate_normal(np.zeros(J * d), cov).logpdf(flat)


@pytest.mark.parametrize("J,d,sigma2", [(2, 3, 0.15), (3, 2, 0.15), (6, 4, 0.5), (2, 1, 2.0)])
def test_gaussian_prior_equals_joint_normal_density(J, d, sigma2):
    z = np.random.default_rng(J * 10 + d).normal(size=(J, 7, d)) * 1.3
    ours = log_prior_simvae(torch.from_numpy(z), sigma2, "gaussian").numpy()
    np.testing.assert_allclose(ours, np.atleast_1d(joint_logpdf(z, sigma2)), rtol=1e-10, atol=1e-10)


def test_prior_is_maximal_when_view_latents_coincide():
    rng = np.random.default_rng(0)
    zbar = torch.from_numpy(rng.normal(size=(5, 4)))
    same = zbar[None].repeat(3, 1, 1)
    best = log_prior_simvae(same, 0.15)
    for _ in range(20):
        dev = torch.from_numpy(rng.normal(size=(3, 5, 4))) * 0.3
        dev = dev - dev.mean(0, keepdim=True)  # keeps z̄ fixed
        assert (log_prior_simvae(same + dev, 0.15) < best).all()
    # and the gradient at coincident latents only pulls z̄ toward 0 (equal for every view)
    z = same.clone().requires_grad_(True)
    log_prior_simvae(z, 0.15).sum().backward()
    assert torch.allclose(z.grad, z.grad.mean(0, keepdim=True).expand_as(z.grad))


def test_uniform_prior_is_the_flat_limit_of_the_gaussian_one():
    z = np.random.default_rng(1).normal(size=(3, 4, 2))
    s2, d = 1e8, 2
    limit = joint_logpdf(z, 0.15, s2) + d / 2 * math.log(2 * math.pi * s2)  # × the density of N(0, s²I) at y≈0
    ours = log_prior_simvae(torch.from_numpy(z), 0.15, "uniform").numpy()
    np.testing.assert_allclose(ours, limit, atol=1e-5)
    # it only pulls the views together: shifting all views by the same vector changes nothing
    shifted = log_prior_simvae(torch.from_numpy(z + 5.0), 0.15, "uniform").numpy()
    np.testing.assert_allclose(shifted, ours, atol=1e-10)


def test_reference_prior_uses_zbar_for_y():
    z = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 6, 3)))
    zbar = z.mean(0)
    want = -((z - zbar) ** 2).sum((0, 2)) / (2 * 0.15) - 0.5 * (zbar**2).sum(-1)
    torch.testing.assert_close(log_prior_reference(z, 0.15), want)
    assert not torch.allclose(log_prior_reference(z, 0.15), log_prior_simvae(z, 0.15))


def test_standard_prior_is_independent_standard_normals():
    z = np.random.default_rng(3).normal(size=(2, 5, 3))
    want = sum(multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z[j]) for j in range(2))
    np.testing.assert_allclose(log_prior_standard(torch.from_numpy(z)).numpy(), want, rtol=1e-10)
