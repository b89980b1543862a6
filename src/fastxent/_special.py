"""Softmax, log-softmax, logsumexp, entropy and KL divergence (semantics of
scipy.special), over one axis, several or all.

One axis is the fast path: the classes moved last, the rows handed to the
fused kernels. A tuple of axes or ``axis=None`` moves those axes last and
flattens them into one, then takes the same path; ``logsumexp``'s weights
``b`` and signs (``return_sign``) run in NumPy, following SciPy's algorithm
for accuracy near 0.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Literal, overload

import numpy as np

from . import _config
from ._bridges import fill
from ._kinds import Transform
from ._typing import ArrayLike, Axes, Float, FloatArray, FloatScalar, NDArray, ScalarOrArray
from ._validate import (as_array, check_base, check_out, prepare_pair, prepare_rows,
                        result_dtype, signature_hints)


def reduction_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """The axes `axis` names (an int, a tuple of ints, or None for all) as a
    sorted tuple of non-negative ints, checked as NumPy checks them."""
    if axis is None:
        return tuple(range(ndim))
    many = isinstance(axis, tuple)
    axes = axis if many else (axis,)
    normalised = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)):
            raise TypeError(f"axis: expected an integer, a tuple of integers or None, got {axis!r}")
        try:
            a = operator.index(a)
        except TypeError:
            raise TypeError(
                f"axis: expected an integer, a tuple of integers or None, got {axis!r}") from None
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis: {a} is out of range for an array of {ndim} dimension(s)")
        normalised.append(a % max(ndim, 1))
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"axis: {axis!r} repeats an axis")
    return tuple(sorted(normalised))


def _single_axis(x_in: NDArray[Any], axis: Any) -> int | None:
    """The one axis to take the fast path along, or None when `axis` names
    several, none, or the input is 0-d."""
    if x_in.ndim == 0 or isinstance(axis, tuple) or axis is None and x_in.ndim != 1:
        return None
    return 0 if axis is None else axis


def _axes_last(x_in: NDArray[Any], axes: tuple[int, ...]) -> tuple[NDArray[Any], NDArray[Any]]:
    """x_in with `axes` moved last and flattened into one: (moved, flat
    (rows, k)). A 0-d array is one row of one element when reduced over its
    (single, implicit) axis."""
    if x_in.ndim == 0:
        return x_in.reshape(1, 1), x_in.reshape(1, 1)
    rest = [a for a in range(x_in.ndim) if a not in axes]
    moved = np.transpose(x_in, rest + list(axes))
    k = math.prod(x_in.shape[a] for a in axes)
    return moved, moved.reshape(math.prod(x_in.shape[a] for a in rest), k)


def _axes_back(flat_result: NDArray[Any], moved_shape: tuple[int, ...], axes: tuple[int, ...],
               ndim: int) -> NDArray[Any]:
    """Undoes _axes_last on an N x C result: the caller's layout again."""
    if ndim == 0:
        return flat_result.reshape(())
    rest = [a for a in range(ndim) if a not in axes]
    order = np.argsort(rest + list(axes))
    return np.transpose(flat_result.reshape(moved_shape), order)


def _softmax(x: ArrayLike, *, axis: Axes, out: NDArray[Any] | None, transform: Transform) -> NDArray[Any]:
    x_in = as_array(x, "x")
    one = _single_axis(x_in, axis)
    if one is not None:
        rows, _ = prepare_rows(x_in, one, "x", want_result=True, out=out, halves=True)
        _config.kernels().softmax_rows(rows, transform=transform,
                                       n_threads=_config.threads_for(rows.x.size))
        return rows.finish_result()
    # Several axes, all of them, or a 0-d input: the axes flattened into one.
    dtype = result_dtype(x_in, "x", halves=True)
    axes = reduction_axes(axis, x_in.ndim)
    out_view = check_out(out, x_in, dtype, {"x": x_in}) if out is not None else None
    moved, flat = _axes_last(x_in, axes)
    rows, _ = prepare_rows(flat, -1, "x", want_result=True, halves=True)
    _config.kernels().softmax_rows(rows, transform=transform,
                                   n_threads=_config.threads_for(rows.x.size))
    assert rows.result is not None  # want_result=True
    result = _axes_back(rows.result, moved.shape, axes, x_in.ndim)
    if out_view is None:
        return np.ascontiguousarray(result) if result.ndim else result
    np.copyto(out_view, result)  # through the base class: a subclass's copyto may lie
    return out  # type: ignore[return-value]  # not None: out_view is out's view


