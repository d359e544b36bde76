"""KREPES at scale: stored (out-of-core) kernel blocks, resuming, the memory bound, faiss k-NN."""

import numpy as np
import pytest

from sslaudit.engine import LocalEngine
from sslaudit.errors import UserError
from sslaudit.methods.krepes import Krepes
from sslaudit.methods.krepes import fidelity as fid
from sslaudit.compute import ooc
from sslaudit.methods.krepes.gauss_newton import StoredViewBatches, ViewBatches, batch_order
from sslaudit.compute.memory import parse_size
from sslaudit.compute.ooc import stored_matrix
from sslaudit.store import RunStore

FAST = dict(landmarks=12, step_sample=32, ssl_batch_size=8, cg_max_iter=5, lambda_grid=(10.0, 100.0), block_size=4)


def test_parse_size():
    assert parse_size("512MB") == 512 << 20
    assert parse_size("6GB") == 6 << 30
    assert parse_size("1.5g") == int(1.5 * (1 << 30))
    assert parse_size("1000") == 1000
    for bad in ("lots", "-1GB", "0", "6 XB"):
        with pytest.raises(UserError, match="memory size"):
            parse_size(bad)


def _blocks(a, calls, fail_at=None):
    def compute(s, e):
        calls.append((s, e))
        if fail_at is not None and len(calls) > fail_at:
            raise RuntimeError("interrupted")
        for b in range(s, e, 3):
            yield a[b : min(b + 3, e)]

    return compute


def test_stored_matrix_reads_match_and_resume(tmp_path):
    a = np.random.default_rng(0).normal(size=(23, 5))
    store = RunStore(tmp_path / "run", create=True)
    calls = []
    with store.lock():
        with pytest.raises(RuntimeError):
            stored_matrix(store, "krepes/kernel_train", {"k": 1}, 23, 5, _blocks(a, calls, fail_at=2), part_rows=7)
        assert len(calls) == 3  # two parts finished and registered before the interruption
        assert not store.stage_done("krepes/kernel_train", {"k": 1, "part_rows": 7})
        calls.clear()
        mat, done = stored_matrix(store, "krepes/kernel_train", {"k": 1}, 23, 5, _blocks(a, calls), part_rows=7)
    assert done == 2 and calls == [(14, 21), (21, 23)]  # resumed at the first missing part
    a32 = a.astype(np.float32).astype(np.float64)
    assert np.array_equal(np.asarray(mat), a32)
    assert np.array_equal(mat[5:16], a32[5:16]) and np.array_equal(mat[22], a32[22]) and np.array_equal(mat[-1], a32[-1])
    rows = np.array([20, 3, 4, 5, 13, 0])
    assert np.array_equal(mat.take(rows), a32[rows])
    got = np.concatenate([b.copy() for _, _, b in mat.blocks(4)])
    assert np.array_equal(got, a32)
    # a corrupted part fails its checksum: only that part is recomputed
    p = store.path(next(r for r in store.manifest["artefacts"] if r.endswith("part-00001.f32")))
    raw = bytearray(p.read_bytes())
    raw[0] ^= 0xFF
    p.write_bytes(bytes(raw))
    calls.clear()
    with store.lock():
        mat, done = stored_matrix(store, "krepes/kernel_train", {"k": 1}, 23, 5, _blocks(a, calls), part_rows=7)
    assert done == 1 and calls == [(7, 14)] and np.array_equal(np.asarray(mat), a32)
    # another configuration drops the stale parts
    with store.lock():
        stored_matrix(store, "krepes/kernel_train", {"k": 2}, 23, 5, _blocks(a, []), part_rows=7)
    assert sum("kernel_train-" in r for r in store.manifest["artefacts"]) == 4


def test_stored_view_batches_equal_view_batches():
    rng = np.random.default_rng(1)
    k1, k2 = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 4)).astype(np.float32)
    ref = ViewBatches(k1, k2, 8, seed=5)
    order = batch_order(30, 8, 5)
    both = np.hstack([k1, k2])[order]

    class Mem:
        shape = both.shape

        def __len__(self):
            return len(both)

        def read_rows(self, s, e, out=None):
            out[: e - s] = both[s:e]
            return out[: e - s]

    st = StoredViewBatches(Mem(), 8)
    assert len(st) == len(ref) == 3
    for i in range(len(ref)):
        for a, b in zip(ref.get(i), st.get(i)):
            assert np.array_equal(a.numpy(), b.numpy())


class CountingEngine(LocalEngine):
    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def map(self, fn, items, shared=None, desc=None):
        for out in super().map(fn, items, shared, desc):
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise UserError("the Ray cluster failed mid-run (simulated)")
            yield out


