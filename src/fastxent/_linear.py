"""Fused linear + cross-entropy (a language-model head) without the N x V logits.

``linear_cross_entropy(hidden, linear_weight, target)`` is
``cross_entropy(hidden @ linear_weight.T + linear_bias, target)``, computed a
chunk of rows at a time: each chunk's logits come from one GEMM (NumPy's BLAS)
into a buffer allocated once, the fused kernel turns them in place into the
gradient of the chunk's summed loss, and two more GEMMs carry that gradient to
``d_hidden`` (written) and ``d_weight`` (accumulated). The mean's denominator is
added up chunk by chunk (fastxent._partials) and divides the small outputs
once at the end.

When even a minimum number of rows of V classes exceeds the budget (very large
vocabularies), the classes are cut into blocks too: a first pass over the
blocks merges each row's log-sum-exp, a second recomputes each block's logits
and forms its gradient from it (one more GEMM than the row-chunked path).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Literal, NamedTuple, Union, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _blas, _logits, _losses, _lse, _special
from ._kinds import Scores
from ._typing import Float, FloatArray, FloatScalar, Loss, Reduced, Reduction, ScalarOrArray
from ._validate import (
    IGNORE_INDEX_DEFAULT,
    _index_target,
    as_array,
    check_flag,
    check_ignore_index,
    check_label_smoothing,
    check_reduction,
    check_sample_weight,
    check_softcap,
    check_z_loss,
    position,
    reduce_loss,
    result_dtype,
)

# What linear_cross_entropy_with_grad returns: (loss, d_hidden, d_weight), and
# d_bias with linear_bias (the overloads say which, and in which dtype).
_Grad = NDArray[np.floating[Any]]
LossAndGrads = Union[tuple[Loss, _Grad, _Grad], tuple[Loss, _Grad, _Grad, _Grad]]

# The chunk rule (documented in linear_cross_entropy's docstring).
CHUNK_BYTES = 128 * 2**20  # one chunk's logits
MIN_ROWS = 128  # fewer rows than this make the weight-gradient GEMM inefficient
ACCUMULATE_BYTES = 8 * 2**20  # the block in which d_weight's later chunks are added


class Chunking(NamedTuple):
    rows: int  # rows of hidden per chunk
    classes: int  # classes per block (all of them: row chunks only)


def choose_chunking(chunk_size: Any, n_rows: Any, n_classes: Any, itemsize: Any) -> Chunking:
    """The chunk shape: the caller's `chunk_size` (rows, or (rows, classes)), or
    the automatic rule."""
    if chunk_size is None:
        rows = CHUNK_BYTES // (n_classes * itemsize)
        if rows >= min(MIN_ROWS, n_rows):
            return Chunking(max(1, min(rows, n_rows)), n_classes)
        rows = min(MIN_ROWS, n_rows)
        return Chunking(rows, max(1, CHUNK_BYTES // (rows * itemsize)))
    sizes = chunk_size if isinstance(chunk_size, tuple) else (chunk_size, n_classes)
    if len(sizes) != 2:
        raise ValueError(f"chunk_size: expected rows or (rows, classes), got {chunk_size!r}")
    checked = []
    for size in sizes:
        if isinstance(size, (bool, np.bool_)):
            raise TypeError(f"chunk_size: expected a positive integer, got {chunk_size!r}")
        try:
            size = operator.index(size)
        except TypeError:
            raise TypeError(f"chunk_size: expected a positive integer or a pair of them, "
                            f"got {chunk_size!r}") from None
        if size < 1:
            raise ValueError(f"chunk_size: must be positive, got {chunk_size!r}")
        checked.append(size)
    return Chunking(max(1, min(checked[0], n_rows)), min(checked[1], n_classes))


class Problem(NamedTuple):
    """The validated arguments, hidden and target flattened to rows."""

    hidden: NDArray[Any]  # (N, H), C-contiguous, of dtype
    linear_weight: NDArray[Any]  # (V, H), of dtype (C- or F-ordered: both suit BLAS)
    linear_bias: NDArray[Any] | None  # (V,)
    target: NDArray[Any]  # (N,) int64 or (N, V) probabilities (as given: converted per chunk)
    is_index: bool
    weight: NDArray[Any] | None  # (V,) class weights of dtype
    options: dict[str, Any]  # ignore_index and label_smoothing, as the core takes them
    reduction: str
    dtype: np.dtype[Any]
    batch_shape: tuple[int, ...]
    # the dtypes d_hidden, d_weight, d_bias come back in
    grad_dtypes: tuple[np.dtype[Any], np.dtype[Any], np.dtype[Any] | None]
    sample_weight: NDArray[np.float64] | None = None  # (N,)
    z_loss: float = 0.0
    softcap: float | None = None
    return_lse: bool = False
    return_accuracy: bool = False
    # bfloat16 hidden and linear_weight whose GEMMs PyTorch computes (see
    # _blas.TorchBfloat16Gemms); None: NumPy's BLAS on hidden and linear_weight
    # of dtype
    bfloat16_gemms: _blas.TorchBfloat16Gemms | None = None


def _blas_array(value: Any, dtype: Any) -> Any:
    """value as an array of dtype whose layout BLAS takes without a copy."""
    arr = np.asarray(value, dtype=dtype)
    return arr if arr.flags.c_contiguous or arr.flags.f_contiguous else np.ascontiguousarray(arr)


def prepare(hidden: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
            linear_bias: ArrayLike | None, weight: ArrayLike | None, ignore_index: int | None,
            reduction: object, label_smoothing: object, sample_weight: ArrayLike | None = None,
            z_loss: object = 0.0, softcap: object = None, return_lse: object = False,
            return_accuracy: object = False, bfloat16_gemms: bool = False) -> Problem:
    """Checks every argument once, before any GEMM runs. bfloat16_gemms: keep
    bfloat16 hidden and linear_weight as they are for PyTorch's bfloat16 GEMMs
    where PyTorch is installed (else they are converted to float32)."""
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    checked_z_loss = check_z_loss(z_loss)
    checked_softcap = check_softcap(softcap)
    checked_lse = check_flag(return_lse, "return_lse")
    checked_accuracy = check_flag(return_accuracy, "return_accuracy")
    if ignore_index is None:  # PyTorch's F.linear_cross_entropy: None is "not given"
        ignore_index = IGNORE_INDEX_DEFAULT
    given_ignore_index = ignore_index  # the sentinel tells the core whether one was passed
    ignore_index = check_ignore_index(ignore_index)
    hidden_in = as_array(hidden, "hidden")
    weight_in = as_array(linear_weight, "linear_weight")
    bias_in = None if linear_bias is None else as_array(linear_bias, "linear_bias")
    dtypes = [_compute_dtype(hidden_in, "hidden"), _compute_dtype(weight_in, "linear_weight")]
    if bias_in is not None:
        dtypes.append(_compute_dtype(bias_in, "linear_bias"))
    dtype = np.result_type(*dtypes)
    if hidden_in.ndim == 0:
        raise ValueError("hidden: expected at least one dimension (the features), got a 0-d array")
    if weight_in.ndim != 2:
        raise ValueError(f"linear_weight: expected shape (classes, features), got {weight_in.shape}")
    n_classes, n_features = weight_in.shape
    if hidden_in.shape[-1] != n_features:
        raise ValueError(f"hidden: its last axis ({hidden_in.shape[-1]} features) must match "
                         f"linear_weight {weight_in.shape} (classes, features)")
    if n_classes == 0:
        raise ValueError(f"linear_weight: no classes, shape {weight_in.shape}")
    if bias_in is not None and bias_in.shape != (n_classes,):
        raise ValueError(f"linear_bias: expected shape ({n_classes},), got {bias_in.shape}")
    batch_shape = hidden_in.shape[:-1]
    n_rows = math.prod(batch_shape)

    target_in = as_array(target, "target")
    logits_shape = batch_shape + (n_classes,)
    if target_in.dtype.kind in "iu":
        labels = _index_target(target_in, batch_shape, n_classes, len(batch_shape), logits_shape)
        bad = (labels != ignore_index) & ((labels < 0) | (labels >= n_classes))
        if bad.any():
            row = int(np.argmax(bad))
            raise IndexError(f"target: class label {int(labels[row])} at position "
                             f"{position(row, batch_shape)} is outside [0, {n_classes}) "
                             f"and is not ignore_index ({ignore_index})")
        flat_target, is_index = labels, True
    elif target_in.dtype.kind == "f":
        if target_in.shape != logits_shape:
            raise ValueError(f"target: class probabilities must have the shape of the logits "
                             f"{logits_shape} (hidden's batch shape and the classes), "
                             f"got {target_in.shape}")
        if given_ignore_index is not IGNORE_INDEX_DEFAULT:
            raise ValueError(  # PyTorch's refusal, as cross_entropy's
                f"ignore_index: {ignore_index} given, but ignore_index is not supported for "
                "floating point target (class probabilities)")
        flat_target, is_index = target_in.reshape(n_rows, n_classes), False
    else:
        raise TypeError(f"target: expected integer class indices or float probabilities, "
                        f"got dtype {target_in.dtype}")

    class_weight = None
    if weight is not None:
        w_in = as_array(weight, "weight")
        result_dtype(w_in, "weight")
        if w_in.shape != (n_classes,):
            raise ValueError(f"weight: expected one weight per class, shape ({n_classes},), "
                             f"got {w_in.shape}")
        class_weight = np.ascontiguousarray(w_in, dtype=dtype)
    options = {"label_smoothing": label_smoothing, "ignore_index": given_ignore_index}

    def grad_dtype(arr: Any) -> Any:
        return arr.dtype if arr.dtype.kind == "f" or _blas.is_bfloat16(arr.dtype) else dtype

    gemms = None
    if (bfloat16_gemms and _blas.is_bfloat16(hidden_in.dtype)
            and _blas.is_bfloat16(weight_in.dtype) and _blas.torch_or_none() is not None):
        hidden_rows = np.ascontiguousarray(hidden_in).reshape(n_rows, n_features)
        projection = np.ascontiguousarray(weight_in)
        gemms = _blas.TorchBfloat16Gemms(hidden_rows, projection)
    else:
        hidden_rows = np.ascontiguousarray(hidden_in, dtype=dtype).reshape(n_rows, n_features)
        projection = _blas_array(weight_in, dtype)
    return Problem(
        hidden=hidden_rows,
        linear_weight=projection,
        linear_bias=None if bias_in is None else np.ascontiguousarray(bias_in, dtype=dtype),
        target=flat_target, is_index=is_index, weight=class_weight, options=options,
        reduction=reduction, dtype=dtype, batch_shape=batch_shape,
        grad_dtypes=(grad_dtype(hidden_in), grad_dtype(weight_in),
                     None if bias_in is None else grad_dtype(bias_in)),
        sample_weight=check_sample_weight(sample_weight, batch_shape), z_loss=checked_z_loss,
        softcap=checked_softcap, return_lse=checked_lse, return_accuracy=checked_accuracy,
        bfloat16_gemms=gemms,
    )


def _compute_dtype(arr: NDArray[Any], name: str) -> np.dtype[Any]:
    """The dtype the loss is computed in for arr: float32 for bfloat16
    (ml_dtypes), else result_dtype's rule."""
    return np.dtype(np.float32) if _blas.is_bfloat16(arr.dtype) else result_dtype(arr, name)


