"""The drivers of the losses: check the arguments into a problem record
(fastxent._validate), run the current backend's kernel on it, and give the
results back in the caller's shape and dtype. The public functions of
_logits.py and _probs.py are thin calls of these."""

from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _config
from ._kinds import BinaryInput, Scores
from ._typing import Loss, LossAndGrad
from ._validate import (
    ClassProblem,
    check_ignore_index,
    check_label_smoothing,
    check_reduction,
    compute_dtype,
    kernel_array,
    position,
    prepare_binary,
    prepare_classes,
)


@overload
def class_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    kind: Scores,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    axis: int | None,
    want_grad: Literal[False],
    out: NDArray[Any] | None,
) -> Loss: ...


@overload
def class_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    kind: Scores,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    axis: int | None,
    want_grad: Literal[True],
    out: NDArray[Any] | None,
) -> LossAndGrad: ...


@overload
def class_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    kind: Scores,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    axis: int | None,
    want_grad: bool,
    out: NDArray[Any] | None,
) -> Loss | LossAndGrad: ...


@overload
def class_loss(scores: ArrayLike, target: ArrayLike, *, want_grad: bool, **options: Any) -> Any: ...


def class_loss(scores: ArrayLike, target: ArrayLike, *, want_grad: bool, **options: Any) -> Any:
    """cross_entropy (kind Scores.LOGITS) or nll_loss (Scores.LOG_PROBS), and
    its gradient when want_grad: (loss, gradient), else the loss; followed by
    the side outputs asked for (lse, accuracy), as one tuple. options: those
    of solve_classes."""
    p, loss = solve_classes(scores, target, want_grad=want_grad, **options)
    results: tuple[Any, ...] = (loss, p.finish_result()) if want_grad else (loss,)
    results += p.side_outputs()
    return results if len(results) > 1 else loss


def solve_classes(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    kind: Scores,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    axis: int | None,
    want_grad: bool,
    out: NDArray[Any] | None,
    sample_weight: ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    return_accuracy: bool = False,
) -> tuple[ClassProblem, Loss]:
    """The checked problem (a ClassProblem, its gradient and side outputs
    computed into its buffers) and the loss, for callers that need more than
    class_loss gives back (fastxent._partials: the accuracy's counts)."""
    # The quick path only without the options (exactly their defaults: any
    # other value, 0 for False included, is checked by prepare_classes).
    plain = (
        sample_weight is None
        and type(z_loss) is float
        and z_loss == 0.0
        and softcap is None
        and return_lse is False
        and return_accuracy is False
    )
    quick = plain and _laid_out_problem(
        scores, target, kind, weight, ignore_index, reduction, label_smoothing, axis, want_grad, out
    )
    p = quick or prepare_classes(
        scores,
        target,
        kind=kind,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
        axis=axis,
        want_grad=want_grad,
        out=out,
        sample_weight=sample_weight,
        z_loss=z_loss,
        softcap=softcap,
        return_lse=return_lse,
        return_accuracy=return_accuracy,
    )
    row_loss = np.empty(p.x.shape[0], p.compute_dtype) if p.reduction == "none" else None
    if p.x.shape[1] == 0:
        total, denom = _no_classes(p, row_loss)
    else:
        total, denom, bad_row = _config.kernels().class_loss(
            p, row_loss=row_loss, n_threads=_config.threads_for(p.x.size)
        )
        if bad_row >= 0:
            raise p.label_error(bad_row)
    loss = p.finish_loss(total, denom, row_loss)
    return p, loss


_KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _laid_out_problem(
    scores: ArrayLike,
    target: ArrayLike,
    kind: Scores,
    weight: ArrayLike | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
    axis: int | None,
    want_grad: bool,
    out: NDArray[Any] | None,
) -> ClassProblem | None:
    """The problem record of the commonest call, built without prepare_classes'
    general layout work, or None for any other call: (N, C) C-contiguous
    float32/float64 scores with the classes last, (N,) signed integer labels,
    no weight, no out= or an out= of the scores' layout apart from the inputs
    (the JAX bridge's: XLA's output buffer). The bridges' per-call cost at
    small sizes is mostly Python work. The options are checked by the same
    functions, in the same order; shapes and labels the kernel checks again."""
    if not (
        type(scores) is np.ndarray
        and type(target) is np.ndarray
        and weight is None
        and scores.ndim == 2
        and target.ndim == 1
        and (axis is None or (type(axis) is int and axis in (-1, 1)))  # not 1.0, not True
        and scores.dtype in _KERNEL_FLOATS
        and target.dtype.kind == "i"
        and scores.flags.c_contiguous
        and scores.flags.aligned
        and 0 < target.shape[0] == scores.shape[0]
        and scores.shape[1] > 0
        and (out is None or (want_grad and _separate_result(out, scores, target)))
    ):
        return None
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    ignore_index = check_ignore_index(ignore_index)
    return ClassProblem(
        x=scores,
        axis=1,
        batch_shape=target.shape,
        result=np.empty_like(scores) if out is None and want_grad else out,
        out=out,
        result_is_out=out is not None,
        target=kernel_array(target, np.int64),
        is_index=True,
        scores=kind,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def _separate_result(out: object, scores: NDArray[Any], target: NDArray[Any]) -> bool:
    """Whether the kernel can write straight into out: a writable array of the
    scores' shape, dtype and layout that shares no memory with the inputs."""
    return (
        type(out) is np.ndarray
        and out.shape == scores.shape
        and out.dtype == scores.dtype
        and out.flags.c_contiguous
        and out.flags.aligned
        and out.flags.writeable
        and not np.may_share_memory(out, scores)
        and not np.may_share_memory(out, target)
    )


def _no_classes(p: ClassProblem, row_loss: NDArray[Any] | None) -> tuple[float, float]:
    """(total, denominator) of a problem with zero classes, as PyTorch: a label
    that counts is out of range; each row's loss is an empty sum, 0, and a
    mean has nothing to count (NaN). The gradient is empty."""
    if p.is_index:
        counted = p.target != p.ignore_index
        if counted.any():
            raise p.label_error(int(np.argmax(counted)))
    if row_loss is not None:
        row_loss[...] = 0
    return 0.0, 0.0


@overload
def binary_loss(
    x: ArrayLike,
    target: ArrayLike,
    *,
    kind: BinaryInput,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    reduction: str,
    want_grad: Literal[False],
    out: NDArray[Any] | None,
    target_in_unit: bool = ...,
) -> Loss: ...


@overload
def binary_loss(
    x: ArrayLike,
    target: ArrayLike,
    *,
    kind: BinaryInput,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    reduction: str,
    want_grad: Literal[True],
    out: NDArray[Any] | None,
    target_in_unit: bool = ...,
) -> LossAndGrad: ...


@overload
def binary_loss(
    x: ArrayLike,
    target: ArrayLike,
    *,
    kind: BinaryInput,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    reduction: str,
    want_grad: bool,
    out: NDArray[Any] | None,
    target_in_unit: bool = ...,
) -> Loss | LossAndGrad: ...


def binary_loss(
    x: ArrayLike,
    target: ArrayLike,
    *,
    kind: BinaryInput,
    weight: ArrayLike | None,
    pos_weight: ArrayLike | None,
    reduction: str,
    want_grad: bool,
    out: NDArray[Any] | None,
    target_in_unit: bool = True,
) -> Loss | LossAndGrad:
    """binary_cross_entropy_with_logits (kind BinaryInput.LOGITS) or
    binary_cross_entropy (BinaryInput.PROBS), and its gradient when want_grad.
    target_in_unit: refuse probability targets outside [0, 1] (PyTorch does;
    Keras does not)."""
    p = prepare_binary(
        x,
        target,
        kind=kind,
        weight=weight,
        pos_weight=pos_weight,
        reduction=reduction,
        want_grad=want_grad,
        out=out,
        target_in_unit=target_in_unit,
    )
    elem_loss = np.empty(p.x.shape, compute_dtype(p.dtype)) if p.reduction == "none" else None
    total, count, bad = _config.kernels().binary_loss(
        p, elem_loss=elem_loss, n_threads=_config.threads_for(p.x.size)
    )
    if bad >= 0:
        raise ValueError(
            f"{kind.value}: {p.x.reshape(-1)[bad]!r} at position "
            f"{position(bad, p.shape)} is outside [0, 1]"
        )
    loss: Loss = p.finish_loss(total, count, elem_loss)
    return (loss, p.finish_grad()) if want_grad else loss


__all__ = ["BinaryInput", "Scores", "binary_loss", "class_loss", "solve_classes"]
