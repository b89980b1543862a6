"""Losses from logits, with the semantics of torch.nn.functional."""

from __future__ import annotations

from numpy.typing import ArrayLike

from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


_OPTIONS_DOC = """
    sample_weight : array_like, optional
        One weight per sample: the target's shape without the classes, or
        broadcastable to it; finite numbers (negative ones allowed, as
        PyTorch allows negative class weights). It multiplies the sample's
        loss and gradient, together with its class weight. The mean then
        divides by the sum over the counted samples (label not
        `ignore_index`) of ``sample_weight[i] * weight[target[i]]`` (class
        indices) or of ``sample_weight[i]`` (probabilities): PyTorch's
        weighted mean with each sample's weight times its sample weight.
    z_loss : float, default 0.0
        The coefficient z of the z-loss (PaLM's, Liger-Kernel's): each counted
        sample's loss gets ``z * lse**2`` added, lse its log-sum-exp,
        gradient included. It is weighted by `sample_weight` but not by the
        class weight, and a mean divides it by the same denominator as the
        rest (with class weights, Liger-Kernel divides it by the number of
        counted samples instead).
    softcap : float, optional
        None (off), or c > 0: the logits are soft-capped to ``c * tanh(logits
        / c)`` first (Gemma 2's convention); the loss, gradient (through the
        tanh), lse and accuracy are those of the capped logits. It costs a
        temporary array of the logits' size.
    return_lse : bool, default False
        Also return each sample's log-sum-exp of the (soft-capped) logits, an
        array of the target's shape without classes, in the logits' dtype; NaN
        for samples whose label is `ignore_index` (they are not computed).
    return_accuracy : bool, default False
        Also return the accuracy: the share of counted samples whose
        prediction (the first maximal logit, as ``np.argmax``) is the target
        class (for probabilities: the target's first maximal class), weighted
        by `sample_weight` as Keras's accuracy metrics weigh it (class weights
        do not). A NumPy scalar of the logits' dtype, NaN when nothing is
        counted. A sample whose logits hold a NaN or an infinity (its loss is
        NaN) counts as not correct."""

_SIDE_OUTPUTS_DOC = """
    lse : ndarray
        Only with `return_lse`: each sample's log-sum-exp.
    accuracy : numpy scalar
        Only with `return_accuracy`. The results come as one tuple, in the
        order ``(loss, [grad,] lse, accuracy)``, with only those asked for."""


@signature_hints
def cross_entropy(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                  reduction="mean", label_smoothing=0.0, axis=None,
                  sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
                  softcap: float | None = None, return_lse: bool = False,
                  return_accuracy: bool = False):
    """Softmax cross-entropy of `logits` against `target`, as
    torch.nn.functional.cross_entropy with the classes on `axis`.

    Parameters
    ----------
    logits : array_like
        The scores, classes on `axis`.
    target : array_like
        Integer class indices (the shape of logits without `axis`) or float
        class probabilities (the shape of logits).
    weight : array_like of shape (C,), optional
        One weight per class.
    ignore_index : int, default -100
        A class index whose samples count for nothing (class indices only:
        given with probabilities, ValueError, as PyTorch).
    reduction : {"mean", "sum", "none"}, default "mean"
        "none" (per sample), "sum" or "mean" (weighted, over the samples
        counted).
    label_smoothing : float in [0, 1], default 0.0
        The target mixed with the uniform distribution.
    axis : int, optional
        The class axis. None (the default) takes the last axis for inputs of
        rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
        among 1 (PyTorch's layout) and -1 (Keras's, JAX's, NumPy's), and raises
        ValueError where both fit (probability targets always do): pass axis=1
        or axis=-1 there.{options}

    Returns
    -------
    loss : numpy scalar, or ndarray of the target's shape without classes ("none")
        In the logits' computation dtype. Zero classes: each sample's loss is
        0, the mean NaN, as PyTorch (a label that counts: IndexError).{side}

    Raises
    ------
    ValueError
        Shapes that do not fit, a bad option (its name in the message).
    IndexError
        A class label outside [0, C) that is not `ignore_index`.
    TypeError
        Arrays of the wrong kind, options of the wrong type.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    >>> loss, accuracy = fastxent.cross_entropy(logits, np.array([0, 1]),
    ...                                         sample_weight=[1.0, 3.0], return_accuracy=True)
    >>> float(accuracy)
    0.25
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=False, out=None, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


@signature_hints
def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                            reduction="mean", label_smoothing=0.0, axis=None, out=None,
                            sample_weight: ArrayLike | None = None, z_loss: float = 0.0,
                            softcap: float | None = None, return_lse: bool = False,
                            return_accuracy: bool = False):
    """(loss, d loss / d logits) of cross_entropy in one fused pass.

    Parameters
    ----------
    logits, target, weight, ignore_index, reduction, label_smoothing, axis
        As cross_entropy.
    out : ndarray, optional
        An array of the shape and dtype of the gradient to write it into, or
        `logits` itself to overwrite the logits (no extra memory); it is
        returned.{options}

    Returns
    -------
    loss : numpy scalar or ndarray
        As cross_entropy.
    grad : ndarray, the shape of logits
        d loss / d logits (of loss.sum() with reduction="none").{side}

    Raises
    ------
    ValueError, IndexError, TypeError
        As cross_entropy; and for a bad `out`.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    >>> loss, grad, lse = fastxent.cross_entropy_with_grad(
    ...     logits, np.array([0, 2]), z_loss=1e-4, return_lse=True)
    >>> bool(np.allclose(lse, np.log(np.exp(logits).sum(axis=1))))
    True
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=True, out=out, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


for _fn in (cross_entropy, cross_entropy_with_grad):
    _fn.__doc__ = _fn.__doc__.replace("{options}", _OPTIONS_DOC).replace("{side}",
                                                                         _SIDE_OUTPUTS_DOC)


@signature_hints
def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against target in [0, 1],
    elementwise, as torch.nn.functional.binary_cross_entropy_with_logits:
    stable for any logit. weight and pos_weight (the weight of positive
    examples, usually one per class on the last axis) broadcast to logits."""
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=False, out=None)


@signature_hints
def binary_cross_entropy_with_logits_with_grad(logits, target, *, weight=None, pos_weight=None,
                                               reduction="mean", out=None):
    """(loss, d loss / d logits) of binary_cross_entropy_with_logits in one pass."""
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=True, out=out)
