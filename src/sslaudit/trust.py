"""The trust gate: weights are data, code is code.

A run stores its encoder as tensors (safetensors, or `torch.load(weights_only=True)` for runs of
older versions) plus an architecture sslaudit builds itself. Three imported formats carry code
that runs when they are opened: a torch.export program (`.pt2`: unpickled by `torch.export.load`),
TorchScript (its `__setstate__` and `forward` run arbitrary TorchScript, which can write files),
and `package.module:factory` (an import and a call). They are opened only by the functions here,
and only when the user passed `--trust-code` / `trust_code=True` on that very command.
"""

from __future__ import annotations

import importlib
import io
import zipfile

from .errors import UserError

CODE_KINDS = {
    "export": "a torch.export program (opening it unpickles the file, which can run any code)",
    "torchscript": "a TorchScript module (opening and calling it runs the file's code, which can write files)",
    "factory": "a package.module:factory (opening the run imports that module and calls it)",
}


def require_trust(kind: str, file: str, trust_code: bool) -> None:
    """A one-line refusal unless the user trusts code for this command."""
    if kind in CODE_KINDS and not trust_code:
        raise UserError(
            f"{file} is {CODE_KINDS[kind]}; pass --trust-code (API: trust_code=True) only if you trust whoever "
            f"made it, or import plain weights instead (a .safetensors state dict of an sslaudit architecture)"
        )


def load_code_encoder(kind: str, data: bytes, *, factory: str | None, state: dict | None, trust_code: bool, file: str, prefix: str | None = None):
    """Rebuild an encoder from a code-carrying format (after the trust check); a factory's state dict
    has `prefix` stripped and must then match the module exactly (every missing/unexpected key is listed)."""
    require_trust(kind, file, trust_code)
    import torch

    if kind == "export":
        from .run import ExportedEncoder

        prog = torch.export.load(io.BytesIO(data))  # trust_code checked by require_trust above
        return ExportedEncoder(prog.module())
    if kind == "torchscript":
        return torch.jit.load(io.BytesIO(data), map_location="cpu")  # trust_code checked by require_trust above
    if kind == "factory":
        from .models.zoo import fit_state

        module = resolve_factory(factory, trust_code=trust_code)()
        module.load_state_dict(fit_state(module, state, prefix, file))
        return module
    raise UserError(f"unknown encoder kind {kind!r} in the run's config")


def resolve_factory(spec: str, *, trust_code: bool):
    """The callable named by `package.module:function` (an import: runs the module's code)."""
    require_trust("factory", spec, trust_code)
    mod, sep, fn = str(spec).partition(":")
    if not sep or not mod or not fn:
        raise UserError(f"bad factory {spec!r}: write package.module:function")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot import the factory {spec!r} ({e}); check that the module is on PYTHONPATH") from None


def torch_file_kind(data: bytes) -> str:
    """'torchscript', 'export' or 'state_dict' from a torch zip archive's member names (no unpickling)."""
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        return "unknown"
    parts = {p for n in names for p in n.split("/")[1:2]}
    if "code" in parts or any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if "models" in parts or any(n.endswith("archive_format") for n in names):
        return "export"
    if any(n.endswith("data.pkl") for n in names):
        return "state_dict"
    return "unknown"
