"""Entry point: a click group whose verbs are loaded lazily from their own modules.

User errors (`UserError`) end as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import UserError

_python_showwarning = None

# verb -> "module:attribute" for the verbs that are not lenses, and for lenses whose command adds
# options of the layer above the lenses (influence --remove). Every other registered lens
# (sslaudit.lenses.REGISTRY) gets a command generated from its contract.
COMMANDS = {
    "train": "sslaudit.cli.train:command",
    "import": "sslaudit.cli.train:import_command",
    "info": "sslaudit.cli.train:info_command",
    "influence": "sslaudit.cli.influence:command",
    "audit": "sslaudit.cli.audit:command",
    "report": "sslaudit.cli.audit:report_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        from .. import lenses

        return sorted(set(COMMANDS) | set(lenses.names()))

    def get_command(self, ctx, name):
        from .. import lenses

        target = COMMANDS.get(name)
        if target is not None:
            mod, attr = target.split(":")
            return getattr(importlib.import_module(mod), attr)
        if name in lenses.names():
            from .lens_command import lens_command

            return lens_command(name)
        return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sslaudit")
def cli():
    """Audit a self-supervised encoder: what it learned, from which data, and whether to trust it.

    Start with `sslaudit train --data digits --out runs/digits`, then run a lens on the run
    directory (e.g. `sslaudit krepes runs/digits`), or do everything at once with `sslaudit audit`.
    Every verb has its own --help.
    """


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """sslaudit's own warnings as one line; other libraries' warnings as Python prints them."""
    from ..progress import SslauditWarning

    if issubclass(category, SslauditWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def main(argv=None) -> int:
    import warnings

    global _python_showwarning
    if warnings.showwarning is not _show_warning:
        _python_showwarning, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        cli.main(args=argv, prog_name="sslaudit", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: finished stages are kept; rerun the same command to resume", err=True)
        return 130
    except OSError as e:  # the environment refused a file operation (permissions, disk full, /proc …)
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        click.echo(f"error: {where}{e.strerror or e}; check the path and that you may write there", err=True)
        return 2
    except MemoryError:
        click.echo("error: out of memory; lower --batch-size or --max-memory, or use a smaller --landmarks", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