# What softmax and log_softmax share in their docstrings, written once.
_fill_normalising = fill(normalising="""
    Parameters
    ----------
    x : array_like
        Real numbers (float32, float64, float16, bfloat16 or integers), of any
        shape, 0-d included.
    axis : int, tuple of ints or None, default -1
        The axis to normalise over, several (taken together, as one), or None
        for the whole array. SciPy's default is None; fastxent's is -1, the
        class axis.
    out : ndarray, optional
        An array of the shape and dtype of the result to write it into, or `x`
        itself (in place). Returned as the result. Default: a new array.

    Returns
    -------
    ndarray
        The shape of `x` (an empty axis gives an empty array, as PyTorch), in
        the dtype of `x` (float16 and bfloat16 computed in float32 and rounded
        once), float64 for integer input.

    Raises
    ------
    TypeError
        An input that is not real numbers; an `axis` that is not an integer, a
        tuple of them or None (a bool included); an option passed positionally.
    ValueError
        An `axis` out of range or repeated.
    ValueError, TypeError
        A bad `out`: not an ndarray, or of another shape or dtype (``TypeError``
        for the type and dtype, ``ValueError`` for the shape, a read-only array or
        overlap with `x` that is not `x` itself).
""")


@overload
def softmax(
    x: NDArray[Float],
    *,
    axis: Axes = ...,
    out: NDArray[Float] | None = ...,
) -> NDArray[Float]: ...


@overload
def softmax(
    x: ArrayLike,
    *,
    axis: Axes = ...,
    out: NDArray[Any] | None = ...,
) -> FloatArray: ...


@signature_hints
@_fill_normalising
def softmax(
    x: ArrayLike, *, axis: Axes = -1, out: NDArray[Any] | None = None
) -> NDArray[np.floating[Any]]:
    r"""exp(x) / sum(exp(x)) over `axis`, as ``scipy.special.softmax``.

    {normalising}

    See Also
    --------
    log_softmax : The logarithm of softmax, accurately.
    logsumexp : The normaliser.
    scipy.special.softmax : The function this mirrors.

    Notes
    -----
    .. math::

        \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \quad m = \max_j x_j

    computed in one pass per row over the fused kernels for a single axis
    (several axes are moved last and flattened into one first).

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import softmax
    >>> x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    >>> np.round(fastxent.softmax(x), 4)
    array([[0.09  , 0.2447, 0.6652],
           [0.3333, 0.3333, 0.3333]], dtype=float32)
    >>> bool(np.allclose(fastxent.softmax(x, axis=None), softmax(x, axis=None)))
    True
    """
    return _softmax(x, axis=axis, out=out, transform=Transform.SOFTMAX)


@overload
def log_softmax(
    x: NDArray[Float],
    *,
    axis: Axes = ...,
    out: NDArray[Float] | None = ...,
) -> NDArray[Float]: ...


@overload
def log_softmax(
    x: ArrayLike,
    *,
    axis: Axes = ...,
    out: NDArray[Any] | None = ...,
) -> FloatArray: ...


@signature_hints
@_fill_normalising
def log_softmax(
    x: ArrayLike, *, axis: Axes = -1, out: NDArray[Any] | None = None
) -> NDArray[np.floating[Any]]:
    r"""x - logsumexp(x) over `axis`, as ``scipy.special.log_softmax``.

    {normalising}

    See Also
    --------
    softmax : The exponential of log_softmax.
    logsumexp : The normaliser.
    scipy.special.log_softmax : The function this mirrors.

    Notes
    -----
    .. math::

        \operatorname{log\_softmax}(x)_i = x_i - \log \sum_j e^{x_j}

    computed in one pass per row over the fused kernels for a single axis
    (several axes are moved last and flattened into one first).
    Where one element dominates its row, its result keeps its relative
    accuracy (``-log1p`` of the others' sum, not 0), as SciPy's.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import log_softmax
    >>> x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    >>> np.round(fastxent.log_softmax(x), 4)
    array([[-2.4076, -1.4076, -0.4076],
           [-1.0986, -1.0986, -1.0986]])
    >>> bool(np.allclose(fastxent.log_softmax(x, axis=0), log_softmax(x, axis=0)))
    True

    Where one element dominates, its result keeps its relative accuracy:

    >>> float(fastxent.log_softmax(np.array([0.0, -40.0]))[0])
    -4.248354255291589e-18
    """
    return _softmax(x, axis=axis, out=out, transform=Transform.LOG_SOFTMAX)


