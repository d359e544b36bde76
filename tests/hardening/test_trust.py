"""Received run directories: code in them never runs without --trust-code.

Each test builds a malicious artefact (a pickle payload inside a .pt2, a TorchScript module that
writes files from `__setstate__` and `forward`, a factory named in a received config.json, a
pickle in a legacy model.pt or an imported state dict) and places it in a run directory whose
manifest checksums all match — an attacker can forge them, so they are no defence here. Every way
of opening the run is tried; the payloads write marker files, which must not appear.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import pytest
import torch
from torch import nn

from sslaudit.cli.main import main
from sslaudit.errors import ArtefactError, UserError
from sslaudit.run import load

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class TinyEncoder(nn.Module):
    """Not an sslaudit architecture: an import of it keeps its code (and needs trust)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class FileWriter(nn.Module):
    """TorchScript that creates/overwrites files: in `__setstate__` (runs inside torch.jit.load)
    and in `forward`, through torch.from_file(shared=True)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.w = torch.randn(64, 16)
        self.k = torch.zeros(1)

    def forward(self, x):
        t = torch.from_file(self.path + ".forward", shared=True, size=4, dtype=torch.uint8)
        t.fill_(65)
        return torch.relu(x.flatten(1) @ self.w) + t[:1].float() * 0

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, torch.Tensor, bool]:
        return (self.path, self.w, self.k, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, torch.Tensor, bool]):
        self.path = state[0]
        self.w = state[1]
        self.training = state[3]
        t = torch.from_file(self.path + ".setstate", shared=True, size=4, dtype=torch.uint8)
        t.fill_(66)
        self.k = state[2] + t[:1].float() * 0


class Payload:
    """Unpickling this creates the marker file (a stand-in for any code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_module=pickle)
    return buf.getvalue()


def evil_pt2(marker: Path) -> bytes:
    """A valid torch.export program whose pickled member carries a payload."""
    prog = torch.export.export(TinyEncoder().eval(), (torch.zeros(2, 1, 8, 8),))
    buf = io.BytesIO()
    torch.export.save(prog, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("sample_inputs/model.pt"):
                data = torch_bytes({"args": Payload(marker)})
            zout.writestr(info, data)
    return out.getvalue()


def evil_torchscript(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(FileWriter(str(marker))), buf)
    return buf.getvalue()


def forge(run: Path, rel: str, data: bytes) -> None:
    """Replace an artefact and make the manifest's checksum match (what an attacker can do)."""
    (run / rel).parent.mkdir(parents=True, exist_ok=True)
    (run / rel).write_bytes(data)
    m = json.loads((run / "manifest.json").read_text())
    m["artefacts"][rel] = {**m["artefacts"].get(rel, {"stage": "train", "written": 0.0}), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (run / "manifest.json").write_text(json.dumps(m))


def forge_config(run: Path, edit) -> None:
    cfg = json.loads((run / "config.json").read_text())
    edit(cfg)
    forge(run, "config.json", json.dumps(cfg).encode())
    m = json.loads((run / "manifest.json").read_text())
    m["config"] = cfg
    from sslaudit.store import config_hash

    m["stages"]["train"]["config_hash"] = config_hash(cfg)
    (run / "manifest.json").write_text(json.dumps(m))


@pytest.fixture(scope="module")
def benign_code_run(tmp_path_factory):
    """A run imported (with trust) from a TorchScript TinyEncoder: keeps its code."""
    root = tmp_path_factory.mktemp("trust")
    path = root / "enc.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(TinyEncoder().eval()), str(path))
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(root / "run"), "--quiet", "--trust-code"]) == 0
    return root / "run"


