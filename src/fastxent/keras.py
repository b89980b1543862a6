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

Keras's own tensors (Keras 3, imported before the call): on the JAX and
PyTorch backends the functions take the backend's tensors and are
differentiable, so that ``model.compile(loss=fastxent.keras.<function>)``
trains. With ``from_logits=True`` the loss and its gradient come from the
fused kernels, through ``fastxent.jax`` and ``fastxent.torch``; probabilities
(``from_logits=False``), whose gradient goes through Keras's clip and
renormalisation, and the other backends (TensorFlow, OpenVINO) run
``keras.losses``' own function. A bad label then raises when the computation
runs (under ``jax.jit``, inside JAX's error).

The loss classes ``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``
and ``BinaryCrossentropy`` subclass Keras's classes of those names (same
arguments, reductions, ``ignore_class`` masking and serialisation) and compute
with the functions above. They are created at first access, importing Keras
then: ``import fastxent`` does not import Keras.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import operator
import sys
import warnings
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._bridges import fill

from ._logits import binary_cross_entropy_with_logits, cross_entropy
from ._losses import BinaryInput, binary_loss
from ._probs import nll_loss
from ._validate import (IGNORE_INDEX_DEFAULT, as_array, check_axis, check_label_smoothing,
                        position, result_dtype)

__all__ = [  # the classes come from the module's __getattr__
    "BinaryCrossentropy",  # noqa: F822
    "CategoricalCrossentropy",  # noqa: F822
    "SparseCategoricalCrossentropy",  # noqa: F822
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
]

EPSILON = 1e-7  # keras.config.epsilon() by default

FloatArray: TypeAlias = NDArray[np.floating[Any]]

if TYPE_CHECKING:  # none of them is imported with fastxent
    import jax
    import keras
    import torch

    # Made by the module's __getattr__ at first access (importing Keras then).
    BinaryCrossentropy: type[keras.losses.BinaryCrossentropy]
    CategoricalCrossentropy: type[keras.losses.CategoricalCrossentropy]
    SparseCategoricalCrossentropy: type[keras.losses.SparseCategoricalCrossentropy]


# The documentation the three functions share.
_fill = fill(
    y_pred_probs="""
        y_pred : array_like, or a tensor of Keras's backend
            Probabilities (with ``from_logits=False``: clipped to
            ``[1e-7, 1 - 1e-7]``), or logits (``from_logits=True``).""",
    from_logits="""
        from_logits : bool, default False
            Whether `y_pred` holds logits rather than probabilities.""",
    axis="""
        axis : int, default -1
            The class axis (for the binary loss: the axis averaged over).""",
    returns="""
        numpy.ndarray or tensor
            Per-sample losses, the shape of `y_pred` without `axis`: a NumPy
            array in `y_pred`'s floating dtype (float32 stays float32; integers
            and lists give float64) for NumPy input, a tensor of the backend for
            Keras's tensors (differentiable on the JAX and PyTorch backends).""",
    tensors_note="""
        Keras's own tensors (Keras 3, imported before the call): with
        ``from_logits=True`` on the JAX and PyTorch backends the loss and its
        gradient come from the fused kernels through `fastxent.jax` and
        `fastxent.torch`; otherwise ``keras.losses``' own function runs.""",
)


@overload
def binary_crossentropy(y_true: ArrayLike | torch.Tensor, y_pred: torch.Tensor,
                        from_logits: bool = ..., label_smoothing: float = ...,
                        axis: int = ...) -> torch.Tensor: ...
@overload
def binary_crossentropy(  # type: ignore[overload-overlap]  # (a jax.Array is array_like)
        y_true: ArrayLike, y_pred: jax.Array, from_logits: bool = ...,
        label_smoothing: float = ..., axis: int = ...) -> jax.Array: ...
@overload
def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = ...,
                        label_smoothing: float = ..., axis: int = ...) -> FloatArray: ...
