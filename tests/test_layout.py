"""Memory layouts and out=: strided, Fortran-ordered, negative-stride,
read-only, broadcast and unaligned inputs give the numbers of the reference
computed on plain copies; no input is modified; out= is returned as the very
array passed and may be the logits themselves (the gradient then overwrites
them), whatever their layout and class axis."""

import numpy as np
import pytest

import fastxent

from fastxent_testing import (
    Snapshot,
    assert_close,
    gradient_floor,
    oracle_xent,
    random_labels,
    random_logits,
    random_probs,
    result_dtype,
    with_layout,
)
from fastxent_testing import DTYPES, REDUCTIONS


# (shape, class axis)
SHAPES = [
    pytest.param((5, 4), -1, id="5x4"),
    pytest.param((3, 4, 2), 1, id="3x4x2-axis1"),
    pytest.param((4, 3), 0, id="4x3-axis0"),
]


LAYOUTS = ["c", "fortran", "strided", "negative", "readonly", "broadcast", "unaligned"]


def make_inputs(rng, shape, axis, dtype, kind):
    ax = axis % len(shape)
    n_classes = shape[ax]
    batch_shape = shape[:ax] + shape[ax + 1:]
    logits = random_logits(rng, shape, dtype)
    if kind == "index":
        target = random_labels(rng, batch_shape, n_classes, ignore_index=-100)
        target.reshape(-1)[:1] = n_classes - 1  # the first sample counts (see "broadcast")
    else:
        target = random_probs(rng, shape, axis, dtype)
    weight = rng.uniform(0.5, 2.0, n_classes).astype(dtype)
    return logits, target, weight


def check_call(logits, target, **options):
    """Both functions against the oracle computed on plain copies, and no input changed."""
    plain = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    dtype = result_dtype(logits.dtype)
    snapshot = Snapshot(logits, target, options.get("weight"))
    for reduction in REDUCTIONS:
        want_loss, want_grad = oracle_xent(np.array(logits), np.array(target),
                                           reduction=reduction, **plain)
        loss = fastxent.cross_entropy(logits, target, reduction=reduction, **options)
        snapshot.assert_unchanged()
        loss2, grad = fastxent.cross_entropy_with_grad(logits, target, reduction=reduction,
                                                       **options)
        snapshot.assert_unchanged()
        assert grad.shape == logits.shape and grad.dtype == dtype
        assert_close(loss, want_loss, dtype)
        assert_close(loss2, want_loss, dtype)
        assert_close(grad, want_grad, dtype, floor=gradient_floor(logits, options))


# ------------------------------------------------------------------ inputs in any layout


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_logits_in_any_layout(backend, rng, layout, dtype, shape, axis, kind):
    logits, target, weight = make_inputs(rng, shape, axis, dtype, kind)
    check_call(with_layout(logits, layout), target, weight=weight, axis=axis,
               label_smoothing=0.1)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_targets_in_any_layout(backend, rng, layout, dtype, shape, axis, kind):
    logits, target, weight = make_inputs(rng, shape, axis, dtype, kind)
    check_call(logits, with_layout(target, layout), weight=weight, axis=axis)


