"""Properties that hold for every input: hypothesis draws shapes, dtypes,
memory layouts and options, and checks fastxent against itself under
transformations the mathematics says are harmless, and against the NumPy
reference."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastxent  # noqa: E402
from fastxent import reference  # noqa: E402

from fastxent_testing import (  # noqa: E402
    OPERATIONS,
    as_tuple,
    assert_close,
    options_of,
    selected_backend,
    with_layout,
)

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


# --------------------------------------------------------------------------- every operation
# The same kinds of properties over every public operation of the registry
# (fastxent_testing.OPERATIONS): a new operation is covered by its entry.


@st.composite
def operation_cases(draw, operations=OPERATIONS):
    """(op, args, options): a registry operation on a drawn problem of
    (rows, classes), dtype, variant (reduction, weight, axis, ...) and memory
    layout of its first argument."""
    op = draw(st.sampled_from(operations))
    shape = (draw(st.integers(0, 30)), draw(st.integers(1, 40)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    args, kwargs = op.make(rng, shape, dtype)
    options = options_of(args, kwargs, draw(st.sampled_from(op.variants)))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "negative", "readonly"]))
    return op, (with_layout(args[0], layout),) + args[1:], options


def class_axis(options):
    return options.get("axis", -1)


@SETTINGS
@given(operation_cases())
def test_every_operation_compiled_equals_its_twin(case):
    op, args, options = case
    with selected_backend("compiled"):
        got = as_tuple(op.fn(*args, **options))
    want = as_tuple(op.twin(*args, **options))
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, options
        assert_close(g, w, args[0].dtype, rtols=op.rtols, err_msg=f"{op} {options}")


SHIFT_INVARIANT = [
    op for op in OPERATIONS if op.make.__name__ in ("_labels", "_class_probs", "_rows")
    and op.name != "logsumexp"
]


@SETTINGS
@given(operation_cases(SHIFT_INVARIANT), st.sampled_from([-50.0, -1.0, 3.0, 100.0]))
def test_adding_a_constant_to_each_row_of_logits_changes_nothing(case, scale):
    """Losses on logits, softmax and log_softmax depend on each row's logits only
    up to a constant: shift every row by its own multiple of `scale`."""
    op, args, options = case
    # the z-loss, the soft cap and the lse depend on the logits themselves
    assume(not {"z_loss", "softcap", "return_lse"} & set(options))
    logits = args[0]
    shift_shape = [1, 1]
    shift_shape[class_axis(options) + 1] = logits.shape[class_axis(options) + 1]
    # -scale, 0 or +scale: rows shifted differently, none by more than |scale|
    shift = scale * (np.arange(shift_shape[0] * shift_shape[1]) % 3 - 1.0).reshape(shift_shape)
    shifted = logits + shift.astype(logits.dtype)
    got = as_tuple(op.fn(shifted, *args[1:], **options))
    want = as_tuple(op.fn(logits, *args[1:], **options))
    # |shift| + |logits| loses bits of the logits themselves in float32
    slack = 1 + abs(scale) * (50 if logits.dtype == np.float32 else 1)
    rtol, atol = tolerance(logits.dtype)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol * slack, atol=atol * slack, err_msg=f"{op}")


@SETTINGS
@given(operation_cases([op for op in OPERATIONS if op.name in ("softmax", "log_softmax")]))
def test_softmax_rows_sum_to_one(case):
    op, (x,), options = case
    y = np.asarray(op.fn(x, **options), dtype=np.float64)
    probs = y if op.name == "softmax" else np.exp(y)
    n_classes = x.shape[class_axis(options)]
    assume(n_classes > 0)  # a row of no classes sums to 0
    rtol, _ = tolerance(x.dtype)
    np.testing.assert_allclose(probs.sum(axis=class_axis(options)), 1.0, rtol=rtol * n_classes)
    assert np.all(probs >= 0)
