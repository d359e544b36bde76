"""The four SSL losses against lightly's (a peer's implementation), in value and in gradient.

Hyper-parameters mapped: SimCLR τ = NTXentLoss(temperature); BYOL 2 − 2·cos = 2 + 2·NegativeCosineSimilarity;
VICReg (sim, var, cov weights, eps) = VICRegLoss(lambda_param, mu_param, nu_param, eps); Barlow λ = BarlowTwinsLoss(lambda_param).
lightly 1.6.0 follows the authors' code in all four, and so do ours: VICReg averages the two variance hinges
(facebookresearch/vicreg: std_loss = mean(relu(1 − std_x))/2 + mean(relu(1 − std_y))/2; the paper's eq. 6 sums them);
Barlow Twins standardises with BatchNorm1d(affine=False), i.e. (z − mean)/sqrt(biased var + 1e-5). BYOL's stop-gradient
on the target is inside our byol_loss; lightly's NegativeCosineSimilarity leaves it to the caller, so only the
prediction's gradient is compared and ours must give the target none.

Tolerances: float64 values rel 1e-12, gradients rel 1e-10 (abs 1e-14 × the gradient's largest entry); the float32 real
embeddings rel 1e-5 in value and abs 1e-5 × the largest entry in gradient (the two codes sum in different orders).
"""

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightly", reason="lightly (the [test] extra) is the reference these losses are tested against")
from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss  # noqa: E402

from sslaudit.models.objectives import barlow_loss, byol_loss, nt_xent, vicreg_loss  # noqa: E402

FM = Path(__file__).resolve().parents[1] / "fixtures" / "fashion-mnist"
SHAPES = [(4, 3), (16, 8), (64, 32), (7, 128)]  # the last: fewer samples than dimensions
CASES = {
    "simclr": [{"temperature": t} for t in (0.1, 0.5, 1.0)],
    "byol": [{}],
    "vicreg": [{}, {"sim_weight": 10.0, "var_weight": 3.0, "cov_weight": 0.5, "eps": 1e-3}],
    "barlow": [{}, {"lambd": 0.1}],
}


def ours(objective, z1, z2, **p):
    fn = {"simclr": nt_xent, "byol": byol_loss, "vicreg": vicreg_loss, "barlow": barlow_loss}[objective]
    return fn(z1, z2, **p)


def lightly_loss(objective, z1, z2, **p):
    if objective == "simclr":
        return NTXentLoss(temperature=p.get("temperature", 0.5))(z1, z2)
    if objective == "byol":
        return 2 + 2 * NegativeCosineSimilarity()(z1, z2.detach())
    if objective == "vicreg":
        kw = {"lambda_param": "sim_weight", "mu_param": "var_weight", "nu_param": "cov_weight", "eps": "eps"}
        return VICRegLoss(**{k: p[v] for k, v in kw.items() if v in p})(z1, z2)
    return BarlowTwinsLoss(lambda_param=p.get("lambd", 5e-3))(z1, z2)


def value_and_grad(loss_fn, objective, z1, z2, **p):
    a, b = z1.detach().clone().requires_grad_(True), z2.detach().clone().requires_grad_(True)
    loss = loss_fn(objective, a, b, **p)
    ga, gb = torch.autograd.grad(loss, (a, b), allow_unused=True)
    return loss.detach(), ga, gb


def assert_equal_to_lightly(objective, z1, z2, p, rel, grad_rel, grad_abs):
    v, g1, g2 = value_and_grad(ours, objective, z1, z2, **p)
    lv, lg1, lg2 = value_and_grad(lightly_loss, objective, z1, z2, **p)
    assert v.item() == pytest.approx(lv.item(), rel=rel), f"{objective} {p}: value"
    pairs = [(g1, lg1)] if objective == "byol" else [(g1, lg1), (g2, lg2)]
    for g, lg in pairs:
        scale = lg.abs().max().item()
        torch.testing.assert_close(g, lg, rtol=grad_rel, atol=grad_abs * scale, msg=lambda m: f"{objective} {p}: gradient\n{m}")
    if objective == "byol":
        assert g2 is None, "byol_loss must not differentiate the target"


