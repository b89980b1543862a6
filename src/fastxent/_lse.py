"""The log-sum-exp of a row whose classes come in blocks, in one place.

Each block of a row gives a partial pair (m, s): its maximum and the sum of
exp(x - m) over its elements. The row's log-sum-exp is then

    log(sum_k s_k exp(m_k)) = top + log(sum_k s_k exp(m_k - top)),  top = max_k m_k,

whatever the split. fastxent.dask merges the pairs of class-chunked blocks so,
and linear_cross_entropy the log-sum-exp of its vocabulary chunks (a block's
log-sum-exp L is the pair (L, 1)).

Infinities follow the whole-row log-sum-exp: a block of -inf adds nothing
(its pair is (-inf, 0)), a +inf makes the row +inf, a NaN makes it NaN.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def exp_sums(x: ArrayLike, axis: int = -1) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The partial pairs (max, sum of exp(x - max)) of `x` along `axis`, in float64.

    A row of -inf gives (-inf, 0) and a row holding +inf gives (+inf, +inf):
    the shift is 0 where the maximum is not finite, so that no inf - inf
    makes a NaN the row does not hold.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        top = np.max(x, axis=axis, keepdims=True)
        shift = np.where(np.isfinite(top), top, 0.0)
        sums = np.sum(np.exp(x - shift), axis=axis)
    return np.squeeze(top, axis=axis), sums


def merge_logsumexp(maxima: ArrayLike, sums: ArrayLike = 1.0, axis: int = -1) -> NDArray[Any]:
    """The log-sum-exp of whole rows from their blocks' partial pairs.

    `maxima` and `sums` (broadcast together) hold one pair per block along
    `axis`; `sums` defaults to 1, for blocks given by their log-sum-exp.
    The result is float64, without `axis`.
    """
    maxima = np.asarray(maxima, dtype=np.float64)
    sums = np.broadcast_to(np.asarray(sums, dtype=np.float64), maxima.shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(maxima, axis=axis, keepdims=True)
        shift = np.where(np.isfinite(top), top, 0.0)
        total = np.sum(sums * np.exp(maxima - shift), axis=axis)
        lse: NDArray[Any] = np.squeeze(shift, axis=axis) + np.log(total)
    return lse
