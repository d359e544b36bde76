"""The Q-Score regulariser: value on a hand example, differentiability, use as extra_loss."""

import math

import numpy as np
import pytest
import torch

from sslaudit.errors import UserError
from sslaudit.methods.qscore import QScoreRegularizer, batch_qscore, qscore_v6


def test_value_by_hand_zscore_form():
    # row 0 [0,0,0,4]: Q = √3. row 1 [1,0,0,4]: μ = 1.25, σ = √(10.75/4), L = {3} → Q = 2.75/σ < √3.
    # α = mean Q → low set = {row 1}. Column ℓ1 norms [1, 0, 0, 8], β = 2.25 → only column 3: 8 / B(2) = 4.
    h = torch.tensor([[0, 0, 0, 4.0], [1, 0, 0, 4]], dtype=torch.float64)
    q1 = 2.75 / math.sqrt(10.75 / 4)
    reg = QScoreRegularizer(np.ones(4, bool), epsilon=1.0, lambda1=1.0, lambda2=1.0, form="zscore")
    assert batch_qscore(h, torch.ones(4, dtype=torch.bool), 1.0, "zscore").tolist() == pytest.approx([math.sqrt(3), q1])
    assert float(reg.value(h)) == pytest.approx(-q1 + 4.0)
    assert reg.last == pytest.approx({"low_q_term": q1, "dense_mass": 4.0})
    reg2 = QScoreRegularizer(np.ones(4, bool), epsilon=1.0, lambda1=1e-4, lambda2=2e-4, form="zscore")
    assert float(reg2.value(h)) == pytest.approx(-1e-4 * q1 + 2e-4 * 4.0)


def test_value_by_hand_paper_form_sums_the_low_q_samples():
    # Paper form Q = mean_{L∩D}(h − μ). rows: [0,0,0,4] → μ 1, L {3}, Q 3; [1,0,0,4] → μ 1.25, Q 2.75;
    # [0,0,0,2] → μ 0.5, Q 1.5. α = 7.25/3 → low set {row 2}... and row 1? 2.75 > 2.4167, so only row 2.
    # Add [0,0,0,2.2]: μ 0.55, Q 1.65. α = (3+2.75+1.5+1.65)/4 = 2.225 → low = rows 2, 3: sum 3.15, mean 1.575.
    h = torch.tensor([[0, 0, 0, 4.0], [1, 0, 0, 4], [0, 0, 0, 2], [0, 0, 0, 2.2]], dtype=torch.float64)
    assert batch_qscore(h, torch.ones(4, dtype=torch.bool), 1.0).tolist() == pytest.approx([3.0, 2.75, 1.5, 1.65])
    # column ℓ1 norms [1, 0, 0, 12.2], β = 3.3 → only column 3: 12.2 / 4 = 3.05
    assert QScoreRegularizer(np.ones(4, bool), epsilon=1.0).low_q == "mean"  # the spec's formula is the default
    summed = QScoreRegularizer(np.ones(4, bool), epsilon=1.0, lambda1=1.0, lambda2=1.0, low_q="sum")
    assert summed.form == "paper" and summed.low_q == "sum"
    assert float(summed.value(h)) == pytest.approx(-3.15 + 3.05)
    assert summed.last == pytest.approx({"low_q_term": 3.15, "dense_mass": 3.05})
    mean = QScoreRegularizer(np.ones(4, bool), epsilon=1.0, lambda1=1.0, lambda2=1.0, low_q="mean")
    assert float(mean.value(h)) == pytest.approx(-1.575 + 3.05)
    with pytest.raises(UserError):
        QScoreRegularizer(np.ones(4, bool), epsilon=1.0, low_q="median")


def test_batch_qscore_equals_numpy_v6():
    rng = np.random.default_rng(0)
    h = np.maximum(rng.normal(size=(64, 32)), 0)
    disc = rng.random(32) < 0.6
    for form in ("paper", "zscore"):
        ref, _ = qscore_v6(h, disc, 1.0, form)
        got = batch_qscore(torch.tensor(h), torch.tensor(disc), 1.0, form)
        assert got.numpy() == pytest.approx(ref)


def test_differentiable_and_matches_finite_differences():
    rng = np.random.default_rng(1)
    h = torch.tensor(np.abs(rng.normal(size=(16, 12))) + 0.1, dtype=torch.float64, requires_grad=True)
    reg = QScoreRegularizer(rng.random(12) < 0.7, epsilon=1.0, lambda1=1.0, lambda2=1.0)
    v = reg.value(h)
    v.backward()
    assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    # masks are piecewise constant; a small step keeps them, so autograd = finite differences
    assert torch.autograd.gradcheck(lambda x: reg.value(x), (h.detach().clone().requires_grad_(True),), eps=1e-7, atol=1e-5)


def test_extra_loss_on_a_method_reaches_the_encoder():
    from sslaudit.models.encoders import default_arch
    from sslaudit.models.methods import build_method

    torch.manual_seed(0)
    m = build_method("simclr", default_arch("tabular", (10,)))
    reg = QScoreRegularizer(np.arange(256) % 2 == 0, epsilon=1.0, lambda1=1.0, lambda2=1.0)
    views = [torch.randn(8, 10), torch.randn(8, 10)]
    loss = reg(m, views)
    loss.backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert loss.ndim == 0 and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert reg.config["qscore_reg"] == [1.0, 1.0]


def test_bad_settings():
    with pytest.raises(UserError, match="≥ 0"):
        QScoreRegularizer(np.ones(4, bool), 1.0, lambda1=-1)
    with pytest.raises(UserError, match="same architecture"):
        QScoreRegularizer(np.ones(4, bool), 1.0).value(torch.ones(2, 5))


def test_zero_weights_leave_training_bit_identical(digits_run, tmp_path):
    """The extra forward pass must not touch BatchNorm running statistics: λ = 0 ≡ no regulariser."""
    import sslaudit
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    base = sslaudit.load(digits_run)
    d = base.encoder.out_dim
    reg = QScoreRegularizer(np.arange(d) % 2 == 0, epsilon=1.0, lambda1=0.0, lambda2=0.0)
    cfg = TrainConfig(**{**base.config["train"]})
    out = train_run(data_config("digits"), cfg, tmp_path / "zero", extra_loss=reg)
    a, b = base.method.state_dict(), sslaudit.load(out).method.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_batchnorm_keeps_running_stats():
    from sslaudit.methods.qscore.regularizer import frozen_batchnorm_stats

    bn = torch.nn.BatchNorm1d(3).train()
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    with frozen_batchnorm_stats(bn):
        y = bn(torch.randn(8, 3) * 5 + 2)
    assert y.mean(0).abs().max() < 1e-5  # still normalised with the batch statistics
    assert all(torch.equal(x, z) for x, z in zip(before, (bn.running_mean, bn.running_var, bn.num_batches_tracked)))
    assert bn.momentum == 0.1
