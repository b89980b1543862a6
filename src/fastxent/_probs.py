"""Losses from probabilities and log-probabilities (torch.nn.functional)."""

from __future__ import annotations

from typing import Any, Literal, overload

from ._typing import ArrayLike, Float, FloatArray, FloatScalar, NDArray, Reduced, Reduction
from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@overload
def binary_cross_entropy(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> Float: ...


@overload
def binary_cross_entropy(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> NDArray[Float]: ...


@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> FloatScalar: ...


@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> FloatArray: ...


@signature_hints
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Any:
    """Binary cross-entropy of probabilities in [0, 1] against targets in
    [0, 1], elementwise, as torch.nn.functional.binary_cross_entropy: each
    log term is clamped at -100, so probabilities of exactly 0 and 1 give
    finite losses. A probability outside [0, 1] raises ValueError (NaN
    passes through as NaN)."""
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=False, out=None)


@overload
def binary_cross_entropy_with_grad(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    out: NDArray[Any] | None = None,
) -> Any:
    """(loss, d loss / d probs) of binary_cross_entropy in one pass (PyTorch's
    gradient, whose denominator p (1 - p) is kept above PyTorch's 1e-12, a
    float32: 9.9999999600419720e-13)."""
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=True, out=out)


@overload
def nll_loss(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
) -> Float: ...


@overload
def nll_loss(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
) -> NDArray[Float]: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
) -> FloatScalar: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
) -> FloatArray: ...


@signature_hints
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    axis: int | None = None,
) -> Any:
    """Negative log-likelihood of class indices under log-probabilities, as
    torch.nn.functional.nll_loss with the classes on `axis`: as in
    cross_entropy, None takes the last axis for inputs of rank 1 and 2, and
    for rank >= 3 the axis the target's shape fits among 1 (PyTorch's) and -1,
    raising ValueError where both fit."""
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=False, out=None)


@overload
def nll_loss_with_grad(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def nll_loss_with_grad(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    axis: int | None = None,
    out: NDArray[Any] | None = None,
) -> Any:
    """(loss, d loss / d log_probs) of nll_loss (axis as nll_loss's)."""
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=True, out=out)
