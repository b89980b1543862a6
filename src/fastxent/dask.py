"""fastxent's losses and building blocks on ``dask.array``: chunked, lazy, on
any Dask scheduler (threads, processes, a ``dask.distributed`` cluster).

Needs ``pip install "fastxent[dask]"``. Every function takes dask arrays (NumPy
arrays are wrapped, chunked like their partner) with the options and semantics
of the in-memory function of the same name, and returns dask arrays: nothing
is computed until you call ``.compute()`` (or ``dask.compute(loss, grad)``,
which reads the logits once for both).

* Chunks along the rows: each block goes through the fused kernel, which
  returns the block's (loss sum, mean denominator); a tree reduction adds them
  and divides once. The result equals the in-memory call within float64
  rounding, and has the same bits for the same chunking whatever the
  scheduler or the number of workers.
* Chunks along the class axis too (a vocabulary split across workers): each
  block gives per row (max, sum of exponentials, target terms), merged in
  class order by the log-sum-exp rule; the gradient is a second map over the
  blocks. No task ever holds a whole row of logits.
* A bad input found in a block (a class label out of range, a probability
  outside [0, 1]) raises the in-memory call's exception, naming its position
  in the whole array, when the result is computed.

To run on a cluster, connect a client first; the functions do not change::

    from dask.distributed import Client
    client = Client("tcp://scheduler-host:8786")   # or Client() for a local one
    loss = fastxent.dask.cross_entropy(logits, labels).compute()

Differences from the in-memory functions: no ``out=`` (dask arrays are
immutable); ``weight`` of the class losses is an in-memory array (one per
class); the gradient of a ``"mean"`` loss needs the mean's denominator, which
for class labels is one light pass over the labels alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, TypeAlias, cast

import dask
import dask.array as da
import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _logits, _partials, _probs, _special
from . import sklearn as _sklearn
from ._bridges import Reduction, fill
from ._validate import (
    IGNORE_INDEX_DEFAULT,
    as_array,
    class_axis,
    check_axis,
    check_ignore_index,
    check_label_smoothing,
    check_reduction,
    reduce_loss,
    result_dtype,
)

# Types of the annotations: dask ships annotations too incomplete for mypy's
# strict mode, so pyproject.toml has mypy take dask.array.Array as Any.
Block: TypeAlias = NDArray[Any]  # one block of a dask array, in a task
BlockInfo: TypeAlias = Any  # map_blocks's block_info: a dict of the block's place
Options: TypeAlias = dict[str, Any]  # the class losses' options, per block
DaskArrayLike: TypeAlias = "da.Array | ArrayLike"  # in-memory arrays are wrapped

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "entropy",
    "kl_divergence",
    "log_loss",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "nll_loss_with_grad",
    "softmax",
]


# --------------------------------------------------------------------------- inputs


def _as_dask(value: DaskArrayLike, name: str, chunks: Any = None) -> da.Array:
    """value as a dask array; an in-memory array is wrapped with `chunks`."""
    if isinstance(value, da.Array):
        if any(math.isnan(n) for c in value.chunks for n in c):
            raise ValueError(f"{name}: unknown chunk sizes; call {name}.compute_chunk_sizes() "
                             "first")
        return value
    arr = as_array(value, name)
    return da.from_array(arr, chunks=chunks if chunks is not None else "auto")


def _check_dtype(arr: Any, name: str) -> np.dtype[Any]:
    """result_dtype for an array or a dask array (both have .dtype)."""
    return result_dtype(arr, name)


def _origin(block_info: BlockInfo, i: int = 0) -> tuple[int, ...]:
    """Index of the block's first element in the whole array."""
    return tuple(start for start, _ in block_info[i]["array-location"])


def _first(packed: tuple[Block, Block]) -> Block:
    return packed[0]


def _second(packed: tuple[Block, Block]) -> Block:
    return packed[1]


def _unpack(packed: da.Array, dtype: np.dtype[Any],
            loss_chunks: tuple[tuple[int, ...], ...]) -> tuple[da.Array, da.Array]:
    """(loss pieces, grad) of a map whose blocks are (loss piece, grad) pairs:
    one task computes both, from one read of the block. (The pieces keep every
    axis: a dropped axis would make dask concatenate the pairs.)"""
    grad = packed.map_blocks(_second, dtype=dtype, meta=np.empty((0,) * packed.ndim, dtype))
    pieces = packed.map_blocks(_first, dtype=np.float64, chunks=loss_chunks)
    return pieces, grad