@_fill
def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> Any:
    """Binary cross-entropy averaged over `axis`, as ``keras.losses.binary_crossentropy``.

    Parameters
    ----------
    y_true : array_like, or a tensor of Keras's backend
        Targets, usually in [0, 1] (others are taken as they are, as by
        Keras), the shape of `y_pred`.
    {y_pred_probs}
    {from_logits}
    label_smoothing : float, default 0.0
        In [0, 1]: targets become ``t (1 - label_smoothing) + 0.5 label_smoothing``.
    {axis}

    Returns
    -------
    {returns}

    Raises
    ------
    ValueError
        `y_true` of another shape than `y_pred`, a 0-d `y_pred`, an `axis` out
        of range, `label_smoothing` outside [0, 1].
    TypeError
        A non-numeric `y_true` or `y_pred`, a non-integer `axis`.

    See Also
    --------
    fastxent.binary_cross_entropy_with_logits : The loss on its own, with weights.

    Notes
    -----
    The elementwise loss is ``-(t log p + (1 - t) log(1 - p))``, with
    ``p = clip(y_pred, 1e-7, 1 - 1e-7)``; from logits it is exact for any
    logit (Keras's NumPy backend saturates near 16.1 beyond about +-16).

    {tensors_note}

    Examples
    --------
    >>> import numpy as np, fastxent.keras
    >>> y_true = np.array([[0.0, 1.0], [0.0, 0.0]])
    >>> y_pred = np.array([[0.6, 0.4], [0.4, 0.6]])
    >>> fastxent.keras.binary_crossentropy(y_true, y_pred).round(6)
    array([0.916291, 0.713558])
    """
    bridge = _bridge(y_pred, from_logits)
    if bridge is not None:
        return _binary_on_tensors(bridge, y_true, y_pred, label_smoothing, axis)
    if _keras_tensor(y_pred):
        return _keras_own("binary_crossentropy", y_true, y_pred, from_logits=from_logits,
                          label_smoothing=label_smoothing, axis=axis)
    pred = _prediction(y_pred)
    axis = _axis(axis, pred)
    target = _soft_target(y_true, pred)
    smoothing = check_label_smoothing(label_smoothing)
    if smoothing:
        target = target * pred.dtype.type(1 - smoothing) + pred.dtype.type(0.5 * smoothing)
    elementwise: FloatArray | np.floating[Any]
    if from_logits:
        elementwise = binary_cross_entropy_with_logits(pred, target, reduction="none")
    else:
        # After the clip, PyTorch's clamp of the log terms at -100 never bites.
        # Keras takes any y_true, also outside [0, 1] (PyTorch does not).
        elementwise = binary_loss(_clip(pred), target, kind=BinaryInput.PROBS, weight=None,
                                  pos_weight=None, reduction="none", want_grad=False, out=None,
                                  target_in_unit=False)
    return np.asarray(elementwise.mean(axis=axis, dtype=np.float64), dtype=pred.dtype)



@overload
def categorical_crossentropy(y_true: ArrayLike | torch.Tensor, y_pred: torch.Tensor,
                             from_logits: bool = ..., label_smoothing: float = ...,
                             axis: int = ...) -> torch.Tensor: ...
@overload
def categorical_crossentropy(  # type: ignore[overload-overlap]  # (a jax.Array is array_like)
        y_true: ArrayLike, y_pred: jax.Array, from_logits: bool = ...,
        label_smoothing: float = ..., axis: int = ...) -> jax.Array: ...
@overload
def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = ...,
                             label_smoothing: float = ..., axis: int = ...) -> FloatArray: ...
@_fill
def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> Any:
    """Cross-entropy of class probabilities, as ``keras.losses.categorical_crossentropy``.

    Parameters
    ----------
    y_true : array_like, or a tensor of Keras's backend
        Class probabilities (one-hot or soft), the shape of `y_pred`.
    {y_pred_probs}
        Probabilities are first divided by their sum along `axis`.
    {from_logits}
    label_smoothing : float, default 0.0
        In [0, 1]: targets become ``t (1 - label_smoothing) + label_smoothing / C``,
        where C is the length of the *last* axis of `y_true` whatever `axis`
        is (as Keras).
    {axis}

    Returns
    -------
    {returns}

    Raises
    ------
    ValueError
        `y_true` of another shape than `y_pred`, a 0-d `y_pred`, an `axis` out
        of range, `label_smoothing` outside [0, 1].
    TypeError
        A non-numeric `y_true` or `y_pred`, a non-integer `axis`.

    Warns
    -----
    SyntaxWarning
        `y_pred` has a single class on its last axis (as Keras warns).

    See Also
    --------
    sparse_categorical_crossentropy : Integer labels instead of probabilities.
    fastxent.cross_entropy : The loss from logits, with weights and reductions.

    Notes
    -----
    ``-sum(y_true * log(q))`` along `axis`, ``q = clip(y_pred / sum(y_pred),
    1e-7, 1 - 1e-7)``; from logits, ``q = softmax(y_pred)``.

    {tensors_note}

    Examples
    --------
    >>> import numpy as np, fastxent.keras
    >>> y_true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    >>> fastxent.keras.categorical_crossentropy(y_true, y_pred).round(6)
    array([0.051293, 2.302585])
    """
    bridge = _bridge(y_pred, from_logits)
    if bridge is not None:
        return _categorical_on_tensors(bridge, y_true, y_pred, label_smoothing, axis)
    if _keras_tensor(y_pred):
        return _keras_own("categorical_crossentropy", y_true, y_pred, from_logits=from_logits,
                          label_smoothing=label_smoothing, axis=axis)
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



