"""Rows of at most 16 classes without options: the kernels take them 16 rows
at a time (on AVX-512, in the layout of memory; elsewhere in tiles of 64),
and the rows left over one by one. These tests reach the edges of both: row
lengths 1 to 17, row counts around 16 and 64, labels ignored or out of range
inside a group of 16 rows, NaN and infinities, gradients written over the
logits, and the same bits for any thread count."""

import numpy as np
import pytest

import fastxent
from fastxent import reference

from fastxent_testing import assert_close, torch_xent

ROW_LENGTHS = [1, 2, 3, 7, 10, 15, 16, 17]
ROW_COUNTS = [1, 15, 16, 17, 63, 64, 65, 200]


def _logits(rng, rows, n, dtype=np.float32):
    return (rng.standard_normal((rows, n)) * 4).astype(dtype)


@pytest.mark.parametrize("n", ROW_LENGTHS)
@pytest.mark.parametrize("rows", ROW_COUNTS)
def test_short_rows_match_torch(torch, backend, rows, n):
    rng = np.random.default_rng(rows * 100 + n)
    x = _logits(rng, rows, n)
    y = rng.integers(0, n, rows)
    for reduction in ("mean", "sum", "none"):
        loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction=reduction)
        want_loss, want_grad = torch_xent(torch, x, y, reduction=reduction)
        assert_close(loss, want_loss, np.float32, err_msg=reduction)
        assert_close(grad, want_grad, np.float32, err_msg=reduction)
        assert_close(fastxent.cross_entropy(x, y, reduction=reduction), want_loss, np.float32)


@pytest.mark.parametrize("n", [1, 2, 10, 15, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ignored_and_bad_labels_inside_a_group_of_16(torch, backend, n, dtype):
    rng = np.random.default_rng(n)
    x = _logits(rng, 100, n, dtype)
    y = rng.integers(0, n, 100)
    y[[5, 20, 21, 47, 96]] = -100  # ignored: in the middle of groups and in the rows left over
    loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction="none")
    want_loss, want_grad = torch_xent(torch, x, y, reduction="none")
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype)
    assert np.all(grad[[5, 20, 21, 47, 96]] == 0) and np.all(loss[[5, 20, 21, 47, 96]] == 0)
    for position in (37, 98):  # inside the third group; among the rows left over
        bad = y.copy()
        bad[position] = n
        bad[position + 1] = -1  # a later bad label is not the one named
        before = x.copy()
        with pytest.raises(IndexError, match=rf"class label {n} at position \({position},\)"):
            fastxent.cross_entropy_with_grad(x, bad, reduction="sum", out=x)
        np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("n", [2, 10, 16])
def test_nan_and_infinities_stay_in_their_rows(backend, n):
    rng = np.random.default_rng(n)
    x = _logits(rng, 48, n)
    y = rng.integers(0, n, 48)
    x[3, 0] = np.nan
    x[17, :] = -np.inf  # every class masked: NaN, as PyTorch
    x[18, n - 1] = np.inf
    x[19, 0] = -np.inf  # one masked class, not the target: a number
    y[19] = n - 1
    y[20] = -100
    x[20, 0] = np.nan  # an ignored row holding a NaN: loss and gradient 0
    loss, grad = fastxent.cross_entropy_with_grad(x, y, reduction="none")
    for row in (3, 17, 18):
        assert np.isnan(loss[row]) and np.all(np.isnan(grad[row])), row
    assert loss[20] == 0 and np.all(grad[20] == 0)
    clean = np.setdiff1d(np.arange(48), [3, 17, 18, 20])
    want_loss = reference.cross_entropy(x[clean].astype(np.float64), y[clean], reduction="none")
    _, want_grad = reference.cross_entropy_with_grad(
        x[clean].astype(np.float64), y[clean], reduction="none"
    )
    assert_close(loss[clean], want_loss, np.float32)
    assert_close(grad[clean], want_grad, np.float32)
    assert grad[19, 0] == 0


@pytest.mark.parametrize("n", [1, 10, 16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradient_over_the_logits(backend, n, reduction):
    rng = np.random.default_rng(n)
    x = _logits(rng, 77, n)
    y = rng.integers(0, n, 77)
    want_loss, want_grad = reference.cross_entropy_with_grad(
        x.astype(np.float64), y, reduction=reduction
    )
    work = x.copy()
    loss, grad = fastxent.cross_entropy_with_grad(work, y, reduction=reduction, out=work)
    assert grad is work
    assert_close(loss, want_loss, np.float32)
    assert_close(grad, want_grad, np.float32)


@pytest.mark.parametrize("n", [1, 5, 10, 16])
def test_finite_differences(n):
    # d loss / d x_ij against central differences of the loss in float64
    rng = np.random.default_rng(n)
    x = rng.standard_normal((33, n))
    y = rng.integers(0, n, 33)
    _, grad = fastxent.cross_entropy_with_grad(x.astype(np.float32), y, reduction="sum")
    h = 1e-5
    for i, j in [(0, 0), (16, n - 1), (32, n // 2)]:
        up, down = x.copy(), x.copy()
        up[i, j] += h
        down[i, j] -= h
        numeric = (
            reference.cross_entropy(up, y, reduction="sum")
            - reference.cross_entropy(down, y, reduction="sum")
        ) / (2 * h)
        assert abs(grad[i, j] - numeric) < 1e-4, (i, j)


@pytest.mark.parametrize("n", [1, 3, 10, 16])
def test_same_bits_on_any_thread_count(n):
    rng = np.random.default_rng(n)
    rows = 70001  # many blocks, groups of 16, and rows left over
    x = _logits(rng, rows, n)
    y = rng.integers(0, n, rows)
    y[::97] = -100
    results = []
    for threads in (1, 2, 3, 5):
        with fastxent.num_threads(threads):
            loss, grad = fastxent.cross_entropy_with_grad(x, y)
            row_loss = fastxent.cross_entropy(x, y, reduction="none")
            results.append((loss, grad, row_loss))
    for loss, grad, row_loss in results[1:]:
        assert loss.tobytes() == results[0][0].tobytes()
        np.testing.assert_array_equal(grad, results[0][1])
        np.testing.assert_array_equal(row_loss, results[0][2])
    want = reference.cross_entropy(x.astype(np.float64), y)
    assert_close(results[0][0], want, np.float32)


@pytest.mark.parametrize("ignore_index", [0, 3, 2**62, -(2**62)])
def test_an_ignore_index_among_the_classes_or_far_out(torch, backend, ignore_index):
    # The mean's count of the rows that count, and the groups' mask of them,
    # for an ignore_index that is a class (its rows count for nothing) and
    # for one far outside the int32 range (no truncation may make it a class).
    rng = np.random.default_rng(abs(ignore_index) % 1000)
    x = _logits(rng, 1000, 10)
    y = rng.integers(0, 10, 1000)
    if ignore_index >= 10 or ignore_index < 0:
        y[rng.random(1000) < 0.2] = ignore_index
    loss, grad = fastxent.cross_entropy_with_grad(x, y, ignore_index=ignore_index)
    want_loss, want_grad = torch_xent(torch, x, y, ignore_index=ignore_index)
    assert_close(loss, want_loss, np.float32)
    assert_close(grad, want_grad, np.float32)
