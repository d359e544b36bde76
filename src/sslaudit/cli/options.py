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
        return f(*args, seed=seed, device=resolve_device(device), **kw)

    return wrapper


def trust_option(f):
    """--trust-code: allow encoders stored as code (torch.export, TorchScript, a factory) on this command."""
    return click.option("--trust-code", "trust_code", is_flag=True,
                        help="Allow an encoder stored as code (a .pt2 torch.export program, TorchScript, package.module:factory): "
                             "opening it runs that code. Only for runs and files whose author you trust; plain weights never need it.")(f)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown --device {name!r}: use cpu, cuda, cuda:N or auto")
    return name


def data_options(f):
    """Options that choose and shape the dataset."""

    @click.option("--data", "data", required=True, help="digits, fashion-mnist, adult, adult-1m, or a path to a .csv or .npz file.")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder with the dataset files (else $SSLAUDIT_DATA, then system locations).")
    @click.option("--label", default=None, help="CSV: the label column (used only for evaluation).")
    @click.option("--protected", multiple=True, help="CSV: a protected attribute column for group analyses (repeatable).")
    @click.option("--exclude", multiple=True, help="CSV: a column kept out of the encoder's inputs (repeatable).")
    @click.option("--categorical", multiple=True, help="CSV: declare a column categorical (repeatable; default: inferred).")
    @click.option("--test-fraction", type=click.FloatRange(0.01, 0.9), default=0.2, show_default=True, help="Held-out share when the data has no test split.")
    @functools.wraps(f)
    def wrapper(*args, data, data_dir, label, protected, exclude, categorical, test_fraction, **kw):
        from ..run import data_config

        dcfg = data_config(data, label=label, protected=protected, exclude=exclude, categorical=list(categorical) or None, test_fraction=test_fraction, seed=kw.get("seed", 0), data_dir=data_dir)
        return f(*args, data_cfg=dcfg, **kw)

    return wrapper


def sample_refs(values) -> list[tuple[str, int]]:
    from ..data.dataset import parse_sample_ref

    return [parse_sample_ref(v) for v in values]


def number_or_keyword(value, keyword: str, convert, not_a_number: str, too_small: str | None = None, minimum=None):
    """An option that takes a number or one keyword ('auto', 'all'): the keyword, or the number
    converted by `convert`, or a UserError (`not_a_number` if it does not parse, `too_small` if it
    is below `minimum`, or not positive when `minimum` is None and `too_small` is given)."""
    if str(value).strip().lower() == keyword:
        return keyword
    try:
        v = convert(value)
    except ValueError:
        raise UserError(not_a_number) from None
    if too_small is not None and not (v >= minimum if minimum is not None else v > 0):
        raise UserError(too_small)
    return v
