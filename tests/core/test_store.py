"""The run store: atomic checksummed artefacts, stages, lock, refusal of pickles."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from sslaudit.errors import ArtefactError, UserError
from sslaudit.store import RunStore


def test_round_trip_and_manifest(tmp_path):
    s = RunStore(tmp_path / "run", create=True)
    with s.lock():
        s.write_json("a/x.json", {"v": 1.5, "n": np.int64(3)})
        s.write_npy("a/y.npy", np.arange(5))
        s.write_parquet("a/z.parquet", pd.DataFrame({"split": ["test"], "index": [3]}))
        s.write_torch("w.pt", {"w": torch.ones(2)})
    s2 = RunStore(tmp_path / "run")
    assert s2.read_json("a/x.json") == {"v": 1.5, "n": 3}
    assert s2.read_npy("a/y.npy").tolist() == [0, 1, 2, 3, 4]
    assert s2.read_parquet("a/z.parquet")["index"].tolist() == [3]
    assert torch.equal(s2.read_torch("w.pt")["w"], torch.ones(2))
    assert set(s2.manifest["artefacts"]) == {"a/x.json", "a/y.npy", "a/z.parquet", "w.pt"}


def test_corrupted_artefact_is_caught(tmp_path):
    s = RunStore(tmp_path, create=True)
    with s.lock():
        s.write_npy("y.npy", np.arange(100))
    p = tmp_path / "y.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="checksum"):
        s.read_npy("y.npy")
    p.write_bytes(bytes(data[:50]))
    with pytest.raises(ArtefactError, match="checksum"):
        s.read_npy("y.npy")


def test_stage_reuse_and_invalidation(tmp_path):
    s = RunStore(tmp_path, create=True)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(3)

    def save(v):
        s.write_npy("k.npy", v)
        return ["k.npy"]

    with s.lock():
        for _ in range(2):
            s.cached("kernel", {"m": 3}, compute, save, lambda: s.read_npy("k.npy"))
        assert len(calls) == 1
        s.cached("kernel", {"m": 4}, compute, save, lambda: s.read_npy("k.npy"))
        assert len(calls) == 2
        (tmp_path / "k.npy").write_bytes(b"garbage")
        assert not s.stage_done("kernel", {"m": 4})
        s.cached("kernel", {"m": 4}, compute, save, lambda: s.read_npy("k.npy"))
        assert len(calls) == 3


def test_path_escape_refused(tmp_path):
    s = RunStore(tmp_path, create=True)
    with s.lock(), pytest.raises(UserError, match="escapes"):
        s.write_json("../evil.json", {})
    assert not (tmp_path.parent / "evil.json").exists()


def test_writes_need_the_lock(tmp_path):
    s = RunStore(tmp_path, create=True)
    with pytest.raises(RuntimeError):
        s.write_json("x.json", {})


def test_second_process_gets_a_clear_message(tmp_path):
    s = RunStore(tmp_path, create=True)
    code = (
        "import sys\nfrom sslaudit.store import RunStore\nfrom sslaudit.errors import UserError\n"
        f"s = RunStore({str(tmp_path)!r}, create=True)\n"
        "try:\n    s.lock().__enter__()\nexcept UserError as e:\n    print('LOCKED', e); sys.exit(3)\n"
    )
    with s.lock():
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 3 and "in use by another sslaudit process" in r.stdout


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    s = RunStore(tmp_path / "run", create=True)
    with s.lock():
        s.write_bytes("w.pt", _torch_bytes({"w": torch.ones(1), "x": Evil()}))
    with pytest.raises(ArtefactError, match="weights_only"):
        s.read_torch("w.pt")
    assert not marker.exists()


def _torch_bytes(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf, pickle_module=pickle)
    return buf.getvalue()


def test_foreign_or_missing_manifest(tmp_path):
    with pytest.raises(UserError, match="no run"):
        RunStore(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="not an sslaudit run"):
        RunStore(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ArtefactError, match="not an sslaudit run manifest"):
        RunStore(tmp_path / "d")
