"""The error cases of cross_entropy and cross_entropy_with_grad: shape
mismatches and bad options raise ValueError, class labels outside [0, C) that
are not ignore_index raise IndexError naming the label and its position, float
labels and ragged inputs raise TypeError, a failed in-place call leaves the
logits intact. Messages name the argument; no input is modified. (What every
public operation refuses alike, the wrong kind of array, unknown reductions,
bad axes and bad out=, is checked once over the registry in
test_operations.py.)"""

import re

import numpy as np
import pytest

import fastxent

from fastxent_testing import Snapshot, random_logits

FUNCTIONS = [
    pytest.param(fastxent.cross_entropy, id="cross_entropy"),
    pytest.param(fastxent.cross_entropy_with_grad, id="with_grad"),
]


def raises(exc, fn, *args, match=None, **kwargs):
    """fn(*args, **kwargs) raises `exc` whose message matches every regex in
    `match`, and leaves its array arguments unchanged."""
    snapshot = Snapshot(*args, *kwargs.values())
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    for pattern in [match] if isinstance(match, str) else (match or ()):
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    snapshot.assert_unchanged()
    return message


@pytest.fixture
def logits():
    return np.random.default_rng(0).standard_normal((4, 3))


LABELS = np.array([0, 1, 2, 1])


# ------------------------------------------------------------------ shape mismatch


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize(
    "shape, axis, target_shape",
    [
        ((4, 3), -1, (5,)),
        ((4, 3), -1, (3,)),
        ((4, 3), -1, (4, 1)),
        ((4, 3), 0, (4,)),
        ((2, 3, 4), -1, (2, 4)),
        ((2, 3, 4), 1, (2, 3)),
        ((3,), -1, (1,)),
    ],
)
def test_index_target_of_the_wrong_shape(backend, fn, shape, axis, target_shape):
    logits = np.zeros(shape)
    target = np.zeros(target_shape, np.int64)
    raises(ValueError, fn, logits, target, axis=axis,
           match=["target", re.escape(str(target_shape))])


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("target_shape", [(4, 4), (3, 4), (4, 3, 1), (12,), (1, 3)])
def test_probability_target_of_the_wrong_shape(backend, fn, logits, target_shape):
    target = np.full(target_shape, 0.25)
    raises(ValueError, fn, logits, target, match=["target", re.escape(str(target_shape))])


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("weight", [np.ones(2), np.ones(4), np.ones((1, 3)), np.ones((3, 1)),
                                    np.float64(1.0), [1.0, 2.0]],
                         ids=["len2", "len4", "1x3", "3x1", "scalar", "list-len2"])
def test_weight_of_the_wrong_length(backend, fn, logits, weight):
    raises(ValueError, fn, logits, LABELS, weight=weight, match=["weight", r"\(3,\)"])
    raises(ValueError, fn, logits, np.full((4, 3), 1 / 3), weight=weight, match="weight")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_logits_without_classes(backend, fn):
    raises(ValueError, fn, np.float64(1.0), np.array(0), match="logits")
    # Zero classes compute, as PyTorch (test_review_semantics.py), but no label fits them.
    raises(IndexError, fn, np.zeros((4, 0)), np.zeros(4, np.int64), match=r"\[0, 0\)")


# ------------------------------------------------------------------ bad options


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("value", [-0.1, -1e-12, 1.0000001, 2, np.nan, np.inf, -np.inf],
                         ids=repr)
def test_label_smoothing_outside_0_1(backend, fn, logits, value):
    raises(ValueError, fn, logits, LABELS, label_smoothing=value, match="label_smoothing")
    raises(ValueError, fn, logits, np.full((4, 3), 1 / 3), label_smoothing=value,
           match="label_smoothing")


@pytest.mark.parametrize("ignore_index", [2**63, -(2**63) - 1, 2**70])
def test_ignore_index_beyond_int64(backend, logits, ignore_index):
    # No label can equal it: either a clear ValueError naming the option, or the
    # result of a call without ignored labels, on both backends alike.
    expected = fastxent.cross_entropy_with_grad(logits, LABELS)
    try:
        loss, grad = fastxent.cross_entropy_with_grad(logits, LABELS, ignore_index=ignore_index)
    except ValueError as exc:
        assert "ignore_index" in str(exc)
    else:
        assert loss == expected[0]
        assert np.array_equal(grad, expected[1])


# ------------------------------------------------------------------ labels out of range


