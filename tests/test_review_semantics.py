"""Semantics an independent review found at odds with the libraries fastxent
mirrors, and the clear errors it asked for: each test against PyTorch, SciPy,
scikit-learn, Keras or an analytic value, on both backends where there are two.

* scikit-learn 1.9's log_loss: labels as a column, the keyword y_proba= (y_pred=
  still accepted, with scikit-learn's FutureWarning);
* an ignore_index given with probability targets is refused, as PyTorch;
* logsumexp and log_softmax keep their relative accuracy where a maximum
  dominates its row (SciPy's gh-18295: log1p of the terms below the maximum);
* fastxent.keras.binary_crossentropy takes any y_true, as Keras, and the compat
  modules' errors name their own arguments;
* an empty class axis: softmax and log_softmax give empty arrays, the losses
  compute as PyTorch (0 per row, a mean over nothing NaN);
* binary_cross_entropy's gradient clamps p (1 - p) where PyTorch does, at its
  float 1e-12;
* np.matrix and MaskedArray inputs are taken as the plain arrays they hold;
* bools are not integers and strings are not numbers for any numeric option.
"""

import importlib.util
import inspect
import math
import os
import sys
import warnings

import numpy as np
import pytest

# Keras 3 picks its backend once, at its first import: the choice of test_compat.
if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "torch" if importlib.util.find_spec("torch") else "numpy"

import fastxent  # noqa: E402
import fastxent.keras as fk  # noqa: E402
import fastxent.sklearn as fsk  # noqa: E402
from fastxent import reference  # noqa: E402

from conftest import Snapshot, torch_xent  # noqa: E402

F64_EPS = np.finfo(np.float64).eps
F32_EPS = np.finfo(np.float32).eps


