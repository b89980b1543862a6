"""Timing: samples of a call, interleaved round-robin over implementations.

On a shared, noisy machine a fair comparison needs the implementations timed
round-robin, one sample each per round, so that a burst of noise hits all of
them alike; the report shows the median over the rounds. The thread counts of
a workload are interleaved in the same rounds, so thread scaling is measured
alike. A sample repeats a fast call until it lasts MIN_SAMPLE_SECONDS.
"""

import contextlib
import gc
import math
import time

import fastxent

MIN_ROUNDS = 5
# Fast calls are repeated within one sample so that a sample lasts at least
# this long: well above the timer's resolution and a scheduler tick.
MIN_SAMPLE_SECONDS = 0.02


def sample(fn, number):
    """Seconds per call, averaged over `number` back-to-back calls, gc off (as timeit)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def time_round_robin(fns, repeat, max_seconds=None, on_start=None, on_round=None,
                     contexts=None):
    """key -> list of samples (seconds per call), the implementations
    interleaved A,B,C,A,B,C,... Each is warmed up and calibrated first. There
    are `repeat` rounds, fewer (not fewer than MIN_ROUNDS) where they would
    take longer than `max_seconds`. `contexts` (key -> context manager
    factory, optional) is entered around each sample, untimed: the thread
    counts. on_start(rounds), on_round(r) report progress."""
    contexts = contexts or {}

    def within(key):
        factory = contexts.get(key)
        return factory() if factory is not None else contextlib.nullcontext()

    numbers, round_seconds = {}, 0.0
    for key, fn in fns.items():
        with within(key):
            fn()  # warm-up: caches, page faults, lazy initialisation, thread pools
            once = max(sample(fn, 1), 1e-9)
        numbers[key] = max(1, math.ceil(MIN_SAMPLE_SECONDS / once))
        round_seconds += numbers[key] * once
    rounds = repeat
    if max_seconds is not None and rounds * round_seconds > max_seconds:
        rounds = max(min(MIN_ROUNDS, repeat), int(max_seconds / round_seconds))
    if on_start is not None:
        on_start(rounds)
    samples = {key: [] for key in fns}
    for r in range(rounds):
        for key, fn in fns.items():
            with within(key):
                samples[key].append(sample(fn, numbers[key]))
        if on_round is not None:
            on_round(r + 1)
    return samples


def _blas_controller():
    """A threadpoolctl controller of the BLAS libraries loaded, or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


class using_threads:
    """Sets the thread count `n` for fastxent, torch and the BLAS libraries
    (threadpoolctl, where installed), then restores torch's and BLAS's.

    torch.set_num_threads also sets the OpenMP runtime's default (shared with
    fastxent's libgomp), so fastxent's count is always passed explicitly.
    sklearn's n_threads is passed by its adapter; JAX's pool is fixed."""

    _blas = None  # the controller, made once (it inspects the loaded libraries)

    def __init__(self, n, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(fastxent.num_threads(self.n))
        if using_threads._blas is None:
            using_threads._blas = _blas_controller() or False
        if using_threads._blas:
            self._stack.enter_context(using_threads._blas.limit(limits=self.n, user_api="blas"))
        if self.torch is not None:
            before = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
            self._stack.callback(self.torch.set_num_threads, before)
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)