def _without_bfloat16_gemms(p: Problem) -> Problem:
    """p with hidden and linear_weight converted to float32 for NumPy's BLAS
    (the classes in blocks: a path the bfloat16 GEMMs do not take)."""
    return p._replace(hidden=p.hidden.astype(p.dtype), bfloat16_gemms=None,
                      linear_weight=p.linear_weight.astype(p.dtype))


class Gradients:
    """d_hidden, d_weight and d_bias, filled chunk by chunk."""

    def __init__(self, p: Problem, chunking: Chunking) -> None:
        n_rows, n_features = p.hidden.shape
        n_classes = p.linear_weight.shape[0]
        # bfloat16 GEMMs write bfloat16 gradients (d_weight's chunks added by
        # the GEMM, in float32 inside it, rounded to bfloat16 after each chunk)
        grad_dtype = p.dtype if p.bfloat16_gemms is None else p.hidden.dtype
        self.d_hidden = np.empty((n_rows, n_features), grad_dtype)
        self.d_weight = np.zeros((n_classes, n_features), grad_dtype) if n_rows == 0 else \
            np.empty((n_classes, n_features), grad_dtype)
        self.d_bias: NDArray[Any] | None = (None if p.linear_bias is None
                                             else np.zeros(n_classes, p.dtype))
        self.block_rows = max(1, min(n_classes,
                                     ACCUMULATE_BYTES // (n_features * p.dtype.itemsize or 1)))
        # allocated where NumPy's BLAS cannot add into d_weight
        self.block: NDArray[Any] | None = None
        self.hidden_t: NDArray[Any] | None = None  # (H, rows): d_hidden's chunk, transposed
        self.row_part: NDArray[Any] | None = (np.empty((chunking.rows, n_features), p.dtype)
                         if chunking.classes < n_classes else None)
        self.bias_part: NDArray[Any] | None = (None if p.linear_bias is None
                                                else np.empty(chunking.classes, p.dtype))

    def add(
        self, grad: Any, p: Problem, rows: Any, classes: Any, *, first_rows: Any,
        first_classes: Any,
    ) -> Any:
        """Back-propagates grad = d loss_sum / d logits[rows, classes] through the
        GEMM; first_rows / first_classes: the first chunk of rows / block of classes
        (written, not added)."""
        if p.bfloat16_gemms is not None:  # all classes
            p.bfloat16_gemms.backprop(grad, rows, self.d_hidden, self.d_weight, first_rows)
            self._add_bias(grad, classes)
            return
        d_hidden, hidden_rows, weight = self.d_hidden[rows], p.hidden[rows], p.linear_weight[classes]
        if first_classes:
            # d_hidden = (weight.T @ grad.T).T: OpenBLAS runs a chunk's few
            # rows against K = V classes at the full-size rate only this way
            if self.hidden_t is None or self.hidden_t.shape[1] < d_hidden.shape[0]:
                self.hidden_t = np.empty((d_hidden.shape[1], d_hidden.shape[0]), p.dtype)
            part_t = self.hidden_t[:, :d_hidden.shape[0]]
            np.matmul(weight.T, grad.T, out=part_t)
            np.copyto(d_hidden, part_t.T)
        else:
            assert self.row_part is not None  # allocated where the classes come in blocks
            part = self.row_part[:d_hidden.shape[0]]
            np.matmul(grad, weight, out=part)
            np.add(d_hidden, part, out=d_hidden)
        d_weight, grad_t = self.d_weight[classes], grad.T
        if first_rows:
            np.matmul(grad_t, hidden_rows, out=d_weight)
        elif not _blas.add_product_t(d_weight, grad, hidden_rows):
            # d_weight += grad.T @ hidden_rows without a temporary of d_weight's
            # size: NumPy's matmul cannot accumulate, so by blocks that stay in cache.
            if self.block is None:
                self.block = np.empty((self.block_rows, self.d_weight.shape[1]), self.d_weight.dtype)
            step = self.block_rows
            for start in range(0, d_weight.shape[0], step):
                block = slice(start, min(start + step, d_weight.shape[0]))
                part = self.block[:block.stop - start]
                np.matmul(grad_t[block], hidden_rows, out=part)
                np.add(d_weight[block], part, out=d_weight[block])
        self._add_bias(grad, classes)

    def _add_bias(self, grad: Any, classes: Any) -> None:
        if self.d_bias is not None and self.bias_part is not None:  # both, with linear_bias
            part = self.bias_part[:grad.shape[1]]
            np.sum(grad, axis=0, out=part)
            np.add(self.d_bias[classes], part, out=self.d_bias[classes])

    def finish(self, p: Problem, scale: Any) -> Any:
        """The gradients times scale, in the caller's shapes and dtypes. A mean
        over a zero denominator gives what PyTorch gives: 0 for ignored samples,
        NaN for counted ones (of zero weight) and for what they reach."""
        results = [self.d_hidden, self.d_weight] + ([self.d_bias] if self.d_bias is not None else [])
        if math.isinf(scale):
            counted = p.target != p.options["ignore_index"] if p.is_index else \
                np.ones(p.target.shape[0], bool)
            self.d_hidden[...] = np.where(counted, np.nan, 0.0)[:, None]
            for arr in results[1:]:
                arr[...] = np.nan if counted.any() else 0.0
        elif scale != 1.0:
            for arr in results:
                if _blas.is_bfloat16(arr.dtype):
                    _blas.scale_bfloat16(arr, scale)
                else:
                    np.multiply(arr, arr.dtype.type(scale), out=arr)
        results[0] = results[0].reshape(p.batch_shape + (self.d_hidden.shape[1],))
        return tuple(arr.astype(dt, copy=False) for arr, dt in zip(results, p.grad_dtypes))


class SideOutputs:
    """return_lse's per-row log-sum-exps and return_accuracy's counts, filled
    chunk by chunk."""

    def __init__(self, p: Problem) -> None:
        n_rows = p.hidden.shape[0]
        self.lse: NDArray[Any] | None = np.full(n_rows, np.nan, p.dtype) if p.return_lse else None
        self.accuracy = p.return_accuracy
        self.correct = self.counted = 0.0

    def results(self, p: Problem) -> tuple[Any, ...]:
        outputs: list[Any] = []
        if self.lse is not None:
            outputs.append(self.lse.reshape(p.batch_shape))
        if self.accuracy:
            outputs.append(reduce_loss("mean", p.dtype, self.correct, self.counted))
        return tuple(outputs)


def _logits_into(buf: Any, p: Problem, rows: Any, classes: Any) -> Any:
    """buf = hidden[rows] @ linear_weight[classes].T + linear_bias[classes]."""
    if p.bfloat16_gemms is not None:  # all classes: _run leaves blocks to NumPy's BLAS
        p.bfloat16_gemms.logits_into(buf, rows)
    else:
        np.matmul(p.hidden[rows], p.linear_weight[classes].T, out=buf)
    if p.linear_bias is not None:
        np.add(buf, p.linear_bias[classes], out=buf)
    return buf


def _whole_rows(buf: Any, p: Problem, rows: Any, want_grad: Any, row_loss: Any,
                side: SideOutputs) -> Any:
    """One chunk of rows with all classes: the fused kernel in place on its logits.
    Returns (loss sum, mean denominator); buf then holds d loss_sum / d logits."""
    logits = _logits_into(buf, p, rows, slice(None))
    chunk, loss = _losses.solve_classes(
        logits, p.target[rows], kind=Scores.LOGITS, weight=p.weight,
        reduction="none" if row_loss is not None else "sum", axis=-1, want_grad=want_grad,
        out=logits if want_grad else None,
        sample_weight=None if p.sample_weight is None else p.sample_weight[rows],
        z_loss=p.z_loss, softcap=p.softcap, return_lse=side.lse is not None,
        return_accuracy=side.accuracy, **p.options)
    if want_grad:
        chunk.finish_result()  # into logits (out=), the kernel's own buffer here
    if side.lse is not None:
        side.lse[rows] = chunk.side_outputs()[0]
    if side.accuracy:
        correct, counted = chunk.hits()
        side.correct += correct
        side.counted += counted
    if row_loss is not None:  # reduction="none": the per-row losses (the gradient is the sum's)
        row_loss[rows] = loss
        return 0.0, 0.0
    return float(loss), chunk.denominator()


def _capped_logits_into(buf: Any, p: Problem, rows: Any, classes: Any) -> Any:
    """A block's logits, soft-capped when p.softcap is given; and tanh(logits /
    softcap) for the gradient's chain rule (None without a cap)."""
    logits = _logits_into(buf, p, rows, classes)
    if p.softcap is None:
        return logits, None
    tanh = np.tanh(logits / p.dtype.type(p.softcap))
    np.multiply(tanh, p.dtype.type(p.softcap), out=logits)
    return logits, tanh


def _blocked_rows(
    buf: Any, p: Problem, rows: Any, chunking: Any, grads: Any, first_rows: Any, row_loss: Any,
    side: SideOutputs,
) -> Any:
    """One chunk of rows with the classes in blocks: the log-sum-exp merged over
    the blocks, then each block's gradient from its recomputed logits.
    Returns (loss sum, mean denominator); back-propagates when grads is given.
    The options of cross_entropy's finishing step (sample weights, z-loss, soft
    cap, lse, accuracy) are written out here as the kernels apply them."""
    n_classes = p.linear_weight.shape[0]
    target = p.target[rows]
    n = target.shape[0]
    eps = p.options["label_smoothing"]
    w = np.ones(n_classes) if p.weight is None else p.weight.astype(np.float64)
    blocks = [slice(s, min(s + chunking.classes, n_classes))
              for s in range(0, n_classes, chunking.classes)]
    if p.is_index:
        counted = target != p.options["ignore_index"]
        labels = np.where(counted, target, 0)
        w_y = np.where(counted, w[labels], 0.0)
    lse = np.full(n, -np.inf)
    top_logit, top_class = np.full(n, -np.inf), np.zeros(n, np.int64)  # the first maximum
    target_logit = np.zeros(n)  # z_y (class indices)
    weighted_sum = np.zeros(n)  # sum_c u_c z_c, u the weighted (smoothed) target
    mass = np.zeros(n)  # sum_c u_c (probabilities)

    def target_weights(cls: slice) -> NDArray[np.float64]:
        """u on a block: w * ((1 - eps) t + eps / C) (probabilities)."""
        t = np.asarray(target[:, cls], dtype=np.float64)
        u: NDArray[np.float64] = (t * (1 - eps) + eps / n_classes) * w[cls]
        return u

    for cls in blocks:
        logits, _ = _capped_logits_into(buf[:n, :cls.stop - cls.start], p, rows, cls)
        lse = _lse.merge_logsumexp(np.stack([lse, _special.logsumexp(logits)], axis=-1))
        if side.accuracy:  # a later block's maximum wins only when larger (np.argmax's first)
            block_top = np.argmax(logits, axis=1)
            block_max = logits[np.arange(n), block_top].astype(np.float64)
            larger = block_max > top_logit
            top_logit = np.where(larger, block_max, top_logit)
            top_class = np.where(larger, block_top + cls.start, top_class)
        if p.is_index:
            inside = counted & (labels >= cls.start) & (labels < cls.stop)
            target_logit[inside] = logits[inside.nonzero()[0], labels[inside] - cls.start]
            if eps:
                weighted_sum += logits @ w[cls]
        else:
            u = target_weights(cls)
            with np.errstate(invalid="ignore"):  # a class of no mass adds nothing, even at -inf
                weighted_sum += np.where(u == 0, 0.0, u * logits).sum(axis=1)
            mass += u.sum(axis=1)
    sw = np.ones(n) if p.sample_weight is None else p.sample_weight[rows]
    if p.is_index:
        w_total = w.sum()
        loss = (1 - eps) * w_y * (lse - target_logit)
        if eps:
            loss += eps / n_classes * (w_total * lse - weighted_sum)
        denominator = float(np.sum(w_y * sw))
        coef = np.where(counted, (1 - eps) * w_y + eps / n_classes * w_total, 0.0)
        truth = labels
    else:
        counted = np.ones(n, bool)
        loss = mass * lse - weighted_sum
        denominator = float(np.sum(sw))
        coef = mass
        truth = np.argmax(target, axis=1)
    if p.z_loss:
        loss = loss + p.z_loss * lse**2
        coef = coef + np.where(counted, 2 * p.z_loss * lse, 0.0)
    loss = np.where(counted, loss * sw, 0.0)  # ignored rows count 0, even NaN ones
    coef = coef * sw
    if side.lse is not None:
        side.lse[rows] = np.where(counted, lse, np.nan)
    if side.accuracy:
        right = (top_class == truth) & counted & ~np.isnan(lse)
        side.correct += float(np.sum(sw * right))
        side.counted += float(np.sum(sw[counted]))
    if row_loss is not None:
        row_loss[rows] = loss

    if grads is not None:
        for k, cls in enumerate(blocks):
            g, tanh = _capped_logits_into(buf[:n, :cls.stop - cls.start], p, rows, cls)
            np.subtract(g, lse[:, None].astype(p.dtype), out=g)
            np.exp(g, out=g)
            np.multiply(g, coef[:, None].astype(p.dtype), out=g)  # coef * softmax
            if p.is_index:
                if eps:
                    g -= (eps / n_classes * w[cls] * sw[:, None]).astype(p.dtype)
                inside = counted & (labels >= cls.start) & (labels < cls.stop)
                g[inside.nonzero()[0], labels[inside] - cls.start] -= \
                    ((1 - eps) * w_y[inside] * sw[inside]).astype(p.dtype)
                g[~counted] = 0
            else:
                g -= (target_weights(cls) * sw[:, None]).astype(p.dtype)
            if tanh is not None:  # the chain rule through the cap
                np.multiply(g, 1 - np.square(tanh), out=g)
            grads.add(g, p, rows, cls, first_rows=first_rows, first_classes=k == 0)
    return float(loss.sum()), denominator


def _run(hidden: ArrayLike, linear_weight: ArrayLike, target: ArrayLike,
         linear_bias: ArrayLike | None, weight: ArrayLike | None, ignore_index: int | None,
         reduction: object, label_smoothing: object, chunk_size: object, want_grad: bool,
         options: dict[str, Any]) -> Any:
    p = prepare(hidden, linear_weight, target, linear_bias, weight, ignore_index, reduction,
                label_smoothing, **options, bfloat16_gemms=True)
    side = SideOutputs(p)
    n_rows = p.hidden.shape[0]
    n_classes = p.linear_weight.shape[0]
    # bytes per logit of a chunk: float32 for the kernel, and bfloat16 for the
    # GEMMs' product and the narrowed gradient when PyTorch computes them
    logit_bytes = p.dtype.itemsize + (2 if p.bfloat16_gemms is not None else 0)
    chunking = choose_chunking(chunk_size, n_rows, n_classes, logit_bytes)
    if chunking.classes < n_classes and p.bfloat16_gemms is not None:
        p = _without_bfloat16_gemms(p)
    buf = np.empty((min(chunking.rows, n_rows), chunking.classes), p.dtype)
    grads = Gradients(p, chunking) if want_grad else None
    row_loss = np.empty(n_rows, p.dtype) if p.reduction == "none" else None
    total = denominator = 0.0
    for start in range(0, n_rows, chunking.rows):
        rows = slice(start, min(start + chunking.rows, n_rows))
        if chunking.classes == n_classes:
            chunk_total, chunk_denominator = _whole_rows(buf[:rows.stop - start], p, rows,
                                                         want_grad, row_loss, side)
            if grads is not None:
                grads.add(buf[:rows.stop - start], p, rows, slice(None),
                          first_rows=start == 0, first_classes=True)
        else:
            chunk_total, chunk_denominator = _blocked_rows(buf, p, rows, chunking, grads,
                                                           start == 0, row_loss, side)
        total += chunk_total
        denominator += chunk_denominator
    if row_loss is not None:  # reduction="none"
        loss, scale = row_loss.reshape(p.batch_shape), 1.0
    else:
        loss = reduce_loss(p.reduction, p.dtype, total, denominator)
        scale = 1.0
        if p.reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = float(np.float64(1.0) / np.float64(denominator))
    results: tuple[Any, ...] = ((loss,) + (grads.finish(p, scale) if grads is not None else ())
                                + side.results(p))
    return results if len(results) > 1 else loss


def unfused(hidden: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
            linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
            ignore_index: int | None = IGNORE_INDEX_DEFAULT, reduction: object = "mean",
            label_smoothing: object = 0.0, chunk_size: object = None,
            want_grad: bool = True, **class_options: Any) -> Any:
    """The route without chunks (fastxent.reference's twin): the N x V logits
    materialised, cross_entropy_with_grad on them, the gradients by three GEMMs.
    chunk_size is checked and otherwise ignored. class_options: sample_weight, z_loss,
    softcap, return_lse, return_accuracy."""
    p = prepare(hidden, linear_weight, target, linear_bias, weight, ignore_index, reduction,
                label_smoothing, **class_options)
    choose_chunking(chunk_size, p.hidden.shape[0], p.linear_weight.shape[0], p.dtype.itemsize)
    logits = p.hidden @ p.linear_weight.T
    if p.linear_bias is not None:
        logits += p.linear_bias
    options = dict(weight=p.weight, reduction=p.reduction, **p.options,
                   sample_weight=p.sample_weight, z_loss=p.z_loss, softcap=p.softcap,
                   return_lse=p.return_lse, return_accuracy=p.return_accuracy)
    side: tuple[Any, ...] | list[Any]  # the side outputs: lse, accuracy, as asked for
    if not want_grad:
        returned = _logits.cross_entropy(logits, p.target, **options)
        loss, side = (returned[0], returned[1:]) if isinstance(returned, tuple) else (returned, ())
    else:
        loss, grad, *side = _logits.cross_entropy_with_grad(logits, p.target, out=logits,
                                                            **options)
    if p.return_lse:  # of the flat rows: in the batch shape
        side = (side[0].reshape(p.batch_shape),) + tuple(side[1:])
    loss = loss.reshape(p.batch_shape) if p.reduction == "none" else loss
    if not want_grad:
        return (loss,) + tuple(side) if side else loss
    results = [(grad @ p.linear_weight).reshape(p.batch_shape + p.hidden.shape[1:]),
               grad.T @ p.hidden]
    if p.linear_bias is not None:
        results.append(grad.sum(axis=0))
    grads = tuple(r.astype(dt, copy=False) for r, dt in zip(results, p.grad_dtypes))
    return (loss,) + grads + tuple(side)


@overload
def linear_cross_entropy(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> Float: ...


@overload
def linear_cross_entropy(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> NDArray[Float]: ...


@overload
def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatScalar: ...


@overload
def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatArray: ...


@overload
def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[True],
    return_accuracy: bool = ...,
) -> tuple[ScalarOrArray, ...]: ...


@overload
def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: Literal[True],
) -> tuple[ScalarOrArray, ...]: ...


@overload
def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: bool = ...,
) -> ScalarOrArray | tuple[ScalarOrArray, ...]: ...


def linear_cross_entropy(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | tuple[int, int] | None = None,
    sample_weight: ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    return_accuracy: bool = False,
) -> Any:
    """Cross-entropy of ``hidden @ linear_weight.T + linear_bias``, without the N x V logits.

    The same numbers as ``cross_entropy(hidden @ linear_weight.T + linear_bias,
    target, ...)`` and as PyTorch's ``F.linear_cross_entropy``, whose names this
    follows: the projection is `linear_weight` laid out (classes, features) as in
    ``torch.nn.Linear``, its bias `linear_bias`, and `weight` is the per-class
    weight of ``cross_entropy``. The logits are computed a chunk at a time.

    Parameters
    ----------
    hidden : array_like, shape (..., H)
        The features of each sample (a language model's last hidden states);
        every axis but the last is a batch axis.
    linear_weight : array_like, shape (V, H)
        The projection to the V classes (the output embedding / LM head).
    target : array_like
        Integer class indices of shape ``hidden.shape[:-1]``, or float class
        probabilities of shape ``hidden.shape[:-1] + (V,)``.
    linear_bias : array_like, shape (V,), optional
        Added to the logits.
    weight : array_like, shape (V,), optional
        A weight per class, as in ``cross_entropy``.
    ignore_index : int, default -100
        Samples of this class index count for nothing. Class indices only: one
        passed with probability targets raises ``ValueError``, as in
        ``cross_entropy`` and PyTorch. None means the default, as in PyTorch.
    reduction : {"mean", "sum", "none"}, default "mean"
        As ``cross_entropy``: the weighted mean over the counted samples, the
        sum, or one loss per sample.
    label_smoothing : float in [0, 1], default 0.0
        As ``cross_entropy``: the target mixed with the uniform distribution.
    chunk_size : int or (int, int), optional
        Rows of `hidden` per chunk, or (rows, classes) to cut the classes into
        blocks as well. Default: chosen by the rule below.
    sample_weight : array_like, optional
        One weight per sample (shape ``hidden.shape[:-1]`` or broadcastable to
        it), as in ``cross_entropy``.
    z_loss : float, default 0.0
        The z-loss coefficient, as in ``cross_entropy``: ``z * lse**2`` per
        counted sample.
    softcap : float, optional
        Soft-cap the logits to ``softcap * tanh(logits / softcap)`` first, as
        in ``cross_entropy``.
    return_lse, return_accuracy : bool, default False
        Also return each sample's log-sum-exp (of the capped logits; NaN for
        ignored samples) and the accuracy, as in ``cross_entropy``.

    Returns
    -------
    numpy scalar, or ndarray of shape ``hidden.shape[:-1]`` (``"none"``)
        The loss, in the dtype of the computation: float32 when every input is float32,
        else float64 (the inputs are promoted together, as NumPy does). With
        `return_lse` / `return_accuracy`, a tuple ``(loss, lse, accuracy)`` of
        those asked for.

    Raises
    ------
    ValueError
        Shapes that do not fit together, a bad reduction, label smoothing or
        chunk size.
    IndexError
        A class label outside ``[0, V)`` that is not `ignore_index`.
    TypeError
        A target that is neither integer nor float; a chunk size that is not
        an integer.

    See Also
    --------
    linear_cross_entropy_with_grad : The loss and the gradients of the three inputs.
    cross_entropy : The loss of given logits.
    fastxent.reference.linear_cross_entropy : The unfused twin, on NumPy alone.

    Notes
    -----
    The loss is that of :func:`cross_entropy` (its formula and PyTorch's
    weighted mean) on the logits

    .. math::

        z_n = W h_n + b,

    :math:`h_n` a row of `hidden`, :math:`W` `linear_weight` (V, H) and
    :math:`b` `linear_bias`, which are never held whole.

    Chunk rule: a chunk's logits take at most 128 MiB (``rows = 128 MiB /
    (V * itemsize)``: 1,048 rows at V = 32,000 and 261 rows at V = 128,256 in
    float32). That is far beyond the caches, so the rule is set by the GEMMs
    and by memory: the GEMMs of a chunk run at their full-size rate only from
    a few hundred rows on (measured at 2 threads: 130-row chunks took 1.22x the
    three full-size GEMMs at V = 128,256, 261-row chunks 1.03x; 512-row
    chunks 1.06x and 1,024-row chunks 1.00x at V = 32,000), and each chunk
    re-reads and re-writes ``d_weight``; the bound below keeps them well under
    the N x V logits. Where fewer than 128 rows of V classes would fit (V
    above about 262,000 in float32), chunks of 128 rows take the classes in
    blocks of 128 MiB, at the cost of computing each block's logits twice
    (first the log-sum-exp of each row, then the gradient).

    bfloat16 `hidden` and `linear_weight` (``ml_dtypes.bfloat16``): where
    PyTorch is installed, the GEMMs run in bfloat16 through its matmul
    (float32 accumulation inside each GEMM, AVX512-BF16 or AMX where the CPU
    has them); the logits are widened to float32 for the kernel, the chunk's
    gradient narrowed to bfloat16 for the two backward GEMMs (a bfloat16
    buffer beside the float32 chunk: the rule counts 6 bytes a logit), and the loss is
    float32, the gradients bfloat16 (within 2**-6 of their largest element of
    a float64 computation in the tests, no further than PyTorch's own
    bfloat16 path). Without PyTorch, or with the classes in blocks, they are
    converted to float32 first (the GEMMs then run in float32).

    Memory: beyond its results, a call holds one chunk's logits (at most
    ``rows * classes * itemsize`` bytes, 128 MiB by default), the chunk's
    ``d_hidden`` transposed (``rows * H * itemsize``) and vectors of
    length N or V; where NumPy's own OpenBLAS cannot add into ``d_weight``
    (NumPy linked to another BLAS), an 8 MiB block for that as well. The forward alone
    never holds more than the chunk; ``linear_cross_entropy_with_grad`` adds the
    gradients' own size (``d_hidden`` and ``d_weight``). Probability targets
    with classes in blocks also take a float64 copy of each block's targets.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> rng = np.random.default_rng(0)
    >>> hidden = rng.standard_normal((6, 4), dtype=np.float32)
    >>> head = rng.standard_normal((10, 4), dtype=np.float32)
    >>> labels = np.array([1, 2, 3, -100, 5, 9])
    >>> loss = fastxent.linear_cross_entropy(hidden, head, labels, chunk_size=4)
    >>> bool(np.isclose(loss, fastxent.cross_entropy(hidden @ head.T, labels)))
    True
    """
    return _run(hidden, linear_weight, target, linear_bias, weight, ignore_index, reduction,
                label_smoothing, chunk_size, want_grad=False,
                options=dict(sample_weight=sample_weight, z_loss=z_loss, softcap=softcap,
                             return_lse=return_lse, return_accuracy=return_accuracy))


@overload
def linear_cross_entropy_with_grad(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[Float, NDArray[Float], NDArray[Float]]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: ArrayLike,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[Float, NDArray[Float], NDArray[Float], NDArray[Float]]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[NDArray[Float], NDArray[Float], NDArray[Float]]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: NDArray[Float],
    linear_weight: NDArray[Float],
    target: ArrayLike,
    *,
    linear_bias: ArrayLike,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[NDArray[Float], NDArray[Float], NDArray[Float], NDArray[Float]]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatScalar, FloatArray, FloatArray]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatScalar, FloatArray, FloatArray, FloatArray]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatArray, FloatArray, FloatArray]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]: ...


