"""Losses from logits, with the semantics of torch.nn.functional."""

from __future__ import annotations

from typing import Any, Literal, overload

from ._typing import ArrayLike, Float, FloatArray, FloatScalar, NDArray, Reduced, Reduction
from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@overload
def cross_entropy(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
) -> Float: ...


@overload
def cross_entropy(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
) -> NDArray[Float]: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
) -> FloatScalar: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
) -> FloatArray: ...


@signature_hints
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    axis: int | None = None,
) -> Any:
    """Softmax cross-entropy of `logits` against `target`, as
    torch.nn.functional.cross_entropy with the classes on `axis`.

    target: integer class indices (the shape of logits without `axis`) or
    float class probabilities (the shape of logits). weight: one weight per
    class. ignore_index: a class index whose samples count for nothing
    (class indices only: given with probabilities, ValueError, as PyTorch).
    reduction: "none" (per sample), "sum" or "mean" (weighted, over the
    samples counted). label_smoothing: in [0, 1]. Zero classes: each sample's
    loss is 0, the mean NaN, as PyTorch (a label that counts: IndexError).

    axis: the class axis. None (the default) takes the last axis for inputs
    of rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
    among 1 (PyTorch's layout) and -1 (Keras's, JAX's, NumPy's), and raises
    ValueError where both fit (probability targets always do): pass axis=1 or
    axis=-1 there.
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=False, out=None)


@overload
def cross_entropy_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def cross_entropy_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    axis: int | None = None,
    out: NDArray[Any] | None = None,
) -> Any:
    """(loss, d loss / d logits) of cross_entropy in one fused pass.

    With reduction="none" the gradient is that of loss.sum(). out: an array
    of the shape and dtype of the gradient to write it into, or `logits`
    itself to overwrite the logits (no extra memory); it is returned.
    axis: as cross_entropy's (None: the last axis, or for rank >= 3 the one
    the target fits among 1 and -1).
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=True, out=out)


@overload
def binary_cross_entropy_with_logits(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> Float: ...


@overload
def binary_cross_entropy_with_logits(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> NDArray[Float]: ...


@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> FloatScalar: ...


@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> FloatArray: ...


@signature_hints
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Binary cross-entropy of sigmoid(logits) against target in [0, 1],
    elementwise, as torch.nn.functional.binary_cross_entropy_with_logits:
    stable for any logit. weight and pos_weight (the weight of positive
    examples, usually one per class on the last axis) broadcast to logits."""
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=False, out=None)


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    out: NDArray[Any] | None = None,
) -> Any:
    """(loss, d loss / d logits) of binary_cross_entropy_with_logits in one pass."""
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=True, out=out)