def _ones(chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    """Chunks of one element per block, for per-block partial results."""
    return tuple((1,) * len(c) for c in chunks)


def _finish(total: Block, *, reduction: str, dtype: np.dtype[Any]) -> Block:
    """A reduced loss from its [sum, denominator] in float64, as in memory."""
    return np.asarray(reduce_loss(reduction, dtype, total[0], total[1]))


def _reduce(parts: da.Array, reduction: str, dtype: np.dtype[Any]) -> da.Array:
    """The 0-d loss from per-block [sum, denominator] parts (the last axis):
    a tree reduction over the blocks, fixed by the chunking."""
    return _finalize(parts.sum(axis=tuple(range(parts.ndim - 1)), dtype=np.float64),
                     reduction, dtype)


def _finalize(total: da.Array, reduction: str, dtype: np.dtype[Any]) -> da.Array:
    """The 0-d loss from a (2,) dask array [sum, denominator]."""
    return da.blockwise(partial(_finish, reduction=reduction, dtype=dtype), "", total, "i",
                        dtype=dtype, concatenate=True)


_ONE = da.from_array(np.float64(1.0))  # the denominator of a "sum"


def _sum_over_blocks(parts: da.Array) -> da.Array:
    """0-d float64 sum of per-block values, by a tree reduction fixed by the chunking."""
    return parts.sum(dtype=np.float64)


# The documentation the functions share (numpydoc sections, put in place by fill).
_fill = fill(
    lazy="""
        Nothing is computed until the result is: ``.compute()``, or
        ``dask.compute(loss, grad)``, which reads each block once for both.""",
    class_options="""
        weight : array_like of shape (C,), optional
            A weight per class (an in-memory array).
        ignore_index : int, default -100
            A class index whose samples count for nothing (class indices only).
        reduction : {"mean", "sum", "none"}, default "mean"
            ``"none"``: the per-sample losses, chunked like the rows;
            ``"sum"``; ``"mean"``: divided by the summed weights of the counted
            samples.""",
    axis="""
        axis : int, optional
            The class axis; by default the last for rank <= 2, and for higher
            ranks the one the target's shape tells (an ambiguous shape raises:
            pass ``axis=1``, PyTorch's layout, or ``axis=-1``), as in memory.""",
    class_raises="""
        ValueError, TypeError
            At once, for bad shapes, dtypes and options, and for chunks of
            unknown size.
        IndexError
            When computed, for a class label outside [0, C) that is not
            `ignore_index` (its position in the whole array named).""",
    binary_weight="""
        weight : dask.array.Array or array_like, optional
            Broadcast to the input: a weight per element.""",
    binary_reduction="""
        reduction : {"mean", "sum", "none"}, default "mean"
            ``"none"``: the elementwise losses, chunked like the input.""",
    binary_raises="""
        ValueError, TypeError
            At once, for bad shapes, dtypes and options; when computed, for a
            target (or probability) outside [0, 1], its position named.""",
    exactness="""
        Each block goes through the fused kernel, which returns its (loss sum,
        mean denominator) in float64; a tree reduction fixed by the chunking
        adds them, and the mean divides once: the in-memory call's value within
        float64 rounding, the same bits for the same chunking on any scheduler.
        Blocks split along the class axis are merged by the log-sum-exp rule:
        no task holds a whole row.""",
)


# --------------------------------------------------------------------------- class losses


def _class_inputs(scores: DaskArrayLike, target: DaskArrayLike, weight: Any,
                  ignore_index: int, reduction: str, label_smoothing: float, axis: int | None,
                  name: str, allow_probabilities: bool
                  ) -> tuple[da.Array, da.Array, bool, np.dtype[Any], str, int, Options]:
    """Checks the arguments as the in-memory call does; returns the scores and
    the target as dask arrays with the classes last, chunked alike."""
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    check_ignore_index(ignore_index)  # kept as given: the default is told apart (`is`)
    x = _as_dask(scores, name)
    dtype = _check_dtype(x, name)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension (the classes), got a 0-d array")
    t = target if isinstance(target, da.Array) else as_array(target, "target")
    axis = check_axis(class_axis(axis, x.shape, t, name), x.ndim, name)
    n_classes = x.shape[axis]
    if n_classes == 0:
        raise ValueError(f"{name}: the class axis {axis} of shape {x.shape} has length 0")
    batch_shape = x.shape[:axis] + x.shape[axis + 1:]
    x = da.moveaxis(x, axis, -1)
    t_dtype = t.dtype
    if t_dtype.kind in "iu":
        if t.shape != batch_shape:
            raise ValueError(
                f"target: class indices must have shape {batch_shape} (input {tuple(x.shape)} "
                f"without axis {axis}), got {t.shape}")
        t = _as_dask(t, "target", chunks=x.chunks[:-1]).rechunk(x.chunks[:-1])
        is_index = True
    elif t_dtype.kind == "f" and allow_probabilities:
        shape = x.shape[:axis] + (n_classes,) + batch_shape[axis:]
        if t.shape != shape:
            as_labels = t.shape == batch_shape
            raise (TypeError if as_labels else ValueError)(
                f"target: class probabilities must have the shape of {name} {shape}, "
                f"got {t.shape} of dtype {t.dtype}"
                + ("; class indices must be an integer array" if as_labels else ""))
        if ignore_index is not IGNORE_INDEX_DEFAULT:
            raise ValueError(  # as in memory: PyTorch's refusal
                f"ignore_index: {ignore_index} given, but ignore_index is not supported for "
                "floating point target (class probabilities)")
        t = da.moveaxis(_as_dask(t, "target"), axis, -1).rechunk(x.chunks)
        is_index = False
    else:
        raise TypeError("target: expected integer class indices"
                        + (" or float probabilities" if allow_probabilities else "")
                        + f", got dtype {t_dtype}")
    if weight is not None:
        weight = as_array(weight, "weight")
        result_dtype(weight, "weight")
        if weight.shape != (n_classes,):
            raise ValueError(f"weight: expected one weight per class, shape ({n_classes},), "
                             f"got {weight.shape}")
        weight = weight.astype(dtype)
    options = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    return x, t, is_index, dtype, reduction, axis, options


def _row_target(t: da.Array, is_index: bool) -> da.Array:
    """The target as a block argument beside the scores: labels get a class
    axis of length 1, which broadcasts over the class blocks."""
    return t[..., None] if is_index else t


def _denominator_block(t: Block, *, n_classes: int, weight: Block | None, ignore_index: int,
                       block_info: BlockInfo = None) -> Block:
    value = _partials.class_denominator(t, n_classes, weight=weight, ignore_index=ignore_index,
                                        origin=_origin(block_info))
    return np.full((1,) * t.ndim, value)


def _denominator(t: da.Array, is_index: bool, n_classes: int, options: Options) -> da.Array:
    """The 0-d mean denominator of the whole problem, from the target alone
    (the class labels checked on the way)."""
    if not is_index:  # probabilities: the mean is over the samples
        return da.from_array(np.float64(math.prod(t.shape[:-1])))
    parts = t.map_blocks(
        partial(_denominator_block, n_classes=n_classes, weight=options["weight"],
                ignore_index=options["ignore_index"]),
        chunks=_ones(t.chunks), dtype=np.float64)
    return _sum_over_blocks(parts)


def _fused_block(x: Block, t: Block, *, is_index: bool, log_probs: bool, reduction: str,
                 options: Options, block_info: BlockInfo = None) -> Block:
    """A block's [loss sum, denominator], or its per-row losses ("none")."""
    target = t[..., 0] if is_index else t
    origin = _origin(block_info)[:-1]
    if reduction == "none":
        fn: Callable[..., Block] = _probs.nll_loss if log_probs else _logits.cross_entropy
        kwargs = dict(options, reduction="none")
        if log_probs:
            kwargs.pop("label_smoothing")
        with _partials.located(origin):
            return fn(x, target, **kwargs)
    parts = _partials.class_loss_parts(x, target, log_probs=log_probs, origin=origin, **options)
    return np.array([parts.loss_sum, parts.denominator]).reshape((1,) * (x.ndim - 1) + (2,))


def _fused_block_with_grad(x: Block, t: Block, scale: Any, *, is_index: bool, log_probs: bool,
                           reduction: str, options: Options,
                           block_info: BlockInfo = None) -> tuple[Block, Block]:
    """(loss piece, gradient) of a block in one kernel call; the gradient of the
    sum is scaled by the whole problem's 1 / denominator for a mean."""
    target = t[..., 0] if is_index else t
    origin = _origin(block_info)[:-1]
    if reduction == "none":
        fn = _probs.nll_loss_with_grad if log_probs else _logits.cross_entropy_with_grad
        kwargs = dict(options, reduction="none")
        if log_probs:
            kwargs.pop("label_smoothing")
        with _partials.located(origin):
            loss, grad = fn(x, target, **kwargs)
        return loss[..., None], grad
    parts = _partials.class_loss_parts(x, target, log_probs=log_probs, origin=origin,
                                       want_grad=True, **options)
    grad = cast(Block, parts.grad)  # asked for (want_grad)
    if reduction == "mean":
        grad *= grad.dtype.type(scale)
    return np.array([parts.loss_sum]).reshape((1,) * (x.ndim - 1) + (1,)), grad


def _stats_block(x: Block, t: Block, *, is_index: bool, n_classes: int, options: Options,
                 block_info: BlockInfo = None) -> Block:
    """Per row of a class block: (max, sum of exp(x - max), A, B) in float64,
    where the row's loss is A * logsumexp - B over the whole row (A, B: the
    block's share of sum_c w_c q_c and sum_c w_c q_c x_c, q the smoothed
    target)."""
    c0, c1 = block_info[0]["array-location"][-1]
    origin = _origin(block_info)[:-1]
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x64, axis=-1)
        s = np.sum(np.exp(x64 - m[..., None]), axis=-1)
    coef = _target_coefficients(t, c0, c1, is_index, n_classes, options, origin)
    with np.errstate(invalid="ignore"):
        a = np.sum(coef, axis=-1)
        b = np.sum(np.where(coef != 0, coef * x64, 0.0), axis=-1)
    return np.stack([m, s, a, b], axis=-1)[..., None, :]


