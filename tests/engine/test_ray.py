"""The Ray engine against a real local two-node cluster, on loopback only."""

import json

import pytest

from sslaudit.engine import get_engine
from sslaudit.errors import UserError

from .ray_cluster import Cluster

pytestmark = pytest.mark.ray

CLIENT = r"""
import json, os, signal, sys, time
import numpy as np
from sslaudit.engine import get_engine, block_ranges

def gram_block(rng, x, pause):
    s, e = rng
    time.sleep(pause)
    return x[s:e].astype(np.float64) @ x.T.astype(np.float64)

x = np.random.default_rng(0).standard_normal((400, 32)).astype(np.float32)
blocks = block_ranges(len(x), 25)
pause = float(sys.argv[1])
kill_pgid = int(sys.argv[2]) if len(sys.argv) > 2 else None
local = np.concatenate(list(get_engine("local").map(gram_block, blocks, shared={"x": x, "pause": 0.0})))
eng = get_engine("ray", os.environ["RAY_ADDRESS_FOR_TEST"])
out = []
for i, block in enumerate(eng.map(gram_block, blocks, shared={"x": x, "pause": pause})):
    out.append(block)
    if kill_pgid and i == 2:
        os.killpg(kill_pgid, signal.SIGKILL)
ray_k = np.concatenate(out)
rel = float(np.abs(ray_k - local).max() / np.abs(local).max())
import ray
nodes = sorted({n["NodeManagerAddress"] for n in ray.nodes()})
print(json.dumps({"rel": rel, "n_blocks": len(out), "node_addresses": nodes}))
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("raycluster"))
    c.env["RAY_ADDRESS_FOR_TEST"] = c.address
    yield c
    c.stop()


def test_ray_equals_local_on_a_two_node_cluster(cluster):
    r = cluster.run_client(CLIENT, "0.0")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rel"] <= 1e-6 and res["n_blocks"] == 16
    assert res["node_addresses"] == ["127.0.0.1"], "Ray must stay on loopback"


def test_killed_worker_gives_the_same_result(cluster):
    r = cluster.run_client(CLIENT, "0.3", str(cluster.worker.pid))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["rel"] <= 1e-6 and res["n_blocks"] == 16
    assert cluster.worker.poll() is not None, "the worker should have been killed"


def test_unreachable_cluster_is_a_clear_error():
    with pytest.raises(UserError, match="no Ray cluster is reachable"):
        get_engine("ray", "127.0.0.1:1")
    with pytest.raises(UserError, match="HOST:PORT"):
        get_engine("ray", "nonsense")


DYING = r"""
import os, signal, sys, time
from sslaudit.engine import get_engine, block_ranges
from sslaudit.errors import UserError

def slow_block(rng, pause):
    time.sleep(pause)
    return rng[0]

eng = get_engine("ray", os.environ["RAY_ADDRESS_FOR_TEST"])
done = []
t0 = time.time()
try:
    for i, start in enumerate(eng.map(slow_block, block_ranges(400, 25), shared={"pause": 0.5})):
        done.append(start)
        if i == 1:
            for pgid in sys.argv[1:]:
                os.killpg(int(pgid), signal.SIGKILL)
except UserError as e:
    print(f"USERERROR {e} after {len(done)} blocks in {time.time() - t0:.0f} s")
    sys.exit(2)
print("NO ERROR", len(done))
"""


def test_cluster_dying_mid_run_is_a_clear_error(cluster):
    """The whole cluster (head and worker) killed mid-map: a one-line UserError, not a hang or a traceback.
    Last in this module: the cluster is gone afterwards."""
    r = cluster.run_client(DYING, str(cluster.head.pid), *([str(cluster.worker.pid)] if cluster.worker.poll() is None else []), timeout=150)
    assert r.returncode == 2, (r.stdout[-1000:], r.stderr[-6000:])
    assert "USERERROR the Ray cluster at" in r.stdout and "stopped answering mid-run" in r.stdout and "rerun the command to resume" in r.stdout
