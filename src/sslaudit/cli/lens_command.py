"""The command of a lens, generated from its contract: one option per config field (help text
and default from the dataclass), the shared context options, and `run_lens` as the body."""

from __future__ import annotations

import click

from ..lenses import config as lens_config
from .options import context_from, context_params


def lens_command(name: str, *, extra=(), before=None) -> click.Command:
    """`sslaudit NAME RUN [options]` for the registered lens `name`.

    `extra`: more click options (the CLI layer's own, e.g. influence --remove); `before(run, cfg,
    ctx, **extra_values)` may act on them and return True to stop before the lens runs."""
    from .. import lenses

    lens = lenses.get(name)
    specs = lens_config.options(lens.Config)
    extra_names = {p.name for p in extra}

    def callback(run, **values):
        ctx = context_from(values)
        extra_values = {k: values.pop(k) for k in list(values) if k in extra_names}
        given = {spec.path: spec.parse(values[_param(spec)]) for spec in specs if values.get(_param(spec)) is not None}
        cfg = lens_config.build(lens.Config, given, seed=ctx.seed, device=ctx.device, max_memory=ctx.max_memory)
        with ctx:
            r = ctx.open(run)
            if before is not None and before(r, cfg, ctx, **extra_values):
                return
            result = lenses.run_lens(lens, r, cfg, ctx)
            for line in lens.describe(result, r):
                click.echo(line)

    params = [click.Argument(["run"], type=click.Path()), *(_option(s) for s in specs), *extra, *context_params(engine=lens.uses_engine)]
    return click.Command(name, callback=callback, params=params, help=(type(lens).__doc__ or lens.title).strip(), short_help=lens.title)


def _param(spec) -> str:
    return "__".join(spec.path)


def _option(spec) -> click.Option:
    meta = spec.meta
    if meta.get("tristate"):  # on, off, or not given (the lens decides)
        return click.Option([f"{spec.flag}/--no-{spec.flag[2:]}", _param(spec)], default=None, help=meta["help"])
    if spec.is_bool:
        if meta.get("flag"):  # a one-way flag: given → the non-default value
            return click.Option([meta["flag"], _param(spec)], is_flag=True, default=None, help=meta["help"])
        flag = spec.flag
        return click.Option([f"{flag}/--no-{flag[2:]}", _param(spec)], default=None, help=meta["help"] + f" [default: {'on' if spec.default else 'off'}]")
    if spec.multiple:
        return click.Option([spec.flag, _param(spec)], multiple=True, default=None, metavar=meta.get("metavar"), help=meta["help"], required=bool(meta.get("required")))
    shown = None if spec.default is None else spec.show(spec.default)
    d = spec.default
    metavar = meta.get("metavar") or (None if meta.get("choices") else "INTEGER" if isinstance(d, int) else "NUMBER" if isinstance(d, float) else "LIST" if isinstance(d, tuple) else "TEXT")
    return click.Option(
        [spec.flag, _param(spec)],
        default=None,
        metavar=metavar,
        type=click.Choice(list(meta["choices"])) if meta.get("choices") else None,
        help=meta["help"] + (f" [default: {shown}]" if shown is not None else ""),
    )