def _target_coefficients(t: Block, c0: int, c1: int, is_index: bool, n_classes: int,
                         options: Options, origin: tuple[int, ...]) -> Block:
    """w_c q_c for the classes [c0, c1) of each row (q: the smoothed target)."""
    eps = options["label_smoothing"]
    w = options["weight"]
    w_block = np.ones(c1 - c0) if w is None else np.asarray(w[c0:c1], np.float64)
    if is_index:
        labels = t[..., 0]
        if c0 == 0:  # one block per row checks the labels
            _partials.class_denominator(labels, n_classes, ignore_index=options["ignore_index"],
                                        origin=origin)
        counted = labels != options["ignore_index"]
        coef = np.zeros(labels.shape + (c1 - c0,))
        coef += (eps / n_classes) * w_block
        inside = counted & (labels >= c0) & (labels < c1)
        rows = np.nonzero(inside)
        cols = labels[inside] - c0
        coef[rows + (cols,)] += (1.0 - eps) * w_block[cols]
        coef[~counted] = 0.0
        return coef
    q = t.astype(np.float64)
    if eps:
        q = (1.0 - eps) * q + eps / n_classes
    return q * w_block


def _merge_stats_block(stats: Block, log_probs: bool = False) -> Block:
    """[row loss, logsumexp, A] per row from the class blocks' stats, merged in
    class order by the log-sum-exp rule (nll_loss: the loss is -B alone)."""
    m, s, a, b = (stats[..., k] for k in range(4))
    if log_probs:
        b_row = np.sum(b, axis=-1)
        zeros = np.zeros_like(b_row)
        return np.stack([-b_row, zeros, zeros], axis=-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(m, axis=-1)
        safe_top = np.where(np.isfinite(top), top, 0.0)
        lse = safe_top + np.log(np.sum(s * np.exp(m - safe_top[..., None]), axis=-1))
        a_row, b_row = np.sum(a, axis=-1), np.sum(b, axis=-1)
        loss = np.where(a_row == 0, 0.0, a_row * lse - b_row)
        # NaN in the row: NaN out, as in memory (a max ignores nothing).
        loss = np.where(np.isnan(top), np.nan, loss)
    return np.stack([loss, lse, a_row], axis=-1)


def _split_grad_block(x: Block, t: Block, lse: Block, a_row: Block, scale: Block | float, *,
                      is_index: bool, n_classes: int, options: Options, dtype: np.dtype[Any],
                      log_probs: bool, block_info: BlockInfo = None) -> Block:
    """The gradient of a class block: scale * (A softmax - w q), or
    -scale * w q for nll_loss."""
    c0, c1 = block_info[0]["array-location"][-1]
    origin = _origin(block_info)[:-1]
    coef = _target_coefficients(t, c0, c1, is_index, n_classes, options, origin)
    if log_probs:
        return (-coef * scale).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(x.astype(np.float64) - lse)
        grad = (a_row * p - coef) * scale
    return grad.astype(dtype)


def _row_stats(x: da.Array, t: da.Array, is_index: bool, n_classes: int, options: Options,
               log_probs: bool) -> da.Array:
    """Per row [loss, logsumexp, A] (float64) of class-chunked scores."""
    n_blocks = x.numblocks[-1]
    stats = da.map_blocks(
        partial(_stats_block, is_index=is_index, n_classes=n_classes, options=options),
        x, _row_target(t, is_index), new_axis=[x.ndim], dtype=np.float64,
        chunks=x.chunks[:-1] + ((1,) * n_blocks, (4,)))
    stats = stats.rechunk({x.ndim - 1: n_blocks})
    return stats.map_blocks(partial(_merge_stats_block, log_probs=log_probs),
                            drop_axis=x.ndim - 1, dtype=np.float64,
                            chunks=x.chunks[:-1] + ((3,),))


def _class_loss(scores: DaskArrayLike, target: DaskArrayLike, weight: ArrayLike | None,
                ignore_index: int, reduction: str, label_smoothing: float, axis: int | None,
                want_grad: bool, log_probs: bool = False
                ) -> da.Array | tuple[da.Array, da.Array]:
    name = "log_probs" if log_probs else "logits"
    x, t, is_index, dtype, reduction, axis, options = _class_inputs(
        scores, target, weight, ignore_index, reduction, label_smoothing, axis, name,
        allow_probabilities=not log_probs)
    n_classes = x.shape[-1]
    if log_probs:  # nll_loss: the loss is linear in the scores, logsumexp aside
        options = dict(options, label_smoothing=0.0)
    batch_chunks = x.chunks[:-1]

    if x.numblocks[-1] == 1:  # whole rows in each block: the fused kernel
        kw: dict[str, Any] = dict(is_index=is_index, log_probs=log_probs, reduction=reduction,
                                  options=options)
        if not want_grad:
            if reduction == "none":
                return da.map_blocks(partial(_fused_block, **kw), x, _row_target(t, is_index),
                                     drop_axis=x.ndim - 1, dtype=dtype)
            parts = da.map_blocks(partial(_fused_block, **kw), x, _row_target(t, is_index),
                                  chunks=_ones(batch_chunks) + ((2,),), dtype=np.float64)
            return _reduce(parts, reduction, dtype)
        scale = (1.0 / _denominator(t, is_index, n_classes, options)
                 if reduction == "mean" else 1.0)
        packed = da.map_blocks(partial(_fused_block_with_grad, **kw), x,
                               _row_target(t, is_index), scale, dtype=dtype,
                               meta=np.empty((0,) * x.ndim, dtype))
        if reduction == "none":
            loss, grad = _unpack(packed, dtype, batch_chunks + ((1,),))
            loss = loss[..., 0].astype(dtype)
        else:
            pieces, grad = _unpack(packed, dtype, _ones(batch_chunks) + ((1,),))
            total = _sum_over_blocks(pieces)
            denom = (_denominator(t, is_index, n_classes, options) if reduction == "mean"
                     else _ONE)
            loss = _finalize(da.stack([total, denom]), reduction, dtype)
        return loss, da.moveaxis(grad, -1, axis)

    # Classes split across blocks: per-row statistics merged by log-sum-exp.
    rows = _row_stats(x, t, is_index, n_classes, options, log_probs)
    if reduction == "none":
        loss = rows[..., 0].astype(dtype)
    else:
        total = _sum_over_blocks(rows[..., 0])
        denom = (_denominator(t, is_index, n_classes, options) if reduction == "mean"
                 else _ONE)
        loss = _finalize(da.stack([total, denom]), reduction, dtype)
    if not want_grad:
        return loss
    scale = 1.0 / _denominator(t, is_index, n_classes, options) if reduction == "mean" else 1.0
    grad = da.map_blocks(
        partial(_split_grad_block, is_index=is_index, n_classes=n_classes, options=options,
                dtype=dtype, log_probs=log_probs),
        x, _row_target(t, is_index), rows[..., 1:2], rows[..., 2:3], scale, dtype=dtype)
    return loss, da.moveaxis(grad, -1, axis)


@_fill
def cross_entropy(logits: DaskArrayLike, target: DaskArrayLike, *,
                  weight: ArrayLike | None = None, ignore_index: int = IGNORE_INDEX_DEFAULT,
                  reduction: Reduction = "mean", label_smoothing: float = 0.0,
                  axis: int | None = None) -> da.Array:
    """`fastxent.cross_entropy` of dask arrays: a lazy dask array.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Scores, classes on `axis`; chunked along the rows, the class axis or
        both (an in-memory array is wrapped with dask's automatic chunks).
    target : dask.array.Array or array_like
        Integer class indices (the shape of `logits` without `axis`) or float
        class probabilities (the shape of `logits`); rechunked like `logits`.
    {class_options}
    label_smoothing : float, default 0.0
        In [0, 1]: the target becomes ``(1 - label_smoothing) * target +
        label_smoothing / C``.
    {axis}

    Returns
    -------
    dask.array.Array
        In `logits`' floating dtype: 0-d for ``"sum"`` and ``"mean"``, else
        the per-sample losses (the shape of `logits` without `axis`).

    Raises
    ------
    {class_raises}

    See Also
    --------
    cross_entropy_with_grad : The loss and its gradient.
    fastxent.cross_entropy : The in-memory function.

    Notes
    -----
    {exactness}

    {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> logits = da.zeros((1000, 4), chunks=(250, 4), dtype=np.float32)
    >>> labels = da.zeros(1000, chunks=250, dtype=np.int64)
    >>> loss = fastxent.dask.cross_entropy(logits, labels)
    >>> loss.dtype, loss.shape
    (dtype('float32'), ())
    >>> round(float(loss.compute()), 6)  # log(4)
    1.386294
    """
    return _class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                       False)


