"""Losses from probabilities and log-probabilities (torch.nn.functional)."""

from __future__ import annotations

from numpy.typing import ArrayLike

from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@signature_hints
def binary_cross_entropy(probs, target, *, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities in [0, 1] against targets in
    [0, 1], elementwise, as torch.nn.functional.binary_cross_entropy: each
    log term is clamped at -100, so probabilities of exactly 0 and 1 give
    finite losses. A probability outside [0, 1] raises ValueError (NaN
    passes through as NaN)."""
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=False, out=None)


@signature_hints
def binary_cross_entropy_with_grad(probs, target, *, weight=None, reduction="mean", out=None):
    """(loss, d loss / d probs) of binary_cross_entropy in one pass (PyTorch's
    gradient, whose denominator p (1 - p) is kept above PyTorch's 1e-12, a
    float32: 9.9999999600419720e-13)."""
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=True, out=out)


@signature_hints
def nll_loss(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
             reduction="mean", axis=None, sample_weight: ArrayLike | None = None,
             return_accuracy: bool = False):
    """Negative log-likelihood of class indices under log-probabilities, as
    torch.nn.functional.nll_loss with the classes on `axis`.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities, classes on `axis`.
    target : array_like of int
        Class indices, the shape of log_probs without `axis`.
    weight, ignore_index, reduction
        As cross_entropy.
    axis : int, optional
        As cross_entropy: None takes the last axis for inputs of rank 1 and 2,
        and for rank >= 3 the axis the target's shape fits among 1 (PyTorch's)
        and -1, raising ValueError where both fit.
    sample_weight : array_like, optional
        One weight per sample, as cross_entropy's: it multiplies the sample's
        loss and gradient (with its class weight), and the mean divides by the
        sum over the counted samples of ``sample_weight[i] * weight[target[i]]``.
    return_accuracy : bool, default False
        Also return the share of counted samples (weighted by `sample_weight`)
        whose first maximal log-probability is the target's class; a sample
        holding a NaN counts as not correct. (z_loss, softcap and lse are
        options of logits: see cross_entropy.)

    Returns
    -------
    loss : numpy scalar, or ndarray ("none")
        In the computation dtype of log_probs.
    accuracy : numpy scalar
        Only with `return_accuracy`, as ``(loss, accuracy)``.

    Raises
    ------
    ValueError, IndexError, TypeError
        As cross_entropy.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> log_probs = np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    >>> loss = fastxent.nll_loss(log_probs, np.array([0, 2]), sample_weight=[1.0, 0.0])
    >>> round(float(loss), 6) == round(float(-np.log(0.7)), 6)
    True
    """
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=False, out=None, sample_weight=sample_weight,
                      return_accuracy=return_accuracy)


@signature_hints
def nll_loss_with_grad(log_probs, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                       reduction="mean", axis=None, out=None,
                       sample_weight: ArrayLike | None = None, return_accuracy: bool = False):
    """(loss, d loss / d log_probs) of nll_loss.

    Parameters
    ----------
    log_probs, target, weight, ignore_index, reduction, axis, sample_weight, return_accuracy
        As nll_loss.
    out : ndarray, optional
        Where to write the gradient (may be `log_probs` itself).

    Returns
    -------
    loss : numpy scalar or ndarray
        As nll_loss.
    grad : ndarray, the shape of log_probs
        d loss / d log_probs.
    accuracy : numpy scalar
        Only with `return_accuracy`, as ``(loss, grad, accuracy)``.

    Raises
    ------
    ValueError, IndexError, TypeError
        As nll_loss; and for a bad `out`.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> log_probs = np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    >>> loss, grad, accuracy = fastxent.nll_loss_with_grad(
    ...     log_probs, np.array([0, 1]), return_accuracy=True)
    >>> float(accuracy)
    0.5
    """
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=True, out=out, sample_weight=sample_weight,
                      return_accuracy=return_accuracy)
