"""The four SSL losses against naive per-element reference formulas."""

import math

import pytest
import torch

from sslaudit.models.objectives import barlow_loss, byol_loss, nt_xent, vicreg_loss


def rand(b=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), torch.randn(b, d, generator=g, dtype=torch.float64)


def naive_nt_xent(z1, z2, t):
    z = torch.cat([z1, z2])
    n = len(z)
    b = len(z1)
    total = 0.0
    for i in range(n):
        pos = (i + b) % n
        cos = lambda a, c: float(z[a] @ z[c] / (z[a].norm() * z[c].norm()))
        num = math.exp(cos(i, pos) / t)
        den = sum(math.exp(cos(i, k) / t) for k in range(n) if k != i)
        total += -math.log(num / den)
    return total / n


def test_nt_xent_matches_naive():
    z1, z2 = rand()
    for t in (0.1, 0.5, 1.0):
        assert nt_xent(z1, z2, t).item() == pytest.approx(naive_nt_xent(z1, z2, t), rel=1e-9)


def test_byol_matches_naive():
    p, t = rand(seed=1)
    ref = sum(2 - 2 * float(p[i] @ t[i] / (p[i].norm() * t[i].norm())) for i in range(len(p))) / len(p)
    assert byol_loss(p, t).item() == pytest.approx(ref, rel=1e-9)


def naive_vicreg(z1, z2, s, v, c, eps=1e-4):
    b, d = z1.shape
    inv = sum(float((z1[i, j] - z2[i, j]) ** 2) for i in range(b) for j in range(d)) / (b * d)

    def var(z):
        tot = 0.0
        for j in range(d):
            m = sum(float(z[i, j]) for i in range(b)) / b
            va = sum((float(z[i, j]) - m) ** 2 for i in range(b)) / (b - 1)
            tot += max(0.0, 1 - math.sqrt(va + eps))
        return tot / d

    def cov(z):
        m = [sum(float(z[i, j]) for i in range(b)) / b for j in range(d)]
        tot = 0.0
        for j in range(d):
            for k in range(d):
                if j != k:
                    cjk = sum((float(z[i, j]) - m[j]) * (float(z[i, k]) - m[k]) for i in range(b)) / (b - 1)
                    tot += cjk**2
        return tot / d

    return s * inv + v * (var(z1) + var(z2)) / 2 + c * (cov(z1) + cov(z2))  # variance terms averaged, as the authors' code


def test_vicreg_matches_naive():
    z1, z2 = rand(seed=2)
    z1 = z1 * 0.3  # some dimensions below the variance hinge
    assert vicreg_loss(z1, z2, 25.0, 25.0, 1.0).item() == pytest.approx(naive_vicreg(z1, z2, 25.0, 25.0, 1.0), rel=1e-9)


def naive_barlow(z1, z2, lambd, eps=1e-5):
    b, d = z1.shape

    def std(z):
        out = []
        for j in range(d):
            col = [float(z[i, j]) for i in range(b)]
            m = sum(col) / b
            s = math.sqrt(sum((x - m) ** 2 for x in col) / b + eps)  # BatchNorm1d(affine=False): eps inside the root
            out.append([(x - m) / s for x in col])
        return out  # d lists of b

    n1, n2 = std(z1), std(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            cij = sum(n1[i][k] * n2[j][k] for k in range(b)) / b
            loss += (1 - cij) ** 2 if i == j else lambd * cij**2
    return loss


def test_barlow_matches_naive():
    z1, z2 = rand(seed=3)
    assert barlow_loss(z1, z2, 5e-3).item() == pytest.approx(naive_barlow(z1, z2, 5e-3), rel=1e-9)


def test_losses_are_minimal_for_identical_views_where_expected():
    z1, _ = rand(b=64, d=8, seed=4)
    assert byol_loss(z1, z1).item() == pytest.approx(0.0, abs=1e-12)
    assert barlow_loss(z1, z1, 0.0).item() < barlow_loss(z1, torch.flip(z1, [0]), 0.0).item()