@_fill
def cross_entropy_with_grad(logits: DaskArrayLike, target: DaskArrayLike, *,
                            weight: ArrayLike | None = None,
                            ignore_index: int = IGNORE_INDEX_DEFAULT,
                            reduction: Reduction = "mean", label_smoothing: float = 0.0,
                            axis: int | None = None) -> tuple[da.Array, da.Array]:
    """The loss of `cross_entropy` and its gradient with respect to `logits`,
    as lazy dask arrays.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Scores, classes on `axis`, chunked along the rows, the classes or both.
    target : dask.array.Array or array_like
        Integer class indices or float class probabilities, as for
        `cross_entropy`.
    {class_options}
    label_smoothing : float, default 0.0
        In [0, 1].
    {axis}

    Returns
    -------
    loss : dask.array.Array
        As `cross_entropy` returns it.
    grad : dask.array.Array
        The gradient d loss / d logits: the shape, dtype and chunks of `logits` (for
        ``"none"``, the gradient of the sum of the per-sample losses).

    Raises
    ------
    {class_raises}

    See Also
    --------
    fastxent.cross_entropy_with_grad : The in-memory function.

    Notes
    -----
    {lazy} The gradient of a ``"mean"`` needs the mean's denominator
    first: for class labels, one light pass over the labels alone.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np, fastxent.dask
    >>> logits = da.zeros((6, 3), chunks=(2, 3))
    >>> loss, grad = fastxent.dask.cross_entropy_with_grad(logits, np.array([0, 1, 2, 0, 1, 2]))
    >>> grad.chunks
    ((2, 2, 2), (3,))
    >>> loss, grad = dask.compute(loss, grad)
    >>> round(float(loss), 6), grad[0].round(6).tolist()
    (1.098612, [-0.111111, 0.055556, 0.055556])
    """
    return _class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                       True)


@_fill
def nll_loss(log_probs: DaskArrayLike, target: DaskArrayLike, *,
             weight: ArrayLike | None = None, ignore_index: int = IGNORE_INDEX_DEFAULT,
             reduction: Reduction = "mean", axis: int | None = None) -> da.Array:
    """`fastxent.nll_loss` of dask arrays: a lazy dask array.

    Parameters
    ----------
    log_probs : dask.array.Array or array_like
        Log-probabilities, classes on `axis`, chunked along the rows, the
        classes or both.
    target : dask.array.Array or array_like
        Integer class indices, the shape of `log_probs` without `axis`.
    {class_options}
    {axis}

    Returns
    -------
    dask.array.Array
        In `log_probs`' floating dtype: 0-d, or the per-sample losses.

    Raises
    ------
    {class_raises}

    See Also
    --------
    nll_loss_with_grad : The loss and its gradient.
    fastxent.nll_loss : The in-memory function.

    Notes
    -----
    The loss of a sample of class ``y`` is ``-weight[y] * log_probs[y]``.

    {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> log_probs = da.log(da.from_array(np.array([[0.7, 0.3], [0.2, 0.8]]), chunks=1))
    >>> round(float(fastxent.dask.nll_loss(log_probs, np.array([0, 1])).compute()), 6)
    0.289909
    """
    return _class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, False,
                       log_probs=True)


