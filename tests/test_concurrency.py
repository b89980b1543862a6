"""Many Python threads, the GIL, and fork(): no deadlock, no wrong answer."""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastxent
from fastxent import _config
from fastxent_testing import OPERATIONS, as_tuple, options_of

compiled_only = pytest.mark.skipif(
    _config._compiled is None, reason="the compiled extension is not built"
)


def workload(seed, shape=(2000, 300)):
    """Each public operation of the registry on its own problem of `shape`, with
    the options of its last variant (weights, smoothing, reductions)."""
    rng = np.random.default_rng(seed)
    calls = []
    for op in OPERATIONS:
        args, kwargs = op.make(rng, shape, np.float32)
        calls.append((op.fn, args, options_of(args, kwargs, op.variants[-1])))
    return calls


def all_results(calls):
    """Every public operation's results on its problem."""
    return [result for fn, args, options in calls for result in as_tuple(fn(*args, **options))]


@compiled_only
def test_eight_python_threads_each_with_openmp_threads_match_serial_results():
    inputs = [workload(seed) for seed in range(8)]
    with fastxent.num_threads(1):
        expected = [all_results(calls) for calls in inputs]
    got = [None] * 8
    errors = []

    def work(i):
        try:
            with fastxent.num_threads(2):
                for _ in range(5):
                    got[i] = all_results(inputs[i])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    assert not errors, errors
    for want, have in zip(expected, got):
        assert len(want) == len(have)
        for a, b in zip(want, have):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@compiled_only
def test_the_gil_is_released_while_a_kernel_runs():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((512, 65536)) * 4).astype(np.float32)
    y = rng.integers(0, 65536, 512)
    y[::17] = -100
    ticks = [0]
    running = threading.Event()
    stop = threading.Event()

    def count():
        running.set()
        while not stop.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    running.wait()
    try:
        with fastxent.num_threads(1):
            before = ticks[0]
            fastxent.cross_entropy_with_grad(x, y)
            during = ticks[0] - before
    finally:
        stop.set()
        counter.join()
    # Holding the GIL for the whole call would leave the counter still.
    assert during > 100, during


FORK_CHILD = """
    import os, sys, multiprocessing
    import numpy as np
    import fastxent

    x = np.random.default_rng(0).standard_normal((4096, 512)).astype(np.float32)
    y = np.arange(4096) % 512
    with fastxent.num_threads(2):
        parent = fastxent.cross_entropy_with_grad(x, y)  # starts the OpenMP pool

    def child_value(_=None):
        with fastxent.num_threads(2):  # asks for threads; the child must stay serial
            loss, grad = fastxent.cross_entropy_with_grad(x, y)
        return float(loss), float(np.abs(grad).sum()), fastxent.get_num_threads()

    if sys.argv[1] == "os.fork":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, repr(child_value()).encode())
            os._exit(0)
        os.close(w)
        got = eval(os.read(r, 1000).decode())
        os.waitpid(pid, 0)
    else:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(child_value, range(4))[0]
    loss, grad_sum, threads = got
    assert loss == float(parent[0]), (loss, parent[0])
    assert grad_sum == float(np.abs(parent[1]).sum())
    assert threads == 1
    print("ok")
"""


@compiled_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_forked_child_can_compute_after_the_parent_used_threads(how):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(FORK_CHILD), how],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
