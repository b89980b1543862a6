"""Losses from logits, with the semantics of torch.nn.functional."""

from . import _config
from ._validate import prepare_softmax_xent

import numpy as np


def softmax_xent(kernels, logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                 want_grad, out):
    """cross_entropy[_with_grad] on the given kernel module (compiled or NumPy)."""
    p = prepare_softmax_xent(logits, target, weight, ignore_index, reduction, label_smoothing,
                             axis, want_grad, out)
    row_loss = np.empty(p.x.shape[0], p.dtype) if p.reduction == "none" else None
    mean = p.reduction == "mean"
    n_threads = _config.get_num_threads()
    if p.is_index:
        total, denom, bad_row = kernels.xent_index(
            p.x, p.target, p.grad, p.weight, p.ignore_index, p.label_smoothing, mean, row_loss,
            n_threads)
        if bad_row >= 0:
            raise p.label_error(bad_row)
    else:
        total, denom = kernels.xent_prob(
            p.x, p.target, p.grad, p.weight, p.label_smoothing, mean, row_loss, n_threads)
    loss = p.finish_loss(total, denom, row_loss)
    return (loss, p.finish_grad()) if want_grad else loss


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=-1):
    """Softmax cross-entropy of `logits` against `target`, as
    torch.nn.functional.cross_entropy with the classes on `axis`.

    target: integer class indices (the shape of logits without `axis`) or
    float class probabilities (the shape of logits). weight: one weight per
    class. ignore_index: a class index whose samples count for nothing.
    reduction: "none" (per sample), "sum" or "mean" (weighted, over the
    samples counted). label_smoothing: in [0, 1].
    """
    return softmax_xent(_config.kernels(), logits, target, weight, ignore_index, reduction,
                        label_smoothing, axis, False, None)


def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, axis=-1, out=None):
    """(loss, d loss / d logits) of cross_entropy in one fused pass.

    With reduction="none" the gradient is that of loss.sum(). out: an array
    of the shape and dtype of the gradient to write it into, or `logits`
    itself to overwrite the logits (no extra memory); it is returned.
    """
    return softmax_xent(_config.kernels(), logits, target, weight, ignore_index, reduction,
                        label_smoothing, axis, True, out)
