"""Q-Score vs label-free baselines for four SSL objectives on Fashion-MNIST and Adult.

For each (dataset, objective): train an encoder with `train_run` (few epochs; Fashion-MNIST on a
seeded training subset), fit Q-Score (ε auto, D from percentiles 50–95) on the training
representation, train a linear probe, and score the test samples: AUPRC (positive = probe
correct) and AUROC of Q-Score, its v1 variant, the embedding norm and the largest activation,
beside the prevalence. Also the compression curve (probe accuracy keeping the top-ranked
features vs random features). Writes bench/results/qscore.json.

    .venv/bin/python bench/qscore_table.py [--quick] [--full]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from qscore_common import RUNS, embeddings, load_subset, machine, stamp, train  # noqa: E402

OBJECTIVES = ("simclr", "byol", "vicreg", "barlow")
SETTINGS = {
    "quick": {"fashion-mnist": {"n_train": 2000, "n_test": 2000, "epochs": 2}, "adult": {"n_train": 8000, "n_test": 4000, "epochs": 2}},
    "default": {"fashion-mnist": {"n_train": 5000, "n_test": 5000, "epochs": 4}, "adult": {"n_train": None, "n_test": None, "epochs": 5}},
    "full": {"fashion-mnist": {"n_train": None, "n_test": None, "epochs": 15}, "adult": {"n_train": None, "n_test": None, "epochs": 15}},
}


def within_class(y, correct, scores: dict) -> dict:
    """Diagnostic: AUROC within each true class (classes with both outcomes), averaged.

    Separates "the score ranks samples of a class" from "the score differs between easy and
    hard classes" (a between-class confound can push the pooled AUROC either way).
    """
    from sklearn.metrics import roc_auc_score

    out = {}
    for k, s in scores.items():
        vals = [roc_auc_score(correct[y == c], s[y == c]) for c in np.unique(y) if 0 < correct[y == c].mean() < 1]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def one(name: str, objective: str, s: dict, seed: int) -> dict:
    from sslaudit.methods.qscore import QScore, baseline_scores, compression_curve, evaluate_scores, probe_correct

    ds = load_subset(name, s["n_train"], s["n_test"], seed)
    run_dir, train_s = train(ds, name, objective, s["epochs"], RUNS / f"{name}-{objective}-n{s['n_train']}-e{s['epochs']}-s{seed}", seed=seed)
    htr, hte = embeddings(run_dir, ds)
    t = time.perf_counter()
    qs = QScore().fit(htr)
    sc = qs.score(hte)
    qscore_s = time.perf_counter() - t
    t = time.perf_counter()
    correct, acc = probe_correct(htr, ds.train.y, hte, ds.test.y, seed=seed)
    probe_s = time.perf_counter() - t
    ev = evaluate_scores({"qscore": sc.qscore, "qscore_v1": sc.qscore_v1}, baseline_scores(hte), correct)
    by_eps = []  # diagnostic (uses labels): how the label-free ε choice compares with the others
    for eps in (4.0, 3.0, 2.0, 1.0):
        q_e = QScore(epsilon=eps).fit(htr)
        s_e = q_e.score(hte)
        m = evaluate_scores({"qscore": s_e.qscore}, {}, correct)
        by_eps.append({"epsilon": eps, "auprc": m["auprc"], "auroc": m["auroc"], "test_empty_share": s_e.empty_share, "n_discriminative": int(q_e.discriminative.sum())})
    within = within_class(ds.test.y, correct, {"qscore": sc.qscore, **baseline_scores(hte)})
    comp = compression_curve(htr, ds.train.y, hte, ds.test.y, rates=qs.activation_rate, discriminative=qs.discriminative, band=qs.fit_.band, seed=seed)
    summ = qs.summary()
    return {
        "dataset": name,
        "objective": objective,
        "n_train": len(ds.train),
        "n_test": len(ds.test),
        "epochs": s["epochs"],
        "train_seconds": train_s,
        "qscore_seconds": qscore_s,
        "probe_seconds": probe_s,
        "probe_accuracy": acc,
        "epsilon": summ["epsilon"],
        "epsilon_met_target": summ["epsilon_met_target"],
        "epsilon_candidates": summ["epsilon_candidates"],
        "n_features": summ["n_features"],
        "n_discriminative": summ["n_discriminative"],
        "train_empty_share": summ["train_empty_share"],
        "test_empty_share": sc.empty_share,
        **ev,
        "by_epsilon": by_eps,
        "within_class_auroc": within,
        "compression": {
            "curve": comp.curve,
            "full_accuracy": comp.full_accuracy,
            "discriminative_accuracy": comp.discriminative_accuracy,
            "droppable_fraction": comp.droppable_fraction,
            "tolerance": comp.tolerance,
        },
    }


def diagnostics(name: str, objective: str, s: dict, seed: int) -> dict:
    from sslaudit.methods.qscore import QScore, baseline_scores, evaluate_scores, probe_correct

    ds = load_subset(name, s["n_train"], s["n_test"], seed)
    run_dir, _ = train(ds, name, objective, s["epochs"], RUNS / f"{name}-{objective}-n{s['n_train']}-e{s['epochs']}-s{seed}", seed=seed)  # cached
    htr, hte = embeddings(run_dir, ds)
    correct, _ = probe_correct(htr, ds.train.y, hte, ds.test.y, seed=seed)
    sc = QScore().fit(htr).score(hte)
    by_eps = []
    for eps in (4.0, 3.0, 2.0, 1.0):
        q_e = QScore(epsilon=eps).fit(htr)
        s_e = q_e.score(hte)
        m = evaluate_scores({"qscore": s_e.qscore}, {}, correct)
        by_eps.append({"epsilon": eps, "auprc": m["auprc"], "auroc": m["auroc"], "test_empty_share": s_e.empty_share, "n_discriminative": int(q_e.discriminative.sum())})
    return {"by_epsilon": by_eps, "within_class_auroc": within_class(ds.test.y, correct, {"qscore": sc.qscore, **baseline_scores(hte)})}


def add_diagnostics(out: Path) -> None:
    from sslaudit.progress import set_enabled

    set_enabled(False)
    result = json.loads(out.read_text())
    for row in result["rows"]:
        if "within_class_auroc" in row and "by_epsilon" in row:
            continue
        row.update(diagnostics(row["dataset"], row["objective"], result["settings"][row["dataset"]], result["seed"]))
        print(row["dataset"], row["objective"], row["within_class_auroc"], flush=True)
    result["diagnostics_pass"] = stamp()
    out.write_text(json.dumps(result, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small subsets and 2 epochs (smoke test)")
    ap.add_argument("--full", action="store_true", help="full splits and 15 epochs (hours on a CPU)")
    ap.add_argument("--datasets", default="fashion-mnist,adult")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "qscore.json"))
    ap.add_argument("--diagnostics-only", action="store_true", help="recompute only the label-using diagnostics (per-ε and within-class AUROC) of the rows already in --out, from their cached runs")
    a = ap.parse_args()
    import torch

    if a.diagnostics_only:
        return add_diagnostics(Path(a.out))

    from sslaudit.progress import set_enabled

    set_enabled(False)
    torch.set_num_threads(1)
    mode = "quick" if a.quick else "full" if a.full else "default"
    result = {
        "bench": "qscore_table",
        "machine": machine(),
        "start": stamp(),
        "mode": mode,
        "settings": SETTINGS[mode],
        "seed": a.seed,
        "qscore": {"epsilon": "auto (largest of 4,3,2,1 with ≥ 90% non-empty L∩D on train)", "percentiles": [50, 95]},
        "rows": [],
    }
    for name in a.datasets.split(","):
        for obj in a.objectives.split(","):
            row = one(name, obj, SETTINGS[mode][name], a.seed)
            result["rows"].append(row)
            print(
                f"{name:14s} {obj:7s} acc {row['probe_accuracy']:.4f} prev {row['prevalence']:.4f} | Q AUPRC {row['auprc']:.4f} AUROC {row['auroc']:.4f} | "
                f"norm {row['baselines']['embedding_norm']['auroc']:.4f} max {row['baselines']['max_activation']['auroc']:.4f} | ε {row['epsilon']:g} empty {row['test_empty_share']:.3f} "
                f"| drop {row['compression']['droppable_fraction']:.2f} ({row['train_seconds']:.0f}s train)",
                flush=True,
            )
            result["end"] = stamp()
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