@_fill
def nll_loss_with_grad(log_probs: DaskArrayLike, target: DaskArrayLike, *,
                       weight: ArrayLike | None = None,
                       ignore_index: int = IGNORE_INDEX_DEFAULT, reduction: Reduction = "mean",
                       axis: int | None = None) -> tuple[da.Array, da.Array]:
    """The loss of `nll_loss` and its gradient with respect to `log_probs`, as
    lazy dask arrays.

    Parameters
    ----------
    log_probs : dask.array.Array or array_like
        Log-probabilities, classes on `axis`.
    target : dask.array.Array or array_like
        Integer class indices, the shape of `log_probs` without `axis`.
    {class_options}
    {axis}

    Returns
    -------
    loss : dask.array.Array
        As `nll_loss` returns it.
    grad : dask.array.Array
        The gradient d loss / d log_probs: the shape, dtype and chunks of `log_probs`.

    Raises
    ------
    {class_raises}

    See Also
    --------
    fastxent.nll_loss_with_grad : The in-memory function.

    Notes
    -----
    {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> log_probs = da.log(da.from_array(np.array([[0.7, 0.3], [0.2, 0.8]]), chunks=1))
    >>> loss, grad = fastxent.dask.nll_loss_with_grad(log_probs, np.array([0, 1]))
    >>> grad.compute().tolist()  # -1/2 at each label: the mean's 1/N
    [[-0.5, -0.0], [-0.0, -0.5]]
    """
    return _class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, True,
                       log_probs=True)


# --------------------------------------------------------------------------- binary losses


def _binary_weight(weight: DaskArrayLike | None, name: str, x: da.Array) -> da.Array | None:
    """weight as a dask array whose blocks line up with x's (axes of length 1
    broadcast), after the in-memory call's shape checks."""
    if weight is None:
        return None
    w = _as_dask(weight, name)
    result_dtype(w, name)
    try:
        full = np.broadcast_shapes(w.shape, x.shape)
    except ValueError:
        raise ValueError(f"{name}: shape {w.shape} does not broadcast to the input's "
                         f"{x.shape}") from None
    if full != x.shape:
        raise ValueError(f"{name}: shape {w.shape} would broadcast the input's {x.shape} to more")
    lead = x.ndim - w.ndim
    return w.rechunk(tuple(x.chunks[lead + k] if n > 1 else (1,) for k, n in enumerate(w.shape)))


def _binary_block(x: Block, t: Block, w: Block | None, pw: Block | None, *, from_logits: bool,
                  reduction: str, scale: float, want_grad: bool,
                  block_info: BlockInfo = None) -> Any:
    options: dict[str, Any] = dict(weight=w, from_logits=from_logits, origin=_origin(block_info))
    if from_logits:
        options["pos_weight"] = pw
    if reduction == "none":
        name = ("binary_cross_entropy_with_logits" if from_logits else "binary_cross_entropy")
        fn = getattr(_logits if from_logits else _probs, name + ("_with_grad" if want_grad else ""))
        origin = options.pop("origin")
        options.pop("from_logits")
        with _partials.located(origin):
            return fn(x, t, reduction="none", **options)
    parts = _partials.binary_loss_parts(x, t, want_grad=want_grad, **options)
    piece = np.full((1,) * x.ndim, parts.loss_sum)
    if not want_grad:
        return piece
    grad = cast(Block, parts.grad)  # asked for (want_grad)
    if reduction == "mean":
        grad *= grad.dtype.type(scale)
    return piece, grad


def _binary_loss(x: DaskArrayLike, target: DaskArrayLike, weight: DaskArrayLike | None,
                 pos_weight: DaskArrayLike | None, reduction: str, want_grad: bool,
                 from_logits: bool) -> da.Array | tuple[da.Array, da.Array]:
    name = "logits" if from_logits else "probs"
    reduction = check_reduction(reduction)
    x = _as_dask(x, name)
    dtype = _check_dtype(x, name)
    t = target if isinstance(target, da.Array) else as_array(target, "target")
    if t.dtype.kind not in "fiu":
        raise TypeError(f"target: expected real numbers in [0, 1], got dtype {t.dtype}")
    if t.shape != x.shape:
        raise ValueError(f"target: expected the shape of {name} {x.shape}, got {t.shape}")
    t = _as_dask(t, "target", chunks=x.chunks).rechunk(x.chunks)
    w = _binary_weight(weight, "weight", x)
    pw = _binary_weight(pos_weight, "pos_weight", x)
    count = float(math.prod(x.shape))
    fn = partial(_binary_block, from_logits=from_logits, reduction=reduction,
                 scale=1.0 / count if count else float("nan"), want_grad=want_grad)
    # None stands in for a missing weight: map_blocks passes it through.
    args = [x, t, w, pw]
    if reduction == "none":
        if not want_grad:
            return da.map_blocks(fn, *args, dtype=dtype)
        packed = da.map_blocks(fn, *args, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype))
        loss, grad = _unpack(packed, dtype, x.chunks)
        return loss.astype(dtype), grad
    chunks = _ones(x.chunks)
    if not want_grad:
        pieces = da.map_blocks(fn, *args, chunks=chunks, dtype=np.float64)
        grad = None
    else:
        packed = da.map_blocks(fn, *args, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype))
        pieces, grad = _unpack(packed, dtype, chunks)
    total = _sum_over_blocks(pieces)
    loss = _finalize(da.stack([total, da.from_array(np.float64(count))]), reduction, dtype)
    return (loss, grad) if want_grad else loss


@_fill
def binary_cross_entropy_with_logits(logits: DaskArrayLike, target: DaskArrayLike, *,
                                     weight: DaskArrayLike | None = None,
                                     pos_weight: DaskArrayLike | None = None,
                                     reduction: Reduction = "mean") -> da.Array:
    """`fastxent.binary_cross_entropy_with_logits` of dask arrays: a lazy dask array.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Logits, any shape and chunks.
    target : dask.array.Array or array_like
        Targets in [0, 1], the shape of `logits` (rechunked like it).
    {binary_weight}
    pos_weight : dask.array.Array or array_like, optional
        Broadcast to `logits`: the weight of the positive term.
    {binary_reduction}

    Returns
    -------
    dask.array.Array
        In `logits`' floating dtype: 0-d, or the shape of `logits` for ``"none"``.

    Raises
    ------
    {binary_raises}

    See Also
    --------
    binary_cross_entropy_with_logits_with_grad : The loss and its gradient.
    fastxent.binary_cross_entropy_with_logits : The in-memory function.

    Notes
    -----
    {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> x = da.from_array(np.array([2.0, -1.0, 0.0, 0.0]), chunks=2)
    >>> loss = fastxent.dask.binary_cross_entropy_with_logits(x, np.array([1.0, 0.0, 1.0, 0.0]))
    >>> round(float(loss.compute()), 6)
    0.456621
    """
    return _binary_loss(logits, target, weight, pos_weight, reduction, False, True)


