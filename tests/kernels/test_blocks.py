"""Block-wise work through the engine equals the direct kernel."""

from __future__ import annotations

import pickle

import numpy as np

from sslaudit.engine import get_engine
from sslaudit.kernels import EntkKernel, compute_factors, kernel_to_landmarks, stream_kernel_blocks


def test_stream_equals_direct(convnet, digits_x):
    k = EntkKernel(convnet, block_size=3)
    lm = compute_factors(k, digits_x, rows=np.array([1, 4, 7]))
    blocks = list(stream_kernel_blocks(k, digits_x, lm, engine=get_engine("local")))
    assert [(s, e) for s, e, _ in blocks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    got = np.concatenate([b for _, _, b in blocks])
    np.testing.assert_allclose(got, k(digits_x, digits_x[[1, 4, 7]]), atol=1e-12)
    np.testing.assert_allclose(kernel_to_landmarks(k, digits_x, lm, block_size=4), got, atol=1e-12)


def test_kernel_pickles_for_remote_engines(mlp, table_x):
    k = EntkKernel(mlp, kind="trntk")
    k2 = pickle.loads(pickle.dumps(k))
    np.testing.assert_array_equal(k2(table_x, table_x[:3]), k(table_x, table_x[:3]))
    f = compute_factors(k, table_x)
    f2 = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(k.between(f2, f2).numpy(), k.between(f, f).numpy())
