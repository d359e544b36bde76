"""The run directory: manifest with checksums, atomic writes, a lock, named cached stages.

Layout: RUN/manifest.json lists every artefact (relative path → sha256, bytes, stage) and every
finished stage (name → hash of the config that produced it, its artefacts). A stage is reused
only if its config hash matches and all its artefacts still match their checksums; otherwise it
is recomputed. Every lens writes under RUN/<lens>/ through this class. Nothing here unpickles.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import ArtefactError, UserError

FORMAT = "sslaudit-run/1"
_UMASK = os.umask(0)
os.umask(_UMASK)
MANIFEST = "manifest.json"
LOCK = ".lock"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(config: Any) -> str:
    return sha256_bytes(json.dumps(config, sort_keys=True, default=str).encode())[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; artefacts are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def versions() -> dict:
    import platform

    import torch

    from . import __version__

    return {"sslaudit": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


class RunStore:
    """A run directory. Open with `RunStore(path)`; write only inside `with store.lock():`."""

    def __init__(self, root: str | Path, *, create: bool = False):
        self.root = Path(root)
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        elif not (self.root / MANIFEST).is_file():
            if not self.root.exists():
                raise UserError(f"no run at {self.root}: train one first with `sslaudit train --out {self.root}` or check the path")
            raise UserError(f"{self.root} is not an sslaudit run (no {MANIFEST}); pass the folder `sslaudit train --out` wrote")
        self._lock_fd: int | None = None
        self._manifest = self._read_manifest()

    # ---- manifest -------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        p = self.root / MANIFEST
        if not p.is_file():
            return {"format": FORMAT, "created": time.time(), "config": {}, "versions": {}, "artefacts": {}, "stages": {}}
        try:
            m = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArtefactError(f"{p} is corrupted (not JSON); restore it or start a new run with --force") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ArtefactError(f"{p} is not an sslaudit run manifest (format {m.get('format') if isinstance(m, dict) else '?'}); use a run written by sslaudit")
        return m

    def reload(self) -> None:
        self._manifest = self._read_manifest()

    def _save_manifest(self) -> None:
        self._require_lock()
        atomic_write_bytes(self.root / MANIFEST, json.dumps(self._manifest, indent=1, sort_keys=True).encode())

    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def config(self) -> dict:
        return self._manifest.get("config", {})

    def set_config(self, config: dict) -> None:
        self._manifest["config"] = config
        self._manifest["versions"] = versions()
        self._save_manifest()

    # ---- lock -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator["RunStore"]:
        """Exclusive writer lock on the run (re-entrant within one object)."""
        if self._lock_fd is not None:
            yield self
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"run {self.root} is in use by another sslaudit process; wait for it to finish or use another --out") from None
        self._lock_fd = fd
        try:
            self.reload()
            yield self
        finally:
            self._lock_fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("RunStore writes need `with store.lock():`")

    # ---- paths ----------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Absolute path of an artefact; `rel` may not escape the run directory."""
        p = (self.root / rel).resolve()
        root = self.root.resolve()
        if p != root and root not in p.parents:
            raise UserError(f"artefact name {rel!r} escapes the run directory; use a plain relative name")
        return p

    # ---- writes ---------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes, *, stage: str | None = None) -> Path:
        self._require_lock()
        p = self.path(rel)
        atomic_write_bytes(p, data)
        self._manifest["artefacts"][rel] = {"sha256": sha256_bytes(data), "bytes": len(data), "stage": stage, "written": time.time()}
        self._save_manifest()
        return p

    def write_json(self, rel: str, obj: Any, *, stage: str | None = None) -> Path:
        return self.write_bytes(rel, (json.dumps(_jsonable(obj), indent=1, sort_keys=True, allow_nan=False) + "\n").encode(), stage=stage)

    def write_npy(self, rel: str, arr: np.ndarray, *, stage: str | None = None) -> Path:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return self.write_bytes(rel, buf.getvalue(), stage=stage)

    def write_npz(self, rel: str, *, stage: str | None = None, **arrays: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
        return self.write_bytes(rel, buf.getvalue(), stage=stage)

    def write_parquet(self, rel: str, df, *, stage: str | None = None) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
        return self.write_bytes(rel, buf.getvalue(), stage=stage)

    def write_torch(self, rel: str, state: dict, *, stage: str | None = None) -> Path:
        """Save a dict of tensors/plain values; read back with weights_only=True."""
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        return self.write_bytes(rel, buf.getvalue(), stage=stage)

    def register_file(self, rel: str, *, stage: str | None = None) -> None:
        """Record an artefact that was written in place (already atomically) by other code."""
        self._require_lock()
        p = self.path(rel)
        self._manifest["artefacts"][rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size, "stage": stage, "written": time.time()}
        self._save_manifest()

    def remove(self, rel: str) -> None:
        self._require_lock()
        with contextlib.suppress(FileNotFoundError):
            self.path(rel).unlink()
        self._manifest["artefacts"].pop(rel, None)
        self._save_manifest()

    # ---- reads (checksum-verified) ----------------------------------------------------------
    def has(self, rel: str) -> bool:
        return rel in self._manifest["artefacts"] and self.path(rel).is_file()

    def verify(self, rel: str) -> bool:
        entry = self._manifest["artefacts"].get(rel)
        p = self.path(rel)
        if entry is None or not p.is_file() or p.stat().st_size != entry["bytes"]:
            return False
        return sha256_file(p) == entry["sha256"]

    def read_bytes(self, rel: str) -> bytes:
        entry = self._manifest["artefacts"].get(rel)
        if entry is None:
            raise ArtefactError(f"{self.root}/{rel} is not in the run's manifest; run the stage that writes it")
        p = self.path(rel)
        if not p.is_file():
            raise ArtefactError(f"{p} is missing; rerun the command that writes it")
        data = p.read_bytes()
        if len(data) != entry["bytes"] or sha256_bytes(data) != entry["sha256"]:
            raise ArtefactError(f"{p} fails its checksum (truncated or altered); delete it and rerun the command that writes it")
        return data

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def read_npy(self, rel: str) -> np.ndarray:
        return np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False)

    def read_npz(self, rel: str) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def read_parquet(self, rel: str):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(self.read_bytes(rel))).to_pandas()

    def read_torch(self, rel: str, map_location="cpu") -> dict:
        import pickle

        import torch

        try:
            return torch.load(io.BytesIO(self.read_bytes(rel)), map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            raise ArtefactError(f"{self.path(rel)} holds more than weights and was refused (weights_only=True): {str(e).splitlines()[0]}") from None

    # ---- stages -----------------------------------------------------------------------------
    def stage_done(self, name: str, config: Any = None) -> bool:
        """True if stage `name` finished with this config and all its artefacts verify."""
        st = self._manifest["stages"].get(name)
        if st is None or (config is not None and st["config_hash"] != config_hash(config)):
            return False
        return all(self.verify(a) for a in st["artefacts"])

    def mark_done(self, name: str, config: Any, artefacts: list[str], info: dict | None = None) -> None:
        self._require_lock()
        self._manifest["stages"][name] = {
            "config_hash": config_hash(config),
            "artefacts": list(artefacts),
            "finished": time.time(),
            "info": _jsonable(info or {}),
        }
        self._save_manifest()

    def stage_info(self, name: str) -> dict:
        return self._manifest["stages"].get(name, {}).get("info", {})

    def invalidate(self, name: str) -> None:
        self._require_lock()
        self._manifest["stages"].pop(name, None)
        self._save_manifest()

    def cached(self, name: str, config: Any, compute: Callable[[], Any], save: Callable[[Any], list[str]], load: Callable[[], Any]) -> Any:
        """Run `compute` and `save` (which returns the artefact names) unless the stage is done."""
        if self.stage_done(name, config):
            return load()
        value = compute()
        self.mark_done(name, config, save(value))
        return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj
