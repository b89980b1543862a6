"""Outputs on fresh pages (an allocating call's large gradient): the kernels
write them with normal stores, not streaming ones (fx_streams_into in
_fx_pipeline.h), and the values are the same bits either way."""

import mmap
import sys

import numpy as np
import pytest

import fastxent
from fastxent import _config

from fastxent_testing import assert_close, torch_xent

compiled = _config._compiled
compiled_only = pytest.mark.skipif(compiled is None, reason="the compiled extension is not built")

# 64 MiB: outputs this large stream by the size threshold alone
SHAPES = {np.float32: (2048, 8192), np.float64: (8192, 1024)}


@compiled_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore: Linux only")
def test_a_fresh_output_does_not_stream_and_a_written_one_does():
    previous = compiled.set_stream_min_bytes(64 << 20)
    if previous is None:
        pytest.skip("nothing streams on this platform")
    try:
        # 64 MiB of a new anonymous mapping: np.empty's memory may come back
        # from an allocator that recycles (another library's malloc in the run)
        mapping = mmap.mmap(-1, 64 << 20)
        out = np.frombuffer(mapping, np.float32)
        assert not compiled._output_streams(out, 4096)
        out.fill(1.0)
        assert compiled._output_streams(out, 4096)
        small = np.empty(1 << 10, np.float32)  # below the probe's size: the threshold decides
        compiled.set_stream_min_bytes(0)
        assert compiled._output_streams(small, 4096)
    finally:
        compiled.set_stream_min_bytes(previous)


@compiled_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_fresh_and_written_outputs_give_the_same_bits(torch, dtype, threads):
    shape = SHAPES[dtype]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    y = rng.integers(0, shape[1], shape[0])
    written = np.full(shape, np.nan, dtype)
    with fastxent.num_threads(threads):
        loss, grad = fastxent.cross_entropy_with_grad(x, y)  # a fresh gradient: normal stores
        loss_out, grad_out = fastxent.cross_entropy_with_grad(x, y, out=written)  # streamed
    assert grad_out is written
    np.testing.assert_array_equal(grad, grad_out)
    assert loss == loss_out
    ref_loss, ref_grad = torch_xent(torch, x, y)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)
