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

from typing import NamedTuple

import numpy as np

from . import _logits, _probs
from ._validate import IGNORE_INDEX_DEFAULT, as_array, check_axis, check_ignore_index


class Parts(NamedTuple):
    """A chunk's share of a reduced loss."""

    loss_sum: float  # the loss with reduction="sum", in float64
    denominator: float  # what reduction="mean" divides the whole problem's sum by
    grad: np.ndarray | None  # d loss_sum / d input, or None


def class_loss_parts(scores, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                     label_smoothing=0.0, axis=-1, want_grad=False, out=None,
                     log_probs=False) -> Parts:
    """(loss sum, mean denominator, gradient of the sum) of cross_entropy, or of
    nll_loss when ``log_probs``, with their options and checks."""
    options = dict(weight=weight, ignore_index=ignore_index, reduction="sum", axis=axis)
    if log_probs:
        fn = _probs.nll_loss_with_grad if want_grad else _probs.nll_loss
    else:
        options["label_smoothing"] = label_smoothing
        fn = _logits.cross_entropy_with_grad if want_grad else _logits.cross_entropy
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
        labels = np.asarray(target_in, dtype=np.int64).reshape(-1)
        counted = labels[labels != check_ignore_index(ignore_index)]
        if weight is None:
            denominator = float(counted.size)
        else:
            w = np.asarray(as_array(weight, "weight"), dtype=np.float64)
            denominator = float(np.sum(w[counted], dtype=np.float64))
    return Parts(float(loss_sum), denominator, grad)


def binary_loss_parts(x, target, *, weight=None, pos_weight=None, want_grad=False, out=None,
                      from_logits=True) -> Parts:
    """(loss sum, number of elements, gradient of the sum) of
    binary_cross_entropy_with_logits (``from_logits``) or binary_cross_entropy."""
    options = dict(weight=weight, reduction="sum")
    if from_logits:
        options["pos_weight"] = pos_weight
        fn = (_logits.binary_cross_entropy_with_logits_with_grad if want_grad
              else _logits.binary_cross_entropy_with_logits)
    else:
        fn = _probs.binary_cross_entropy_with_grad if want_grad else _probs.binary_cross_entropy
    if want_grad:
        loss_sum, grad = fn(x, target, out=out, **options)
    else:
        loss_sum, grad = fn(x, target, **options), None
    return Parts(float(loss_sum), float(as_array(x, "x").size), grad)
