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
import warnings
from functools import partial

import dask
import dask.array as da
import numpy as np

from . import _lse, _logits, _partials, _probs, _special
from . import sklearn as _sklearn
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


def _as_dask(value, name, chunks=None):
    """value as a dask array; an in-memory array is wrapped with `chunks`."""
    if isinstance(value, da.Array):
        if any(math.isnan(n) for c in value.chunks for n in c):
            raise ValueError(f"{name}: unknown chunk sizes; call {name}.compute_chunk_sizes() "
                             "first")
        return value
    arr = as_array(value, name)
    return da.from_array(arr, chunks=chunks if chunks is not None else "auto")


def _check_dtype(arr, name):
    """result_dtype for an array or a dask array (both have .dtype)."""
    return result_dtype(arr, name)


def _origin(block_info, i=0):
    """Index of the block's first element in the whole array."""
    return tuple(start for start, _ in block_info[i]["array-location"])


def _first(packed):
    return packed[0]


def _second(packed):
    return packed[1]


def _unpack(packed, dtype, loss_chunks):
    """(loss pieces, grad) of a map whose blocks are (loss piece, grad) pairs:
    one task computes both, from one read of the block. (The pieces keep every
    axis: a dropped axis would make dask concatenate the pairs.)"""
    grad = packed.map_blocks(_second, dtype=dtype, meta=np.empty((0,) * packed.ndim, dtype))
    pieces = packed.map_blocks(_first, dtype=np.float64, chunks=loss_chunks)
    return pieces, grad


def _ones(chunks):
    """Chunks of one element per block, for per-block partial results."""
    return tuple((1,) * len(c) for c in chunks)


def _finish(total, *, reduction, dtype):
    """A reduced loss from its [sum, denominator] in float64, as in memory."""
    return np.asarray(reduce_loss(reduction, dtype, total[0], total[1]))


def _reduce(parts, reduction, dtype):
    """The 0-d loss from per-block [sum, denominator] parts (the last axis):
    a tree reduction over the blocks, fixed by the chunking."""
    return _finalize(parts.sum(axis=tuple(range(parts.ndim - 1)), dtype=np.float64),
                     reduction, dtype)


def _finalize(total, reduction, dtype):
    """The 0-d loss from a (2,) dask array [sum, denominator]."""
    return da.blockwise(partial(_finish, reduction=reduction, dtype=dtype), "", total, "i",
                        dtype=dtype, concatenate=True)


_ONE = da.from_array(np.float64(1.0))  # the denominator of a "sum"


def _sum_over_blocks(parts):
    """0-d float64 sum of per-block values, by a tree reduction fixed by the chunking."""
    return parts.sum(dtype=np.float64)


# --------------------------------------------------------------------------- class losses


def _class_inputs(scores, target, weight, ignore_index, reduction, label_smoothing, axis, name,
                  allow_probabilities):
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


def _row_target(t, is_index):
    """The target as a block argument beside the scores: labels get a class
    axis of length 1, which broadcasts over the class blocks."""
    return t[..., None] if is_index else t


def _denominator_block(t, *, n_classes, weight, ignore_index, block_info=None):
    value = _partials.class_denominator(t, n_classes, weight=weight, ignore_index=ignore_index,
                                        origin=_origin(block_info))
    return np.full((1,) * t.ndim, value)


def _denominator(t, is_index, n_classes, options):
    """The 0-d mean denominator of the whole problem, from the target alone
    (the class labels checked on the way)."""
    if not is_index:  # probabilities: the mean is over the samples
        return da.from_array(np.float64(math.prod(t.shape[:-1])))
    parts = t.map_blocks(
        partial(_denominator_block, n_classes=n_classes, weight=options["weight"],
                ignore_index=options["ignore_index"]),
        chunks=_ones(t.chunks), dtype=np.float64)
    return _sum_over_blocks(parts)


def _fused_block(x, t, *, is_index, log_probs, reduction, options, block_info=None):
    """A block's [loss sum, denominator], or its per-row losses ("none")."""
    target = t[..., 0] if is_index else t
    origin = _origin(block_info)[:-1]
    if reduction == "none":
        fn = _probs.nll_loss if log_probs else _logits.cross_entropy
        kwargs = dict(options, reduction="none")
        if log_probs:
            kwargs.pop("label_smoothing")
        with _partials.located(origin):
            return fn(x, target, **kwargs)
    parts = _partials.class_loss_parts(x, target, log_probs=log_probs, origin=origin, **options)
    return np.array([parts.loss_sum, parts.denominator]).reshape((1,) * (x.ndim - 1) + (2,))