def check_label_error(fn, logits, target, label, position, **options):
    message = raises(IndexError, fn, logits, target, **options)
    assert re.search(rf"(?<![\d.]){label}(?![\d.])", message), message
    if position:
        assert str(tuple(position)) in message or (
            len(position) == 1 and re.search(rf"\b{position[0]}\b", message)
        ), message
    return message


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize(
    "target, label, position, options",
    [
        ([0, 3, 1, 2], 3, (1,), {}),
        ([0, 1, 2, -1], -1, (3,), {}),
        ([1000, 1, 2, 0], 1000, (0,), {}),
        ([0, 1, -100, 2], -100, (2,), dict(ignore_index=-1)),
        ([0, 1, 2, 1], 2, (2,), dict(ignore_index=1, weight=[1.0, 2.0])),  # C=2 below
        ([0, 3, 2, 1], 3, (1,), dict(label_smoothing=0.1, weight=[1.0, 2.0, 3.0])),
    ],
    ids=["C", "-1", "1000", "-100-not-ignored", "ignore-in-range", "smoothing-weight"],
)
def test_label_outside_range(backend, fn, reduction, target, label, position, options):
    n_classes = len(options["weight"]) if "weight" in options else 3
    logits = random_logits(np.random.default_rng(1), (4, n_classes))
    check_label_error(fn, logits, np.array(target), label, position, reduction=reduction,
                      **options)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("target_dtype", [np.int8, np.int16, np.int32, np.uint8, np.uint16,
                                          np.uint32, np.uint64])
def test_label_outside_range_for_every_integer_dtype(backend, fn, logits, target_dtype):
    target = np.array([0, 1, 2, 100], dtype=target_dtype)
    check_label_error(fn, logits, target, 100, (3,))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_huge_unsigned_label(backend, fn, logits):
    target = np.array([0, 1, 2**64 - 1, 1], dtype=np.uint64)
    check_label_error(fn, logits, target, 2**64 - 1, (2,))


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_label_error_position_in_several_dimensions(backend, fn):
    rng = np.random.default_rng(2)
    target = np.zeros((2, 3), np.int64)
    target[1, 2] = 7
    check_label_error(fn, random_logits(rng, (2, 3, 4)), target, 7, (1, 2))
    # classes on axis 1: the position is in the target's coordinates
    target = np.zeros((2, 3), np.int64)
    target[0, 1] = -5
    check_label_error(fn, random_logits(rng, (2, 4, 3)), target, -5, (0, 1), axis=1)
    # unbatched logits and a 0-d target
    check_label_error(fn, random_logits(rng, (3,)), np.array(5), 5, ())


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_label_error_far_into_a_large_batch(backend, fn):
    # past the first blocks of rows of the compiled kernel, on two threads
    rng = np.random.default_rng(3)
    target = rng.integers(0, 20, 5000)
    target[4321] = 20
    with fastxent.num_threads(2):
        check_label_error(fn, random_logits(rng, (5000, 20)), target, 20, (4321,),
                          reduction="sum")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_several_bad_labels_one_is_named(backend, fn, logits):
    message = raises(IndexError, fn, logits, np.array([0, 5, 1, -7]))
    assert (re.search(r"\b5\b", message) and re.search(r"\b1\b", message)) or (
        re.search(r"-7\b", message) and re.search(r"\b3\b", message)), message


# ------------------------------------------------------------------ the wrong kind of target


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("labels", [[0.5, 1.0, 2.0, 1.0], [0.0, 1.0, 2.0, 1.0]],
                         ids=["non-integral", "integral-valued"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_labels(backend, fn, logits, labels, dtype):
    # class indices must be integers; a float target must have the logits' shape
    raises(TypeError, fn, logits, np.array(labels, dtype), match="target")


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_ragged_input(backend, fn):
    raises(TypeError, fn, [[1.0, 2.0], [3.0]], [0, 1], match="logits")
    raises(TypeError, fn, np.zeros((2, 2)), [[0.5, 0.5], [1.0]], match="target")


# ------------------------------------------------------------------ out=logits


@pytest.mark.parametrize("layout", ["c", "non-contiguous"])
def test_failed_in_place_call_leaves_logits_intact(backend, layout):
    # out=logits licenses overwriting the logits with the gradient, not with
    # garbage: a call that raises (here: a bad label in the last row) must
    # leave them as they were, on both backends alike.
    rng = np.random.default_rng(5)
    buffer = random_logits(rng, (6, 8))
    logits = buffer[:, :4] if layout == "non-contiguous" else np.ascontiguousarray(buffer[:, :4])
    target = np.array([0, 1, 2, 3, 0, 4])
    for reduction in ("none", "sum", "mean"):
        before = logits.copy()
        with pytest.raises(IndexError):
            fastxent.cross_entropy_with_grad(logits, target, reduction=reduction, out=logits)
        assert np.array_equal(logits, before), "the logits were overwritten by a failed call"