def random_views(b, d, seed):
    """Two correlated views with per-dimension scales in [0.1, 3]: some VICReg hinges active, some not."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.1 + 2.9 * torch.rand(d, generator=g, dtype=torch.float64)
    base = torch.randn(b, d, generator=g, dtype=torch.float64)
    z1 = (base + 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64)) * scale
    z2 = (base + 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64)) * scale
    return z1, z2


@pytest.mark.parametrize("objective", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_equal_to_lightly_on_random_embeddings(objective, shape):
    for seed in range(3):
        z1, z2 = random_views(*shape, seed=seed)
        for p in CASES[objective]:
            assert_equal_to_lightly(objective, z1, z2, p, rel=1e-12, grad_rel=1e-10, grad_abs=1e-14)


@pytest.fixture(scope="module")
def real_views(tmp_path_factory):
    """Per objective: the projections (BYOL: the predictions and the target projections) of two seeded augmented
    views of 128 committed Fashion-MNIST test images, through a network the project trained on the committed slice."""
    from sslaudit.data.augment import make_augment
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, load, train_run
    from sslaudit.seeding import torch_generator

    out = {}
    root = tmp_path_factory.mktemp("losses-lightly")
    for objective in CASES:
        run = load(train_run(data_config("fashion-mnist", data_dir=str(FM)), TrainConfig(objective=objective, epochs=1, batch_size=128, seed=0), root / objective))
        x = torch.as_tensor(run.dataset.test.x[:128])
        aug = make_augment(run.dataset)
        x1, x2 = aug(x, torch_generator(0, "view", 1)), aug(x, torch_generator(0, "view", 2))
        m = run.method
        with torch.no_grad():
            if objective == "byol":
                z1 = m.model.predictor(m.model(x1))
                z2 = m.target["projector"](m.target["encoder"](x2))
            else:
                z1, z2 = m.model(x1), m.model(x2)
        out[objective] = (z1, z2)
    return out


@pytest.mark.parametrize("objective", list(CASES))
def test_equal_to_lightly_on_real_embeddings(real_views, objective):
    z1, z2 = real_views[objective]
    assert z1.dtype == torch.float32 and z1.shape == (128, 128) and z1.std(0).min() > 0
    for p in CASES[objective]:
        assert_equal_to_lightly(objective, z1.double(), z2.double(), p, rel=1e-12, grad_rel=1e-10, grad_abs=1e-14)
        assert_equal_to_lightly(objective, z1, z2, p, rel=1e-5, grad_rel=1e-4, grad_abs=1e-5)


def test_lightly_differs_where_the_formulas_would():
    """The comparison can fail: the paper's summed VICReg variance terms and Barlow's eps outside the root both differ from lightly."""
    z1, z2 = random_views(16, 8, seed=0)
    z1 = z1 * 0.2  # every variance hinge active
    summed = 25.0 * torch.nn.functional.mse_loss(z1, z2) + vicreg_loss(z1, z2, 0.0, 50.0, 0.0) + vicreg_loss(z1, z2, 0.0, 0.0, 1.0)
    assert summed.item() != pytest.approx(lightly_loss("vicreg", z1, z2).item(), rel=1e-6)
    assert vicreg_loss(z1, z2).item() == pytest.approx(lightly_loss("vicreg", z1, z2).item(), rel=1e-12)

    def eps_outside(z):
        return (z - z.mean(0)) / (z.std(0, unbiased=False) + 1e-5)

    c = eps_outside(z1).T @ eps_outside(z2) / len(z1)
    off = c - torch.diag(torch.diagonal(c))
    outside = (torch.diagonal(c) - 1).pow(2).sum() + 5e-3 * off.pow(2).sum()
    assert outside.item() != pytest.approx(lightly_loss("barlow", z1, z2).item(), rel=1e-9)
