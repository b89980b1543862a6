"""The building blocks with SciPy's signatures: softmax, log_softmax,
logsumexp, entropy and kl_divergence over one axis, a tuple of axes or the
whole array (axis=None), on 0-d inputs, and logsumexp's b, keepdims and
return_sign, against scipy.special on both backends."""

import itertools

import numpy as np
import pytest
import scipy.special as sp

import fastxent

inf, nan = np.inf, np.nan

SHAPES_AND_AXES = [
    ((7,), None), ((7,), 0), ((7,), (0,)), ((7,), ()),
    ((4, 5), None), ((4, 5), (0, 1)), ((4, 5), (1, 0)), ((4, 5), 0), ((4, 5), ()),
    ((3, 4, 5), None), ((3, 4, 5), (0, 2)), ((3, 4, 5), (-1, -3)), ((3, 4, 5), (1,)),
    ((2, 3, 4, 5), (1, 2)), ((2, 3, 4, 5), (0, 3)),
    ((), None), ((), 0), ((), -1), ((), ()),
]


def _assert_like_scipy(ours, theirs, dtype, atol=0.0):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert ours.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(ours.astype(np.float64), theirs.astype(np.float64),
                               rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_axes_like_scipy(backend, rng, name, shape, axis, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if name == "logsumexp" and shape == () and axis == ():
        truth = x.astype(np.float64)  # over no axes: x itself (SciPy 1.17 fails on this one)
    else:
        truth = getattr(sp, name)(x.astype(np.float64), axis=axis)
    # log_softmax: an absolute error of a few ulps of the terms it subtracts
    atol = 4 * np.finfo(dtype).eps if name == "log_softmax" else 0.0
    _assert_like_scipy(getattr(fastxent, name)(x, axis=axis), truth, dtype, atol)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
def test_entropy_and_kl_axes_like_scipy(backend, rng, shape, axis):
    p, q = rng.random(shape), rng.random(shape)
    entr_axis = axis if axis != () else ()
    np.testing.assert_allclose(fastxent.entropy(p, axis=axis),
                               np.sum(sp.entr(p), axis=entr_axis), rtol=1e-12)
    np.testing.assert_allclose(fastxent.kl_divergence(p, q, axis=axis),
                               np.sum(sp.rel_entr(p, q), axis=axis), rtol=1e-12)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape, axis", [s for s in SHAPES_AND_AXES if s[0]])
def test_logsumexp_keepdims_and_weights_like_scipy(backend, rng, shape, axis, keepdims):
    x = rng.standard_normal(shape) * 3
    b = rng.uniform(-1.0, 2.0, shape)
    b[rng.random(shape) < 0.2] = 0
    for weights in (None, b, np.abs(b)):
        for return_sign in (False, True):
            ours = fastxent.logsumexp(x, axis=axis, b=weights, keepdims=keepdims,
                                      return_sign=return_sign)
            theirs = sp.logsumexp(x, axis=axis, b=weights, keepdims=keepdims,
                                  return_sign=return_sign)
            if return_sign:
                _assert_like_scipy(ours[0], theirs[0], np.float64)
                np.testing.assert_array_equal(ours[1], theirs[1])
            else:  # NaN where the weighted sum is negative
                np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
                _assert_like_scipy(np.nan_to_num(ours), np.nan_to_num(theirs), np.float64)


# SciPy's documented edge cases, and values near 0 (gh-18295).
EDGE_CASES = [
    ([0.0, -40.0], None), ([0.0, -40.0], [1.0, 1.0]), ([0.0, -1e-20], [1.0, -1.0]),
    ([1.0, 2.0], [1.0, -1.0]), ([1.0, 2.0], [-1.0, -1.0]), ([1.0, 2.0], [0.0, 0.0]),
    ([inf, -inf], None), ([inf, inf], [1.0, -1.0]), ([-inf, -inf], None), ([inf, 1.0], None),
    ([nan, 1.0], None), ([nan, 1.0], [0.0, 1.0]), ([inf, 1.0], [0.0, 1.0]), ([-inf, 0.0], None),
    ([1e308, 1e308], None), ([-1e308, -1e308], None), ([3.0, 3.0, 3.0], [1.0, 1.0, -2.0]),
    ([1000.0, 1000.0], [2.0, -1.0]),
]


@pytest.mark.parametrize("x, b", EDGE_CASES)
def test_logsumexp_edge_cases_like_scipy(backend, x, b):
    for return_sign in (False, True):
        with np.errstate(all="ignore"):
            theirs = sp.logsumexp(x, b=b, return_sign=return_sign)
        ours = fastxent.logsumexp(x, b=b, return_sign=return_sign, axis=None)
        if return_sign:
            np.testing.assert_array_equal(ours[1], theirs[1])
            ours, theirs = ours[0], theirs[0]
        if np.isfinite(theirs) and theirs != 0:
            assert abs(ours - theirs) <= 4 * np.spacing(abs(theirs)), (ours, theirs)
        else:
            np.testing.assert_array_equal(ours, theirs)


def test_logsumexp_of_an_empty_reduction_is_minus_infinity(backend):
    np.testing.assert_array_equal(fastxent.logsumexp(np.zeros((3, 0))),
                                  sp.logsumexp(np.zeros((3, 0)), axis=-1))
    # (SciPy 1.17 fails on a tuple of axes here; the sum of nothing is 0, its log -inf)
    for x, axis in [(np.zeros((3, 0)), (1,)), (np.zeros((2, 0, 4)), (1, 2))]:
        np.testing.assert_array_equal(fastxent.logsumexp(x, axis=axis), np.full(x.shape[0], -inf))


def test_scalar_inputs(backend):
    for value in (3.0, np.float32(-2.5), 7):
        assert fastxent.softmax(value) == sp.softmax(value) == 1.0
        assert fastxent.log_softmax(value) == 0.0
        assert fastxent.logsumexp(value) == sp.logsumexp(value)
    assert fastxent.logsumexp(np.float32(2.0)).dtype == np.float32


def test_out_with_several_axes(backend, rng):
    x = rng.standard_normal((3, 4, 5))
    out = np.empty_like(x)
    assert fastxent.softmax(x, axis=(0, 2), out=out) is out
    np.testing.assert_allclose(out, sp.softmax(x, axis=(0, 2)), rtol=1e-12)
    y = x.copy()
    fastxent.log_softmax(y, axis=None, out=y)  # in place
    np.testing.assert_allclose(y, sp.log_softmax(x, axis=None), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis, error", [
    ((0, 0), ValueError), ((0, 5), ValueError), ((0, 1.0), TypeError), ((True,), TypeError),
    ([0, 1], TypeError),
])
def test_bad_axes(backend, axis, error):
    x = np.ones((2, 3))
    for fn in (fastxent.softmax, fastxent.log_softmax, fastxent.logsumexp, fastxent.entropy):
        with pytest.raises(error, match="axis"):
            fn(x, axis=axis)


def test_bad_weights(backend):
    with pytest.raises(ValueError, match="b: shape"):
        fastxent.logsumexp(np.ones((2, 3)), b=np.ones(4))
    with pytest.raises(TypeError, match="b"):
        fastxent.logsumexp(np.ones((2, 3)), b=np.ones(3, complex))


def test_inputs_unchanged(backend, rng):
    x, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x0, b0 = x.copy(), b.copy()
    for name, axis in itertools.product(["softmax", "log_softmax", "logsumexp"], [None, (0, 1)]):
        getattr(fastxent, name)(x, axis=axis)
    fastxent.logsumexp(x, b=b, return_sign=True, axis=None)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(b, b0)
