"""Runs on an image folder: `train` → qscore/relax/report, and `import --arch resnet18` whose embeddings
equal a torchvision ResNet-18 on the same files decoded independently (PIL), normalisation included."""

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

from sslaudit.cli.main import main
from sslaudit.run import load

from .fm_folder import write_folder


def test_train_then_lenses_and_report_on_a_folder(tmp_path):
    data = tmp_path / "images"
    write_folder(data, n_train=40, n_test=20, formats=("png", "webp"))
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(data), "--image-size", "20", "--epochs", "1", "--batch-size", "16", "--augment", "simclr", "--augment-set", "blur_prob=0", "--out", str(run_dir), "--quiet"]
    assert main(argv) == 0
    run = load(run_dir)
    assert run.config["train"]["augment"] == {"preset": "simclr", "blur_prob": 0}  # the spec itself, used by every lens
    assert run.augment.config()["saturation"] == 0.4 and run.augment.config()["blur_prob"] == 0.0
    assert run.config["data"]["spec"] == str(data.resolve()) and run.config["data"]["image_size"] == [20, 20]
    assert run.dataset.input_shape == (3, 20, 20) and run.dataset.test.paths[0].startswith("test/")
    assert main(["qscore", str(run_dir), "--quiet"]) == 0
    scores = load(run_dir).store.read_parquet("qscore/scores.parquet")  # every per-sample table names each sample's file
    assert list(scores.columns[:4]) == ["split", "index", "label", "path"]
    for split in ("train", "test"):
        part = scores[scores["split"] == split]
        s = run.dataset.split(split)
        assert part["path"].tolist() == [s.paths[list(s.index).index(i)] for i in part["index"]]
    assert main(["relax", str(run_dir), "--index", "test:3", "--masks", "200", "--no-sanity", "--quiet"]) == 0
    # the kernel lenses read the folder block by block (tests/data/test_lazy_rows.py checks it is never decoded whole)
    assert main(["krepes", str(run_dir), "--landmarks", "8", "--test-points", "5", "--step-sample", "16", "--ssl-batch-size", "8", "--probe-sample", "40", "--quiet"]) == 0
    assert main(["influence", str(run_dir), "--subsample", "24", "--pairs", "5", "--check", "0", "--draws", "1", "--quiet"]) == 0
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").stat().st_size > 10_000
    landmarks = load(run_dir).store.read_parquet("krepes/landmarks.parquet")
    assert "train_path" in landmarks.columns and landmarks["train_path"].str.startswith("train/").all()
    assert (run_dir / "qscore").is_dir() and any((run_dir / "relax").iterdir())


def test_imported_resnet18_on_a_folder_equals_torchvision(tmp_path):
    data = tmp_path / "images"
    write_folder(data, n_train=30, n_test=10)
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    net.conv1, net.maxpool, net.fc = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity(), nn.Identity()  # solo-learn's CIFAR stem
    ckpt = tmp_path / "solo.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}, "epoch": 1}, ckpt)
    mean, std = [0.3, 0.3, 0.3], [0.35, 0.35, 0.35]
    assert (
        main(
            [
                "import",
                "--data",
                str(data),
                "--arch",
                "resnet18",
                "--weights",
                str(ckpt),
                "--prefix",
                "backbone.",
                "--cifar-stem",
                "--mean",
                ",".join(map(str, mean)),
                "--std",
                ",".join(map(str, std)),
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    run = load(tmp_path / "run")
    got = run.embeddings("test")
    files = sorted((data / "test").rglob("*.png"))
    assert [str(f.relative_to(data)) for f in files] == list(run.dataset.test.paths)
    x = torch.stack([torch.as_tensor(np.asarray(Image.open(f).convert("RGB")), dtype=torch.float32).permute(2, 0, 1) / 255 for f in files])
    with torch.no_grad():
        want = net.eval()((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]).numpy()
    assert got.shape == (10, 512)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert main(["qscore", str(tmp_path / "run"), "--quiet"]) == 0


def test_train_a_torchvision_resnet18_with_the_cifar_stem(tmp_path, capsys):
    """`train --arch resnet18 --cifar-stem`: torchvision's module, trained from scratch, reloaded from
    plain weights; its embeddings equal a torchvision ResNet-18 built here with the same weights."""
    data = tmp_path / "images"
    write_folder(data, n_train=24, n_test=8)
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(data), "--image-size", "8", "--arch", "resnet18", "--cifar-stem", "--epochs", "1", "--batch-size", "8", "--out", str(run_dir), "--quiet"]
    assert main(argv) == 0
    run = load(run_dir)
    arch = run.config["arch"]
    assert arch["arch"] == "zoo" and arch["name"] == "resnet18" and arch["cifar_stem"] and arch["proj_dim"] == 256
    assert (run_dir / "model.safetensors").is_file() and not run.config.get("import")  # weights, no code
    net = torchvision.models.resnet18(weights=None)
    net.conv1, net.maxpool, net.fc = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity(), nn.Identity()
    net.load_state_dict({k[len("backbone.") :]: v for k, v in run.encoder.state_dict().items() if k.startswith("backbone.")})
    net.eval()
    x = torch.as_tensor(run.dataset.test.x[:4])
    mean, std = torch.tensor(arch["mean"]).view(1, -1, 1, 1), torch.tensor(arch["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(run.encoder.eval()(x), net((x - mean) / std), rtol=1e-5, atol=1e-5)
    assert run.encoder(x).shape == (4, 512) and run.method.model.projector[-1].out_features == 256
    assert main(["train", "--data", str(data), "--image-size", "16", "--arch", "nosuchnet", "--epochs", "1", "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert main(["train", "--data", str(data), "--image-size", "16", "--arch", "convnet", "--cifar-stem", "--epochs", "1", "--out", str(tmp_path / "r3"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "torchvision has no model 'nosuchnet'" in err and "--cifar-stem applies to a torchvision ResNet" in err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
