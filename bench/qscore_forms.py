"""Q-Score's two v6 forms (the paper's unnormalised default, our z-scored option) on trained runs.

For each given run (the default 10-epoch Fashion-MNIST SimCLR ConvNet that `sslaudit audit` uses,
a 15-epoch SimCLR Adult MLP): fit Q-Score (ε auto, D = percentiles 50–95) on the training
representation, train the linear probe, and report for the test split AUPRC (positive = probe
correct) and AUROC of both forms beside the prevalence and the label-free baselines (embedding
norm, mean and max activation); the within-class view (AUROC inside each true class, averaged;
per-class mean Q and accuracy); and, as a labelled diagnostic, each form at every fixed ε.
Writes bench/results/qscore_forms.json. The runs are read, and their embedding cache written —
pass copies, never a shared run.

    flock /tmp/sslaudit-cpu.lock .venv/bin/python bench/qscore_forms.py --run fashion-mnist=RUN1 --run adult=RUN2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402

os.environ.setdefault("SSLAUDIT_DATA", "/work/shared/data")


def one(name: str, path: str, seed: int, max_probe_train: int) -> dict:
    import sslaudit
    from sslaudit.methods.qscore import QScore, baseline_scores, per_class, probe_correct, score_metrics

    t0 = time.perf_counter()
    run = sslaudit.load(path)
    htr, hte = run.embeddings("train"), run.embeddings("test")
    ds = run.dataset
    qs = QScore().fit(htr)
    sc = qs.score(hte)
    hp_tr, hp_te = qs.prepare(htr), qs.prepare(hte)
    correct, acc = probe_correct(hp_tr, ds.train.y, hp_te, ds.test.y, seed=seed, max_train=max_probe_train)
    scores = {"qscore_paper": sc.qscore_paper, "qscore_zscore": sc.qscore_zscore, "qscore_v1": sc.qscore_v1, **baseline_scores(hp_te)}
    metrics = {k: score_metrics(v, correct) for k, v in scores.items()}
    views = {k: per_class(v, correct, ds.test.y) for k, v in scores.items()}
    by_eps = []
    for eps in (4.0, 3.0, 2.0, 1.0):
        q = QScore(epsilon=eps).fit(htr)
        s = q.score(hte)
        by_eps.append(
            {
                "epsilon": eps,
                "test_empty_share": s.empty_share,
                "n_discriminative": int(q.discriminative.sum()),
                "paper": score_metrics(s.qscore_paper, correct),
                "zscore": score_metrics(s.qscore_zscore, correct),
            }
        )
    summ = qs.summary()
    return {
        "dataset": name,
        "run": str(path),
        "train": run.config.get("train"),
        "n_train": int(len(htr)),
        "n_test": int(len(hte)),
        "d": int(htr.shape[1]),
        "probe_accuracy": acc,
        "prevalence": float(correct.mean()),
        "epsilon": summ["epsilon"],
        "epsilon_candidates": summ["epsilon_candidates"],
        "n_discriminative": summ["n_discriminative"],
        "test_empty_share": sc.empty_share,
        "metrics": metrics,
        "within_class_auroc": {k: v["within_class_auroc"] for k, v in views.items()},
        "per_class": {k: views[k]["classes"] for k in ("qscore_paper", "qscore_zscore", "embedding_norm")},
        "by_epsilon": by_eps,
        "seconds": time.perf_counter() - t0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-probe-train", type=int, default=20_000)
    ap.add_argument("--out", default="qscore_forms")
    a = ap.parse_args()
    import torch

    from sslaudit.progress import set_enabled

    set_enabled(False)
    torch.set_num_threads(1)
    rows = []
    for spec in a.run:
        name, path = spec.split("=", 1)
        r = one(name, path, a.seed, a.max_probe_train)
        rows.append(r)
        m = r["metrics"]
        print(
            f"{name:14s} prev {r['prevalence']:.3f} ε {r['epsilon']:g} | paper {m['qscore_paper']['auprc']:.3f}/{m['qscore_paper']['auroc']:.3f} "
            f"z {m['qscore_zscore']['auprc']:.3f}/{m['qscore_zscore']['auroc']:.3f} norm {m['embedding_norm']['auprc']:.3f}/{m['embedding_norm']['auroc']:.3f} "
            f"mean {m['mean_activation']['auprc']:.3f}/{m['mean_activation']['auroc']:.3f} | within paper {r['within_class_auroc']['qscore_paper']:.3f}",
            flush=True,
        )
    write(a.out, {"bench": "qscore_forms", "machine": machine(), "seed": a.seed, "max_probe_train": a.max_probe_train, "qscore": {"epsilon": "auto", "percentiles": [50, 95]}, "rows": rows})


if __name__ == "__main__":
    main()
