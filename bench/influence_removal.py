"""The removal experiment with paired seeds: remove the top / bottom / random x% by self-influence,
retrain under several seeds, compare linear-probe accuracy paired by seed.

Self-influence (EK-FAC, ℓ_aug, K draws) comes from one base run (seed --base-seed). Every arm is
then retrained from scratch under each retraining seed with the base run's configuration (objective,
epochs, batch size, lr: the same number of steps in every arm, since every arm removes as many
examples); the random arm draws its own set from each seed. The probe is fitted on the full labelled
training split and scored on the test split. Reported: each arm's accuracy per seed, and top − random,
bottom − random and top − bottom paired by seed (mean, 95% t interval, paired t and Wilcoxon p, and the
difference this many seeds detects with 80% power). The JSON is rewritten after every seed, so a run
stopped by --max-minutes keeps what it measured.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_removal.py --data digits --seeds 30 --result influence_removal_digits
    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_removal.py --data fashion-mnist --n 2000 --epochs 5 --seeds 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402

PAIRS = (("top", "random"), ("bottom", "random"), ("top", "bottom"))


def base_data(args, tmp: Path) -> dict:
    """The data config of the base run: sklearn digits as the library loads it, or a seeded Fashion-MNIST subset."""
    from sslaudit.run import data_config

    if args.data == "digits":
        return data_config("digits")
    from sslaudit.data import load_dataset

    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    tr = rng.choice(len(fm.train), args.n, replace=False)
    te = rng.choice(len(fm.test), args.n_test, replace=False)
    np.savez(tmp / "subset.npz", x=fm.train.x[tr, 0], y=fm.train.y[tr], x_test=fm.test.x[te, 0], y_test=fm.test.y[te])
    return data_config(str(tmp / "subset.npz"))


def paired(per_seed: dict) -> dict:
    from sslaudit.experiments.removal import paired_difference

    out = {}
    for a, b in PAIRS:
        if a in per_seed and b in per_seed and len(per_seed[a]) >= 2:
            out[f"{a}_minus_{b}"] = paired_difference(per_seed[a], per_seed[b])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke run: digits, 2 epochs, 2 seeds")
    ap.add_argument("--data", choices=("digits", "fashion-mnist"), default="digits")
    ap.add_argument("--n", type=int, default=2000, help="Fashion-MNIST training images (digits: all 1,437 training rows)")
    ap.add_argument("--n-test", type=int, default=2000, help="Fashion-MNIST test images")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--arch", default=None, help="encoder architecture (default: the dataset's, a ConvNet for images; mlp trains fastest)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--draws", type=int, default=4, help="K augmentation pairs of ℓ_aug")
    ap.add_argument("--base-seed", type=int, default=0, help="seed of the base run whose self-influence defines the arms")
    ap.add_argument("--seeds", type=int, default=20, help="retraining seeds 0 .. seeds−1")
    ap.add_argument("--arms", default="top,bottom,random")
    ap.add_argument("--max-minutes", type=float, default=None, help="start no new seed after this many minutes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default=None, help="JSON name in bench/results/ (default: influence_removal_<data>_seeds[_quick])")
    ap.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    args = ap.parse_args()
    if args.quick:
        args.data, args.epochs, args.seeds = "digits", 2, 2
    torch.set_num_threads(args.threads)
    info = machine()
    import sslaudit
    from sslaudit.experiments.removal import removal_experiment
    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.runner import run_influence
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.progress import set_enabled
    from sslaudit.run import train_run

    set_enabled(False)
    arms = tuple(a.strip() for a in args.arms.split(","))
    name = args.result or f"influence_removal_{args.data.replace('-', '_')}_seeds" + ("_quick" if args.quick else "")
    tmp = Path(args.out or tempfile.mkdtemp(prefix="influence-removal-"))
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_run(base_data(args, tmp), TrainConfig(objective="simclr", epochs=args.epochs, batch_size=args.batch_size, seed=args.base_seed), tmp / "run", arch=args.arch)
    run = sslaudit.load(tmp / "run")
    base_s = time.perf_counter() - t0
    t = time.perf_counter()
    res = run_influence(run, InfluenceConfig(strategy="ekfac", draws=args.draws, batch_size=64), pairs=10, check=0, neighbours=0)
    influence_s = time.perf_counter() - t
    s = res.self_influence
    index, score = s["index"].to_numpy(), s["score"].to_numpy()
    per_seed: dict[str, list[float]] = {a: [] for a in arms}
    seeds, seconds, full = [], [], None
    settings = {**vars(args), "objective": "simclr", "arch": run.config["arch"], "n_train": len(run.dataset.train), "n_test": len(run.dataset.test)}
    for seed in range(args.seeds):
        if args.max_minutes is not None and time.perf_counter() - t0 > 60 * args.max_minutes:
            break
        t = time.perf_counter()
        out = removal_experiment(run, index, score, args.fraction, arms=arms, seed=seed, full=full is None)
        if full is None:
            full = {"linear_probe_accuracy": out["full"]["linear_probe_accuracy"], "removed": out["removed"], "top_removed_index": out["arms"].get("top", {}).get("removed_index")}
        for a in arms:
            per_seed[a].append(out["arms"][a]["linear_probe_accuracy"])
        seeds.append(seed)
        seconds.append(time.perf_counter() - t)
        print(f"seed {seed}: " + ", ".join(f"{a} {per_seed[a][-1]:.4f}" for a in arms), flush=True)
        write(
            name,
            {
                "machine": info,
                "settings": settings,
                "base_run": {"seconds": base_s, "influence_seconds": influence_s, "linear_probe_accuracy": full["linear_probe_accuracy"], "influence": res.summary["config"]},
                "removed": full["removed"],
                "top_removed_index": full["top_removed_index"],
                "seeds_done": seeds,
                "accuracy_per_seed": per_seed,
                "accuracy_mean": {a: float(np.mean(v)) for a, v in per_seed.items()},
                "accuracy_sd": {a: float(np.std(v, ddof=1)) if len(v) > 1 else None for a, v in per_seed.items()},
                "paired": paired(per_seed),
                "seconds_per_seed": seconds,
                "peak_rss_mb": peak_rss_mb(),
            },
        )
    for k, v in paired(per_seed).items():
        print(f"{k}: mean {100 * v['mean']:+.2f} points, 95% CI [{100 * v['ci'][0]:+.2f}, {100 * v['ci'][1]:+.2f}], t p={v['t_test_p']:.3g}, detectable {100 * v['detectable_80']:.2f}")


if __name__ == "__main__":
    main()
