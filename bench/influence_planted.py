"""Influence-SSL on Fashion-MNIST with planted ground truth, beside the embedding baselines.

A seeded training subset gets planted exact duplicates, near duplicates (re-cropped to ~85% of
the area and re-brightened ×0.85) and out-of-distribution images (inverted images, uniform noise,
sklearn digits upscaled 8→28). An encoder is trained on it, then `run_influence` scores every
training example. Reported: precision@k of the duplicate ranking (k = number of planted pairs)
and AUROC of self-influence for the OOD images — against embedding cosine and k-NN distance,
measured in the same run. Optionally also the removal experiment (--removal).

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_planted.py [--quick]
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


def planted_npz(path: Path, n: int, n_test: int, n_dup: int, n_near: int, n_ood: int, seed: int) -> dict:
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    from sslaudit.data import load_dataset

    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(seed)
    base = rng.choice(len(fm.train), n, replace=False)
    x = fm.train.x[base, 0]
    y = fm.train.y[base]
    src_dup = rng.choice(n, n_dup, replace=False)
    src_near = rng.choice(np.setdiff1d(np.arange(n), src_dup), n_near, replace=False)
    dup = x[src_dup]
    t = torch.as_tensor(x[src_near])[:, None]
    s = 0.92  # crop side → ~85% of the area, random offset, resized back to 28×28
    off = torch.as_tensor(rng.uniform(-(1 - s), 1 - s, size=(n_near, 2)), dtype=torch.float32)
    theta = torch.zeros(n_near, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = s
    theta[:, :, 2] = off
    near = F.grid_sample(t, F.affine_grid(theta, list(t.shape), align_corners=False), align_corners=False, padding_mode="border")
    near = (near * 0.85).clamp(0, 1)[:, 0].numpy()
    k = n_ood // 3
    inv = 1.0 - x[rng.choice(n, k, replace=False)]
    noise = rng.random((k, 28, 28)).astype(np.float32)
    dg = load_digits().images[rng.choice(1797, n_ood - 2 * k, replace=False)] / 16.0
    digits = F.interpolate(torch.as_tensor(dg, dtype=torch.float32)[:, None], size=(28, 28), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1).numpy()
    xs = np.concatenate([x, dup, near, inv, noise, digits]).astype(np.float32)
    ys = np.concatenate([y, y[src_dup], y[src_near], np.zeros(n_ood, dtype=y.dtype)])
    te = rng.choice(len(fm.test), n_test, replace=False)
    np.savez(path, x=xs, y=ys, x_test=fm.test.x[te, 0], y_test=fm.test.y[te])
    pairs_exact = {(int(a), n + i) for i, a in enumerate(src_dup)}
    pairs_near = {(int(a), n + n_dup + i) for i, a in enumerate(src_near)}
    ood = np.arange(n + n_dup + n_near, n + n_dup + n_near + n_ood)
    kinds = ["inverted"] * k + ["noise"] * k + ["digits"] * (n_ood - 2 * k)
    return {"pairs_exact": pairs_exact, "pairs_near": pairs_near, "ood": ood, "ood_kind": np.array(kinds), "n_train": len(xs)}


def precision_at_k(df, truth: set, k: int) -> float:
    top = {(int(a), int(b)) for a, b in zip(df["index"].head(k), df["train_index"].head(k))}
    return len(top & truth) / k


PLANTED = (40, 40, 60)  # exact duplicates, near duplicates, OOD images


def planted_run(args, prefix: str):
    """Write the planted npz under args.out (or a temp folder) and train the benchmark's SimCLR run on it."""
    import sslaudit
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    tmp = Path(args.out or tempfile.mkdtemp(prefix=prefix))
    tmp.mkdir(parents=True, exist_ok=True)
    truth = planted_npz(tmp / "planted.npz", args.n, 2000, *PLANTED, seed=0)
    t0 = time.perf_counter()
    train_run(data_config(str(tmp / "planted.npz")), TrainConfig(objective="simclr", epochs=args.epochs, batch_size=256, seed=0), tmp / "run")
    return tmp, truth, sslaudit.load(tmp / "run"), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1000, 2 epochs (a smoke run)")
    ap.add_argument("--n", type=int, default=3000, help="Fashion-MNIST training images before planting")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--strategy", default="ekfac")
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary folder)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.epochs = 1000, 2
    torch.set_num_threads(args.threads)
    info = machine()
    from sklearn.metrics import roc_auc_score

    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.runner import run_influence

    n_dup, n_near, n_ood = PLANTED
    tmp, truth, run, train_s = planted_run(args, "influence-planted-")
    k = n_dup + n_near
    t0 = time.perf_counter()
    res = run_influence(run, InfluenceConfig(strategy=args.strategy, draws=args.draws, batch_size=64), pairs=k, check=200)
    infl_s = time.perf_counter() - t0
    allp = truth["pairs_exact"] | truth["pairs_near"]
    is_ood = np.isin(res.self_influence["index"].to_numpy(), truth["ood"])
    knn = res.knn_outliers.set_index("index").loc[res.self_influence["index"], "score"].to_numpy()
    out = {
        "machine": info,
        "settings": {**vars(args), "planted": {"exact_duplicates": n_dup, "near_duplicates": n_near, "ood": n_ood}, "n_train": truth["n_train"], "arch": run.config["arch"], "objective": "simclr"},
        "train_seconds": train_s,
        "influence_seconds": infl_s,
        "peak_rss_mb": peak_rss_mb(),
        "encoder_linear_probe": run.store.read_json("metrics.json").get("linear_probe_accuracy"),
        "duplicates": {
            "k": k,
            "influence": {
                "precision_at_k": precision_at_k(res.duplicates, allp, k),
                "exact_found": len({(int(a), int(b)) for a, b in zip(res.duplicates["index"], res.duplicates["train_index"])} & truth["pairs_exact"]) / n_dup,
                "near_found": len({(int(a), int(b)) for a, b in zip(res.duplicates["index"], res.duplicates["train_index"])} & truth["pairs_near"]) / n_near,
            },
            "embedding_cosine": {
                "precision_at_k": precision_at_k(res.embedding_duplicates, allp, k),
                "exact_found": len({(int(a), int(b)) for a, b in zip(res.embedding_duplicates["index"], res.embedding_duplicates["train_index"])} & truth["pairs_exact"]) / n_dup,
                "near_found": len({(int(a), int(b)) for a, b in zip(res.embedding_duplicates["index"], res.embedding_duplicates["train_index"])} & truth["pairs_near"]) / n_near,
            },
        },
        "outliers": {"influence_auroc": float(roc_auc_score(is_ood, res.self_influence["score"])), "knn_distance_auroc": float(roc_auc_score(is_ood, knn))},
        "duplicate_check": res.summary["duplicate_check"],
        "influence_timings": res.summary["timings"],
    }
    idx = res.self_influence["index"].to_numpy()
    for kind in ("inverted", "noise", "digits"):
        sel = truth["ood"][truth["ood_kind"] == kind]
        mask = ~is_ood | np.isin(idx, sel)
        out["outliers"][f"influence_auroc_{kind}"] = float(roc_auc_score(np.isin(idx[mask], sel), res.self_influence["score"].to_numpy()[mask]))
        out["outliers"][f"knn_auroc_{kind}"] = float(roc_auc_score(np.isin(idx[mask], sel), knn[mask]))
    write("influence_planted_quick" if args.quick else "influence_planted", out)
    print({k2: out[k2] for k2 in ("duplicates", "outliers")})


if __name__ == "__main__":
    main()
