"""Losses from probabilities and log-probabilities (torch.nn.functional)."""

from __future__ import annotations

from typing import Any, Literal, overload

from ._typing import (ArrayLike, Float, FloatArray, FloatScalar, Loss, LossAndGrad, NDArray,
                      Reduced, Reduction, ScalarOrArray)
from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@overload
def binary_cross_entropy(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> Float: ...


@overload
def binary_cross_entropy(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> NDArray[Float]: ...


@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> FloatScalar: ...


@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> FloatArray: ...


@signature_hints
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Loss:
    r"""Binary cross-entropy of probabilities `probs` against `target`,
    elementwise, as ``torch.nn.functional.binary_cross_entropy``.

    Parameters
    ----------
    probs : array_like
        Probabilities in [0, 1], of any shape (float or integer).
    target : array_like
        Targets in [0, 1] of the shape of `probs`.
    weight : array_like, optional
        A weight per element, broadcastable to the shape of `probs` (without
        making it larger). Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses; "sum": their sum; "mean": their sum
        divided by the number of elements.

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar for "mean" and "sum"; the shape of `probs` for "none".
        The loss and the gradient come in the dtype of the computation: float32 for
        float32 and float16 probs, float64 for float64 and integer probs (lists of
        Python numbers included). Sums over rows accumulate in float64.

    Raises
    ------
    ValueError
        A probability or a target outside [0, 1] (the message names the value
        and its position; NaN passes through as NaN); a `target` of another
        shape; a `weight` that does not broadcast to `probs`; a bad `reduction`.
    TypeError
        Arrays that are not real numbers; an option passed positionally.

    See Also
    --------
    binary_cross_entropy_with_grad : The loss and its gradient.
    binary_cross_entropy_with_logits : The same loss from logits, stable for any logit.

    Notes
    -----
    Each element has the loss

    .. math::

        \ell = -w \left(t \max(\log p, -100) + (1 - t) \max(\log(1 - p), -100)\right),

    each log clamped at -100 as PyTorch does, so that probabilities of exactly
    0 and 1 give finite losses. The numbers equal
    ``torch.nn.functional.binary_cross_entropy``. From logits,
    :func:`binary_cross_entropy_with_logits` is more accurate.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> probs = np.array([0.9, 0.2, 1.0, 0.5])
    >>> target = np.array([1.0, 0.0, 0.0, 1.0])
    >>> np.round(fastxent.binary_cross_entropy(probs, target, reduction="none"), 4)
    array([  0.1054,   0.2231, 100.    ,   0.6931])
    >>> bool(np.isclose(fastxent.binary_cross_entropy(probs[:2], target[:2]),
    ...                 -np.mean(np.log([0.9, 0.8]))))
    True
    """
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=False, out=None)


@overload
def binary_cross_entropy_with_grad(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def binary_cross_entropy_with_grad(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    out: NDArray[Any] | None = None,
) -> LossAndGrad:
    r"""The loss of :func:`binary_cross_entropy` and its gradient with respect to
    the probabilities, in one pass.

    Parameters
    ----------
    probs : array_like
        Probabilities in [0, 1], of any shape (float or integer).
    target : array_like
        Targets in [0, 1] of the shape of `probs`.
    weight : array_like, optional
        A weight per element, broadcastable to the shape of `probs` (without
        making it larger). Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses (the gradient is that of their sum); "sum": their sum; "mean": their sum
        divided by the number of elements.
    out : ndarray, optional
        Where to write the gradient: an array of the shape and dtype of the
        gradient (no other argument's memory), or `probs` itself to overwrite
        it in place (no new N x C memory: the fastest call in a training
        loop). Returned as the gradient. Default: a new array.

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        As returned by :func:`binary_cross_entropy`.
    grad : ndarray
        d loss / d probs: the shape of `probs`, in the dtype of the loss; `out`
        when given. Never None.

    Raises
    ------
    ValueError
        A probability or a target outside [0, 1] (the message names the value
        and its position; NaN passes through as NaN); a `target` of another
        shape; a `weight` that does not broadcast to `probs`; a bad `reduction`.
    TypeError
        Arrays that are not real numbers; an option passed positionally.
    ValueError, TypeError
        Also for a bad `out` (see :func:`cross_entropy_with_grad`).

    See Also
    --------
    binary_cross_entropy : The loss alone.

    Notes
    -----
    PyTorch's gradient,

    .. math::

        \frac{\partial \ell}{\partial p} = w \frac{p - t}{\max(p (1 - p), \epsilon)},

    with :math:`\epsilon` PyTorch's 1e-12 as a float32
    (9.9999999600419720e-13), divided by the number of elements for "mean".

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> probs = np.array([0.9, 0.2, 0.5])
    >>> target = np.array([1.0, 0.0, 1.0])
    >>> loss, grad = fastxent.binary_cross_entropy_with_grad(probs, target, reduction="sum")
    >>> bool(np.allclose(grad, (probs - target) / (probs * (1 - probs))))
    True
    >>> np.round(grad, 4)
    array([-1.1111,  1.25  , -2.    ])
    """
    return binary_loss(probs, target, kind=BinaryInput.PROBS, weight=weight, pos_weight=None,
                       reduction=reduction, want_grad=True, out=out)


@overload
def nll_loss(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> Float: ...


@overload
def nll_loss(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> NDArray[Float]: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatScalar: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatArray: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[True],
) -> tuple[ScalarOrArray, ScalarOrArray]: ...


@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: bool = ...,
) -> ScalarOrArray | tuple[ScalarOrArray, ...]: ...


@signature_hints
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    axis: int | None = None,
    sample_weight: ArrayLike | None = None,
    return_accuracy: bool = False,
) -> Any:
    r"""Negative log-likelihood of class indices under log-probabilities, as
    ``torch.nn.functional.nll_loss`` with the classes on `axis`.

    Parameters
    ----------
    log_probs : array_like, shape (..., C, ...)
        Log-probabilities, the classes on `axis` (float or integer).
    target : array_like of int
        Class indices, of the shape of `log_probs` without the class axis.
    weight : array_like, shape (C,), optional
        A weight per class. Default: 1 for every class.
    ignore_index : int, default -100
        Samples of this class index count for nothing (loss and gradient 0, out
        of the mean's denominator).
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": one loss per sample; "sum": their sum; "mean": their sum divided
        by the summed weights of the samples' classes (not ignored).
    axis : int or None, default None
        The class axis. None (the default) takes the last axis for inputs of
        rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
        among 1 (PyTorch's layout, ``(N, C, ...)``) and -1 (Keras's, JAX's and
        NumPy's, ``(..., C)``), and raises ``ValueError`` where both fit
        (probability targets always do): pass ``axis=1`` or ``axis=-1`` there.
        Any axis gives the same numbers; the last is the fast path.
    sample_weight : array_like, optional
        One weight per sample, as in `cross_entropy`: it multiplies the
        sample's loss and gradient (with its class weight), and the mean
        divides by the sum over the counted samples of ``sample_weight[i] *
        weight[target[i]]``.
    return_accuracy : bool, default False
        Also return the share of counted samples (weighted by `sample_weight`)
        whose first maximal log-probability is the target's class; a sample
        holding a NaN counts as not correct. (z_loss, softcap and lse are
        options of logits: see `cross_entropy`.)

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar for "mean" and "sum"; for "none", an array of the shape
        of `log_probs` without the class axis.
        The loss and the gradient come in the dtype of `log_probs`: float32,
        float64, or float16 and bfloat16 (computed in float32, rounded once);
        float64 for integers (lists of Python numbers included). Sums over rows
        accumulate in float64.
    accuracy : numpy scalar
        Only with `return_accuracy`, after the loss (and gradient) in one tuple.

    Raises
    ------
    ValueError
        A target whose shape fits no class axis (the message names the `axis=`
        that would fit); ``axis=None`` with rank >= 3 where both axis 1 and the
        last fit; an `axis` out of range; 0-d `log_probs`; `weight` not of shape
        (C,); a bad `reduction`.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index`.
    TypeError
        A target that is not integers (probabilities belong to
        :func:`cross_entropy`); arrays that are not real numbers; a bool or
        non-integer `axis` or `ignore_index`; an option passed positionally, or
        ``dim=``.

    See Also
    --------
    nll_loss_with_grad : The loss and its gradient.
    cross_entropy : The same loss from logits (``nll_loss(log_softmax(x), y)``).
    log_softmax : Log-probabilities from logits.

    Notes
    -----
    A sample of class :math:`y` has the loss :math:`\ell = -w_y\, x_y`, with
    :math:`x` its log-probabilities; "mean" is PyTorch's weighted mean,
    :math:`\sum_n \ell_n / \sum_n w_{y_n}` over the samples not ignored (NaN over
    nothing). The numbers equal ``torch.nn.functional.nll_loss`` with the
    classes moved to dim 1. The rows are not checked to be log-probabilities.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> log_probs = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]))
    >>> labels = np.array([0, 2])
    >>> round(float(fastxent.nll_loss(log_probs, labels)), 4)
    0.7803
    >>> bool(np.isclose(fastxent.nll_loss(log_probs, labels), -np.log([0.7, 0.3]).mean()))
    True
    >>> round(float(fastxent.nll_loss(log_probs, np.array([0, -100]))), 4)  # the second ignored
    0.3567
    """
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=False, out=None, sample_weight=sample_weight,
                      return_accuracy=return_accuracy)


