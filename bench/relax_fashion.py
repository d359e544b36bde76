"""RELAX on Fashion-MNIST: map quality (deletion / insertion AUC), sanity check, speed, adaptive N.

A small ConvNet SimCLR encoder is trained briefly with `train_run` (budget below); then, in the
same run and on the same test images:
- quality: deletion and insertion AUC (cosine similarity to the unmasked representation) of
  RELAX (N = 3000), U-RELAX, gradient saliency (Captum Saliency of ⟨f(x'), f(x)⟩) and a random map;
  complexity and sparseness;
- sanity check: RELAX of a re-initialised encoder vs the trained one (Spearman, SSIM), beside the
  seed-to-seed agreement of the trained encoder's own maps (the noise floor);
- speed at equal N = 3000: our batched estimator (images × masks) vs a reference-style loop
  (batches of 100 masks, one image at a time, per-mask Python Welford update, as relax-xai 0.0.5);
- adaptive N: masks needed to reach the pixelwise standard error N = 3000 gives, and the
  deletion AUC of the adaptive maps.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/relax_fashion.py [--quick] [--full]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402

from sslaudit.data import load_dataset  # noqa: E402
from sslaudit.data.dataset import Dataset  # noqa: E402
from sslaudit.methods.relax import Relax, SpatialMasks, gradient_saliency  # noqa: E402
from sslaudit.methods.relax.evaluation import (
    complexity,
    deletion_insertion,
    random_maps,
    randomized_copy,
    sanity_check,  # noqa: E402
    sparseness,
    spearman,
)
from sslaudit.models.encoders import default_arch  # noqa: E402
from sslaudit.models.trainer import TrainConfig  # noqa: E402
from sslaudit.run import data_config, image_stats, load, train_run  # noqa: E402
from sslaudit.seeding import numpy_rng  # noqa: E402


def train_encoder(ds, n_train: int, epochs: int, widths: list[int], out: Path):
    rows = numpy_rng(0, "bench", "relax", "train").choice(len(ds.train), n_train, replace=False)
    sub = Dataset(ds.name, ds.kind, ds.train.take(np.sort(rows)), ds.test, classes=ds.classes)
    arch = default_arch("image", ds.input_shape)
    arch["widths"] = widths
    arch["mean"], arch["std"] = image_stats(sub.train.x)
    cfg = TrainConfig(objective="simclr", epochs=epochs, batch_size=256, arch=arch, seed=0)
    t = time.perf_counter()
    path = train_run(data_config("fashion-mnist"), cfg, out, dataset=sub, force=True)
    secs = time.perf_counter() - t
    import json

    metrics = json.loads((path / "metrics.json").read_text())
    return load(path).encoder, {
        "n_train": n_train,
        "epochs": epochs,
        "widths": widths,
        "batch_size": 256,
        "train_seconds": secs,
        "linear_probe_accuracy": metrics.get("linear_probe_accuracy"),
        "knn_accuracy": metrics.get("knn_accuracy"),
    }


@torch.no_grad()
def reference_style(encoder, image, n_batches: int = 30, batch: int = 100, num_cells: int = 7, seed: int = 0):
    """The relax-xai 0.0.5 procedure, written for this benchmark: one image, 100 masks per forward,
    per-mask crop loop in the generator and a per-mask float32 Welford update (init 1e-10)."""
    g = torch.Generator().manual_seed(seed)
    shape = tuple(image.shape[2:])
    h = encoder(image).expand(batch, -1)
    importance = torch.zeros(shape)
    uncertainty = torch.zeros(shape)
    wsum = 1e-10 * torch.ones(shape)
    pad = num_cells // 2
    for _ in range(n_batches):
        grid = (torch.rand(batch, 1, num_cells, num_cells, generator=g) < 0.5).float()
        up = F.pad(F.interpolate(grid, size=shape, mode="bilinear", align_corners=False), (pad,) * 4, mode="reflect")
        sx = torch.randint(0, num_cells, (batch,), generator=g)
        sy = torch.randint(0, num_cells, (batch,), generator=g)
        masks = torch.empty(batch, 1, *shape)
        for i in range(batch):
            masks[i] = up[i, :, sx[i] : sx[i] + shape[0], sy[i] : sy[i] + shape[1]]
        sims = F.cosine_similarity(h, encoder(image * masks), dim=1)
        for s, m in zip(sims, masks.squeeze(1)):
            wsum += m
            prev = importance.clone()
            importance += m * (s - importance) / wsum
            uncertainty += (s - importance) * (s - prev) * m
    return importance, uncertainty / wsum


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def quality(encoder, x, maps: dict, steps: int) -> dict:
    fam, base = SpatialMasks(tuple(x.shape[2:])), torch.zeros_like(x)
    out = {}
    with torch.no_grad():
        for name, m in maps.items():
            di = deletion_insertion(encoder, x, m.reshape(len(x), -1), fam, base, steps=steps, seed=0)
            arr = m.reshape(len(x), -1).cpu().numpy()
            out[name] = {
                "deletion_auc": float(di["deletion_auc"].mean()),
                "deletion_auc_sem": float(di["deletion_auc"].std(ddof=1) / np.sqrt(len(x))),
                "insertion_auc": float(di["insertion_auc"].mean()),
                "insertion_auc_sem": float(di["insertion_auc"].std(ddof=1) / np.sqrt(len(x))),
                "complexity": float(complexity(arr).mean()),
                "sparseness": float(sparseness(arr).mean()),
            }
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 images, 5k training images, 1 epoch")
    ap.add_argument("--full", action="store_true", help="100 images, all 60k training images, 5 epochs, project-default widths")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-speed", action="store_true", help="leave out the speed comparison (measured separately)")
    ap.add_argument("--name", default=None, help="result file name (bench/results/NAME.json)")
    ap.add_argument("--speed-only", action="store_true", help="measure only the speed comparison")
    ap.add_argument("--speed-batch-sizes", type=int, nargs="+", default=[100, 250, 1000], help="forward batch sizes timed (250 is the default)")
    ap.add_argument("--encoder-run", default=None, help="use the encoder of this trained Fashion-MNIST run instead of training one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_img, n_speed, n_sanity, n_train, epochs, widths = 50, 10, 20, 20_000, 2, [16, 32, 64]
    if args.quick:
        n_img, n_speed, n_sanity, n_train, epochs = 10, 3, 5, 5000, 1
    if args.full:
        n_img, n_speed, n_sanity, n_train, epochs, widths = 100, 20, 50, 60_000, 5, [32, 64, 128]
    info = {
        "machine": machine(),
        "settings": {"images": n_img, "speed_images": n_speed, "sanity_images": n_sanity, "N": 3000, "steps": 28, "fill": "zero", "similarity": "cosine", "mask_batch": 100, "threads": args.threads},
    }
    ds = load_dataset("fashion-mnist", data_dir=os.environ.get("SSLAUDIT_DATA"))
    run_dir = Path(tempfile.gettempdir()) / f"sslaudit-bench-relax-{'quick' if args.quick else 'full' if args.full else 'default'}"
    if args.encoder_run:
        import json

        metrics = json.loads((Path(args.encoder_run) / "metrics.json").read_text())
        encoder = load(args.encoder_run).encoder
        info["encoder"] = {"run": args.encoder_run, **{k: metrics.get(k) for k in ("n_train", "epochs", "batch_size", "train_seconds", "linear_probe_accuracy", "knn_accuracy")}}
    else:
        encoder, info["encoder"] = train_encoder(ds, n_train, epochs, widths, run_dir)
    print("encoder", info["encoder"], flush=True)
    pos = np.sort(numpy_rng(0, "bench", "relax", "images").choice(len(ds.test), n_img, replace=False))
    x = torch.as_tensor(ds.test.x[pos])
    info["test_indices"] = ds.test.index[pos].tolist()
    rx = Relax(encoder, batch_size=250)

    # --- speed at equal N: reference-style loop vs batched, same images --------------------------------
    xs = x[:n_speed]
    sizes = args.speed_batch_sizes
    speed = {"reference_loop_seconds": [], **{f"batched_bs{bs}_seconds": [] for bs in sizes}}
    for _ in range(0 if args.skip_speed else 2):  # interleaved repetitions: the machine is shared, keep the minimum
        speed["reference_loop_seconds"].append(timed(lambda: [reference_style(encoder, xs[i : i + 1]) for i in range(n_speed)])[1])
        for bs in sizes:
            speed[f"batched_bs{bs}_seconds"].append(timed(lambda: Relax(encoder, batch_size=bs).attribute(xs, 3000, seed=0))[1])
    ref_map, _ = reference_style(encoder, xs[:1])
    if not args.skip_speed:
        best = {k: min(v) for k, v in speed.items()}
        speed.update({f"{k}_min": v for k, v in best.items()})
        speed["per_image_reference"] = best["reference_loop_seconds"] / n_speed
        for bs in sizes:
            speed[f"per_image_batched_bs{bs}"] = best[f"batched_bs{bs}_seconds"] / n_speed
            speed[f"speedup_bs{bs}"] = best["reference_loop_seconds"] / best[f"batched_bs{bs}_seconds"]
        info["speed"] = speed
    if args.speed_only:
        print("speed", speed, flush=True)
        write(args.name or "relax_speed", info)
        return
    print("speed", speed, flush=True)

    # --- quality at N = 3000 ---------------------------------------------------------------------------
    res, t_fixed = timed(lambda: rx.attribute(x, 3000, seed=0))
    sal = gradient_saliency(encoder, x)
    maps = {"relax": res.importance, "u_relax": res.u_relax, "saliency": sal, "random": random_maps(tuple(res.importance.shape), 0)}
    # the reference-style map of image 0 vs ours (different random masks: agreement up to MC noise)
    info["reference_vs_ours_spearman_image0"] = float(spearman(ref_map[None].numpy(), res.importance[:1].numpy())[0])
    se3000 = res.max_std_error.numpy()
    info["fixed_N3000"] = {"seconds": t_fixed, "max_std_error_mean": float(se3000.mean()), "max_std_error_median": float(np.median(se3000)), "max_std_error_max": float(se3000.max())}
    # --- adaptive N to the standard error N = 3000 gives ---------------------------------------------------
    tol = float(np.median(se3000))
    # with the control variate (the default of "auto") and without it (the plain reference estimator)
    for key, cv in (("adaptive", True), ("adaptive_plain", False)):
        ada, t_ada = timed(lambda: rx.attribute(x, "auto", tolerance=tol, seed=1, max_masks=12_000, control_variate=cv))
        maps["relax_" + key] = ada.importance
        info[key] = {
            "control_variate": cv,
            "tolerance": tol,
            "seconds": t_ada,
            "n_masks_mean": float(ada.n_masks.float().mean()),
            "n_masks_median": float(ada.n_masks.float().median()),
            "n_masks_min": int(ada.n_masks.min()),
            "n_masks_max": int(ada.n_masks.max()),
            "converged": int(ada.converged.sum()),
            "ratio_to_3000": float(ada.n_masks.float().mean() / 3000),
        }
        print(key, info[key], flush=True)
    # the control variate's error at equal N = 3000 (the fixed-N default stays the reference estimator)
    cv3000 = rx.attribute(x, 3000, seed=0, control_variate=True).max_std_error.numpy()
    info["fixed_N3000"]["control_variate_max_std_error_median"] = float(np.median(cv3000))
    info["fixed_N3000"]["control_variate_error_ratio_median"] = float(np.median(cv3000 / se3000))
    info["quality"] = quality(encoder, x, maps, steps=28)
    print("quality", {k: (round(v["deletion_auc"], 4), round(v["insertion_auc"], 4)) for k, v in info["quality"].items()}, flush=True)

    # --- sanity check ------------------------------------------------------------------------------------
    xsn = x[:n_sanity]
    rand = Relax(randomized_copy(encoder, 0), batch_size=250).attribute(xsn, 3000, seed=0)
    other_seed = rx.attribute(xsn, 3000, seed=7)
    sc = sanity_check(res.importance[:n_sanity].numpy(), rand.importance.numpy())
    floor = sanity_check(res.importance[:n_sanity].numpy(), other_seed.importance.numpy())
    info["sanity_check"] = {
        "fill_zero": {"trained_vs_randomised": {k: sc[k] for k in ("spearman_mean", "ssim_mean", "passed")}, "trained_seed0_vs_seed7": {k: floor[k] for k in ("spearman_mean", "ssim_mean")}}
    }
    # with a mean fill, masking the black background changes the input too
    mean = ds.train.x.mean(axis=(0, 2, 3))
    trained_m = Relax(encoder, fill="mean", fill_value=mean).attribute(xsn, 3000, seed=0)
    rand_m = Relax(randomized_copy(encoder, 0), fill="mean", fill_value=mean).attribute(xsn, 3000, seed=0)
    sc_m = sanity_check(trained_m.importance.numpy(), rand_m.importance.numpy())
    info["sanity_check"]["fill_mean"] = {"trained_vs_randomised": {k: sc_m[k] for k in ("spearman_mean", "ssim_mean", "passed")}}
    print("sanity", info["sanity_check"], flush=True)
    write(args.name or ("relax" if not args.quick else "relax_quick"), info)


if __name__ == "__main__":
    main()
