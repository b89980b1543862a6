"""The drop-in compat modules fastxent.keras and fastxent.sklearn against the
real keras.losses (Keras 3) and sklearn.metrics.log_loss where they are
installed, and everywhere against values worked out by hand (independent of
any library), on both backends. test_worked_examples holds the textbook
examples the README shows."""

import importlib.util
import math
import os
import sys
import warnings

import numpy as np
import pytest

# Keras 3 picks its backend once, at its first import. PyTorch's is exact in
# float64 and for binary losses of large logits; Keras's NumPy backend is not
# (see fastxent.keras), and is used only where PyTorch is missing.
if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch" if importlib.util.find_spec("torch") else "numpy"

import fastxent  # noqa: E402
import fastxent.keras as fk  # noqa: E402
import fastxent.sklearn as fsk  # noqa: E402

from fastxent_testing import RTOL, Snapshot, assert_close, random_probs  # noqa: E402
from fastxent_testing import DTYPES

LN2 = math.log(2)
LOG_EPS = -math.log(1e-7)  # Keras's loss for a clipped probability of 0: 16.118...


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip(
        "keras", minversion="3",
        reason="Keras 3 or its backend (PyTorch, else JAX for Keras's NumPy backend) is not "
               "installed: comparisons with keras.losses skipped")
    if keras.backend.backend() not in ("torch", "numpy"):
        # TensorFlow's takes classes on the last axis only; JAX's computes float64 in float32.
        pytest.skip(f"Keras was imported with its {keras.backend.backend()} backend before this "
                    "module could choose PyTorch's: comparisons with keras.losses skipped")
    return keras


@pytest.fixture(scope="module")
def sk_log_loss():
    metrics = pytest.importorskip(
        "sklearn.metrics",
        reason="scikit-learn is not installed: comparisons with sklearn.metrics.log_loss skipped")
    return metrics.log_loss


def keras_exact_backend(keras, what):
    """Skips where Keras's NumPy backend is in use and differs from the others."""
    if keras.backend.backend() == "numpy":
        pytest.skip(f"Keras's NumPy backend {what}; fastxent.keras follows its other backends")


def keras_loss(keras, name, *args, **kwargs):
    with warnings.catch_warnings():
        # Keras's PyTorch backend converts tensors with NumPy 1's __array__ protocol.
        warnings.simplefilter("ignore", DeprecationWarning)
        return keras.ops.convert_to_numpy(getattr(keras.losses, name)(*args, **kwargs))


def unnormalised_probs(rng, shape, axis, dtype):
    """Non-negative scores with exact zeros (Keras clips them) and rows that do
    not sum to 1 (Keras renormalises them); no row is all zero."""
    p = rng.random(shape) * 2
    p[rng.random(shape) < 0.2] = 0
    p += p.sum(axis=axis, keepdims=True) == 0
    return p.astype(dtype)


def keras_y_pred(rng, shape, axis, dtype, from_logits):
    """Logits, or unnormalised probabilities with the class axis `axis`."""
    if from_logits:
        return (rng.standard_normal(shape) * 3).astype(dtype)
    return unnormalised_probs(rng, shape, axis, dtype)


def check_against_keras(keras, name, y_true, y_pred, dtype, batch, **options):
    """fastxent.keras's loss `name` against Keras's, leaving its inputs alone;
    returns ours."""
    snapshot = Snapshot(y_true, y_pred)
    ours = getattr(fk, name)(y_true, y_pred, **options)
    snapshot.assert_unchanged()
    expected = keras_loss(keras, name, y_true, y_pred, **options)
    assert ours.dtype == dtype and ours.shape == batch
    assert_close(ours, expected, dtype)
    return ours


def batch_shape(shape, axis):
    axis %= len(shape)
    return shape[:axis] + shape[axis + 1:]


# --------------------------------------------------------------------------- worked examples


