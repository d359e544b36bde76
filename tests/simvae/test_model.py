"""SimVAE / VAE / β-VAE objectives: each ELBO term against a naive loop, flags, training, loading."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch.distributions import Normal

import sslaudit
from sslaudit.errors import UserError
from sslaudit.models.encoders import default_arch
from sslaudit.models.methods import build_method
from sslaudit.models.simvae import GenerativeMethod

ARCH = default_arch("image", (1, 8, 8), "mlp") | {"hidden": [16]}


def small(objective, **params):
    return build_method(objective, ARCH, {"z_dim": 3, **params}).double()


def batch(n=4, J=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(J)]


def naive_terms(m: GenerativeMethod, views, eps):
    """Loop over samples and views with torch.distributions / scipy, no vectorised formulas."""
    J, n = len(views), len(views[0])
    p = m.params
    out = {"recon": [], "entropy": [], "prior": []}
    for i in range(n):
        rec = ent = 0.0
        zs = []
        for j in range(J):
            x = views[j][i : i + 1]
            mu, logvar = m.q.posterior(x)
            z = mu + torch.exp(0.5 * logvar) * eps[j * n + i]
            xhat = m.decoder(z)
            rec += Normal(xhat, math.sqrt(p["sigma_x2"])).log_prob(x).sum().item()
            ent += Normal(mu, torch.exp(0.5 * logvar)).entropy().sum().item()
            zs.append(z[0].detach().numpy())
        zs = np.stack(zs)
        if m.objective == "simvae":
            cov = np.kron(p["sigma2"] * np.eye(J) + np.ones((J, J)), np.eye(zs.shape[1]))
            prior = multivariate_normal(np.zeros(zs.size), cov).logpdf(zs.reshape(-1))
        else:
            prior = sum(multivariate_normal(np.zeros(zs.shape[1]), np.eye(zs.shape[1])).logpdf(zj) for zj in zs)
        out["recon"].append(rec)
        out["entropy"].append(ent)
        out["prior"].append(prior)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("objective,J", [("simvae", 2), ("simvae", 3), ("vae", 2), ("betavae", 2)])
def test_elbo_terms_equal_naive_loops(objective, J):
    m = small(objective, J=J)
    views = batch(J=J)
    eps = torch.randn(J * 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        t = m.terms(views, eps)
        naive = naive_terms(m, views, eps)
    for k in ("recon", "entropy", "prior"):
        np.testing.assert_allclose(t[k].numpy(), naive[k], rtol=1e-9, err_msg=k)
    beta = m.params["beta"]
    assert beta == (4.0 if objective == "betavae" else 1.0)
    np.testing.assert_allclose(t["elbo"].numpy(), naive["recon"] + beta * (naive["entropy"] + naive["prior"]), rtol=1e-9)
    torch.testing.assert_close(m.loss(views), -m.terms(views)["elbo"].mean())


def test_reference_weighting_differs_as_documented():
    ours, ref = small("simvae"), small("simvae", reference_weighting=True)
    ref.load_state_dict(ours.state_dict())
    views, eps = batch(), torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = ours.terms(views, eps), ref.terms(views, eps)
        _, logvar = ours.q.posterior(torch.cat(views))
    d, s2x = 64, 0.01
    # reconstruction: the same up to the normalising constant of each view
    np.testing.assert_allclose(b["recon"] - a["recon"], 2 * 0.5 * d * math.log(2 * math.pi * s2x), rtol=1e-9)
    # entropy: ½ Σ 2π·logvar (the stray 2π), summed over the views
    want = (0.5 * 2 * math.pi * logvar).sum(-1).view(2, 4).sum(0)
    torch.testing.assert_close(b["entropy"], want)
    assert not torch.allclose(a["entropy"], b["entropy"])
    # prior: z̄ in place of y, −½‖z̄‖² — a different function of z, not only a constant shift
    diff = (b["prior"] - a["prior"]).numpy()
    assert np.ptp(diff) > 1e-6


def test_uniform_prior_option_trains_and_ignores_location():
    m = small("simvae", prior="uniform")
    views = batch()
    eps = torch.zeros(8, 3, dtype=torch.float64)
    with torch.no_grad():
        t = m.terms(views, eps)
        mu, _ = m.q.posterior(torch.cat(views))
        z = mu.view(2, 4, 3)
        within = ((z - z.mean(0)) ** 2).sum((0, 2)) / (2 * 0.15)
    const = 3 * (0.5 * math.log(2 * math.pi * 0.15) + 0.5 * math.log(2))
    torch.testing.assert_close(t["prior"], -within - const)


def test_encoder_returns_posterior_mean_and_build_is_deterministic():
    m1, m2 = small("simvae"), small("simvae")
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    x = batch()[0]
    mu, _ = m1.q.posterior(x)
    torch.testing.assert_close(m1.encoder(x), mu)
    assert m1.n_views == 2 and small("simvae", J=6).n_views == 6
    assert not torch.equal(small("simvae", seed=1).q.mean.weight, m1.q.mean.weight)


def test_training_steps_lower_the_loss():
    from sslaudit.data import load_dataset

    ds = load_dataset("digits")
    x = torch.as_tensor(ds.train.x[:128], dtype=torch.float64)
    for objective in ("simvae", "vae"):
        m = small(objective)
        views = [x, x.flip(-1)]
        eps = torch.randn(256, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        before = -m.terms(views, eps)["elbo"].mean().item()
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for _ in range(15):
            loss = m.loss(views)
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.on_step_end(0.0)
        after = -m.terms(views, eps)["elbo"].mean().item()
        assert after < before - 1.0, (objective, before, after)
        assert int(m.step) == 15


def test_noise_is_a_function_of_seed_and_step():
    m = small("simvae")
    a = m.noise((4, 3), "cpu")
    torch.testing.assert_close(m.noise((4, 3), "cpu"), a)
    m.on_step_end(0.1)
    assert not torch.equal(m.noise((4, 3), "cpu"), a)


def test_trained_run_loads_with_posterior_mean_encoder(simvae_run):
    run = sslaudit.load(simvae_run)
    assert run.objective == "simvae"
    x = torch.as_tensor(run.dataset.test.x[:16])
    with torch.no_grad():
        z = run.encoder(x)
        mu, logvar = run.method.q.posterior(x)
    assert z.shape == (16, 10)
    torch.testing.assert_close(z, mu)
    assert run.embeddings("test").shape == (len(run.dataset.test), 10)
    m = run.store.read_json("metrics.json")
    assert np.isfinite(m["final_loss"]) and m["linear_probe_accuracy"] > 0.5  # clearly above chance (0.1)


@pytest.mark.parametrize(
    "params,msg",
    [
        ({"J": 1}, "at least 2 views"),
        ({"prior": "laplace"}, "unknown prior"),
        ({"sigma2": -1}, "positive"),
        ({"z_dim": 0}, "z_dim"),
        ({"zdim": 3}, "unknown simvae parameter"),
        ({"hidden": [0]}, "positive layer widths"),
    ],
)
def test_bad_parameters_are_user_errors(params, msg):
    with pytest.raises(UserError, match=msg):
        build_method("simvae", ARCH, params)


def test_conv_decoder_and_paper_mlp_shapes():
    conv = build_method("simvae", default_arch("image", (1, 28, 28)), {})
    x = torch.rand(3, 1, 28, 28)
    assert conv.decode(conv.encoder(x)).shape == x.shape
    paper = build_method("vae", default_arch("image", (1, 28, 28), "mlp"), {"hidden": "paper"})
    assert [l.out_features for l in paper.q.body.trunk.net if isinstance(l, torch.nn.Linear)] == [2000, 500, 500]
    assert paper.decode(paper.encoder(x)).shape == x.shape
    tab = build_method("simvae", default_arch("tabular", (7,)), {})
    t = torch.randn(5, 7)
    assert tab.decode(tab.encoder(t)).shape == t.shape and tab.decode(tab.encoder(t)).min() < 0  # no sigmoid on tables
    with pytest.raises(UserError, match="conv"):
        build_method("simvae", default_arch("tabular", (7,)), {"decoder": "conv"})