@overload
def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = ...,
    weight: ArrayLike | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    chunk_size: int | tuple[int, int] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: bool = ...,
) -> tuple[ScalarOrArray, ...]: ...


def linear_cross_entropy_with_grad(
    hidden: ArrayLike,
    linear_weight: ArrayLike,
    target: ArrayLike,
    *,
    linear_bias: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int | None = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    chunk_size: int | tuple[int, int] | None = None,
    sample_weight: ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    return_accuracy: bool = False,
) -> Any:
    r"""(loss, d_hidden, d_weight[, d_bias]) of linear_cross_entropy, without N x V arrays.

    The gradients are those of the loss (of ``loss.sum()`` with
    ``reduction="none"``) with respect to `hidden`, `linear_weight` and, when it
    is given, `linear_bias` (``d_bias`` is returned only then). Each chunk's
    logits are turned in place into their gradient by the fused kernel; then
    ``d_hidden[chunk] = grad @ linear_weight`` and ``d_weight += grad.T @
    hidden[chunk]``; a mean's ``1 / denominator`` scales the gradients once at
    the end.

    Parameters
    ----------
    hidden, linear_weight, target : array_like
        As linear_cross_entropy.
    linear_bias, weight : array_like, optional
        As linear_cross_entropy.
    ignore_index, reduction, label_smoothing, chunk_size : optional
        As linear_cross_entropy.
    sample_weight, z_loss, softcap, return_lse, return_accuracy : optional
        As linear_cross_entropy; the side outputs come after the gradients:
        ``(loss, d_hidden, d_weight[, d_bias][, lse][, accuracy])``.

    Returns
    -------
    loss : numpy scalar or ndarray
        As linear_cross_entropy.
    d_hidden : ndarray, the shape of `hidden`
        The gradient with respect to hidden, in hidden's dtype when that is a float dtype.
    d_weight : ndarray, shape (V, H)
        The gradient with respect to linear_weight, in its dtype when that is a float dtype.
    d_bias : ndarray, shape (V,)
        The gradient with respect to linear_bias, returned only when `linear_bias` is given.

    Raises
    ------
    ValueError, IndexError, TypeError
        As linear_cross_entropy, before any computation.

    See Also
    --------
    linear_cross_entropy : The loss alone.
    cross_entropy_with_grad : The loss and gradient of given logits.

    Notes
    -----
    With :math:`G` the gradient of the loss with respect to the logits (see
    :func:`cross_entropy_with_grad`), computed chunk by chunk,

    .. math::

        \frac{\partial L}{\partial H} = G W, \qquad
        \frac{\partial L}{\partial W} = G^\top H, \qquad
        \frac{\partial L}{\partial b} = \sum_n G_n.

    Peak extra memory: the gradients themselves, plus one chunk's logits (128 MiB
    by default, see linear_cross_entropy) and its ``d_hidden``, plus vectors of length N or V (and an
    8 MiB block where NumPy's BLAS cannot accumulate); never the N x V logits.
    The chunks after the first add into ``d_weight`` through NumPy's own
    OpenBLAS (its ``?gemm`` with beta = 1) where NumPy ships one.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> rng = np.random.default_rng(0)
    >>> hidden = rng.standard_normal((6, 4))
    >>> head = rng.standard_normal((10, 4))
    >>> labels = np.array([1, 2, 3, -100, 5, 9])
    >>> loss, d_hidden, d_weight = fastxent.linear_cross_entropy_with_grad(
    ...     hidden, head, labels, chunk_size=4)
    >>> _, d_logits = fastxent.cross_entropy_with_grad(hidden @ head.T, labels)
    >>> bool(np.allclose(d_hidden, d_logits @ head) and np.allclose(d_weight, d_logits.T @ hidden))
    True
    """
    return _run(hidden, linear_weight, target, linear_bias, weight, ignore_index, reduction,
                label_smoothing, chunk_size, want_grad=True,
                options=dict(sample_weight=sample_weight, z_loss=z_loss, softcap=softcap,
                             return_lse=return_lse, return_accuracy=return_accuracy))