def test_worked_examples(backend):
    # Binary cross-entropy summed over seven predictions.
    targets = np.array([0, 1, 1, 0, 0, 1, 1], dtype=float)
    probs = np.array([0.07, 0.91, 0.74, 0.23, 0.85, 0.17, 0.94])
    total = fastxent.binary_cross_entropy(probs, targets, reduction="sum")
    assert total == pytest.approx(4.460303459760249, rel=1e-12)

    # Categorical cross-entropy per sample: -log of the true class's probability.
    one_hot = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]])
    probs = np.array([[.5, .3, .1, .1], [.2, .1, .6, .1], [.1, .8, .05, .05]])
    expected = [0.693, 0.511, 0.223]  # -log 0.5, -log 0.6, -log 0.8
    np.testing.assert_allclose(fk.categorical_crossentropy(one_hot, probs), expected, atol=5e-4)
    labels = np.array([0, 2, 1])
    log_probs = np.log(probs)
    np.testing.assert_allclose(fastxent.nll_loss(log_probs, labels, reduction="none"), expected,
                               atol=5e-4)
    assert fastxent.nll_loss(log_probs, labels, reduction="sum") == pytest.approx(1.427, abs=5e-4)

    # A fair coin carries one bit.
    assert fastxent.entropy([0.5, 0.5], base=2) == pytest.approx(1.0, rel=1e-15)


# --------------------------------------------------------------------------- keras: against Keras

