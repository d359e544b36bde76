"""The run directory: manifest with checksums, atomic writes, a lock, named cached stages.

Layout: RUN/manifest.json lists every artefact (relative path → sha256, bytes, stage) and every
finished stage (name → hash of the config that produced it, its artefacts). A stage is reused
only if its config hash matches and all its artefacts still match their checksums; otherwise it
is recomputed. Every lens writes under RUN/<lens>/ through this class. Nothing here unpickles.

Links: every path is resolved and must lie inside the run; new files are created by `mkstemp`
(O_CREAT|O_EXCL, so a planted link is never followed) and renamed into place; the lock file is
opened with O_NOFOLLOW. The manifest records a random `run_id` from the moment the folder is
created (before anything else), so a folder sslaudit started is recognisable even if it was killed
there, and a writer notices that the run was replaced (`train --force`) while it was computing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import stat
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


TEMP_NAME = re.compile(r"^\..+\.tmp$")  # `.NAME.XXXXXXXX.tmp` from mkstemp_in (and `.NAME.tmp` of older versions)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry itself is flushed)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mkstemp_in(folder: Path, name: str) -> tuple[int, str]:
    """A new temporary file next to `folder/name`: O_CREAT|O_EXCL (never follows a planted link)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; artefacts are ordinary files
    return fd, tmp


