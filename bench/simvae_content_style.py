"""Content vs style on Fashion-MNIST: SimVAE, VAE, β-VAE, SimCLR, VICReg (same MLP trunk, same budget).

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/simvae_content_style.py [--quick] [--full]

Every method trains on the same seeded subset of the training split with the same encoder trunk
(sslaudit's default MLP, 784-256-256), J = 2 augmented views per sample (the Fashion-MNIST default
augmentation: crops, horizontal flips, brightness/contrast, noise), batch 128, AdamW lr 2e-3 with
warm-up and cosine decay, the same number of epochs. Raw pixels are the baseline a user would
otherwise probe. The evaluation is `sslaudit.methods.simvae.ContentStyle` (probe regularisation
chosen on a validation split; the test subset is used once). Writes bench/results/simvae.json and
the SimVAE explanation figures to bench/results/simvae_figures/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "simvae.json"


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": cpu, "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


class PixelsPCA(torch.nn.Module):
    """Raw pixels projected on their first 50 principal components (fitted on the SSL subset)."""

    def __init__(self, x: np.ndarray, k: int = 50):
        super().__init__()
        flat = torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float64)
        self.register_buffer("mean", flat.mean(0).float())
        _, _, v = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
        self.register_buffer("basis", v[:k].T.float())

    def forward(self, x):
        return (x.flatten(1) - self.mean) @ self.basis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3,000 training samples, 3 epochs (a smoke run)")
    ap.add_argument("--full", action="store_true", help="the whole training split, 30 epochs, the paper's 2000-500-500 MLP (hours on 2 CPU cores)")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--methods", default="simvae,vae,betavae,simclr,vicreg")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from sslaudit.data import load_dataset
    from sslaudit.methods.simvae import ContentStyle, ContentStyleConfig, write_explanations
    from sslaudit.models.encoders import default_arch
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, load, train_run
    from sslaudit.seeding import numpy_rng

    n_train = args.n_train or (3000 if args.quick else 60000 if args.full else 10000)
    epochs = args.epochs or (3 if args.quick else 30 if args.full else 10)
    hidden = [2000, 500, 500] if args.full else [256, 256]
    ds = load_dataset("fashion-mnist", data_dir=os.environ.get("SSLAUDIT_DATA"))
    rows = np.sort(numpy_rng(args.seed, "bench-subset").permutation(len(ds.train))[:n_train])
    sub = dataclasses.replace(ds, train=ds.train.take(rows))
    eval_cfg = ContentStyleConfig(n_train=3000 if not args.quick else 1500, n_test=2000 if not args.quick else 1000, seed=args.seed)
    arch = default_arch("image", ds.input_shape, "mlp") | {"hidden": hidden}

    result = {
        "bench": "simvae_content_style",
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "settings": {
            "data": "fashion-mnist",
            "n_train_ssl": n_train,
            "epochs": epochs,
            "batch_size": 128,
            "lr": 2e-3,
            "views": 2,
            "arch": arch,
            "evaluation": dataclasses.asdict(eval_cfg.resolved("image")),
            "seed": args.seed,
            "representation": "SimVAE/VAE/β-VAE: posterior mean (10-d); SimCLR/VICReg: backbone (256-d); pixels: PCA-50 of raw pixels",
        },
        "methods": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="simvae_bench_"))

    def record(name, encoder, extra):
        t0 = time.perf_counter()
        res = ContentStyle(encoder, eval_cfg).evaluate(ds)
        result["methods"][name] = {**extra, "eval_seconds": time.perf_counter() - t0, "rows": res.table.to_dict(orient="records")}
        result["loadavg_end"] = os.getloadavg()
        OUT.write_text(json.dumps(result, indent=1, default=float))
        print(name, res.table[["task", "linear", "mlp", "knn", "chance"]].to_string(index=False), flush=True)

    for method in args.methods.split(","):
        cfg = TrainConfig(objective=method, epochs=epochs, batch_size=128, lr=2e-3, seed=args.seed, arch=dict(arch))
        t0 = time.perf_counter()
        path = train_run(data_config("fashion-mnist"), cfg, tmp / method, dataset=sub)
        secs = time.perf_counter() - t0
        run = load(path)
        metrics = json.loads((path / "metrics.json").read_text())
        record(method, run.encoder, {"train_seconds": secs, "final_loss": metrics["final_loss"], "collapse_std": metrics["collapse_std"]})
        if method == "simvae":
            run.__dict__["dataset"] = ds  # explanation views on the full splits (the run was trained on `sub`)
            figs = ROOT / "bench" / "results" / "simvae_figures"
            figs.mkdir(parents=True, exist_ok=True)
            for rel in write_explanations(run, n_directions=2000, seed=args.seed):
                if rel.endswith(".png"):
                    shutil.copy(path / rel, figs / Path(rel).name)
    record("pixels_pca50", PixelsPCA(sub.train.x), {"train_seconds": 0.0})
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
