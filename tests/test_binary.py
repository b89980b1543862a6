"""binary_cross_entropy_with_logits and binary_cross_entropy (and their
_with_grad companions) against independent references: torch.nn.functional
and its autograd (float64), formulas written with scipy.special (expit,
logaddexp), analytic values and central finite differences. Every test runs on
both backends (the `backend` fixture of conftest)."""

import contextlib
from functools import partial

import numpy as np
import pytest
from scipy.special import expit

import fastxent

from fastxent_testing import Snapshot, central_difference, check_loss_type, run_both
from fastxent_testing import DTYPES, REDUCTIONS, RTOL_TIGHT as RTOL


BCE_LOGITS = (fastxent.binary_cross_entropy_with_logits,
              fastxent.binary_cross_entropy_with_logits_with_grad)
BCE_PROBS = (fastxent.binary_cross_entropy, fastxent.binary_cross_entropy_with_grad)


# --------------------------------------------------------------------------- helpers


def close(actual, expected, dtype, *, rtol=None, scale=None, err_msg=""):
    """actual (of dtype) against a float64 reference: relative tolerance of the
    dtype, and an absolute one of rtol times `scale` (default: the reference's
    largest finite magnitude), for elements that are differences of terms that
    large. NaN must match NaN, infinities must match exactly."""
    rtol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    expected = np.asarray(expected, dtype=np.float64)
    if scale is None:
        finite = np.abs(expected[np.isfinite(expected)])
        scale = finite.max() if finite.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * max(scale, 1e-300), equal_nan=True, err_msg=err_msg)


@contextlib.contextmanager
def torch_single_thread(torch):
    """torch's reference computations on one thread (tiny tensors: a thread pool
    only costs time, a lot of it on a loaded machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_tensor(torch, a):
    return None if a is None else torch.tensor(np.asarray(a, dtype=np.float64))


def torch_bce_logits(torch, x, t, *, weight=None, pos_weight=None, reduction="mean"):
    """(loss, grad) of torch's binary_cross_entropy_with_logits in float64
    (grad of loss.sum() for reduction="none")."""
    with torch_single_thread(torch):
        xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            xt, as_tensor(torch, t), weight=as_tensor(torch, weight),
            pos_weight=as_tensor(torch, pos_weight), reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
        return loss.detach().numpy(), xt.grad.numpy()


def torch_bce(torch, p, t, *, weight=None, reduction="mean"):
    with torch_single_thread(torch):
        pt = torch.tensor(np.asarray(p, dtype=np.float64), requires_grad=True)
        loss = torch.nn.functional.binary_cross_entropy(
            pt, as_tensor(torch, t), weight=as_tensor(torch, weight), reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
        return loss.detach().numpy(), pt.grad.numpy()


def reduce(values, reduction):
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()


def scipy_bce_logits(x, t, weight=None, pos_weight=None, reduction="mean"):
    """float64 reference from -[pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]
    with log sigmoid(x) = -logaddexp(0, -x) and the gradient
    w [(1 - t) sigmoid(x) - pw t sigmoid(-x)], sigmoid = scipy's expit."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    w = np.ones_like(x) if weight is None else np.broadcast_to(np.asarray(weight, float), x.shape)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # a zero coefficient times an infinite log term counts as 0 here
        pos = np.where(pw * t == 0, 0.0, pw * t * np.logaddexp(0.0, -x))
        neg = np.where(1 - t == 0, 0.0, (1 - t) * np.logaddexp(0.0, x))
    loss = w * (pos + neg)
    grad = w * ((1 - t) * expit(x) - pw * t * expit(-x))
    if reduction == "mean":
        grad = grad / max(x.size, 1)
    return reduce(loss, reduction), grad


