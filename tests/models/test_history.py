"""Training history: one row per epoch in RUN/train/history.parquet, deterministic, and TensorBoard."""

from __future__ import annotations

import pytest

from sslaudit.cli.main import main
from sslaudit.store import RunStore


def _train(out, *extra):
    return main(["train", "--data", "digits", "--epochs", "2", "--batch-size", "128", "--out", str(out), "--quiet", *extra])


def test_history_per_epoch_is_stored_and_deterministic(tmp_path):
    assert _train(tmp_path / "a") == 0 and _train(tmp_path / "b") == 0
    a, b = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    h = a.read_parquet("train/history.parquet")
    assert list(h["epoch"]) == [1, 2] and list(h["step"]) == [11, 22]  # 1,437 // 128 = 11 steps per epoch
    assert {"loss", "loss_last_step", "lr", "knn_accuracy", "collapse_std"} <= set(h.columns)
    assert h["loss"].iloc[1] < h["loss"].iloc[0], "the SSL loss falls over the first epochs"
    assert (h["knn_accuracy"] > 0.1).all()  # better than chance on ten classes
    # no wall times in the table: same seed, same bytes
    assert a.read_bytes("train/history.parquet") == b.read_bytes("train/history.parquet")
    assert a.manifest["artefacts"]["train/history.parquet"]["sha256"] == b.manifest["artefacts"]["train/history.parquet"]["sha256"]


def test_log_tensorboard_writes_the_same_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'sslaudit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    assert _train(tmp_path / "run", "--log", "tensorboard", str(logdir)) == 0
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/knn_accuracy", "train/lr"} <= tags
    h = RunStore(tmp_path / "run").read_parquet("train/history.parquet")
    loss = [e.value for e in acc.Scalars("train/loss")]
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    assert loss == pytest.approx(h["loss"].tolist(), rel=1e-6)


def test_log_rejects_other_backends(tmp_path, capsys):
    assert _train(tmp_path / "run", "--log", "wandb", str(tmp_path / "w")) == 2
    assert "tensorboard" in capsys.readouterr().err