@pytest.mark.parametrize("layout", ["c", "strided", "negative", "readonly", "broadcast",
                                    "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_in_any_layout(backend, rng, layout, dtype):
    logits, target, weight = make_inputs(rng, (6, 5), -1, dtype, "index")
    check_call(logits, target, weight=with_layout(weight, layout), label_smoothing=0.2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_everything_in_odd_layouts_at_once(backend, rng, dtype):
    logits, target, weight = make_inputs(rng, (4, 6, 3), 1, dtype, "prob")
    check_call(with_layout(logits, "negative"), with_layout(target, "fortran"),
               weight=with_layout(weight, "strided"), axis=1, label_smoothing=0.05)
    logits, target, weight = make_inputs(rng, (4, 6, 3), -3, dtype, "index")
    check_call(with_layout(logits, "strided"), with_layout(target, "negative"),
               weight=with_layout(weight, "readonly"), axis=-3)


@pytest.mark.parametrize("byteorder", [">", "<"], ids=["big-endian", "little-endian"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_explicit_byte_order(backend, rng, byteorder, dtype):
    # float32 data in either byte order is float32 (as for NumPy's own functions)
    logits, target, weight = make_inputs(rng, (5, 4), -1, dtype, "index")
    swapped = logits.astype(np.dtype(dtype).newbyteorder(byteorder))
    check_call(swapped, target.astype(np.dtype(np.int64).newbyteorder(byteorder)),
               weight=weight.astype(np.dtype(dtype).newbyteorder(byteorder)))
    loss, grad = fastxent.cross_entropy_with_grad(swapped, target)
    assert loss.dtype == dtype and grad.dtype == dtype


# ------------------------------------------------------------------ out=


def out_buffer(shape, dtype, layout):
    """An output array of `layout`, and the whole buffer it lives in (whose
    other elements hold a sentinel that must survive)."""
    if layout == "c":
        out = np.full(shape, 7.0, dtype)
        return out, out
    if layout == "fortran":
        out = np.asfortranarray(np.full(shape, 7.0, dtype))
        return out, out
    if layout == "strided":
        big = np.full(tuple(2 * s + 1 for s in shape), 7.0, dtype)
        return big[tuple(slice(1, None, 2) for _ in shape)], big
    if layout == "negative":
        big = np.full(shape, 7.0, dtype)
        return np.flip(big), big
    raise AssertionError(layout)


@pytest.mark.parametrize("out_layout", ["c", "fortran", "strided", "negative"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_out_is_returned_and_filled(backend, rng, out_layout, dtype, shape, axis, kind):
    logits, target, weight = make_inputs(rng, shape, axis, dtype, kind)
    snapshot = Snapshot(logits, target, weight)
    for reduction in REDUCTIONS:
        out, big = out_buffer(shape, dtype, out_layout)
        np.copyto(out, 0)
        outside_mask = big != 0  # the parts of the buffer that are not out
        np.copyto(out, np.nan)  # what was in out must not matter
        outside = big.copy()
        want_loss, want_grad = oracle_xent(logits, target, weight=weight, axis=axis,
                                           reduction=reduction, label_smoothing=0.1)
        loss, grad = fastxent.cross_entropy_with_grad(
            logits, target, weight=weight, axis=axis, reduction=reduction, label_smoothing=0.1,
            out=out)
        assert grad is out
        assert_close(loss, want_loss, dtype)
        assert_close(out, want_grad, dtype)
        assert np.array_equal(big[outside_mask], outside[outside_mask])
        snapshot.assert_unchanged()


@pytest.mark.parametrize("logits_layout", ["c", "fortran", "strided", "negative"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES + [pytest.param((6,), 0, id="rank1")])
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_out_is_logits_overwrites_them_in_place(backend, rng, logits_layout, dtype, shape, axis,
                                                kind):
    values, target, weight = make_inputs(rng, shape, axis, dtype, kind)
    snapshot = Snapshot(target, weight)
    for reduction in REDUCTIONS:
        want_loss, want_grad = oracle_xent(values, target, weight=weight, axis=axis,
                                           reduction=reduction, label_smoothing=0.1)
        logits, big = out_buffer(shape, dtype, logits_layout)
        np.copyto(logits, 0)
        outside_mask = big != 0  # the parts of the buffer that are not the logits
        np.copyto(logits, values)
        outside = big.copy()

        loss, grad = fastxent.cross_entropy_with_grad(
            logits, target, weight=weight, axis=axis, reduction=reduction, label_smoothing=0.1,
            out=logits)
        assert grad is logits
        assert_close(loss, want_loss, dtype)
        assert_close(logits, want_grad, dtype)  # the gradient replaced the logits
        assert np.array_equal(big[outside_mask], outside[outside_mask])
        snapshot.assert_unchanged()


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_is_logits_large_rows_in_place(backend, rng, dtype):
    # many blocks of rows, several threads, all in place
    values = random_logits(rng, (3000, 40), dtype)
    target = random_labels(rng, (3000,), 40, ignore_index=-100)
    want_loss, want_grad = oracle_xent(values, target, label_smoothing=0.1)
    logits = values.copy()
    with fastxent.num_threads(2):
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, label_smoothing=0.1,
                                                      out=logits)
    assert grad is logits
    assert_close(loss, want_loss, dtype)
    assert_close(logits, want_grad, dtype)


def test_out_of_a_converted_dtype(backend, rng):
    # float16 logits compute in float32: out= is then a float32 array
    logits = random_logits(rng, (4, 3), np.float16)
    target = np.array([0, 1, 2, 1])
    out = np.empty((4, 3), np.float32)
    loss, grad = fastxent.cross_entropy_with_grad(logits, target, out=out)
    want_loss, want_grad = oracle_xent(logits, target)
    assert grad is out and loss.dtype == np.float32
    assert_close(loss, want_loss, np.float32)
    assert_close(out, want_grad, np.float32)


def test_results_do_not_alias_inputs(backend, rng):
    # a new gradient (out=None) is a fresh array: writing to it leaves the inputs alone
    for axis, shape in ((-1, (4, 5)), (0, (5, 4))):
        logits = random_logits(rng, shape)
        target = random_probs(rng, shape, axis)
        snapshot = Snapshot(logits, target)
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, axis=axis,
                                                      reduction="none")
        assert not np.may_share_memory(grad, logits)
        assert not np.may_share_memory(grad, target)
        assert not np.may_share_memory(loss, logits)
        grad[...] = 123.0
        loss[...] = 123.0
        snapshot.assert_unchanged()
