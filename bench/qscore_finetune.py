"""Q-Score-regularised fine-tuning vs the same fine-tuning without the regulariser (the fair control).

Base: the Fashion-MNIST SimCLR encoder of bench/qscore_table.py (same subset, epochs, seed).
Each arm fine-tunes it for the same epochs with the same seed, data, augmentations and lr
schedule (`train_run(..., init=BASE, extra_loss=...)`); only the extra loss differs: none (the
control), or the Q-Score regulariser in the paper's (unnormalised v6) form with λ1 = λ2 = 1e-4, its
low-Q term a mean over the low-Q samples (the spec's transcription) or a sum (issue 19's, ≈ B/2×
stronger). ε and the discriminative features D are fixed from the base run. Issue 19 asked for a
budget that can show an effect: 5 fine-tuning epochs (was 2; the paper: 50 on ImageNet, out of a
two-core budget) and 2 seeds, every regularised arm paired with its seed's control. Reported: linear-probe accuracy (same
probe, same data) before and after, the paired difference to the control with its spread over
seeds, Q-Score's AUPRC/AUROC after beside the label-free baselines. Writes
bench/results/qscore_finetune.json.

    .venv/bin/python bench/qscore_finetune.py [--quick] [--epochs 5] [--seeds 0,1] [--low-q mean,sum]
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
    base = {k: {"auroc": v["auroc"], "auprc": v["auprc"]} for k, v in ev["baselines"].items() if k in ("embedding_norm", "mean_activation")}
    return {
        "probe_accuracy": acc,
        "qscore_auprc": ev["auprc"],
        "qscore_auroc": ev["auroc"],
        "prevalence": ev["prevalence"],
        "epsilon": qs.epsilon,
        "n_discriminative": int(qs.discriminative.sum()),
        "mean_test_qscore": float(sc.qscore.mean()),
        "test_empty_share": sc.empty_share,
        "baselines": base,
    }


def summarise(rows: list[dict], arms: list[tuple[str, float]], base_accuracy: float) -> dict:
    """Per arm: mean accuracy, and the paired (same seed) difference to the control in points."""
    control = {r["seed"]: r["probe_accuracy"] for r in rows if r["arm"] == "control"}
    summary = {}
    for low_q, lam in arms:
        mine = [r for r in rows if r["arm"] == low_q and r["lambda"] == lam]
        accs = [r["probe_accuracy"] for r in mine]
        diffs = [100 * (r["probe_accuracy"] - control[r["seed"]]) for r in mine if r["seed"] in control]
        summary[f"{low_q} {lam:g}"] = {
            "mean_accuracy": float(np.mean(accs)),
            "accuracies": accs,
            "delta_vs_base_points": 100 * (float(np.mean(accs)) - base_accuracy),
            "paired_delta_vs_control_points": diffs,
            "mean_paired_delta_points": float(np.mean(diffs)) if diffs else None,
            "sd_paired_delta_points": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None,
            "mean_qscore_auroc": float(np.mean([r["qscore_auroc"] for r in mine])),
            "mean_qscore_auprc": float(np.mean([r["qscore_auprc"] for r in mine])),
        }
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2000 samples, 2+1 epochs, one seed")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs [5; 1 with --quick]")
    ap.add_argument("--seeds", default=None, help="fine-tuning seeds [0,1; 0 with --quick]")
    ap.add_argument("--weights", default="1e-4", help="regulariser weights λ (λ1 = λ2) to try [1e-4, the spec's default]")
    ap.add_argument("--low-q", default="mean,sum", help="low-Q reductions to try: mean (the spec) and/or sum (issue 19's transcription)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "qscore_finetune.json"))
    a = ap.parse_args()
    import torch

    from sslaudit.methods.qscore import QScore, QScoreRegularizer
    from sslaudit.progress import set_enabled

    set_enabled(False)
    torch.set_num_threads(1)
    base_s = {"n_train": 2000, "n_test": 2000, "epochs": 2} if a.quick else {"n_train": 5000, "n_test": 5000, "epochs": 4}
    ft_epochs = a.epochs or (1 if a.quick else 5)
    seeds = [int(s) for s in (a.seeds or ("0" if a.quick else "0,1")).split(",")]
    weights = [float(w) for w in a.weights.split(",")]
    reductions = [r.strip() for r in a.low_q.split(",") if r.strip()]
    arms = [("control", 0.0)] + [(r, w) for r in reductions for w in weights]
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
        "low_q": reductions,
        "form": "paper",
        "epsilon": qs.epsilon,
        "n_discriminative": int(qs.discriminative.sum()),
        "arms": [],
    }
    print(f"base: acc {result['base']['probe_accuracy']:.4f}", flush=True)
    for seed in seeds:
        for low_q, lam in arms:
            reg = None if lam == 0 else QScoreRegularizer(qs.discriminative, qs.epsilon, lam, lam, form="paper", low_q=low_q)
            out = RUNS / f"ft-{name}-simclr-e{ft_epochs}-{low_q}-lam{lam:g}-s{seed}-n{base_s['n_train']}"
            run_dir, secs = train(ds, name, "simclr", ft_epochs, out, seed=seed, init=base_dir, extra_loss=reg)
            row = {"seed": seed, "arm": low_q, "lambda": lam, "seconds": secs, **measure(run_dir, ds, 0)}
            result["arms"].append(row)
            print(f"seed {seed} {low_q} λ {lam:g}: acc {row['probe_accuracy']:.4f} Q AUROC {row['qscore_auroc']:.4f} ({secs:.0f}s)", flush=True)
            result["end"] = stamp()
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(result, indent=1))
    result["summary"] = summarise(result["arms"], arms, result["base"]["probe_accuracy"])
    result["end"] = stamp()
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
