"""Losses from logits, with the semantics of torch.nn.functional."""

from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


_OPTIONS_DOC = """
    sample_weight: one weight per sample, of the target's shape without the
    classes or broadcastable to it (finite numbers; negative ones are allowed,
    as PyTorch allows negative class weights). It multiplies each sample's
    loss and gradient, with the class weight where both are given; the mean
    then divides by the sum, over the counted samples (not ignore_index), of
    sample_weight[i] * weight[target[i]] (class indices) or of sample_weight[i]
    (probabilities): PyTorch's weighted mean with each sample's weight
    multiplied by its sample weight.
    z_loss: the coefficient z of the z-loss (PaLM's, Liger-Kernel's): each
    counted sample's loss gets z * lse**2 added, lse its log-sum-exp (of the
    soft-capped logits with softcap), gradient included; it is weighted by the
    sample weight, not by the class weight, and the mean divides it by the
    same denominator as the rest (with class weights, Liger-Kernel divides it
    by the number of counted samples instead).
    softcap: None (off), or a number c > 0: the logits are first soft-capped
    to c * tanh(logits / c) (Gemma 2's convention), and the loss, the
    gradient (through the tanh), lse and the accuracy are those of the capped
    logits. It costs one temporary array of the logits' size.
    return_lse: also return each sample's log-sum-exp of the (soft-capped)
    logits, an array of the target's shape without classes in the logits'
    dtype; NaN for the samples whose label is ignore_index (not computed).
    return_accuracy: also return the accuracy: the share of counted samples
    whose prediction (the first maximal logit, as np.argmax) is the target
    (class indices) or the target's first maximal class (probabilities),
    weighted by sample_weight (as Keras's sparse_categorical_accuracy with
    sample_weight; class weights do not weigh it); a NumPy scalar of the
    logits' dtype, NaN over no counted sample. A sample whose logits hold a
    NaN or an infinity (whose loss is NaN) counts as not correct.

    Returns the loss (and gradient), then, in this order and only when asked
    for, lse and accuracy: (loss, [grad,] lse, accuracy) as one tuple.
"""


@signature_hints
def cross_entropy(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                  reduction="mean", label_smoothing=0.0, axis=None, sample_weight=None,
                  z_loss=0.0, softcap=None, return_lse=False, return_accuracy=False):
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
                      want_grad=False, out=None, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


@signature_hints
def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=IGNORE_INDEX_DEFAULT,
                            reduction="mean", label_smoothing=0.0, axis=None, out=None,
                            sample_weight=None, z_loss=0.0, softcap=None, return_lse=False,
                            return_accuracy=False):
    """(loss, d loss / d logits) of cross_entropy in one fused pass.

    With reduction="none" the gradient is that of loss.sum(). out: an array
    of the shape and dtype of the gradient to write it into, or `logits`
    itself to overwrite the logits (no extra memory); it is returned.
    axis: as cross_entropy's (None: the last axis, or for rank >= 3 the one
    the target fits among 1 and -1). sample_weight, z_loss, softcap,
    return_lse, return_accuracy: as cross_entropy's; the side outputs follow
    the gradient: (loss, grad, lse, accuracy), only those asked for.
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=True, out=out, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


cross_entropy.__doc__ += _OPTIONS_DOC


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
