"""Properties that hold for every input: hypothesis draws shapes, dtypes,
memory layouts and options, and checks fastxent against itself under
transformations the mathematics says are harmless, and against the NumPy
reference."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastxent  # noqa: E402
from fastxent import reference  # noqa: E402

from fastxent_testing import with_layout  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


@st.composite
def problems(draw):
    """(logits, target, options) with the classes on a drawn axis."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    axis = draw(st.integers(-ndim, ndim - 1))
    n_classes = shape[axis]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 30.0]))
    logits = (rng.standard_normal(shape) * scale).astype(dtype)
    batch_shape = shape[:axis % ndim] + shape[axis % ndim + 1:]
    options = {"axis": axis, "reduction": draw(st.sampled_from(["none", "sum", "mean"]))}
    if draw(st.booleans()):
        target = np.array(rng.integers(0, n_classes, batch_shape))
        if draw(st.booleans()):
            target.reshape(-1)[0] = -100  # the default ignore_index
        else:
            target = target.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    else:
        probs = rng.random(shape)
        target = (probs / probs.sum(axis=axis, keepdims=True)).astype(dtype)
    if draw(st.booleans()):
        options["weight"] = rng.random(n_classes).astype(dtype) + 0.1
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.sampled_from([0.05, 0.3, 1.0]))
    logits = with_layout(logits, draw(st.sampled_from(["c", "fortran", "strided", "negative",
                                                       "readonly"])))
    return logits, target, options


def tolerance(dtype):
    return (2e-5, 2e-5) if dtype == np.float32 else (1e-11, 1e-12)


@SETTINGS
@given(problems())
def test_compiled_equals_reference(case):
    logits, target, options = case
    rtol, atol = tolerance(logits.dtype)
    loss, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
    want_loss, want_grad = reference.cross_entropy_with_grad(logits, target, **options)
    np.testing.assert_allclose(loss, want_loss, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=atol)


@SETTINGS
@given(problems())
def test_loss_is_never_negative(case):
    logits, target, options = case
    loss = fastxent.cross_entropy(logits, target, **options)
    assert np.all(np.isnan(loss) | (loss >= 0))


@SETTINGS
@given(problems())
def test_rows_of_the_gradient_sum_to_zero_for_plain_class_indices(case):
    logits, target, options = case
    if target.dtype.kind not in "iu":
        target = np.argmax(target, axis=options["axis"])
    options = {"axis": options["axis"], "reduction": options["reduction"]}
    _, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
    sums = grad.astype(np.float64).sum(axis=options["axis"])
    np.testing.assert_allclose(sums, 0, atol=1e-5 if logits.dtype == np.float32 else 1e-13)


@SETTINGS
@given(problems(), st.sampled_from([-50.0, -1.0, 3.0, 100.0]))
def test_adding_a_constant_to_a_row_changes_nothing(case, shift):
    logits, target, options = case
    rtol, atol = tolerance(logits.dtype)
    shifted = logits + logits.dtype.type(shift)
    loss, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
    loss2, grad2 = fastxent.cross_entropy_with_grad(shifted, target, **options)
    # |shift| + |logits| loses bits of the logits themselves in float32.
    slack = 1 + abs(shift) * (50 if logits.dtype == np.float32 else 1)
    np.testing.assert_allclose(loss2, loss, rtol=rtol * slack, atol=atol * slack)
    np.testing.assert_allclose(grad2, grad, rtol=rtol * slack, atol=atol * slack)


@SETTINGS
@given(problems())
def test_one_and_two_threads_give_the_same_bits(case):
    logits, target, options = case
    with fastxent.num_threads(1):
        one = fastxent.cross_entropy_with_grad(logits, target, **options)
    with fastxent.num_threads(2):
        two = fastxent.cross_entropy_with_grad(logits, target, **options)
    assert np.array_equal(one[0], two[0], equal_nan=True)
    assert np.array_equal(one[1], two[1], equal_nan=True)


@SETTINGS
@given(problems())
def test_inputs_are_left_unchanged(case):
    logits, target, options = case
    before = (logits.copy(), target.copy())
    fastxent.cross_entropy_with_grad(logits, target, **options)
    fastxent.cross_entropy(logits, target, **options)
    assert np.array_equal(logits, before[0]) and np.array_equal(target, before[1])
