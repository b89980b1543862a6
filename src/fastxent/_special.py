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
from ._kinds import Transform
from ._typing import ArrayLike, Axes, Float, FloatArray, FloatScalar, NDArray
from ._validate import (as_array, check_base, check_out, prepare_pair, prepare_rows,
                        result_dtype, signature_hints)


def reduction_axes(axis: Any, ndim: Any) -> Any:
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


def _single_axis(x_in: Any, axis: Any) -> Any:
    """The one axis to take the fast path along, or None when `axis` names
    several, none, or the input is 0-d."""
    if x_in.ndim == 0 or isinstance(axis, tuple) or axis is None and x_in.ndim != 1:
        return None
    return 0 if axis is None else axis


def _axes_last(x_in: Any, axes: Any) -> Any:
    """x_in with `axes` moved last and flattened into one: (moved, flat
    (rows, k)). A 0-d array is one row of one element when reduced over its
    (single, implicit) axis."""
    if x_in.ndim == 0:
        return x_in.reshape(1, 1), x_in.reshape(1, 1)
    rest = [a for a in range(x_in.ndim) if a not in axes]
    moved = np.transpose(x_in, rest + list(axes))
    k = math.prod(x_in.shape[a] for a in axes)
    return moved, moved.reshape(math.prod(x_in.shape[a] for a in rest), k)


def _axes_back(flat_result: Any, moved_shape: Any, axes: Any, ndim: Any) -> Any:
    """Undoes _axes_last on an N x C result: the caller's layout again."""
    if ndim == 0:
        return flat_result.reshape(())
    rest = [a for a in range(ndim) if a not in axes]
    order = np.argsort(rest + list(axes))
    return np.transpose(flat_result.reshape(moved_shape), order)


def _softmax(x: Any, *, axis: Any, out: Any, transform: Any) -> Any:
    x_in = as_array(x, "x")
    one = _single_axis(x_in, axis)
    if one is not None:
        rows, _ = prepare_rows(x_in, one, "x", want_result=True, out=out)
        _config.kernels().softmax_rows(rows, transform=transform,
                                       n_threads=_config.threads_for(rows.x.size))
        return rows.finish_result()
    # Several axes, all of them, or a 0-d input: the axes flattened into one.
    dtype = result_dtype(x_in, "x")
    axes = reduction_axes(axis, x_in.ndim)
    out_view = check_out(out, x_in, dtype, {"x": x_in}) if out is not None else None
    moved, flat = _axes_last(x_in, axes)
    rows, _ = prepare_rows(flat, -1, "x", want_result=True)
    _config.kernels().softmax_rows(rows, transform=transform,
                                   n_threads=_config.threads_for(rows.x.size))
    result = _axes_back(rows.result, moved.shape, axes, x_in.ndim)
    if out_view is None:
        return np.ascontiguousarray(result) if result.ndim else result
    np.copyto(out_view, result)  # through the base class: a subclass's copyto may lie
    return out


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
def softmax(x: ArrayLike, *, axis: Axes = -1, out: NDArray[Any] | None = None) -> Any:
    """exp(x) / sum(exp(x)) over `axis`, as scipy.special.softmax.

    axis: an int, a tuple of ints, or None for the whole array (SciPy's
    default is None; fastxent's is -1, the class axis). out may be x. An
    empty axis gives an empty array (as PyTorch).
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
def log_softmax(x: ArrayLike, *, axis: Axes = -1, out: NDArray[Any] | None = None) -> Any:
    """x - logsumexp(x) over `axis`, as scipy.special.log_softmax.

    axis: an int, a tuple of ints, or None for the whole array (SciPy's
    default is None; fastxent's is -1). out may be x. Where one element
    dominates its row, its result keeps its relative accuracy (-log1p of the
    others' sum, not 0). An empty axis gives an empty array (as PyTorch).
    """
    return _softmax(x, axis=axis, out=out, transform=Transform.LOG_SOFTMAX)


def _restore_reduced(values: Any, x_shape: Any, axes: Any, keepdims: Any) -> Any:
    """Per-row results of a reduction over `axes` in the caller's shape: the
    reduced axes removed, or kept with length 1 (a NumPy scalar for 0-d)."""
    kept = tuple(1 if a in axes else n for a, n in enumerate(x_shape))
    values = values.reshape(kept)
    if not keepdims:
        values = values.reshape(tuple(n for a, n in enumerate(x_shape) if a not in axes))
    return values[()]


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
) -> Any:
    """log(sum(b * exp(x))) over `axis`, as scipy.special.logsumexp.

    axis: an int, a tuple of ints, or None for the whole array (SciPy's
    default is None; fastxent's is -1). b: weights broadcastable to x, which
    may be negative or zero (a zero weight drops its term, even an infinite
    or NaN one). keepdims: keep the reduced axes with length 1.
    return_sign: return (log|sum|, sign of the sum); without it a negative
    sum gives NaN. An empty reduction gives -inf. Results near 0 keep
    their relative accuracy, as SciPy's (logsumexp([0, -40]) is 4.248e-18:
    log1p of the terms below a dominant maximum).
    """
    x_in = as_array(x, "x")
    dtype = result_dtype(x_in, "x")
    if b is not None:
        b_in = as_array(b, "b")
        dtype = np.promote_types(dtype, result_dtype(b_in, "b"))
        try:
            x_in, b_in = np.broadcast_arrays(x_in, b_in)
        except ValueError:
            raise ValueError(f"b: shape {b_in.shape} does not broadcast to x's {x_in.shape}") \
                from None
    axes = reduction_axes(axis, x_in.ndim)
    moved, flat = _axes_last(x_in, axes)
    if b is None and flat.shape[1] > 0:
        rows, _ = prepare_rows(flat, -1, "x")
        result = np.empty(rows.x.shape[0], rows.dtype)
        _config.kernels().logsumexp_rows(rows, out=result,
                                         n_threads=_config.threads_for(rows.x.size))
        sign = None
        if return_sign:  # a sum of exps is positive, or 0 when every term is -inf
            sign = np.where(result == -np.inf, 0.0, 1.0).astype(dtype)
            sign[np.isnan(result)] = np.nan
    else:
        weights = None if b is None else _axes_last(b_in, axes)[1]
        result, sign = _weighted_logsumexp(flat.astype(dtype), weights, dtype)
        if not return_sign:
            result[sign < 0] = np.nan
    result = _restore_reduced(result, x_in.shape, axes, keepdims)
    if return_sign:
        return result, _restore_reduced(sign, x_in.shape, axes, keepdims)
    return result


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
def entropy(p: ArrayLike, *, axis: Axes = -1, base: float | None = None) -> Any:
    """sum(scipy.special.entr(p)) over `axis`: -sum p log p, with 0 log 0 = 0.

    p is not renormalised. axis: an int, a tuple of ints, or None for the
    whole array. base: the logarithm's base (default e).
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
def kl_divergence(p: ArrayLike, q: ArrayLike, *, axis: Axes = -1, base: float | None = None) -> Any:
    """sum(scipy.special.rel_entr(p, q)) over `axis`: sum p log(p / q), with
    0 log(0 / q) = 0 and +inf where q = 0 < p. Neither is renormalised.
    axis: an int, a tuple of ints, or None for the whole (broadcast) arrays."""
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
