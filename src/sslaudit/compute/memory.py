"""Memory sizes and the process's resident memory, for every lens that honours `--max-memory`."""

from __future__ import annotations

import functools
import re

from ..errors import UserError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40}


def parse_size(text) -> int:
    """'512MB', '6GB', '1.5G', '1000000' → bytes (binary units: 1 GB = 2^30 B)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?B?)\s*", str(text).upper())
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"memory size {text!r} is not understood: give e.g. 512MB, 6GB or a number of bytes")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def release_freed_memory() -> None:
    """Return memory the process has freed but the C allocator still holds to the OS: a cyclic-garbage
    pass, then glibc's malloc_trim(0). Blocks below glibc's (dynamic, up to 32 MB) mmap threshold come
    from heap arenas and stay resident after they are freed, so after one lens of an audit the RSS
    overstates what is live by GBs (a ResNet-18 audit: 3.3 GB at KREPES's plan, 1.26 GB when it runs alone).
    A no-op where the C library has no malloc_trim (macOS, musl)."""
    import gc

    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, looked up once (ctypes.util.find_library runs ldconfig), or None."""
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def in_use_bytes() -> int:
    """What a memory plan should count as already in use: the RSS after `release_freed_memory`."""
    release_freed_memory()
    return rss_bytes()


def available_budget(fraction: float = 0.9) -> int:
    """The budget a memory plan uses when no --max-memory is given: `fraction` of the memory
    available now (so a plan still refuses what would swap or be killed)."""
    import psutil

    return int(fraction * psutil.virtual_memory().available)


def format_size(n: float) -> str:
    """Bytes as a short binary-unit text (1.5 GB, 512 MB)."""
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def high_water_bytes() -> int:
    """The largest resident set of this process so far: Linux's VmHWM (this process's own memory;
    ru_maxrss is not reset by exec, so a process spawned by a big one would report its parent's
    peak), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # KiB on Linux


class PeakRSS:
    """The largest resident memory of this process while a `with` block runs, in bytes (`.peak`).

    Exact when the block sets a new high-water mark for the process (`high_water_bytes` rose);
    otherwise the largest of RSS samples taken every `interval` seconds by a daemon thread (a
    short spike between two samples can be missed: it is a lower bound then)."""

    def __init__(self, interval: float = 0.1):
        self.interval = float(interval)
        self.peak = 0
        self.exact = False

    @staticmethod
    def _maxrss() -> int:
        return high_water_bytes()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> "PeakRSS":
        import threading

        self._before = self._maxrss()
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="sslaudit-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        after = self._maxrss()
        if after > self._before:  # this block raised the process's high-water mark: the kernel's figure is its peak
            self.peak, self.exact = after, True
