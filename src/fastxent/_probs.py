"""Losses from probabilities and log-probabilities (torch.nn.functional)."""

from ._logits import binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@signature_hints
def binary_cross_entropy(probs, target, *, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities in [0, 1] against targets in
    [0, 1], elementwise, as torch.nn.functional.binary_cross_entropy: each
    log term is clamped at -100, so probabilities of exactly 0 and 1 give
    finite losses. A probability outside [0, 1] raises ValueError (NaN
    passes through as NaN)."""
    return binary_loss(probs, target, weight, None, reduction, False, None, False)


@signature_hints
def binary_cross_entropy_with_grad(probs, target, *, weight=None, reduction="mean", out=None):
    """(loss, d loss / d probs) of binary_cross_entropy in one pass (PyTorch's
    gradient, whose denominator p (1 - p) is kept above PyTorch's 1e-12, a
    float32: 9.9999999600419720e-13)."""
    return binary_loss(probs, target, weight, None, reduction, True, out, False)


@signature_hints
def nll_loss(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
             reduction="mean", axis=None):
    """Negative log-likelihood of class indices under log-probabilities, as
    torch.nn.functional.nll_loss with the classes on `axis`: as in
    cross_entropy, None takes the last axis for inputs of rank 1 and 2, and
    for rank >= 3 the axis the target's shape fits among 1 (PyTorch's) and -1,
    raising ValueError where both fit."""
    return class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, False, None,
                      log_probs=True)


@signature_hints
def nll_loss_with_grad(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                       reduction="mean", axis=None, out=None):
    """(loss, d loss / d log_probs) of nll_loss (axis as nll_loss's)."""
    return class_loss(log_probs, target, weight, ignore_index, reduction, 0.0, axis, True, out,
                      log_probs=True)
