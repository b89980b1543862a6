"""Losses from logits, with the semantics of torch.nn.functional."""

import numpy as np

from . import _config
from ._validate import (IGNORE_INDEX_DEFAULT, position, prepare_binary, prepare_classes,
                        signature_hints)


def class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
               want_grad, out, log_probs=False):
    """cross_entropy (or nll_loss when log_probs) and its gradient, on the
    current backend's kernels."""
    name = "log_probs" if log_probs else "logits"
    p = prepare_classes(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                        want_grad=want_grad, out=out, name=name,
                        allow_probabilities=not log_probs)
    kernels = _config.kernels()
    row_loss = np.empty(p.x.shape[0], p.dtype) if p.reduction == "none" else None
    mean = p.reduction == "mean"
    n_threads = _config.threads_for(p.x.size)
    if p.x.shape[1] == 0:
        total, denom = _no_classes(p, row_loss)
    elif p.is_index:
        total, denom, bad_row = kernels.xent_index(
            p.x, p.target, p.result, p.weight, p.ignore_index, p.label_smoothing, mean, row_loss,
            n_threads, log_probs)
        if bad_row >= 0:
            raise p.label_error(bad_row)
    else:
        total, denom = kernels.xent_prob(
            p.x, p.target, p.result, p.weight, p.label_smoothing, mean, row_loss, n_threads)
    loss = p.finish_loss(total, denom, row_loss)
    return (loss, p.finish_result()) if want_grad else loss


def _no_classes(p, row_loss):
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


@signature_hints
def cross_entropy(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                  reduction="mean", label_smoothing=0.0, axis=None):
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
    return class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                      False, None)


@signature_hints
def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                            reduction="mean", label_smoothing=0.0, axis=None, out=None):
    """(loss, d loss / d logits) of cross_entropy in one fused pass.

    With reduction="none" the gradient is that of loss.sum(). out: an array
    of the shape and dtype of the gradient to write it into, or `logits`
    itself to overwrite the logits (no extra memory); it is returned.
    axis: as cross_entropy's (None: the last axis, or for rank >= 3 the one
    the target fits among 1 and -1).
    """
    return class_loss(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                      True, out)


def binary_loss(x, target, weight, pos_weight, reduction, want_grad, out, from_logits,
                target_in_unit=True):
    """Binary cross-entropy (from logits or probabilities) and its gradient.
    target_in_unit: refuse probability targets outside [0, 1] (PyTorch does;
    Keras does not)."""
    name = "logits" if from_logits else "probs"
    p = prepare_binary(x, target, weight, pos_weight, reduction, want_grad=want_grad, out=out,
                       name=name, target_in_unit=target_in_unit)
    elem_loss = np.empty_like(p.x) if p.reduction == "none" else None
    total, count, bad = _config.kernels().binary_xent(
        p.x, p.target, p.weight, p.pos_weight, p.grad, p.reduction == "mean", elem_loss,
        from_logits, _config.threads_for(p.x.size))
    if bad >= 0:
        raise ValueError(f"probs: {p.x.reshape(-1)[bad]!r} at position "
                         f"{position(bad, p.shape)} is outside [0, 1]")
    loss = p.finish_loss(total, count, elem_loss)
    return (loss, p.finish_grad()) if want_grad else loss


@signature_hints
def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against target in [0, 1],
    elementwise, as torch.nn.functional.binary_cross_entropy_with_logits:
    stable for any logit. weight and pos_weight (the weight of positive
    examples, usually one per class on the last axis) broadcast to logits."""
    return binary_loss(logits, target, weight, pos_weight, reduction, False, None, True)


@signature_hints
def binary_cross_entropy_with_logits_with_grad(logits, target, *, weight=None, pos_weight=None,
                                               reduction="mean", out=None):
    """(loss, d loss / d logits) of binary_cross_entropy_with_logits in one pass."""
    return binary_loss(logits, target, weight, pos_weight, reduction, True, out, True)