def received(benign_code_run, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "received"
    shutil.copytree(benign_code_run, dst)
    return dst


# every command that opens a run's encoder, without --trust-code
OPENERS = [
    ["krepes", "{run}", "--test-points", "20", "--landmarks", "16"],
    ["qscore", "{run}"],
    ["influence", "{run}", "--subsample", "50"],
    ["relax", "{run}", "--index", "test:0", "--masks", "10"],
    ["simvae", "{run}"],
    ["audit", "--model", "{run}", "--quick"],
]


def assert_refused_everywhere(run: Path, markers: list[Path], capsys) -> None:
    with pytest.raises(UserError, match="--trust-code"):
        load(run)
    for args in OPENERS:
        code = main([a.format(run=run) for a in args] + ["--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "--trust-code" in err and "Traceback" not in err, (args, err)
    for cmd in (["info", str(run)], ["report", str(run)]):  # neither opens the encoder: they work, and run nothing
        assert main(cmd) == 0, capsys.readouterr().err
    assert not any(m.exists() for m in markers), [m for m in markers if m.exists()]


def test_pickle_payload_in_a_pt2_never_runs(benign_code_run, tmp_path, capsys):
    run = received(benign_code_run, tmp_path)
    marker = tmp_path / "pt2-payload-ran"
    blob = evil_pt2(marker)
    forge(run, "encoder/enc.pt2", blob)
    forge_config(run, lambda c: c["external"].update(kind="export", file="encoder/enc.pt2"))
    assert_refused_everywhere(run, [marker], capsys)
    # the same file given to `sslaudit import` without --trust-code: refused before it is opened
    (tmp_path / "evil.pt2").write_bytes(blob)
    assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "evil.pt2"), "--out", str(tmp_path / "imp"), "--quiet"]) == 2
    assert "--trust-code" in capsys.readouterr().err and not marker.exists() and not (tmp_path / "imp").exists()
    # the artefact is real: torch.export.load itself runs the payload (what --trust-code would allow)
    proof = tmp_path / "proof"
    blob2 = evil_pt2(proof)
    with pytest.raises(Exception):
        torch.export.load(io.BytesIO(blob2))  # trust: this test deliberately opens its own malicious file
    assert proof.exists()


def test_file_writing_torchscript_never_runs(benign_code_run, tmp_path, capsys):
    run = received(benign_code_run, tmp_path)
    marker = tmp_path / "victim"
    forge(run, "encoder/enc.pt", evil_torchscript(marker))
    written = [Path(str(marker) + ".setstate"), Path(str(marker) + ".forward")]
    assert_refused_everywhere(run, written, capsys)
    (tmp_path / "evil.pt").write_bytes(evil_torchscript(marker))
    assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "imp"), "--quiet"]) == 2
    assert not any(w.exists() for w in written)
    # the artefact is real: with trust, loading runs __setstate__ and calling runs forward
    m = load(run, trust_code=True).encoder
    assert written[0].exists()
    m(torch.zeros(1, 1, 8, 8))
    assert written[1].exists()


def test_factory_in_a_received_config_is_never_imported(benign_code_run, tmp_path, capsys, monkeypatch):
    run = received(benign_code_run, tmp_path)
    marker = tmp_path / "factory-ran"
    pkg = tmp_path / "site"
    (pkg / "evilpkg").mkdir(parents=True)
    (pkg / "evilpkg" / "__init__.py").write_text("")
    (pkg / "evilpkg" / "mod.py").write_text(f"open({str(marker) + '.import'!r}, 'w').close()\n\ndef make():\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(pkg))  # as `python -m` or a notebook puts the working directory on sys.path
    monkeypatch.chdir(pkg)
    forge(run, "encoder/w.safetensors", _safetensors(TinyEncoder().state_dict()))
    forge_config(run, lambda c: c["external"].update(kind="factory", file="encoder/w.safetensors", factory="evilpkg.mod:make"))
    assert_refused_everywhere(run, [marker, Path(str(marker) + ".import")], capsys)
    assert "evilpkg.mod" not in sys.modules


def test_weights_never_carry_code_even_with_trust(tmp_path, capsys):
    """A run stored as weights opens without trust; a pickle planted in its weights (or in a
    legacy model.pt, or a state dict given to import) is refused with and without --trust-code."""
    from sslaudit.models.encoders import build_encoder, default_arch

    arch = default_arch("image", (1, 8, 8), "convnet")
    enc = build_encoder(arch).eval()
    (tmp_path / "w.safetensors").write_bytes(_safetensors(enc.state_dict()))
    assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    r = load(tmp_path / "run")
    x = torch.as_tensor(r.dataset.test.x[:4])
    assert torch.allclose(r.encoder(x), enc(x))
    marker = tmp_path / "ran"
    forge(tmp_path / "run", "encoder/weights.safetensors", torch_bytes({"trunk.net.0.weight": Payload(marker)}))
    for trust in (False, True):
        with pytest.raises(ArtefactError, match="safetensors"):
            _ = load(tmp_path / "run", trust_code=trust).encoder
    (tmp_path / "evil.pt").write_bytes(torch_bytes({"trunk.net.0.weight": Payload(marker)}))
    for extra in ([], ["--trust-code"]):
        assert main(["import", "--data", "digits", "--encoder", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "r2"), "--quiet", *extra]) == 2
        assert "weights_only" in capsys.readouterr().err
    assert not marker.exists()


