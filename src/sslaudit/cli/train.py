"""`sslaudit train`, `sslaudit import` and `sslaudit info`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from ..parsing import key_values
from .options import augment_options, common, data_options, tensorboard_log_option, trust_option


@click.command("train")
@data_options
@click.option("--objective", type=click.Choice(["simclr", "byol", "vicreg", "barlow", "simvae", "vae", "betavae"]), default="simclr", show_default=True, help="The SSL objective.")
@click.option(
    "--arch",
    default="auto",
    show_default=True,
    metavar="auto|mlp|convnet|resnet|NAME|timm:NAME",
    help="Encoder: auto = MLP for tables, small ConvNet for images; resnet = sslaudit's small ResNet; NAME = a torchvision builder (resnet18, resnet50, …) "
    "and timm:NAME a timm one, built without downloaded weights, head removed, with a 2048-256 projector as solo-learn's.",
)
@click.option("--cifar-stem", "cifar_stem", is_flag=True, help="With --arch resnet18/resnet50/…: solo-learn's CIFAR stem (3×3 stride-1 conv1, no max-pool), for small images.")
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Passes over the training data [default: sized to the data: 60 up to 5,000 samples; up to 100,000, 10 for images and 15 for tables; 3 above].",
)
@click.option("--batch-size", type=int, default=None, help="Samples per SSL batch (≥ 2, ≤ the training set) [default: 256, or less for small data].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True, help="Peak learning rate (AdamW, warm-up then cosine).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="An objective hyper-parameter (repeatable), e.g. temperature=0.2 (simclr), lambd=0.005 (barlow), z_dim=16, J=4, sigma_x2=0.01, prior=uniform, beta=4 (simvae/vae/betavae).",
)
@augment_options
@click.option("--out", required=True, type=click.Path(), help="Run directory to write (resumed if it holds the same unfinished run).")
@click.option("--force", is_flag=True, help="Replace a different run already at --out.")
@click.option(
    "--init", "init", type=click.Path(), default=None, help="Fine-tune the run RUN: start from its weights, with its data, objective, architecture, batch size and lr (--data becomes optional)."
)
@tensorboard_log_option("Also write the per-epoch loss and k-NN probe to TensorBoard in DIR (needs the tensorboard extra). The history is always stored in RUN/train/history.parquet.")
@click.option("--qscore-reg", "qscore_reg", default=None, help="With --init: add the Q-Score regulariser with weights L1,L2 (e.g. 1e-4,1e-4); ε and the discriminative features come from RUN.")
@common
def command(data_cfg, objective, arch, cifar_stem, epochs, batch_size, lr, params, augment, out, force, init, log, qscore_reg, seed, device):
    """Train an SSL encoder and store it as a run: weights, config, metrics and a manifest.

    An interrupted training resumes from its last epoch when the same command is run again, and
    ends with the same weights as an uninterrupted run. Labels are used only for the evaluation
    in metrics.json (linear probe, k-NN).
    """
    from ..models.methods import GENERATIVE
    from ..models.trainer import TrainConfig
    from ..run import load_data, train_run

    if init is not None or qscore_reg is not None:
        from .finetune import finetune

        return print_metrics(finetune(click.get_current_context(), data_cfg, init, qscore_reg, epochs=epochs, out=out, force=force, seed=seed, device=device))
    if click.get_current_context().get_parameter_source("data") is click.core.ParameterSource.DEFAULT:
        raise UserError("--data is required (or --init RUN to fine-tune an existing run)")
    dataset = load_data(data_cfg)
    if epochs is None:
        epochs = default_epochs(len(dataset.train), dataset.kind)
    cfg = TrainConfig(
        objective=objective, epochs=epochs, batch_size=batch_size or default_batch_size(len(dataset.train)), lr=lr, seed=seed, params=key_values(params, "--param", "temperature=0.2"), augment=augment
    )
    from ..models.history import parse_log

    path = train_run(data_cfg, cfg, out, force=force, device=device, arch=arch, cifar_stem=cifar_stem, dataset=dataset, log=parse_log(log))
    if objective in GENERATIVE:  # a generative run comes with its explanation views (the SimVAE lens's figures)
        from ..methods.simvae import write_explanations
        from ..run import load

        write_explanations(load(path, device=device))
    print_metrics(path)


for _p in command.params:  # --data may be omitted with --init (the data is RUN's)
    if _p.name == "data":
        _p.required = False


def default_batch_size(n: int) -> int:
    """256, or the largest power of two ≤ n/2 for small data (at least 2)."""
    b = 256
    while b > 2 and b > n // 2:
        b //= 2
    return b


def default_epochs(n: int, kind: str) -> int:
    """Enough passes for a useful encoder within minutes on a CPU."""
    if n <= 5_000:
        return 60
    if n <= 100_000:  # Fashion-MNIST's ConvNet: 10 epochs ≈ 20 min on two cores; the MLP on tables is cheap
        return 10 if kind == "image" else 15
    return 3


def print_metrics(path: Path) -> None:
    from ..store import RunStore

    m = RunStore(path).read_json("metrics.json")
    acc = m.get("linear_probe_accuracy")
    knn = m.get("knn_accuracy")
    parts = [f"run: {path}"]
    if acc is not None:
        parts.append(f"linear probe {acc:.4f}, k-NN {knn:.4f}")
    parts.append(f"collapse_std {m['collapse_std']:.3f}")
    if m.get("train_seconds"):
        parts.append(f"{m['train_seconds']:.1f} s")
    click.echo(" · ".join(parts))


@click.command("import")
@data_options
@click.option(
    "--encoder",
    "encoder",
    default=None,
    help="A .safetensors (or torch.save) state dict of an sslaudit architecture (mlp, convnet, resnet; "
    "recognised from its tensors) — or, with --trust-code, a torch.export program (.pt2), a TorchScript file, or package.module:factory.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --arch or a factory: the state dict (.safetensors, torch.save, or a Lightning/solo-learn .ckpt; read with weights_only=True).",
)
@click.option(
    "--arch",
    "arch",
    default=None,
    metavar="NAME",
    help="A torchvision model builder by name (resnet18, resnet50, …) or timm:NAME; its head is removed. Weights from --weights; no --trust-code needed (weights are data).",
)
@click.option("--prefix", default=None, help="With --arch: keep only keys starting with this prefix and strip it (solo-learn/Lightning: backbone.).")
@click.option("--cifar-stem", "cifar_stem", is_flag=True, help="With --arch resnet*: solo-learn's CIFAR stem (3×3 stride-1 conv1, no max-pool).")
@click.option("--output", "output", default=None, metavar="KEY|INDEX", help="With --arch: the part of a tuple (INDEX) or dict (KEY) output that is the embedding.")
@click.option("--mean", default=None, metavar="M[,M,M]", help="With --arch (required): the per-channel input mean the encoder was trained with, on [0, 1] images (stored in the run).")
@click.option("--std", default=None, metavar="S[,S,S]", help="With --arch (required): the per-channel input std the encoder was trained with (stored in the run).")
@click.option(
    "--objective",
    type=click.Choice(["simclr", "byol", "vicreg", "barlow"]),
    default="simclr",
    show_default=True,
    help="The objective the encoder was trained with (KREPES' Gauss–Newton step uses it).",
)
@augment_options
@click.option("--out", required=True, type=click.Path(), help="Run directory to write.")
@click.option("--force", is_flag=True, help="Replace a different run already at --out.")
@trust_option
@common
def import_command(data_cfg, encoder, weights, arch, prefix, cifar_stem, output, mean, std, objective, augment, out, force, seed, device, trust_code):
    """Make a run from your own encoder, so that every lens can audit it.

    Weights need no trust. A code-carrying encoder (.pt2, TorchScript, a factory) needs
    --trust-code; if it is one of sslaudit's architectures it is stored as plain weights, so the
    run opens without --trust-code afterwards. Otherwise the run keeps the code and every command
    that opens it needs --trust-code (see docs/security.md).
    """
    from ..run import import_run

    path = import_run(
        data_cfg,
        encoder,
        weights,
        objective,
        out,
        force=force,
        device=device,
        seed=seed,
        trust_code=trust_code,
        arch=arch,
        prefix=prefix,
        cifar_stem=cifar_stem,
        output=output,
        mean=mean,
        std=std,
        augment=augment,
    )
    print_metrics(path)


@click.command("info")
@click.argument("run", type=click.Path())
def info_command(run):
    """Show a run's configuration, metrics and stored artefacts."""
    from ..store import RunStore

    store = RunStore(run)
    click.echo(json.dumps({"config": store.config, "stages": sorted(store.manifest["stages"]), "artefacts": len(store.manifest["artefacts"])}, indent=1))
    if "metrics.json" in store.manifest["artefacts"]:  # read through the store: inside the run, checksum-verified
        click.echo(store.read_bytes("metrics.json").decode("utf-8", errors="replace"))
