"""Does training depend on the number of torch threads? Train the same run with 1 and 2 threads.

Each training runs in its own process (`torch.set_num_threads(t)` before anything else) with the
same seed; the weights are compared to those of a repeat with the same thread count (must be
bit-identical) and to those of the other thread count (max |Δw|). Also compares the embeddings of
the test split, and the linear-probe accuracy in metrics.json.

    PYTHONPATH=src python bench/thread_determinism.py --data digits --epochs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402

CHILD = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from sslaudit.models.trainer import TrainConfig
from sslaudit.run import data_config, train_run
train_run(data_config(sys.argv[2]), TrainConfig(epochs=int(sys.argv[3]), batch_size=int(sys.argv[4]), seed=0, arch={}), sys.argv[5])
"""


def train(threads: int, data: str, epochs: int, batch: int, out: Path) -> dict:
    subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), data, str(epochs), str(batch), str(out)], check=True, env={**__import__("os").environ, "SSLAUDIT_QUIET": "1", "OMP_NUM_THREADS": str(threads)}
    )
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    rec = {"machine": machine(), "data": args.data, "epochs": args.epochs, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, t in (("t1", 1), ("t1_repeat", 1), ("t2", 2), ("t2_repeat", 2)):
            runs[name] = train(t, args.data, args.epochs, args.batch_size, Path(tmp) / name)
        metrics = {name: json.loads((Path(tmp) / name / "metrics.json").read_text()) for name in runs}
    rec["max_abs_dw_1_vs_1"] = max_diff(runs["t1"], runs["t1_repeat"])
    rec["max_abs_dw_2_vs_2"] = max_diff(runs["t2"], runs["t2_repeat"])
    rec["max_abs_dw_1_vs_2"] = max_diff(runs["t1"], runs["t2"])
    rec["linear_probe_accuracy"] = {k: m.get("linear_probe_accuracy") for k, m in metrics.items()}
    rec["torch_threads_recorded"] = {k: m.get("torch_threads") for k, m in metrics.items()}
    print(json.dumps({k: v for k, v in rec.items() if k != "machine"}, indent=1))
    write(f"thread_determinism_{args.data}", rec)


if __name__ == "__main__":
    main()
