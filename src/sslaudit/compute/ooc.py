"""Out-of-core matrices (used by KREPES at scale): n×m kernel blocks that live on disk as stored stages.

`K(train, landmarks)` is n×m (1M × 2000 float64 = 16 GB), so with a run store it is written block
by block into part files of `PART_ROWS` rows (float32 on disk: cosine-normalised kernel values in
[−1, 1] keep ~6e-8 relative precision; every product and reduction that reads them is float64).
Each part is written to a temporary file, fsynced, renamed, and registered in the run's manifest
with its checksum before the next one starts, so an interrupted run resumes at the first missing
part (parts are verified against their checksums before reuse). The part folder's name carries the
stage config hash, so parts of another configuration are never mixed in.

`DiskMatrix` reads rows back by explicit positioned reads (`os.preadv`) into a reused float32
buffer — never a memory map, whose scanned pages would count toward resident memory.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..store import config_hash, mkstemp_in, publish

PART_ROWS = 65536  # rows per part file (fixed: resuming does not depend on the memory budget)


class DiskMatrix:
    """A row-major float32 matrix stored as consecutive part files; rows come back as float64."""

    def __init__(self, paths: list, part_rows: int, n: int, m: int):
        self.paths, self.part_rows, self.shape = [str(p) for p in paths], int(part_rows), (int(n), int(m))
        self.dtype = np.dtype(np.float64)  # what reads return
        self._buf = np.empty(0, dtype=np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return 2

    def _buffer(self, rows: int) -> np.ndarray:
        need = rows * self.shape[1]
        if self._buf.size < need:
            self._buf = np.empty(need, dtype=np.float32)
        return self._buf[:need].reshape(rows, self.shape[1])

    def read_rows(self, s: int, e: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows [s, e) as float64 (into `out` if given), read by positioned reads part by part."""
        n, m = self.shape
        s, e = max(0, int(s)), min(n, int(e))
        raw = self._buffer(max(e - s, 0))
        pos = s
        while pos < e:
            part, off = divmod(pos, self.part_rows)
            stop = min(e, (part + 1) * self.part_rows)
            view = memoryview(raw[pos - s : stop - s].reshape(-1)).cast("B")
            fd = os.open(self.paths[part], os.O_RDONLY)
            try:
                got, want, at = 0, len(view), off * m * 4
                while got < want:
                    k = os.preadv(fd, [view[got:]], at + got)
                    if k <= 0:
                        raise UserError(f"{self.paths[part]} is shorter than expected (truncated?); delete RUN/krepes/cache and rerun")
                    got += k
            finally:
                os.close(fd)
            pos = stop
        if out is None:
            return raw.astype(np.float64)
        np.copyto(out[: e - s], raw, casting="same_kind")
        return out[: e - s]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            k = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= k < self.shape[0]:
                raise IndexError(key)
            return self.read_rows(k, k + 1)[0]
        if isinstance(key, slice):
            s, e, step = key.indices(self.shape[0])
            if step != 1:
                raise IndexError("DiskMatrix slices need step 1")
            return self.read_rows(s, e)
        return self.take(np.asarray(key))

    def take(self, rows) -> np.ndarray:
        """Rows at arbitrary positions (float64), read run by run of consecutive positions."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float64)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        i = 0
        while i < len(srt):
            j = i
            while j + 1 < len(srt) and srt[j + 1] - srt[j] <= 1:
                j += 1
            block = self.read_rows(srt[i], srt[j] + 1)
            out[order[i : j + 1]] = block[srt[i : j + 1] - srt[i]]
            i = j + 1
        return out

    def blocks(self, rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """(s, e, float64 rows) over the whole matrix, reusing one float64 buffer."""
        buf = np.empty((min(rows, max(self.shape[0], 1)), self.shape[1]), dtype=np.float64)
        for s in range(0, self.shape[0], rows):
            e = min(s + rows, self.shape[0])
            yield s, e, self.read_rows(s, e, out=buf)

    def __array__(self, dtype=None, copy=None):
        """The whole matrix in memory (small cases and tests only)."""
        a = self.read_rows(0, self.shape[0])
        return a if dtype is None else a.astype(dtype)


def stored_matrix(store, stage: str, key: dict, n: int, m: int, compute_part, *, part_rows: int | None = None) -> tuple[DiskMatrix, int]:
    """A DiskMatrix for stage `stage` (e.g. krepes/kernel_train; parts in RUN/krepes/cache/kernel_train-<hash>/); missing parts come from `compute_part(s, e)`.

    `compute_part(s, e)` yields float blocks covering rows [s, e) in order. Returns the matrix and
    the number of parts computed now (0 = fully reused). The caller holds `store.lock()`.
    """
    part_rows = int(part_rows or _env_part_rows() or PART_ROWS)
    key = {**key, "part_rows": part_rows}
    h = config_hash(key)
    base = f"krepes/cache/{stage.rsplit('/', 1)[-1]}"
    folder = f"{base}-{h}"
    n_parts = max(1, -(-n // part_rows))
    rels = [f"{folder}/part-{i:05d}.f32" for i in range(n_parts)]
    if store.stage_done(stage, key):
        return DiskMatrix([store.path(r) for r in rels], part_rows, n, m), 0
    drop_stale(store, base, folder)
    computed = 0
    for i, rel in enumerate(rels):
        s, e = i * part_rows, min((i + 1) * part_rows, n)
        if store.verify(rel):
            continue  # a part finished by an interrupted run: checksum verified, reused
        path = store.path(rel)
        fd, tmp = mkstemp_in(path.parent, path.name)  # O_CREAT|O_EXCL: a planted link is never written through
        at = s
        try:
            with os.fdopen(fd, "wb") as f:
                for block in compute_part(s, e):
                    block = np.ascontiguousarray(block, dtype=np.float32)
                    if block.ndim != 2 or block.shape[1] != m:
                        raise ValueError(f"block of shape {block.shape} for a {n}×{m} matrix")
                    if not np.isfinite(block).all():
                        from .kernel_model import check_kernel_values

                        check_kernel_values(block, stage)
                    f.write(memoryview(block).cast("B"))
                    at += len(block)
                f.flush()
                os.fsync(f.fileno())
            if at != e:
                raise ValueError(f"part {i} of {stage} got {at - s} rows, expected {e - s}")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        publish(tmp, path)
        store.register_file(rel, stage=stage)
        computed += 1
    store.mark_done(stage, key, rels, {"shape": [n, m], "dtype": "float32", "part_rows": part_rows})
    return DiskMatrix([store.path(r) for r in rels], part_rows, n, m), computed


def _env_part_rows() -> int | None:
    """SSLAUDIT_PART_ROWS: rows per part file, for file systems that prefer smaller files (and for tests)."""
    text = os.environ.get("SSLAUDIT_PART_ROWS")
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"SSLAUDIT_PART_ROWS must be a positive whole number of rows, not {text!r}")
    return int(text)


def drop_stale(store, base: str, keep_folder: str | None) -> None:
    """Forget (and delete) the files under `base`-<hash>/ folders other than `keep_folder` (None: all)."""
    prefix = f"{base}-"
    for rel in [r for r in store.manifest["artefacts"] if r.startswith(prefix) and (keep_folder is None or not r.startswith(keep_folder + "/"))]:
        store.remove(rel)


__all__ = ["DiskMatrix", "PART_ROWS", "drop_stale", "stored_matrix"]
