"""The log-sum-exp of rows whose classes come in blocks (fastxent._lse, shared
by fastxent.dask's class-chunked blocks and linear_cross_entropy's vocabulary
chunks): merged from per-block (max, sum of exps) pairs, whatever the split,
it is SciPy's log-sum-exp of the whole row, and np.logaddexp's of two blocks'
log-sum-exps, also where blocks hold -inf, +inf or NaN. (The absolute
tolerance: a log-sum-exp near 0 is max + log(sum) with a sum near 1.)"""

import numpy as np
import pytest
from scipy.special import logsumexp

from fastxent import _lse

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

SPECIAL = [-np.inf, np.inf, np.nan]


def whole_row(x):
    """SciPy's log-sum-exp of each row, with NaN for rows holding NaN (SciPy's
    result for them) and +inf for rows holding +inf but no NaN."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        want = logsumexp(x, axis=-1)
    holds_inf = np.isposinf(x).any(axis=-1) & ~np.isnan(x).any(axis=-1)
    return np.where(holds_inf, np.inf, want)


def merged(x, cuts):
    """The log-sum-exp of x's rows from the pairs of the blocks cut at `cuts`."""
    pairs = [_lse.exp_sums(block) for block in np.split(x, cuts, axis=-1)]
    maxima = np.stack([m for m, _ in pairs], axis=-1)
    sums = np.stack([s for _, s in pairs], axis=-1)
    return _lse.merge_logsumexp(maxima, sums)


def rows_with_blocks(rng, n_rows, n_classes, cuts):
    """Random rows where some blocks are all -inf, some hold +inf or NaN, and
    some elements are -inf: every mix of special blocks."""
    x = rng.standard_normal((n_rows, n_classes)) * 50
    edges = [0, *cuts, n_classes]
    for row in x:
        for start, stop in zip(edges[:-1], edges[1:]):
            roll = rng.random()
            if roll < 0.25:
                row[start:stop] = -np.inf
            elif roll < 0.35:
                row[rng.integers(start, stop)] = np.inf
            elif roll < 0.4:
                row[rng.integers(start, stop)] = np.nan
            elif roll < 0.6:
                row[rng.integers(start, stop)] = -np.inf
    return x


@pytest.mark.parametrize("seed", range(20))
def test_random_splits_give_the_whole_row(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(1, 40))
    n_cuts = int(rng.integers(0, n_classes))
    cuts = (
        sorted(rng.choice(np.arange(1, n_classes), size=min(n_cuts, n_classes - 1), replace=False))
        if n_classes > 1
        else []
    )
    x = rows_with_blocks(rng, 200, n_classes, cuts)
    np.testing.assert_allclose(merged(x, cuts), whole_row(x), rtol=1e-13, atol=1e-13)


def test_special_blocks_follow_the_whole_row():
    x = np.array(
        [
            [1.0, 2.0, -np.inf, -np.inf],  # a block of -inf adds nothing
            [-np.inf, -np.inf, -np.inf, -np.inf],  # every block -inf: -inf
            [-1000.0, -999.0, -np.inf, -np.inf],  # not even beside tiny maxima
            [0.5, np.inf, 1.0, 2.0],  # +inf: +inf
            [-np.inf, -np.inf, np.inf, 3.0],
            [0.5, np.nan, 1.0, np.inf],  # NaN: NaN
            [1e308, 1e308, 1e308, 1e308],  # no overflow before the log
        ]
    )
    np.testing.assert_array_equal(
        merged(x, [2]),
        [
            np.logaddexp(1.0, 2.0),
            -np.inf,
            np.logaddexp(-1000.0, -999.0),
            np.inf,
            np.inf,
            np.nan,
            1e308 + np.log(4.0),
        ],
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e300, 1e300), st.sampled_from(SPECIAL)), min_size=2, max_size=12
    ),
    st.data(),
)
def test_block_lses_merge_as_logaddexp(values, data):
    """Blocks given by their log-sum-exp (pairs (L, 1), as linear_cross_entropy's
    vocabulary chunks): the merge of two is np.logaddexp, of many its reduction."""
    lses = np.array(values)
    with np.errstate(invalid="ignore"):
        want = np.logaddexp.reduce(lses)
    np.testing.assert_allclose(_lse.merge_logsumexp(lses), want, rtol=1e-13, atol=1e-13)
    a, b = data.draw(st.sampled_from(values)), data.draw(st.sampled_from(values))
    with np.errstate(invalid="ignore"):
        want = np.logaddexp(a, b)
    np.testing.assert_allclose(_lse.merge_logsumexp(np.array([a, b])), want, rtol=1e-13, atol=1e-13)


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(1, 30),
        elements=st.one_of(st.floats(-700, 700), st.sampled_from(SPECIAL)),
    ),
    st.data(),
)
def test_any_split_of_a_row(row, data):
    cuts = (
        sorted(data.draw(st.sets(st.integers(1, max(1, row.size - 1)), max_size=row.size - 1)))
        if row.size > 1
        else []
    )
    np.testing.assert_allclose(
        merged(row[None], cuts), whole_row(row[None]), rtol=1e-13, atol=1e-13
    )
