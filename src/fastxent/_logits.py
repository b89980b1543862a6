"""Losses from logits, with the semantics of torch.nn.functional."""

from __future__ import annotations

from typing import Any, Literal, overload

from ._typing import (ArrayLike, Float, FloatArray, FloatScalar, Loss, LossAndGrad, NDArray,
                      Reduced, Reduction, ScalarOrArray)
from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT, signature_hints


@overload
def cross_entropy(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> Float: ...


@overload
def cross_entropy(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> NDArray[Float]: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatScalar: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> FloatArray: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[True],
    return_accuracy: bool = ...,
) -> tuple[ScalarOrArray, ...]: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: Literal[True],
) -> tuple[ScalarOrArray, ...]: ...


@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: bool = ...,
) -> ScalarOrArray | tuple[ScalarOrArray, ...]: ...


@signature_hints
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    axis: int | None = None,
    sample_weight: ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    return_accuracy: bool = False,
) -> Any:
    r"""Softmax cross-entropy of `logits` against `target`, as
    ``torch.nn.functional.cross_entropy`` with the classes on `axis`.

    Parameters
    ----------
    logits : array_like, shape (..., C, ...)
        Unnormalised scores, the classes on `axis`: float32, float64, float16,
        bfloat16 (``ml_dtypes``) or integers (bool, complex, object and strings
        raise ``TypeError``).
    target : array_like
        Integer class indices, of the shape of `logits` without the class axis,
        or float class probabilities, of the shape of `logits` (each sample's
        distribution over the classes; not renormalised).
    weight : array_like, shape (C,), optional
        A weight per class (PyTorch's ``weight``); real numbers, cast to the
        dtype of the computation. Default: 1 for every class.
    ignore_index : int, default -100
        Samples whose class index is `ignore_index` count for nothing: loss 0,
        gradient 0, and out of the mean's denominator. Class indices only:
        passing it (even -100) with probability targets raises ``ValueError``,
        as PyTorch does.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": one loss per sample; "sum": their sum; "mean": PyTorch's
        weighted mean (see Notes).
    label_smoothing : float in [0, 1], default 0.0
        The target mixed with the uniform distribution over the C classes:
        ``(1 - label_smoothing) * target + label_smoothing / C``.
    axis : int or None, default None
        The class axis. None (the default) takes the last axis for inputs of
        rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
        among 1 (PyTorch's layout, ``(N, C, ...)``) and -1 (Keras's, JAX's and
        NumPy's, ``(..., C)``), and raises ``ValueError`` where both fit
        (probability targets always do): pass ``axis=1`` or ``axis=-1`` there.
        Any axis gives the same numbers; the last is the fast path.
    sample_weight : array_like, optional
        One weight per sample: the target's shape without the classes, or
        broadcastable to it; finite numbers (negative ones allowed, as PyTorch
        allows negative class weights). It multiplies the sample's loss and
        gradient, together with its class weight. The mean then divides by the
        sum over the counted samples (label not `ignore_index`) of
        ``sample_weight[i] * weight[target[i]]`` (class indices) or of
        ``sample_weight[i]`` (probabilities): PyTorch's weighted mean with each
        sample's weight times its sample weight.
    z_loss : float, default 0.0
        The coefficient z of the z-loss (PaLM's, Liger-Kernel's): each counted
        sample's loss gets ``z * lse**2`` added, lse its log-sum-exp, gradient
        included. It is weighted by `sample_weight` but not by the class
        weight, and a mean divides it by the same denominator as the rest
        (with class weights, Liger-Kernel divides it by the number of counted
        samples instead).
    softcap : float or None, default None
        None (off), or c > 0: the logits are soft-capped to ``c * tanh(logits
        / c)`` first (Gemma 2's convention); the loss, gradient (through the
        tanh), lse and accuracy are those of the capped logits. It costs a
        temporary array of the logits' size.
    return_lse : bool, default False
        Also return each sample's log-sum-exp of the (soft-capped) logits, an
        array of the target's shape without classes, in the logits' dtype; NaN
        for samples whose label is `ignore_index` (they are not computed).
    return_accuracy : bool, default False
        Also return the accuracy: the share of counted samples whose prediction
        (the first maximal logit, as ``np.argmax``) is the target class (for
        probabilities: the target's first maximal class), weighted by
        `sample_weight` as Keras's accuracy metrics weigh it (class weights do
        not). A NumPy scalar of the logits' dtype, NaN when nothing is counted.
        A sample whose logits hold a NaN or an infinity (its loss is NaN)
        counts as not correct.

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar for "mean" and "sum"; for "none", an array of the shape
        of `logits` without the class axis (0-d for 1-D logits, as PyTorch).
        The loss and the gradient come in the dtype of the logits: float32,
        float64, or float16 and bfloat16 (computed in float32, rounded once);
        float64 for integer logits (lists of Python numbers included). Sums over
        rows accumulate in float64.
    lse : ndarray
        Only with `return_lse`: each sample's log-sum-exp.
    accuracy : numpy scalar
        Only with `return_accuracy`. The results come as one tuple, in the
        order ``(loss, [grad,] lse, accuracy)``, with only those asked for.

    Raises
    ------
    ValueError
        A target whose shape fits no class axis (the message names the `axis=`
        that would fit, where one does); ``axis=None`` with rank >= 3 where the
        target fits both axis 1 and the last; an `axis` out of range; 0-d
        `logits`; `weight` not of shape (C,); a `reduction` not among "none",
        "sum", "mean"; `label_smoothing` outside [0, 1]; `ignore_index` given
        with probability targets.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index` (the message
        names the label and its position).
    TypeError
        Arrays that are not real numbers (complex, bool, strings, objects); float
        labels shaped like class indices, ``(N,)`` or ``(N, 1)`` (labels must be
        integers); a bool or non-integer `axis` or `ignore_index`; a string or
        non-number `label_smoothing`; an option passed positionally, or
        PyTorch's ``dim=`` (the message says fastxent's options are
        keyword-only and its class axis is ``axis=``).

    See Also
    --------
    cross_entropy_with_grad : The loss and its gradient in one pass.
    nll_loss : The same loss from log-probabilities.
    linear_cross_entropy : The loss of ``hidden @ linear_weight.T`` without the logits.
    fastxent.reference.cross_entropy : The pure-NumPy twin.

    Notes
    -----
    With :math:`z` a sample's logits over C classes, :math:`w` the class
    weights, :math:`\varepsilon` the label smoothing and
    :math:`\operatorname{lse}(z) = \log \sum_c e^{z_c}`, a sample of class
    :math:`y` has the loss

    .. math::

        \ell = (1 - \varepsilon)\, w_y \left(\operatorname{lse}(z) - z_y\right)
             + \frac{\varepsilon}{C} \sum_c w_c \left(\operatorname{lse}(z) - z_c\right),

    and a sample of class probabilities :math:`t` the loss
    :math:`\ell = \sum_c w_c u_c (\operatorname{lse}(z) - z_c)` with
    :math:`u = (1 - \varepsilon)\, t + \varepsilon / C`. "mean" is PyTorch's
    weighted mean: for class indices, :math:`\sum_n \ell_n / \sum_n w_{y_n}`
    over the samples not ignored; for probabilities, :math:`\sum_n \ell_n / N`.
    A mean over nothing (every sample ignored, or weights summing to 0) is NaN,
    as in PyTorch. NaN in the logits gives NaN, unchecked.

    Zero classes (an empty class axis): each sample's loss is 0 and the mean
    NaN, as in PyTorch; a label that counts raises ``IndexError``.

    The numbers equal ``torch.nn.functional.cross_entropy`` with the classes
    moved to dim 1. fastxent does not check that `logits` are logits:
    probabilities passed here give a finite, wrong loss (as in PyTorch); pass
    ``log(p)`` to :func:`nll_loss`, or use :func:`fastxent.sklearn.log_loss`.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import log_softmax
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32)
    >>> labels = np.array([0, 1])
    >>> loss = fastxent.cross_entropy(logits, labels)
    >>> loss.dtype, round(float(loss), 4)
    (dtype('float32'), 0.3185)
    >>> per_sample = fastxent.cross_entropy(logits, labels, reduction="none")
    >>> np.round(per_sample, 4)
    array([0.417, 0.22 ], dtype=float32)
    >>> bool(np.allclose(per_sample, -log_softmax(logits, axis=1)[[0, 1], labels]))
    True

    Class probabilities, label smoothing and class weights:

    >>> probs = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    >>> round(float(fastxent.cross_entropy(logits, probs)), 4)
    0.5135
    >>> round(float(fastxent.cross_entropy(logits, labels, weight=[1.0, 2.0, 1.0],
    ...                                    label_smoothing=0.1)), 4)
    0.3755

    Rank >= 3: PyTorch's layout (N, C, T) needs ``axis=1`` where the shapes
    could also be read as (N, T, C):

    >>> scores = np.zeros((4, 7, 7))
    >>> fastxent.cross_entropy(scores, np.zeros((4, 7), dtype=int))
    Traceback (most recent call last):
        ...
    ValueError: axis: logits of shape (4, 7, 7) and target of shape (4, 7) fit classes on axis 1 and on the last axis: pass axis=1 (PyTorch's layout, (N, C, ...)) or axis=-1 (Keras's, JAX's and NumPy's, (..., C))
    >>> round(float(fastxent.cross_entropy(scores, np.zeros((4, 7), dtype=int), axis=1)), 4)
    1.9459
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=False, out=None, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


@overload
def cross_entropy_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def cross_entropy_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Float] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduced = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: Literal[False] = ...,
    return_accuracy: Literal[False] = ...,
) -> tuple[FloatArray, FloatArray]: ...


@overload
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Reduction = ...,
    label_smoothing: float = ...,
    axis: int | None = ...,
    out: NDArray[Any] | None = ...,
    sample_weight: ArrayLike | None = ...,
    z_loss: float = ...,
    softcap: float | None = ...,
    return_lse: bool = ...,
    return_accuracy: bool = ...,
) -> tuple[ScalarOrArray, ...]: ...


@signature_hints
def cross_entropy_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = IGNORE_INDEX_DEFAULT,
    reduction: Reduction = "mean",
    label_smoothing: float = 0.0,
    axis: int | None = None,
    out: NDArray[Any] | None = None,
    sample_weight: ArrayLike | None = None,
    z_loss: float = 0.0,
    softcap: float | None = None,
    return_lse: bool = False,
    return_accuracy: bool = False,
) -> Any:
    r"""The loss of :func:`cross_entropy` and its gradient with respect to the
    logits, in one fused pass.

    Parameters
    ----------
    logits, target : array_like
        As in :func:`cross_entropy`.
    weight : array_like, shape (C,), optional
        As in :func:`cross_entropy`.
    ignore_index : int, default -100
        As in :func:`cross_entropy` (ignored samples get a gradient of 0).
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`cross_entropy`. With "none" the gradient is that of
        ``loss.sum()``.
    label_smoothing : float in [0, 1], default 0.0
        As in :func:`cross_entropy`.
    axis : int or None, default None
        The class axis. None (the default) takes the last axis for inputs of
        rank 1 and 2; for rank >= 3 it takes the axis the target's shape fits
        among 1 (PyTorch's layout, ``(N, C, ...)``) and -1 (Keras's, JAX's and
        NumPy's, ``(..., C)``), and raises ``ValueError`` where both fit
        (probability targets always do): pass ``axis=1`` or ``axis=-1`` there.
        Any axis gives the same numbers; the last is the fast path.
    out : ndarray, optional
        Where to write the gradient: an array of the shape and dtype of the
        gradient (no other argument's memory), or `logits` itself to overwrite
        it in place (no new N x C memory: the fastest call in a training
        loop). Returned as the gradient. Default: a new array, whose fresh
        pages the system faults in and zeroes at every call: in a loop, pass
        one buffer (or the logits) instead. Cross-entropy of 2048 x 32768
        float32, one thread: 27 ms with `out=` against 31 ms allocating, and
        up to 1.4 s for a fresh gradient on a virtual machine short of ready
        memory (docs/benchmarks.md, "Fresh pages").
    sample_weight : array_like, optional
        One weight per sample: the target's shape without the classes, or
        broadcastable to it; finite numbers (negative ones allowed, as PyTorch
        allows negative class weights). It multiplies the sample's loss and
        gradient, together with its class weight. The mean then divides by the
        sum over the counted samples (label not `ignore_index`) of
        ``sample_weight[i] * weight[target[i]]`` (class indices) or of
        ``sample_weight[i]`` (probabilities): PyTorch's weighted mean with each
        sample's weight times its sample weight.
    z_loss : float, default 0.0
        The coefficient z of the z-loss (PaLM's, Liger-Kernel's): each counted
        sample's loss gets ``z * lse**2`` added, lse its log-sum-exp, gradient
        included. It is weighted by `sample_weight` but not by the class
        weight, and a mean divides it by the same denominator as the rest
        (with class weights, Liger-Kernel divides it by the number of counted
        samples instead).
    softcap : float or None, default None
        None (off), or c > 0: the logits are soft-capped to ``c * tanh(logits
        / c)`` first (Gemma 2's convention); the loss, gradient (through the
        tanh), lse and accuracy are those of the capped logits. It costs a
        temporary array of the logits' size.
    return_lse : bool, default False
        Also return each sample's log-sum-exp of the (soft-capped) logits, an
        array of the target's shape without classes, in the logits' dtype; NaN
        for samples whose label is `ignore_index` (they are not computed).
    return_accuracy : bool, default False
        Also return the accuracy: the share of counted samples whose prediction
        (the first maximal logit, as ``np.argmax``) is the target class (for
        probabilities: the target's first maximal class), weighted by
        `sample_weight` as Keras's accuracy metrics weigh it (class weights do
        not). A NumPy scalar of the logits' dtype, NaN when nothing is counted.
        A sample whose logits hold a NaN or an infinity (its loss is NaN)
        counts as not correct.

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        As returned by :func:`cross_entropy`.
    grad : ndarray
        d loss / d logits: the shape of `logits`, in the dtype of the loss
        (that of the logits; float64 for integers); `out` when given. Never
        None.
    lse : ndarray
        Only with `return_lse`: each sample's log-sum-exp.
    accuracy : numpy scalar
        Only with `return_accuracy`. The results come as one tuple, in the
        order ``(loss, [grad,] lse, accuracy)``, with only those asked for.

    Raises
    ------
    ValueError
        A target whose shape fits no class axis (the message names the `axis=`
        that would fit, where one does); ``axis=None`` with rank >= 3 where the
        target fits both axis 1 and the last; an `axis` out of range; 0-d
        `logits`; `weight` not of shape (C,); a `reduction` not among "none",
        "sum", "mean"; `label_smoothing` outside [0, 1]; `ignore_index` given
        with probability targets.
    IndexError
        A class index outside ``[0, C)`` that is not `ignore_index` (the message
        names the label and its position).
    TypeError
        Arrays that are not real numbers (complex, bool, strings, objects); float
        labels shaped like class indices, ``(N,)`` or ``(N, 1)`` (labels must be
        integers); a bool or non-integer `axis` or `ignore_index`; a string or
        non-number `label_smoothing`; an option passed positionally, or
        PyTorch's ``dim=`` (the message says fastxent's options are
        keyword-only and its class axis is ``axis=``).
    ValueError, TypeError
        Also for `out`: not an ndarray (``TypeError``), of another shape
        (``ValueError``) or dtype (``TypeError``), read-only, or overlapping an
        input other than `logits` (``ValueError``).

    See Also
    --------
    cross_entropy : The loss alone.
    fastxent.torch.cross_entropy : The same, as a PyTorch autograd function.

    Notes
    -----
    The gradient with respect to the logits is

    .. math::

        \frac{\partial \ell}{\partial z_c} = \Big(\sum_k u_k\Big)\,
            \operatorname{softmax}(z)_c - u_c,

    with :math:`u_c = w_c \left((1 - \varepsilon)\,[c = y] + \varepsilon / C\right)`
    for a class index :math:`y` (0 for an ignored sample) and
    :math:`u_c = w_c \left((1 - \varepsilon)\, t_c + \varepsilon / C\right)` for
    probabilities :math:`t`; "mean" divides it by the mean's denominator. It is
    computed in the same pass over the logits as the loss.

    The loss, its mean and its dtype are those of :func:`cross_entropy`
    (PyTorch's); the gradient equals the one PyTorch's autograd computes.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> from scipy.special import softmax
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32)
    >>> labels = np.array([0, 1])
    >>> loss, grad = fastxent.cross_entropy_with_grad(logits, labels)
    >>> round(float(loss), 4), grad.dtype
    (0.3185, dtype('float32'))
    >>> np.round(grad, 4)
    array([[-0.1705,  0.1212,  0.0493],
           [ 0.0543, -0.0988,  0.0445]], dtype=float32)
    >>> bool(np.allclose(grad, (softmax(logits, axis=1) - np.eye(3)[labels]) / 2))
    True

    In place, in a training loop: the gradient overwrites the logits.

    >>> loss, grad = fastxent.cross_entropy_with_grad(logits, labels, out=logits)
    >>> grad is logits
    True
    """
    return class_loss(logits, target, kind=Scores.LOGITS, weight=weight, ignore_index=ignore_index,
                      reduction=reduction, label_smoothing=label_smoothing, axis=axis,
                      want_grad=True, out=out, sample_weight=sample_weight, z_loss=z_loss,
                      softcap=softcap, return_lse=return_lse, return_accuracy=return_accuracy)


@overload
def binary_cross_entropy_with_logits(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> Float: ...


@overload
def binary_cross_entropy_with_logits(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> NDArray[Float]: ...


@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
) -> FloatScalar: ...


@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
) -> FloatArray: ...


@signature_hints
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
) -> Loss:
    r"""Binary cross-entropy of ``sigmoid(logits)`` against `target`,
    elementwise, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Stable for any logit (no sigmoid is formed).

    Parameters
    ----------
    logits : array_like
        Scores of any shape, one per binary decision (float or integer).
    target : array_like
        Targets in [0, 1] of the shape of `logits` (labels 0/1 or soft
        probabilities; integers and bools of 0/1 work too).
    weight : array_like, optional
        A weight per element, broadcastable to the shape of `logits` (without
        making it larger). Default: 1.
    pos_weight : array_like, optional
        The weight of positive examples, broadcastable to `logits` (usually one
        per class on the last axis, as PyTorch's). Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses; "sum": their sum; "mean": their sum
        divided by the number of elements.

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        A NumPy scalar for "mean" and "sum"; the shape of `logits` for "none".
        The loss and the gradient come in the dtype of the logits: float32,
        float64, or float16 and bfloat16 (computed in float32, rounded once);
        float64 for integer logits (lists of Python numbers included). Sums
        accumulate in float64.

    Raises
    ------
    ValueError
        A `target` of another shape than `logits`; a `weight` or `pos_weight`
        that does not broadcast to `logits`, or would broadcast it to more; a
        bad `reduction`.
    TypeError
        Arrays that are not real numbers; an option passed positionally.

    See Also
    --------
    binary_cross_entropy_with_logits_with_grad : The loss and its gradient.
    binary_cross_entropy : The same loss from probabilities.

    Notes
    -----
    With :math:`p` the weight of positives, :math:`w` the weight and
    :math:`\sigma` the logistic sigmoid, each element has the loss

    .. math::

        \ell = -w \left(p\, t \log \sigma(x) + (1 - t) \log(1 - \sigma(x))\right)
             = w \left((1 - t)\, x + (1 + (p - 1)\, t)
               \left(\log(1 + e^{-|x|}) + \max(-x, 0)\right)\right),

    the second form (PyTorch's) stable for any logit: nothing overflows or
    cancels. The numbers equal
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[1.5, -0.5], [0.0, 3.0]])
    >>> target = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> loss = fastxent.binary_cross_entropy_with_logits(logits, target)
    >>> round(float(loss), 4)
    0.3543
    >>> sigmoid = 1 / (1 + np.exp(-logits))
    >>> bool(np.isclose(loss, -np.mean(target * np.log(sigmoid) + (1 - target) * np.log(1 - sigmoid))))
    True
    >>> np.round(fastxent.binary_cross_entropy_with_logits(
    ...     logits, target, pos_weight=[2.0, 1.0], reduction="none"), 4)
    array([[0.4028, 0.4741],
           [1.3863, 0.0486]])
    """
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=False, out=None)


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Float] | None = ...,
) -> tuple[Float, NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: NDArray[Float],
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Float] | None = ...,
) -> tuple[NDArray[Float], NDArray[Float]]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Reduced = ...,
    out: NDArray[Any] | None = ...,
) -> tuple[FloatScalar, FloatArray]: ...


@overload
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    out: NDArray[Any] | None = ...,
) -> tuple[FloatArray, FloatArray]: ...


@signature_hints
def binary_cross_entropy_with_logits_with_grad(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    out: NDArray[Any] | None = None,
) -> LossAndGrad:
    r"""The loss of :func:`binary_cross_entropy_with_logits` and its gradient with
    respect to the logits, in one pass.

    Parameters
    ----------
    logits : array_like
        Scores of any shape, one per binary decision (float or integer).
    target : array_like
        Targets in [0, 1] of the shape of `logits` (labels 0/1 or soft
        probabilities; integers and bools of 0/1 work too).
    weight : array_like, optional
        A weight per element, broadcastable to the shape of `logits` (without
        making it larger). Default: 1.
    pos_weight : array_like, optional
        The weight of positive examples, broadcastable to `logits` (usually one
        per class on the last axis, as PyTorch's). Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses (the gradient is that of their sum); "sum": their sum; "mean": their sum
        divided by the number of elements.
    out : ndarray, optional
        Where to write the gradient: an array of the shape and dtype of the
        gradient (no other argument's memory), or `logits` itself to overwrite
        it in place (no new N x C memory: the fastest call in a training
        loop). Returned as the gradient. Default: a new array, whose fresh
        pages the system faults in and zeroes at every call: in a loop, pass
        one buffer (or the logits) instead. Cross-entropy of 2048 x 32768
        float32, one thread: 27 ms with `out=` against 31 ms allocating, and
        up to 1.4 s for a fresh gradient on a virtual machine short of ready
        memory (docs/benchmarks.md, "Fresh pages").

    Returns
    -------
    loss : numpy.float32 or numpy.float64, or ndarray
        As returned by :func:`binary_cross_entropy_with_logits`.
    grad : ndarray
        d loss / d logits: the shape of `logits`, in the dtype of the loss;
        `out` when given. Never None.

    Raises
    ------
    ValueError
        A `target` of another shape than `logits`; a `weight` or `pos_weight`
        that does not broadcast to `logits`, or would broadcast it to more; a
        bad `reduction`.
    TypeError
        Arrays that are not real numbers; an option passed positionally.
    ValueError, TypeError
        Also for a bad `out` (see :func:`cross_entropy_with_grad`).

    See Also
    --------
    binary_cross_entropy_with_logits : The loss alone.

    Notes
    -----
    The gradient of each element's loss (see
    :func:`binary_cross_entropy_with_logits`) is

    .. math::

        \frac{\partial \ell}{\partial x} = w \left((1 + (p - 1)\, t)\, \sigma(x) - p\, t\right),

    divided by the number of elements for "mean".

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[1.5, -0.5], [0.0, 3.0]])
    >>> target = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(logits, target)
    >>> sigmoid = 1 / (1 + np.exp(-logits))
    >>> bool(np.allclose(grad, (sigmoid - target) / target.size))
    True
    >>> np.round(grad, 4)
    array([[-0.0456,  0.0944],
           [-0.125 , -0.0119]])
    """
    return binary_loss(logits, target, kind=BinaryInput.LOGITS, weight=weight,
                       pos_weight=pos_weight, reduction=reduction, want_grad=True, out=out)