def relative_error(actual, expected):
    """|actual - expected| / |expected| elementwise, in float64 (0 where both are 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(actual - expected) / np.abs(expected)
    return np.where(actual == expected, 0.0, err)


# ------------------------------------------------------------------ item 7: sklearn.log_loss

@pytest.fixture(scope="module")
def sk_log_loss():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    return metrics.log_loss


PROBS_3 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])
LABELS_3 = np.array([0, 1, 2, 2])


@pytest.mark.parametrize("labels, probs", [
    (LABELS_3, PROBS_3),
    (np.array(["b", "a", "b"]), np.array([0.2, 0.7, 0.6])),  # binary, the second class
    (np.array([1.0, 0.0, 1.0]), np.array([[0.3, 0.7], [0.9, 0.1], [0.4, 0.6]])),
])
def test_log_loss_takes_a_column_of_labels(sk_log_loss, labels, probs):
    column = labels[:, None]
    snapshot = Snapshot(column, probs)
    ours = fsk.log_loss(column, probs)
    snapshot.assert_unchanged()
    assert ours == pytest.approx(sk_log_loss(column, probs), rel=1e-12)
    assert ours == fsk.log_loss(labels, probs)


def test_log_loss_column_of_labels_analytic():
    # -mean log p(true class), with no library at all
    expected = -np.mean(np.log(PROBS_3[np.arange(4), LABELS_3]))
    assert fsk.log_loss(LABELS_3[:, None], PROBS_3) == pytest.approx(expected, rel=1e-14)
    assert fsk.log_loss(LABELS_3[:, None], PROBS_3, labels=[0, 1, 2]) == pytest.approx(
        expected, rel=1e-14)


def test_log_loss_has_scikit_learns_signature(sk_log_loss):
    ours = inspect.signature(fsk.log_loss).parameters
    theirs = inspect.signature(sk_log_loss).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()]


def test_log_loss_y_proba_keyword(sk_log_loss):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        ours = fsk.log_loss(LABELS_3, y_proba=PROBS_3)
    assert ours == pytest.approx(sk_log_loss(LABELS_3, y_proba=PROBS_3), rel=1e-12)


def _warning_of(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    future = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(future) == 1, [str(w.message) for w in caught]
    return result, str(future[0].message)


def test_log_loss_old_y_pred_keyword_warns_as_scikit_learn(sk_log_loss):
    ours, our_message = _warning_of(fsk.log_loss, LABELS_3, y_pred=PROBS_3)
    theirs, their_message = _warning_of(sk_log_loss, LABELS_3, y_pred=PROBS_3)
    assert our_message == their_message
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert ours == fsk.log_loss(LABELS_3, PROBS_3)


def test_log_loss_both_names_refused_as_scikit_learn(sk_log_loss):
    with pytest.raises(ValueError) as theirs:
        sk_log_loss(LABELS_3, PROBS_3, y_pred=PROBS_3)
    with pytest.raises(ValueError) as ours:
        fsk.log_loss(LABELS_3, PROBS_3, y_pred=PROBS_3)
    assert str(ours.value) == str(theirs.value)


def test_log_loss_without_probabilities():
    with pytest.raises(TypeError, match="y_proba"):
        fsk.log_loss(LABELS_3)


def test_log_loss_messages_name_y_proba():
    with pytest.raises(ValueError, match=r"y_proba: .*greater than 1"):
        fsk.log_loss([0, 1], y_proba=[0.2, 1.5])
    with pytest.raises(ValueError, match=r"y_proba: .*greater than 1"), \
            pytest.warns(FutureWarning):
        fsk.log_loss([0, 1], y_pred=[0.2, 1.5])


# ------------------------------------------------------------------ item 8: ignore_index

PROB_FUNCTIONS = [fastxent.cross_entropy, fastxent.cross_entropy_with_grad]


@pytest.mark.parametrize("fn", PROB_FUNCTIONS)
@pytest.mark.parametrize("ignore_index", [3, 0, -1, -100, np.int64(-100)])
def test_ignore_index_with_probability_targets_refused(backend, fn, ignore_index):
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((4, 5))
    target = rng.dirichlet(np.ones(5), size=4)
    snapshot = Snapshot(logits, target)
    with pytest.raises(ValueError, match="ignore_index is not supported for floating point "
                                         "target"):
        fn(logits, target, ignore_index=ignore_index)
    snapshot.assert_unchanged()


def test_ignore_index_refused_as_pytorch(torch):
    logits = torch.zeros(4, 5, dtype=torch.float64)
    target = torch.full((4, 5), 0.2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="ignore_index is not supported for floating point"):
        torch.nn.functional.cross_entropy(logits, target, ignore_index=3)
    with pytest.raises(ValueError, match="ignore_index is not supported for floating point"):
        fastxent.cross_entropy(logits.numpy(), target.numpy(), ignore_index=3)


@pytest.mark.parametrize("fn", PROB_FUNCTIONS)
def test_default_ignore_index_with_probability_targets(backend, fn, torch):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((4, 5))
    target = rng.dirichlet(np.ones(5), size=4)
    result = fn(logits, target)
    loss = result[0] if isinstance(result, tuple) else result
    want_loss, _ = torch_xent(torch, logits, target)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    # the documented default is still -100, for class labels
    assert inspect.signature(fn).parameters["ignore_index"].default == -100
    labels = np.array([0, -100, 4, 2])
    want_loss, _ = torch_xent(torch, logits, labels)
    result = fn(logits, labels)
    np.testing.assert_allclose(result[0] if isinstance(result, tuple) else result, want_loss,
                               rtol=1e-12)


# ------------------------------------------------------------------ item 9: logsumexp accuracy

def _dominated_rows():
    """Rows whose maximum dominates: a result near 0 for logsumexp, near 0 at
    the maximum for log_softmax."""
    rows = [[0.0, -40.0], [0.0, -700.0], [0.0, -1.0], [0.0, -5.0, -30.0, -35.0],
            [1e-20, -40.0], [-1e-17, -38.0], [0.5, -20.0, -25.0], [-0.75, -3.0],
            [0.0, -36.7, -36.7, -36.7], [-0.2, -0.2 - 1e-3]]
    rng = np.random.default_rng(99)
    for gap in (3.0, 10.0, 25.0, 45.0):
        row = np.full(64, 0.0) - gap - rng.random(64) * 5
        row[rng.integers(64)] = rng.uniform(-0.9, 0.9)
        rows.append(row.tolist())
    width = max(len(r) for r in rows)
    return np.array([r + [-np.inf] * (width - len(r)) for r in rows])


def _general_rows(dtype):
    rng = np.random.default_rng(7)
    return (rng.standard_normal((50, 33)) * 4).astype(dtype)


def test_logsumexp_of_0_and_minus_40_as_scipy(backend):
    scipy_special = pytest.importorskip("scipy.special")
    got = fastxent.logsumexp(np.array([0.0, -40.0]))
    assert got == scipy_special.logsumexp([0.0, -40.0])
    assert got == pytest.approx(math.log1p(math.exp(-40.0)), rel=2 * F64_EPS)
    assert got == pytest.approx(4.248354255291589e-18, rel=2 * F64_EPS)


def test_logsumexp_relative_accuracy_where_the_maximum_dominates(backend):
    scipy_special = pytest.importorskip("scipy.special")
    x = _dominated_rows()
    want = scipy_special.logsumexp(x, axis=-1)
    # SciPy (gh-18295) is accurate to an ulp or two here: within 4 of it
    assert relative_error(fastxent.logsumexp(x), want).max() <= 4 * F64_EPS
    # float32: against the float64 result of the same float32 inputs, rounded
    # to float32 (logsumexp([0, -700]) is then 0)
    x32 = x.astype(np.float32)
    want32 = scipy_special.logsumexp(x32.astype(np.float64), axis=-1).astype(np.float32)
    assert relative_error(fastxent.logsumexp(x32), want32).max() <= F32_EPS


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 8), (np.float32, 8)])
def test_logsumexp_elsewhere_as_scipy(backend, dtype, ulps):
    scipy_special = pytest.importorskip("scipy.special")
    x = _general_rows(dtype)
    x[3, :] = 0.0  # ties at the maximum
    x[4, 5] = -np.inf
    want = scipy_special.logsumexp(x.astype(np.float64), axis=-1)
    eps = np.finfo(dtype).eps
    assert relative_error(fastxent.logsumexp(x), want).max() <= ulps * eps


def _log_softmax_truth(x):
    """log_softmax in float64 with its largest term as -log1p of the sum of
    the others, by math.fsum: an independent reference."""
    out = np.empty_like(x, dtype=np.float64)
    for i, row in enumerate(np.asarray(x, dtype=np.float64)):
        k = int(np.argmax(row))
        m = row[k]
        rest = math.fsum(math.exp(v - m) for j, v in enumerate(row) if j != k)
        out[i] = (row - m) - math.log1p(rest)
    return out


# float32 rounds each exponent x - m to float32 (as SciPy and PyTorch do in
# float32): a term e^(x - m) of a gap |x - m| of 50 is then off by up to 50
# ulps, and so is a result made of such terms alone.
@pytest.mark.parametrize("dtype, ulps", [(np.float64, 4), (np.float32, 64)])
def test_log_softmax_relative_accuracy_at_a_dominant_maximum(backend, dtype, ulps):
    scipy_special = pytest.importorskip("scipy.special")
    x = _dominated_rows().astype(dtype)
    got = fastxent.log_softmax(x)
    truth = _log_softmax_truth(x).astype(dtype)  # rounded: -1e-304 is -0.0 in float32
    top = np.argmax(x, axis=-1)
    rows = np.arange(len(x))
    # at the maximum: -log1p(rest), tiny, to a few ulps (log(1 + rest) gives 0)
    assert relative_error(got[rows, top], truth[rows, top]).max() <= ulps * np.finfo(dtype).eps
    # elsewhere: as SciPy's log_softmax
    others = np.ones(x.shape, bool)
    others[rows, top] = False
    finite = others & np.isfinite(x)
    want = scipy_special.log_softmax(x.astype(np.float64), axis=-1)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(got[others & ~finite], -np.inf)


def test_log_softmax_elsewhere_as_scipy(backend):
    scipy_special = pytest.importorskip("scipy.special")
    for dtype in (np.float64, np.float32):
        x = _general_rows(dtype)
        want = scipy_special.log_softmax(x.astype(np.float64), axis=-1)
        np.testing.assert_allclose(fastxent.log_softmax(x), want,
                                   rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)


# ------------------------------------------------------------------ item 10: fastxent.keras

def test_keras_binary_crossentropy_takes_y_true_outside_0_1():
    y_true = np.array([[1.5, -0.3, 0.2], [2.0, 0.0, -1.0]])
    y_pred = np.array([[0.6, 0.2, 0.9], [0.0, 1.0, 0.5]])
    snapshot = Snapshot(y_true, y_pred)
    got = fk.binary_crossentropy(y_true, y_pred)
    snapshot.assert_unchanged()
    # Keras's formula, written out: clip to [1e-7, 1 - 1e-7], no check of y_true
    p = np.clip(y_pred, 1e-7, 1 - 1e-7)
    want = np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # the same value as from_logits=True at the logits of the same probabilities
    logits = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(got, fk.binary_crossentropy(y_true, logits, from_logits=True),
                               rtol=1e-6)


def test_keras_binary_crossentropy_as_keras_numpy_backend():
    pytest.importorskip("keras", minversion="3")
    keras_numpy_nn = pytest.importorskip("keras.src.backend.numpy.nn")
    rng = np.random.default_rng(10)
    y_true = rng.uniform(-1.0, 2.0, size=(6, 5))
    y_pred = rng.random((6, 5))
    want = keras_numpy_nn.binary_crossentropy(y_true, y_pred, from_logits=False).mean(axis=-1)
    np.testing.assert_allclose(fk.binary_crossentropy(y_true, y_pred), want, rtol=1e-6)


CORE_NAMES = ("target", "probs", "logits", "log_probs", "x:", "p:")
KERAS_BAD_CALLS = [
    (fk.binary_crossentropy, ([[0.0, 1.0]], [[0.5, 0.5, 0.5]]), {}),
    (fk.binary_crossentropy, ([["a", "b"]], [[0.5, 0.5]]), {}),
    (fk.binary_crossentropy, ([[0.0, 1.0]], [["a", "b"]]), {}),
    (fk.binary_crossentropy, ([[0.0, 1.0]], [[0.5, 0.5]]), {"from_logits": True, "axis": 2}),
    (fk.categorical_crossentropy, ([[0.0, 1.0]], [[0.5, 0.5, 0.0]]), {}),
    (fk.categorical_crossentropy, ([[0.0, 1.0]], [[0.5, 0.5]]), {"from_logits": True,
                                                                 "label_smoothing": 2.0}),
    (fk.categorical_crossentropy, ([[0j, 1.0]], [[0.5, 0.5]]), {}),
    (fk.sparse_categorical_crossentropy, ([3], [[0.5, 0.5]]), {}),
    (fk.sparse_categorical_crossentropy, ([0.5], [[0.5, 0.5]]), {"from_logits": True}),
    (fk.sparse_categorical_crossentropy, ([0, 1], [[0.5, 0.5]]), {}),
    (fk.sparse_categorical_crossentropy, ([0], np.float64(0.5)), {}),
]


@pytest.mark.parametrize("fn, args, kwargs", KERAS_BAD_CALLS)
def test_keras_errors_name_keras_arguments(backend, fn, args, kwargs):
    with pytest.raises((ValueError, TypeError, IndexError)) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert any(name in message for name in ("y_true", "y_pred", "axis", "label_smoothing")), \
        message
    assert not any(message.startswith(name) for name in CORE_NAMES), message


# ------------------------------------------------------------------ item 11: no classes

@pytest.mark.parametrize("shape", [(3, 0), (0,), (2, 0, 4)])
@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_an_empty_class_axis_is_empty(backend, shape, log_space, dtype, torch):
    fn = fastxent.log_softmax if log_space else fastxent.softmax
    torch_fn = torch.log_softmax if log_space else torch.softmax
    x = np.zeros(shape, dtype)
    axis = 1 if len(shape) == 3 else -1
    got = fn(x, axis=axis)
    want = torch_fn(torch.from_numpy(x), dim=axis).numpy()
    assert type(got) is np.ndarray and got.shape == want.shape == shape
    assert got.dtype == dtype
    out = np.empty(shape, dtype)
    assert fn(x, axis=axis, out=out) is out


def _torch_loss_and_grad(torch, fn_name, x, target, reduction, **kwargs):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target)
    loss = getattr(torch.nn.functional, fn_name)(xt, tt, reduction=reduction, **kwargs)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_without_classes_as_pytorch(backend, torch, reduction):
    x = np.zeros((5, 0))
    for target, kwargs in [(np.zeros((5, 0)), {}),
                           (np.zeros((5, 0)), {"weight": np.zeros(0)}),
                           (np.full(5, -100), {}),
                           (np.full(5, 7), {"ignore_index": 7})]:
        want_loss, want_grad = _torch_loss_and_grad(
            torch, "cross_entropy", x, target, reduction,
            **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()})
        loss = fastxent.cross_entropy(x, target, reduction=reduction, **kwargs)
        loss2, grad = fastxent.cross_entropy_with_grad(x, target, reduction=reduction, **kwargs)
        np.testing.assert_array_equal(loss, want_loss)  # NaN for the mean, as PyTorch
        np.testing.assert_array_equal(loss2, want_loss)
        assert grad.shape == want_grad.shape == (5, 0)
        if target.dtype.kind == "i":
            nll = fastxent.nll_loss(x, target, reduction=reduction, **kwargs)
            want_nll, _ = _torch_loss_and_grad(torch, "nll_loss", x, target, reduction,
                                               **kwargs)
            np.testing.assert_array_equal(nll, want_nll)


def test_cross_entropy_without_classes_label_refused(backend, torch):
    x = np.zeros((5, 0))
    labels = np.array([-100, -100, 0, -100, -100])
    with pytest.raises(IndexError):
        torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(labels))
    for fn in (fastxent.cross_entropy, fastxent.cross_entropy_with_grad, fastxent.nll_loss,
               fastxent.nll_loss_with_grad):
        with pytest.raises(IndexError, match=r"label 0 at position \(2,\) is outside \[0, 0\)"):
            fn(x, labels)


def test_no_classes_same_on_both_backends():
    x = np.zeros((4, 0), np.float32)
    for fn in ("softmax", "log_softmax", "logsumexp"):
        a, b = getattr(fastxent, fn)(x), getattr(reference, fn)(x)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(fastxent.logsumexp(x), np.full(4, -np.inf, np.float32))


# ------------------------------------------------------------------ item 12: BCE clamp

def test_bce_gradient_clamps_where_pytorch_does(backend, torch):
    # p (1 - p) below, at and above PyTorch's clamp (1e-12 as a float32)
    p = np.array([0.0, 1e-300, 1e-13, 5e-13, 9.9999999e-13, 1e-12, 1.0000001e-12, 2e-12,
                  1 - 1e-12, 1 - 5e-13, 1 - 1e-13, 1.0, 0.5])
    t = np.array([1.0, 1.0, 0.3, 0.0, 1.0, 1.0, 0.0, 0.7, 0.0, 1.0, 0.2, 0.0, 1.0])
    for reduction in ("none", "sum", "mean"):
        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy(pt, torch.tensor(t),
                                                        reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
        _, grad = fastxent.binary_cross_entropy_with_grad(p, t, reduction=reduction)
        # the same formula, the same constant: equal to the last bit or nearly
        assert relative_error(grad, pt.grad.numpy()).max() <= 2 * F64_EPS


def test_bce_gradient_clamp_constant():
    # PyTorch's EPSILON is `constexpr float 1e-12`: the gradient at p = 0 is
    # -t / float32(1e-12), on both backends
    clamp = float(np.float32(1e-12))
    for fn in (fastxent.binary_cross_entropy_with_grad, reference.binary_cross_entropy_with_grad):
        _, grad = fn(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="sum")
        np.testing.assert_array_equal(grad, [-1 / clamp, 1 / clamp])


# ---------------------------------------------------- items 14, 15: np.matrix, MaskedArray

@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_matrix_weights_broadcast_as_pytorch(backend, torch):
    rng = np.random.default_rng(14)
    logits = rng.standard_normal((4, 3))
    target = rng.random((4, 3))
    weight, pos_weight = np.array([[0.5, 2.0, 1.0]]), np.array([[3.0, 1.0, 0.25]])
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits), torch.tensor(target), weight=torch.tensor(weight),
        pos_weight=torch.tensor(pos_weight), reduction="none").numpy()
    got = fastxent.binary_cross_entropy_with_logits(
        np.matrix(logits), np.matrix(target), weight=np.matrix(weight),
        pos_weight=np.matrix(pos_weight), reduction="none")
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, want, rtol=1e-12)
    probs = 1 / (1 + np.exp(-logits))
    want = torch.nn.functional.binary_cross_entropy(
        torch.tensor(probs), torch.tensor(target), weight=torch.tensor(weight)).numpy()
    got, grad = fastxent.binary_cross_entropy_with_grad(np.matrix(probs), np.matrix(target),
                                                        weight=np.matrix(weight))
    assert type(grad) is np.ndarray
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_matrix_class_problems(backend, torch):
    rng = np.random.default_rng(15)
    logits = rng.standard_normal((4, 3))
    probs = rng.dirichlet(np.ones(3), size=4)
    want_loss, want_grad = torch_xent(torch, logits, probs)
    loss, grad = fastxent.cross_entropy_with_grad(np.matrix(logits), np.matrix(probs))
    assert type(grad) is np.ndarray
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-15)
    # a (1, C) weight is not one weight per class for PyTorch's cross_entropy either
    with pytest.raises(ValueError, match=r"weight: .*\(3,\).*\(1, 3\)"):
        fastxent.cross_entropy(logits, np.array([0, 1, 2, 1]), weight=np.matrix([[1.0, 2, 3]]))
    # labels as a (1, N) matrix: the shape is named, with the argument
    with pytest.raises(ValueError, match=r"target: .*\(4,\).*\(1, 4\)"):
        fastxent.cross_entropy(logits, np.matrix([[0, 1, 2, 1]]))
    for fn in (fastxent.softmax, fastxent.log_softmax, fastxent.logsumexp):
        got = fn(np.matrix(logits))
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got, fn(logits))


MASKED_CALLS = {
    "cross_entropy_with_grad": lambda a, b, c: fastxent.cross_entropy_with_grad(a, c),
    "nll_loss": lambda a, b, c: fastxent.nll_loss(a, c, reduction="none"),
    "bce_logits": lambda a, b, c: fastxent.binary_cross_entropy_with_logits_with_grad(
        a, b, reduction="none"),
    "bce": lambda a, b, c: fastxent.binary_cross_entropy_with_grad(b, b, reduction="none"),
    "softmax": lambda a, b, c: fastxent.softmax(a),
    "log_softmax": lambda a, b, c: fastxent.log_softmax(a, axis=0),
    "logsumexp": lambda a, b, c: fastxent.logsumexp(a),
    "entropy": lambda a, b, c: fastxent.entropy(b),
    "kl_divergence": lambda a, b, c: fastxent.kl_divergence(b, b[::-1]),
    "keras": lambda a, b, c: fk.categorical_crossentropy(b, b),
}


@pytest.mark.parametrize("name", sorted(MASKED_CALLS))
def test_masked_arrays_give_plain_arrays(backend, name):
    rng = np.random.default_rng(16)
    logits = rng.standard_normal((4, 3))
    probs = rng.dirichlet(np.ones(3), size=4)
    labels = np.array([0, 2, 1, 1])
    mask = np.zeros((4, 3), bool)
    mask[1, 2] = True
    masked = (np.ma.MaskedArray(logits, mask), np.ma.MaskedArray(probs, mask),
              np.ma.MaskedArray(labels, mask[:, 0] | True))
    got = MASKED_CALLS[name](*masked)
    want = MASKED_CALLS[name](logits, probs, labels)  # the data, the mask not honoured
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        assert not isinstance(g, np.ma.MaskedArray), type(g)
        np.testing.assert_array_equal(g, w)
    # and the masked inputs themselves are unchanged, mask included
    np.testing.assert_array_equal(masked[0].mask, mask)
    np.testing.assert_array_equal(masked[0].data, logits)


# ------------------------------------------------------------------ item 16: bools and strings

LOGITS = np.random.default_rng(17).standard_normal((4, 3))
PROBS = np.random.default_rng(18).dirichlet(np.ones(3), size=4)
LABELS = np.array([0, 2, 1, 1])

OPTION_CALLS = {
    "cross_entropy": lambda **kw: fastxent.cross_entropy(LOGITS, LABELS, **kw),
    "cross_entropy_with_grad": lambda **kw: fastxent.cross_entropy_with_grad(LOGITS, LABELS,
                                                                             **kw),
    "nll_loss": lambda **kw: fastxent.nll_loss(LOGITS, LABELS, **kw),
    "nll_loss_with_grad": lambda **kw: fastxent.nll_loss_with_grad(LOGITS, LABELS, **kw),
    "softmax": lambda **kw: fastxent.softmax(LOGITS, **kw),
    "log_softmax": lambda **kw: fastxent.log_softmax(LOGITS, **kw),
    "logsumexp": lambda **kw: fastxent.logsumexp(LOGITS, **kw),
    "entropy": lambda **kw: fastxent.entropy(PROBS, **kw),
    "kl_divergence": lambda **kw: fastxent.kl_divergence(PROBS, PROBS[::-1], **kw),
    "keras.binary": lambda **kw: fk.binary_crossentropy(PROBS, PROBS, **kw),
    "keras.categorical": lambda **kw: fk.categorical_crossentropy(PROBS, PROBS, **kw),
    "keras.sparse": lambda **kw: fk.sparse_categorical_crossentropy(LABELS, PROBS, **kw),
}
OPTIONS = {  # function -> its numeric options
    "cross_entropy": ("axis", "ignore_index", "label_smoothing"),
    "cross_entropy_with_grad": ("axis", "ignore_index", "label_smoothing"),
    "nll_loss": ("axis", "ignore_index"),
    "nll_loss_with_grad": ("axis", "ignore_index"),
    "softmax": ("axis",),
    "log_softmax": ("axis",),
    "logsumexp": ("axis",),
    "entropy": ("axis", "base"),
    "kl_divergence": ("axis", "base"),
    "keras.binary": ("axis", "label_smoothing"),
    "keras.categorical": ("axis", "label_smoothing"),
    "keras.sparse": ("axis", "ignore_class"),
}
INTEGER_OPTIONS = ("axis", "ignore_index", "ignore_class")
BAD_VALUES = {
    "integer": [True, False, np.bool_(True), "1", 1.0],
    "real": ["0.1", "2", np.str_("0.5"), b"2"],
}


@pytest.mark.parametrize("fn, option", [(fn, option) for fn, options in OPTIONS.items()
                                        for option in options])
def test_numeric_options_refuse_bools_and_strings(backend, fn, option):
    kind = "integer" if option in INTEGER_OPTIONS else "real"
    for value in BAD_VALUES[kind]:
        with pytest.raises(TypeError, match=option):
            OPTION_CALLS[fn](**{option: value})


def test_bool_options_refused_as_pytorch_numpy_scipy(torch):
    scipy_special = pytest.importorskip("scipy.special")
    x = torch.tensor(LOGITS)
    with pytest.raises(TypeError):
        torch.nn.functional.log_softmax(x, dim=True)
    with pytest.raises(TypeError):
        torch.nn.functional.cross_entropy(x, torch.tensor(LABELS), ignore_index=True)
    with pytest.raises(TypeError):
        torch.nn.functional.cross_entropy(x, torch.tensor(LABELS), label_smoothing="0.1")
    with pytest.raises(TypeError):
        scipy_special.logsumexp(LOGITS, axis=True)
    with pytest.raises(TypeError):
        np.sum(LOGITS, axis=True)


def test_numeric_options_still_take_numbers(backend):
    # NumPy integers and floats, and a bool-free int subclass, are numbers
    for axis in (np.int32(1), np.int64(-1), 1):
        np.testing.assert_array_equal(fastxent.softmax(LOGITS, axis=axis),
                                      fastxent.softmax(LOGITS))
    a = fastxent.cross_entropy(LOGITS, LABELS, label_smoothing=np.float32(0.25))
    b = fastxent.cross_entropy(LOGITS, LABELS, label_smoothing=0.25)
    assert a == b
    assert fastxent.entropy(PROBS, base=np.int64(2))[0] == pytest.approx(
        fastxent.entropy(PROBS)[0] / math.log(2), rel=1e-14)
