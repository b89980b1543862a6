"""softmax, log_softmax, logsumexp, entropy and kl_divergence against
scipy.special (softmax, log_softmax, logsumexp, entr, rel_entr) and analytic
values: any axis, ranks 1 to 3, float32 and float64, infinities and NaN
exactly as SciPy, out=, layouts and thread counts. Every test runs on both
backends (the `backend` fixture of conftest)."""

import itertools

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats

import fastxent

from fastxent_testing import Snapshot
from fastxent_testing import DTYPES, RTOL_TIGHT as RTOL, close_tight as close


SOFTMAXES = ("softmax", "log_softmax")
ROW_FUNCTIONS = ("softmax", "log_softmax", "logsumexp")


# assert_close with this file's tolerances (tighter than conftest's in float64)


def scipy_reference(name, x, axis):
    """SciPy's result in float64 for the values of x."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return getattr(sp, name)(x, axis=axis)


def entr_sum(p, axis=-1, base=None):
    with np.errstate(all="ignore"):
        result = sp.entr(np.asarray(p, dtype=np.float64)).sum(axis=axis)
    return result if base is None else result / np.log(base)


def rel_entr_sum(p, q, axis=-1, base=None):
    with np.errstate(all="ignore"):
        p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
        result = sp.rel_entr(p, q).sum(axis=axis)
    return result if base is None else result / np.log(base)


def call(name, *args, **kwargs):
    """fastxent.<name>, checking that no argument is modified."""
    snap = Snapshot(*args)
    result = getattr(fastxent, name)(*args, **kwargs)
    snap.assert_unchanged()
    return result


def check_type(result, dtype, shape):
    """An array of dtype and shape, or a NumPy scalar of dtype when shape is ()."""
    assert result.dtype == np.dtype(dtype)
    if shape == ():
        assert isinstance(result, np.generic) and not isinstance(result, np.ndarray), \
            type(result)
    else:
        assert isinstance(result, np.ndarray) and result.shape == shape


def without(shape, axis):
    ax = axis % len(shape)
    return shape[:ax] + shape[ax + 1:]


SHAPES = [
    pytest.param((7,), -1, id="rank1"),
    pytest.param((7,), 0, id="rank1-axis0"),
    pytest.param((4, 6), -1, id="rank2"),
    pytest.param((4, 6), 0, id="rank2-axis0"),
    pytest.param((4, 6), -2, id="rank2-axis-2"),
    pytest.param((3, 4, 5), 0, id="rank3-axis0"),
    pytest.param((3, 4, 5), 1, id="rank3-axis1"),
    pytest.param((3, 4, 5), 2, id="rank3-axis2"),
    pytest.param((3, 4, 5), -1, id="rank3-axis-1"),
    pytest.param((0, 5), -1, id="no-rows"),
    pytest.param((2, 0, 3), 2, id="rank3-no-rows"),
    pytest.param((5, 1), -1, id="one-class"),
    pytest.param((3, 2000), -1, id="long-rows"),
]


# =========================================================================== softmax family


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
def test_softmax_family_matches_scipy(backend, rng, dtype, shape, axis):
    # values spread over +-15 around a per-row offset as large as 1e4: the
    # results must not depend on the offset (no overflow)
    x = rng.standard_normal(shape) * 5
    x = x + rng.choice([0.0, -300.0, 1e4], size=x.shape[:-1] + (1,) if x.ndim > 1 else ())
    x = x.astype(dtype)
    for name in ROW_FUNCTIONS:
        result = call(name, x, axis=axis)
        check_type(result, dtype, shape if name in SOFTMAXES else without(shape, axis))
        want = scipy_reference(name, x, axis)
        if name == "softmax":
            # each probability to the dtype's relative precision (down to
            # what underflows: 1e-300 for float64, 1e-37 for float32)
            close(result, want, dtype, atol=1e-300 if dtype == np.float64 else 1e-37,
                  err_msg=name)
        else:
            close(result, want, dtype, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_row_is_shifted_by_its_own_maximum(backend, rng, dtype, threads):
    # Many rows, offset by thousands from one another, over several threads:
    # the compiled sweeps hand each row's maximum on from the previous row,
    # and a maximum taken from another row would overflow or underflow.
    x = rng.standard_normal((600, 300)) * 5 + rng.choice([0.0, -3000.0, 3000.0], size=(600, 1))
    x = x.astype(dtype)
    with fastxent.num_threads(threads):
        for name in ROW_FUNCTIONS:
            close(call(name, x), scipy_reference(name, x, -1), dtype, err_msg=name)


SPECIAL_VALUES = [0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 1e300, -1e300]
SPECIAL_ROWS = np.array(list(itertools.product(SPECIAL_VALUES, repeat=3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ROW_FUNCTIONS)
@pytest.mark.parametrize("transpose", [False, True], ids=["axis-1", "axis0"])
def test_infinities_and_nan_exactly_as_scipy(backend, dtype, name, transpose):
    # every row of three values from SPECIAL_VALUES: +-inf maxima, all -inf
    # rows, NaN anywhere, overflowing values (1e300 is inf in float32)
    with np.errstate(over="ignore"):
        x = SPECIAL_ROWS.astype(dtype)
    axis = -1
    if transpose:
        x, axis = x.T.copy(), 0
    with np.errstate(all="ignore"):
        result = call(name, x, axis=axis)
    want = scipy_reference(name, x, axis)
    assert np.array_equal(np.isnan(result), np.isnan(want)), \
        x[np.isnan(result) != np.isnan(want)] if not transpose else "NaN positions"
    finite = np.isfinite(want)
    np.testing.assert_array_equal(result[~finite], want[~finite])
    close(result[finite], want[finite], dtype, atol=1e-300 if dtype == np.float64 else 1e-37)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_analytic_values(backend, dtype):
    for c in (1, 3, 1000):
        for value in (-7.5, 88.0, -1e4):
            x = np.full((2, c), value, dtype=dtype)
            close(call("softmax", x), np.full((2, c), 1.0 / c), dtype)
            close(call("log_softmax", x), np.full((2, c), -np.log(c)), dtype)
            close(call("logsumexp", x), np.full(2, np.float64(dtype(value)) + np.log(c)), dtype)
    # softmax is invariant under a shift of the row; log_softmax shifts back
    x = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    e = np.exp([1.0, 2.0, 3.0])
    for shift in (0.0, 500.0, -500.0, 1e4):
        close(call("softmax", x + dtype(shift)), [e / e.sum()], dtype)
        close(call("logsumexp", x + dtype(shift)), [shift + np.log(e.sum())], dtype)
    # a dominant entry: probability 1 and exactly log-probability 0
    x = np.array([0.0, -1e4, -2e4], dtype=dtype)
    np.testing.assert_array_equal(call("softmax", x), np.array([1.0, 0.0, 0.0], dtype))
    np.testing.assert_array_equal(call("log_softmax", x), np.array([0.0, -1e4, -2e4], dtype))
    assert call("logsumexp", x) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one_and_match_log_softmax(backend, rng, dtype):
    x = (rng.standard_normal((50, 17)) * 10).astype(dtype)
    s = call("softmax", x)
    close(s.sum(axis=-1, dtype=np.float64), np.ones(50), dtype, rtol=RTOL[np.dtype(dtype)] * 10)
    close(s, np.exp(call("log_softmax", x).astype(np.float64)), dtype,
          rtol=RTOL[np.dtype(dtype)] * 10)
    close(call("logsumexp", x), np.log(np.exp(x.astype(np.float64)).sum(axis=-1)), dtype)


@pytest.mark.parametrize("n_classes", [7, 128, 1000, 5000])
def test_float32_softmax_within_a_few_ulp(backend, rng, n_classes):
    # Logits on a grid of 1/64 over [-100, 20]: x - max is exact in float32,
    # so every error left is the kernel's own (exp, sum, scaling), measured in
    # units in the last place of the float64 truth. Probabilities down to the
    # smallest normal float count; the ones that underflow must be 0 or tiny.
    x = (rng.integers(-6400, 1280, size=(16, n_classes)) / 64).astype(np.float32)
    x[:, 0] = x.max(axis=1) - 87.5  # one term of each row below exp's flush point
    p = call("softmax", x)
    truth = sp.softmax(x.astype(np.float64), axis=-1)
    normal = truth >= np.finfo(np.float32).tiny
    ulp = np.spacing(truth.astype(np.float32)).astype(np.float64)
    err_ulp = np.abs(p.astype(np.float64) - truth)[normal] / ulp[normal]
    assert err_ulp.max() <= 4, f"{err_ulp.max():.2f} ulp"
    assert np.all(np.abs(p[~normal]) <= np.finfo(np.float32).tiny)
    # log-sum-exp to within a few ulp of its size (the sum's rounding)
    lse = call("logsumexp", x).astype(np.float64)
    truth_lse = sp.logsumexp(x.astype(np.float64), axis=-1)
    assert np.all(np.abs(lse - truth_lse) <= 4 * np.spacing(np.abs(truth_lse).astype(np.float32)))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant <= 52,
                    reason="needs a long double wider than float64 for the reference")
@pytest.mark.parametrize("n_classes", [7, 1000])
def test_float64_softmax_within_a_few_ulp(backend, rng, n_classes):
    # As the float32 test, one precision up: logits on a grid of 2^-12 (exact
    # differences), the truth in long double (x86's 64-bit significand).
    x = rng.integers(-400000, 80000, size=(16, n_classes)) / 4096.0
    p = call("softmax", x)
    xl = x.astype(np.longdouble)
    e = np.exp(xl - xl.max(axis=1, keepdims=True))
    truth = e / e.sum(axis=1, keepdims=True)
    normal = truth >= np.finfo(np.float64).tiny
    ulp = np.spacing(truth.astype(np.float64)).astype(np.longdouble)
    err_ulp = (np.abs(p.astype(np.longdouble) - truth) / ulp)[normal]
    assert float(err_ulp.max()) <= 8, f"{float(err_ulp.max()):.2f} ulp"


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_a_vector_is_a_numpy_scalar(backend, dtype):
    x = np.array([1.0, 2.0, 3.0], dtype=dtype)
    result = call("logsumexp", x)
    check_type(result, dtype, ())
    close(result, sp.logsumexp([1.0, 2.0, 3.0]), dtype)
    result = call("logsumexp", x[:, None], axis=0)
    check_type(result, dtype, (1,))
    # a Python list computes in float64
    result = fastxent.logsumexp([1, 2, 3])
    check_type(result, np.float64, ())


@pytest.mark.parametrize("name", ROW_FUNCTIONS)
@pytest.mark.parametrize("in_dtype, out_dtype", [(np.int64, np.float64), (np.int8, np.float64),
                                                 (np.uint16, np.float64),
                                                 (np.float16, np.float16)],
                         ids=lambda d: np.dtype(d).name)
def test_result_dtype(backend, name, in_dtype, out_dtype):
    x = np.array([[1, 2, 3], [4, 4, 0]]).astype(in_dtype)
    result = call(name, x)
    assert result.dtype == out_dtype
    close(result, scipy_reference(name, x, -1), out_dtype)


# ---------------------------------------------------------------- out=


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("shape, axis", [((4, 6), -1), ((4, 6), 0), ((2, 3, 4), 1)],
                         ids=["axis-1", "axis0", "rank3-axis1"])
def test_out_is_returned_and_filled(backend, rng, dtype, name, shape, axis):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    want = scipy_reference(name, x, axis)
    strided = np.empty(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]
    for label, out in [("c", np.empty(shape, dtype)), ("fortran", np.empty(shape, dtype, "F")),
                       ("strided", strided)]:
        out[...] = np.nan
        result = call(name, x, axis=axis, out=out)
        assert result is out, label
        close(out, want, dtype, err_msg=label)


# =========================================================================== entropy and KL


def random_distributions(rng, shape, axis, dtype, zeros=True):
    p = rng.random(shape)
    if zeros:
        p[rng.random(shape) < 0.2] = 0.0
    total = p.sum(axis=axis, keepdims=True)
    return (p / np.where(total > 0, total, 1.0)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
def test_entropy_and_kl_match_scipy(backend, rng, dtype, shape, axis):
    p = random_distributions(rng, shape, axis, dtype)
    q = random_distributions(rng, shape, axis, dtype, zeros=False)
    for base in (None, 2):  # other bases: test_entropy_of_distributions_matches_scipy_stats
        h = call("entropy", p, axis=axis, base=base)
        check_type(h, dtype, without(shape, axis))
        close(h, entr_sum(p, axis, base), dtype, err_msg=f"entropy base={base}")
        kl = call("kl_divergence", p, q, axis=axis, base=base)
        check_type(kl, dtype, without(shape, axis))
        close(kl, rel_entr_sum(p, q, axis, base), dtype, err_msg=f"kl base={base}")


def test_entropy_of_distributions_matches_scipy_stats(backend, rng):
    # for normalised rows, scipy.stats.entropy (which renormalises) agrees
    p = random_distributions(rng, (6, 9), -1, np.float64)
    q = random_distributions(rng, (6, 9), -1, np.float64, zeros=False)
    for base in (None, 2, np.e, 10, 0.5):
        close(fastxent.entropy(p, base=base), scipy.stats.entropy(p, base=base, axis=-1),
              np.float64)
        close(fastxent.kl_divergence(p, q, base=base),
              scipy.stats.entropy(p, q, base=base, axis=-1), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_and_kl_analytic_values(backend, dtype):
    for c in (1, 2, 4, 1000):
        uniform = np.full((3, c), 1.0 / c, dtype=dtype)
        close(call("entropy", uniform), np.full(3, np.log(c)), dtype)
        close(call("entropy", uniform, base=2), np.full(3, np.log2(c)), dtype)
        close(call("kl_divergence", uniform, uniform), np.zeros(3), dtype)
    # a certain outcome: no entropy; 0 log 0 = 0
    assert call("entropy", np.array([0.0, 1.0, 0.0], dtype)) == 0
    # no renormalisation: entr(2) + entr(2) = -4 log 2
    close(call("entropy", np.array([2.0, 2.0], dtype)), -4 * np.log(2.0), dtype)
    # KL of a point mass: -log q_k
    close(call("kl_divergence", np.array([0.0, 1.0, 0.0], dtype),
               np.array([0.5, 0.25, 0.25], dtype)), np.log(4.0), dtype)
    close(call("kl_divergence", np.array([0.5, 0.5], dtype), np.array([0.25, 0.75], dtype),
               base=2), 0.5 * np.log2(2.0) + 0.5 * np.log2(2.0 / 3.0), dtype)


ENTROPY_VALUES = [0.0, -0.0, 0.25, 1.0, 3.0, -0.5, np.inf, -np.inf, np.nan, 1e-300, 1e300]


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_edge_values_as_scipy(backend, dtype):
    # entr: 0 at 0, -inf below 0 and at +inf, NaN stays NaN; rows of two values
    with np.errstate(over="ignore"):
        p = np.array(list(itertools.product(ENTROPY_VALUES, repeat=2))).astype(dtype)
    with np.errstate(all="ignore"):
        result = call("entropy", p)
        result_t = call("entropy", p.T.copy(), axis=0, base=2)
    want = entr_sum(p)
    close(result, want, dtype, atol=0)
    close(result_t, want / np.log(2), dtype, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_edge_values_as_scipy(backend, dtype):
    # rel_entr: 0 where p = 0 <= q, +inf where q = 0 < p or either is negative,
    # NaN where either is NaN
    values = [0.0, 0.25, 1.0, 3.0, -0.5, np.inf, np.nan]
    pairs = np.array(list(itertools.product(values, repeat=2)))
    p, q = pairs[:, :1].astype(dtype), pairs[:, 1:].astype(dtype)
    with np.errstate(all="ignore"):
        result = call("kl_divergence", p, q)
        result2 = call("kl_divergence", np.hstack([p, p]), np.hstack([q, q]))
    want = rel_entr_sum(p, q)
    close(result, want, dtype, atol=0)
    close(result2, 2 * want, dtype, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_infinite_where_q_is_zero(backend, dtype):
    p = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], dtype)
    q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype)
    np.testing.assert_array_equal(call("kl_divergence", p, q), np.array([np.inf, 0.0], dtype))


@pytest.mark.parametrize("p, q", [(1e10, 1e-300), (1.0, 1e-310), (0.5, 1e-320),
                                  (1e-320, 1e308), (1e300, 1e-10)],
                         ids=["big-ratio", "subnormal-q", "tiny-q", "tiny-ratio", "huge-p"])
def test_kl_with_an_extreme_ratio_is_finite_as_scipy(backend, p, q):
    # p / q overflows (or underflows) although p log(p / q) is finite: SciPy's
    # rel_entr gives the finite value
    want = sp.rel_entr(p, q)
    assert np.isfinite(want)
    got = fastxent.kl_divergence(np.array([p]), np.array([q]))
    close(got, want, np.float64)


def test_kl_broadcasts_and_promotes(backend, rng):
    p = random_distributions(rng, (5, 4), -1, np.float32)
    q = random_distributions(rng, (4,), -1, np.float64, zeros=False)
    kl = call("kl_divergence", p, q)
    assert kl.dtype == np.float64 and kl.shape == (5,)
    close(kl, rel_entr_sum(p, q[None, :]), np.float64)
    kl = call("kl_divergence", q, p, axis=-1)  # q broadcast as the first argument
    close(kl, rel_entr_sum(np.broadcast_to(q, p.shape), p), np.float64)
    # float32 with float32 stays float32; integers give float64
    assert call("kl_divergence", p, p).dtype == np.float32
    assert call("kl_divergence", np.array([1, 0]), np.array([1, 1])).dtype == np.float64
    assert call("entropy", np.array([1, 0])).dtype == np.float64
    assert call("entropy", np.array([0.5, 0.5], np.float16)).dtype == np.float32
    with pytest.raises(ValueError, match="p, q"):
        fastxent.kl_divergence(np.ones((3, 4)), np.ones((3, 5)))


@pytest.mark.parametrize("base", [0, 1, 1.0, -2, np.nan, -np.inf])
def test_bad_base_raises_value_error(backend, base):
    p = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="base"):
        fastxent.entropy(p, base=base)
    with pytest.raises(ValueError, match="base"):
        fastxent.kl_divergence(p, p, base=base)


# =========================================================================== empty class axis


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0,), -1), ((3, 0), -1), ((0, 3), 0),
                                         ((2, 0, 4), 1)], ids=str)
def test_reductions_over_an_empty_axis_as_scipy(backend, dtype, shape, axis):
    # sums over nothing: logsumexp = log 0 = -inf, entropy = KL = 0 (SciPy)
    x = np.zeros(shape, dtype=dtype)
    out_shape = without(shape, axis)
    lse = fastxent.logsumexp(x, axis=axis)
    check_type(lse, dtype, out_shape)
    np.testing.assert_array_equal(lse, sp.logsumexp(x.astype(np.float64), axis=axis))
    h = fastxent.entropy(x, axis=axis)
    check_type(h, dtype, out_shape)
    np.testing.assert_array_equal(h, np.zeros(out_shape))
    kl = fastxent.kl_divergence(x, x, axis=axis)
    check_type(kl, dtype, out_shape)
    np.testing.assert_array_equal(kl, np.zeros(out_shape))


# ====================================================================== layouts, threads, errors


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_divergence_of_several_blocks_on_two_threads_matches_scipy(backend, rng, dtype):
    # (that 1, 2 and 3 threads give the same bits: test_operations, over the registry)
    p = random_distributions(rng, (4000, 33), -1, dtype)
    q = random_distributions(rng, (4000, 33), -1, dtype, zeros=False)
    with fastxent.num_threads(2):
        two = fastxent.kl_divergence(p, q, base=2)
    close(two, rel_entr_sum(p, q, base=2), dtype)
