"""The kernels on a busy machine: a parallel region whose threads got much
less CPU time than its wall time makes the next calls run on one thread for
a while (fastxent._kernels' fx_region_report), and results stay the same
bits whatever the thread count and however the work was handed out."""

import threading

import numpy as np
import pytest

import fastxent
from fastxent import _config

kernels = _config._compiled
pytestmark = pytest.mark.skipif(kernels is None, reason="the compiled extension is not built")
# A serial build judges no region (its threads run one after the other).
OPENMP = _config.config()["openmp"] != "none"
openmp_only = pytest.mark.skipif(not OPENMP, reason="serial build: no OpenMP runtime")


@pytest.fixture
def fresh_check():
    """The check on (conftest.py turns it off for the other tests), from scratch."""
    previous = kernels._set_busy_check(True)
    kernels._reset_busy()
    yield
    kernels._reset_busy()
    kernels._set_busy_check(previous)


@openmp_only
def test_a_starved_region_sends_the_next_calls_to_one_thread_for_a_while(fresh_check):
    assert kernels._busy_seconds_left() == 0
    kernels._report_region(0.010, 0.012, 2)  # 60% of 2 threads' CPUs
    first = kernels._busy_seconds_left()
    assert 0 < first <= 0.1
    kernels._report_region(0.010, 0.012, 2)  # still starved: twice as long
    assert first < kernels._busy_seconds_left() <= 0.2


def test_regions_that_got_their_cpus_or_say_nothing_leave_the_threads_alone(fresh_check):
    kernels._report_region(0.010, 0.019, 2)  # 95%: an idle machine
    kernels._report_region(0.010, 0.0, 2)  # no thread CPU clock on this system
    kernels._report_region(80e-6, 1e-6, 2)  # too short to tell
    kernels._report_region(0.010, 0.001, 1)  # one thread: nothing to wait for
    assert kernels._busy_seconds_left() == 0


OPERATIONS = {
    "cross_entropy": lambda x, y, p: fastxent.cross_entropy_with_grad(
        x, y, weight=np.linspace(0.5, 2, x.shape[1], dtype=x.dtype), label_smoothing=0.1),
    "cross_entropy_probs": lambda x, y, p: fastxent.cross_entropy_with_grad(x, p),
    "cross_entropy_short_rows": lambda x, y, p: fastxent.cross_entropy_with_grad(
        x[:, :10].copy(), y % 10, reduction="none"),
    "softmax": lambda x, y, p: fastxent.softmax(x, axis=-1),
    "logsumexp": lambda x, y, p: fastxent.logsumexp(x, axis=-1),
    "bce": lambda x, y, p: fastxent.binary_cross_entropy_with_logits_with_grad(x, p),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_same_bits_for_any_thread_count_busy_or_not(operation, fresh_check):
    """1 to 5 threads, with the machine taken for busy (one thread) or not, and
    with two Python threads calling at once (their regions interleave)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3001, 67)) * 4).astype(np.float32)
    y = rng.integers(0, 67, 3001)
    p = rng.dirichlet(np.ones(67), 3001).astype(np.float32)
    run = OPERATIONS[operation]
    with fastxent.num_threads(1):
        expected = run(x, y, p)
    results = []
    for n in (2, 3, 5):
        with fastxent.num_threads(n):
            results.append(run(x, y, p))
            kernels._report_region(1.0, 0.1, n)  # busy: the next call takes one thread
            assert (kernels._busy_seconds_left() > 0) == OPENMP
            results.append(run(x, y, p))
            kernels._reset_busy()

    def in_parallel(slot):
        with fastxent.num_threads(2):
            slot.append(run(x, y, p))

    slots = [[], []]
    callers = [threading.Thread(target=in_parallel, args=(slot,)) for slot in slots]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    results += [slot[0] for slot in slots]
    for result in results:
        for got, want in zip(_parts(result), _parts(expected), strict=True):
            np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def _parts(result):
    """A result (an array, a scalar or a tuple of them) as 1-d arrays, for bits."""
    return [np.atleast_1d(np.asarray(v)) for v in (result if isinstance(result, tuple) else (result,))]