@_fill
def binary_cross_entropy_with_logits_with_grad(logits: DaskArrayLike, target: DaskArrayLike, *,
                                               weight: DaskArrayLike | None = None,
                                               pos_weight: DaskArrayLike | None = None,
                                               reduction: Reduction = "mean"
                                               ) -> tuple[da.Array, da.Array]:
    """The loss of `binary_cross_entropy_with_logits` and its gradient with
    respect to `logits`, as lazy dask arrays.

    Parameters
    ----------
    logits : dask.array.Array or array_like
        Logits, any shape and chunks.
    target : dask.array.Array or array_like
        Targets in [0, 1], the shape of `logits`.
    {binary_weight}
    pos_weight : dask.array.Array or array_like, optional
        Broadcast to `logits`: the weight of the positive term.
    {binary_reduction}

    Returns
    -------
    loss : dask.array.Array
        As `binary_cross_entropy_with_logits` returns it.
    grad : dask.array.Array
        The gradient d loss / d logits: the shape, dtype and chunks of `logits`.

    Raises
    ------
    {binary_raises}

    See Also
    --------
    fastxent.binary_cross_entropy_with_logits_with_grad : The in-memory function.

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> x = da.zeros(4, chunks=2)
    >>> loss, grad = fastxent.dask.binary_cross_entropy_with_logits_with_grad(x, np.ones(4))
    >>> grad.compute().tolist()  # (sigmoid(0) - 1) / 4
    [-0.125, -0.125, -0.125, -0.125]
    """
    return _binary_loss(logits, target, weight, pos_weight, reduction, True, True)


@_fill
def binary_cross_entropy(probs: DaskArrayLike, target: DaskArrayLike, *,
                         weight: DaskArrayLike | None = None,
                         reduction: Reduction = "mean") -> da.Array:
    """`fastxent.binary_cross_entropy` of dask arrays: a lazy dask array.

    Parameters
    ----------
    probs : dask.array.Array or array_like
        Probabilities in [0, 1], any shape and chunks.
    target : dask.array.Array or array_like
        Targets in [0, 1], the shape of `probs`.
    {binary_weight}
    {binary_reduction}

    Returns
    -------
    dask.array.Array
        In `probs`' floating dtype: 0-d, or the shape of `probs` for ``"none"``.

    Raises
    ------
    {binary_raises}

    See Also
    --------
    binary_cross_entropy_with_grad : The loss and its gradient.
    fastxent.binary_cross_entropy : The in-memory function (log terms clamped at -100).

    Notes
    -----
    {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> p = da.from_array(np.array([0.9, 0.2]), chunks=1)
    >>> round(float(fastxent.dask.binary_cross_entropy(p, np.array([1.0, 0.0])).compute()), 6)
    0.164252
    """
    return _binary_loss(probs, target, weight, None, reduction, False, False)


@_fill
def binary_cross_entropy_with_grad(probs: DaskArrayLike, target: DaskArrayLike, *,
                                   weight: DaskArrayLike | None = None,
                                   reduction: Reduction = "mean") -> tuple[da.Array, da.Array]:
    """The loss of `binary_cross_entropy` and its gradient with respect to
    `probs`, as lazy dask arrays.

    Parameters
    ----------
    probs : dask.array.Array or array_like
        Probabilities in [0, 1], any shape and chunks.
    target : dask.array.Array or array_like
        Targets in [0, 1], the shape of `probs`.
    {binary_weight}
    {binary_reduction}

    Returns
    -------
    loss : dask.array.Array
        As `binary_cross_entropy` returns it.
    grad : dask.array.Array
        The gradient d loss / d probs: the shape, dtype and chunks of `probs`.

    Raises
    ------
    {binary_raises}

    See Also
    --------
    fastxent.binary_cross_entropy_with_grad : The in-memory function.

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> p = da.from_array(np.array([0.5, 0.25]), chunks=1)
    >>> loss, grad = fastxent.dask.binary_cross_entropy_with_grad(p, np.array([1.0, 0.0]),
    ...                                                           reduction="sum")
    >>> grad.compute().round(6).tolist()  # -1/p, 1/(1 - p)
    [-2.0, 1.333333]
    """
    return _binary_loss(probs, target, weight, None, reduction, True, False)


# --------------------------------------------------------------------------- building blocks


def _classes_last(x: DaskArrayLike, axis: int, name: str) -> tuple[da.Array, int]:
    x = _as_dask(x, name)
    _check_dtype(x, name)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension (the classes), got a 0-d array")
    axis = check_axis(axis, x.ndim, name)
    return da.moveaxis(x, axis, -1), axis


def _lse_block(stats: Block) -> Block:
    return _merge_stats_block(stats)[..., 1]


def _row_logsumexp(x: da.Array) -> da.Array:
    """float64 logsumexp per row of class-chunked x (a whole-row reduction by
    merged (max, sum) pairs)."""
    n_blocks = x.numblocks[-1]
    stats = da.map_blocks(
        partial(_stats_block, is_index=False, n_classes=x.shape[-1],
                options=dict(weight=None, label_smoothing=0.0, ignore_index=-100)),
        x, da.zeros_like(x, dtype=np.float32), new_axis=[x.ndim], dtype=np.float64,
        chunks=x.chunks[:-1] + ((1,) * n_blocks, (4,)))
    stats = stats.rechunk({x.ndim - 1: n_blocks})
    return stats.map_blocks(_lse_block, drop_axis=[x.ndim - 1, x.ndim], dtype=np.float64)


def _softmax_block(x: Block, lse: Block | None = None, *, log_space: bool,
                   dtype: np.dtype[Any]) -> Block:
    if lse is None:  # whole rows: the kernel
        fn = _special.log_softmax if log_space else _special.softmax
        return fn(x)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x.astype(np.float64) - lse
        return (shifted if log_space else np.exp(shifted)).astype(dtype)


