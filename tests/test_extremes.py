"""Extreme values: -inf logits on the classes a sample does not use (masked
vocabularies), -inf on the target class, rows of nothing but -inf, logits
near the ends of the float32 (+-3.4e38) and float64 (+-1.8e308) ranges, and
NaN and infinity wherever API.md says how they propagate.

"Correct" is the mathematics: each reference is computed in a wider type
(float64 for float32 inputs, long double for float64 inputs) with SciPy or
the defining formula, then rounded to the input's dtype, where an overflow
rightly becomes inf. Where PyTorch is the stated semantics it is the
reference (those tests skip without it).
"""

import numpy as np
import pytest
from scipy import special

import fastxent
from fastxent import keras as fk

from conftest import RTOL, random_labels, random_logits, torch_xent

# The values are what these tests check. (The NumPy backend lets NumPy's
# floating-point RuntimeWarnings through at these extremes; the compiled one
# is silent.)
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "sum", "mean"]
F32_MAX = float(np.finfo(np.float32).max)  # 3.4028235e38
F64_MAX = float(np.finfo(np.float64).max)  # 1.7976931348623157e308
BIG = {np.float32: 3e38, np.float64: 1e308}
FMAX = {np.float32: F32_MAX, np.float64: F64_MAX}
TINY = {np.float32: float(np.finfo(np.float32).smallest_subnormal),
        np.float64: float(np.finfo(np.float64).smallest_subnormal)}
# an absolute tolerance that only forgives what underflows
ATOL = {np.float32: 1e-37, np.float64: 1e-300}

LONG_DOUBLE_IS_WIDER = np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp


def wide(dtype):
    """The type the references compute in for inputs of `dtype`."""
    if np.dtype(dtype) == np.float32:
        return np.float64
    if not LONG_DOUBLE_IS_WIDER:
        pytest.skip("long double has the range of float64 here: no wider reference for "
                    "float64 extremes")
    return np.longdouble


def rounded(value, dtype):
    """A wide reference rounded to dtype (an overflow rightly gives inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(value).astype(dtype)


def check(got, want, dtype, *, scale=None, err_msg=""):
    """got equals the rounded reference: the same infinities and NaNs, each
    finite element to the dtype's relative precision, and exact zeros where
    the reference is exactly 0. With `scale` (the natural size of the
    quantity, for gradients whose elements are differences of terms that
    large) an absolute error of the relative precision times `scale` is
    allowed instead of exact zeros; without it, no absolute slack beyond what
    underflows."""
    got = np.asarray(got)
    zero = np.asarray(want) == 0
    want = rounded(want, dtype)
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NaN where? {err_msg}")
    infinite = np.isinf(want)
    np.testing.assert_array_equal(got[infinite], want[infinite], err_msg=f"inf: {err_msg}")
    finite = np.isfinite(want)
    assert np.all(np.isfinite(got[finite])), f"not finite where the math is: {err_msg}\n{got}"
    rtol = 4 * RTOL[np.dtype(dtype)]
    atol = ATOL[dtype] if scale is None else max(ATOL[dtype], rtol * scale)
    np.testing.assert_allclose(got[finite].astype(np.float64), want[finite].astype(np.float64),
                               rtol=rtol, atol=atol, err_msg=err_msg)
    if scale is None:
        assert np.all(got[zero] == 0), f"not exactly 0 where the math is: {err_msg}\n{got}"


def grad_scale(want):
    """The natural size of a gradient: its largest finite magnitude."""
    want = np.abs(np.asarray(want, dtype=np.float64))
    want = want[np.isfinite(want)]
    return float(want.max()) if want.size else 1.0


# --------------------------------------------------------------------------- references


def ref_cross_entropy(x, target, wt, *, label_smoothing=0.0, axis=-1):
    """(per-row loss, gradient of the summed loss) in the wide type `wt`, with
    the mathematician's 0 * log 0 = 0: a class whose target mass is 0 adds
    nothing, even where its log-probability is -inf."""
    x = np.moveaxis(np.asarray(x).astype(wt), axis, -1)
    n_classes = x.shape[-1]
    with np.errstate(all="ignore"):
        logp = special.log_softmax(x, axis=-1)
        p = special.softmax(x, axis=-1)
        target = np.asarray(target)
        if target.dtype.kind in "iu":
            t = np.eye(n_classes, dtype=wt)[target]
        else:
            t = np.moveaxis(target.astype(wt), axis, -1)
        eps = wt(label_smoothing)
        t = (1 - eps) * t + eps / n_classes
        loss = -np.sum(np.where(t > 0, t * logp, 0), axis=-1)
        grad = t.sum(axis=-1, keepdims=True) * p - t
    return loss, np.moveaxis(grad, -1, axis)


def ref_weighted_index(x, target, weight, wt, reduction, axis=-1, ignore_index=-100):
    """cross_entropy against class indices with class weights and ignored
    samples, torch's semantics, in `wt`: (loss, gradient)."""
    x = np.moveaxis(np.asarray(x).astype(wt), axis, -1)
    w = np.asarray(weight).astype(wt)
    counted = target != ignore_index
    labels = np.where(counted, target, 0)
    rows = np.arange(len(target))
    w_y = np.where(counted, w[labels], 0)
    with np.errstate(all="ignore"):
        logp = special.log_softmax(x, axis=-1)
        p = special.softmax(x, axis=-1)
    with np.errstate(invalid="ignore"):  # 0 * -inf on ignored rows, dropped by where
        row_loss = np.where(counted, -w_y * logp[rows, labels], 0)
    onehot = np.eye(x.shape[-1], dtype=wt)[labels]
    grad = w_y[:, None] * (p - onehot)
    if reduction == "mean":
        loss, grad = row_loss.sum() / w_y.sum(), grad / w_y.sum()
    else:
        loss = row_loss.sum() if reduction == "sum" else row_loss
    return loss, np.moveaxis(grad, -1, axis)


