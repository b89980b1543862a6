"""Memory: repeated calls (and calls that raise) leak nothing; arrays of more
than 2**31 elements give correct results (64-bit indexing throughout)."""

import gc
import os
import tracemalloc

import numpy as np
import pytest

import fastxent


def rss_bytes():
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def every_function_once(x, y, p, bad_y):
    fastxent.cross_entropy_with_grad(x, y, weight=p[0], label_smoothing=0.1)
    fastxent.cross_entropy(x, p, reduction="none")
    fastxent.binary_cross_entropy_with_logits_with_grad(x, p, pos_weight=p[0])
    fastxent.binary_cross_entropy_with_grad(p, p)
    fastxent.nll_loss_with_grad(x, y)
    fastxent.softmax(x)
    fastxent.logsumexp(x)
    fastxent.kl_divergence(p, p)
    try:
        fastxent.cross_entropy_with_grad(x, bad_y)  # raised from the kernel
    except IndexError:
        pass
    try:
        fastxent.binary_cross_entropy_with_grad(x, p)  # probabilities outside [0, 1]
    except ValueError:
        pass


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_100000_calls_leave_rss_and_tracemalloc_flat():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5)).astype(np.float32) * 10
    y = rng.integers(0, 5, 8)
    p = rng.random((8, 5)).astype(np.float32)
    bad_y = y.copy()
    bad_y[3] = 7
    calls_per_round = 10  # every_function_once makes 10 calls
    for _ in range(500):  # warm up caches, allocator pools, lazy imports
        every_function_once(x, y, p, bad_y)
    gc.collect()
    tracemalloc.start()
    try:
        traced_before = tracemalloc.get_traced_memory()[0]
        rss_before = rss_bytes()
        for _ in range(100_000 // calls_per_round):
            every_function_once(x, y, p, bad_y)
        gc.collect()
        traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
        rss_growth = rss_bytes() - rss_before
    finally:
        tracemalloc.stop()
    # A leak of even 64 bytes a call would be 6.4 MB here.
    assert traced_growth < 64 * 1024, traced_growth
    assert rss_growth < 4 * 1024 * 1024, rss_growth


BIG = 2**30 + 3  # two rows of this: 2**31 + 6 elements


@pytest.mark.bigmem
@pytest.mark.skipif(os.environ.get("FASTXENT_BIGMEM") != "1",
                    reason="needs about 10 GB of memory: set FASTXENT_BIGMEM=1 to run")
def test_more_than_2_31_elements_in_place():
    # Row 0: all zeros, target 5: loss log(C), gradient 1/C - [class 5].
    # Row 1: zeros but 2.0 in the very last element (flat index > 2**31),
    # which is the target: loss log(C - 1 + e^2) - 2.
    logits = np.zeros((2, BIG), dtype=np.float32)
    logits[1, -1] = 2.0
    target = np.array([5, BIG - 1])
    loss, grad = fastxent.cross_entropy_with_grad(logits, target, reduction="none",
                                                  out=logits)
    assert grad is logits
    c = float(BIG)
    np.testing.assert_allclose(loss, [np.log(c), np.log(c - 1 + np.e**2) - 2], rtol=1e-6)
    expected_row0 = {0: 1 / c, 5: 1 / c - 1, BIG - 1: 1 / c}
    for j, value in expected_row0.items():
        np.testing.assert_allclose(grad[0, j], value, rtol=1e-5)
    s1 = c - 1 + np.e**2
    for j, value in {0: 1 / s1, BIG // 2: 1 / s1, BIG - 1: np.e**2 / s1 - 1}.items():
        np.testing.assert_allclose(grad[1, j], value, rtol=1e-5)
    # And the row sums of the gradient are 0 all the way through.
    np.testing.assert_allclose(grad.sum(axis=1, dtype=np.float64), 0, atol=1e-4)
