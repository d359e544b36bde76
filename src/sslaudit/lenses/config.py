"""Lens options declared once: dataclass fields whose metadata carries the help text and the
command-line spelling. The CLI generates its options from them (`cli/lens_command.py`), the audit
and the library build the same dataclasses, and `command_line` turns one back into the command
that reproduces it.

Metadata keys of a field (all optional but `help`):
    help      the option's help text (required for every field shown on the command line)
    flag      the command-line spelling (default: --field-name); for a bool, the flag that sets
              the non-default value, e.g. "--raw-kernel" for normalize=True
    parse     str → value, raising UserError with a message that names the flag
    choices   allowed values of a str field
    multiple  the option is repeatable (the field is a tuple of strings)
    cli       False: not a command-line option (set by the context or taken from the run)
Nested dataclass fields (e.g. a method's own config inside a lens config) are flattened.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any, Callable, Iterator

from ..errors import UserError

CONTEXT_FIELDS = ("seed", "device", "max_memory")  # filled in from the context, never separate options


def opt(default: Any = MISSING, help: str = "", *, factory: Callable | None = None, **meta) -> Any:
    """A config field with its help text and command-line metadata."""
    md = {"help": help, **meta}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def nested(target: str) -> Any:
    """A field holding another config with its defaults — a method's own config inside a lens
    config. `target` is "module:Class", imported when first needed so a lens module stays light."""

    def factory():
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)()

    return field(default_factory=factory)


def field_default(f: Field) -> Any:
    """A dataclass field's default value (its factory called)."""
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option of a config: where it lives (path of field names) and how it parses."""

    path: tuple[str, ...]
    field: Field

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def meta(self) -> dict:
        return dict(self.field.metadata)

    @property
    def flag(self) -> str:
        return self.meta.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def default(self) -> Any:
        return field_default(self.field)

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)

    @property
    def multiple(self) -> bool:
        return bool(self.meta.get("multiple"))

    def parse(self, text: Any) -> Any:
        """The field's value from its command-line text (flags and repeatable options pass through)."""
        if self.is_bool:  # a one-way flag (metadata flag) sets the non-default value; --x/--no-x gives it
            return (not self.default if text else self.default) if self.meta.get("flag") else bool(text)
        if self.multiple:
            return tuple(text)
        if text is None:
            return None
        p = self.meta.get("parse")
        if p is not None:
            return p(text)
        choices = self.meta.get("choices")
        if choices is not None:
            if text not in choices:
                raise UserError(f"{self.flag} {text!r}: choose one of {', '.join(map(str, choices))}")
            return text
        d = self.default
        for typ, word in ((int, "a whole number"), (float, "a number")):
            if isinstance(d, typ) and not isinstance(d, bool):
                try:
                    return typ(text)
                except ValueError:
                    raise UserError(f"{self.flag} {text!r}: give {word}") from None
        return str(text)

    def bool_flag(self, value: bool) -> str:
        """The flag that gives a bool field `value`."""
        if self.meta.get("flag"):
            return self.meta["flag"] if value != self.default else ""
        return "--" + ("" if value else "no-") + self.name.replace("_", "-")

    def show(self, value: Any) -> str:
        """The command-line text of a value (inverse of parse for the usual types)."""
        if isinstance(value, (tuple, list)):
            return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def options(config_cls) -> list[OptionSpec]:
    """Every command-line option of a config class (nested configs flattened, context fields left out)."""
    return list(_walk(config_cls, ()))


def _walk(cls, prefix) -> Iterator[OptionSpec]:
    for f in fields(cls):
        default = field_default(f)
        if is_dataclass(default):
            yield from _walk(type(default), prefix + (f.name,))
            continue
        if f.name in CONTEXT_FIELDS or f.metadata.get("cli") is False:
            continue
        if not f.metadata.get("help"):
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: every lens option needs one (metadata help=...)")
        yield OptionSpec(prefix + (f.name,), f)


def build(config_cls, values: dict[tuple[str, ...] | str, Any] | None = None, **context):
    """A config from flat values keyed by field path (or name), with context fields (seed, device,
    max_memory) set in every nested config that has them."""
    values = {(k,) if isinstance(k, str) else tuple(k): v for k, v in (values or {}).items()}
    return _build(config_cls, (), values, context)


def _build(cls, prefix, values, context):
    kw = {}
    for f in fields(cls):
        default = field_default(f)
        path = prefix + (f.name,)
        if is_dataclass(default):
            kw[f.name] = _build(type(default), path, values, context)
        elif path in values:
            kw[f.name] = values[path]
        elif f.name in context and context[f.name] is not None:
            kw[f.name] = context[f.name]
    return cls(**kw)


def with_context(cfg, **context):
    """A copy of `cfg` with the context fields set wherever they exist (nested configs too)."""
    changes = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if is_dataclass(v):
            changes[f.name] = with_context(v, **context)
        elif f.name in context and context[f.name] is not None:
            changes[f.name] = context[f.name]
    return dataclasses.replace(cfg, **changes)


def to_json(cfg) -> dict:
    """The config as plain JSON (tuples as lists), the form stored in RUN/<lens>/config.json."""

    def plain(v):
        if is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return json.loads(json.dumps(plain(cfg), default=str))


def from_json(config_cls, doc: dict):
    """The config stored by `to_json` (lists back to tuples where the field's default is a tuple)."""
    kw = {}
    for f in fields(config_cls):
        if f.name not in doc:
            continue
        default = field_default(f)
        v = doc[f.name]
        if is_dataclass(default):
            v = from_json(type(default), v)
        elif isinstance(default, tuple) and isinstance(v, list):
            v = tuple(v)
        kw[f.name] = v
    return config_cls(**kw)


def command_line(verb: str, run_path, cfg, context: dict | None = None) -> str:
    """The `sslaudit VERB RUN ...` command that reproduces `cfg` (only non-default options)."""
    parts = ["sslaudit", verb, str(run_path)]
    for spec in options(type(cfg)):
        value = cfg
        for name in spec.path:
            value = getattr(value, name)
        if value == spec.default or (isinstance(value, (list, tuple)) and tuple(value) == tuple(spec.default or ())):
            continue
        if spec.is_bool:
            parts.append(spec.bool_flag(value))
        elif spec.multiple:
            for v in value:
                parts += [spec.flag, _quote(str(v))]
        else:
            parts += [spec.flag, _quote(spec.show(value))]
    for k, v in (context or {}).items():
        if v not in (None, False, 0, "cpu", "local"):
            parts += [f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", _quote(str(v))]
    return " ".join(p for p in parts if p)


def _quote(a: str) -> str:
    return a if a and all(ch.isalnum() or ch in "-_.:,=/@%" for ch in a) else repr(a)