@overload
def sparse_categorical_crossentropy(y_true: ArrayLike | torch.Tensor, y_pred: torch.Tensor,
                                    from_logits: bool = ..., ignore_class: int | None = ...,
                                    axis: int = ...) -> torch.Tensor: ...
@overload
def sparse_categorical_crossentropy(  # type: ignore[overload-overlap]  # (jax.Array: array_like)
        y_true: ArrayLike, y_pred: jax.Array, from_logits: bool = ...,
        ignore_class: int | None = ..., axis: int = ...) -> jax.Array: ...
@overload
def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = ...,
                                    ignore_class: int | None = ...,
                                    axis: int = ...) -> FloatArray: ...
@_fill
def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> Any:
    """Cross-entropy of integer class labels, as
    ``keras.losses.sparse_categorical_crossentropy``.

    Parameters
    ----------
    y_true : array_like, or a tensor of Keras's backend
        Class labels in [0, C) or `ignore_class`: the shape of `y_pred`
        without `axis` (or with a length-1 axis there); integral floats are
        accepted.
    {y_pred_probs}
        Probabilities are first divided by their sum along `axis`.
    {from_logits}
    ignore_class : int, optional
        A label whose positions give 0 (and, on Keras's tensors, are masked
        out of Keras's reductions and metrics, as by Keras's own loss).
    {axis}

    Returns
    -------
    {returns}

    Raises
    ------
    IndexError
        A label outside [0, C) that is not `ignore_class` (its position named;
        Keras returns garbage or NaN there).
    ValueError
        Non-integral float labels (Keras truncates them), labels of the wrong
        shape, a 0-d `y_pred`, an `axis` out of range.
    TypeError
        Non-numeric labels, a non-integer `ignore_class` or `axis`.

    See Also
    --------
    categorical_crossentropy : Class probabilities instead of labels.
    fastxent.cross_entropy : The loss from logits, with weights and reductions.

    Notes
    -----
    ``-log q[y]`` for label ``y``, ``q = clip(y_pred / sum(y_pred), 1e-7,
    1 - 1e-7)``; from logits, ``q = softmax(y_pred)``.

    {tensors_note}

    Examples
    --------
    >>> import numpy as np, fastxent.keras
    >>> y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    >>> fastxent.keras.sparse_categorical_crossentropy(np.array([1, 2]), y_pred).round(6)
    array([0.051293, 2.302585])
    >>> fastxent.keras.sparse_categorical_crossentropy(np.array([1, -1]), y_pred,
    ...                                                ignore_class=-1).round(6)
    array([0.051293, 0.      ])
    """
    bridge = _bridge(y_pred, from_logits)
    if bridge is not None:
        return _sparse_on_tensors(bridge, y_true, y_pred, ignore_class, axis)
    if _keras_tensor(y_pred):
        return _keras_own("sparse_categorical_crossentropy", y_true, y_pred,
                          from_logits=from_logits, ignore_class=ignore_class, axis=axis)
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

def _prediction(y_pred: ArrayLike) -> FloatArray:
    pred = as_array(y_pred, "y_pred")
    dtype = result_dtype(pred, "y_pred")
    if pred.ndim == 0:
        raise ValueError("y_pred: expected at least one dimension, got a 0-d array")
    return pred.astype(dtype, copy=False)


def _axis(axis: int, pred: FloatArray) -> int:
    if isinstance(axis, (bool, np.bool_)):  # Keras refuses axis=True
        raise TypeError(f"axis: expected an integer, got {axis!r}")
    return check_axis(axis, pred.ndim, "y_pred")