CATEGORICAL_SHAPES = [((6, 5), -1), ((6, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), -1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", CATEGORICAL_SHAPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_categorical_matches_keras(keras, backend, rng, dtype, shape, axis, from_logits,
                                   label_smoothing):
    y_true = random_probs(rng, shape, axis, dtype)
    y_pred = keras_y_pred(rng, shape, axis, dtype, from_logits)
    check_against_keras(keras, "categorical_crossentropy", y_true, y_pred, dtype,
                        batch_shape(shape, axis), from_logits=from_logits,
                        label_smoothing=label_smoothing, axis=axis)


SPARSE_SHAPES = CATEGORICAL_SHAPES + [((6, 5), "keepdims"), ((2, 3, 4), "keepdims")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SPARSE_SHAPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore_class", [None, 1, -1])
def test_sparse_categorical_matches_keras(keras, backend, rng, dtype, shape, axis, from_logits,
                                          ignore_class):
    keepdims = axis == "keepdims"  # labels keep a length-1 class axis: (N, 1) for (N, C)
    axis = 1 if keepdims else axis
    if axis % len(shape) != len(shape) - 1:
        keras_exact_backend(keras, "takes the classes on the last axis only")
    n_classes = shape[axis]
    labels = rng.integers(0, n_classes, size=batch_shape(shape, axis))
    if ignore_class is not None and labels.ndim:
        labels.reshape(-1)[::3] = ignore_class
    if keepdims:
        labels = np.expand_dims(labels, axis)
    y_pred = keras_y_pred(rng, shape, axis, dtype, from_logits)
    ours = check_against_keras(keras, "sparse_categorical_crossentropy", labels, y_pred, dtype,
                               batch_shape(shape, axis), from_logits=from_logits,
                               ignore_class=ignore_class, axis=axis)
    if ignore_class is not None:
        assert np.all(ours[labels.squeeze(axis) == ignore_class if keepdims
                           else labels == ignore_class] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((6, 1), -1), ((6, 4), -1), ((2, 3, 4), 1),
                                         ((2, 3, 4), 0), ((5,), -1)])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_binary_matches_keras(keras, backend, rng, dtype, shape, axis, from_logits,
                              label_smoothing):
    y_true = (rng.random(shape) < 0.5).astype(dtype)
    if from_logits:
        keras_exact_backend(keras, "clips the sigmoid of logits")
        y_pred = rng.standard_normal(shape) * 3
        y_pred.reshape(-1)[::4] *= 15  # some logits of +-20 and beyond
        y_pred = y_pred.astype(dtype)
    else:
        y_pred = rng.random(shape).astype(dtype)
        y_pred.reshape(-1)[::5] = 1.0  # clipped to 1 - 1e-7
        y_pred.reshape(-1)[1::5] = 0.0  # clipped to 1e-7
    options = dict(from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
    ours = fk.binary_crossentropy(y_true, y_pred, **options)
    expected = keras_loss(keras, "binary_crossentropy", y_true, y_pred, **options)
    assert ours.dtype == dtype and ours.shape == batch_shape(shape, axis)
    # Keras takes the mean over axis in float32 even for float64 input.
    assert_close(ours, expected, dtype, rtol=max(RTOL[np.dtype(dtype)], 1e-6))


# --------------------------------------------------------------------------- keras: by hand


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_categorical_by_hand(backend, dtype):
    # [2, 1, 1] renormalises to [1/2, 1/4, 1/4]; the true class has 1/4.
    y_pred = np.array([[2, 1, 1], [1, 0, 0]], dtype=dtype)
    y_true = np.array([[0, 1, 0], [0, 1, 0]], dtype=dtype)
    loss = fk.categorical_crossentropy(y_true, y_pred)
    assert loss.dtype == dtype
    assert_close(loss, [2 * LN2, LOG_EPS], dtype)  # the 0 is clipped to 1e-7
    # Smoothing 0.3 over 3 classes: targets [0.1, 0.8, 0.1] for the first row,
    # loss 0.1 log 2 + 0.9 log 4.
    smoothed = fk.categorical_crossentropy(y_true[:1], y_pred[:1], label_smoothing=0.3)
    assert_close(smoothed, [1.9 * LN2], dtype)
    # From logits [0, log 3]: softmax [1/4, 3/4].
    logits = np.array([0, math.log(3)], dtype=dtype)
    assert_close(fk.categorical_crossentropy([0, 1], logits, from_logits=True),
                 math.log(4 / 3), dtype)
    assert_close(fk.categorical_crossentropy([1, 0], logits, from_logits=True), math.log(4),
                 dtype)


def test_keras_categorical_smoothing_counts_the_last_axis(backend):
    # Keras divides the smoothing by the length of the *last* axis (3 here),
    # not by the number of classes on `axis` (2).
    y_true = np.array([[1.0, 0, 1], [0, 1, 0]])
    y_pred = np.array([[0.5, 0.2, 0.9], [0.5, 0.8, 0.1]])
    loss = fk.categorical_crossentropy(y_true, y_pred, label_smoothing=0.3, axis=0)
    smoothed = y_true * 0.7 + 0.1
    expected = [-(smoothed[:, j] * np.log(y_pred[:, j])).sum() for j in range(3)]
    assert_close(loss, expected, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_sparse_by_hand(backend, dtype):
    y_pred = np.array([[0.2, 0.3, 0.5], [1, 1, 2], [0.2, 0.8, 0.0], [0.2, 0.3, 0.5]],
                      dtype=dtype)
    labels = np.array([2, 2, 2, 0])
    assert_close(fk.sparse_categorical_crossentropy(labels, y_pred),
                 [LN2, LN2, LOG_EPS, math.log(5)], dtype)
    # The same with a length-1 class axis, float labels, and ignore_class.
    loss = fk.sparse_categorical_crossentropy(np.array([[2.0], [-1], [2], [-1]]), y_pred,
                                              ignore_class=-1)
    assert loss.dtype == dtype
    np.testing.assert_array_equal(loss == 0, [False, True, False, True])
    assert_close(loss, [LN2, 0, LOG_EPS, 0], dtype)
    # From logits [0, 0, log 2]: softmax [1/4, 1/4, 1/2].
    logits = np.array([[0, 0, math.log(2)]] * 2, dtype=dtype)
    assert_close(fk.sparse_categorical_crossentropy([2, 0], logits, from_logits=True),
                 [LN2, 2 * LN2], dtype)
    # A class in range can be the one ignored.
    assert_close(fk.sparse_categorical_crossentropy([2, 0], logits, from_logits=True,
                                                    ignore_class=0), [LN2, 0], dtype)
    # Classes on axis 0: the columns are the samples.
    assert_close(fk.sparse_categorical_crossentropy([2, 0, 2, 0], y_pred.T, axis=0),
                 [LN2, math.log(4), LOG_EPS, math.log(5)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_keras_binary_by_hand(backend, dtype):
    y_true = np.array([[1, 0], [0, 1]], dtype=dtype)
    y_pred = np.array([[0.5, 0.25], [0.0, 1.0]], dtype=dtype)
    loss = fk.binary_crossentropy(y_true, y_pred)
    assert loss.dtype == dtype
    # mean(-log 0.5, -log 0.75); 0 and 1 clipped: mean(-log(1 - 1e-7), -log(1 - 1e-7))
    assert_close(loss, [(LN2 + math.log(4 / 3)) / 2, -math.log1p(-1e-7)], dtype,
                 floor=1.0)
    # Smoothing 0.2 turns targets 1, 0 into 0.9, 0.1.
    smoothed = fk.binary_crossentropy(y_true[:1], y_pred[:1], label_smoothing=0.2)
    expected = -(0.9 * math.log(0.5) + 0.1 * math.log(0.5)
                 + 0.1 * math.log(0.25) + 0.9 * math.log(0.75)) / 2
    assert_close(smoothed, [expected], dtype)
    # Logits: 0 gives log 2 whatever the target; a logit of 100 against target
    # 0 costs 100 (no clip), against 1 about e^-100.
    logits = np.array([0, 0, 100, 100], dtype=dtype)
    loss = fk.binary_crossentropy(np.array([0, 1, 0, 1], dtype=dtype), logits, from_logits=True,
                                  axis=0)
    assert loss.shape == () and loss.dtype == dtype
    assert_close(loss, (2 * LN2 + 100 + math.exp(-100)) / 4, dtype)


def test_keras_dtypes(backend):
    p32 = np.array([[0.3, 0.7]], dtype=np.float32)
    assert fk.categorical_crossentropy(np.array([[0, 1]]), p32).dtype == np.float32
    assert fk.sparse_categorical_crossentropy([1], p32).dtype == np.float32
    assert fk.binary_crossentropy([[0, 1]], p32).dtype == np.float32
    assert fk.binary_crossentropy([[0, 1]], p32.astype(np.float16)).dtype == np.float32
    # Lists and integers compute in float64, as everywhere in fastxent.
    assert fk.categorical_crossentropy([[0, 1]], [[1, 3]]).dtype == np.float64
    assert_close(fk.categorical_crossentropy([[0, 1]], [[1, 3]]), [math.log(4 / 3)], np.float64)


@pytest.mark.parametrize("fn, y_true, y_pred, kwargs, exc, pattern", [
    (fk.categorical_crossentropy, np.ones((2, 3)), np.ones((2, 4)), {}, ValueError,
     r"y_true: .*\(2, 4\).*\(2, 3\)"),
    (fk.binary_crossentropy, np.ones((2, 3)), np.ones((3, 2)) / 2, {}, ValueError, "y_true"),
    (fk.binary_crossentropy, np.ones(2), np.float64(0.5), {}, ValueError, "y_pred: .*0-d"),
    (fk.categorical_crossentropy, np.ones(3), np.ones(3), {"axis": 1}, ValueError, "axis: 1"),
    (fk.categorical_crossentropy, np.ones(3), np.ones(3), {"axis": True}, TypeError, "axis"),
    (fk.categorical_crossentropy, np.ones(3), np.ones(3), {"label_smoothing": 1.5}, ValueError,
     "label_smoothing"),
    (fk.binary_crossentropy, np.array(["a"]), np.ones(1) / 2, {}, TypeError, "y_true"),
    (fk.categorical_crossentropy, np.ones(3), np.array(["a", "b", "c"]), {}, TypeError,
     "y_pred"),
    (fk.sparse_categorical_crossentropy, np.array([0, 3]), np.ones((2, 3)), {}, IndexError,
     r"y_true: class label 3 at position \(1,\) is outside \[0, 3\)"),
    (fk.sparse_categorical_crossentropy, np.array([0, -1]), np.ones((2, 3)), {"ignore_class": 5},
     IndexError, r"label -1 .* not ignore_class \(5\)"),
    (fk.sparse_categorical_crossentropy, np.array([0, -100]), np.ones((2, 3)), {}, IndexError,
     "label -100"),
    (fk.sparse_categorical_crossentropy, np.array([0.0, 1.5]), np.ones((2, 3)), {}, ValueError,
     r"y_true: .*whole numbers, got 1.5 at position \(1,\)"),
    (fk.sparse_categorical_crossentropy, np.array([0.0, np.nan]), np.ones((2, 3)), {},
     ValueError, "whole numbers, got nan"),
    (fk.sparse_categorical_crossentropy, np.array([0, 1, 2]), np.ones((2, 3)), {}, ValueError,
     r"y_true: .*shape \(2,\).*got \(3,\)"),
    (fk.sparse_categorical_crossentropy, np.array([0, 1]), np.ones((2, 3)),
     {"ignore_class": 1.0}, TypeError, "ignore_class"),
])
def test_keras_errors(backend, fn, y_true, y_pred, kwargs, exc, pattern):
    snapshot = Snapshot(y_true, y_pred)
    with pytest.raises(exc, match=pattern):
        fn(y_true, y_pred, **kwargs)
    snapshot.assert_unchanged()


def test_keras_warns_of_one_class_as_keras():
    with pytest.warns(SyntaxWarning, match="binary_crossentropy"):
        fk.categorical_crossentropy(np.ones((2, 1)), np.ones((2, 1)))


# ------------------------------------------------------------------- sklearn: against scikit-learn


def _sklearn_cases(rng):
    """name -> (y_true, y_pred, kwargs)."""
    n = 12
    binary = rng.integers(0, 2, n)
    p1 = rng.random(n)
    multi = rng.integers(0, 4, n)
    multi[:4] = [0, 1, 2, 3]
    p4 = random_probs(rng, (n, 4), -1)
    clipped = p4.copy()
    clipped[0] = [1, 0, 0, 0]  # certain and right
    clipped[1] = [1, 0, 0, 0]  # certain and wrong: the probability 0 is clipped to eps
    multi_clip = multi.copy()
    multi_clip[:2] = [0, 2]
    names = np.array(["cat", "dog", "emu", "ant"])
    indicator = (rng.random((n, 3)) < 0.4).astype(int)
    weight = rng.random(n) + 0.1
    return {
        "binary-1d": (binary, p1, {}),
        "binary-column": (binary, p1[:, None], {}),
        "binary-2col": (binary, np.stack([1 - p1, p1], axis=1), {}),
        "binary-bool": (binary.astype(bool), p1, {}),
        "binary-float-labels": (binary.astype(float), p1, {}),
        "binary-float32": (binary, p1.astype(np.float32), {}),
        "binary-float16": (binary, p1.astype(np.float16), {}),
        "multiclass": (multi, p4, {}),
        "multiclass-float32": (multi, p4.astype(np.float32), {}),
        "multiclass-clipped": (multi_clip, clipped, {}),
        "multiclass-clipped-float32": (multi_clip, clipped.astype(np.float32), {}),
        "strings": (names[multi], p4, {}),
        "labels-absent-class": (multi % 3, p4, {"labels": [0, 1, 2, 3]}),
        "labels-strings": (names[multi % 2], p4, {"labels": sorted(names)}),
        "sample-weight": (multi, p4, {"sample_weight": weight}),
        "sample-weight-sum": (multi, p4, {"sample_weight": weight, "normalize": False}),
        "sum": (multi, p4, {"normalize": False}),
        "negative-weights": (binary, p1, {"sample_weight": weight - 0.5}),
        "indicator-one-hot": (np.eye(4, dtype=int)[multi], p4, {}),
        "indicator-multilabel": (indicator, random_probs(rng, (n, 3), -1), {}),
        "list-inputs": (binary.tolist(), p1.tolist(), {}),
    }


SKLEARN_CASES = list(_sklearn_cases(np.random.default_rng(0)))
SKLEARN_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6,
                np.dtype(np.float16): 2e-3}


@pytest.mark.parametrize("case", SKLEARN_CASES)
def test_log_loss_matches_sklearn(sk_log_loss, backend, case):
    y_true, y_pred, kwargs = _sklearn_cases(np.random.default_rng(0))[case]
    snapshot = Snapshot(y_true, y_pred, *kwargs.values())
    ours = fsk.log_loss(y_true, y_pred, **kwargs)
    snapshot.assert_unchanged()
    expected = sk_log_loss(y_true, y_pred, **kwargs)
    assert isinstance(ours, float)
    assert ours == pytest.approx(expected, rel=SKLEARN_RTOL[np.asarray(y_pred).dtype])


SKLEARN_ERRORS = {
    "one-label": (([1, 1, 1], [0.2, 0.7, 0.9]), {}),
    "one-label-in-labels": (([1, 1, 1], [0.2, 0.7, 0.9]), {"labels": [1]}),
    "label-not-in-labels": (([1, 1, 2], [0.2, 0.7, 0.9]), {"labels": [0, 1]}),
    "continuous-labels": (([0.5, 1, 1], [0.2, 0.7, 0.9]), {}),
    "mixed-labels": ((["a", 1, 1], [0.2, 0.7, 0.9]), {}),
    "nan-label": (([0, 1, np.nan], [0.2, 0.7, 0.9]), {}),
    "nan-probability": (([0, 1, 1], [0.2, np.nan, 0.9]), {}),
    "probability-above-1": (([0, 1, 1], [0.2, 1.5, 0.9]), {}),
    "probability-below-0": (([0, 1, 1], [0.2, -0.5, 0.9]), {}),
    "lengths": (([0, 1, 1], [0.2, 0.9]), {}),
    "weight-length": (([0, 1, 1], [0.2, 0.7, 0.9]), {"sample_weight": [1, 2]}),
    "weights-all-zero": (([0, 1, 1], [0.2, 0.7, 0.9]), {"sample_weight": [0, 0, 0]}),
    "weight-nan": (([0, 1, 1], [0.2, 0.7, 0.9]), {"sample_weight": [1, np.nan, 1]}),
    "class-count": (([0, 1, 2], [[0.2, 0.8], [0.3, 0.7], [0.5, 0.5]]), {}),
    "labels-class-count": (([0, 1, 2], [[0.2, 0.7, 0.1]] * 3), {"labels": [0, 1, 2, 3]}),
    "indicator-with-labels": (([[1, 0, 1], [0, 1, 0]], [[0.2, 0.7, 0.1]] * 2),
                              {"labels": [0, 1, 2]}),
    "multioutput": (([[2, 0, 1], [0, 1, 0]], [[0.2, 0.7, 0.1]] * 2), {}),
    "3d": (([0, 1], np.full((2, 2, 1), 0.5)), {}),
    "empty": (([], []), {}),
}


@pytest.mark.parametrize("case", list(SKLEARN_ERRORS))
def test_log_loss_raises_where_sklearn_does(sk_log_loss, case):
    args, kwargs = SKLEARN_ERRORS[case]
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn casts a NaN label
        sk_log_loss(*args, **kwargs)
    with pytest.raises(ValueError):
        fsk.log_loss(*args, **kwargs)


def test_log_loss_zero_weight_sum_as_sklearn(sk_log_loss):
    args = ([0, 1, 1], [0.2, 0.7, 0.9])
    with pytest.raises(ZeroDivisionError):
        sk_log_loss(*args, sample_weight=[1, -1, 0])
    with pytest.raises(ZeroDivisionError, match="sample_weight"):
        fsk.log_loss(*args, sample_weight=[1, -1, 0])
    # The sum is defined.
    assert fsk.log_loss(*args, sample_weight=[1, -1, 0], normalize=False) == pytest.approx(
        sk_log_loss(*args, sample_weight=[1, -1, 0], normalize=False), rel=1e-12)


@pytest.mark.parametrize("args, kwargs", [
    (([0, 1], [[0.2, 0.7], [0.3, 0.7]]), {}),  # rows that do not sum to 1
    (([0, 1], [0.2, 0.7]), {"labels": [1, 0]}),  # labels not sorted
])
def test_log_loss_warns_where_sklearn_does(sk_log_loss, args, kwargs):
    with pytest.warns(UserWarning):
        expected = sk_log_loss(*args, **kwargs)
    with pytest.warns(UserWarning):
        ours = fsk.log_loss(*args, **kwargs)
    assert ours == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- sklearn: by hand


def test_log_loss_by_hand(backend):
    # scikit-learn's docstring example: classes ham < spam, so the columns are
    # [ham, spam]; the true classes get 0.9, 0.9, 0.8, 0.65.
    loss = fsk.log_loss(["spam", "ham", "ham", "spam"],
                        [[.1, .9], [.9, .1], [.8, .2], [.35, .65]])
    expected = -(2 * math.log(0.9) + math.log(0.8) + math.log(0.65)) / 4
    assert loss == pytest.approx(expected, rel=1e-14)
    assert round(loss, 5) == 0.21616

    # 1-D probabilities are those of the second class.
    assert fsk.log_loss([0, 1], [0.25, 0.5]) == pytest.approx(
        (math.log(4 / 3) + LN2) / 2, rel=1e-14)
    assert fsk.log_loss([0, 1], [0.25, 0.5], sample_weight=[1, 3]) == pytest.approx(
        (math.log(4 / 3) + 3 * LN2) / 4, rel=1e-14)
    assert fsk.log_loss([0, 1], [0.25, 0.5], sample_weight=[1, 3],
                        normalize=False) == pytest.approx(math.log(4 / 3) + 3 * LN2, rel=1e-14)
    assert fsk.log_loss([0, 1], [0.25, 0.5], normalize=False) == pytest.approx(
        math.log(4 / 3) + LN2, rel=1e-14)

    # labels= declares a class y_true does not show; columns follow [1, 2, 3].
    assert fsk.log_loss([2, 2], [[0.2, 0.3, 0.5]] * 2, labels=[1, 2, 3]) == pytest.approx(
        -math.log(0.3), rel=1e-14)

    # A multilabel indicator row counts each of its classes.
    assert fsk.log_loss([[1, 0, 1], [0, 1, 0]], [[0.5, 0.25, 0.25]] * 2) == pytest.approx(
        (3 * LN2 + 2 * LN2) / 2, rel=1e-14)


@pytest.mark.parametrize("dtype, bits", [(np.float64, 52), (np.float32, 23), (np.float16, 10)])
def test_log_loss_clips_at_the_dtype_epsilon(backend, dtype, bits):
    # A probability 0 for the true class costs -log(eps) = bits log 2; a
    # probability 1 costs -log(1 - eps), about eps.
    y_pred = np.array([[1, 0], [1, 0]], dtype=dtype)
    loss = fsk.log_loss([1, 0], y_pred, normalize=False)
    assert loss == pytest.approx(bits * LN2 + 2.0 ** -bits, rel=1e-6)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"y_true": [1, 1], "y_proba": [0.2, 0.7]}, ValueError, r"y_true: .*only one label \(1\)"),
    ({"y_true": [0, 1], "y_proba": [0.2, 1.5]}, ValueError, "y_proba: .*greater than 1: 1.5"),
    ({"y_true": [0, 1], "y_proba": [0.2, 0.7, 0.1]}, ValueError,
     r"y_proba, y_true: inconsistent numbers of samples: \[3, 2\]"),
    ({"y_true": [0, 1, 2], "y_proba": [0.2, 0.7, 0.1]}, ValueError,
     r"y_proba: has 2 classes .* y_true has 3"),
    ({"y_true": [0, 3], "y_proba": [0.2, 0.7], "labels": [0, 1]}, ValueError,
     r"y_true: contains values \[3\] not among labels \[0, 1\]"),
    ({"y_true": [0, 1], "y_proba": [0.2, 0.7], "sample_weight": [[1, 2]]}, ValueError,
     "sample_weight: expected a 1-D"),
    ({"y_true": [0, 1], "y_proba": [0.2, 0.7], "normalize": 1}, TypeError, "normalize"),
    ({"y_true": [0, 1], "y_proba": ["a", "b"]}, TypeError, "y_proba"),
])
def test_log_loss_errors_name_the_argument(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        fsk.log_loss(**kwargs)


def test_log_loss_warnings_say_why():
    with pytest.warns(UserWarning, match="y_proba: some rows do not sum to one"):
        fsk.log_loss([0, 1], [[0.2, 0.7], [0.3, 0.7]])
    with pytest.warns(UserWarning, match=r"labels: \[1, 0\] are not sorted"):
        fsk.log_loss([0, 1], [0.2, 0.7], labels=[1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fsk.log_loss([0, 1], [[0.2, 0.8], [0.3, 0.7]])  # no warning for real probabilities
