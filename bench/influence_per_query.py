"""Influence on the planted Fashion-MNIST benchmark, scored per query, with stability across draws.

The planted set of bench/influence_planted.py (exact copies, near copies re-cropped to ~85% of the
area and darkened ×0.85, and OOD images) and the same encoder recipe. Reported, in one run:
- near copies per query: for each planted near copy, all other training images ranked by
  normalised EK-FAC influence (cosine of the sketched whitened gradients); recall@k and MRR of
  its source — against raw pixels (cosine), embedding cosine and gradient cosine (identity
  curvature, i.e. TracIn-style), ranked the same way. Exact copies only as a sanity check
  (identical gradients by construction);
- OOD AUROC of self-influence (and the k-NN embedding distance baseline);
- stability: self-influence Spearman and per-query top-10 overlap between two seeds (augmentation
  draws and projection) at K = 1, 2, 4 draws, and the near-copy MRR at each (K, seed); the
  recommended K is the smallest whose seed-to-seed self-influence Spearman reaches 0.9.

    flock /tmp/sslaudit-cpu.lock .venv/bin/python bench/influence_per_query.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402
from influence_planted import PLANTED, planted_run  # noqa: E402

KS = (1, 5, 10, 50)


def scored(run, strategy: str, draws: int, seed: int):
    """(self-influence, sketch) of every training row, from run_influence's cached stages."""
    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.runner import SCORES_FILE, run_influence

    t = time.perf_counter()
    res = run_influence(run, InfluenceConfig(strategy=strategy, draws=draws, seed=seed, batch_size=64), pairs=10, check=0, neighbours=0)
    z = run.store.read_npz(SCORES_FILE)
    assert (res.self_influence["index"].to_numpy() == np.arange(len(z["self_influence"]))).all()
    return z["self_influence"], z["sketch"], res, time.perf_counter() - t


def per_query(z, queries, partners) -> dict:
    from sslaudit.methods.influence.duplicates import partner_ranks, retrieval_metrics

    return retrieval_metrics(partner_ranks(z, queries, partners), KS)


def topk_overlap(za, zb, k: int = 10) -> float:
    from sslaudit.methods.influence.duplicates import query_neighbours

    a, _ = query_neighbours(za, k)
    b, _ = query_neighbours(zb, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1000, 2 epochs, K ∈ {1, 2}")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draws-grid", default="1,2,4", help="K values of the stability study (comma-separated)")
    ap.add_argument("--result", default=None, help="name of the JSON in bench/results/ (default: influence_per_query[_quick])")
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary folder)")
    args = ap.parse_args()
    draws_grid = (1, 2) if args.quick else tuple(int(k) for k in args.draws_grid.split(","))
    if args.quick:
        args.n, args.epochs = 1000, 2
    torch.set_num_threads(args.threads)
    info = machine()
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from sslaudit.methods.influence.baselines import knn_distance
    from sslaudit.progress import set_enabled

    set_enabled(False)
    n_dup, n_near, n_ood = PLANTED
    tmp, truth, run, train_s = planted_run(args, "influence-per-query-")
    x = run.dataset.train.x.reshape(len(run.dataset.train), -1)
    emb = run.embeddings("train")
    near = sorted(truth["pairs_near"])
    exact = sorted(truth["pairs_exact"])
    near_src, near_copy = np.array([a for a, _ in near]), np.array([b for _, b in near])
    ex_src, ex_copy = np.array([a for a, _ in exact]), np.array([b for _, b in exact])
    is_ood = np.isin(np.arange(len(x)), truth["ood"])

    runs, timing = {}, {}
    for k in draws_grid:
        for seed in (0, 1):
            si, sk, _, secs = scored(run, "ekfac", k, seed)
            runs[(k, seed)] = (si, sk)
            timing[f"ekfac_K{k}_seed{seed}"] = secs
            print(f"ekfac K={k} seed={seed}: {secs:.0f} s", flush=True)
    k_main = 2 if 2 in draws_grid else draws_grid[-1]
    g_si, g_sk, _, secs = scored(run, "identity", k_main, 0)
    timing[f"identity_K{k_main}_seed0"] = secs
    si, sk = runs[(k_main, 0)]

    methods = {"influence_ekfac": sk, "gradient_cosine": g_sk, "embedding_cosine": emb, "pixels_cosine": x}
    near_tab = {m: per_query(z, near_copy, near_src) for m, z in methods.items()}
    exact_tab = {m: per_query(z, ex_copy, ex_src) for m, z in methods.items()}
    knn = knn_distance(emb, 10)
    ood = {"influence_ekfac": float(roc_auc_score(is_ood, si)), "gradient_norm_identity": float(roc_auc_score(is_ood, g_si)), "knn_embedding_distance": float(roc_auc_score(is_ood, knn))}
    for kind in ("inverted", "noise", "digits"):
        sel = truth["ood"][truth["ood_kind"] == kind]
        mask = ~is_ood | np.isin(np.arange(len(x)), sel)
        lab = np.isin(np.arange(len(x)), sel)[mask]
        ood[f"influence_ekfac_{kind}"] = float(roc_auc_score(lab, si[mask]))
        ood[f"knn_embedding_distance_{kind}"] = float(roc_auc_score(lab, knn[mask]))

    stability = []
    for k in draws_grid:
        (a_si, a_sk), (b_si, b_sk) = runs[(k, 0)], runs[(k, 1)]
        stability.append(
            {
                "draws": k,
                "self_influence_spearman": float(spearmanr(a_si, b_si).statistic),
                "top10_neighbour_overlap": topk_overlap(a_sk, b_sk, 10),
                "near_copy_mrr": [per_query(runs[(k, s)][1], near_copy, near_src)["mrr"] for s in (0, 1)],
                "near_copy_recall_at_10": [per_query(runs[(k, s)][1], near_copy, near_src)["recall_at_10"] for s in (0, 1)],
                "ood_auroc": [float(roc_auc_score(is_ood, runs[(k, s)][0])) for s in (0, 1)],
            }
        )
    ok = [r["draws"] for r in stability if r["self_influence_spearman"] >= 0.9]
    out = {
        "bench": "influence_per_query",
        "machine": info,
        "settings": {
            **vars(args),
            "draws_grid": list(draws_grid),
            "main_draws": k_main,
            "planted": {"exact_duplicates": n_dup, "near_duplicates": n_near, "ood": n_ood},
            "n_train": truth["n_train"],
            "arch": run.config["arch"],
            "objective": "simclr",
            "strategy": "ekfac",
        },
        "train_seconds": train_s,
        "influence_seconds": timing,
        "peak_rss_mb": peak_rss_mb(),
        "encoder_linear_probe": run.store.read_json("metrics.json").get("linear_probe_accuracy"),
        "near_copies_per_query": near_tab,
        "exact_copies_per_query_sanity": exact_tab,
        "ood_auroc": ood,
        "stability": stability,
        "recommended_draws": (min(ok) if ok else None),
        "recommended_draws_rule": "smallest K with seed-to-seed self-influence Spearman ≥ 0.9",
    }
    write(args.result or ("influence_per_query_quick" if args.quick else "influence_per_query"), out)
    for m, r in near_tab.items():
        print(f"{m:18s} near copies: recall@10 {r['recall_at_10']:.3f} MRR {r['mrr']:.3f} | exact: recall@1 {exact_tab[m]['recall_at_1']:.3f}")
    print(ood)
    for r in stability:
        print(r)


if __name__ == "__main__":
    main()