def _fused_block_with_grad(x, t, scale, *, is_index, log_probs, reduction, options,
                           block_info=None):
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
    grad = parts.grad
    if reduction == "mean":
        grad *= grad.dtype.type(scale)
    return np.array([parts.loss_sum]).reshape((1,) * (x.ndim - 1) + (1,)), grad


def _stats_block(x, t, *, is_index, n_classes, options, block_info=None):
    """Per row of a class block: (max, sum of exp(x - max), A, B) in float64,
    where the row's loss is A * logsumexp - B over the whole row (A, B: the
    block's share of sum_c w_c q_c and sum_c w_c q_c x_c, q the smoothed
    target)."""
    c0, c1 = block_info[0]["array-location"][-1]
    origin = _origin(block_info)[:-1]
    x64 = x.astype(np.float64)
    m, s = _lse.exp_sums(x64)
    coef = _target_coefficients(t, c0, c1, is_index, n_classes, options, origin)
    with np.errstate(invalid="ignore"):
        a = np.sum(coef, axis=-1)
        b = np.sum(np.where(coef != 0, coef * x64, 0.0), axis=-1)
    return np.stack([m, s, a, b], axis=-1)[..., None, :]


def _target_coefficients(t, c0, c1, is_index, n_classes, options, origin):
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


def _merge_stats_block(stats, log_probs=False):
    """[row loss, logsumexp, A] per row from the class blocks' stats, merged in
    class order by the log-sum-exp rule (nll_loss: the loss is -B alone)."""
    m, s, a, b = (stats[..., k] for k in range(4))
    if log_probs:
        b_row = np.sum(b, axis=-1)
        zeros = np.zeros_like(b_row)
        return np.stack([-b_row, zeros, zeros], axis=-1)
    lse = _lse.merge_logsumexp(m, s)
    with np.errstate(invalid="ignore"):
        a_row, b_row = np.sum(a, axis=-1), np.sum(b, axis=-1)
        loss = np.where(a_row == 0, 0.0, a_row * lse - b_row)
        # NaN or +inf in the row: NaN out, as in memory (where x - max is NaN).
        top = np.max(m, axis=-1)
        loss = np.where(np.isnan(top) | (top == np.inf), np.nan, loss)
    return np.stack([loss, lse, a_row], axis=-1)


def _split_grad_block(x, t, lse, a_row, scale, *, is_index, n_classes, options, dtype,
                      log_probs, block_info=None):
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


def _row_stats(x, t, is_index, n_classes, options, log_probs):
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


def _class_loss(scores, target, weight, ignore_index, reduction, label_smoothing, axis,
                want_grad, log_probs=False):
    name = "log_probs" if log_probs else "logits"
    x, t, is_index, dtype, reduction, axis, options = _class_inputs(
        scores, target, weight, ignore_index, reduction, label_smoothing, axis, name,
        allow_probabilities=not log_probs)
    n_classes = x.shape[-1]
    if log_probs:  # nll_loss: the loss is linear in the scores, logsumexp aside
        options = dict(options, label_smoothing=0.0)
    batch_chunks = x.chunks[:-1]

    if x.numblocks[-1] == 1:  # whole rows in each block: the fused kernel
        kw = dict(is_index=is_index, log_probs=log_probs, reduction=reduction, options=options)
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


def cross_entropy(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                  reduction="mean", label_smoothing=0.0, axis=None):
    """fastxent.cross_entropy on dask arrays, as a lazy dask array.

    Parameters
    ----------
    logits : dask.array.Array
        Scores, classes on `axis`; chunked along the rows, the class axis or both.
    target : dask.array.Array or array_like
        Integer class indices (the shape of logits without `axis`) or float
        class probabilities (the shape of logits); rechunked like `logits`.
    weight, ignore_index, reduction, label_smoothing, axis
        As for fastxent.cross_entropy (weight: an in-memory array).

    Returns
    -------
    dask.array.Array
        0-d for "sum" and "mean", else the per-sample losses.

    Raises
    ------
    ValueError, TypeError
        At once, for bad shapes, dtypes and options.
    IndexError
        When computed, for a class label outside [0, C) (its position in the
        whole array in the message).

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastxent.dask
    >>> logits = da.zeros((1000, 4), chunks=(250, 4), dtype=np.float32)
    >>> labels = da.zeros(1000, chunks=250, dtype=np.int64)
    >>> float(fastxent.dask.cross_entropy(logits, labels).compute())  # log(4)
    1.3862943649291992
    """
    return _class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                       False)


