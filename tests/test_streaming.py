"""Streamed outputs: where an output is too large to stay in the cache, the
compiled kernels compute each row into a scratch row and stream it out, with
non-temporal stores, during the next row's exp sweep (fx_carry, _rows.h).
The arithmetic is the same, so the results must be the same bits as with
normal stores. The tests lower the size threshold so that small outputs
stream, at odd row lengths and output addresses (rows that share cache lines,
lines split between the streamed body and the normally stored ends)."""

import numpy as np
import pytest

import fastxent
from fastxent import _config

from fastxent_testing import random_labels, random_logits, random_probs
from fastxent_testing import DTYPES

# (rows, classes): several rows per thread, row lengths that do and do not fill
# whole cache lines, and one row per thread.
SHAPES = [(37, 100), (64, 333), (9, 4099), (16, 1024), (2, 700)]


# Every test runs on each shape and dtype, and on 1 and 2 threads (the fixture).
pytestmark = [pytest.mark.parametrize("shape", SHAPES, ids=str),
              pytest.mark.parametrize("dtype", DTYPES)]


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}-threads")
def same_bits_streamed(request):
    """Yields a function that runs fn() on the fixture's thread count with
    normal stores and with every output streamed, and asserts that the two
    give the same bits."""
    kernels = _config._compiled
    if kernels is None or kernels.set_stream_min_bytes(1 << 62) is None:
        pytest.skip("streaming stores need the compiled extension on x86-64")
    default = kernels.set_stream_min_bytes(1 << 62)

    def check(fn):
        with fastxent.num_threads(request.param), np.errstate(invalid="ignore"):
            kernels.set_stream_min_bytes(1 << 62)
            normal = fn()
            kernels.set_stream_min_bytes(0)
            streamed = fn()
            kernels.set_stream_min_bytes(1 << 62)
        for a, b in zip(normal, streamed):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)

    yield check
    kernels.set_stream_min_bytes(default)


def misaligned_out(shape, dtype, offset):
    """A C-contiguous output `offset` elements past a 64-byte boundary."""
    size = int(np.prod(shape))
    buffer = np.full(size + 64, np.nan, dtype=dtype)
    start = (-buffer.ctypes.data % 64) // buffer.itemsize + offset
    return buffer[start:start + size].reshape(shape)


@pytest.mark.parametrize("options", [
    dict(),
    dict(label_smoothing=0.1, weighted=True, reduction="sum"),
    dict(ignore=True, reduction="none"),
], ids=["plain", "weighted-smoothed", "ignored-rows"])
def test_index_targets(same_bits_streamed, rng, dtype, shape, options):
    options = dict(options)
    logits = random_logits(rng, shape, dtype)
    ignore = options.pop("ignore", False)
    target = random_labels(rng, shape[:1], shape[1], ignore_index=-100 if ignore else None)
    if options.pop("weighted", False):
        options["weight"] = rng.uniform(0.5, 2.0, shape[1]).astype(dtype)

    def run():
        out = misaligned_out(shape, dtype, offset=3)
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, out=out, **options)
        return loss, grad, fastxent.cross_entropy_with_grad(logits, target, **options)[1]

    same_bits_streamed(run)


def test_probability_targets(same_bits_streamed, rng, dtype, shape):
    logits = random_logits(rng, shape, dtype)
    target = random_probs(rng, shape, -1, dtype)
    same_bits_streamed(lambda: fastxent.cross_entropy_with_grad(logits, target, label_smoothing=0.05))


def test_softmax_family(same_bits_streamed, rng, dtype, shape):
    # with rows of -inf maxima (log_softmax's scalar path) among the others
    x = random_logits(rng, shape, dtype)
    x[::5] = -np.inf

    def run():
        results = []
        for name in ("softmax", "log_softmax"):
            fn = getattr(fastxent, name)
            results += [fn(x), fn(x, out=misaligned_out(shape, dtype, offset=1))]
        return results + [fastxent.logsumexp(x)]

    same_bits_streamed(run)
