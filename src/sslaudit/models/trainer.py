"""Seeded, resumable training of an SSL method on augmented views.

Reproducibility: the sample order and the augmentation draws of epoch e come from generators
derived from (seed, e), never from global state, so a run resumed from its epoch-e checkpoint
continues exactly as an uninterrupted run would (bit-identical weights on CPU). The checkpoint
(weights, optimiser, BYOL's EMA target, the history so far) is written atomically after every
epoch, together with RUN/train/history.parquet: the mean loss, the learning rate and a small k-NN
probe per epoch (models/history.py), optionally mirrored to TensorBoard.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from ..data.dataset import Dataset
from ..errors import UserError
from ..progress import info, progress, warn
from ..seeding import numpy_rng, torch_generator
from ..store import RunStore, config_hash
from .history import HISTORY, EpochProbe
from .methods import Method

CHECKPOINT = "train/checkpoint.pt"


@dataclass
class TrainConfig:
    """What a training run does; saved in RUN/config.json."""

    objective: str = "simclr"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0
    arch: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # objective hyper-parameters
    augment: dict = field(default_factory=dict)  # overrides of the default augmentation

    def to_json(self) -> dict:
        return asdict(self)


def check_batch_size(batch_size: int, n: int) -> None:
    if batch_size < 2:
        raise UserError(f"--batch-size {batch_size} is too small: SSL losses compare samples within a batch, use at least 2 (e.g. 256)")
    if batch_size > n:
        raise UserError(f"--batch-size {batch_size} is larger than the {n} training samples; use at most {n}")


def batch_rows(x, rows: torch.Tensor) -> torch.Tensor:
    """The rows `rows` of a tensor, or of an array-like that decodes them (an image folder), as float32."""
    if isinstance(x, torch.Tensor):
        return x[rows]
    return torch.from_numpy(np.ascontiguousarray(x[rows.numpy()], dtype=np.float32))


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * 0.5 * (1 + math.cos(math.pi * t))


def train(method: Method, dataset: Dataset, cfg: TrainConfig, store: RunStore, *, augment, device: str = "cpu", extra_loss=None, log=None) -> dict:
    """Train `method` in place; resume from RUN/train/checkpoint.pt if it matches `cfg`.

    `extra_loss(method, views) -> tensor` is added to the method's loss (Q-Score regulariser).
    `log` (a models.history.TensorBoardLog) also receives each epoch's history row.
    Returns timing statistics. Must be called inside `with store.lock()`.
    """
    from ..data.augment import as_augment

    augment = as_augment(augment)
    x_all = dataset.train.x
    if isinstance(x_all, np.ndarray):  # in memory; an image folder (FolderImages) is decoded batch by batch
        x_all = torch.as_tensor(x_all, dtype=torch.float32)
    n = len(x_all)
    check_batch_size(cfg.batch_size, n)
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise UserError(f"--lr {cfg.lr}: the learning rate must be a positive finite number (e.g. 2e-3)")
    steps_per_epoch = n // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warmup = min(steps_per_epoch, max(total // 10, 1))
    method.to(device)
    opt = torch.optim.AdamW(method.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    start_epoch, seconds, history = 0, 0.0, []
    probe = EpochProbe(dataset, cfg.seed)
    ckpt_cfg = {"train": cfg.to_json()}
    state = resumable_checkpoint(store, ckpt_cfg, device)
    if state is not None:
        method.load_state_dict(state["method"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, seconds = int(state["epoch"]) + 1, float(state["seconds"])
        history = list(state.get("history", []))
        if log is not None:
            for row in history:
                log.epoch(row)
        info(f"resuming training from the checkpoint after epoch {start_epoch} of {cfg.epochs}")
        if int(state.get("torch_threads", torch.get_num_threads())) != torch.get_num_threads():
            warn(
                f"the checkpoint was trained with {int(state['torch_threads'])} torch threads and this process uses "
                f"{torch.get_num_threads()}; the weights will differ slightly from an uninterrupted run (the thread count is part of the seed)"
            )

    step = start_epoch * steps_per_epoch
    bar = progress(total=total, initial=step, desc=f"train {cfg.objective}")
    last_loss = float("nan")
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        loss_sum = 0.0
        method.train()
        order = torch.as_tensor(numpy_rng(cfg.seed, "order", epoch).permutation(n))
        g = torch_generator(cfg.seed, "augment", epoch)
        for b in range(steps_per_epoch):
            xb = batch_rows(x_all, order[b * cfg.batch_size : (b + 1) * cfg.batch_size]).to(device)
            views = [augment.view(i)(xb, g) for i in range(method.n_views)]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg.lr, warmup)
            loss = method.loss(views)
            if extra_loss is not None:
                loss = loss + extra_loss(method, views)
            if not torch.isfinite(loss):
                raise UserError(f"training diverged (loss {loss.item()} at epoch {epoch + 1}); lower --lr or change --batch-size")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            method.on_step_end(step / total)
            last_loss = float(loss.detach())
            loss_sum += last_loss
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{last_loss:.4f}")
        seconds += time.perf_counter() - t0
        row = {"epoch": epoch + 1, "step": step, "loss": loss_sum / max(steps_per_epoch, 1), "loss_last_step": last_loss, "lr": lr_at(step - 1, total, cfg.lr, warmup)}
        if probe.enabled:  # eval mode, no grad: leaves the training state alone
            row.update(probe(method.encoder, device) if probe.due(epoch + 1, cfg.epochs) else {"knn_accuracy": float("nan"), "collapse_std": float("nan")})
        history.append(row)
        if log is not None:
            log.epoch(row)
        state = {
            "method": method.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "seconds": seconds,
            "loss": last_loss,
            "history": history,
            "config_hash": config_hash(ckpt_cfg),
            "torch_threads": torch.get_num_threads(),
        }
        store.write_parquet(HISTORY, pd.DataFrame(history), stage="train/checkpoint")
        store.write_torch(CHECKPOINT, state, stage="train/checkpoint")
        store.mark_done("train/checkpoint", ckpt_cfg, [CHECKPOINT, HISTORY], {"epoch": epoch})
    bar.close()
    if log is not None:
        log.close()
    samples = steps_per_epoch * cfg.batch_size * cfg.epochs
    return {"train_seconds": seconds, "samples_per_second": samples / seconds if seconds > 0 else None, "final_loss": last_loss, "steps": total, "torch_threads": torch.get_num_threads()}


def resumable_checkpoint(store: RunStore, ckpt_cfg: dict, device: str) -> dict | None:
    """The checkpoint to resume from, or None.

    The checkpoint's stage is recorded in the manifest after the file is written; a kill between
    the two leaves a complete checkpoint that the manifest does not (yet) vouch for. Such a file is
    still used when it loads as weights (weights_only=True) and records this training's config
    hash — it was written by this training, one epoch further than the manifest knows.
    """
    import pickle
    import zipfile

    if store.stage_done("train/checkpoint", ckpt_cfg):
        return store.read_torch(CHECKPOINT, map_location=device)
    p = store.path(CHECKPOINT)
    if not p.is_file():
        return None
    try:
        import io

        from ..store import read_regular_file

        state = torch.load(io.BytesIO(read_regular_file(p)), map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError):
        return None  # a torn or foreign file: train from the start
    if not isinstance(state, dict) or state.get("config_hash") != config_hash(ckpt_cfg) or not {"method", "optimizer", "epoch", "seconds"} <= state.keys():
        return None
    store.register_file(CHECKPOINT, stage="train/checkpoint")
    store.mark_done("train/checkpoint", ckpt_cfg, [CHECKPOINT], {"epoch": int(state["epoch"])})
    return state
