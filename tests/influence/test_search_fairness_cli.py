"""Duplicate search, baselines, fairness statistics, fallback, bad input, CLI and removal."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sslaudit.errors import UserError
from sslaudit.methods.influence import InfluenceAnalyzer
from sslaudit.methods.influence.baselines import knn_distance
from sslaudit.methods.influence.duplicates import nearest_pairs, partner_ranks, query_neighbours, retrieval_metrics
from sslaudit.methods.influence.fairness import fairness_report, group_comparison
from sslaudit.experiments.removal import parse_fraction, removal_sets


def test_nearest_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 5)).astype(np.float32)
    df = nearest_pairs(z, neighbours=59)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    iu = np.triu_indices(60, 1)
    ref = (u @ u.T)[iu]
    assert len(df) == len(ref) and (df["i"] < df["j"]).all()
    assert not df.duplicated(["i", "j"]).any()
    np.testing.assert_allclose(df["score"].to_numpy()[:20], np.sort(ref)[::-1][:20], atol=1e-5)


def test_query_neighbours_and_partner_ranks_equal_brute_force():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 6)).astype(np.float32)
    z[7] = z[2]  # an exact copy: it must not push row 2 (or 7) out of its own list
    idx, sims = query_neighbours(z, 5)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    full = u @ u.T
    for i in range(40):
        assert i not in idx[i]
        others = np.delete(np.arange(40), i)
        np.testing.assert_allclose(sims[i], np.sort(full[i, others])[::-1][:5], atol=1e-5)
    assert idx[2][0] == 7 and idx[7][0] == 2
    q, p = np.arange(40), (np.arange(40) + 1) % 40
    ranks = partner_ranks(z, q, p)
    for i in range(40):
        others = np.delete(np.arange(40), [i, p[i]])
        assert ranks[i] == 1 + int((full[i, others] >= full[i, p[i]] - 1e-12).sum())


def test_per_query_recall_finds_planted_near_copies_a_global_ranking_misses():
    # Two tight "classes" of look-alikes whose pairs all score high, and three planted near copies
    # of other rows: each copy is its source's nearest neighbour, but globally the look-alike pairs
    # outrank every copy pair.
    rng = np.random.default_rng(4)
    a = np.array([10.0, 0, 0, 0, 0, 0]) + 0.01 * rng.normal(size=(30, 6))
    b = np.array([0, 10.0, 0, 0, 0, 0]) + 0.01 * rng.normal(size=(30, 6))
    spread = rng.normal(size=(20, 6))
    copies = spread[:3] + 0.15 * rng.normal(size=(3, 6))
    z = np.concatenate([a, b, spread, copies])
    src, cp = np.arange(60, 63), np.arange(80, 83)
    glob = nearest_pairs(z, neighbours=10).head(3)
    assert not {(int(i), int(j)) for i, j in zip(glob.i, glob.j)} & set(zip(src.tolist(), cp.tolist()))
    m = retrieval_metrics(partner_ranks(z, cp, src), ks=(1, 10))
    assert m["recall_at_1"] == 1.0 and m["mrr"] == 1.0 and m["n_queries"] == 3
    assert retrieval_metrics([1, 2, 4, 20], ks=(1, 10)) == pytest.approx({"n_queries": 4, "mrr": (1 + 0.5 + 0.25 + 0.05) / 4, "median_rank": 3.0, "recall_at_1": 0.25, "recall_at_10": 0.75})


def test_knn_distance_flags_an_outlier():
    rng = np.random.default_rng(1)
    e = np.abs(rng.normal(size=(50, 4))) + np.array([5, 0, 0, 0])
    e[10] = [0, 0, 0, 5]
    d = knn_distance(e, k=5)
    assert d.argmax() == 10


def test_sketched_duplicate_search_agrees_with_exact_pairwise(digits_x, tiny_encoder, augment):
    x = np.concatenate([digits_x[:80], digits_x[[3, 11]]])  # rows 80, 81 duplicate rows 3, 11
    ia = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", draws=2, batch_size=82, sketch_dim=384).fit(x)
    assert not ia.sketcher().exact  # 858 parameters projected to 384
    chk = ia.check_duplicates(sample=82, top=10)
    assert chk["exact_source"].startswith("kronfluence")
    assert chk["top10_overlap"] >= 0.8 and chk["spearman"] > 0.5, chk
    d = ia.duplicates(k=2)
    assert {(int(a), int(b)) for a, b in zip(d["i"], d["j"])} == {(3, 80), (11, 81)}
    ia.close()


class NoLayers(nn.Module):
    """An encoder with no nn.Linear / nn.Conv2d: a raw parameter matrix."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 5, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return torch.relu(x.flatten(1) @ self.w)