def entr(p):
    """scipy.special.entr, written out (SciPy's ufunc has no long double loop)."""
    with np.errstate(all="ignore"):
        return np.where(p > 0, -p * np.log(np.where(p > 0, p, 1)), np.where(p == 0, 0, -np.inf))


def rel_entr(p, q):
    """scipy.special.rel_entr, written out: p log(p / q); 0 where p = 0 <= q."""
    with np.errstate(all="ignore"):
        both = (p > 0) & (q > 0)
        terms = p * np.log(np.where(both, p, 1) / np.where(both, q, 1))
        return np.where(both, terms, np.where((p == 0) & (q >= 0), 0, np.inf))


def ref_bce_logits(x, t, wt, weight=1.0, pos_weight=1.0):
    """PyTorch's formula w ((1 - t) x + l (log1p(exp(-|x|)) + max(-x, 0))),
    l = 1 + (pw - 1) t, and its gradient w (l sigmoid(x) - pw t), in `wt`."""
    x, t = np.asarray(x).astype(wt), np.asarray(t).astype(wt)
    w, pw = wt(weight), wt(pos_weight)
    with np.errstate(all="ignore"):
        log_weight = 1 + (pw - 1) * t
        loss = w * ((1 - t) * x + log_weight * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)))
        grad = w * (log_weight * special.expit(x) - pw * t)
    return loss, grad


def ref_bce(p, t, wt):
    """PyTorch's binary cross-entropy of probabilities, log terms clamped at
    -100, and its gradient (p - t) / max(p (1 - p), 1e-12), in `wt`; PyTorch's
    1e-12 is a C++ float: 1e-12 rounded to float32."""
    p, t = np.asarray(p).astype(wt), np.asarray(t).astype(wt)
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))
    grad = (p - t) / np.maximum(p * (1 - p), wt(np.float32(1e-12)))
    return loss, grad


def reduce(row_loss, reduction, wt):
    row_loss = np.asarray(row_loss, dtype=wt)
    if reduction == "none":
        return row_loss
    total = row_loss.sum()
    return total if reduction == "sum" else total / row_loss.size


# --------------------------------------------------------------------------- masked vocabularies