def _restore_reduced(values: NDArray[Any], x_shape: tuple[int, ...], axes: tuple[int, ...],
                     keepdims: bool) -> ScalarOrArray:
    """Per-row results of a reduction over `axes` in the caller's shape: the
    reduced axes removed, or kept with length 1 (a NumPy scalar for 0-d)."""
    kept = tuple(1 if a in axes else n for a, n in enumerate(x_shape))
    values = values.reshape(kept)
    if not keepdims:
        values = values.reshape(tuple(n for a, n in enumerate(x_shape) if a not in axes))
    restored: ScalarOrArray = values[()]
    return restored


@overload
def logsumexp(
    x: NDArray[Float],
    *,
    axis: Axes = ...,
    b: None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
) -> Float | NDArray[Float]: ...


@overload
def logsumexp(
    x: NDArray[Float],
    *,
    axis: Axes = ...,
    b: None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
) -> tuple[Float | NDArray[Float], Float | NDArray[Float]]: ...


@overload
def logsumexp(
    x: ArrayLike,
    *,
    axis: Axes = ...,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
) -> FloatScalar | FloatArray: ...


@overload
def logsumexp(
    x: ArrayLike,
    *,
    axis: Axes = ...,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
) -> tuple[FloatScalar | FloatArray, FloatScalar | FloatArray]: ...


@signature_hints
def logsumexp(
    x: ArrayLike,
    *,
    axis: Axes = -1,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
) -> ScalarOrArray | tuple[ScalarOrArray, ScalarOrArray]:
    r"""``log(sum(b * exp(x)))`` over `axis`, as ``scipy.special.logsumexp``.

    Parameters
    ----------
    x : array_like
        Real numbers of any shape, 0-d included.
    axis : int, tuple of ints or None, default -1
        The axis to reduce, several, or None for the whole array. SciPy's
        default is None; fastxent's is -1.
    b : array_like, optional
        Weights broadcastable to `x`; they may be negative or zero (a zero
        weight drops its term, even an infinite or NaN one). The dtype of the
        result is then that of `x` and `b` promoted together.
    keepdims : bool, default False
        Keep the reduced axes, with length 1.
    return_sign : bool, default False
        Return ``(log|sum|, sign of the sum)``; without it a negative sum gives
        NaN.

    Returns
    -------
    res : numpy scalar or ndarray
        The shape of `x` without the reduced axes (a NumPy scalar when none
        remains), in the dtype of `x` (float16 and bfloat16 computed in float32
        and rounded once; with `b`, float32), float64 for integer input. An
        empty reduction gives -inf.
    sgn : numpy scalar or ndarray
        Only with ``return_sign=True``: the sign of each sum (1, 0 or -1; NaN
        where `res` is NaN), like `res`.

    Raises
    ------
    TypeError
        An input that is not real numbers; a bad `axis`; an option passed
        positionally.
    ValueError
        An `axis` out of range or repeated; a `b` that does not broadcast to `x`.

    See Also
    --------
    log_softmax : ``x - logsumexp(x)``.
    scipy.special.logsumexp : The function this mirrors.

    Notes
    -----
    With :math:`m = \max_j x_j`,

    .. math::

        \operatorname{logsumexp}(x) = m + \log \sum_j b_j e^{x_j - m}.

    The terms at the maximum are set apart and the rest enter through
    ``log1p``, so that results near 0 keep their relative accuracy, as SciPy's
    (``logsumexp([0, -40])`` is 4.248e-18, where PyTorch gives 0). Without `b`,
    one axis runs on the fused kernels; with `b` or signs the computation is
    SciPy's algorithm in NumPy.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import logsumexp
    >>> x = np.array([[1.0, 2.0, 3.0], [-1000.0, -1000.0, 0.0]])
    >>> np.round(fastxent.logsumexp(x), 4)
    array([3.4076, 0.    ])
    >>> bool(np.allclose(fastxent.logsumexp(x, axis=None), logsumexp(x)))
    True
    >>> res, sgn = fastxent.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> round(float(res), 4), float(sgn)
    (1.5413, -1.0)
    >>> float(fastxent.logsumexp(np.array([0.0, -40.0])))
    4.248354255291589e-18
    """
    x_in = as_array(x, "x")
    dtype = result_dtype(x_in, "x", halves=True)
    if b is not None:
        b_in = as_array(b, "b")
        dtype = np.promote_types(result_dtype(x_in, "x"), result_dtype(b_in, "b"))
        try:
            x_in, b_in = np.broadcast_arrays(x_in, b_in)
        except ValueError:
            raise ValueError(f"b: shape {b_in.shape} does not broadcast to x's {x_in.shape}") \
                from None
    axes = reduction_axes(axis, x_in.ndim)
    moved, flat = _axes_last(x_in, axes)
    if b is None and flat.shape[1] > 0:
        rows, _ = prepare_rows(flat, -1, "x", halves=True)
        result = np.empty(rows.x.shape[0], rows.compute_dtype)
        _config.kernels().logsumexp_rows(rows, out=result,
                                         n_threads=_config.threads_for(rows.x.size))
        result = result.astype(dtype, copy=False)  # float16, bfloat16: rounded once
        sign = None
        if return_sign:  # a sum of exps is positive, or 0 when every term is -inf
            sign = np.where(result == -np.inf, 0.0, 1.0).astype(dtype)
            sign[np.isnan(result)] = np.nan
    else:
        weights = None if b is None else _axes_last(b_in, axes)[1]
        result, sign = _weighted_logsumexp(flat.astype(dtype), weights, dtype)
        if not return_sign:
            result[sign < 0] = np.nan
    reduced = _restore_reduced(result, x_in.shape, axes, keepdims)
    if return_sign and sign is not None:  # sign is computed whenever return_sign
        return reduced, _restore_reduced(sign, x_in.shape, axes, keepdims)
    return reduced


