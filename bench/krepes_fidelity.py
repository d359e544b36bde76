"""KREPES fidelity table (Adult, Fashion-MNIST × SimCLR / VICReg / Barlow Twins × step / fit modes)
and the Feature Alignment Gap audit on Adult.

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_fidelity.py [--quick] [--full]

Default (reduced): Adult full (32,561 train / 16,281 test), MLP 108-256-256, 5 epochs; digits
(sklearn's 8×8 digits, the library's split), MLP, 5 epochs; Fashion-MNIST on a seeded 10,000-image training subset (test split
whole), the ConvNet the audit uses (`--fashion-arch mlp`: MLP 784-256-256), 5 epochs.
KREPES: m = auto, uniform landmarks, cosine-normalised pNTK, r = min(d, rank), step on a seeded
4,096-sample subset of two views, SSL batch 256, ≤ 50 CG iterations, λ = auto over multiples
(0.1, 1, 10) of the GN curvature along ∇L, chosen by the held-out SSL loss on a fresh augmentation
draw (label-free), the step in the Nyström eigenbasis (float32 products), 1,000 seeded test points.
`--full`: Fashion-MNIST on all 60,000 images, step_sample 131,072, 50 CG iterations.
Baselines measured in the same run: the network's own linear probe (Δ accuracy), the
cosine-nearest landmark in the network's embedding (precision@1), 10 random landmarks
(confidence drop). Writes bench/results/krepes_fidelity.json.

`--hygiene` (issue #18, items 4 and 5): for each --datasets × --objectives encoder (trained as
above), the same KREPES run under each Nyström variant of `HYGIENE_VARIANTS` (or --variants:
eigenvalue floor, explained-variance rank, centred K_mm), both modes; every row also carries the
label agreement of both attract/repel signs (contrastive, radial), so one run compares both.
Writes --out (default bench/results/krepes_hygiene.json; refuses to overwrite an existing file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIDELITY_KEYS, machine  # noqa: E402  (the one machine record and fidelity key list of bench/)


def subset_dataset(ds, n, seed):
    from sslaudit.seeding import numpy_rng

    if n is None or n >= len(ds.train):
        return ds
    rows = np.sort(numpy_rng(seed, "bench", "subset").choice(len(ds.train), n, replace=False))
    ds.train = ds.train.take(rows)
    ds.source = {**ds.source, "bench_subset": f"seeded {n} of the training split"}
    return ds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny smoke configuration (Adult 4,000 rows, 2 epochs, SimCLR only)")
    ap.add_argument("--full", action="store_true", help="Fashion-MNIST on 60,000 images and the library's default step settings")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "krepes_fidelity.json"))
    ap.add_argument("--work", default="/tmp/sslaudit_bench_krepes")
    ap.add_argument("--objectives", default="simclr,vicreg,barlow")
    ap.add_argument("--datasets", default="adult,digits,fashion-mnist")
    ap.add_argument("--fashion-arch", default="convnet", choices=("convnet", "mlp"), help="Fashion-MNIST's encoder: the ConvNet the audit uses (default) or the MLP 784-256-256")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs of every encoder [default: 5; 2 with --quick]")
    ap.add_argument("--levers", action="store_true", help="Adult/SimCLR only: the fidelity under the levers (raw kernel, m, selection, r) at step_sample 2048")
    ap.add_argument("--hygiene", action="store_true", help="Nyström variants × attract/repel signs (issue #18 items 4, 5); writes bench/results/krepes_hygiene.json")
    ap.add_argument("--variants", default=None, help="--hygiene: comma-separated names of HYGIENE_VARIANTS to run [default: all]")
    ap.add_argument("--merge", nargs="+", help="combine result files of runs split by --datasets into --out, then stop")
    args = ap.parse_args()
    if args.merge:
        docs = [json.loads(Path(p).read_text()) for p in args.merge]
        out = {
            **docs[0],
            "rows": [r for d in docs for r in d["rows"]],
            "timings": {k: v for d in docs for k, v in d["timings"].items()},
            "adult_audit": {k: v for d in docs for k, v in d.get("adult_audit", {}).items()},
            "parts": [{"file": p, "seconds": d["seconds"], "load_start": d["load_start"], "load_end": d["load_end"]} for p, d in zip(args.merge, docs)],
        }
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {args.out}")
        return 0
    os.environ.setdefault("SSLAUDIT_DATA", "/work/shared/data")
    os.environ.setdefault("SSLAUDIT_QUIET", "1")

    import sslaudit
    from sslaudit.data import load_dataset
    from sslaudit.engine import get_engine
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    start_load = os.getloadavg()
    t_start = time.time()
    objectives = args.objectives.split(",")
    settings = {
        "epochs": args.epochs or (2 if args.quick else 5),
        "fashion_train_subset": None if args.full else 10000,
        "adult_train_subset": 4000 if args.quick else None,
        "test_points": 300 if args.quick else 1000,
        "landmarks": "auto",
        "selection": "uniform",
        "kernel": "pntk",
        "normalize": True,
        "lam": "auto",
        "lambda_grid": [0.1, 1.0, 10.0],
        "lambda_rule": "heldout",
        "step_sample": 131072 if args.full else (2048 if args.quick else 4096),
        "ssl_batch_size": 256,
        "cg_max_iter": 50,
        "fashion_arch": args.fashion_arch,
        "adult_arch": "mlp",
        "digits_arch": "mlp",
    }
    if args.quick:
        objectives = ["simclr"]
    rows, audits, timings = [], {}, {}
    work = Path(args.work)
    if args.levers:
        return levers(args, settings, work)
    if args.hygiene:
        return hygiene(args, settings, work, objectives)
    for dname in args.datasets.split(","):
        sub = settings["fashion_train_subset"] if dname == "fashion-mnist" else settings["adult_train_subset"]
        for obj in objectives:
            t0 = time.time()
            ds = subset_dataset(load_dataset(dname), sub, 0)
            arch = settings[f"{dname.split('-')[0]}_arch"]
            out = work / f"{dname}-{obj}-{arch}-{settings['epochs']}ep-{sub}"
            cfg = TrainConfig(objective=obj, epochs=settings["epochs"], batch_size=256)
            train_run(data_config(dname), cfg, out, dataset=ds, arch=arch)
            run = sslaudit.load(out)
            run.__dict__["dataset"] = ds  # the (sub-sampled) data the encoder was trained on
            t_train = time.time() - t0
            t1 = time.time()
            res = explain_run(
                run,
                test_points=settings["test_points"],
                both_modes=True,
                lambda_curve=True,
                engine=get_engine("local"),
                mode="step",
                landmarks="auto",
                selection="uniform",
                kernel="pntk",
                normalize=True,
                lam="auto",
                lambda_grid=tuple(settings["lambda_grid"]),
                lambda_rule=settings["lambda_rule"],
                step_sample=settings["step_sample"],
                ssl_batch_size=settings["ssl_batch_size"],
                cg_max_iter=settings["cg_max_iter"],
                seed=0,
            )
            fid = res.documents["fidelity"]
            timings[f"{dname}/{obj}"] = {"train_s": t_train, "krepes_s": time.time() - t1}
            for mode, rep in fid["modes"].items():
                rows.append(
                    {
                        "dataset": dname,
                        "objective": obj,
                        "mode": mode,
                        "n_train": len(ds.train),
                        **{k: rep.get(k) for k in FIDELITY_KEYS},
                        "trusted": fid["trusted_mode"] == mode,
                    }
                )
            for r in rows[-2:]:
                if r["mode"] == "step":
                    r["step"] = {
                        k: fid.get(k)
                        for k in (
                            "loss_before",
                            "loss_after",
                            "lambda",
                            "lambda_multiple",
                            "mean_gn_eigenvalue",
                            "cg_residual",
                            "cg_iterations",
                            "step_length",
                            "n_landmarks",
                            "rank",
                            "path_used",
                            "n_step_samples",
                            "lambda_chosen_by",
                            "lambda_reason",
                            "curvature_along_gradient",
                            "heldout_loss_before",
                            "heldout_loss_after",
                            "hub_warning",
                            "top1_max_share",
                        )
                    }
                    r["lambda_curve"] = fid.get("lambda_curve")
                else:
                    r["fit_r2"] = res.krepes.fit_result["r2"] if res.krepes.fit_result else None
            if dname == "adult":
                audits[obj] = {
                    "alignment_gap": res.tables["alignment_gap"].to_dict(orient="records"),
                    "alignment_gap_kernel": res.tables["alignment_gap_kernel"].to_dict(orient="records"),
                    "anchoring": res.tables["anchoring"].to_dict(orient="records"),
                }
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "lambda_curve"}, default=float)[:600], file=sys.stderr, flush=True)
            print(json.dumps({k: v for k, v in rows[-2].items() if k != "lambda_curve"}, default=float)[:600], file=sys.stderr, flush=True)
            write_table(args.out, start_load, t_start, settings, timings, rows, audits, complete=False)  # a partial run keeps what it measured
    write_table(args.out, start_load, t_start, settings, timings, rows, audits, complete=True)
    print(f"wrote {args.out}")
    return 0


def write_table(out, start_load, t_start, settings, timings, rows, audits, complete: bool) -> None:
    doc = {
        "benchmark": "krepes_fidelity",
        "machine": machine(),
        "load_start": start_load,
        "load_end": os.getloadavg(),
        "seconds": time.time() - t_start,
        "complete": complete,
        "settings": settings,
        "timings": timings,
        "rows": rows,
        "adult_audit": audits,
        "targets": {
            "abs_delta_accuracy": 0.01,
            "kendall_tau": "≥ 0.8 (centred) where kendall_tau_ceiling allows",
            "precision_at_1": "≥ the cosine baseline (Adult, digits), within 0.03 (Fashion-MNIST)",
            "confidence_drop_ratio": 10,
        },
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, out)


def levers(args, settings, work) -> int:
    """Adult / SimCLR (the encoder trained by the main run): one option changed at a time."""
    import sslaudit
    from sslaudit.data import load_dataset
    from sslaudit.engine import get_engine
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    t0, load0 = time.time(), os.getloadavg()
    ds = load_dataset("adult")
    out = work / f"adult-simclr-{settings['epochs']}ep-None"
    train_run(data_config("adult"), TrainConfig(objective="simclr", epochs=settings["epochs"], batch_size=256), out, dataset=ds, arch="mlp")
    base = dict(
        mode="step",
        landmarks="auto",
        selection="uniform",
        kernel="pntk",
        normalize=True,
        lam="auto",
        lambda_grid=tuple(settings["lambda_grid"]),
        step_sample=2048,
        ssl_batch_size=256,
        cg_max_iter=settings["cg_max_iter"],
        seed=0,
    )
    variants = {"baseline (step_sample 2048)": {}, "raw kernel": {"normalize": False}, "m = 722 (2x auto)": {"landmarks": 722}, "kmeans++ landmarks": {"selection": "kmeans++"}, "r = 64": {"rank": 64}}
    rows = []
    for name, change in variants.items():
        run = sslaudit.load(out)
        t1 = time.time()
        res = explain_run(run, test_points=settings["test_points"], both_modes=True, engine=get_engine("local"), **{**base, **change})
        fid = res.documents["fidelity"]
        for mode, rep in fid["modes"].items():
            rows.append(
                {
                    "variant": name,
                    "mode": mode,
                    **{
                        k: rep.get(k)
                        for k in (
                            "delta_accuracy",
                            "kendall_tau",
                            "kendall_tau_centred_network",
                            "precision_at_1",
                            "precision_at_1_baseline",
                            "confidence_drop_top",
                            "confidence_drop_random",
                            "class_coverage",
                            "n_distinct_top1",
                        )
                    },
                    "seconds": time.time() - t1,
                }
            )
        print(json.dumps(rows[-2:], default=float), file=sys.stderr, flush=True)
    doc = {
        "benchmark": "krepes_levers",
        "machine": machine(),
        "load_start": load0,
        "load_end": os.getloadavg(),
        "seconds": time.time() - t0,
        "settings": {**settings, "step_sample": 2048},
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


HYGIENE_OFF = {"nystrom_floor": 0.0, "nystrom_variance": None, "centre_kmm": False}  # the pre-#18 basis, whatever the library's defaults
HYGIENE_VARIANTS = {
    "baseline": HYGIENE_OFF,
    "floor 1e-4": {**HYGIENE_OFF, "nystrom_floor": 1e-4},
    "floor 1e-3": {**HYGIENE_OFF, "nystrom_floor": 1e-3},
    "floor 1e-2": {**HYGIENE_OFF, "nystrom_floor": 1e-2},
    "variance 0.99": {**HYGIENE_OFF, "nystrom_variance": 0.99},
    "centred": {**HYGIENE_OFF, "centre_kmm": True},
    "centred + floor 1e-3": {**HYGIENE_OFF, "centre_kmm": True, "nystrom_floor": 1e-3},
}
HYGIENE_KEYS = (*FIDELITY_KEYS, "sign_contrastive", "sign_radial")


def hygiene(args, settings, work, objectives) -> int:
    """Issue #18 items 4 and 5: Nyström variants (floor, explained variance, centred K_mm) on one trained encoder each, both modes, both signs."""
    import sslaudit
    from sslaudit.data import load_dataset
    from sslaudit.engine import get_engine
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    out_path = Path(args.out if args.out != str(ROOT / "bench" / "results" / "krepes_fidelity.json") else ROOT / "bench" / "results" / "krepes_hygiene.json")
    if out_path.exists():
        raise SystemExit(f"{out_path} exists; choose another --out (result files are never overwritten)")
    names = list(HYGIENE_VARIANTS) if args.variants is None else [v.strip() for v in args.variants.split(",")]
    t0, load0 = time.time(), os.getloadavg()
    base = dict(
        mode="step",
        landmarks="auto",
        selection="uniform",
        kernel="pntk",
        normalize=True,
        lam="auto",
        lambda_grid=tuple(settings["lambda_grid"]),
        lambda_rule=settings["lambda_rule"],
        step_sample=settings["step_sample"],
        ssl_batch_size=settings["ssl_batch_size"],
        cg_max_iter=settings["cg_max_iter"],
        seed=0,
    )
    rows, timings = [], {}
    for dname in args.datasets.split(","):
        sub = settings["fashion_train_subset"] if dname == "fashion-mnist" else settings["adult_train_subset"]
        for obj in objectives:
            ds = subset_dataset(load_dataset(dname), sub, 0)
            out = work / f"{dname}-{obj}-{settings['epochs']}ep-{sub}"
            t1 = time.time()
            train_run(data_config(dname), TrainConfig(objective=obj, epochs=settings["epochs"], batch_size=256), out, dataset=ds, arch="mlp")
            timings[f"{dname}/{obj}/train"] = time.time() - t1
            for name in names:
                run = sslaudit.load(out)
                run.__dict__["dataset"] = ds
                t1 = time.time()
                res = explain_run(run, test_points=settings["test_points"], both_modes=True, engine=get_engine("local"), **{**base, **HYGIENE_VARIANTS[name]})
                fid = res.documents["fidelity"]
                nys = res.documents["config"]["summary"]["nystrom"]
                timings[f"{dname}/{obj}/{name}"] = time.time() - t1
                for mode, rep in fid["modes"].items():
                    row = {"dataset": dname, "objective": obj, "variant": name, "options": HYGIENE_VARIANTS[name], "mode": mode, "n_train": len(ds.train), "nystrom": nys}
                    row.update({k: rep.get(k) for k in HYGIENE_KEYS})
                    if mode == "step":
                        row["step"] = {
                            k: fid.get(k) for k in ("lambda_multiple", "loss_before", "loss_after", "heldout_loss_before", "heldout_loss_after", "step_accepted", "cg_iterations", "hub_warning")
                        }
                    rows.append(row)
                    brief = {
                        k: row[k] for k in ("dataset", "variant", "mode", "kendall_tau", "delta_accuracy", "precision_at_1", "precision_at_1_baseline", "confidence_drop_top", "confidence_drop_random")
                    }
                    brief["rank"], brief["sign_p1_attract"] = nys["rank"], {s: row[f"sign_{s}"]["precision_at_1_attract"] for s in ("contrastive", "radial")}
                    print(json.dumps(brief, default=float), file=sys.stderr, flush=True)
    doc = {
        "benchmark": "krepes_hygiene",
        "compared": "Nyström rank rules (relative eigenvalue floor, explained variance) and centred K_mm, each against the baseline (numerical rank capped at d, uncentred K_mm), "
        "on the same trained encoder, kernel and landmarks; and the attract/repel signs contrastive (first-order change of cos(f_t, f_l)) vs radial (sign ⟨c_l, f_t⟩) "
        "by the label agreement of their attractive and repulsive rankings (IS·sign)",
        "machine": machine(),
        "load_start": load0,
        "load_end": os.getloadavg(),
        "seconds": time.time() - t0,
        "note": "wall times are inflated by a background benchmark on the same two cores: not speed figures",
        "settings": {**settings, "objectives": objectives, "datasets": args.datasets.split(","), "krepes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in base.items()}},
        "variants": {n: HYGIENE_VARIANTS[n] for n in names},
        "timings": timings,
        "rows": rows,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