def test_no_supported_layer_falls_back_to_identity(digits_x, augment, capsys):
    from sslaudit.progress import SslauditWarning

    with pytest.warns(SslauditWarning, match="falling back"):  # a library warning (the CLI prints it as one line)
        ia = InfluenceAnalyzer(NoLayers(), augment, "ekfac", draws=2).fit(digits_x[:20])
    assert ia.strategy == "identity" and "falling back to the identity" in ia.fallback
    enc = ia.encoder
    g = []
    for i in range(20):
        enc.zero_grad()
        ia.loss(enc, torch.as_tensor(digits_x[i : i + 1])).sum().backward()
        g.append(enc.w.grad.flatten().clone())
    g = torch.stack(g).double()
    np.testing.assert_allclose(ia.self_influence(), (g * g).sum(1).numpy(), rtol=1e-4)


def test_group_comparison_matches_manual_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1, 40), rng.normal(0.0, 1, 60)
    res = group_comparison(np.concatenate([a, b]), ["F"] * 40 + ["M"] * 60, "sex")
    t = res["tests"][0]
    greater = (a[:, None] > b[None]).mean() - (a[:, None] < b[None]).mean()
    assert t["cliffs_delta"] == pytest.approx(greater, abs=1e-12)
    assert t["p_value"] < 0.01 and res["groups"]["F"]["n"] == 40
    three = group_comparison(np.concatenate([a, b]), ["x"] * 40 + ["y"] * 30 + ["z"] * 30, "race")
    assert len(three["tests"]) == 3 and "kruskal_wallis" in three and all("p_value_holm" in t for t in three["tests"])


def test_empty_group_and_bad_attribute_are_clear_errors():
    with pytest.raises(UserError, match="no examples"):
        group_comparison(np.arange(4.0), ["a", "a", "b", "b"], "sex", groups=["a", "c"])
    with pytest.raises(UserError, match="single group"):
        group_comparison(np.arange(4.0), ["a"] * 4, "sex")
    with pytest.raises(UserError, match="not columns"):
        fairness_report(np.arange(3.0), pd.DataFrame({"sex": ["a", "b", "a"]}), ["race"])


def test_removal_sets_and_fraction():
    assert parse_fraction("5%") == pytest.approx(0.05) and parse_fraction("0.1") == pytest.approx(0.1)
    with pytest.raises(UserError):
        parse_fraction("150%")
    idx = np.arange(100, 120)
    s = np.arange(20.0)
    sets = removal_sets(idx, s, 0.1, seed=0)
    assert sets["top"].tolist() == [118, 119] and sets["bottom"].tolist() == [100, 101] and len(sets["random"]) == 2


def test_cli_writes_contract_files_and_reuses_cache(tiny_run):
    import sslaudit
    from sslaudit.cli.main import main

    run = sslaudit.load(tiny_run)
    q = int(run.dataset.test.index[0])
    args = ["influence", str(tiny_run), "--subsample", "60", "--pairs", "5", "--queries", f"test:{q}", "--draws", "2", "--check", "20", "-q"]
    assert main(args) == 0
    d = tiny_run / "influence"
    si = pd.read_parquet(d / "self_influence.parquet")
    assert list(si.columns) == ["split", "index", "label", "score", "rank"] and len(si) == 60
    assert sorted(si["rank"]) == list(range(1, 61)) and set(si["index"]) <= set(run.dataset.train.index.tolist())
    du = pd.read_parquet(d / "duplicates.parquet")
    assert list(du.columns[:6]) == ["split", "index", "label", "train_index", "train_label", "score"] and (du["index"] < du["train_index"]).all() and len(du) == 5
    pw = pd.read_parquet(d / "pairwise.parquet")
    assert list(pw.columns) == ["split", "index", "label", "train_index", "train_label", "score", "score_normalised"] and len(pw) == 60
    assert json.loads((d / "fairness.json").read_text())["attributes"] == []
    nb = pd.read_parquet(d / "neighbours.parquet")
    assert list(nb.columns) == ["split", "index", "label", "rank", "train_index", "train_label", "score"] and len(nb) == 60 * 5
    assert (nb["index"] != nb["train_index"]).all() and set(nb["train_index"]) <= set(si["index"])
    summary = json.loads((d / "summary.json").read_text())
    assert summary["strategy_used"] == "ekfac" and summary["duplicate_check"]["sample"] == 20
    assert main(args) == 0  # the same command again: the stored results are reused as they are
    assert json.loads((d / "summary.json").read_text()) == summary
    assert main([*args[:5], "4", *args[6:]]) == 0  # other --pairs: factors and scores come from the cache
    assert json.loads((d / "summary.json").read_text())["timings"]["scores_seconds"] < summary["timings"]["scores_seconds"]
    np.testing.assert_array_equal(pd.read_parquet(d / "self_influence.parquet")["score"], si["score"])


