"""Benchmark: peak memory of `train --epochs 1` and `qscore` on a 100,000-image folder (issue #22).

    PYTHONPATH=src python bench/folder_memory.py [--images 100000] [--size 64] [--folder DIR] [--quick]

The folder is built once from real Fashion-MNIST (all 70,000 images; the rest again, mirrored) as
64×64 RGB PNGs, each tinted with a seeded colour, in train/<class>/ and test/<class>/ (test: every
tenth image). Then the two commands a user runs are timed as subprocesses, and each one's peak
RSS is read from the kernel (ru_maxrss of that child, from os.wait4: its largest resident set). The baseline a user would otherwise have is the whole folder decoded into a
float32 array (what sslaudit did before image folders), whose size is stated beside it.
Target: peak RSS ≤ 4 GB for each command. JSON → bench/results/folder_memory.json
(folder_memory_quick.json with --quick: 5,000 images).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build_folder(folder: Path, n: int, size: int) -> dict:
    """n tinted size×size RGB PNGs from Fashion-MNIST in train/ and test/ class folders (skipped when complete)."""
    from PIL import Image

    from sslaudit.data import load_dataset

    done = folder / ".complete"
    if done.is_file() and done.read_text() == f"{n} {size}":
        return {"built_s": 0.0, "reused": True}
    t0 = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    x = np.concatenate([ds.train.x[:, 0], ds.test.x[:, 0]])
    y = np.concatenate([ds.train.y, ds.test.y])
    rng = np.random.default_rng(0)
    for i in range(n):
        j = i % len(x)
        img = x[j] if i < len(x) else x[j][:, ::-1]  # past 70,000: the mirrored images
        tint = rng.uniform(0.3, 1.0, 3)
        rgb = (img[:, :, None] * (tint / tint.max())[None, None, :] * 255).astype(np.uint8)
        split = "test" if i % 10 == 0 else "train"
        d = folder / split / str(int(y[j]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).resize((size, size), Image.BILINEAR).save(d / f"{i:06d}.png")
    done.write_text(f"{n} {size}")
    return {"built_s": round(time.perf_counter() - t0, 1), "reused": False}


def run(cmd: list[str], env: dict, check: bool = True) -> dict:
    """Wall time and peak RSS of one command: os.wait4 gives that child's own resource usage.
    A failed command stops the benchmark, unless `check` is False (then its exit code and error are returned)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0 and check:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    out = {"command": " ".join(cmd[3:]), "seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 3), "stdout_tail": stdout.strip().splitlines()[-3:]}
    if proc.returncode != 0:
        out.update(returncode=proc.returncode, stderr_tail=stderr.strip().splitlines()[-3:])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--folder", default=None, help="Where the image folder is built (kept for reruns) [default: a temporary folder]")
    ap.add_argument("--quick", action="store_true", help="5,000 images: a check that the script works")
    a = ap.parse_args()
    n = 5_000 if a.quick else a.images
    folder = Path(a.folder) if a.folder else Path(tempfile.mkdtemp(prefix="sslaudit-folder-")) / "images"
    m = machine()  # before the work, so loadavg_start is the load the commands started under
    built = build_folder(folder, n, a.size)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SSLAUDIT_QUIET": "1"}
    out = Path(tempfile.mkdtemp(prefix="sslaudit-run-")) / "run"
    py = [sys.executable, "-m", "sslaudit.cli.main"]
    # a 64×64 folder whose side is the images' own: no --image-size needed
    train = run([*py, "train", "--data", str(folder), "--epochs", "1", "--out", str(out), "--quiet"], env)
    qscore = run([*py, "qscore", str(out), "--quiet"], env)
    n_train = sum(1 for _ in (folder / "train").rglob("*.png"))
    decoded_gb = n * 3 * a.size * a.size * 4 / 2**30
    payload = {
        "machine": m,
        "images": n,
        "image_shape": [3, a.size, a.size],
        "n_train": n_train,
        "folder": built,
        "train_epochs_1": train,
        "qscore": qscore,
        "target_peak_rss_gb": 4.0,
        "meets_target": bool(train["peak_rss_gb"] <= 4.0 and qscore["peak_rss_gb"] <= 4.0),
        "baseline_decoded_float32_gb": round(decoded_gb, 2),
        "note": "peak RSS of each command's own process (ru_maxrss); the baseline is the folder held in RAM as float32, as a loader that decodes everything must",
    }
    print(write("folder_memory_quick" if a.quick else "folder_memory", payload))


if __name__ == "__main__":
    main()