def _soft_target(y_true: ArrayLike, pred: FloatArray) -> FloatArray:
    """y_true as y_pred's dtype (Keras casts it), of y_pred's shape."""
    target = as_array(y_true, "y_true")
    if target.dtype.kind not in "biuf":
        raise TypeError(f"y_true: expected real numbers, got dtype {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"y_true: expected the shape of y_pred {pred.shape}, got {target.shape}")
    return target.astype(pred.dtype, copy=False)


def _clip(p: FloatArray) -> FloatArray:
    """p clipped to [EPSILON, 1 - EPSILON] in p's dtype, as Keras (NaN stays NaN)."""
    return np.clip(p, p.dtype.type(EPSILON), p.dtype.type(1 - EPSILON))


def _renormalised(p: FloatArray, axis: int) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero row gives NaN, as Keras
        ratio: FloatArray = p / p.sum(axis=axis, keepdims=True)
    return ratio


def _ignore_class(ignore_class: Any) -> int | None:
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


def _labels(y_true: ArrayLike, pred: FloatArray, axis: int,
            ignore: int | None) -> NDArray[np.int64]:
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


# ---- Keras's tensors: the JAX and PyTorch bridges ----

_NO_LABEL = -2**63  # an ignore_index no label can equal (Keras has none by default)


def _keras_backend_of(y_pred: Any) -> str | None:
    """The name of Keras's backend when y_pred is one of its tensors (not a
    NumPy array), else None. Keras is not imported here: without it loaded,
    nothing can be a Keras tensor."""
    keras = sys.modules.get("keras")
    if keras is None or isinstance(y_pred, (np.ndarray, np.generic, list, tuple, int, float)):
        return None
    backend: str = keras.backend.backend()
    if backend == "numpy" or not keras.ops.is_tensor(y_pred):
        return None
    return backend


def _keras_tensor(y_pred: Any) -> bool:
    return _keras_backend_of(y_pred) is not None


def _bridge(y_pred: Any, from_logits: bool) -> str | None:
    """"jax" or "torch" when the fused kernels take this call through a bridge."""
    backend = _keras_backend_of(y_pred)
    return backend if from_logits and backend in ("jax", "torch") else None


def _keras_own(name: str, *args: Any, **kwargs: Any) -> Any:
    import keras

    return getattr(keras.losses, name)(*args, **kwargs)


def _class_loss_on_tensors(bridge: str, logits: Any, target: Any, axis: int,
                           ignore_index: int = IGNORE_INDEX_DEFAULT) -> Any:
    """Per-sample softmax cross-entropy through the bridge of Keras's backend."""
    if bridge == "jax":
        from . import jax as fxj

        return fxj.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none",
                                 axis=axis)
    import torch

    from . import torch as fxt

    if logits.ndim > 1:  # PyTorch's class axis is dim 1: a view, no copy
        logits = torch.movedim(logits, axis, 1)
        if target.ndim == logits.ndim:
            target = torch.movedim(target, axis, 1)
    return fxt.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")


def _prediction_tensor(y_pred: Any, axis: int) -> tuple[Any, int]:
    from keras import ops

    pred = ops.convert_to_tensor(y_pred)
    if pred.ndim == 0:
        raise ValueError("y_pred: expected at least one dimension, got a 0-d tensor")
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis: expected an integer, got {axis!r}")
    return pred, check_axis(axis, pred.ndim, "y_pred")


def _sparse_on_tensors(bridge: str, y_true: Any, y_pred: Any, ignore_class: Any,
                       axis: int) -> Any:
    from keras import ops

    pred, axis = _prediction_tensor(y_pred, axis)
    ignore = _ignore_class(ignore_class)
    labels = ops.convert_to_tensor(y_true)
    if labels.ndim == pred.ndim and labels.shape[axis] == 1:  # (N, 1) labels, as Keras
        labels = ops.squeeze(labels, axis=axis)
    labels = ops.cast(labels, "int64" if bridge == "torch" else "int32")
    loss = _class_loss_on_tensors(bridge, pred, labels, axis,
                                  ignore_index=_NO_LABEL if ignore is None else ignore)
    if ignore is not None:  # the kernel gave them 0; the mask tells Keras's reductions
        _set_keras_mask(loss, ops.not_equal(labels, ignore))
    return loss


def _categorical_on_tensors(bridge: str, y_true: Any, y_pred: Any, label_smoothing: float,
                            axis: int) -> Any:
    from keras import ops

    pred, axis = _prediction_tensor(y_pred, axis)
    target = ops.cast(y_true, pred.dtype)
    if tuple(target.shape) != tuple(pred.shape):
        raise ValueError(f"y_true: expected the shape of y_pred {tuple(pred.shape)}, "
                         f"got {tuple(target.shape)}")
    smoothing = check_label_smoothing(label_smoothing)
    if pred.shape[-1] == 1:
        warnings.warn(
            "categorical_crossentropy: y_pred has one class on its last axis (shape "
            f"{tuple(pred.shape)}); use binary_crossentropy for two classes",
            SyntaxWarning, stacklevel=3)
    if smoothing:  # Keras counts the classes on the last axis, whatever `axis` is
        target = target * (1 - smoothing) + smoothing / target.shape[-1]
    return _class_loss_on_tensors(bridge, pred, target, axis)