def masked_problem(dtype, n_rows=40, n_classes=257, seed=0):
    """Logits with about 60% of each row at -inf, never the target class; a
    few rows keep their target only."""
    rng = np.random.default_rng(seed)
    x = random_logits(rng, (n_rows, n_classes), dtype)
    target = rng.integers(0, n_classes, n_rows)
    mask = rng.random((n_rows, n_classes)) < 0.6
    mask[:3] = True
    mask[np.arange(n_rows), target] = False
    x[mask] = -np.inf
    return x, target, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_masked_classes_give_a_finite_loss_and_zero_gradient(backend, dtype, reduction, axis):
    x, target, mask = masked_problem(dtype)
    weight = np.linspace(0.5, 2.0, x.shape[1]).astype(dtype)
    target = target.copy()
    target[5] = -100  # an ignored row among them
    if axis == 0:
        x, mask = x.T.copy(), mask.T
    want_loss, want_grad = ref_weighted_index(x, target, weight, wide(dtype), reduction, axis)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, weight=weight, reduction=reduction,
                                                  axis=axis)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(grad[mask] == 0), "a masked class got a gradient"
    check(loss, want_loss, dtype, err_msg="loss")
    check(grad, want_grad, dtype, scale=grad_scale(want_grad), err_msg="grad")
    # the same in place: the gradient overwrites the logits
    buf = x.copy()
    loss2, grad2 = fastxent.cross_entropy_with_grad(buf, target, weight=weight,
                                                    reduction=reduction, axis=axis, out=buf)
    assert grad2 is buf
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(buf, grad)
    # forward only gives the very same loss
    np.testing.assert_array_equal(
        fastxent.cross_entropy(x, target, weight=weight, reduction=reduction, axis=axis), loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_classes_in_nll_loss_and_keras(backend, dtype):
    x, target, mask = masked_problem(dtype, n_rows=12, n_classes=33, seed=1)
    want, _ = ref_cross_entropy(x, target, wide(dtype))
    # nll_loss of the log-probabilities, -inf on the masked classes
    with np.errstate(all="ignore"):
        log_probs = special.log_softmax(x.astype(np.float64), axis=-1).astype(dtype)
    assert np.isneginf(log_probs[mask]).all()
    loss, grad = fastxent.nll_loss_with_grad(log_probs, target, reduction="none")
    check(loss, -log_probs.astype(wide(dtype))[np.arange(12), target], dtype)
    assert np.all(grad[mask] == 0) and np.all(grad[np.arange(12), target] == -1)
    # Keras's sparse loss from logits: per-sample losses, all finite
    check(fk.sparse_categorical_crossentropy(target, x, from_logits=True), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_masked_classes_with_probability_targets(backend, dtype, reduction):
    # Soft targets that put no mass on the masked classes: the loss is
    # -sum_{t > 0} t log p, finite; 0 * log 0 counts 0 (not NaN) as in
    # scipy.special.xlogy and entropy. (PyTorch's -sum(t * log_softmax) gives
    # NaN here; the issue asks for a finite loss on masked vocabularies.)
    x, target, mask = masked_problem(dtype, n_rows=10, n_classes=19, seed=2)
    rng = np.random.default_rng(3)
    t = np.where(mask, 0.0, rng.random(x.shape) + 0.1)
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    wt = wide(dtype)
    row_loss, row_grad = ref_cross_entropy(x, t, wt)
    loss, grad = fastxent.cross_entropy_with_grad(x, t, reduction=reduction)
    check(loss, reduce(row_loss, reduction, wt), dtype, err_msg="loss")
    assert np.all(grad[mask] == 0), "a masked class got a gradient"
    want_grad = row_grad / (x.shape[0] if reduction == "mean" else 1)
    check(grad, want_grad, dtype, scale=grad_scale(want_grad), err_msg="grad")
    # Keras's categorical loss from logits, one-hot targets
    onehot = np.eye(x.shape[1], dtype=dtype)[target]
    want, _ = ref_cross_entropy(x, target, wt)
    check(fk.categorical_crossentropy(onehot, x, from_logits=True), want, dtype, err_msg="keras")


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_rows_in_the_softmax_family(backend, dtype):
    x, _, mask = masked_problem(dtype, n_rows=16, n_classes=257, seed=4)
    wt = wide(dtype)
    for axis, data in ((-1, x), (0, x.T.copy())):
        m = mask if axis == -1 else mask.T
        sm = fastxent.softmax(data, axis=axis)
        assert np.all(sm[m] == 0)
        check(sm, special.softmax(data.astype(wt), axis=axis), dtype)
        lsm = fastxent.log_softmax(data, axis=axis)
        assert np.all(np.isneginf(lsm[m]))
        check(lsm, special.log_softmax(data.astype(wt), axis=axis), dtype)
        check(fastxent.logsumexp(data, axis=axis), special.logsumexp(data.astype(wt), axis=axis),
              dtype)


# --------------------------------------------------------------------------- -inf on the target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_target_class_at_minus_inf_gives_plus_inf(torch, backend, dtype, reduction):
    x = np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, -np.inf], [1.0, 2.0, 3.0]], dtype)
    target = np.array([0, 1, 2])
    want_loss, want_grad = torch_xent(torch, x, target, reduction=reduction)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, reduction=reduction)
    if reduction == "none":
        assert np.isposinf(loss[:2]).all() and np.isfinite(loss[2])
    else:
        assert np.isposinf(loss)
    # the gradient stays finite: p - onehot, -1 on the impossible target
    assert np.all(np.isfinite(grad))
    check(grad, want_grad, dtype, scale=grad_scale(want_grad))
    check(loss, want_loss, dtype)
    # nll_loss of a -inf log-probability on the target: +inf, a finite gradient
    log_probs = np.array([[-np.inf, -0.5, -1.0], [-1.0, -0.2, -np.inf]], dtype)
    loss, grad = fastxent.nll_loss_with_grad(log_probs, np.array([0, 2]), reduction=reduction)
    tl = torch.tensor(log_probs.astype(np.float64), requires_grad=True)
    t_loss = torch.nn.functional.nll_loss(tl, torch.tensor([0, 2]), reduction=reduction)
    t_loss.sum().backward()
    check(loss, t_loss.detach().numpy(), dtype)
    check(grad, tl.grad.numpy(), dtype)
    # probability mass on a -inf class: +inf
    probs = np.array([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5], [0.2, 0.3, 0.5]], dtype)
    loss = fastxent.cross_entropy(x, probs, reduction="none")
    assert np.isposinf(loss).tolist() == [True, True, False]