def test_disk_pipeline_equals_in_memory_and_resumes(tiny, tmp_path, monkeypatch):
    enc, x, aug = tiny
    monkeypatch.setattr(ooc, "PART_ROWS", 8)
    mem = Krepes(enc, **FAST).fit(x, augment=aug)
    store = RunStore(tmp_path / "run", create=True)
    # interrupted mid-way through K(train, landmarks): the finished parts stay registered
    with store.lock(), pytest.raises(UserError, match="mid-run"):
        Krepes(enc, cache=store, engine=CountingEngine(fail_after=8), **FAST).fit(x, augment=aug)
    parts = [r for r in store.manifest["artefacts"] if "kernel_train-" in r]
    assert len(parts) >= 2
    eng = CountingEngine()
    with store.lock():
        disk = Krepes(enc, cache=store, engine=eng, **FAST).fit(x, augment=aug)
    assert isinstance(disk.k_train, ooc.DiskMatrix)
    assert np.allclose(np.asarray(disk.k_train), mem.k_train, rtol=1e-6, atol=1e-7)
    assert np.allclose(disk.pc.gamma, mem.pc.gamma, rtol=1e-5, atol=1e-7)
    assert disk.step_result["loss_after"] == pytest.approx(mem.step_result["loss_after"], rel=1e-5)
    assert np.allclose(disk.model.weights, mem.model.weights, rtol=1e-3, atol=1e-6)
    ra, rb = disk.explain(x[:6]), mem.explain(x[:6])
    assert np.array_equal(ra.top[:, :3], rb.top[:, :3])
    assert np.allclose(disk.train_surrogate(rows=[0, 5, 39]), mem.train_surrogate()[[0, 5, 39]], rtol=1e-5, atol=1e-7)
    # a rerun reuses every stored stage and computes no kernel block
    eng2 = CountingEngine()
    with store.lock():
        again = Krepes(enc, cache=store, engine=eng2, **FAST).fit(x, augment=aug)
    assert again.stages["kernel_train"] == "reused" and again.stages["kernel_views"] == "reused"
    assert np.array_equal(again.model.weights, disk.model.weights)


def test_max_memory_sets_blocks_and_refuses_too_little(tiny):
    enc, x, aug = tiny
    k = Krepes(enc, max_memory="64GB", **{**FAST, "block_size": 1024}).fit(x, augment=aug)
    assert k.memory_plan["block_rows"] >= 16 and k.memory_plan["max_memory"] == 64 << 30
    ref = Krepes(enc, **FAST).fit(x, augment=aug)
    assert np.allclose(k.k_train, ref.k_train, atol=1e-6)
    with pytest.raises(UserError, match="max-memory"):
        Krepes(enc, max_memory="100MB", **FAST).fit(x, augment=aug)
    with pytest.raises(UserError, match="memory size"):
        Krepes(enc, max_memory="much", **FAST)


def test_step_sample_all(tiny):
    enc, x, aug = tiny
    k = Krepes(enc, **{**FAST, "step_sample": "all"}).fit(x, augment=aug)
    assert k.step_result["n_step_samples"] == len(x)
    with pytest.raises(UserError):
        Krepes(enc, **{**FAST, "step_sample": "some"})


def test_faiss_nearest_and_confidence_equal_dense():
    rng = np.random.default_rng(3)
    sur_t, sur_l = rng.normal(size=(25, 6)), rng.normal(size=(60, 6))
    ly, ty = rng.integers(0, 3, 60), rng.integers(0, 3, 25)
    top = np.argsort(-rng.random((25, 60)), axis=1)[:, :10]
    assert fid.confidence_drop(sur_t, sur_l, ly, ty, top, seed=2) == fid.confidence_drop_dense(sur_t, sur_l, ly, ty, top, seed=2)
    sim = fid._unit(sur_t) @ fid._unit(sur_l).T
    assert np.array_equal(fid.nearest(sur_t, sur_l, 1)[:, 0], sim.argmax(1))
    assert np.array_equal(fid.nearest(sur_t, sur_l, 5), np.argsort(-sim, axis=1)[:, :5])


def test_fidelity_probe_subsample_and_lazy_rows():
    rng = np.random.default_rng(4)
    net, sur = rng.normal(size=(300, 4)), rng.normal(size=(300, 3))
    y = (net[:, 0] > 0).astype(int)
    kw = dict(net_test=net[:20], sur_test=sur[:20], y_train=y, y_test=y[:20], landmark_pos=np.arange(0, 300, 10), top=np.tile(np.arange(10), (20, 1)), landmark_norms=np.ones(30))
    full = fid.fidelity_report(net_train=net, sur_train=sur, **kw)
    sub = fid.fidelity_report(net_train=net, sur_train=sur, probe_sample=100, net_mean=net.mean(0), **kw)
    assert full["probe_train_rows"] == 300 and sub["probe_train_rows"] == 100
    assert sub["kendall_tau_centred_network"] == pytest.approx(full["kendall_tau_centred_network"])
    assert sub["confidence_drop_top"] == full["confidence_drop_top"]


def test_cli_memory_and_step_sample_options(digits_run, tmp_path, capsys):
    import json
    import shutil

    from sslaudit.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    fast = ["--landmarks", "24", "--test-points", "20", "--ssl-batch-size", "64", "--cg-max-iter", "3", "--lambda", "100", "-q"]
    assert main(["krepes", str(run), *fast, "--max-memory", "100MB"]) == 2
    assert "max-memory" in capsys.readouterr().err
    assert main(["krepes", str(run), *fast, "--max-memory", "lots"]) == 2
    assert main(["krepes", str(run), *fast, "--step-sample", "few"]) == 2
    assert main(["krepes", str(run), *fast, "--max-memory", "64GB", "--step-sample", "all", "--probe-sample", "500"]) == 0
    cfg = json.loads((run / "krepes" / "explainer.json").read_text())
    assert cfg["summary"]["memory_plan"]["max_memory"] == 64 << 30
    assert cfg["summary"]["storage"].startswith("disk")
    fid = json.loads((run / "krepes" / "fidelity.json").read_text())
    assert fid["probe_train_rows"] == 500 and fid["n_step_samples"] > 1000
    assert any(r.startswith("krepes/cache/kernel_train-") for r in RunStore(run).manifest["artefacts"])


def test_the_step_keeps_its_linearisation_points_only_when_they_fit():
    import torch

    enc = torch.nn.Linear(4, 3)
    bounded = Krepes(enc, max_memory="64GB")
    assert bounded._can_keep_step_point(1 << 20)
    assert not bounded._can_keep_step_point(1 << 40)  # 1 TB of points: recomputed per product instead
    assert Krepes(enc)._can_keep_step_point(1 << 40)  # no bound given
