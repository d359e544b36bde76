"""The Ray engine against a real local two-node cluster, on loopback only."""
import json

import pytest

from sslaudit.engine import get_engine
from sslaudit.errors import UserError

from .ray_cluster import Cluster

pytestmark = pytest.mark.ray

CLIENT = r'''
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
'''


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