@pytest.mark.parametrize("dtype", DTYPES)
def test_target_at_minus_inf_in_keras(backend, dtype):
    x = np.array([[-np.inf, 1.0, 2.0], [1.0, 2.0, 3.0]], dtype)
    loss = fk.sparse_categorical_crossentropy(np.array([0, 2]), x, from_logits=True)
    want, _ = ref_cross_entropy(x, np.array([0, 2]), wide(dtype))
    check(loss, want, dtype)
    assert np.isposinf(loss[0])


# --------------------------------------------------------------------------- rows of -inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_a_row_of_minus_inf_gives_nan(torch, backend, dtype, reduction):
    x = np.array([[1.0, 2.0, 3.0], [-np.inf] * 3, [0.0, -np.inf, 1.0], [-np.inf] * 3], dtype)
    target = np.array([2, 1, 0, -100])  # the last all--inf row is ignored
    want_loss, want_grad = torch_xent(torch, x, target, reduction=reduction)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, reduction=reduction)
    if reduction == "none":
        assert np.isnan(loss).tolist() == [False, True, False, False]
        assert loss[3] == 0  # ignored: counts for nothing
    else:
        assert np.isnan(loss)
    check(loss, want_loss, dtype)
    assert np.isnan(grad[1]).all(), "the gradient of a NaN loss row is NaN"
    assert np.isfinite(grad[[0, 2]]).all(), "NaN leaked into other rows' gradients"
    check(grad[[0, 2]], want_grad[[0, 2]], dtype, scale=grad_scale(want_grad[[0, 2]]))
    assert np.all(grad[3] == 0)  # ignored row
    # probability targets: NaN on that row only
    probs = np.full((4, 3), 1 / 3, dtype)
    loss, grad = fastxent.cross_entropy_with_grad(x, probs, reduction="none")
    want_loss, want_grad = torch_xent(torch, x, probs, reduction="none")
    check(loss, want_loss, dtype)
    assert np.isnan(loss).tolist() == [False, True, False, True]
    assert np.isnan(grad[[1, 3]]).all() and np.isfinite(grad[[0, 2]]).all()
    # nll_loss of all -inf log-probabilities is +inf (-log 0), as torch
    lp = np.array([[-np.inf] * 3, [-1.0, -0.5, -2.0]], dtype)
    assert np.isposinf(fastxent.nll_loss(lp, np.array([1, 0]), reduction="none")[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_a_row_of_minus_inf_in_the_softmax_family(backend, dtype, axis):
    x = np.array([[-np.inf] * 5, [1.0, -np.inf, 2.0, -np.inf, 0.0], [-np.inf] * 4 + [0.0]], dtype)
    if axis == 0:
        x = x.T.copy()
    wt = wide(dtype)
    with np.errstate(all="ignore"):
        for name in ("softmax", "log_softmax", "logsumexp"):
            got = getattr(fastxent, name)(x, axis=axis)
            want = getattr(special, name)(x.astype(wt), axis=axis)
            check(got, want, dtype, err_msg=name)
    assert np.isneginf(fastxent.logsumexp(x, axis=axis)[0])  # log of an empty sum


# --------------------------------------------------------------------------- the ends of the range


def extreme_rows(dtype):
    """Rows of three logits at the ends of dtype's range (and -inf, 0)."""
    m, f = BIG[dtype], FMAX[dtype]
    return np.array([
        [m, -m, 0.0], [m, m, 0.0], [-m, -m, -m], [f, -f, 0.0], [f, f, f], [-f, 0.0, -f],
        [-f, -f, -f], [m, -np.inf, 0.0], [f, -np.inf, -f], [0.0, -m, m], [m / 2, -m / 2, 1.0],
    ], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_near_the_largest_floats(backend, dtype, reduction):
    # e.g. float32 [3e38, -3e38, 0]: target 0 -> 0, target 2 -> 3e38 (finite),
    # target 1 -> 6e38, which overflows float32: inf is right there.
    rows = extreme_rows(dtype)
    n_classes = rows.shape[1]
    x = np.repeat(rows, n_classes, axis=0)  # each row with each class as the target
    target = np.tile(np.arange(n_classes), len(rows))
    wt = wide(dtype)
    row_loss, row_grad = ref_cross_entropy(x, target, wt)
    with np.errstate(over="ignore"):
        loss, grad = fastxent.cross_entropy_with_grad(x, target, reduction=reduction)
    check(loss, reduce(row_loss, reduction, wt), dtype, err_msg="loss")
    want_grad = row_grad / (x.shape[0] if reduction == "mean" else 1)
    check(grad, want_grad, dtype, scale=grad_scale(want_grad), err_msg="grad")
    # a few exact values, spelled out
    m = BIG[dtype]
    by_row = loss.reshape(len(rows), n_classes) if reduction == "none" else None
    if by_row is not None:
        assert by_row[0].tolist() == [0.0, np.inf, np.asarray(m, dtype)]
        assert by_row[1, 0] == np.asarray(np.log(2), dtype)  # not 0: two equal maxima
        assert by_row[5, 1] == 0 and by_row[5, 0] == np.asarray(FMAX[dtype], dtype)


@pytest.mark.xfail(strict=False, reason="known limitation: the smoothing term sums gaps of up to 2x the largest float, which overflow in the working precision; PyTorch's log_softmax overflows there too")
@pytest.mark.parametrize("dtype", DTYPES)
def test_label_smoothing_and_soft_targets_near_the_largest_floats(backend, dtype):
    # finite mathematics with infinite-looking intermediates: with
    # x = [m, -m, 0], -log p = [0, 2m, m]; smoothing 0.1 weighs them 0.1/3 each
    m = BIG[dtype]
    x = np.array([[m, -m, 0.0], [0.0, m, -m]], dtype)
    wt = wide(dtype)
    want, want_grad = ref_cross_entropy(x, np.array([0, 1]), wt, label_smoothing=0.1)
    loss, grad = fastxent.cross_entropy_with_grad(x, np.array([0, 1]), label_smoothing=0.1,
                                                  reduction="none")
    check(loss, want, dtype, err_msg="label smoothing")  # 0.1 / 3 * 3m = 0.1 m
    check(grad, want_grad, dtype, scale=1.0, err_msg="label smoothing grad")
    probs = np.array([[0.5, 0.0, 0.5], [0.25, 0.75, 0.0]], dtype)
    want, want_grad = ref_cross_entropy(x, probs, wt)
    loss, grad = fastxent.cross_entropy_with_grad(x, probs, reduction="none")
    check(loss, want, dtype, err_msg="soft targets")  # [m / 2, m / 4]
    check(grad, want_grad, dtype, scale=1.0, err_msg="soft targets grad")


def test_float32_mean_of_huge_losses_accumulates_in_float64(backend):
    # every loss is 3e38; their sum overflows float32 (inf is right for "sum")
    # but the mean is 3e38 (API.md: reductions accumulate in float64)
    x = np.tile(np.array([[3e38, -3e38, 0.0]], np.float32), (5, 1))
    target = np.full(5, 2)
    assert fastxent.cross_entropy(x, target, reduction="mean") == np.float32(3e38)
    assert np.isposinf(fastxent.cross_entropy(x, target, reduction="sum"))
    loss = fastxent.binary_cross_entropy_with_logits(np.full(7, -3e38, np.float32),
                                                     np.ones(7, np.float32))
    assert loss == np.float32(3e38)


@pytest.mark.xfail(strict=False, reason="known limitation: the sum of the row losses overflows before the division by their count, as in PyTorch")
def test_float64_mean_of_huge_losses_is_finite(backend):
    # The mean of finite float64 losses is finite: [1e308, 1e308, 0] -> 6.7e307,
    # although their sum (2e308) overflows float64.
    x = np.array([[1e308, -1e308, 0.0]] * 3)
    loss = fastxent.cross_entropy(x, np.array([2, 2, 0]), reduction="mean")
    assert np.isfinite(loss), loss
    np.testing.assert_allclose(loss, 2 * (1e308 / 3), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_near_the_largest_floats_as_scipy(backend, dtype):
    m, f, tiny = BIG[dtype], FMAX[dtype], TINY[dtype]
    rows = [
        [m, -m, 0.0], [f, f], [-f, -f], [f, -f], [m, -np.inf], [tiny, -tiny, 0.0], [f] * 1000,
        [-f] * 1000, [f, f, -np.inf, f], [-m, 0.0, m, -f, f, 1.0, -1.0] * 5,
        [m / 2] * 3 + [m] + [-np.inf] * 29,  # the maximum in an odd lane
    ]
    wt = wide(dtype)
    for row in rows:
        x = np.array(row, dtype)
        for name in ("softmax", "log_softmax", "logsumexp"):
            want = getattr(special, name)(x.astype(wt))
            check(getattr(fastxent, name)(x), want, dtype, err_msg=f"{name} {row[:4]}")
        # and as a column (axis 0) next to an ordinary one
        cols = np.stack([x, np.linspace(-1, 1, len(row)).astype(dtype)], axis=1)
        for name in ("softmax", "log_softmax", "logsumexp"):
            want = getattr(special, name)(cols.astype(wt), axis=0)
            check(getattr(fastxent, name)(cols, axis=0), want, dtype, err_msg=f"{name} axis 0")


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_and_kl_near_the_ends_of_the_range(backend, dtype):
    m, f, tiny = BIG[dtype], FMAX[dtype], TINY[dtype]
    wt = wide(dtype)
    p = np.array([[m, 0.0, 1.0], [tiny, 0.5, 0.5], [f, tiny, 0.0], [1e-30, 1.0, 0.0]], dtype)
    q = np.array([[tiny, 1.0, 1.0], [m, 0.5, 0.5], [f, f, 1.0], [1.0, 1e-30, 0.0]], dtype)
    with np.errstate(all="ignore"):
        check(fastxent.entropy(p), entr(p.astype(wt)).sum(axis=-1), dtype, err_msg="entr")
        check(fastxent.kl_divergence(p, q), rel_entr(p.astype(wt), q.astype(wt)).sum(axis=-1),
              dtype, err_msg="rel_entr")
    # where float64 holds every term, the written-out references are SciPy's
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    if dtype == np.float32:
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(entr(p64), special.entr(p64))
            np.testing.assert_array_equal(rel_entr(p64, q64), special.rel_entr(p64, q64))


MAGNITUDES = {np.float32: [1e4, 1e30, 3e38, F32_MAX], np.float64: [1e4, 1e30, 1e300, 1e308,
                                                                     F64_MAX]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_weight", [None, 2.0, 0.5])
def test_bce_with_logits_near_the_largest_floats(backend, dtype, pos_weight):
    # Exact zeros where the sample is confidently right, |x| (times pos_weight
    # t) where confidently wrong, no NaN anywhere, inf only where the true
    # loss exceeds the largest float.
    mags = np.array(MAGNITUDES[dtype])
    x = np.concatenate([mags, -mags])
    targets = np.array([0.0, 0.25, 0.5, 1.0])
    xx, tt = np.meshgrid(x, targets)
    xx, tt = xx.astype(dtype), tt.astype(dtype)
    wt = wide(dtype)
    for weight in (None, 0.5):
        want_loss, want_grad = ref_bce_logits(xx, tt, wt, 1.0 if weight is None else weight,
                                              1.0 if pos_weight is None else pos_weight)
        kwargs = dict(reduction="none")
        if weight is not None:
            kwargs["weight"] = np.asarray(weight, dtype)
        if pos_weight is not None:
            kwargs["pos_weight"] = np.asarray(pos_weight, dtype)
        with np.errstate(over="ignore"):
            loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(xx, tt, **kwargs)
        assert not np.isnan(loss).any() and not np.isnan(grad).any()
        check(loss, want_loss, dtype, err_msg=f"loss w={weight}")
        check(grad, want_grad, dtype, err_msg=f"grad w={weight}")
        # the mean of float32 losses accumulates in float64: finite. (The NumPy
        # backend computes float32 losses in float32, so one beyond float32's
        # range is inf there before the mean: a known limitation of the fallback.)
        if dtype == np.float32 and fastxent.get_backend() == "compiled":
            with np.errstate(over="ignore"):
                mean = fastxent.binary_cross_entropy_with_logits(
                    xx, tt, **{**kwargs, "reduction": "mean"})
            check(mean, want_loss.mean(), dtype, err_msg="mean")


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_of_probabilities_at_the_ends_of_0_1(backend, dtype):
    tiny = TINY[dtype]
    one_minus = 1 - float(np.finfo(dtype).epsneg)
    p = np.array([0.0, tiny, 1e-30, 1e-5, 0.5, one_minus, 1.0], dtype)
    for t in (0.0, 0.5, 1.0):
        target = np.full_like(p, t)
        want_loss, want_grad = ref_bce(p, target, np.float64)
        loss, grad = fastxent.binary_cross_entropy_with_grad(p, target, reduction="none")
        check(loss, want_loss, dtype, err_msg=f"t={t}")
        check(grad, want_grad, dtype, err_msg=f"grad t={t}")


# --------------------------------------------------------------------------- NaN and inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nan_in_nll_loss_as_torch(torch, backend, dtype, reduction):
    # nll_loss reads only the target's log-probability: NaN elsewhere in the
    # row does not matter; NaN there is the row's loss; ignored rows count 0
    lp = np.log(np.array([[0.2, 0.3, 0.5]] * 4, dtype))
    lp[0, 1] = np.nan  # the target's
    lp[1, 0] = np.nan  # another class's
    lp[2, :] = np.nan  # an ignored row
    target = np.array([1, 2, -100, 0])
    tl = torch.tensor(lp.astype(np.float64), requires_grad=True)
    t_loss = torch.nn.functional.nll_loss(tl, torch.tensor(target), reduction=reduction)
    t_loss.sum().backward()
    loss, grad = fastxent.nll_loss_with_grad(lp, target, reduction=reduction)
    check(loss, t_loss.detach().numpy(), dtype)
    check(grad, tl.grad.numpy(), dtype)
    if reduction == "none":
        assert np.isnan(loss).tolist() == [True, False, False, False]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nan_class_weight_as_torch(torch, backend, dtype, reduction):
    # a NaN weight matters only to the samples of its class (and to a
    # weighted mean's denominator when such a sample is counted)
    rng = np.random.default_rng(7)
    x = random_logits(rng, (5, 4), dtype)
    weight = np.array([1.0, np.nan, 2.0, 0.5], dtype)
    for target in (np.array([0, 2, 3, 0, 2]), np.array([0, 1, 3, -100, 2])):
        want_loss, want_grad = torch_xent(torch, x, target, weight=weight, reduction=reduction)
        with np.errstate(invalid="ignore"):
            loss, grad = fastxent.cross_entropy_with_grad(x, target, weight=weight,
                                                          reduction=reduction)
        check(loss, want_loss, dtype, err_msg=f"loss {target}")
        check(grad, want_grad, dtype, scale=grad_scale(want_grad), err_msg=f"grad {target}")


@pytest.mark.xfail(strict=False, reason="known limitation: an infinite target mass times a zero gap to the maximum gives NaN in the split loss (mass * log s + gap) where PyTorch's per-class sum gives inf")
@pytest.mark.parametrize("dtype", DTYPES)
def test_infinite_probability_targets_as_torch(torch, backend, dtype):
    # Not probabilities, but API.md: the results of torch, which are
    # -sum t log p: +inf mass on a class of log p < 0 is +inf, wherever that
    # class lies in the row; -inf mass gives -inf; NaN stays NaN.
    x = np.array([[0.0, 1.0, 2.0]] * 5, dtype)
    t = np.array([[np.inf, 0, 0], [0, 0, np.inf], [0, np.inf, 0], [-np.inf, 0, 1],
                  [0.5, np.nan, 0.5]], dtype)
    want_loss, want_grad = torch_xent(torch, x, t, reduction="none")
    with np.errstate(invalid="ignore"):
        loss, grad = fastxent.cross_entropy_with_grad(x, t, reduction="none")
    np.testing.assert_array_equal(loss, want_loss.astype(dtype))
    np.testing.assert_array_equal(grad, want_grad.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_nonfinite_binary_targets_and_weights_as_torch(torch, backend, dtype, pos_weight):
    x = np.array([0.0, 1.0, -1.0, 5.0, 1.0, -2.0, 3.0], dtype)
    t = np.array([np.inf, np.inf, -np.inf, np.nan, 0.5, 1.0, 0.0], dtype)
    w = np.array([1.0, 1.0, 1.0, 1.0, np.nan, np.inf, 1.0], dtype)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    kwargs = {} if pos_weight is None else {"pos_weight": torch.tensor(pos_weight,
                                                                         dtype=torch.float64)}
    t_loss = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t.astype(np.float64)), weight=torch.tensor(w.astype(np.float64)),
        reduction="none", **kwargs)
    t_loss.sum().backward()
    options = {} if pos_weight is None else {"pos_weight": np.asarray(pos_weight, dtype)}
    with np.errstate(invalid="ignore"):
        loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(
            x, t, weight=w, reduction="none", **options)
    check(loss, t_loss.detach().numpy(), dtype, err_msg="loss")
    check(grad, xt.grad.numpy(), dtype, err_msg="grad")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_probability_target_in_binary_cross_entropy(backend, dtype):
    # NaN in, NaN out, in that element only (binary_cross_entropy's docstring)
    p = np.array([0.2, 0.5, 0.9], dtype)
    t = np.array([1.0, np.nan, 0.0], dtype)
    loss, grad = fastxent.binary_cross_entropy_with_grad(p, t, reduction="none")
    want_loss, want_grad = ref_bce(p, t, np.float64)
    check(loss, want_loss, dtype)
    check(grad, want_grad, dtype)
    assert np.isnan(fastxent.binary_cross_entropy(p, t))


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_prediction_in_keras_stays_in_its_sample(backend, dtype, from_logits):
    rng = np.random.default_rng(8)
    pred = (random_logits(rng, (5, 4), dtype) if from_logits
            else rng.dirichlet(np.ones(4), 5).astype(dtype))
    labels = random_labels(rng, (5,), 4)
    onehot = np.eye(4, dtype=dtype)[labels]
    bad = pred.copy()
    bad[2, 1] = np.nan
    keep = [0, 1, 3, 4]
    for fn, y_true in ((fk.sparse_categorical_crossentropy, labels),
                       (fk.categorical_crossentropy, onehot),
                       (fk.binary_crossentropy, onehot)):
        loss = fn(y_true, bad, from_logits=from_logits)
        clean = fn(y_true[keep], pred[keep], from_logits=from_logits)
        assert np.isnan(loss).tolist() == [False, False, True, False, False], fn.__name__
        np.testing.assert_array_equal(loss[keep], clean)


def nan_with_payload(dtype, payload):
    """A quiet NaN of `dtype` whose low mantissa bits are `payload`, as data
    from elsewhere may hold (np.nan's are all zero)."""
    uint = np.uint32 if np.dtype(dtype) == np.float32 else np.uint64
    quiet = uint(0x7FC00000) if uint is np.uint32 else uint(0x7FF8000000000000)
    return np.array([quiet | uint(payload)], dtype=uint).view(dtype)[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [5, 16, 300])
@pytest.mark.parametrize("payload", [0x0, 0x1FF, 0x12345])
def test_nan_with_any_payload_stays_in_its_row(backend, dtype, n_classes, payload):
    # The kernels build exp(x) from exponent bits: a NaN's payload must not
    # leak into them (a NaN must give NaN, and only in its own row).
    rng = np.random.default_rng(payload + n_classes)
    x = random_logits(rng, (70, n_classes), dtype)  # more than one tile of short rows
    y = random_labels(rng, (70,), n_classes)
    bad = x.copy()
    bad[65, n_classes // 2] = nan_with_payload(dtype, payload)
    keep = np.arange(70) != 65
    loss, grad = fastxent.cross_entropy_with_grad(bad, y, reduction="none")
    clean_loss, clean_grad = fastxent.cross_entropy_with_grad(x[keep], y[keep], reduction="none")
    assert np.isnan(loss[65]) and np.all(np.isnan(grad[65]))
    np.testing.assert_array_equal(loss[keep], clean_loss)
    np.testing.assert_array_equal(grad[keep], clean_grad)
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(fastxent, name)(bad, axis=-1)
        assert np.all(np.isnan(got[65])), name
        np.testing.assert_array_equal(got[keep], getattr(fastxent, name)(x[keep], axis=-1))
    t = rng.random(bad.shape).astype(dtype)
    loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(bad, t, reduction="none")
    assert np.isnan(loss[65, n_classes // 2]) and np.isnan(grad[65, n_classes // 2])
    assert np.sum(np.isnan(loss)) == 1 and np.sum(np.isnan(grad)) == 1