def test_legacy_model_pt_with_a_payload_is_refused(tmp_path):
    from sslaudit.models.trainer import TrainConfig
    from sslaudit.run import data_config, train_run

    run = train_run(data_config("digits"), TrainConfig(epochs=1, batch_size=256), tmp_path / "run")
    # make it look like a run of an older sslaudit (model.pt), then plant a payload in it
    m = json.loads((run / "manifest.json").read_text())
    m["artefacts"].pop("model.safetensors")
    m["stages"]["train"]["artefacts"] = ["config.json", "model.pt", "metrics.json"]
    (run / "model.safetensors").unlink()
    (run / "manifest.json").write_text(json.dumps(m))
    marker = tmp_path / "ran"
    forge(run, "model.pt", torch_bytes({"model.encoder.trunk.net.0.weight": Payload(marker)}))
    for trust in (False, True):
        with pytest.raises(ArtefactError, match="weights_only"):
            _ = load(run, trust_code=trust).encoder
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torchscript", "export", "factory"])
def test_trusted_import_of_an_sslaudit_architecture_is_stored_as_weights(tmp_path, monkeypatch, kind):
    """Converted once at import: the run holds no code and opens without --trust-code."""
    from sslaudit.models.encoders import build_encoder, default_arch

    torch.manual_seed(1)
    enc = build_encoder(default_arch("image", (1, 8, 8), "convnet")).eval()
    with torch.no_grad():  # non-trivial normalisation statistics and BN buffers
        enc.normalize.mean.fill_(0.3)
        for mod in enc.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(enc), str(tmp_path / "enc.pt"))
        args = ["--encoder", str(tmp_path / "enc.pt")]
    elif kind == "export":
        prog = torch.export.export(enc, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(prog, str(tmp_path / "enc.pt2"))
        args = ["--encoder", str(tmp_path / "enc.pt2")]
    else:
        (tmp_path / "myenc.py").write_text("from sslaudit.models.encoders import build_encoder, default_arch\n\ndef make():\n    return build_encoder(default_arch('image', (1, 8, 8), 'convnet'))\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        torch.save(enc.state_dict(), tmp_path / "w.pt")
        args = ["--encoder", "myenc:make", "--weights", str(tmp_path / "w.pt")]
    assert main(["import", "--data", "digits", *args, "--out", str(tmp_path / "run"), "--quiet", "--trust-code"]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["external"]["kind"] == "weights" and cfg["external"]["converted_from"] == kind
    stored = {p.name for p in (tmp_path / "run" / "encoder").iterdir()}
    assert stored == {"weights.safetensors"}
    r = load(tmp_path / "run")  # no trust needed any more
    x = torch.as_tensor(r.dataset.test.x[:8])
    assert torch.allclose(r.encoder(x), enc(x), atol=1e-5)


def _safetensors(state) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})
