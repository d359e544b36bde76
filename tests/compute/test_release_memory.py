"""Memory plans count what is live, not what the C allocator kept after a free (compute.memory.in_use_bytes)."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import torch
    from sslaudit.compute.memory import in_use_bytes, rss_bytes

    big = torch.ones(30 << 20, dtype=torch.uint8)
    del big  # glibc raises its mmap threshold to 30 MB: the 4 MB blocks below come from the heap
    base = rss_bytes()
    parts = [torch.ones(4 << 20, dtype=torch.uint8) for _ in range(128)]  # 512 MB
    pin = torch.ones(1 << 20, dtype=torch.uint8)  # carved from the top, above them: the heap cannot simply shrink
    del parts
    print(rss_bytes() - base, in_use_bytes() - base)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_freed_heap_blocks_are_returned_before_a_plan_measures():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    kept, live = int(out[0]), int(out[1])
    if kept < 256 << 20:
        pytest.skip(f"this C library returned the freed blocks by itself (RSS +{kept >> 20} MB after the free)")
    assert live < 64 << 20  # the 512 MB freed are no longer counted as in use