def publish(tmp: str, path: Path) -> None:
    """Rename a finished temporary file over `path` (replacing a link, never writing through it)
    and fsync the folder so the rename survives a crash."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a new temporary file in the same folder, fsync, rename over `path`, fsync the folder."""
    fd, tmp = mkstemp_in(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_lock(root: Path) -> int:
    """Take the exclusive writer lock of folder `root` (its `.lock`, opened without following links)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder {root} ({e.strerror}); choose a folder you can write to") from None
    try:
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if os.path.islink(root / LOCK):
            raise UserError(f"{root / LOCK} is a symbolic link, not sslaudit's lock file; delete it and rerun") from None
        raise UserError(f"cannot open the lock file {root / LOCK} ({e.strerror}); choose a folder you can write to") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{root / LOCK} is not a regular file; delete it and rerun")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"run {root} is in use by another sslaudit process; wait for it to finish or use another --out") from None
    return fd


def close_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """The writer lock of a folder whose manifest may be missing or damaged."""
    fd = open_lock(root)
    try:
        yield
    finally:
        close_lock(fd)


def is_debris(entry: os.DirEntry | Path) -> bool:
    """sslaudit's own leftovers of an interrupted start: the lock file and temporary files."""
    return entry.name == LOCK or bool(TEMP_NAME.match(entry.name))


def versions() -> dict:
    import platform

    import torch

    from . import __version__

    return {"sslaudit": __version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


class RunStore:
    """A run directory. Open with `RunStore(path)`; write only inside `with store.lock():`."""

    def __init__(self, root: str | Path, *, create: bool = False):
        self.root = Path(root)
        self._lock_fd: int | None = None
        if create and not _lexists(self.root / MANIFEST):
            with folder_lock(self.root):
                if not _lexists(self.root / MANIFEST):  # the very first write: marks the folder as sslaudit's
                    self._manifest = self._new_manifest()
                    atomic_write_bytes(self.root / MANIFEST, self._manifest_bytes())
        elif not (self.root / MANIFEST).is_file():
            if not self.root.exists():
                raise UserError(f"no run at {self.root}: train one first with `sslaudit train --out {self.root}` or check the path")
            raise UserError(f"{self.root} is not an sslaudit run (no {MANIFEST}); pass the folder `sslaudit train --out` wrote")
        self._manifest = self._read_manifest()
        self._run_id = self._manifest.get("run_id")

    # ---- manifest -------------------------------------------------------------------------
    @staticmethod
    def _new_manifest() -> dict:
        return {"format": FORMAT, "created": time.time(), "run_id": secrets.token_hex(8), "state": "started by sslaudit", "config": {}, "versions": {}, "artefacts": {}, "stages": {}}

    def _manifest_bytes(self) -> bytes:
        return json.dumps(self._manifest, indent=1, sort_keys=True).encode()

    def _read_manifest(self) -> dict:
        p = self.root / MANIFEST
        if p.is_symlink():
            raise ArtefactError(f"{p} is a symbolic link; a run's manifest is a plain file (was the folder tampered with?)")
        if not p.is_file():
            raise ArtefactError(f"{p} is missing; the run was deleted or replaced while this command ran; rerun it")
        try:
            m = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ArtefactError(f"{p} is corrupted (not JSON); restore it or start a new run with --force") from None
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise ArtefactError(f"{p} is not an sslaudit run manifest (format {m.get('format') if isinstance(m, dict) else '?'}); use a run written by sslaudit")
        return check_manifest(m, p)

    def reload(self) -> None:
        self._manifest = self._read_manifest()

    def _save_manifest(self) -> None:
        self._require_lock()
        atomic_write_bytes(self.root / MANIFEST, self._manifest_bytes())

    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def config(self) -> dict:
        return self._manifest.get("config", {})

    @property
    def run_id(self) -> str | None:
        """Random id given when the folder was created; a replaced run (`--force`) has a new one."""
        return self._manifest.get("run_id")

    @property
    def started_only(self) -> bool:
        """True if no stage has finished yet (nothing computed would be lost by starting over)."""
        return not self._manifest["stages"]

    def set_config(self, config: dict) -> None:
        self._manifest["config"] = config
        self._manifest["versions"] = versions()
        self._save_manifest()

    # ---- lock -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator["RunStore"]:
        """Exclusive writer lock on the run (re-entrant within one object).

        Refuses if the run was replaced (another run_id) since this object opened it: results
        computed from the old model never land in the new run.
        """
        if self._lock_fd is not None:
            yield self
            return
        fd = open_lock(self.root)
        try:
            self.reload()
            if self._manifest.get("run_id") != self._run_id:
                raise UserError(
                    f"{self.root} was replaced by another run (e.g. `sslaudit train --force`) while this command was computing; its results were not stored; rerun the command on the new run"
                )
            self._clean_stray_temps()
        except BaseException:
            close_lock(fd)
            raise
        self._lock_fd = fd
        try:
            yield self
        finally:
            self._lock_fd = None
            close_lock(fd)

    def _clean_stray_temps(self) -> None:
        """Delete temporary files an interrupted writer left behind (we hold the lock: none is live)."""
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            for name in files:
                if TEMP_NAME.match(name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(folder, name))

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("RunStore writes need `with store.lock():`")

    # ---- paths ----------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """Absolute path of an artefact after resolving links; it may not lie outside the run."""
        p = (self.root / rel).resolve()
        root = self.root.resolve()
        if p != root and root not in p.parents:
            raise UserError(f"artefact {rel!r} escapes the run directory (a '..' name, an absolute path or a link pointing outside it); a run never reads or writes outside its folder")
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

    def write_safetensors(self, rel: str, tensors: dict, *, metadata: dict | None = None, stage: str | None = None) -> Path:
        """Save named tensors in the safetensors format (pure data: no code, no pickle)."""
        from safetensors.torch import save

        plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        return self.write_bytes(rel, save(plain, metadata=metadata), stage=stage)

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
        data = read_regular_file(p)
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

    def read_safetensors(self, rel: str, device: str = "cpu") -> dict:
        """Named tensors of a safetensors file (parsed as data; a malformed file is an ArtefactError)."""
        return parse_safetensors(self.read_bytes(rel), self.path(rel), device)

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


def _lexists(p: Path) -> bool:
    return os.path.lexists(p)


def read_regular_file(p: Path) -> bytes:
    """The bytes of a regular file (never a FIFO or device: those could block or never end)."""
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ArtefactError(f"{p} is not a regular file; delete it and rerun the command that writes it")
        return f.read()


def parse_safetensors(data: bytes, where, device: str = "cpu") -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        out = load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise ArtefactError(f"{where} is not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    return {k: v.to(device) for k, v in out.items()} if device != "cpu" else out


def check_manifest(m: dict, where: Path) -> dict:
    """The manifest's structure, checked before any field is used (a malformed one is an ArtefactError)."""

    def bad(what: str):
        return ArtefactError(f"{where} is malformed ({what}); restore it or start a new run with --force")

    for key in ("artefacts", "stages"):
        if not isinstance(m.get(key, {}), dict):
            raise bad(f"'{key}' is not an object")
        m.setdefault(key, {})
    if not isinstance(m.get("config", {}), dict):
        raise bad("'config' is not an object")
    for rel, e in m["artefacts"].items():
        if not (isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)):
            raise bad(f"artefact {rel!r} lacks its sha256 or size")
    for name, st in m["stages"].items():
        if not (isinstance(st, dict) and isinstance(st.get("config_hash"), str) and isinstance(st.get("artefacts"), list) and all(isinstance(a, str) for a in st["artefacts"])):
            raise bad(f"stage {name!r} lacks its config hash or artefact list")
        if not isinstance(st.get("info", {}), dict):
            raise bad(f"stage {name!r} has a malformed info")
    return m


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