def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                            reduction="mean", label_smoothing=0.0, axis=None):
    """(loss, d loss / d logits) of cross_entropy as lazy dask arrays; the
    gradient has the chunks of `logits`. ``dask.compute(loss, grad)`` runs the
    fused kernel once per block for both. See cross_entropy."""
    return _class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                       True)


def nll_loss(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
             reduction="mean", axis=None):
    """fastxent.nll_loss on dask arrays (lazy). See cross_entropy."""
    return _class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, False,
                       log_probs=True)


def nll_loss_with_grad(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                       reduction="mean", axis=None):
    """(loss, d loss / d log_probs) of nll_loss as lazy dask arrays."""
    return _class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, True,
                       log_probs=True)


# --------------------------------------------------------------------------- binary losses


def _binary_weight(weight, name, x):
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


def _binary_block(x, t, w, pw, *, from_logits, reduction, scale, want_grad, block_info=None):
    options = dict(weight=w, from_logits=from_logits, origin=_origin(block_info))
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
    grad = parts.grad
    if reduction == "mean":
        grad *= grad.dtype.type(scale)
    return piece, grad


def _binary_loss(x, target, weight, pos_weight, reduction, want_grad, from_logits):
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


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    """fastxent.binary_cross_entropy_with_logits on dask arrays (lazy); weight
    and pos_weight may be dask or in-memory arrays that broadcast to logits."""
    return _binary_loss(logits, target, weight, pos_weight, reduction, False, True)


def binary_cross_entropy_with_logits_with_grad(logits, target, *, weight=None, pos_weight=None,
                                               reduction="mean"):
    """(loss, d loss / d logits) of binary_cross_entropy_with_logits (lazy)."""
    return _binary_loss(logits, target, weight, pos_weight, reduction, True, True)


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean"):
    """fastxent.binary_cross_entropy on dask arrays (lazy); a probability
    outside [0, 1] raises ValueError, naming its position, when computed."""
    return _binary_loss(probs, target, weight, None, reduction, False, False)


def binary_cross_entropy_with_grad(probs, target, *, weight=None, reduction="mean"):
    """(loss, d loss / d probs) of binary_cross_entropy (lazy)."""
    return _binary_loss(probs, target, weight, None, reduction, True, False)


# --------------------------------------------------------------------------- building blocks


def _classes_last(x, axis, name):
    x = _as_dask(x, name)
    _check_dtype(x, name)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension (the classes), got a 0-d array")
    axis = check_axis(axis, x.ndim, name)
    return da.moveaxis(x, axis, -1), axis


def _lse_block(stats):
    return _merge_stats_block(stats)[..., 1]


def _row_logsumexp(x):
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


def _softmax_block(x, lse=None, *, log_space, dtype):
    if lse is None:  # whole rows: the kernel
        fn = _special.log_softmax if log_space else _special.softmax
        return fn(x)
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = x.astype(np.float64) - lse
        if not log_space:
            # a row holding +inf: NaN throughout, as the whole-row kernel's inf / inf
            shifted = np.where(lse == np.inf, np.nan, np.exp(shifted))
        return shifted.astype(dtype)


def _softmax(x, axis, log_space):
    x, axis = _classes_last(x, axis, "x")
    dtype = result_dtype(x, "x")
    fn = partial(_softmax_block, log_space=log_space, dtype=dtype)
    if x.numblocks[-1] == 1:
        y = x.map_blocks(fn, dtype=dtype)
    else:
        y = da.map_blocks(fn, x, _row_logsumexp(x)[..., None], dtype=dtype)
    return da.moveaxis(y, -1, axis)


def softmax(x, *, axis=-1):
    """scipy.special.softmax along axis on a dask array (lazy), the class axis
    chunked or not."""
    return _softmax(x, axis, False)


def log_softmax(x, *, axis=-1):
    """scipy.special.log_softmax along axis on a dask array (lazy)."""
    return _softmax(x, axis, True)


def logsumexp(x, *, axis=-1):
    """scipy.special.logsumexp along axis on a dask array (lazy; the axis removed)."""
    x, _ = _classes_last(x, axis, "x")
    dtype = result_dtype(x, "x")
    if x.numblocks[-1] == 1:
        return x.map_blocks(_special.logsumexp, drop_axis=x.ndim - 1, dtype=dtype)
    return _row_logsumexp(x).astype(dtype)


def _entropy_block(p, q=None, *, base):
    result = (_special.entropy(p, base=base) if q is None
              else _special.kl_divergence(p, q, base=base))
    return np.asarray(result, np.float64)[..., None]