def _weighted_logsumexp(x: Any, b: Any, dtype: Any) -> Any:
    """(log|sum_j b_j exp(x_j)|, sign of the sum) of each row of x, in NumPy.

    The terms at the row's maximum M are set apart: with m their summed
    weight and s the others' sum of b exp(x - M), the result is
    M + log|m| + log1p(s / m), accurate where it is near 0 (SciPy gh-18295).
    """
    n_rows = x.shape[0]
    if x.shape[1] == 0:
        return np.full(n_rows, -np.inf, dtype), np.zeros(n_rows, dtype)
    b = np.ones_like(x) if b is None else b.astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.where(b == 0, -np.inf, x)  # a zero weight drops its term
        top = x.max(axis=1, keepdims=True)
        at_top = x == top
        m = np.where(at_top, b, 0).sum(axis=1, keepdims=True)
        shifted = np.where(at_top, -np.inf, x) - np.where(np.isfinite(top), top, 0)
        s = (b * np.exp(shifted)).sum(axis=1, keepdims=True)
        ratio = np.where(s == 0, s, s / m)
        sign = np.sign(ratio + 1) * np.sign(m)
        ratio = np.where(ratio < -1, -ratio - 2, ratio)
        result = np.log1p(ratio) + np.log(np.abs(m)) + top
        # Infinite results: the direct formula follows IEEE's rules for them.
        direct = (b * np.exp(x)).sum(axis=1, keepdims=True)
        infinite = ~np.isfinite(result)
        result = np.where(infinite, np.log(np.abs(direct)), result)
        sign = np.where(infinite, np.sign(direct), sign)
    return result.reshape(n_rows).astype(dtype), sign.reshape(n_rows).astype(dtype)


def _entropy_sum(rows: Any, *, q: Any, base: Any) -> Any:
    log_base = check_base(base)
    result = np.empty(rows.x.shape[0], rows.dtype)
    _config.kernels().entropy_rows(rows, q=q, out=result,
                                   n_threads=_config.threads_for(rows.x.size))
    if log_base is not None:
        result /= rows.dtype.type(log_base)
    return result


@overload
def entropy(
    p: NDArray[Float],
    *,
    axis: Axes = ...,
    base: float | None = ...,
) -> Float | NDArray[Float]: ...


@overload
def entropy(
    p: ArrayLike,
    *,
    axis: Axes = ...,
    base: float | None = ...,
) -> FloatScalar | FloatArray: ...


