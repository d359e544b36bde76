"""Influence on chosen modules, kronfluence module partitions, and the batch size chosen from max_memory."""

import numpy as np
import pytest

from sslaudit.errors import UserError
from sslaudit.methods.influence import InfluenceAnalyzer
from sslaudit.methods.influence.gradients import flatten, per_sample_gradients
from sslaudit.methods.influence.loss import AugmentationStability


def test_module_subset_has_the_full_models_factors_for_that_layer(tiny_encoder, augment, digits_x):
    x = digits_x[:40]
    full = InfluenceAnalyzer(tiny_encoder, augment, "ekfac").fit(x)
    sub = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", modules="trunk.net.2").fit(x)
    assert [layer.name for layer in sub.layers] == ["trunk.net.2"] and sub.n_parameters < full.n_parameters
    fa, sa = full.factor_arrays(), sub.factor_arrays()
    for k in ("qa", "qg", "eig"):  # EK-FAC is block-diagonal per layer: the same factors
        assert np.allclose(fa[f"1/{k}"], sa[f"0/{k}"], atol=1e-6)
    parted = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", module_partitions=2).fit(x)
    pa = parted.factor_arrays()
    assert all(np.allclose(fa[k], pa[k], atol=1e-6) for k in fa)


def test_identity_influence_of_a_module_is_its_gradient_norm(tiny_encoder, augment, digits_x):
    x = digits_x[:12]
    sub = InfluenceAnalyzer(tiny_encoder, augment, "identity", modules="trunk.net.0").fit(x)
    import torch

    loss = AugmentationStability(augment, sub.config.draws, sub.config.seed)
    g = flatten(per_sample_gradients(tiny_encoder, loss, torch.as_tensor(x), sub.layers), sub.layers)
    assert np.allclose(sub.self_influence(), g.detach().double().pow(2).sum(1).numpy(), rtol=1e-5)
    with pytest.raises(UserError, match="--modules: no Linear or Conv2d"):
        InfluenceAnalyzer(tiny_encoder, augment, "identity", modules="trunk.nope")


def test_max_memory_lowers_the_batch_and_keeps_the_scores(tiny_encoder, augment, digits_x):
    from sslaudit.compute.memory import rss_bytes

    x = digits_x[:40]
    ref = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", batch_size=64).fit(x)
    per = ref.memory_plan["bytes_per_example"]
    budget = rss_bytes() + (256 << 20) + 2 * ref.memory_plan["factor_bytes"] + 5 * per + (per // 2)
    small = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", batch_size=64, max_memory=str(budget)).fit(x)
    assert 1 <= small.config.batch_size < 64 and small.memory_plan["budget_from"] == "max_memory"
    assert np.allclose(small.self_influence(), ref.self_influence(), rtol=1e-4, atol=1e-7)
    with pytest.raises(UserError) as e:
        InfluenceAnalyzer(tiny_encoder, augment, "ekfac", max_memory="1MB").fit(x)
    assert "\n" not in str(e.value) and "--modules last-stage" in str(e.value) and "--max-memory" in str(e.value)
    with pytest.raises(UserError, match="memory size"):
        InfluenceAnalyzer(tiny_encoder, augment, "ekfac", max_memory="lots")


def test_the_plan_counts_the_whitened_queries(tiny_encoder, augment, digits_x):
    from sslaudit.compute.memory import rss_bytes

    x, xq = digits_x[:40], digits_x[40:46]
    ref = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", batch_size=8).fit(x)
    raw, norm = ref.pairwise(xq)
    plan = ref.memory_plan
    assert plan["held_rows"] == 6 and plan["held_bytes"] >= 6 * 4 * ref.n_parameters
    # a budget that holds the pass but not the queries' whitened gradients: refused in one line, before any work
    budget = rss_bytes() + (256 << 20) + 2 * plan["factor_bytes"] + 2 * plan["bytes_per_example"]
    tight = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", batch_size=8, max_memory=str(budget)).fit(x)
    many = np.repeat(xq, 400_000 // (4 * ref.n_parameters) + 50, axis=0)
    with pytest.raises(UserError) as e:
        tight.pairwise(many)
    assert "\n" not in str(e.value) and "whitened queries" in str(e.value) and "fewer queries" in str(e.value)
    raw2, norm2 = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", batch_size=8).fit(x).pairwise(xq)
    assert np.allclose(raw2, raw, rtol=1e-5, atol=1e-8) and np.allclose(norm2, norm, rtol=1e-5, atol=1e-8)