def test_cli_bad_query_is_a_one_line_error(tiny_run, capsys):
    from sslaudit.cli.main import main

    assert main(["influence", str(tiny_run), "--queries", "test:999999", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: test:999999 is not in the data") and "Traceback" not in err


def test_removal_experiment_end_to_end(tiny_run):
    import sslaudit
    from sslaudit.experiments.removal import removal_experiment

    run = sslaudit.load(tiny_run)
    idx = run.dataset.train.index
    score = np.random.default_rng(0).random(len(idx))  # any scores: the mechanics are tested here
    out = removal_experiment(run, idx, score, 0.05, arms=("top", "random"))
    assert set(out["arms"]) == {"top", "random"} and out["removed"] == round(0.05 * len(idx))
    for arm in out["arms"].values():
        assert arm["n_train"] == len(idx) - out["removed"] and 0 < arm["linear_probe_accuracy"] <= 1


def test_paired_difference_matches_scipy_and_rejects_bad_input():
    from scipy import stats

    from sslaudit.experiments.removal import paired_difference

    rng = np.random.default_rng(0)
    b = rng.normal(0.9, 0.01, 12)
    a = b + rng.normal(0.004, 0.003, 12)
    out = paired_difference(a, b)
    d = a - b
    half = stats.t.ppf(0.975, 11) * d.std(ddof=1) / np.sqrt(12)
    np.testing.assert_allclose(out["ci"], [d.mean() - half, d.mean() + half])
    assert out["ci"][0] > 0  # a true +0.4-point shift with 0.3-point noise is detected by 12 pairs
    np.testing.assert_allclose(out["t_test_p"], stats.ttest_rel(a, b).pvalue)
    np.testing.assert_allclose(out["wilcoxon_p"], stats.wilcoxon(d).pvalue)
    # 80% power at α = 0.05: a shift of exactly `detectable_80` is rejected in ~80% of simulated studies
    shift, sd = out["detectable_80"], d.std(ddof=1)
    hits = [stats.ttest_1samp(rng.normal(shift, sd, 12), 0).pvalue < 0.05 for _ in range(4000)]
    assert 0.75 < np.mean(hits) < 0.85
    with pytest.raises(UserError, match="equally long"):
        paired_difference(a, b[:5])


def test_removal_with_a_retraining_seed(tiny_run):
    import sslaudit
    from sslaudit.experiments.removal import removal_experiment, removal_sets

    run = sslaudit.load(tiny_run)
    idx = run.dataset.train.index
    score = np.arange(len(idx), dtype=float)
    out = removal_experiment(run, idx, score, 0.05, arms=("top", "random"), seed=7, full=False)
    assert out["train_config"]["seed"] == 7 and "full" not in out
    assert out["arms"]["random"]["removed_index"] == removal_sets(idx, score, 0.05, 7)["random"].tolist()
    assert "/top-s7-" in out["arms"]["top"]["run"]
    assert sslaudit.load(out["arms"]["top"]["run"]).config["train"]["seed"] == 7
    with pytest.raises(UserError, match="removal arms"):
        removal_experiment(run, idx, score, 0.05, arms=("middle",))


def test_exact_rescoring_of_duplicates_fits_the_memory_budget(digits_x, tiny_encoder, augment, monkeypatch):
    """The candidates' whitened gradients are held for the exact rescoring: past the budget only the
    best candidates (by sketch score) whose rows fit are rescored, with a warning; their scores are the
    unconstrained ones, and pair_scores' chunked products equal the dense whitened-gradient products."""
    from sslaudit.methods.influence import analyzer
    from sslaudit.progress import SslauditWarning

    x = np.concatenate([digits_x[:80], digits_x[[3, 11]]])
    ia = InfluenceAnalyzer(tiny_encoder, augment, "ekfac", draws=2, batch_size=82, sketch_dim=384).fit(x)
    full = ia.duplicates(k=20)
    i, j = full["i"].to_numpy(), full["j"].to_numpy()
    w = ia.whiten(x).double()
    dense = (w[i] * w[j]).sum(1) / (w[i].pow(2).sum(1) * w[j].pow(2).sum(1)).sqrt()
    np.testing.assert_allclose(full["score"], dense.numpy(), rtol=1e-10)
    np.testing.assert_allclose(full["score_raw"], (w[i] * w[j]).sum(1).numpy(), rtol=1e-10)
    room = (6 * 4 + ia.config.batch_size * 3 * 4) * ia.n_parameters  # room for the whitened gradients of 6 examples beside a batch
    monkeypatch.setattr(analyzer, "in_use_bytes", lambda: 0)
    ia.config.max_memory = (256 << 20) + room
    with pytest.warns(SslauditWarning, match="candidate pairs rescored exactly"):
        small = ia.duplicates(k=20)
    assert 0 < len(small) < len(full) and len(set(small["i"]) | set(small["j"])) <= 6
    both = small.merge(full, on=["i", "j"], suffixes=("", "_full"))
    assert len(both) == len(small)
    np.testing.assert_allclose(both["score"], both["score_full"], rtol=1e-12)
    ia.close()