def torch_formula_bce(p, t, weight=None, reduction="mean"):
    """float64 reference written from PyTorch's documented formula: log terms
    clamped at -100, gradient (p - t) / max(p (1 - p), 1e-12), whose 1e-12 is a
    C++ float in PyTorch's source (Loss.cpp): 1e-12 rounded to float32."""
    p = np.asarray(p, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    w = np.ones_like(p) if weight is None else np.broadcast_to(np.asarray(weight, float), p.shape)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), -100.0)
        log_q = np.maximum(np.log1p(-p), -100.0)
    loss = -w * (t * log_p + (1 - t) * log_q)
    grad = w * (p - t) / np.maximum(p * (1 - p), float(np.float32(1e-12)))
    if reduction == "mean":
        grad = grad / max(p.size, 1)
    return reduce(loss, reduction), grad


def make_weight(rng, kind, shape, dtype):
    """A weight of the given broadcasting kind for inputs of `shape` (N, C)."""
    if kind is None:
        return None
    if kind == "scalar":
        return np.asarray(rng.uniform(0.5, 2.0), dtype=dtype)
    if kind == "float":
        return 0.75
    if kind == "class":
        return rng.uniform(0.25, 2.0, shape[-1]).astype(dtype)
    if kind == "row":
        return rng.uniform(0.25, 2.0, shape[:-1] + (1,)).astype(dtype)
    if kind == "full":
        return rng.uniform(0.25, 2.0, shape).astype(dtype)
    raise AssertionError(kind)


def soft_and_hard_targets(rng, shape, dtype):
    """Targets in [0, 1]: a mix of soft values and exact 0s and 1s."""
    t = rng.random(shape)
    pick = rng.random(shape)
    t = np.where(pick < 0.25, 0.0, np.where(pick > 0.75, 1.0, t))
    return np.asarray(t, dtype=dtype)


def check_result_types(loss, grad, reduction, shape, dtype):
    check_loss_type(loss, reduction, shape, dtype)
    if grad is not None:
        assert isinstance(grad, np.ndarray)
        assert grad.shape == tuple(shape) and grad.dtype == np.dtype(dtype)


# run_logits(x, t, **options), run_probs(p, t, **options): both functions of
# the pair, checked to agree and to leave their inputs alone; return (loss, grad)
run_logits = partial(run_both, *BCE_LOGITS)
run_probs = partial(run_both, *BCE_PROBS)


def check_against_torch(run, reference, x, t, dtype, **weights):
    """run(x, t) (run_logits or run_probs) against the torch reference, for
    every reduction: result types, loss and gradient."""
    for reduction in REDUCTIONS:
        loss, grad = run(x, t, **weights, reduction=reduction)
        want_loss, want_grad = reference(x, t, **weights, reduction=reduction)
        check_result_types(loss, grad, reduction, np.shape(x), dtype)
        close(loss, want_loss, dtype, err_msg=reduction)
        close(grad, want_grad, dtype, err_msg=reduction)


# =========================================================================== with logits

