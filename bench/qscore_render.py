"""Print the markdown tables of docs/qscore.md from bench/results/qscore*.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RES = Path(__file__).parent / "results"


def f(v, d=3):
    return "–" if v is None else f"{v:.{d}f}"


def table(path: Path) -> None:
    r = json.loads(path.read_text())
    print(f"Settings: {json.dumps(r['settings'])}, seed {r['seed']}; load {r['start']['loadavg'][0]:.1f} → {r['end']['loadavg'][0]:.1f} on {r['machine']['nproc']} cores\n")
    print("| data | objective | probe acc = prevalence | ε (empty share, test) | \\|D\\|/d | Q-Score AUPRC | AUROC | v1 AUPRC / AUROC | norm AUPRC / AUROC | max-act AUPRC / AUROC |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for x in r["rows"]:
        b = x["baselines"]
        v1 = x["variants"]["qscore_v1"]
        print(
            f"| {x['dataset']} | {x['objective']} | {f(x['prevalence'])} | {x['epsilon']:g} ({f(x['test_empty_share'])}) | {x['n_discriminative']}/{x['n_features']} | **{f(x['auprc'])}** | **{f(x['auroc'])}** | "
            f"{f(v1['auprc'])} / {f(v1['auroc'])} | {f(b['embedding_norm']['auprc'])} / {f(b['embedding_norm']['auroc'])} | {f(b['max_activation']['auprc'])} / {f(b['max_activation']['auroc'])} |"
        )
    print("\nDiagnostics (labels used): AUROC of Q-Score at each fixed ε, and within-class AUROC (mean over classes)\n")
    print("| data | objective | AUROC ε=4 | ε=3 | ε=2 | ε=1 | within-class Q | within-class norm | within-class max-act |")
    print("|---|---|---|---|---|---|---|---|---|")
    for x in r["rows"]:
        e = {b["epsilon"]: b for b in x.get("by_epsilon", [])}
        w = x.get("within_class_auroc", {})
        cells = " | ".join(f"{f(e[k]['auroc'])} ({f(e[k]['test_empty_share'], 2)})" if k in e else "–" for k in (4.0, 3.0, 2.0, 1.0))
        print(f"| {x['dataset']} | {x['objective']} | {cells} | {f(w.get('qscore'))} | {f(w.get('embedding_norm'))} | {f(w.get('max_activation'))} |")
    print("\nCompression (probe accuracy; ranked = D first, then by closeness of A_j to the band; random = random subset of the same size)\n")
    print("| data | objective | full acc | acc on D only (\\|D\\|/d) | droppable within 1 pt | ranked vs random at 20% kept | at 50% kept |")
    print("|---|---|---|---|---|---|---|")
    for x in r["rows"]:
        c = x["compression"]

        def at(fr):
            row = min(c["curve"], key=lambda q: abs(q["fraction_kept"] - fr))
            return f"{f(row['accuracy'])} vs {f(row.get('random_accuracy'))}"

        print(
            f"| {x['dataset']} | {x['objective']} | {f(c['full_accuracy'])} | {f(c['discriminative_accuracy'])} ({x['n_discriminative']}/{x['n_features']}) | {c['droppable_fraction']:.0%} | {at(0.2)} | {at(0.5)} |"
        )


def finetune(path: Path) -> None:
    r = json.loads(path.read_text())
    b = r["base"]
    print(
        f"\nBase: SimCLR, {b['n_train']} training images, {b['epochs']} epochs: probe accuracy {f(b['probe_accuracy'], 4)}, Q AUROC {f(b['qscore_auroc'])}. "
        f"Fine-tuning: {r['fine_tune_epochs']} epochs, seeds {r['seeds']}; load {r['start']['loadavg'][0]:.1f} → {r['end']['loadavg'][0]:.1f}\n"
    )
    print("| arm | λ1 = λ2 | probe accuracy per seed | mean | Δ vs control (points) | Δ vs base (points) | Q AUROC after |")
    print("|---|---|---|---|---|---|---|")
    for lam, s in r["summary"].items():
        aur = [a["qscore_auroc"] for a in r["arms"] if f"{a['lambda']:g}" == lam]
        name = "control (no regulariser)" if lam == "0" else "Q-Score regulariser"
        print(
            f"| {name} | {lam} | {', '.join(f(a, 4) for a in s['accuracies'])} | {f(s['mean_accuracy'], 4)} | {s['delta_vs_control_points']:+.2f} | {s['delta_vs_base_points']:+.2f} | {', '.join(f(a) for a in aur)} |"
        )


if __name__ == "__main__":
    table(Path(sys.argv[1]) if len(sys.argv) > 1 else RES / "qscore.json")
    ft = RES / "qscore_finetune.json"
    if ft.is_file():
        finetune(ft)