def _binary_on_tensors(bridge: str, y_true: Any, y_pred: Any, label_smoothing: float,
                       axis: int) -> Any:
    from keras import ops

    pred, axis = _prediction_tensor(y_pred, axis)
    target = ops.cast(y_true, pred.dtype)
    smoothing = check_label_smoothing(label_smoothing)
    if smoothing:
        target = target * (1 - smoothing) + 0.5 * smoothing
    module = importlib.import_module(f".{bridge}", __package__)  # fastxent.jax or .torch
    elementwise = module.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return ops.mean(elementwise, axis=axis)


def _set_keras_mask(x: Any, mask: Any) -> None:
    """Attaches the mask Keras's reductions and metrics read, as keras.losses does."""
    try:
        from keras.src.backend import set_keras_mask
    except ImportError:  # older Keras 3: the attribute itself
        try:
            x._keras_mask = mask
        except AttributeError:
            pass
    else:
        set_keras_mask(x, mask)


# ---- the loss classes, made at first access (Keras is imported then) ----

_CLASSES = {
    "BinaryCrossentropy": "binary_crossentropy",
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return _loss_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CLASSES))


@functools.cache
def _loss_class(name: str) -> type[Any]:
    """keras.losses.<name> computing with this module's function of the same
    loss: Keras's arguments, reductions, masking and serialisation."""
    import keras

    base = getattr(keras.losses, name)
    function = globals()[_CLASSES[name]]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        self.fn = function

    __init__.__signature__ = inspect.signature(base.__init__)  # type: ignore[attr-defined]
    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__,
                               "__qualname__": name, "__doc__": _CLASS_DOCS[name]})
    registered: type[Any] = keras.saving.register_keras_serializable(package="fastxent")(cls)
    return registered


_CLASS_DOC = """``keras.losses.{name}`` computing with `{function}`.

A subclass of Keras's class, made at the first access to it (importing
Keras then) and registered for Keras's serialisation under the package
``"fastxent"``: the same constructor, reductions, ``ignore_class`` masking
and ``get_config``; only the per-sample losses come from `{function}`.

Parameters
----------
{parameters}
{reduction_and_axis}
name : str, default "{default_name}"
    The loss's name (Keras's ``Loss.name``).
dtype : str, optional
    Keras's dtype policy for the loss computation.

Raises
------
ValueError, TypeError, IndexError
    When called, those of `{function}`.

See Also
--------
{function} : The function, for the shapes and the computation.

Examples
--------
>>> import numpy as np, fastxent.keras
>>> loss = fastxent.keras.{name}({example_args})
>>> round(float(loss({example_call})), 6)
{example_value}
"""

_REDUCTION_DOC = """reduction : str, default "sum_over_batch_size"
    Keras's reduction of the per-sample losses: ``"sum_over_batch_size"``,
    ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"`` or None."""

_FROM_LOGITS_DOC = """from_logits : bool, default False
    Whether the predictions are logits rather than probabilities."""

_CLASS_DOCS = {
    "BinaryCrossentropy": _CLASS_DOC.format(
        name="BinaryCrossentropy", function="binary_crossentropy",
        default_name="binary_crossentropy",
        parameters=_FROM_LOGITS_DOC + """
label_smoothing : float, default 0.0
    In [0, 1], towards 0.5.""",
        reduction_and_axis="""axis : int, default -1
    The axis averaged over.
""" + _REDUCTION_DOC,
        example_args="from_logits=True",
        example_call="np.array([[1.0, 0.0]]), np.array([[2.0, -1.0]])",
        example_value="0.220095"),
    "CategoricalCrossentropy": _CLASS_DOC.format(
        name="CategoricalCrossentropy", function="categorical_crossentropy",
        default_name="categorical_crossentropy",
        parameters=_FROM_LOGITS_DOC + """
label_smoothing : float, default 0.0
    In [0, 1], towards 1 / C.""",
        reduction_and_axis="""axis : int, default -1
    The class axis.
""" + _REDUCTION_DOC,
        example_args="",
        example_call="np.array([[0.0, 1.0, 0.0]]), np.array([[0.05, 0.95, 0.0]])",
        example_value="0.051293"),
    "SparseCategoricalCrossentropy": _CLASS_DOC.format(
        name="SparseCategoricalCrossentropy", function="sparse_categorical_crossentropy",
        default_name="sparse_categorical_crossentropy",
        parameters=_FROM_LOGITS_DOC + """
ignore_class : int, optional
    A label whose positions give 0 and are masked out of the reduction.""",
        reduction_and_axis=_REDUCTION_DOC + """
axis : int, default -1
    The class axis.""",
        example_args="ignore_class=-1",
        example_call="np.array([1, -1]), np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])",
        example_value="0.051293"),  # the ignored row is masked out of the mean
}