WEIGHT_KINDS = [None, "scalar", "float", "class", "row", "full"]
# (weight, pos_weight) broadcasting kinds: each kind of either at least once
WEIGHT_PAIRS = [
    pytest.param(None, None, id="w_none-pw_none"),
    pytest.param("scalar", "class", id="w_scalar-pw_class"),
    pytest.param("float", "row", id="w_float-pw_row"),
    pytest.param("class", None, id="w_class-pw_none"),
    pytest.param("row", "scalar", id="w_row-pw_scalar"),
    pytest.param("full", "class", id="w_full-pw_class"),
    pytest.param(None, "full", id="w_none-pw_full"),
    pytest.param("class", "float", id="w_class-pw_float"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_kind, pos_weight_kind", WEIGHT_PAIRS)
def test_logits_weights_broadcast_as_torch(torch, backend, rng, dtype, weight_kind,
                                           pos_weight_kind):
    shape = (6, 5)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    t = soft_and_hard_targets(rng, shape, dtype)
    weight = make_weight(rng, weight_kind, shape, dtype)
    pos_weight = make_weight(rng, pos_weight_kind, shape, dtype)
    check_against_torch(run_logits, partial(torch_bce_logits, torch), x, t, dtype, weight=weight,
                        pos_weight=pos_weight)


LOGIT_SHAPES = [
    pytest.param((), id="0d"),
    pytest.param((7,), id="1d"),
    pytest.param((1, 1), id="1x1"),
    pytest.param((2, 3, 4), id="rank3"),
    pytest.param((0,), id="empty1d"),
    pytest.param((0, 4), id="N=0"),
    pytest.param((3, 0), id="C=0"),
    pytest.param((70, 600), id="several-blocks"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LOGIT_SHAPES)
def test_logits_shapes_match_torch(torch, backend, rng, dtype, shape):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = soft_and_hard_targets(rng, shape, dtype)
    # a weight along the last axis, and a full-shape pos_weight
    weight = rng.uniform(0.5, 2.0, shape[-1:]).astype(dtype)
    pos_weight = rng.uniform(0.5, 3.0, shape).astype(dtype)
    check_against_torch(run_logits, partial(torch_bce_logits, torch), x, t, dtype, weight=weight,
                        pos_weight=pos_weight)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_logits_rank3_per_class_and_batch_weights(torch, backend, rng, dtype, reduction):
    shape = (3, 4, 5)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = soft_and_hard_targets(rng, shape, dtype)
    for weight_shape, pos_weight_shape in [((4, 5), (5,)), ((3, 1, 1), (4, 1)),
                                           ((1, 4, 1), (1, 1, 5))]:
        weight = rng.uniform(0.5, 2, weight_shape).astype(dtype)
        pos_weight = rng.uniform(0.5, 2, pos_weight_shape).astype(dtype)
        loss, grad = run_logits(x, t, weight=weight, pos_weight=pos_weight, reduction=reduction)
        want_loss, want_grad = torch_bce_logits(torch, x, t, weight=weight,
                                                pos_weight=pos_weight, reduction=reduction)
        close(loss, want_loss, dtype, err_msg=f"{weight.shape} {pos_weight.shape}")
        close(grad, want_grad, dtype, err_msg=f"{weight.shape} {pos_weight.shape}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_at_zero_give_log_2(backend, dtype):
    # sigmoid(0) = 1/2: the loss is log 2 whatever the target; the gradient
    # sigmoid(0) - t = 1/2 - t.
    t = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, 1.0]], dtype=dtype)
    x = np.zeros_like(t)
    loss, grad = run_logits(x, t, reduction="none")
    close(loss, np.full(t.shape, np.log(2.0)), dtype)
    close(grad, 0.5 - t.astype(np.float64), dtype)
    loss, grad = run_logits(x, t, reduction="mean")
    close(loss, np.log(2.0), dtype)
    close(grad, (0.5 - t.astype(np.float64)) / t.size, dtype)
    loss = fastxent.binary_cross_entropy_with_logits(x, t, reduction="sum")
    close(loss, t.size * np.log(2.0), dtype)
    # pos_weight multiplies the positive term: at 0 the loss is (1 + (pw - 1) t) log 2
    loss = fastxent.binary_cross_entropy_with_logits(x, t, pos_weight=3.0, reduction="none")
    close(loss, (1 + 2 * t.astype(np.float64)) * np.log(2.0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("magnitude", [40.0, 800.0, 1e4, 1e30, 1e38])
def test_logits_extreme_values_are_exact(backend, dtype, magnitude):
    # Confident and right: loss exactly 0 and gradient exactly 0. Confident and
    # wrong: loss exactly |x| (x log-odds away), gradient exactly -+1. No
    # overflow, no NaN, no warnings.
    m = magnitude
    x = np.array([m, -m, m, -m], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = run_logits(x, t, reduction="none")
    m32 = float(np.asarray(m, dtype=dtype))
    if m >= 800:
        np.testing.assert_array_equal(loss, np.array([0.0, 0.0, m32, m32], dtype=dtype))
        np.testing.assert_array_equal(grad, np.array([0.0, 0.0, 1.0, -1.0], dtype=dtype))
    else:  # log1p(exp(-40)) = 4.25e-18: tiny but not 0
        close(loss, [np.log1p(np.exp(-m))] * 2 + [m + np.log1p(np.exp(-m))] * 2, dtype)
        close(grad, [-expit(-m), expit(-m), expit(m), -expit(m)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_extreme_values_with_soft_targets_and_weights(backend, dtype):
    big = 1e300 if dtype == np.float64 else 1e37
    x = np.array([[-big, -1e4, -800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0, 1e4, big]] * 3,
                 dtype=dtype)
    t = np.array([[0.0], [0.3], [1.0]], dtype=dtype) * np.ones_like(x)
    pos_weight = np.array(2.5, dtype=dtype)
    weight = np.array([[0.5], [1.0], [2.0]], dtype=dtype)
    for reduction in REDUCTIONS:
        with np.errstate(over="raise", invalid="raise"):
            loss, grad = run_logits(x, t, weight=weight, pos_weight=pos_weight,
                                    reduction=reduction)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        want_loss, want_grad = scipy_bce_logits(x, t, weight, pos_weight, reduction)
        close(loss, want_loss, dtype)
        # gradients are within [-w pw, w]: an absolute scale that keeps
        # 1 - sigmoid(40) = 4e-18 from counting as a relative error
        close(grad, want_grad, dtype, scale=5.0 / (x.size if reduction == "mean" else 1))


def test_logits_match_scipy_formula_on_a_range(backend, rng):
    x = np.linspace(-60, 60, 241)
    t = rng.random(x.shape)
    for reduction in REDUCTIONS:
        loss, grad = run_logits(x, t, pos_weight=1.7, reduction=reduction)
        want_loss, want_grad = scipy_bce_logits(x, t, None, 1.7, reduction)
        close(loss, want_loss, np.float64)
        close(grad, want_grad, np.float64)


@pytest.mark.parametrize("pos_weight", [None, 1.7])
def test_float32_logits_within_a_few_ulp(backend, rng, pos_weight):
    # float32 computes in float32 (as PyTorch): each loss within a few units
    # in the last place of the float64 truth (its terms never cancel), each
    # gradient within a few ulp of its two terms, sigmoid(x) and pos_weight t.
    x = np.concatenate([np.linspace(-30, 30, 6001), rng.standard_normal(4000) * 4])
    x = x.astype(np.float32)
    t = rng.random(x.size).astype(np.float32)
    t[::7] = np.round(t[::7])  # hard labels too
    kwargs = {} if pos_weight is None else {"pos_weight": np.float32(pos_weight)}
    loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(
        x, t, reduction="none", **kwargs)
    pw = 1.0 if pos_weight is None else float(np.float32(pos_weight))
    want_loss, want_grad = scipy_bce_logits(x.astype(np.float64), t.astype(np.float64),
                                            None, pw, "none")
    ulp = lambda v: np.spacing(np.abs(v).astype(np.float32)).astype(np.float64)  # noqa: E731
    loss_err = np.abs(loss - want_loss) / ulp(want_loss)
    assert loss_err.max() <= 4, f"loss: {loss_err.max():.2f} ulp"
    sig = expit(x.astype(np.float64))
    l = 1 + (pw - 1) * t.astype(np.float64)  # noqa: E741
    grad_tol = 4 * (ulp(l * sig) + ulp(pw * t.astype(np.float64)))
    assert np.all(np.abs(grad - want_grad) <= grad_tol), np.max(np.abs(grad - want_grad) / grad_tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (2, 1, 3)], ids=str)
def test_logits_gradient_is_the_finite_difference(backend, rng, reduction, shape):
    x = rng.standard_normal(shape) * 3
    t = rng.random(shape)
    options = dict(weight=rng.uniform(0.5, 2.0, shape[-1:]), reduction=reduction,
                   pos_weight=rng.uniform(0.5, 3.0, shape))

    def total(z):
        return np.sum(fastxent.binary_cross_entropy_with_logits(z, t, **options))

    _, grad = fastxent.binary_cross_entropy_with_logits_with_grad(x, t, **options)
    np.testing.assert_allclose(grad, central_difference(total, x, h=1e-6, relative=True),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", BCE_LOGITS + BCE_PROBS, ids=lambda f: f.__name__)
def test_empty_input(backend, dtype, fn):
    x = np.zeros((0, 4), dtype=dtype)
    t = np.zeros((0, 4), dtype=dtype)
    with_grad = fn.__name__.endswith("with_grad")

    def call(reduction):
        result = fn(x, t, reduction=reduction)
        loss, grad = result if with_grad else (result, None)
        check_result_types(loss, grad, reduction, (0, 4), dtype)
        return loss

    assert np.isnan(call("mean"))
    assert call("sum") == 0
    assert call("none").shape == (0, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_dimensional_input(torch, backend, dtype, reduction):
    x = np.asarray(-1.25, dtype=dtype)
    t = np.asarray(0.75, dtype=dtype)
    loss, grad = run_logits(x, t, pos_weight=2.0, reduction=reduction)
    check_result_types(loss, grad, reduction, (), dtype)
    want_loss, want_grad = torch_bce_logits(torch, x, t, pos_weight=2.0, reduction=reduction)
    close(loss, want_loss, dtype)
    close(grad, want_grad, dtype)
    p = np.asarray(0.375, dtype=dtype)
    loss, grad = run_probs(p, t, weight=np.asarray(2.0, dtype=dtype), reduction=reduction)
    check_result_types(loss, grad, reduction, (), dtype)
    want_loss, want_grad = torch_bce(torch, p, t, weight=2.0, reduction=reduction)
    close(loss, want_loss, dtype)
    close(grad, want_grad, dtype)
    # Python scalars work too, as float64
    loss = fastxent.binary_cross_entropy_with_logits(0.0, 1.0, reduction=reduction)
    assert loss.dtype == np.float64 and loss == pytest.approx(np.log(2.0), rel=1e-15)


# =========================================================================== from probabilities


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_kind", WEIGHT_KINDS)
def test_probs_match_torch(torch, backend, rng, dtype, weight_kind):
    shape = (6, 5)
    p = rng.uniform(0.01, 0.99, shape).astype(dtype)
    t = soft_and_hard_targets(rng, shape, dtype)
    weight = make_weight(rng, weight_kind, shape, dtype)
    check_against_torch(run_probs, partial(torch_bce, torch), p, t, dtype, weight=weight)


PROB_SHAPES = [
    pytest.param((9,), id="1d"),
    pytest.param((2, 3, 4), id="rank3"),
    pytest.param((0, 3), id="N=0"),
    pytest.param((0,), id="empty1d"),
    pytest.param((3, 0), id="C=0"),
    pytest.param((70, 600), id="several-blocks"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PROB_SHAPES)
def test_probs_shapes_match_torch(torch, backend, rng, dtype, shape):
    p = rng.uniform(0.001, 0.999, shape).astype(dtype)
    t = soft_and_hard_targets(rng, shape, dtype)
    weight = rng.uniform(0.5, 2.0, shape[-1:]).astype(dtype)
    check_against_torch(run_probs, partial(torch_bce, torch), p, t, dtype, weight=weight)


EDGE_PROBS = [0.0, 5e-324, 1e-300, 1e-50, 1e-13, 1e-7, 0.5, 1 - 1e-7, 1 - 1e-13, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_probs_exactly_0_and_1_are_clamped_as_torch(torch, backend, dtype, reduction):
    # log terms clamp at -100; the gradient's denominator p (1 - p) at 1e-12.
    p = np.array([EDGE_PROBS] * 3, dtype=dtype)
    t = np.array([[0.0], [0.3], [1.0]], dtype=dtype) * np.ones_like(p)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad = run_probs(p, t, reduction=reduction)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    want_loss, want_grad = torch_formula_bce(p, t, reduction=reduction)
    close(loss, want_loss, dtype)
    # elementwise relative: gradients range from 1e-288 to 1e12
    close(grad, want_grad, dtype, scale=0.0)
    torch_loss, torch_grad = torch_bce(torch, p, t, reduction=reduction)
    close(loss, torch_loss, dtype)
    close(grad, torch_grad, dtype, scale=0.0)


def test_probs_exact_values(backend):
    # certain and right: 0; certain and wrong: the clamp, 100; p = 1/2: log 2
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    loss, grad = run_probs(p, t, reduction="none")
    np.testing.assert_array_equal(loss, [0.0, 0.0, 100.0, 100.0, np.log(2.0), np.log(2.0)])
    floor = 1 / float(np.float32(1e-12))  # PyTorch's clamp of p (1 - p), a float's 1e-12
    np.testing.assert_array_equal(grad, [0.0, 0.0, -floor, floor, 2.0, -2.0])
    # a soft target against a certain probability: t * 100 or (1 - t) * 100
    loss = fastxent.binary_cross_entropy(np.array([0.0, 1.0]), np.array([0.25, 0.25]),
                                         reduction="none")
    close(loss, [25.0, 75.0], np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (2, 1, 3)], ids=str)
def test_probs_gradient_is_the_finite_difference(backend, rng, reduction, shape):
    p = rng.uniform(0.05, 0.95, shape)
    t = rng.random(shape)
    options = dict(weight=rng.uniform(0.5, 2.0, shape), reduction=reduction)

    def total(z):
        return np.sum(fastxent.binary_cross_entropy(z, t, **options))

    _, grad = fastxent.binary_cross_entropy_with_grad(p, t, **options)
    np.testing.assert_allclose(grad, central_difference(total, p, h=1e-7, relative=True),
                               rtol=1e-6, atol=1e-9)


BAD_PROBS = [
    pytest.param((2, 3), (1, 2), 1.5, id="above-1"),
    pytest.param((2, 3), (0, 1), -0.25, id="below-0"),
    pytest.param((4,), (3,), np.inf, id="inf"),
    pytest.param((2, 2, 2), (1, 0, 1), -np.inf, id="rank3"),
    pytest.param((), (), 1.0000001, id="0d"),
    pytest.param((80, 600), (71, 13), 2.0, id="late-block"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, where, value", BAD_PROBS)
def test_probability_outside_0_1_raises(backend, dtype, shape, where, value):
    p = np.full(shape, 0.5, dtype=dtype)
    p[where] = value
    t = np.zeros(shape, dtype=dtype)
    snap = Snapshot(p, t)
    for fn in BCE_PROBS:
        with pytest.raises(ValueError) as info:
            fn(p, t)
        message = str(info.value)
        assert "probs" in message
        assert str(tuple(where)) in message
        assert str(p[where]) in message  # the value, as NumPy prints it
        snap.assert_unchanged()


@pytest.mark.parametrize("fn", BCE_PROBS, ids=lambda f: f.__name__)
def test_the_first_bad_probability_is_named(backend, fn):
    p = np.full((3, 4), 0.5)
    p[2, 3] = -1.0
    p[1, 1] = 3.0
    with pytest.raises(ValueError, match=r"3\.0.*\(1, 1\)"):
        fn(p, np.zeros_like(p))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_probability_gives_nan(backend, dtype):
    # Documented choice (API.md: NaN in, NaN out): NaN passes the range check
    # and gives NaN where it is, and only there.
    p = np.array([[0.25, np.nan, 0.5], [0.75, 0.5, 0.5]], dtype=dtype)
    t = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.3]], dtype=dtype)
    with np.errstate(invalid="ignore"):
        loss, grad = run_probs(p, t, reduction="none")
        mean, grad_mean = fastxent.binary_cross_entropy_with_grad(p, t)
    nan = np.isnan(p)
    assert np.array_equal(np.isnan(loss), nan)
    assert np.array_equal(np.isnan(grad), nan)
    assert np.isnan(mean)
    want_loss, want_grad = torch_formula_bce(np.where(nan, 0.5, p), t, reduction="none")
    close(loss[~nan], want_loss[~nan], dtype)
    close(grad[~nan], want_grad[~nan], dtype)
    close(grad_mean[~nan], want_grad[~nan] / p.size, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_logit_or_target_gives_nan(backend, dtype):
    x = np.array([0.5, np.nan, 2.0, -1.0], dtype=dtype)
    t = np.array([1.0, 1.0, np.nan, 0.0], dtype=dtype)
    with np.errstate(invalid="ignore"):
        loss, grad = run_logits(x, t, reduction="none")
        assert np.isnan(fastxent.binary_cross_entropy_with_logits(x, t))
    np.testing.assert_array_equal(np.isnan(loss), [False, True, True, False])
    np.testing.assert_array_equal(np.isnan(grad), [False, True, True, False])


# =========================================================================== dtypes, layouts, out=


@pytest.mark.parametrize("fns", [BCE_LOGITS, BCE_PROBS], ids=["logits", "probs"])
def test_integer_inputs_compute_in_float64(backend, fns):
    x = np.array([[0, 1], [1, 0]], dtype=np.int32)
    t = np.array([[0, 1], [0, 1]], dtype=np.uint8)
    loss = fns[0](x, t)
    assert loss.dtype == np.float64
    loss2, grad = fns[1](x, t, reduction="none")
    assert loss2.dtype == np.float64 and grad.dtype == np.float64
    want = fns[0](x.astype(np.float64), t.astype(np.float64))
    assert loss == want
    # float32 input with float64 targets and weights stays float32
    x32 = x.astype(np.float32)
    loss = fns[0](x32, t.astype(np.float64), weight=np.ones(2))
    assert loss.dtype == np.float32


# =========================================================================== threads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fns", [BCE_LOGITS, BCE_PROBS], ids=["logits", "probs"])
def test_several_blocks_on_two_threads_are_right(backend, rng, dtype, fns):
    # (that 1, 2 and 3 threads give the same bits: test_operations, over the registry)
    shape = (3000, 37)  # ~4 blocks of the compiled kernel
    x = rng.uniform(0.001, 0.999, shape).astype(dtype)
    t = rng.random(shape).astype(dtype)
    w = rng.uniform(0.5, 2.0, (3000, 1)).astype(dtype)
    for reduction in REDUCTIONS:
        with fastxent.num_threads(2):
            loss = fns[0](x, t, weight=w, reduction=reduction)
        # a float64 computation of the same sum
        if fns is BCE_PROBS:
            want, _ = torch_formula_bce(x, t, w, reduction)
        else:
            want, _ = scipy_bce_logits(x, t, w, None, reduction)
        close(loss, want, dtype, err_msg=reduction)


# =========================================================================== bad arguments


ALL_FUNCTIONS = BCE_LOGITS + BCE_PROBS


@pytest.mark.parametrize("fn", ALL_FUNCTIONS, ids=lambda f: f.__name__)
def test_target_of_another_shape(backend, fn):
    for target_shape in [(3, 2), (2,), (2, 3, 1), (6,), ()]:
        with pytest.raises(ValueError, match="target"):
            fn(np.full((2, 3), 0.5), np.zeros(target_shape))


@pytest.mark.parametrize("fn", ALL_FUNCTIONS, ids=lambda f: f.__name__)
def test_weight_that_does_not_broadcast(backend, fn):
    for weight_shape in [(2,), (4,), (3, 1), (1, 2, 3), (2, 3, 1)]:
        with pytest.raises(ValueError, match="weight"):
            fn(np.full((2, 3), 0.5), np.zeros((2, 3)), weight=np.ones(weight_shape))


@pytest.mark.parametrize("fn", BCE_LOGITS, ids=lambda f: f.__name__)
def test_pos_weight_that_does_not_broadcast(backend, fn):
    with pytest.raises(ValueError, match="pos_weight"):
        fn(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=np.ones(2))


def test_binary_cross_entropy_takes_no_pos_weight(backend):
    with pytest.raises(TypeError):
        fastxent.binary_cross_entropy(np.full(3, 0.5), np.zeros(3), pos_weight=np.ones(3))
