"""Label-free vs supervised self-influence on the same encoder and the same training rows.

The planted Fashion-MNIST set and SimCLR run of bench/influence_planted.py (`planted_run`: exact and
near copies, 60 OOD images). On its training rows:
- label-free: EK-FAC self-influence of ℓ_aug (the library's score, K draws);
- supervised, same encoder + head: the SSL encoder with the library's linear probe (fitted on the
  labels) as an nn.Linear head; EK-FAC self-influence of the cross-entropy over the same encoder
  layers plus the head (`sup_head`), and over the head alone (`sup_last_layer`);
- supervised network: the same architecture, freshly initialised, trained end to end with
  cross-entropy on the labels (no augmentation), and its EK-FAC cross-entropy self-influence (`sup_net`);
- the k-NN embedding-distance baseline of the SSL encoder.
`--flip` clean rows get a wrong label (a seeded other class) in the labels the supervised models see,
as planted mislabelled ground truth; the SSL encoder never sees labels. Reported: Spearman and top-k
overlap of each ranking with the label-free one (all rows, and the clean rows: not planted, not
flipped), OOD AUROC (all and by kind) and mislabel AUROC (flipped vs the other non-OOD rows).

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/influence_supervised.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, write  # noqa: E402
from influence_planted import PLANTED, planted_run  # noqa: E402


def train_supervised(arch: dict, x: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, seed: int) -> torch.nn.Module:
    """The run's architecture, freshly initialised, + a linear head, trained with cross-entropy (Adam, batch 256)."""
    import torch.nn.functional as F

    from sslaudit.models.encoders import build_encoder

    torch.manual_seed(seed)
    enc = build_encoder(arch)
    model = torch.nn.Sequential(enc, torch.nn.Linear(enc.out_dim, n_classes))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(xt), generator=g).split(256):
            opt.zero_grad()
            F.cross_entropy(model(xt[rows]), yt[rows]).backward()
            opt.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        pred = torch.cat([model(torch.as_tensor(x[a : a + 512])).argmax(1) for a in range(0, len(x), 512)]).numpy()
    return float((pred == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1000, 2 epochs (a smoke run)")
    ap.add_argument("--n", type=int, default=3000, help="Fashion-MNIST training images before planting")
    ap.add_argument("--epochs", type=int, default=4, help="SimCLR epochs of the planted run")
    ap.add_argument("--sup-epochs", type=int, default=10, help="epochs of the supervised network")
    ap.add_argument("--draws", type=int, default=4, help="K augmentation pairs of ℓ_aug")
    ap.add_argument("--flip", type=int, default=100, help="clean rows given a wrong label (planted mislabels)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default=None, help="JSON name in bench/results/ (default: influence_supervised[_quick])")
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary folder)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.epochs, args.sup_epochs, args.draws = 1000, 2, 2, 2
    torch.set_num_threads(args.threads)
    info = machine()
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from sslaudit.methods.influence.analyzer import InfluenceConfig
    from sslaudit.methods.influence.runner import run_influence
    from sslaudit.methods.influence.supervised import linear_head, supervised_self_influence
    from sslaudit.progress import set_enabled

    set_enabled(False)
    tmp, truth, run, train_s = planted_run(args, "influence-supervised-")
    ds = run.dataset
    x, y = np.asarray(ds.train.x, dtype=np.float32), np.asarray(ds.train.y, dtype=np.int64)
    assert (ds.train.index == np.arange(len(x))).all()
    n_classes = len(ds.classes)
    n_clean = args.n
    rng = np.random.default_rng(1)
    flipped = np.sort(rng.choice(n_clean, args.flip, replace=False))
    y_sup = y.copy()
    y_sup[flipped] = (y[flipped] + rng.integers(1, n_classes, args.flip)) % n_classes
    timings, scores = {}, {}

    t = time.perf_counter()
    res = run_influence(run, InfluenceConfig(strategy="ekfac", draws=args.draws, batch_size=64), pairs=10, check=0, neighbours=0)
    scores["label_free"] = res.self_influence.sort_values("index")["score"].to_numpy()
    scores["knn_distance"] = res.knn_outliers.sort_values("index")["score"].to_numpy()
    timings["label_free"] = time.perf_counter() - t

    emb = run.embeddings("train")
    head = linear_head(emb, y_sup, n_classes)
    model = torch.nn.Sequential(copy.deepcopy(run.encoder).eval(), head).eval()
    acc = {"sup_head": accuracy(model, np.asarray(ds.test.x, dtype=np.float32), ds.test.y)}
    t = time.perf_counter()
    scores["sup_head"] = supervised_self_influence(model, x, y_sup, n_classes=n_classes)
    timings["sup_head"] = time.perf_counter() - t
    t = time.perf_counter()
    scores["sup_last_layer"] = supervised_self_influence(model, x, y_sup, n_classes=n_classes, modules=["1"])
    timings["sup_last_layer"] = time.perf_counter() - t

    t = time.perf_counter()
    net = train_supervised(run.config["arch"], x, y_sup, n_classes, args.sup_epochs, seed=0)
    timings["sup_net_train"] = time.perf_counter() - t
    acc["sup_net"] = accuracy(net, np.asarray(ds.test.x, dtype=np.float32), ds.test.y)
    t = time.perf_counter()
    scores["sup_net"] = supervised_self_influence(net, x, y_sup, n_classes=n_classes)
    timings["sup_net"] = time.perf_counter() - t

    n = len(x)
    planted = np.zeros(n, bool)
    planted[n_clean:] = True
    is_flip = np.isin(np.arange(n), flipped)
    is_ood = np.isin(np.arange(n), truth["ood"])
    clean = ~planted & ~is_flip
    ks = (n // 100, n // 20)

    def top(s, k, mask=None):
        idx = np.arange(n) if mask is None else np.nonzero(mask)[0]
        return set(idx[np.argsort(-s[idx], kind="mergesort")[:k]].tolist())

    table = {}
    for name, s in scores.items():
        row = {
            "spearman_vs_label_free": float(spearmanr(s, scores["label_free"]).statistic),
            "spearman_vs_label_free_clean": float(spearmanr(s[clean], scores["label_free"][clean]).statistic),
            "ood_auroc": float(roc_auc_score(is_ood, s)),
            "mislabel_auroc": float(roc_auc_score(is_flip[~is_ood], s[~is_ood])),
        }
        for k in ks:
            row[f"top{k}_overlap_vs_label_free"] = len(top(s, k) & top(scores["label_free"], k)) / k
            row[f"top{k}_overlap_vs_label_free_clean"] = len(top(s, k, clean) & top(scores["label_free"], k, clean)) / k
        for kind in ("inverted", "noise", "digits"):
            sel = truth["ood"][truth["ood_kind"] == kind]
            mask = ~is_ood | np.isin(np.arange(n), sel)
            row[f"ood_auroc_{kind}"] = float(roc_auc_score(np.isin(np.arange(n), sel)[mask], s[mask]))
        row["flipped_in_top5pct"] = len(top(s, ks[1]) & set(flipped.tolist())) / args.flip
        row["ood_in_top5pct"] = len(top(s, ks[1]) & set(truth["ood"].tolist())) / len(truth["ood"])
        table[name] = row
    pair = {}
    for a in ("sup_head", "sup_last_layer", "sup_net"):
        for b in ("sup_head", "sup_last_layer", "sup_net", "knn_distance"):
            if a < b:
                pair[f"{a}~{b}"] = float(spearmanr(scores[a], scores[b]).statistic)
    out = {
        "machine": info,
        "settings": {
            **vars(args),
            "planted": dict(zip(("exact_duplicates", "near_duplicates", "ood"), PLANTED)),
            "n_train": n,
            "flipped_seed": 1,
            "arch": run.config["arch"],
            "objective": "simclr",
            "curvature": "ekfac, empirical Fisher, damping 0.1 × mean eigenvalue per layer (both sides)",
        },
        "encoder_linear_probe": run.store.read_json("metrics.json").get("linear_probe_accuracy"),
        "test_accuracy_with_flipped_labels": acc,
        "train_seconds": train_s,
        "seconds": timings,
        "peak_rss_mb": peak_rss_mb(),
        "table": table,
        "spearman_between_supervised": pair,
    }
    write(args.result or ("influence_supervised_quick" if args.quick else "influence_supervised"), out)
    for k, v in table.items():
        print(k, {a: round(b, 3) for a, b in v.items()})
    print(pair, acc)


if __name__ == "__main__":
    main()
