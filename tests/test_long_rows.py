"""Calls of few long rows (fewer than 4 rows of at least 131072 classes):
cross_entropy splits each row in chunks across the threads
(fastxent._kernels' _run_split_rows). Values against PyTorch, the same bits
for any thread count, labels to ignore and out of range, in place."""

import numpy as np
import pytest

import fastxent
from fastxent import _config

from fastxent_testing import assert_close, torch_xent

compiled_only = pytest.mark.skipif(_config._compiled is None,
                                   reason="the compiled extension is not built")

SHAPES = [(1, 131072), (2, 2 * 65536 + 7), (3, 200003), (1, 1048576)]


def long_rows(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    x[:, 5] += 40  # one dominant class: the other chunks' exps are small beside it
    y = rng.integers(0, shape[1], shape[0])
    return x, y


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_long_rows_match_torch(torch, backend, shape, dtype, reduction):
    x, y = long_rows(shape, dtype)
    loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction=reduction)
    ref_loss, ref_grad = torch_xent(torch, x, y, reduction=reduction)
    assert_close(loss, ref_loss, dtype)
    assert_close(grad, ref_grad, dtype)


@compiled_only
@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_are_the_same_bits_on_any_thread_count(shape, dtype):
    x, y = long_rows(shape, dtype, seed=1)
    with fastxent.num_threads(1):
        loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction="none")
    for n in (2, 3, 5):
        with fastxent.num_threads(n):
            other_loss, other_grad = fastxent.cross_entropy_with_grad(x, y, reduction="none")
        np.testing.assert_array_equal(other_loss, loss)
        np.testing.assert_array_equal(other_grad, grad)


def test_long_rows_with_an_ignored_row_and_in_place(torch, backend):
    x, y = long_rows((3, 200003), np.float32, seed=2)
    y[1] = -100
    ref_loss, ref_grad = torch_xent(torch, x, y)
    loss, grad = fastxent.cross_entropy_with_grad(x, y, out=x)
    assert grad is x
    assert_close(loss, ref_loss, np.float32)
    assert_close(grad, ref_grad, np.float32)
    assert not grad[1].any()


@pytest.mark.parametrize("in_place", [False, True])
def test_long_rows_name_the_first_bad_label_and_leave_x_alone(backend, in_place):
    x, y = long_rows((3, 200003), np.float32, seed=3)
    y[1], y[2] = 200003, -1
    before = x.copy()
    with pytest.raises(IndexError, match=r"class label 200003 at position \(1,\)"):
        fastxent.cross_entropy_with_grad(x, y, reduction="sum", out=x if in_place else None)
    np.testing.assert_array_equal(x, before)


def test_long_rows_with_options_match_torch(torch, backend):
    """Weights and label smoothing (which take the row path) on the same shapes."""
    x, y = long_rows((2, 2 * 65536 + 7), np.float64, seed=4)
    w = np.random.default_rng(5).random(x.shape[1])
    loss, grad = fastxent.cross_entropy_with_grad(x, y, weight=w, label_smoothing=0.2)
    ref_loss, ref_grad = torch_xent(torch, x, y, weight=w, label_smoothing=0.2)
    assert_close(loss, ref_loss, np.float64)
    assert_close(grad, ref_grad, np.float64)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_long_rows_without_a_gradient_match_torch(torch, backend, reduction):
    x, y = long_rows((3, 200003), np.float32, seed=6)
    y[0] = -100
    loss = fastxent.cross_entropy(x, y, reduction=reduction)
    ref_loss, _ = torch_xent(torch, x, y, reduction=reduction)
    assert_close(loss, ref_loss, np.float32)
