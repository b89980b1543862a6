"""The memory floors: the least traffic of an op (see workloads.OPS), moved
as quickly as this machine moves it.

* copy:       a multithreaded copy of the logits into memory allocated once
              (memcpy or streaming stores, the quicker: memcpy streams only
              above a threshold derived from the cache size, which a large
              last-level cache can put above every workload);
* fresh copy: the same copy into memory allocated for each call, the page
              faults and the zeroing of new pages included: what an allocating
              call faces (its 'x floor' is taken against this one);
* read:       a multithreaded read (XOR of 64-bit words) of the logits.

Each runs with the row's thread count, or one thread where that is quicker
(small inputs, where waking threads costs more than it saves: fastxent, too,
uses one thread there). Without the bench's extension (fastxent.bench._floors):
single-threaded NumPy copies and reads, labelled so.
"""

import math

import numpy as np

from .peers import Impl
from .timing import sample

try:
    from . import _floors
except ImportError:  # no compiler at install time, or a NumPy-only build
    _floors = None

_WHAT = {"xent": "copy", "xent-fwd": "read", "bce": "copy+read"}


def _as_bytes(a):
    return a.reshape(-1).view(np.uint8)


def _as_words(a):
    # The read reads 64-bit words: the last nbytes % 8 bytes (at most 4, one
    # float32) are left out, a negligible part of any real workload.
    b = _as_bytes(a)
    return b[:b.size - b.size % 8].view(np.uint64)


def _xor(words):
    return int(np.bitwise_xor.reduce(words)) if words.size else 0


def quickest(candidates, samples=5, seconds=0.002):
    """The key of the fastest of `candidates` (key -> zero-argument callable):
    the least of a few interleaved samples, each of about `seconds`."""
    numbers = {}
    for key, fn in candidates.items():
        fn()
        numbers[key] = max(1, math.ceil(seconds / max(sample(fn, 1), 1e-9)))
    best = {key: math.inf for key in candidates}
    for _ in range(samples):
        for key, fn in candidates.items():
            best[key] = min(best[key], sample(fn, numbers[key]))
    return min(best, key=best.get)


def floor_impl(w, threads, fresh=False):
    """The floor of workload `w` with `threads` threads; `fresh`: its copy
    goes into memory allocated at each call (xent and bce only)."""
    if fresh and w.op == "xent-fwd":
        raise ValueError("xent-fwd writes no array: it has no fresh-page floor")
    src_bytes = _as_bytes(w.logits)
    logit_words, target_words = _as_words(w.logits), _as_words(w.target)
    kept = np.empty_like(src_bytes)
    last = {"dst": kept}  # what the last copy wrote, for verify()

    def destination():
        if fresh:  # as an allocating call: new memory (np.empty), first touched by the copy
            last["dst"] = None  # the last call's freed first, as an unused result would be
            last["dst"] = np.empty_like(src_bytes)
        return last["dst"]

    def make(n, stream):
        if _floors is None:
            def copy():
                np.copyto(destination(), src_bytes)
            read = _xor
        else:
            def copy():
                _floors.copy_floor(src_bytes, destination(), n, stream)

            def read(words):
                return _floors.read_floor(words, n)
        if w.op == "xent":
            return copy
        if w.op == "xent-fwd":
            return lambda: read(logit_words)

        def copy_and_read():
            copy()
            return read(target_words)
        return copy_and_read

    what = ("fresh " if fresh else "") + _WHAT[w.op]
    if _floors is None:
        n, stream, label = 1, False, f"floor: {what} (NumPy, 1 thr)"
    else:
        streams = (False, True) if _floors.CAN_STREAM else (False,)
        n, stream = quickest({(n, stream): make(n, stream) for n in {threads, 1}
                              for stream in streams})
        label = f"floor: {what}" + (" (1 thread)" if n < threads else "")
    fn = make(n, stream)

    def verify():
        kept.fill(0)
        result = fn()
        if w.op == "xent-fwd":
            return result == _xor(logit_words)
        copied = np.array_equal(last["dst"], src_bytes)
        return copied if w.op == "xent" else copied and result == _xor(target_words)
    return Impl(label, fn, verify=verify, threads=n, written=lambda: last["dst"])
