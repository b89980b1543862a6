"""The memory floors: the least traffic of an op (see workloads.OPS), moved
as quickly as this machine moves it.

* copy:       a multithreaded copy of the logits into memory allocated once
              (memcpy, streaming stores, or memcpy in pieces small enough for
              its cached stores, the quickest: memcpy streams only above a
              threshold derived from the cache size, which a large last-level
              cache can put above every workload);
* fresh copy: the same copy into memory allocated for each call, the page
              faults and the zeroing of new pages included: what an allocating
              call faces (its 'x floor' is taken against this one). Cached
              stores can win here even where streaming wins the plain copy:
              the system zeroes a new page through the cache, where they
              overwrite the zeroes before they reach memory;
* read:       a multithreaded read (XOR of 64-bit words) of the logits.

Each runs with the row's thread count, or one thread where that is quicker
(small inputs, where waking threads costs more than it saves: fastxent, too,
uses one thread there). Without the bench's extension (fastxent.bench._floors):
single-threaded NumPy copies and reads, labelled so.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .peers import Impl
from .timing import Key, sample
from .workloads import Workload


class _FloorKernels(Protocol):
    """What this module uses of the compiled fastxent.bench._floors (see its stub)."""
    CAN_STREAM: bool

    def copy_floor(self, src: NDArray[np.uint8], dst: NDArray[np.uint8], n_threads: int,
                   stream: bool, pieces: int = 0) -> None: ...

    def read_floor(self, src: NDArray[np.uint64], n_threads: int) -> int: ...


_floors: _FloorKernels | None
try:
    from . import _floors
except ImportError:  # no compiler at install time, or a NumPy-only build
    _floors = None

_WHAT = {"xent": "copy", "xent-fwd": "read", "bce": "copy+read"}

# The ways to copy (see copy_floor): memcpy, streaming stores, and memcpy in
# pieces of PIECE_BYTES (cached stores: well below memcpy's streaming threshold).
PIECE_BYTES = 1 << 16
_COPIES = (("memcpy", False, 0), ("stream", True, 0), ("pieces", False, PIECE_BYTES))


def _as_bytes(a: NDArray[Any]) -> NDArray[np.uint8]:
    return a.reshape(-1).view(np.uint8)


def _as_words(a: NDArray[Any]) -> NDArray[np.uint64]:
    # The read reads 64-bit words: the last nbytes % 8 bytes (at most 4, one
    # float32) are left out, a negligible part of any real workload.
    b = _as_bytes(a)
    return b[:b.size - b.size % 8].view(np.uint64)


def _xor(words: NDArray[np.uint64]) -> int:
    return int(np.bitwise_xor.reduce(words)) if words.size else 0


def quickest(candidates: Mapping[Key, Callable[[], object]], samples: int = 5,
             seconds: float = 0.002) -> Key:
    """The key of the fastest of `candidates` (key -> zero-argument callable):
    the least of a few interleaved samples, each of about `seconds`."""
    numbers: dict[Key, int] = {}
    for key, fn in candidates.items():
        fn()
        numbers[key] = max(1, math.ceil(seconds / max(sample(fn, 1), 1e-9)))
    best = {key: math.inf for key in candidates}
    for _ in range(samples):
        for key, fn in candidates.items():
            best[key] = min(best[key], sample(fn, numbers[key]))
    return min(best, key=best.__getitem__)


def floor_impl(w: Workload, threads: int, fresh: bool = False) -> Impl:
    """The floor of workload `w` with `threads` threads; `fresh`: its copy
    goes into memory allocated at each call (xent and bce only)."""
    if fresh and w.op == "xent-fwd":
        raise ValueError("xent-fwd writes no array: it has no fresh-page floor")
    src_bytes = _as_bytes(w.logits)
    logit_words, target_words = _as_words(w.logits), _as_words(w.target)
    kept = np.empty_like(src_bytes)
    last = {"dst": kept}  # what the last copy wrote, for verify()

    def destination() -> NDArray[np.uint8]:
        if fresh:  # as an allocating call: new memory (np.empty), first touched by the copy
            del last["dst"]  # the last call's freed first, as an unused result would be
            last["dst"] = np.empty_like(src_bytes)
        return last["dst"]

    def make(n: int, how: str) -> Callable[[], object]:
        read: Callable[[NDArray[np.uint64]], int]
        if _floors is None:
            def copy() -> None:
                np.copyto(destination(), src_bytes)
            read = _xor
        else:
            floors = _floors  # a local: mypy keeps its "is not None" in the closures

            _, stream, pieces = next(c for c in _COPIES if c[0] == how)

            def copy() -> None:
                floors.copy_floor(src_bytes, destination(), n, stream, pieces)

            def read(words: NDArray[np.uint64]) -> int:
                return floors.read_floor(words, n)
        if w.op == "xent":
            return copy
        if w.op == "xent-fwd":
            return lambda: read(logit_words)

        def copy_and_read() -> int:
            copy()
            return read(target_words)
        return copy_and_read

    what = ("fresh " if fresh else "") + _WHAT[w.op]
    if _floors is None:
        n, how, label = 1, "memcpy", f"floor: {what} (NumPy, 1 thr)"
    else:
        copies = [c[0] for c in _COPIES if _floors.CAN_STREAM or not c[1]]
        if w.op == "xent-fwd":  # a read: the ways to copy do not matter
            copies = copies[:1]
        n, how = quickest({(n, how): make(n, how) for n in {threads, 1} for how in copies})
        label = f"floor: {what}" + (" (1 thread)" if n < threads else "")
    fn = make(n, how)

    def verify() -> bool:
        kept.fill(0)
        result = fn()
        if w.op == "xent-fwd":
            return result == _xor(logit_words)
        copied = np.array_equal(last["dst"], src_bytes)
        return copied if w.op == "xent" else copied and result == _xor(target_words)
    return Impl(label, fn, verify=verify, threads=n, written=lambda: last["dst"])
