"""Content vs style at matched width (issue 19): SimVAE's trunk and latent against SimCLR's
backbone and projector, style factors inside and outside the augmentation set reported apart.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/simvae_matched.py [--quick]

bench/simvae_content_style.py compares SimVAE's 10-d posterior mean with SimCLR's 256-d backbone.
Here every representation is probed at a stated width on the same footing:

- SimCLR: the backbone (256-d, what the lenses audit) and the projector output (64-d, where the
  loss is applied);
- SimVAE with the default z = 10 and with z = 64 (the projector's width): the trunk (256-d, the
  layer under the posterior heads, the counterpart of SimCLR's backbone) and the posterior mean.

Every model trains on the same seeded 10,000-image subset of Fashion-MNIST's training split with
the same MLP trunk (784-256-256), the same augmentation, batch 128, lr 2e-3, 10 epochs; the
evaluation is `ContentStyle` (regularisation chosen on a validation split). Fashion-MNIST's
augmentation holds random resized crops (→ the `scale` task), horizontal flips (`hflip`) and
brightness/contrast jitter (`brightness`); `rotation` and `vflip` lie outside it, where the
SimVAE paper predicts no advantage for either family. Writes bench/results/simvae_matched.json
(--quick: simvae_matched_quick.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine, peak_rss_mb, write

INSIDE = ("scale", "hflip", "brightness")  # factors the Fashion-MNIST augmentation varies
OUTSIDE = ("rotation", "vflip")


class Projected(torch.nn.Module):
    """backbone → projector: the representation SimCLR's loss sees."""

    def __init__(self, backbone, projector):
        super().__init__()
        self.backbone, self.projector = backbone, projector

    def forward(self, x):
        return self.projector(self.backbone(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3,000 training samples, 2 epochs, small probe sets (a smoke run)")
    ap.add_argument("--z-dims", default="10,64", help="SimVAE latent widths trained (comma-separated)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    result_name = "simvae_matched_quick" if args.quick else "simvae_matched"
    torch.set_num_threads(1)

    from sslaudit.data import load_dataset
    from sslaudit.methods.simvae import ContentStyle, ContentStyleConfig
    from sslaudit.models.encoders import default_arch
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, load, train_run
    from sslaudit.seeding import numpy_rng

    start = machine()
    n_train, epochs = (3000, 2) if args.quick else (10000, 10)
    ds = load_dataset("fashion-mnist", data_dir=os.environ.get("SSLAUDIT_DATA"))
    rows = np.sort(numpy_rng(args.seed, "bench-subset").permutation(len(ds.train))[:n_train])
    sub = dataclasses.replace(ds, train=ds.train.take(rows))
    eval_cfg = ContentStyleConfig(n_train=1000 if args.quick else 3000, n_test=500 if args.quick else 2000, seed=args.seed)
    arch = default_arch("image", ds.input_shape, "mlp") | {"hidden": [256, 256]}
    out = {
        "bench": "simvae_matched",
        "machine": start,
        "settings": {
            "data": "fashion-mnist",
            "n_train_ssl": n_train,
            "epochs": epochs,
            "batch_size": 128,
            "lr": 2e-3,
            "arch": arch,
            "evaluation": dataclasses.asdict(eval_cfg.resolved("image")),
            "seed": args.seed,
            "inside_augmentation": list(INSIDE),
            "outside_augmentation": list(OUTSIDE),
        },
        "representations": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="simvae_matched_"))

    def probe(name, encoder, width, extra):
        t0 = time.perf_counter()
        res = ContentStyle(encoder, eval_cfg).evaluate(ds)
        table = res.table.set_index("task")
        summary = {f"{side}_{probe}": float(table.loc[list(tasks), probe].mean()) for side, tasks in (("inside", INSIDE), ("outside", OUTSIDE)) for probe in ("linear", "mlp")}
        out["representations"][name] = {
            **extra,
            "width": width,
            "eval_seconds": time.perf_counter() - t0,
            "content_linear": float(table.loc["content", "linear"]),
            "content_mlp": float(table.loc["content", "mlp"]),
            **summary,
            "rows": res.table.to_dict(orient="records"),
        }
        out["peak_rss_mb"] = peak_rss_mb()
        write(result_name, out)
        print(name, width, res.table[["task", "linear", "mlp", "knn", "chance"]].to_string(index=False), flush=True)

    models = [("simclr", {})] + [("simvae", {"z_dim": int(z)}) for z in args.z_dims.split(",") if z]
    for objective, params in models:
        cfg = TrainConfig(objective=objective, epochs=epochs, batch_size=128, lr=2e-3, seed=args.seed, arch=dict(arch), params=dict(params))
        t0 = time.perf_counter()
        path = train_run(data_config("fashion-mnist"), cfg, tmp / f"{objective}{params.get('z_dim', '')}", dataset=sub)
        extra = {"objective": objective, "params": params, "train_seconds": time.perf_counter() - t0, "final_loss": json.loads((path / "metrics.json").read_text())["final_loss"]}
        m = load(path).method
        if objective == "simclr":
            probe("simclr backbone", m.model.encoder, 256, extra)
            probe("simclr projector", Projected(m.model.encoder, m.model.projector).eval(), int(arch["proj_dim"]), extra)
        else:
            z = params["z_dim"]
            probe(f"simvae z={z} trunk", m.q.body, 256, extra)
            probe(f"simvae z={z} posterior mean", m.q, z, extra)


if __name__ == "__main__":
    main()
