"""KREPES on the backbone (the default) vs on projector∘backbone (`--linearise projector`, the output the
SSL loss was applied to in training), side by side on the same trained runs (issue #18, item 3).

    SSLAUDIT_DATA=/work/shared/data .venv/bin/python bench/krepes_linearise.py [--datasets digits,adult] [--objectives simclr] [--quick]

Runs: MLP encoders trained with the fidelity benchmark's settings (5 epochs, batch 256, seed 0;
bench/krepes_fidelity.py), digits and Adult (all rows). KREPES: the library's defaults but a
4,096-sample step (as bench/krepes_fidelity.py), 1,000 seeded test points, both modes. Each
fidelity figure compares the surrogate with the network output it linearises (backbone or
projector output). Writes bench/results/krepes_linearise.json (krepes_linearise_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FIDELITY_KEYS, machine, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,adult")
    ap.add_argument("--objectives", default="simclr")
    ap.add_argument("--work", default="/tmp/sslaudit_bench_linearise")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 200 test points, a 1,024-sample step: a check that the script works")
    a = ap.parse_args()

    import sslaudit
    from sslaudit.data import load_dataset
    from sslaudit.engine import get_engine
    from sslaudit.methods.krepes.pipeline import explain_run
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    m = machine()
    epochs, test_points, step_sample = (2, 200, 1024) if a.quick else (5, 1000, 4096)
    rows = []
    for dname in a.datasets.split(","):
        for obj in a.objectives.split(","):
            out = Path(a.work) / f"{dname}-{obj}-{epochs}ep"
            train_run(data_config(dname), TrainConfig(objective=obj, epochs=epochs, batch_size=256), out, dataset=load_dataset(dname), arch="mlp")
            run = sslaudit.load(out)
            for target in ("backbone", "projector"):
                t = time.perf_counter()
                res = explain_run(run, test_points=test_points, both_modes=True, engine=get_engine("local"), linearise=target, step_sample=step_sample, seed=0)
                fid = res.documents["fidelity"]
                for mode, rep in fid["modes"].items():
                    rows.append(
                        {
                            "dataset": dname,
                            "objective": obj,
                            "linearised": target,
                            "mode": mode,
                            "width": int(run.embeddings("test").shape[1]) if target == "backbone" else int(run.method.model.projector[-1].out_features),
                            "rank": fid["rank"],
                            **{k: rep.get(k) for k in FIDELITY_KEYS},
                            "trusted": fid["trusted_mode"] == mode,
                            **({"lambda_multiple": fid.get("lambda_multiple"), "loss_before": fid.get("loss_before"), "loss_after": fid.get("loss_after")} if mode == "step" else {}),
                            "seconds": round(time.perf_counter() - t, 1),
                        }
                    )
                print(dname, obj, target, {k: rows[-2].get(k) for k in ("mode", "precision_at_1", "kendall_tau", "delta_accuracy")}, file=sys.stderr, flush=True)
    settings = {"epochs": epochs, "arch": "mlp", "batch_size": 256, "test_points": test_points, "step_sample": step_sample, "both_modes": True, "other": "library defaults"}
    print(write("krepes_linearise_quick" if a.quick else "krepes_linearise", {"machine": m, "settings": settings, "rows": rows}))


if __name__ == "__main__":
    main()
