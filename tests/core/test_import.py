"""Bringing your own encoder: torch.export, TorchScript, or a factory plus a state dict (all code:
only with --trust-code), or plain weights of an sslaudit architecture (no trust needed)."""

import os
import pickle

import pytest
import torch
from torch import nn

from sslaudit.cli.main import main
from sslaudit.errors import UserError
from sslaudit.run import load


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())

    def forward(self, x):
        return self.net(x)


def factory():
    return TinyEncoder()


def test_torchscript_encoder(tmp_path, capsys):
    torch.manual_seed(0)
    m = TinyEncoder().eval()
    path = tmp_path / "enc.pt"
    torch.jit.save(torch.jit.script(m), str(path))
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "--trust-code" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(tmp_path / "run"), "--quiet", "--trust-code"]) == 0
    assert "linear probe" in capsys.readouterr().out
    with pytest.raises(UserError, match="--trust-code"):
        load(tmp_path / "run")
    run = load(tmp_path / "run", trust_code=True)
    x = torch.as_tensor(run.dataset.test.x[:3])
    assert torch.allclose(run.encoder(x), m(x))
    capsys.readouterr()
    for lens in ("krepes", "influence"):  # no per-parameter gradients through TorchScript: refused before any work, in one line
        assert main([lens, str(tmp_path / "run"), "--trust-code", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "TorchScript encoder allows no per-parameter gradients" in err[0] and "--arch" in err[0], err
    assert main(["qscore", str(tmp_path / "run"), "--trust-code", "--quiet"]) == 0


def test_export_for_one_batch_size_is_refused_at_import(tmp_path, capsys):
    m = TinyEncoder().eval()
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(m, (torch.zeros(2, 1, 8, 8),)), str(path))
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(tmp_path / "run"), "--quiet", "--trust-code"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exported for one batch size only" in err[0] and "dynamic_shapes" in err[0], err
    assert not (tmp_path / "run").exists()  # nothing half-made blocks the retry


def test_exported_program_encoder(tmp_path):
    m = TinyEncoder().eval()
    prog = torch.export.export(m, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "enc.pt2"
    torch.export.save(prog, str(path))
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert main(["import", "--data", "digits", "--encoder", str(path), "--out", str(tmp_path / "run"), "--quiet", "--trust-code"]) == 0
    with pytest.raises(UserError, match="--trust-code"):
        load(tmp_path / "run")
    run = load(tmp_path / "run", trust_code=True)
    x = torch.as_tensor(run.dataset.test.x[:5])
    assert torch.allclose(run.encoder(x), m(x), atol=1e-6)


def test_factory_with_state_dict_and_pickle_refusal(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    m = TinyEncoder()
    torch.save(m.state_dict(), tmp_path / "w.pt")
    spec = "test_import:factory"
    args = ["import", "--data", "digits", "--encoder", spec, "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 2 and "--trust-code" in capsys.readouterr().err
    assert main([*args, "--trust-code"]) == 0
    run = load(tmp_path / "run", trust_code=True)
    x = torch.as_tensor(run.dataset.test.x[:2])
    assert torch.allclose(run.encoder(x), m(x))

    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"net.1.weight": Evil()}, tmp_path / "evil.pt", pickle_module=pickle)
    code = main(["import", "--data", "digits", "--encoder", spec, "--weights", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "run2"), "--quiet", "--trust-code"])
    assert code == 2 and not marker.exists()
    assert "weights_only" in capsys.readouterr().err


def test_factory_weights_with_a_prefix_are_listed_in_full_or_stripped(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    m = TinyEncoder()
    torch.save({f"backbone.{k}": v for k, v in m.state_dict().items()}, tmp_path / "ckpt.pt")  # as Lightning saves a module's backbone
    args = ["import", "--data", "digits", "--encoder", "test_import:factory", "--weights", str(tmp_path / "ckpt.pt"), "--trust-code", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
    for key in ("net.1.weight", "net.1.bias", "backbone.net.1.weight", "backbone.net.1.bias"):  # every key, nothing cut off
        assert key in err
    assert "try --prefix backbone." in err
    assert main([*args, "--prefix", "backbone.", "--out", str(tmp_path / "run")]) == 0
    run = load(tmp_path / "run", trust_code=True)  # reopened: the prefix is stored with the run
    x = torch.as_tensor(run.dataset.test.x[:2])
    assert torch.allclose(run.encoder(x), m(x))
    assert main(["import", "--data", "digits", "--encoder", "enc.pt2", "--prefix", "backbone.", "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "--prefix goes with --arch NAME or with a factory" in capsys.readouterr().err


def test_foreign_file_as_encoder(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    assert main(["import", "--data", "digits", "--encoder", str(junk), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "cannot use" in capsys.readouterr().err
