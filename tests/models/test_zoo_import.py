"""`sslaudit import --arch resnet18 --weights FILE`: torchvision builders, solo-learn/Lightning checkpoints,
no --trust-code; the imported encoder equals the same torchvision network built here, normalisation included."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from sslaudit.cli.main import main
from sslaudit.run import load


def lightning_checkpoint(path, cifar_stem=True, seed=0):
    """A ResNet-18 saved the way solo-learn / Lightning save it: weights under `state_dict`, keys `backbone.…`."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18()
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is checked too
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state["projector.0.weight"] = torch.randn(128, 512)
    torch.save({"state_dict": state, "epoch": 3, "global_step": 30, "hyper_parameters": {"lr": 0.1, "name": "simclr"}}, path)
    return net.eval()


def test_solo_learn_checkpoint_embeddings_equal_torchvision(tmp_path, capsys):
    ckpt = tmp_path / "simclr.ckpt"
    ref = lightning_checkpoint(ckpt)
    args = ["import", "--data", "digits", "--arch", "resnet18", "--weights", str(ckpt), "--cifar-stem", "--mean", "0.4", "--std", "0.3", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args[:-3] + ["--out", str(tmp_path / "bad"), "--quiet"]) == 2  # no --prefix: keys listed in full, with the hint
    err = capsys.readouterr().err
    assert "unexpected" in err and "backbone.layer4.1.bn2.weight" in err and "--prefix backbone." in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    assert main(args + ["--prefix", "backbone."]) == 0
    run = load(tmp_path / "run")  # weights are data: no trust_code
    x = np.asarray(run.dataset.test.x[:6])
    got = run.encoder.eval()(torch.as_tensor(x)).detach()
    with torch.no_grad():
        want = ref(((torch.as_tensor(x) - 0.4) / 0.3).expand(-1, 3, -1, -1))
    assert got.shape == (6, 512)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert run.config["external"]["arch"]["mean"] == [0.4] and run.config["external"]["arch"]["std"] == [0.3]
    emb = run.embeddings("test")
    np.testing.assert_allclose(emb[:6], want.numpy(), rtol=1e-4, atol=1e-4)


def test_plain_torchvision_state_dict_and_bad_inputs(tmp_path, capsys):
    torch.manual_seed(1)
    net = torchvision.models.resnet18().eval()
    sd = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), sd)  # torchvision's own layout: fc.* is dropped as the head
    out = str(tmp_path / "run")
    base = ["import", "--data", "digits", "--arch", "resnet18", "--weights", str(sd), "--quiet"]
    assert main(base + ["--out", out]) == 2
    assert "--mean and --std" in capsys.readouterr().err
    assert main(base + ["--mean", "0.5", "--std", "0.25", "--out", out]) == 0
    run = load(out)
    x = torch.as_tensor(np.asarray(run.dataset.test.x[:4]))
    net.fc = nn.Identity()
    assert torch.allclose(run.encoder(x), net(((x - 0.5) / 0.25).expand(-1, 3, -1, -1)), rtol=1e-5, atol=1e-5)

    whole = tmp_path / "model.pt"
    torch.save(net, whole)
    assert main(["import", "--data", "digits", "--arch", "resnet18", "--weights", str(whole), "--mean", "0.5", "--std", "0.25", "--out", str(tmp_path / "w"), "--quiet"]) == 2
    assert "model.state_dict()" in capsys.readouterr().err
    assert main(["import", "--data", "digits", "--arch", "resnet1", "--weights", str(sd), "--mean", "0.5", "--std", "0.25", "--out", str(tmp_path / "n"), "--quiet"]) == 2
    assert "torchvision has no model 'resnet1'" in capsys.readouterr().err


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())

    def forward(self, x):
        z = self.body(x)
        return z, {"emb": z * 2}


def test_output_selects_part_of_tuple_or_dict():
    from sslaudit.models.zoo import SelectOutput, parse_output
    from sslaudit.errors import UserError

    net, x = TupleNet(), torch.rand(3, 1, 8, 8)
    out = net(x)
    assert torch.equal(SelectOutput(parse_output("0"))(out), out[0])
    assert torch.equal(SelectOutput("emb")(out[1]), out[1]["emb"])
    with pytest.raises(UserError, match="--output"):
        SelectOutput(None)(out)
    with pytest.raises(UserError, match="--output"):
        SelectOutput(5)(out)