def _softmax(x: DaskArrayLike, axis: int, log_space: bool) -> da.Array:
    x, axis = _classes_last(x, axis, "x")
    dtype = result_dtype(x, "x")
    fn = partial(_softmax_block, log_space=log_space, dtype=dtype)
    if x.numblocks[-1] == 1:
        y = x.map_blocks(fn, dtype=dtype)
    else:
        y = da.map_blocks(fn, x, _row_logsumexp(x)[..., None], dtype=dtype)
    return da.moveaxis(y, -1, axis)


@_fill
def softmax(x: DaskArrayLike, *, axis: int = -1) -> da.Array:
    """`scipy.special.softmax` along `axis` of a dask array: a lazy dask array.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Any shape; the class axis may be chunked (merged by log-sum-exp).
    axis : int, default -1
        The axis normalised over (SciPy's default is None: the whole array).

    Returns
    -------
    dask.array.Array
        The shape and chunks of `x`, its floating dtype.

    Raises
    ------
    ValueError, TypeError
        At once, for a 0-d `x`, a bad `axis` or a non-numeric dtype.

    See Also
    --------
    log_softmax, logsumexp, fastxent.softmax

    Notes
    -----
    ``exp(x - logsumexp(x))`` along `axis`. {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> x = da.from_array(np.log(np.array([[1.0, 3.0], [2.0, 2.0]])), chunks=1)
    >>> fastxent.dask.softmax(x).compute().round(6).tolist()
    [[0.25, 0.75], [0.5, 0.5]]
    """
    return _softmax(x, axis, False)


@_fill
def log_softmax(x: DaskArrayLike, *, axis: int = -1) -> da.Array:
    """`scipy.special.log_softmax` along `axis` of a dask array: a lazy dask array.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Any shape; the class axis may be chunked.
    axis : int, default -1
        The axis normalised over.

    Returns
    -------
    dask.array.Array
        The shape and chunks of `x`, its floating dtype.

    Raises
    ------
    ValueError, TypeError
        At once, for a 0-d `x`, a bad `axis` or a non-numeric dtype.

    See Also
    --------
    softmax, logsumexp, fastxent.log_softmax

    Notes
    -----
    ``x - logsumexp(x)`` along `axis`. {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> x = da.zeros((2, 4), chunks=(1, 2))
    >>> fastxent.dask.log_softmax(x).compute().round(6).tolist()[0]  # -log(4)
    [-1.386294, -1.386294, -1.386294, -1.386294]
    """
    return _softmax(x, axis, True)


@_fill
def logsumexp(x: DaskArrayLike, *, axis: int = -1) -> da.Array:
    """`scipy.special.logsumexp` along `axis` of a dask array: a lazy dask array.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Any shape; the class axis may be chunked.
    axis : int, default -1
        The axis reduced (removed from the result).

    Returns
    -------
    dask.array.Array
        The shape of `x` without `axis`, its floating dtype.

    Raises
    ------
    ValueError, TypeError
        At once, for a 0-d `x`, a bad `axis` or a non-numeric dtype.

    See Also
    --------
    softmax, fastxent.logsumexp

    Notes
    -----
    ``max + log(sum(exp(x - max)))``; blocks of the axis are merged by their
    (max, sum) pairs in float64. {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> x = da.zeros((3, 8), chunks=(3, 2))
    >>> fastxent.dask.logsumexp(x).compute().round(6).tolist()  # log(8)
    [2.079442, 2.079442, 2.079442]
    """
    x, _ = _classes_last(x, axis, "x")
    dtype = result_dtype(x, "x")
    if x.numblocks[-1] == 1:
        return x.map_blocks(_special.logsumexp, drop_axis=x.ndim - 1, dtype=dtype)
    return _row_logsumexp(x).astype(dtype)


def _entropy_block(p: Block, q: Block | None = None, *, base: float | None) -> Block:
    result = (_special.entropy(p, base=base) if q is None
              else _special.kl_divergence(p, q, base=base))
    return np.asarray(result, np.float64)[..., None]


def _entropy_sum(p: da.Array, q: da.Array | None, base: float | None,
                 dtype: np.dtype[Any]) -> da.Array:
    """Per-block sums of the entropy terms, added across the class blocks."""
    from ._validate import check_base

    check_base(base)
    args = [p] if q is None else [p, q]
    parts = da.map_blocks(partial(_entropy_block, base=base), *args, dtype=np.float64,
                          chunks=p.chunks[:-1] + ((1,) * p.numblocks[-1],))
    return parts.sum(axis=-1).astype(dtype)


@_fill
def entropy(p: DaskArrayLike, *, axis: int = -1, base: float | None = None) -> da.Array:
    """`fastxent.entropy` (the sum of ``scipy.special.entr``) along `axis` of a
    dask array: a lazy dask array.

    Parameters
    ----------
    p : dask.array.Array or array_like
        Probabilities (not renormalised), any chunks.
    axis : int, default -1
        The axis summed over.
    base : float, optional
        The logarithm's base (default e).

    Returns
    -------
    dask.array.Array
        The shape of `p` without `axis`, its floating dtype.

    Raises
    ------
    ValueError, TypeError
        At once, for a 0-d `p`, a bad `axis` or `base`, a non-numeric dtype.

    See Also
    --------
    kl_divergence, fastxent.entropy

    Notes
    -----
    ``-sum(p log p)``, with ``0 log 0 = 0``. {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> p = da.from_array(np.array([[0.5, 0.5], [1.0, 0.0]]), chunks=1)
    >>> fastxent.dask.entropy(p, base=2).compute().tolist()
    [1.0, 0.0]
    """
    p, _ = _classes_last(p, axis, "p")
    return _entropy_sum(p, None, base, result_dtype(p, "p"))


