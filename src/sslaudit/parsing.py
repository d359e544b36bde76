"""Parsers of option values given as text (command line, config files): each returns the value
or raises a one-line UserError that names the option and gives an example. Config dataclasses
name them in their fields' metadata (`parse=`), so the CLI, the audit and the library agree."""

from __future__ import annotations

import json
from typing import Callable

from .errors import UserError


def keyword_or(keyword: str, convert: Callable, flag: str, example: str, *, minimum=None, positive: bool = False, what: str = "number") -> Callable:
    """A parser of `keyword` (e.g. 'auto', 'all') or a number converted by `convert`
    (`what` names the number in messages, e.g. 'number of masks')."""

    def parse(text):
        if str(text).strip().lower() == keyword:
            return keyword
        try:
            v = convert(text)
        except (TypeError, ValueError):
            raise UserError(f"{flag} {text!r}: give a {what}{' ≥ ' + str(minimum) if minimum is not None else ''} (e.g. {example}) or '{keyword}'") from None
        if (minimum is not None and v < minimum) or (positive and not v > 0):
            raise UserError(f"{flag} {text}: the {what} must be {'≥ ' + str(minimum) if minimum is not None else '> 0'} (e.g. {example}), or '{keyword}'")
        return v

    return parse


def number(convert: Callable, flag: str, example: str, *, minimum=None, maximum=None, positive: bool = False, none: str | None = None) -> Callable:
    """A parser of one number in a range (`none`: a word that means None, e.g. 'all')."""

    def parse(text):
        if none is not None and str(text).strip().lower() == none:
            return None
        try:
            v = convert(text)
        except (TypeError, ValueError):
            raise UserError(f"{flag} {text!r}: give a number such as {example}") from None
        if v != v or (minimum is not None and v < minimum) or (maximum is not None and v > maximum) or (positive and not v > 0):
            bounds = " and ".join(b for b in (f"≥ {minimum}" if minimum is not None else "", f"≤ {maximum}" if maximum is not None else "", "> 0" if positive else "") if b)
            raise UserError(f"{flag} {text}: must be {bounds} (e.g. {example})")
        return v

    return parse


def number_list(flag: str, example: str, *, lo: float | None = None, hi: float | None = None, count: int | None = None, sort: bool = False, open_lo: bool = False) -> Callable:
    """A parser of comma-separated numbers (e.g. '0.25,0.5,1'), optionally in a range or a fixed count."""

    def parse(text):
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise UserError(f"{flag} {text!r}: give comma-separated numbers such as {example}") from None
        if sort:
            vals = sorted(set(vals))
        bad = not vals or (count is not None and len(vals) != count) or any((lo is not None and (v <= lo if open_lo else v < lo)) or (hi is not None and v > hi) for v in vals)
        if bad:
            what = f"{count} numbers" if count else "numbers"
            rng = "" if lo is None and hi is None else f" in {'(' if open_lo else '['}{lo if lo is not None else '−∞'}, {hi if hi is not None else '∞'}]"
            raise UserError(f"{flag} {text!r}: give {what}{rng}, e.g. {example}")
        return tuple(vals)

    return parse


def key_values(items, flag: str, example: str) -> dict:
    """KEY=VALUE pairs of a repeatable option; values are read as JSON (numbers, true/false, lists) or kept as text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r}: write KEY=VALUE, e.g. {flag} {example}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
