"""Drop-in twins of the Keras 3 loss functions ``keras.losses.binary_crossentropy``,
``categorical_crossentropy`` and ``sparse_categorical_crossentropy``.

Keras's argument order and options, Keras's per-sample results, computed with
fastxent's kernels; NumPy arrays in and out, with fastxent's dtype rules
(float32 in -> float32 out; lists and integers -> float64). Keras itself is
not needed.

What Keras does and these functions do too:

* Probabilities (``from_logits=False``) are clipped to ``[EPSILON, 1 - EPSILON]``
  with ``EPSILON = 1e-7``, the default of ``keras.config.epsilon()``.
* Categorical probabilities are first divided by their sum along ``axis``.
* ``label_smoothing`` replaces targets t by ``t (1 - ls) + 0.5 ls`` (binary)
  or ``t (1 - ls) + ls / C`` (categorical), where Keras takes C from the
  *last* axis of ``y_true`` whatever ``axis`` is.
* Binary losses are averaged over ``axis``, for any ``y_true``, also outside
  [0, 1] (which PyTorch's binary_cross_entropy refuses); ``y_true`` of sparse
  losses may keep a length-1 class axis; positions whose label is
  ``ignore_class`` get 0.

Keras's backends differ in two corners; these functions follow the JAX and
PyTorch backends (and TensorFlow's, but for the second point):

* With ``from_logits=True`` the binary loss is exact for any logit. Keras's
  NumPy backend applies the sigmoid and the clip first, so its loss saturates
  near -log(1e-7) = 16.1 for logits beyond about +-16.
* Sparse probabilities are renormalised, then clipped. Keras's TensorFlow
  backend clips, then renormalises: the results differ where the clip bites.

Unlike Keras, a class label outside ``[0, C)`` that is not ``ignore_class``
raises IndexError, and non-integral float labels raise ValueError (Keras
truncates them).
"""

import operator
import warnings

import numpy as np

from ._logits import binary_cross_entropy_with_logits, binary_loss, cross_entropy
from ._probs import nll_loss
from ._validate import as_array, check_axis, check_label_smoothing, position, result_dtype

__all__ = ["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"]

EPSILON = 1e-7  # keras.config.epsilon() by default


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Elementwise binary cross-entropy averaged over `axis`, as
    keras.losses.binary_crossentropy: an array of y_pred's shape without `axis`.

    y_true: targets, usually in [0, 1] (others are taken as they are, as by
    Keras), the shape of y_pred. y_pred: probabilities (clipped to
    [1e-7, 1 - 1e-7]) or, with from_logits, logits.
    """
    pred = _prediction(y_pred)
    axis = _axis(axis, pred)
    target = _soft_target(y_true, pred)
    smoothing = check_label_smoothing(label_smoothing)
    if smoothing:
        target = target * pred.dtype.type(1 - smoothing) + pred.dtype.type(0.5 * smoothing)
    if from_logits:
        elementwise = binary_cross_entropy_with_logits(pred, target, reduction="none")
    else:
        # After the clip, PyTorch's clamp of the log terms at -100 never bites.
        # Keras takes any y_true, also outside [0, 1] (PyTorch does not).
        elementwise = binary_loss(_clip(pred), target, None, None, "none", False, None,
                                  from_logits=False, target_in_unit=False)
    return np.asarray(elementwise.mean(axis=axis, dtype=np.float64), dtype=pred.dtype)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Cross-entropy of class probabilities y_true against y_pred along `axis`,
    as keras.losses.categorical_crossentropy: an array of y_pred's shape
    without `axis`.

    y_true: class probabilities (one-hot or soft), the shape of y_pred.
    y_pred: probabilities (divided by their sum along axis, then clipped to
    [1e-7, 1 - 1e-7]) or, with from_logits, logits.
    """
    pred = _prediction(y_pred)
    axis = _axis(axis, pred)
    target = _soft_target(y_true, pred)
    smoothing = check_label_smoothing(label_smoothing)
    if pred.shape[-1] == 1:
        warnings.warn(  # as Keras, whose category this is
            "categorical_crossentropy: y_pred has one class on its last axis (shape "
            f"{pred.shape}); use binary_crossentropy for two classes",
            SyntaxWarning, stacklevel=2)
    if smoothing:
        # Keras counts the classes on the last axis, whatever `axis` is.
        target = (target * pred.dtype.type(1 - smoothing)
                  + pred.dtype.type(smoothing / target.shape[-1]))
    if from_logits:
        return cross_entropy(pred, target, reduction="none", axis=axis)
    # The core has no kernel for log-probabilities against probability
    # targets, and cross_entropy(log q) would renormalise q after the clip,
    # which Keras does not: this sum stays in NumPy.
    log_q = np.log(_clip(_renormalised(pred, axis)))
    return np.asarray(-np.sum(target * log_q, axis=axis), dtype=pred.dtype)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Cross-entropy of integer class labels y_true under y_pred along `axis`,
    as keras.losses.sparse_categorical_crossentropy: an array of y_pred's
    shape without `axis`.

    y_true: class labels, the shape of y_pred without axis (or with a length-1
    axis there); integral floats are accepted. y_pred: probabilities
    (divided by their sum along axis, then clipped to [1e-7, 1 - 1e-7]) or,
    with from_logits, logits. ignore_class: a label whose positions give 0.
    """
    pred = _prediction(y_pred)
    axis = _axis(axis, pred)
    ignore = _ignore_class(ignore_class)
    labels = _labels(y_true, pred, axis, ignore)
    # Every label is now in [0, C) or is ignore_class: -100 cannot match one.
    ignore_index = -100 if ignore is None else ignore
    if from_logits:
        return cross_entropy(pred, labels, ignore_index=ignore_index, reduction="none",
                             axis=axis)
    log_q = np.log(_clip(_renormalised(pred, axis)))
    return nll_loss(log_q, labels, ignore_index=ignore_index, reduction="none", axis=axis)


# ---- Keras's translation of the arguments ----

def _prediction(y_pred):
    pred = as_array(y_pred, "y_pred")
    dtype = result_dtype(pred, "y_pred")
    if pred.ndim == 0:
        raise ValueError("y_pred: expected at least one dimension, got a 0-d array")
    return pred.astype(dtype, copy=False)


def _axis(axis, pred):
    if isinstance(axis, (bool, np.bool_)):  # Keras refuses axis=True
        raise TypeError(f"axis: expected an integer, got {axis!r}")
    return check_axis(axis, pred.ndim, "y_pred")


def _soft_target(y_true, pred):
    """y_true as y_pred's dtype (Keras casts it), of y_pred's shape."""
    target = as_array(y_true, "y_true")
    if target.dtype.kind not in "biuf":
        raise TypeError(f"y_true: expected real numbers, got dtype {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"y_true: expected the shape of y_pred {pred.shape}, got {target.shape}")
    return target.astype(pred.dtype, copy=False)


def _clip(p):
    """p clipped to [EPSILON, 1 - EPSILON] in p's dtype, as Keras (NaN stays NaN)."""
    return np.clip(p, p.dtype.type(EPSILON), p.dtype.type(1 - EPSILON))


