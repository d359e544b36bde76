"""`sslaudit krepes --engine ray` on a real two-node loopback cluster equals the local engine."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sslaudit.cli.main import main

FAST = ["--landmarks", "24", "--test-points", "30", "--step-sample", "128", "--ssl-batch-size", "64", "--cg-max-iter", "4", "--block-size", "128", "--lambda", "100", "-q"]

CLIENT = r"""
import sys
from sslaudit.cli.main import main
sys.exit(main(["krepes", sys.argv[1], *sys.argv[3:], "--engine", "ray", "--address", sys.argv[2]]))
"""


def test_unreachable_cluster_is_a_clear_error(digits_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    assert main(["krepes", str(run), *FAST, "--engine", "ray", "--address", "127.0.0.1:1"]) == 2
    assert "no Ray cluster is reachable" in capsys.readouterr().err
    assert main(["krepes", str(run), *FAST, "--engine", "ray"]) == 2
    assert main(["krepes", str(run), *FAST, "--address", "127.0.0.1:1"]) == 2


@pytest.mark.ray
def test_ray_equals_local_on_two_nodes(digits_run, tmp_path, tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine.ray_cluster import Cluster

    local, remote = tmp_path / "local", tmp_path / "remote"
    shutil.copytree(digits_run, local)
    shutil.copytree(digits_run, remote)
    assert main(["krepes", str(local), *FAST]) == 0
    cluster = Cluster(tmp_path_factory.mktemp("rayk"), port=6391)  # short path: Ray's socket names have a length limit
    try:
        r = cluster.run_client(CLIENT, str(remote), cluster.address, *FAST, timeout=240)
    finally:
        cluster.stop()
    assert r.returncode == 0, r.stderr[-3000:]
    a = pd.read_parquet(local / "krepes" / "landmarks.parquet")
    b = pd.read_parquet(remote / "krepes" / "landmarks.parquet")
    assert a[["split", "index", "rank", "train_index", "sign"]].equals(b[["split", "index", "rank", "train_index", "sign"]])
    assert np.allclose(a["score"], b["score"], rtol=1e-6, atol=1e-12)
    fa = json.loads((local / "krepes" / "fidelity.json").read_text())
    fb = json.loads((remote / "krepes" / "fidelity.json").read_text())
    for key in ("loss_before", "loss_after", "kendall_tau", "delta_accuracy", "precision_at_1"):
        assert fb[key] == pytest.approx(fa[key], rel=1e-6, abs=1e-12), key
