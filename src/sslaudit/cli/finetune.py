"""`sslaudit train --init RUN [--qscore-reg L1,L2]`: fine-tune a run, optionally Q-Score-regularised
(called from cli/train.py; the experiment layer above the lenses)."""

from __future__ import annotations

from ..errors import UserError

REG_RECORD = "qscore/regularizer.json"


def parse_reg(text: str) -> tuple[float, float]:
    try:
        l1, l2 = (float(p) for p in str(text).split(","))
    except ValueError:
        raise UserError(f"--qscore-reg {text!r}: give two weights L1,L2 such as 1e-4,1e-4") from None
    if not (l1 >= 0 and l2 >= 0):
        raise UserError(f"--qscore-reg {text!r}: the weights must be ≥ 0 (e.g. 1e-4,1e-4)")
    return l1, l2


def finetune(ctx, data_cfg, init, qscore_reg, *, epochs, out, force, seed, device):
    """Fine-tune run `init` (same data, objective, architecture), optionally Q-Score-regularised.

    Options given explicitly on the command line must agree with RUN (data, objective, arch);
    --batch-size and --lr override RUN's values only when given.
    """
    from dataclasses import fields
    from pathlib import Path

    from click.core import ParameterSource

    from ..methods.qscore import QScoreRegularizer
    from ..models.trainer import TrainConfig
    from ..run import MANIFEST, load, train_run
    from ..store import RunStore

    if init is None:
        raise UserError("--qscore-reg needs --init RUN: the regulariser fine-tunes an existing run with the discriminative features found in it")
    if "external" in RunStore(init).config:  # checked before opening: an imported encoder is never loaded here
        raise UserError(f"{init} holds an imported encoder without its SSL training method; --init needs a run made by `sslaudit train`")
    src = load(init, device=device)
    given = lambda name: ctx.get_parameter_source(name) is not ParameterSource.DEFAULT  # noqa: E731
    train = dict(src.config["train"])
    if given("data") and data_cfg["spec"] != src.config["data"]["spec"]:
        raise UserError(f"--data {data_cfg['spec']} differs from the data of {init} ({src.config['data']['spec']}); drop --data with --init")
    if given("objective") and ctx.params["objective"] != train["objective"]:
        raise UserError(f"--objective {ctx.params['objective']} differs from {init}'s objective {train['objective']}; drop --objective with --init")
    if given("arch") and ctx.params["arch"] not in ("auto", src.config["arch"]["arch"]):
        raise UserError(f"--arch {ctx.params['arch']} differs from {init}'s architecture {src.config['arch']['arch']}; drop --arch with --init")
    if ctx.params.get("params"):
        raise UserError(f"--param with --init: the fine-tune reuses {init}'s objective parameters {train.get('params') or {}}; drop --param")
    for name in ("batch_size", "lr"):
        if given(name):
            train[name] = ctx.params[name]
    train.update(epochs=epochs if epochs is not None else train["epochs"], seed=seed, arch=src.config["arch"])
    cfg = TrainConfig(**{f.name: train[f.name] for f in fields(TrainConfig) if f.name in train})
    reg, record = None, {"init": str(Path(init).resolve()), "qscore_reg": None}
    if qscore_reg is not None:
        reg = QScoreRegularizer.from_run(src, *parse_reg(qscore_reg))
        record = {**record, **reg.config}
    outp = Path(out)
    if (outp / MANIFEST).is_file():  # train_run's config does not record the regulariser: check it here
        prev = RunStore(outp)
        old = prev.read_json(REG_RECORD) if prev.has(REG_RECORD) else None
        if prev.stage_done("train") and old != record:
            if not force:
                raise UserError(f"{out} already holds a trained run with other fine-tuning settings; choose another --out or pass --force")
            with prev.lock():
                prev.invalidate("train")
                prev.invalidate("train/checkpoint")
    path = train_run(src.config["data"], cfg, out, force=force, device=device, init=record["init"], extra_loss=reg)
    store = RunStore(path)
    with store.lock():
        store.write_json(REG_RECORD, record, stage="train")
    return path
