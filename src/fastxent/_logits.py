"""Losses from logits, with the semantics of torch.nn.functional."""

from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


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
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=False, out=None)


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
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=True, out=out)


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
