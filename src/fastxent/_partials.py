"""The parts a mean is made of, for callers that add losses up chunk by chunk.

A loss with ``reduction="mean"`` is ``sum / denominator``: for class targets
PyTorch's weighted mean divides by the summed class weights of the counted
(not ignored) samples, for probability targets by the number of samples, and
the binary losses by the number of elements. Code that splits one problem into
chunks (fastxent.dask, fastxent.stream, linear_cross_entropy) computes each
chunk's ``(sum, denominator)`` here, adds them in a fixed order, and divides
once at the end; the gradient of the mean is the gradient of the sum times
``1 / denominator`` of the whole problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _logits, _probs
from ._validate import (
    IGNORE_INDEX_DEFAULT,
    as_array,
    check_axis,
    check_ignore_index,
    position,
)

_POSITION = re.compile(r"at position \(([0-9, ]*)\)")


@contextmanager
def located(origin: tuple[int, ...] | None) -> Iterator[None]:
    """Errors raised inside name the position in the whole array: `origin` is
    the index of the chunk's first element there (None: the chunk is the whole).

    The core's messages name a position as "at position (i, j)" within the
    arrays it was given; a chunk's caller adds the chunk's origin to it, and
    the exception keeps its type and the rest of its message.
    """
    try:
        yield
    except (IndexError, ValueError) as exc:
        if not origin or not _POSITION.search(str(exc)):
            raise

        def shifted(match: re.Match[str]) -> str:
            local = [int(i) for i in match.group(1).replace(" ", "").split(",") if i]
            whole = tuple(int(o) + i for o, i in zip(origin[-len(local):], local))
            return f"at position {whole}"

        raise type(exc)(_POSITION.sub(shifted, str(exc), count=1)) from None


class Parts(NamedTuple):
    """A chunk's share of a reduced loss."""

    loss_sum: float  # the loss with reduction="sum", in float64
    denominator: float  # what reduction="mean" divides the whole problem's sum by
    grad: NDArray[Any] | None  # d loss_sum / d input, or None


def class_loss_parts(scores: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                     ignore_index: int = IGNORE_INDEX_DEFAULT, label_smoothing: float = 0.0,
                     axis: int = -1, want_grad: bool = False,
                     out: NDArray[Any] | None = None, log_probs: bool = False,
                     origin: tuple[int, ...] | None = None) -> Parts:
    """(loss sum, mean denominator, gradient of the sum) of cross_entropy, or of
    nll_loss when ``log_probs``, with their options and checks. origin: see
    `located` (the chunk's place in the whole, for error messages)."""
    with located(origin):
        return _class_loss_parts(scores, target, weight, ignore_index, label_smoothing, axis,
                                 want_grad, out, log_probs)


def _class_loss_parts(scores: ArrayLike, target: ArrayLike, weight: ArrayLike | None,
                      ignore_index: int, label_smoothing: float, axis: int,
                      want_grad: bool, out: NDArray[Any] | None, log_probs: bool) -> Parts:
    options: dict[str, Any] = dict(weight=weight, ignore_index=ignore_index, reduction="sum",
                                   axis=axis)
    if log_probs:
        fn = cast(Callable[..., Any], _probs.nll_loss_with_grad if want_grad else _probs.nll_loss)
    else:
        options["label_smoothing"] = label_smoothing
        fn = cast(Callable[..., Any],
                  _logits.cross_entropy_with_grad if want_grad else _logits.cross_entropy)
    if want_grad:
        loss_sum, grad = fn(scores, target, out=out, **options)
    else:
        loss_sum, grad = fn(scores, target, **options), None
    # The call above has checked every argument: what follows cannot fail.
    target_in = as_array(target, "target")
    scores_in = as_array(scores, "logits")
    if target_in.dtype.kind == "f":  # probabilities: the mean is over the samples
        n_classes = scores_in.shape[check_axis(axis, scores_in.ndim, "logits")]
        denominator = float(target_in.size // n_classes) if n_classes else 0.0
    else:
        denominator = _counted_weight(target_in, weight, check_ignore_index(ignore_index))
    return Parts(float(loss_sum), denominator, grad)


def _counted_weight(labels: ArrayLike, weight: ArrayLike | None, ignore_index: int) -> float:
    """PyTorch's mean denominator of valid class labels: the number of samples
    not ignored, or the sum of their classes' weights."""
    flat = np.asarray(labels, dtype=np.int64).reshape(-1)
    counted = flat[flat != ignore_index]
    if weight is None:
        return float(counted.size)
    w = np.asarray(as_array(weight, "weight"), dtype=np.float64)
    return float(np.sum(w[counted], dtype=np.float64))


def class_denominator(target: ArrayLike, n_classes: int, *, weight: ArrayLike | None = None,
                      ignore_index: int = -100,
                      origin: tuple[int, ...] | None = None) -> float:
    """The mean denominator of class labels `target` alone (no scores needed),
    after checking them: a label outside [0, n_classes) that is not
    ignore_index raises the IndexError cross_entropy raises, naming its
    position (shifted by `origin`)."""
    ignore_index = check_ignore_index(ignore_index)
    labels = np.asarray(target)
    bad = ((labels < 0) | (labels >= n_classes)) & (labels != ignore_index)
    if bad.any():
        k = int(np.argmax(bad.reshape(-1)))
        local = position(k, labels.shape)
        # The core's own check, on one row of zeros holding the bad label:
        # the same exception and message, at the label's place in the whole.
        ones = (1,) * labels.ndim
        one = np.zeros(ones + (n_classes,), np.float32)
        with located(tuple(int(o) + i for o, i in zip(origin or (0,) * len(local), local))):
            _probs.nll_loss(one, labels.reshape(-1)[k:k + 1].reshape(ones),
                            ignore_index=ignore_index)
    return _counted_weight(labels, weight, ignore_index)


def binary_loss_parts(x: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                      pos_weight: ArrayLike | None = None, want_grad: bool = False,
                      out: NDArray[Any] | None = None, from_logits: bool = True,
                      origin: tuple[int, ...] | None = None) -> Parts:
    """(loss sum, number of elements, gradient of the sum) of
    binary_cross_entropy_with_logits (``from_logits``) or binary_cross_entropy.
    origin: see `located`."""
    with located(origin):
        return _binary_loss_parts(x, target, weight, pos_weight, want_grad, out, from_logits)


def _binary_loss_parts(x: ArrayLike, target: ArrayLike, weight: ArrayLike | None,
                       pos_weight: ArrayLike | None, want_grad: bool,
                       out: NDArray[Any] | None, from_logits: bool) -> Parts:
    options: dict[str, Any] = dict(weight=weight, reduction="sum")
    if from_logits:
        options["pos_weight"] = pos_weight
        fn = cast(Callable[..., Any], _logits.binary_cross_entropy_with_logits_with_grad
                  if want_grad else _logits.binary_cross_entropy_with_logits)
    else:
        fn = cast(Callable[..., Any], _probs.binary_cross_entropy_with_grad
                  if want_grad else _probs.binary_cross_entropy)
    if want_grad:
        loss_sum, grad = fn(x, target, out=out, **options)
    else:
        loss_sum, grad = fn(x, target, **options), None
    return Parts(float(loss_sum), float(as_array(x, "x").size), grad)