@_fill
def kl_divergence(p: DaskArrayLike, q: DaskArrayLike, *, axis: int = -1,
                  base: float | None = None) -> da.Array:
    """`fastxent.kl_divergence` (the sum of ``scipy.special.rel_entr``) along
    `axis` of dask arrays: a lazy dask array.

    Parameters
    ----------
    p, q : dask.array.Array or array_like
        Probabilities (not renormalised), broadcast to one shape.
    axis : int, default -1
        The axis summed over.
    base : float, optional
        The logarithm's base (default e).

    Returns
    -------
    dask.array.Array
        The broadcast shape without `axis`, the promoted floating dtype.

    Raises
    ------
    ValueError, TypeError
        At once, for shapes that do not broadcast, a bad `axis` or `base`, a
        non-numeric dtype.

    See Also
    --------
    entropy, fastxent.kl_divergence

    Notes
    -----
    ``sum(p log(p / q))``, with ``0 log(0 / q) = 0`` and ``inf`` where
    ``q = 0 < p``. {lazy}

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> p = da.from_array(np.array([[0.5, 0.5]]), chunks=1)
    >>> fastxent.dask.kl_divergence(p, np.array([0.25, 0.75]), base=2).compute().round(6).tolist()
    [0.207519]
    """
    p, q = _as_dask(p, "p"), _as_dask(q, "q")
    dtype = np.promote_types(result_dtype(p, "p"), result_dtype(q, "q"))
    try:
        shape = np.broadcast_shapes(p.shape, q.shape)
    except ValueError:
        raise ValueError(f"p, q: shapes {p.shape} and {q.shape} do not broadcast") from None
    p = da.broadcast_to(p, shape).astype(dtype)
    q = da.broadcast_to(q, shape).astype(dtype)
    p, axis = _classes_last(p, axis, "p")
    q = da.moveaxis(q, axis, -1).rechunk(p.chunks)
    return _entropy_sum(p, q, base, dtype)


# --------------------------------------------------------------------------- scikit-learn


def _log_loss_block(y: Block, p: Block, w: Block | None, classes: Block | None, *,
                    labels_given: Block | None) -> Block:
    """[weighted loss sum, weight sum, any non-zero weight] of a block, with
    fastxent.sklearn.log_loss's checks and clipping."""
    labels = classes if labels_given is None else labels_given
    if w is None:
        total = _sklearn.log_loss(y, p, normalize=False, labels=labels)
        return np.array([[total, float(len(y)), 1.0]])
    w = np.asarray(w, np.float64)
    if not w.any():  # nothing to weigh here; the checks still run
        _sklearn.log_loss(y, p, normalize=False, labels=labels)
        return np.array([[0.0, 0.0, 0.0]])
    total = _sklearn.log_loss(y, p, normalize=False, sample_weight=w, labels=labels)
    return np.array([[total, float(np.sum(w)), 1.0]])


def _log_loss_finish(total: Block, *, normalize: bool) -> Block:
    loss_sum, weight_sum, any_weight = total
    if not any_weight:
        raise ValueError("sample_weight: must contain at least one non-zero number")
    if not normalize:
        return np.asarray(loss_sum)
    if weight_sum == 0:
        raise ZeroDivisionError("sample_weight: the weights sum to zero: no weighted mean")
    return np.asarray(loss_sum / weight_sum)


def _sorted_classes(y: Block) -> Block:
    return np.unique(y)


def log_loss(y_true: DaskArrayLike, y_pred: DaskArrayLike, *, normalize: bool = True,
             sample_weight: DaskArrayLike | None = None,
             labels: ArrayLike | None = None) -> da.Array:
    """`sklearn.metrics.log_loss` of dask arrays: a lazy 0-d float64 dask array.

    Parameters
    ----------
    y_true : dask.array.Array or array_like, shape (n_samples,)
        Class labels; the classes are their sorted distinct values (one light
        pass over the labels), or `labels`.
    y_pred : dask.array.Array or array_like, shape (n_samples, n_classes) or (n_samples,)
        Probabilities, chunked along the samples (the class axis is gathered
        per block: a block of y_pred is (rows, n_classes)); 1-D: the
        probability of the positive class.
    normalize : bool, default True
        The (weighted) mean; False: the sum.
    sample_weight : dask.array.Array or array_like, shape (n_samples,), optional
        A weight per sample.
    labels : array_like, optional
        The classes, when `y_true` does not hold all of them.

    Returns
    -------
    dask.array.Array
        0-d, float64.

    Raises
    ------
    ValueError
        When computed, where scikit-learn raises (probabilities outside [0, 1],
        labels missing from `labels`, all weights zero, ...); at once for
        mismatched lengths and shapes.
    TypeError
        At once, for a `normalize` that is not a bool.

    See Also
    --------
    fastxent.sklearn.log_loss : The in-memory function.
    fastxent.stream.log_loss : Blocks from any iterable, without Dask.

    Notes
    -----
    ``-sum(w_i log p_i[y_i]) / sum(w_i)``, p clipped to ``[eps, 1 - eps]`` of
    its dtype as scikit-learn clips it. Nothing is computed until the result is.

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> p = da.from_array(np.array([[0.9, 0.1], [0.2, 0.8]]), chunks=1)
    >>> round(float(fastxent.dask.log_loss([0, 1], p).compute()), 6)
    0.164252
    """
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize: expected a bool, got {normalize!r}")
    p = _as_dask(y_pred, "y_pred")
    if p.ndim not in (1, 2):
        raise ValueError(f"y_pred: expected 1 or 2 dimensions, got shape {p.shape}")
    if p.ndim == 2:
        p = p.rechunk({1: -1})
    y = y_true if isinstance(y_true, da.Array) else _sklearn._label_array(y_true, "y_true")
    w = sample_weight
    if w is not None and not isinstance(w, da.Array):
        w = as_array(w, "sample_weight")
    counts = [p.shape[0], len(y)] + ([] if w is None else [len(w)])
    if len(set(counts)) > 1:
        names = "y_pred, y_true" + ("" if w is None else ", sample_weight")
        raise ValueError(f"{names}: inconsistent numbers of samples: {counts}")
    if y.ndim != 1:
        raise ValueError(f"y_true: expected 1-D labels, got shape {y.shape}")
    y = _as_dask(y, "y_true", chunks=(p.chunks[0],)).rechunk((p.chunks[0],))
    if w is not None:
        w = _as_dask(w, "sample_weight", chunks=(p.chunks[0],))
    args = [y[:, None], p if p.ndim == 2 else p[:, None]]
    args.append(None if w is None else w.rechunk((p.chunks[0],))[:, None])
    classes = None if labels is not None else dask.delayed(_sorted_classes)(y)
    labels_given = None if labels is None else as_array(labels, "labels")
    if labels_given is not None:
        _sklearn._label_array(labels_given, "labels")

    def block(yb: Block, pb: Block, wb: Block | None, cl: Block | None) -> Block:
        return _log_loss_block(yb[:, 0], pb[:, 0] if p.ndim == 1 else pb,
                               None if wb is None else wb[:, 0], cl, labels_given=labels_given)

    parts = da.map_blocks(block, *args, classes, chunks=((1,) * len(p.chunks[0]), (3,)),
                          dtype=np.float64)
    total = parts.sum(axis=0)
    return da.blockwise(partial(_log_loss_finish, normalize=normalize), "", total, "i",
                        dtype=np.float64, concatenate=True)