@signature_hints
def entropy(p: ArrayLike, *, axis: Axes = -1, base: float | None = None) -> ScalarOrArray:
    r"""The entropy ``-sum(p * log(p))`` over `axis`: the sum of
    ``scipy.special.entr(p)``.

    Parameters
    ----------
    p : array_like
        Probabilities (or any non-negative weights: `p` is not renormalised),
        real numbers of any shape.
    axis : int, tuple of ints or None, default -1
        The axis to sum over, several, or None for the whole array.
    base : float, optional
        The logarithm's base (positive, not 1). Default: e (nats).

    Returns
    -------
    numpy scalar or ndarray
        The shape of `p` without the reduced axes (a NumPy scalar when none
        remains), in the dtype rule of the losses (float32 for float32 and
        float16 input, float64 otherwise).

    Raises
    ------
    TypeError
        An input that is not real numbers; a bad `axis`; a `base` that is not a
        number (a string included).
    ValueError
        An `axis` out of range or repeated; a `base` that is not positive or is 1.

    See Also
    --------
    kl_divergence : The relative entropy of two distributions.
    scipy.special.entr : The elementwise term.
    scipy.stats.entropy : Which also renormalises `p`.

    Notes
    -----
    .. math::

        H(p) = -\sum_i p_i \log p_i, \qquad 0 \log 0 = 0,

    divided by :math:`\log b` for a base :math:`b`. A negative :math:`p_i`
    gives :math:`-\infty`, as ``entr``.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import entr
    >>> p = np.array([[0.5, 0.5, 0.0], [0.7, 0.2, 0.1]])
    >>> np.round(fastxent.entropy(p), 4)
    array([0.6931, 0.8018])
    >>> bool(np.allclose(fastxent.entropy(p), entr(p).sum(axis=-1)))
    True
    >>> float(fastxent.entropy([0.5, 0.5], base=2))
    1.0
    """
    p_in = as_array(p, "p")
    one = _single_axis(p_in, axis)
    if one is not None:
        rows, _ = prepare_rows(p_in, one, "p")
        return rows.per_row(_entropy_sum(rows, q=None, base=base))
    axes = reduction_axes(axis, p_in.ndim)
    rows, _ = prepare_rows(_axes_last(p_in, axes)[1], -1, "p")
    return _restore_reduced(_entropy_sum(rows, q=None, base=base), p_in.shape, axes, False)


@overload
def kl_divergence(
    p: NDArray[Float],
    q: NDArray[Float],
    *,
    axis: Axes = ...,
    base: float | None = ...,
) -> Float | NDArray[Float]: ...


@overload
def kl_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: Axes = ...,
    base: float | None = ...,
) -> FloatScalar | FloatArray: ...


@signature_hints
def kl_divergence(
    p: ArrayLike, q: ArrayLike, *, axis: Axes = -1, base: float | None = None
) -> ScalarOrArray:
    r"""The relative entropy ``sum(p * log(p / q))`` over `axis`: the sum of
    ``scipy.special.rel_entr(p, q)``.

    Parameters
    ----------
    p, q : array_like
        Distributions (neither is renormalised), real numbers of shapes that
        broadcast together.
    axis : int, tuple of ints or None, default -1
        The axis to sum over, several, or None for the whole (broadcast) arrays.
    base : float, optional
        The logarithm's base (positive, not 1). Default: e (nats).

    Returns
    -------
    numpy scalar or ndarray
        The broadcast shape without the reduced axes (a NumPy scalar when none
        remains), in float32 when both inputs compute in float32, else float64.

    Raises
    ------
    TypeError
        Inputs that are not real numbers; a bad `axis` or `base`.
    ValueError
        Shapes that do not broadcast; an `axis` out of range or repeated; a
        `base` that is not positive or is 1.

    See Also
    --------
    entropy : The entropy of one distribution.
    scipy.special.rel_entr : The elementwise term.

    Notes
    -----
    .. math::

        D(p \,\|\, q) = \sum_i p_i \log \frac{p_i}{q_i},

    with :math:`0 \log(0 / q) = 0` and :math:`+\infty` where
    :math:`q_i = 0 < p_i`, as ``rel_entr``; divided by :math:`\log b` for a base
    :math:`b`.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import rel_entr
    >>> p = np.array([0.5, 0.5, 0.0])
    >>> q = np.array([0.25, 0.25, 0.5])
    >>> float(fastxent.kl_divergence(p, q, base=2))
    1.0
    >>> bool(np.isclose(fastxent.kl_divergence(p, q), rel_entr(p, q).sum()))
    True
    >>> float(fastxent.kl_divergence([1.0, 0.0], [0.0, 1.0]))
    inf
    """
    p_in, q_in = as_array(p, "p"), as_array(q, "q")
    result_dtype(p_in, "p"), result_dtype(q_in, "q")  # the kind of array first, as prepare_pair
    try:
        shape = np.broadcast_shapes(p_in.shape, q_in.shape)
    except ValueError:
        raise ValueError(f"p, q: shapes {p_in.shape} and {q_in.shape} do not broadcast") from None
    one = _single_axis(np.empty(shape, dtype=[]), axis)
    if one is not None:
        rows, q_flat = prepare_pair(p_in, q_in, one)
        return rows.per_row(_entropy_sum(rows, q=q_flat, base=base))
    axes = reduction_axes(axis, len(shape))
    p_b, q_b = np.broadcast_to(p_in, shape), np.broadcast_to(q_in, shape)
    rows, q_flat = prepare_pair(_axes_last(p_b, axes)[1], _axes_last(q_b, axes)[1], -1)
    return _restore_reduced(_entropy_sum(rows, q=q_flat, base=base), shape, axes, False)
