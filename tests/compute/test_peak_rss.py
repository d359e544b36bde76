"""PeakRSS: the peak resident memory of a block, exact when the block raises the process's high-water mark."""

import numpy as np

from sslaudit.compute.memory import PeakRSS, high_water_bytes, rss_bytes


def test_a_new_high_water_mark_is_the_kernels_figure():
    base = rss_bytes()
    n = high_water_bytes() - base + (300 << 20)  # past the process's peak so far
    with PeakRSS() as mem:
        a = np.ones(n // 8)  # touched, so resident
        del a
    assert mem.exact and mem.peak >= base + n * 0.9
    assert mem.peak == high_water_bytes()


def test_below_the_high_water_mark_the_samples_bound_it():
    import time

    spike = np.ones((256 << 20) // 8)  # set a high-water mark well above what the block will use
    del spike
    with PeakRSS(interval=0.01) as mem:
        a = np.ones((64 << 20) // 8)  # 64 MB, held across several samples
        time.sleep(0.2)
        del a
    assert not mem.exact and mem.peak >= rss_bytes() + (48 << 20)