def _entropy_sum(p, q, base, dtype):
    """Per-block sums of the entropy terms, added across the class blocks."""
    from ._validate import check_base

    check_base(base)
    args = [p] if q is None else [p, q]
    parts = da.map_blocks(partial(_entropy_block, base=base), *args, dtype=np.float64,
                          chunks=p.chunks[:-1] + ((1,) * p.numblocks[-1],))
    return parts.sum(axis=-1).astype(dtype)


def entropy(p, *, axis=-1, base=None):
    """fastxent.entropy (sum of scipy.special.entr) along axis on a dask array (lazy)."""
    p, _ = _classes_last(p, axis, "p")
    return _entropy_sum(p, None, base, result_dtype(p, "p"))


def kl_divergence(p, q, *, axis=-1, base=None):
    """fastxent.kl_divergence (sum of scipy.special.rel_entr) along axis on dask
    arrays (lazy); p and q broadcast to one shape."""
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


def _log_loss_block(y, p, w, classes, *, labels_given):
    """[weighted loss sum, weight sum, any non-zero weight, any row not summing
    to one] of a block, with fastxent.sklearn.log_loss's checks and clipping
    (its warnings are not given here, on a worker, but by _log_loss_finish)."""
    labels = classes if labels_given is None else labels_given
    w = None if w is None else np.asarray(w, np.float64)
    weighted = w is not None and w.any()  # else nothing to weigh here; the checks still run
    total, due = _sklearn._log_loss(y, p, normalize=False, labels=labels,
                                    sample_weight=w if weighted else None)
    rows_off = float(_sklearn.ROWS_OFF in due)
    if w is None:
        return np.array([[total, float(len(y)), 1.0, rows_off]])
    if not weighted:
        return np.array([[0.0, 0.0, 0.0, rows_off]])
    return np.array([[total, float(np.sum(w)), 1.0, rows_off]])


def _warn_client(message):
    """warnings.warn on the client: dask.distributed's warn sends a warning
    raised on a worker to the clients too (elsewhere it is warnings.warn)."""
    try:
        from distributed import warn
    except ImportError:
        from warnings import warn
    warn(message, UserWarning, stacklevel=2)


def _log_loss_finish(total, *, normalize):
    loss_sum, weight_sum, any_weight, rows_off = total
    if rows_off:
        _warn_client(_sklearn.ROWS_OFF)
    if not any_weight:
        raise ValueError("sample_weight: must contain at least one non-zero number")
    if not normalize:
        return np.asarray(loss_sum)
    if weight_sum == 0:
        raise ZeroDivisionError("sample_weight: the weights sum to zero: no weighted mean")
    return np.asarray(loss_sum / weight_sum)


def _sorted_classes(y):
    return np.unique(y)


def log_loss(y_true, y_pred, *, normalize=True, sample_weight=None, labels=None):
    """sklearn.metrics.log_loss of dask arrays, as a lazy 0-d float64 dask array.

    Parameters
    ----------
    y_true : dask.array.Array or array_like, shape (n_samples,)
        Class labels; the classes are their sorted distinct values (one light
        pass over the labels), or `labels`.
    y_pred : dask.array.Array, shape (n_samples, n_classes) or (n_samples,)
        Probabilities, chunked along the samples (the class axis is gathered
        per block: a block of y_pred is (rows, n_classes)).
    normalize, sample_weight, labels
        As for sklearn.metrics.log_loss.

    Returns
    -------
    dask.array.Array
        0-d, float64.

    Raises
    ------
    ValueError
        When computed, where scikit-learn raises (probabilities outside [0, 1],
        labels missing from `labels`, ...); at once for mismatched lengths
        or a bad `labels`.

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
    if labels_given is not None:  # checked at once, as the other arguments
        due = []
        _sklearn._encode(np.empty(0, labels_given.dtype), labels_given, due)
        for message in due:
            warnings.warn(message, UserWarning, stacklevel=2)

    def block(yb, pb, wb, cl):
        return _log_loss_block(yb[:, 0], pb[:, 0] if p.ndim == 1 else pb,
                               None if wb is None else wb[:, 0], cl, labels_given=labels_given)

    parts = da.map_blocks(block, *args, classes, chunks=((1,) * len(p.chunks[0]), (4,)),
                          dtype=np.float64)
    total = parts.sum(axis=0)
    return da.blockwise(partial(_log_loss_finish, normalize=normalize), "", total, "i",
                        dtype=np.float64, concatenate=True)
