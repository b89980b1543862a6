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
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

import fastxent

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

Key = TypeVar("Key", bound=Hashable)  # what a set of timed callables is keyed by

MIN_ROUNDS = 5
# Fast calls are repeated within one sample so that a sample lasts at least
# this long: well above the timer's resolution and a scheduler tick.
MIN_SAMPLE_SECONDS = 0.02


def sample(fn: Callable[[], object], number: int) -> float:
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


def time_round_robin(fns: Mapping[Key, Callable[[], object]], repeat: int,
                     max_seconds: float | None = None,
                     on_start: Callable[[int], object] | None = None,
                     on_round: Callable[[int], object] | None = None,
                     contexts: Mapping[Key, Callable[[], AbstractContextManager[object]]]
                     | None = None) -> dict[Key, list[float]]:
    """key -> list of samples (seconds per call), the implementations
    interleaved A,B,C,A,B,C,... Each is warmed up and calibrated first. There
    are `repeat` rounds, fewer (not fewer than MIN_ROUNDS) where they would
    take longer than `max_seconds`. `contexts` (key -> context manager
    factory, optional) is entered around each sample, untimed: the thread
    counts. on_start(rounds), on_round(r) report progress."""
    contexts = contexts or {}

    def within(key: Key) -> AbstractContextManager[object]:
        factory = contexts.get(key)
        return factory() if factory is not None else contextlib.nullcontext()

    numbers: dict[Key, int] = {}
    round_seconds = 0.0
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
    samples: dict[Key, list[float]] = {key: [] for key in fns}
    for r in range(rounds):
        for key, fn in fns.items():
            with within(key):
                samples[key].append(sample(fn, numbers[key]))
        if on_round is not None:
            on_round(r + 1)
    return samples


def _blas_controller() -> "ThreadpoolController | Literal[False]":
    """A threadpoolctl controller of the BLAS libraries loaded, or False where
    there is none (no threadpoolctl, or no BLAS library it knows loaded)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return False
    return ThreadpoolController() or False  # an empty controller is falsy (len 0)


class using_threads:
    """Sets the thread count `n` for fastxent, torch and the BLAS libraries
    (threadpoolctl, where installed), then restores torch's and BLAS's.

    torch.set_num_threads also sets the OpenMP runtime's default (shared with
    fastxent's libgomp), so fastxent's count is always passed explicitly.
    sklearn's n_threads is passed by its adapter; JAX's pool is fixed."""

    # The controller, made once (it inspects the loaded libraries), or False.
    _blas: ClassVar["ThreadpoolController | Literal[False] | None"] = None

    def __init__(self, n: int, torch: ModuleType | None = None) -> None:
        self.n, self.torch = n, torch

    def __enter__(self) -> "using_threads":
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(fastxent.num_threads(self.n))
        if using_threads._blas is None:
            using_threads._blas = _blas_controller()
        if using_threads._blas:
            self._stack.enter_context(using_threads._blas.limit(limits=self.n, user_api="blas"))
        if self.torch is not None:
            before = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
            self._stack.callback(self.torch.set_num_threads, before)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool | None:
        return self._stack.__exit__(exc_type, exc, traceback)
