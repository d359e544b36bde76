"""Options shared by every verb, and helpers that turn them into library calls."""

from __future__ import annotations

import functools

import click

from ..errors import UserError
from ..progress import set_enabled


def common(f):
    """--seed, --device, --quiet on any verb."""

    @click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random draw; same seed, same result.")
    @click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 … or auto (CUDA when present).")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
    @functools.wraps(f)
    def wrapper(*args, seed, device, quiet, **kw):
        if not 0 <= seed < 2**32:
            raise UserError(f"--seed {seed}: a seed is a whole number from 0 to 4294967295")
        if quiet:
            set_enabled(False)
        from ..lenses.context import resolve_device

        return f(*args, seed=seed, device=resolve_device(device), **kw)

    return wrapper


TRUST_HELP = (
    "Allow an encoder stored as code (a .pt2 torch.export program, TorchScript, package.module:factory): "
    "opening it runs that code. Only for runs and files whose author you trust; plain weights never need it."
)


def trust_option(f):
    """--trust-code: allow encoders stored as code (torch.export, TorchScript, a factory) on this command."""
    return click.option("--trust-code", "trust_code", is_flag=True, help=TRUST_HELP)(f)


def context_params(*, engine: bool = False) -> list[click.Option]:
    """The options every lens command shares; `context_from` turns their values into a Context."""
    params = [
        click.Option(["--max-memory"], default=None, help="Memory budget, e.g. 6GB or 512MB: lenses that hold large arrays size their blocks to stay under it, or refuse with what to change."),
        click.Option(["--data-dir"], type=click.Path(file_okay=False), default=None, help="Where the run's data lives, if it moved."),
        click.Option(["--trust-code", "trust_code"], is_flag=True, help=TRUST_HELP),
        click.Option(["--seed"], type=int, default=0, show_default=True, help="Seed of every random draw; same seed, same result."),
        click.Option(["--device"], default="auto", show_default=True, help="cpu, cuda, cuda:1 … or auto (CUDA when present)."),
        click.Option(["--quiet", "-q"], is_flag=True, help="No progress bars or status lines."),
    ]
    if engine:
        params[:0] = [
            click.Option(
                ["--engine"], type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Block-execution engine: local, or ray (blocks as tasks on a running Ray cluster)."
            ),
            click.Option(["--address"], default=None, help="HOST:PORT of the Ray cluster's head (with --engine ray), as printed by `ray start --head`."),
        ]
    return params


def context_from(values: dict):
    """The Context of a command from its shared options (removed from `values`)."""
    from ..lenses.context import Context

    if values.pop("quiet", False):
        set_enabled(False)
    return Context.resolve(
        seed=values.pop("seed", 0),
        device=values.pop("device", "auto"),
        max_memory=values.pop("max_memory", None),
        engine=values.pop("engine", "local"),
        address=values.pop("address", None),
        trust_code=values.pop("trust_code", False),
        data_dir=values.pop("data_dir", None),
    )


def data_options(f):
    """Options that choose and shape the dataset."""

    @click.option(
        "--data",
        "data",
        required=True,
        help="digits, fashion-mnist, adult, adult-1m; a .csv or .parquet table; a .npz (x, y, x_test, y_test) or .npy of images "
        "(N×H×W or N×C×H×W, uint8 or float in [0, 1]; a 2-D .npy is a table); a folder saved by Hugging Face save_to_disk; "
        "or a folder of images (PNG/JPEG/WebP: train/<class>/… and test/<class>/…, <class>/…, or just images). Images from files are read per batch from disk.",
    )
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder with the dataset files (else $SSLAUDIT_DATA, then system locations).")
    @click.option("--label", default=None, help="Tables (CSV, Parquet) and saved Hugging Face datasets: the label column (used only for evaluation; a HF ClassLabel column is found by itself).")
    @click.option("--protected", multiple=True, help="Tables: a protected attribute column for group analyses (repeatable).")
    @click.option("--exclude", multiple=True, help="Tables: a column kept out of the encoder's inputs (repeatable).")
    @click.option("--categorical", multiple=True, help="Tables: declare a column categorical (repeatable; default: inferred).")
    @click.option(
        "--image-size",
        "image_size",
        default=None,
        metavar="N|HxW",
        help="Image folders and saved HF image datasets: resize every image to N×N (or H×W) pixels [default: the images' own size, which must then be one].",
    )
    @click.option("--test-fraction", type=click.FloatRange(0.01, 0.9), default=0.2, show_default=True, help="Held-out share when the data has no test split.")
    @functools.wraps(f)
    def wrapper(*args, data, data_dir, label, protected, exclude, categorical, image_size, test_fraction, **kw):
        from ..run import data_config

        dcfg = data_config(
            data,
            label=label,
            protected=protected,
            exclude=exclude,
            categorical=list(categorical) or None,
            test_fraction=test_fraction,
            seed=kw.get("seed", 0),
            data_dir=data_dir,
            image_size=image_size,
        )
        return f(*args, data_cfg=dcfg, **kw)

    return wrapper


def augment_options(f):
    """`--augment PRESET|FILE` and `--augment-set KEY=VALUE`: the augmentation, resolved to a spec stored in the run."""

    @click.option(
        "--augment",
        "augment",
        default=None,
        metavar="PRESET|FILE",
        help="The augmentation the encoder is (or was) trained with, which every lens that draws views uses: default (per dataset), simclr, byol (asymmetric views), "
        "or a .json/.yaml file {preset, OPTION: VALUE, views: [{…}, {…}]} (see docs/augmentations.md) [default: default].",
    )
    @click.option(
        "--augment-set",
        "augment_set",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one augmentation option for both views (repeatable), e.g. crop_scale=[0.2,1] blur_prob=0 hue=0.05.",
    )
    @functools.wraps(f)
    def wrapper(*args, augment, augment_set, **kw):
        from ..data.augment import read_augment_spec
        from ..parsing import key_values

        spec = {**read_augment_spec(augment), **key_values(augment_set, "--augment-set", "blur_prob=0")}
        return f(*args, augment=spec, **kw)

    return wrapper


def tensorboard_log_option(help: str):
    """`--log tensorboard DIR`: the training history also written to TensorBoard (train, audit)."""
    return click.option("--log", "log", nargs=2, type=(click.Choice(["tensorboard"]), click.Path(file_okay=False)), default=None, metavar="tensorboard DIR", help=help)
