"""The layers of the package (docs/architecture.md), checked from the source: nothing below the
CLI imports it, and the numerical core never imports the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

import sslaudit

SRC = Path(sslaudit.__file__).parent

# module prefix → module prefixes it may never import (even lazily, inside a function)
FORBIDDEN = {
    "sslaudit.methods": ("sslaudit.run", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.models": ("sslaudit.run", "sslaudit.methods", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.kernels": ("sslaudit.run", "sslaudit.methods", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.compute": ("sslaudit.run", "sslaudit.methods", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.data": ("sslaudit.run", "sslaudit.methods", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.run": ("sslaudit.methods", "sslaudit.lenses", "sslaudit.audit", "sslaudit.experiments", "sslaudit.report", "sslaudit.cli"),
    "sslaudit.lenses": ("sslaudit.audit", "sslaudit.experiments", "sslaudit.cli"),
    "sslaudit.audit": ("sslaudit.cli", "sslaudit.experiments"),
    "sslaudit.experiments": ("sslaudit.cli",),
    "sslaudit.report": ("sslaudit.cli", "sslaudit.audit", "sslaudit.experiments"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, mod: str, is_package: bool) -> set[str]:
    package = mod if is_package else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def test_no_layer_imports_one_above_it():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        mod = module_name(path)
        rules = [v for k, v in FORBIDDEN.items() if mod == k or mod.startswith(k + ".")]
        for name in imports(path):
            for banned in (b for r in rules for b in r):
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{mod} imports {name}")
    assert not bad, "\n".join(bad)


def test_only_the_cli_imports_the_cli():
    users = sorted({module_name(p) for p in SRC.rglob("*.py") if not module_name(p).startswith("sslaudit.cli") and any(n == "sslaudit.cli" or n.startswith("sslaudit.cli.") for n in imports(p))})
    assert users == []


def test_the_checker_sees_relative_imports():
    # the rules above must be able to fail: relative imports resolve to the absolute module
    assert "sslaudit.cli.main" in imports_in("from ..cli.main import cli\n", "sslaudit.lenses.fake", False)
    assert "sslaudit.run" in imports_in("def f():\n    from ...run import load\n", "sslaudit.methods.krepes.fake", False)