@overload
def nll_loss_with_grad(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def nll_loss_with_grad(
    log_probs: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatArray, FloatArray]: ...


@overload
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    return_accuracy: bool = ...,
) -> tuple[ScalarOrArray, ...]: ...


@signature_hints
def nll_loss_with_grad(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    axis: int | None = None,
    out: NDArray[Any] | None = None,
    sample_weight: ArrayLike | None = None,
    return_accuracy: bool = False,
) -> Any:
    """The loss of :func:`nll_loss` and its gradient with respect to the
    log-probabilities, in one pass.

    Parameters
    ----------
    log_probs : array_like, shape (..., C, ...)
        Log-probabilities, the classes on `axis` (float or integer).
    target : array_like of int
        Class indices, of the shape of `log_probs` without the class axis.
    weight : array_like, shape (C,), optional
        A weight per class. Default: 1 for every class.
    ignore_index : int, default -100
        Samples of this class index count for nothing (loss and gradient 0, out
        of the mean's denominator).
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": one loss per sample (the gradient is that of their sum); "sum": their sum; "mean": their sum divided
        by the summed weights of the samples' classes (not ignored).
    axis : int or None, default None
        The class axis. None (the default) takes the last axis for inputs of
        rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
        among 1 (PyTorch's layout, ``(N, C, ...)``) and -1 (Keras's, JAX's and
        NumPy's, ``(..., C)``), and raises ``ValueError`` where both fit
        (probability targets always do): pass ``axis=1`` or ``axis=-1`` there.
        Any axis gives the same numbers; the last is the fast path.
    out : ndarray, optional
        Where to write the gradient: an array of the shape and dtype of the
        gradient (no other argument's memory), or `log_probs` itself to overwrite
        it in place (no new N x C memory: the fastest call in a training
        loop). Returned as the gradient. Default: a new array.
    sample_weight : array_like, optional
        One weight per sample, as in `cross_entropy`: it multiplies the
        sample's loss and gradient (with its class weight), and the mean
        divides by the sum over the counted samples of ``sample_weight[i] *
        weight[target[i]]``.
    return_accuracy : bool, default False
        Also return the share of counted samples (weighted by `sample_weight`)
        whose first maximal log-probability is the target's class; a sample
        holding a NaN counts as not correct. (z_loss, softcap and lse are
        options of logits: see `cross_entropy`.)

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        As returned by :func:`nll_loss`.
    grad : ndarray
        d loss / d log_probs: the shape of `log_probs`, in the dtype of the
        loss; `out` when given. Never None.
    accuracy : numpy scalar
        Only with `return_accuracy`, after the loss (and gradient) in one tuple.

    Raises
    ------
    ValueError
        A target whose shape fits no class axis (the message names the `axis=`
        that would fit); ``axis=None`` with rank >= 3 where both axis 1 and the
        last fit; an `axis` out of range; 0-d `log_probs`; `weight` not of shape
        (C,); a bad `reduction`.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index`.
    TypeError
        A target that is not integers (probabilities belong to
        :func:`cross_entropy`); arrays that are not real numbers; a bool or
        non-integer `axis` or `ignore_index`; an option passed positionally, or
        ``dim=``.
    ValueError, TypeError
        Also for a bad `out` (see :func:`cross_entropy_with_grad`).

    See Also
    --------
    nll_loss : The loss alone.

    Notes
    -----
    The gradient is :math:`-w_y` at each sample's class :math:`y` and 0
    elsewhere (0 for ignored samples), divided by the mean's denominator for
    "mean".

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> log_probs = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]))
    >>> loss, grad = fastxent.nll_loss_with_grad(log_probs, np.array([0, 2]))
    >>> grad
    array([[-0.5,  0. ,  0. ],
           [ 0. ,  0. , -0.5]])
    """
    return class_loss(log_probs, target, kind=Scores.LOG_PROBS, weight=weight,
                      ignore_index=ignore_index, reduction=reduction, label_smoothing=0.0,
                      axis=axis, want_grad=True, out=out, sample_weight=sample_weight,
                      return_accuracy=return_accuracy)