def _renormalised(p, axis):
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero row gives NaN, as Keras
        return p / p.sum(axis=axis, keepdims=True)


def _ignore_class(ignore_class):
    if ignore_class is None:
        return None
    try:
        if isinstance(ignore_class, (bool, np.bool_)):  # not a label here
            raise TypeError
        ignore = operator.index(ignore_class)
    except TypeError:
        raise TypeError(f"ignore_class: expected an integer or None, got {ignore_class!r}") \
            from None
    if not -2**63 <= ignore < 2**63:
        raise ValueError(f"ignore_class: {ignore} does not fit in 64 bits")
    return ignore


def _labels(y_true, pred, axis, ignore):
    """y_true as int64 labels of y_pred's shape without `axis`, each in [0, C)
    or equal to `ignore`."""
    labels = as_array(y_true, "y_true")
    batch_shape = pred.shape[:axis] + pred.shape[axis + 1:]
    if labels.ndim == pred.ndim and labels.shape[axis] == 1:  # (N, 1) labels, as Keras
        labels = labels.squeeze(axis=axis)
    if labels.shape != batch_shape:
        raise ValueError(
            f"y_true: class labels must have shape {batch_shape} (y_pred {pred.shape} without "
            f"axis {axis}), got {labels.shape}")
    kind = labels.dtype.kind
    if kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            at = int(np.argmin(whole.reshape(-1)))
            raise ValueError(
                f"y_true: class labels must be whole numbers, got {labels.reshape(-1)[at]} "
                f"at position {position(at, batch_shape)}")
    elif kind not in "biu":
        raise TypeError(f"y_true: expected integer class labels, got dtype {labels.dtype}")
    # Checked here, in y_true's own dtype, so that messages name y_true and
    # ignore_class, and no huge value wraps around on the way to int64.
    n_classes = pred.shape[axis]
    bad = (labels < 0) | (labels >= n_classes)
    if ignore is not None:
        bad &= labels != ignore
    if bad.any():
        at = int(np.argmax(bad.reshape(-1)))
        raise IndexError(
            f"y_true: class label {labels.reshape(-1)[at].item()} at position "
            f"{position(at, batch_shape)} is outside [0, {n_classes})"
            + ("" if ignore is None else f" and is not ignore_class ({ignore})"))
    return labels.astype(np.int64, copy=False)
