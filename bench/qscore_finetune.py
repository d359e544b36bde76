"""Q-Score-regularised fine-tuning vs the same fine-tuning without the regulariser (the fair control).

Base: the Fashion-MNIST SimCLR encoder of bench/qscore_table.py (same subset, epochs, seed).
Each arm fine-tunes it for the same epochs with the same seed, data, augmentations and lr
schedule (`train_run(..., init=BASE, extra_loss=...)`); only the extra loss differs:
none, the Q-Score regulariser with the default weights λ1 = λ2 = 1e-4, and (exploratory) 1e-2.
ε and the discriminative features D are fixed from the base run. Reported: linear-probe accuracy
(same probe, same data) before and after, and Q-Score's AUPRC/AUROC after. Writes
bench/results/qscore_finetune.json.

    .venv/bin/python bench/qscore_finetune.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from qscore_common import RUNS, embeddings, load_subset, machine, stamp, train  # noqa: E402


def measure(run_dir, ds, seed) -> dict:
    from sslaudit.methods.qscore import QScore, baseline_scores, evaluate_scores, probe_correct

    htr, hte = embeddings(run_dir, ds)
    correct, acc = probe_correct(htr, ds.train.y, hte, ds.test.y, seed=seed)
    qs = QScore().fit(htr)
    sc = qs.score(hte)
    ev = evaluate_scores({"qscore": sc.qscore}, baseline_scores(hte), correct)
    return {
        "probe_accuracy": acc,
        "qscore_auprc": ev["auprc"],
        "qscore_auroc": ev["auroc"],
        "prevalence": ev["prevalence"],
        "epsilon": qs.epsilon,
        "n_discriminative": int(qs.discriminative.sum()),
        "mean_test_qscore": float(sc.qscore.mean()),
        "test_empty_share": sc.empty_share,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2000 samples, 2+1 epochs, one seed")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs [2]")
    ap.add_argument("--seeds", default=None, help="fine-tuning seeds [0,1]")
    ap.add_argument("--weights", default="1e-4,1e-2", help="regulariser weights λ (λ1 = λ2) to try")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "qscore_finetune.json"))
    a = ap.parse_args()
    import torch

    from sslaudit.methods.qscore import QScore, QScoreRegularizer
    from sslaudit.progress import set_enabled

    set_enabled(False)
    torch.set_num_threads(1)
    base_s = {"n_train": 2000, "n_test": 2000, "epochs": 2} if a.quick else {"n_train": 5000, "n_test": 5000, "epochs": 4}
    ft_epochs = a.epochs or (1 if a.quick else 2)
    seeds = [int(s) for s in (a.seeds or ("0" if a.quick else "0,1")).split(",")]
    weights = [float(w) for w in a.weights.split(",")]
    name = "fashion-mnist"
    ds = load_subset(name, base_s["n_train"], base_s["n_test"], 0)
    base_dir, _ = train(ds, name, "simclr", base_s["epochs"], RUNS / f"{name}-simclr-n{base_s['n_train']}-e{base_s['epochs']}-s0", seed=0)
    htr, _ = embeddings(base_dir, ds)
    qs = QScore().fit(htr)
    result = {
        "bench": "qscore_finetune",
        "machine": machine(),
        "start": stamp(),
        "base": {**base_s, "objective": "simclr", "dataset": name, **measure(base_dir, ds, 0)},
        "fine_tune_epochs": ft_epochs,
        "seeds": seeds,
        "weights": weights,
        "epsilon": qs.epsilon,
        "n_discriminative": int(qs.discriminative.sum()),
        "arms": [],
    }
    print(f"base: acc {result['base']['probe_accuracy']:.4f}", flush=True)
    for seed in seeds:
        for lam in [0.0] + weights:
            reg = None if lam == 0 else QScoreRegularizer(qs.discriminative, qs.epsilon, lam, lam)
            out = RUNS / f"ft-{name}-simclr-e{ft_epochs}-lam{lam:g}-s{seed}-n{base_s['n_train']}"
            run_dir, secs = train(ds, name, "simclr", ft_epochs, out, seed=seed, init=base_dir, extra_loss=reg)
            row = {"seed": seed, "lambda": lam, "seconds": secs, **measure(run_dir, ds, 0)}
            result["arms"].append(row)
            print(f"seed {seed} λ {lam:g}: acc {row['probe_accuracy']:.4f} Q AUROC {row['qscore_auroc']:.4f} ({secs:.0f}s)", flush=True)
            result["end"] = stamp()
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(result, indent=1))
    summary = {}
    for lam in [0.0] + weights:
        accs = [r["probe_accuracy"] for r in result["arms"] if r["lambda"] == lam]
        summary[f"{lam:g}"] = {"mean_accuracy": float(np.mean(accs)), "accuracies": accs}
    ctrl = summary["0"]["mean_accuracy"]
    for lam, s in summary.items():
        s["delta_vs_control_points"] = 100 * (s["mean_accuracy"] - ctrl)
        s["delta_vs_base_points"] = 100 * (s["mean_accuracy"] - result["base"]["probe_accuracy"])
    result["summary"] = summary
    result["end"] = stamp()
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
