"""Cross-entropy losses for JAX, differentiable, on fastxent's fused kernels.

Each loss is a ``jax.custom_vjp`` function: its forward pass hands the arrays
to the fused kernel through a host callback, which computes the loss and the
gradient in one pass; the backward pass only scales that saved gradient by
the cotangent. They work eagerly and under ``jax.jit``,
``jax.grad``, ``jax.value_and_grad`` and ``jax.vmap``.

optax's names, arguments and per-example results:

* ``softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None)``
* ``softmax_cross_entropy(logits, labels, axis=-1, where=None)``
* ``sigmoid_binary_cross_entropy(logits, labels)``

and PyTorch's reduced forms, with the options of ``fastxent.cross_entropy``
(class axis ``axis``, default -1):

* ``cross_entropy(logits, target, *, weight=None, ignore_index=-100,
  reduction="mean", label_smoothing=0.0, axis=-1)``
* ``binary_cross_entropy_with_logits(logits, target, *, weight=None,
  pos_weight=None, reduction="mean")``

Where the kernels do not apply, the same functions compute in plain JAX
(same values, JAX's own autodiff): arrays not on the CPU (the default backend
is not ``cpu``), float16 and bfloat16, optax's ``where`` with the shape of
``logits`` (a mask over classes), and higher-order differentiation (the
kernel's gradient is not itself differentiable: ``jax.hessian`` raises).

Notes
-----
* Labels are checked on the host: a class label outside ``[0, C)`` (that is
  not ``ignore_index``) raises an error naming it, where optax returns NaN.
* ``jax.vmap`` of a per-example loss (``reduction="none"``, no ``weight`` or
  ``pos_weight``) is one kernel call over the whole batch; otherwise the
  kernel is called once per mapped element.
* The gradient with respect to float labels (soft targets), ``weight`` and
  ``pos_weight`` is computed in plain JAX, only when asked for.
* The callback: ``jax.experimental.buffer_callback`` where JAX has it (0.7
  and later), which lets the kernel read XLA's buffers and write the
  gradient into XLA's output buffer; ``jax.pure_callback`` otherwise, which
  copies the arrays to NumPy and the results back (measured on a busy
  2-core machine: 2.4x to 2.7x the cost per call at 64 x 10, 1.7x to 2.6x at
  8192 x 1000). An empty buffer_callback costs some 7 us per call. An XLA
  FFI custom call (a C handler compiled against ``jax.ffi.include_dir()``)
  would also avoid the Python call and the GIL, but needs a C++ toolchain
  and jaxlib's headers at build time; it is not built.
  ``benchmarks/bench_jax_training.py`` measures the fixed cost per call
  against optax's loss.
* The callback runs Python on XLA's thread: it takes the GIL, so a step is
  slower while another Python thread is busy.
"""

from __future__ import annotations

import ctypes
import functools
import operator
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np

from . import _losses
from ._bridges import Reduction, fill
from ._kinds import BinaryInput, Scores
from ._validate import IGNORE_INDEX_DEFAULT

if TYPE_CHECKING:  # jax is imported at the first call, not with fastxent
    import jax
    from jax.typing import ArrayLike

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class _Spec(NamedTuple):
    """The static options of one loss (hashable: a nondiff argument)."""

    op: str  # "softmax" (cross_entropy) or "sigmoid" (binary with logits)
    reduction: str
    ignore_index: int
    label_smoothing: float
    axis: int  # negative: counts from the end, so that vmap's new axis 0 leaves it


# --------------------------------------------------------------------------- public losses

# The documentation the losses share (see the module's docstring for more).
_SHARED_DOCS = dict(
    kernel_notes="""
        The forward pass computes the loss and its gradient in one call of
        the fused kernel (a host callback); the backward pass scales the saved
        gradient by the cotangent. It works eagerly and under ``jax.jit``,
        ``jax.grad``, ``jax.value_and_grad`` and ``jax.vmap``. Arrays not on
        the CPU, float16 and bfloat16 are computed in plain JAX instead (same
        values, JAX's autodiff); the kernel's gradient is not itself
        differentiable (``jax.hessian`` raises).""",
    label_errors="""
        ValueError, IndexError
            For bad shapes or class labels, from the kernel when the
            computation runs (under ``jax.jit``, inside JAX's own error): a
            label outside [0, C) is an error where optax returns NaN.""",
    where="""
        where : jax.Array of bool, optional
            Which examples count, the shape of the result: the others give 0
            and no gradient. With the shape of `logits` it masks classes
            instead (as optax), computed in plain JAX.""",
    reduction="""
        reduction : {"mean", "sum", "none"}, default "mean"
            ``"none"``: one loss per sample; ``"sum"``: their sum; ``"mean"``:
            their (weighted) mean.""",
)
_fill = fill(**_SHARED_DOCS)


@_fill
def cross_entropy(logits: ArrayLike, target: ArrayLike, *, weight: ArrayLike | None = None,
                  ignore_index: int = IGNORE_INDEX_DEFAULT, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, axis: int = -1) -> jax.Array:
    """Softmax cross-entropy of `logits`, as ``torch.nn.functional.cross_entropy``
    with the classes on `axis`, differentiable in JAX.

    Parameters
    ----------
    logits : jax.Array or array_like
        Unnormalised scores, classes on `axis`.
    target : jax.Array or array_like
        Integer class indices in [0, C) or `ignore_index` (the shape of
        `logits` without `axis`), or float class probabilities (the shape of
        `logits`).
    weight : jax.Array of shape (C,), optional
        A weight per class.
    ignore_index : int, default -100
        A class index whose samples count for nothing (class indices only).
    {reduction}
    label_smoothing : float, default 0.0
        In [0, 1]: the target becomes ``(1 - label_smoothing) * target +
        label_smoothing / C``.
    axis : int, default -1
        The class axis (JAX's and NumPy's convention; PyTorch's is 1).

    Returns
    -------
    jax.Array
        In `logits`' dtype: 0-d for ``"mean"`` and ``"sum"``, the shape of
        `logits` without `axis` for ``"none"``.

    Raises
    ------
    ValueError
        At once, for a bad `reduction`, `label_smoothing` or `axis`.
    TypeError
        At once, for an `axis` or `ignore_index` that is not an integer.
    {label_errors}

    See Also
    --------
    softmax_cross_entropy_with_integer_labels : The per-example form of optax.
    fastxent.torch.cross_entropy : The PyTorch bridge.
    fastxent.cross_entropy : The same loss on NumPy arrays.

    Notes
    -----
    With ``p = softmax(logits)`` along `axis`, the loss of a sample of class
    ``y`` is ``-weight[y] * log p[y]``; ``"mean"`` divides the sum by the
    summed weights of the counted samples (PyTorch's weighted mean).

    {kernel_notes}

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import fastxent.jax as fxj
    >>> logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    >>> loss, grad = jax.value_and_grad(fxj.cross_entropy)(logits, jnp.array([0, 2]))
    >>> round(float(loss), 4)
    0.6216
    >>> grad.dtype, grad.shape
    (dtype('float32'), (2, 3))
    >>> [[round(float(g), 4) for g in row] for row in grad]
    [[-0.1072, 0.0876, 0.0196], [0.1503, 0.1661, -0.3164]]
    """
    jnp = _jnp()
    x = jnp.asarray(logits)
    axis = _canonical_axis(axis, x.ndim)
    spec = _Spec("softmax", _reduction(reduction), _logits_ignore_index(ignore_index),
                 _smoothing(label_smoothing), axis)
    return _loss(spec, x, jnp.asarray(target), _optional(weight), None)


@_fill
def binary_cross_entropy_with_logits(logits: ArrayLike, target: ArrayLike, *,
                                     weight: ArrayLike | None = None,
                                     pos_weight: ArrayLike | None = None,
                                     reduction: Reduction = "mean") -> jax.Array:
    """Binary cross-entropy of ``sigmoid(logits)`` against `target` in [0, 1],
    as ``torch.nn.functional.binary_cross_entropy_with_logits``, differentiable
    in JAX.

    Parameters
    ----------
    logits : jax.Array or array_like
        Any shape.
    target : jax.Array or array_like
        Targets in [0, 1], the shape of `logits`.
    weight : jax.Array, optional
        Broadcast to `logits`: a weight per element.
    pos_weight : jax.Array, optional
        Broadcast to `logits`: the weight of the positive term.
    {reduction}

    Returns
    -------
    jax.Array
        In `logits`' dtype: 0-d, or the shape of `logits` for ``"none"``.

    Raises
    ------
    ValueError
        At once, for a bad `reduction`; bad shapes from the kernel when the
        computation runs.

    See Also
    --------
    sigmoid_binary_cross_entropy : The elementwise form of optax.
    fastxent.binary_cross_entropy_with_logits : The same loss on NumPy arrays.

    Notes
    -----
    Elementwise ``weight * ((1 - t) x + (1 + (pos_weight - 1) t) softplus(-x))``
    for logit ``x`` and target ``t``: exact for any logit.

    {kernel_notes}

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import fastxent.jax as fxj
    >>> loss = fxj.binary_cross_entropy_with_logits(jnp.array([2.0, -1.0]), jnp.array([1.0, 0.0]))
    >>> round(float(loss), 4)
    0.2201
    """
    jnp = _jnp()
    x = jnp.asarray(logits)
    spec = _Spec("sigmoid", _reduction(reduction), -100, 0.0, -1)
    return _loss(spec, x, jnp.asarray(target, dtype=x.dtype), _optional(weight),
                 _optional(pos_weight))


@_fill
def softmax_cross_entropy_with_integer_labels(logits: ArrayLike, labels: ArrayLike,
                                              axis: int | tuple[int, ...] = -1,
                                              where: ArrayLike | None = None) -> jax.Array:
    """Per-example softmax cross-entropy of integer labels, as
    ``optax.softmax_cross_entropy_with_integer_labels``.

    Parameters
    ----------
    logits : jax.Array or array_like
        Unnormalised scores, classes on `axis`.
    labels : jax.Array or array_like
        Integer labels in ``[0, C)``, the shape of `logits` without `axis`.
    axis : int or tuple of int, default -1
        The class axis; with a tuple, the classes are those axes flattened
        and a label is a flat index into them (as optax).
    {where}

    Returns
    -------
    jax.Array
        One loss per example in `logits`' dtype: the shape of `logits`
        without `axis`.

    Raises
    ------
    TypeError
        At once, if `logits` is not floating point or `labels` not integer.
    {label_errors}

    See Also
    --------
    cross_entropy : With class weights, ignore_index, smoothing, reductions.
    softmax_cross_entropy : Class probabilities instead of labels.

    Notes
    -----
    ``logsumexp(logits) - logits[label]`` along `axis`.

    {kernel_notes}

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import fastxent.jax as fxj
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> loss = fxj.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
    >>> loss.shape, [round(float(v), 4) for v in loss]
    ((2,), [0.2761, 2.9518])
    """
    jnp = _jnp()
    x, labels_ = jnp.asarray(logits), jnp.asarray(labels)
    _check_floating(x, "logits")
    if not jnp.issubdtype(labels_.dtype, jnp.integer):
        raise TypeError(f"labels: expected an integer dtype, got {labels_.dtype}")
    x, mask, class_axis = _flatten_class_axes(x, where, axis)
    return _per_example(x, labels_, mask, class_axis, _optax_integer_labels)


@_fill
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike,
                          axis: int | tuple[int, ...] | None = -1,
                          where: ArrayLike | None = None) -> jax.Array:
    """Per-example softmax cross-entropy of class probabilities, as
    ``optax.softmax_cross_entropy``.

    Parameters
    ----------
    logits : jax.Array or array_like
        Unnormalised scores, classes on `axis`.
    labels : jax.Array or array_like
        Class probabilities (one-hot or soft), the shape of `logits`.
    axis : int, tuple of int or None, default -1
        The class axis, or axes flattened together (None: all).
    {where}

    Returns
    -------
    jax.Array
        One loss per example in `logits`' dtype: the shape of `logits`
        without `axis`.

    Raises
    ------
    TypeError
        At once, if `logits` is not floating point.
    ValueError
        At once, if `labels` has another shape than `logits`.

    See Also
    --------
    softmax_cross_entropy_with_integer_labels : Integer labels.
    cross_entropy : With class weights, smoothing, reductions.

    Notes
    -----
    ``-sum(labels * log_softmax(logits))`` along `axis`; the gradient with
    respect to `labels`, when asked for, is computed in plain JAX.

    {kernel_notes}

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import fastxent.jax as fxj
    >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> [round(float(v), 4) for v in fxj.softmax_cross_entropy(logits, labels)]
    [0.2761, 2.9518]
    """
    jnp = _jnp()
    x, labels_ = jnp.asarray(logits), jnp.asarray(labels)
    _check_floating(x, "logits")
    if labels_.shape != x.shape:
        raise ValueError(f"labels: expected the shape of logits {x.shape}, "
                         f"got {labels_.shape}")
    if axis is None:
        axis = tuple(range(x.ndim))
    if where is not None and jnp.ndim(where) == x.ndim:
        return _optax_soft_labels(x, labels_, axis, where)
    # The class axes flattened at the end, for labels as for logits.
    stacked, mask, class_axis = _flatten_class_axes(
        jnp.stack([x, labels_.astype(x.dtype)]), where, axis, leading=1)
    return _per_example(stacked[0], stacked[1], mask, class_axis, _optax_soft_labels)


@_fill
def sigmoid_binary_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """Elementwise sigmoid cross-entropy, as ``optax.sigmoid_binary_cross_entropy``.

    Parameters
    ----------
    logits : jax.Array or array_like
        Any shape.
    labels : jax.Array or array_like
        Targets in [0, 1], broadcastable to `logits`.

    Returns
    -------
    jax.Array
        The loss of each element in `logits`' dtype, the shape of `logits`.

    Raises
    ------
    TypeError
        If `logits` is not floating point.
    ValueError
        If `labels` does not broadcast to `logits`.

    See Also
    --------
    binary_cross_entropy_with_logits : With weights and reductions.

    Notes
    -----
    ``softplus(x) - t x`` for logit ``x`` and label ``t``, written in the
    stable form ``(1 - t) x + softplus(-x)``.

    {kernel_notes}

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import fastxent.jax as fxj
    >>> loss = fxj.sigmoid_binary_cross_entropy(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0]))
    >>> [round(float(v), 4) for v in loss]
    [0.6931, 2.1269]
    """
    jnp = _jnp()
    x = jnp.asarray(logits)
    _check_floating(x, "logits")
    target = jnp.broadcast_to(jnp.asarray(labels, dtype=x.dtype), x.shape)
    return binary_cross_entropy_with_logits(x, target, reduction="none")


# --------------------------------------------------------------------------- the bridge


def _loss(spec: _Spec, x: jax.Array, target: jax.Array, weight: jax.Array | None,
          pos_weight: jax.Array | None) -> jax.Array:
    """The loss on the kernel where it applies, else in plain JAX."""
    if _kernel_applies(x):
        return _fused()(spec, x, target, weight, pos_weight)
    return _plain(spec, x, target, weight, pos_weight)


def _kernel_applies(x: jax.Array) -> bool:
    import jax

    if x.dtype not in _KERNEL_DTYPES or jax.default_backend() != "cpu":
        return False
    try:  # concrete arrays know their devices; tracers follow the default backend
        return all(d.platform == "cpu" for d in x.devices())
    except (AttributeError, TypeError, RuntimeError):  # a tracer
        return True


@functools.cache
def _fused() -> Callable[..., jax.Array]:
    """The custom_vjp function (built at first use, so that jax loads lazily)."""
    import jax

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
    def fused(spec: _Spec, x: jax.Array, target: jax.Array, weight: jax.Array | None,
              pos_weight: jax.Array | None) -> jax.Array:
        loss: jax.Array = _call_kernel(spec, x, target, weight, pos_weight, want_grad=False)
        return loss

    def forward(spec: _Spec, *primals: Any) -> tuple[jax.Array, Any]:
        # symbolic_zeros: each array says whether it needs a cotangent
        # (None, an absent weight, has no leaf and stays None).
        args: list[Any] = [None if p is None else p.value for p in primals]
        perturbed = [p is not None and p.perturbed and _is_float(p.value) for p in primals]
        x, target, weight, pos_weight = args
        loss, grad = _call_kernel(spec, x, target, weight, pos_weight, want_grad=True)
        # The gradient of the logits, and what the others' need, only if asked for.
        return loss, (grad if perturbed[0] else None, args, perturbed[1:])

    def backward(spec: _Spec, saved: Any, g: Any) -> tuple[jax.Array | None, ...]:
        grad, args, perturbed = saved
        if isinstance(g, jax.custom_derivatives.SymbolicZero):
            g = jax.numpy.zeros(g.shape, g.dtype)
        d_x = None
        if grad is not None:
            per_row = spec.reduction == "none" and spec.op == "softmax"
            d_x = grad * (jax.numpy.expand_dims(g, spec.axis) if per_row else g).astype(grad.dtype)
        d_others = [None, None, None]
        wanted = [i for i, p in enumerate(perturbed) if p]
        if wanted:  # soft targets, weights: JAX's autodiff of the plain loss
            def of_others(*chosen: jax.Array) -> jax.Array:
                full = list(args)
                for i, a in zip(wanted, chosen):
                    full[1 + i] = a
                return _plain(spec, *full)

            _, vjp = jax.vjp(of_others, *[args[1 + i] for i in wanted])
            for i, d in zip(wanted, vjp(g)):
                d_others[i] = d
        return (d_x, *d_others)

    fused.defvjp(forward, backward, symbolic_zeros=True)
    return fused


def _call_kernel(spec: _Spec, x: jax.Array, target: jax.Array, weight: jax.Array | None,
                 pos_weight: jax.Array | None, want_grad: bool) -> Any:
    """A host callback into the kernel: the loss (and the gradient)."""
    import jax

    loss_shape = () if spec.reduction != "none" else (
        x.shape[:spec.axis % x.ndim] + x.shape[spec.axis % x.ndim + 1:]
        if spec.op == "softmax" else x.shape)
    struct: Callable[..., Any] = jax.ShapeDtypeStruct  # (its __init__ is not annotated)
    shapes = [struct(loss_shape, x.dtype)]
    if want_grad:
        shapes.append(struct(x.shape, x.dtype))
    # Per-example losses of a vmapped batch are one kernel call over all of
    # it; a reduction (or weights) must see each mapped element alone.
    per_example = spec.reduction == "none" and weight is None and pos_weight is None
    vmap_method = "broadcast_all" if per_example else "sequential"
    buffer_callback = _buffer_callback()
    if buffer_callback is not None:
        call = buffer_callback(functools.partial(_host_into, spec, want_grad), tuple(shapes),
                               vmap_method=vmap_method)
        results = call(x, target, weight, pos_weight)
    else:
        results = jax.pure_callback(functools.partial(_host, spec, want_grad), tuple(shapes),
                                    x, target, weight, pos_weight, vmap_method=vmap_method)
    return tuple(results) if want_grad else results[0]


@functools.cache
def _buffer_callback() -> Callable[..., Any] | None:
    """jax.experimental.buffer_callback where this JAX has it (0.7 and later):
    the kernel reads XLA's input buffers and writes the gradient into XLA's
    output buffer, where jax.pure_callback copies the inputs to NumPy and the
    results back (about twice the cost per call: see the module's notes)."""
    try:
        from jax.experimental.buffer_callback import buffer_callback
    except ImportError:
        return None
    return buffer_callback


def _host_into(spec: _Spec, want_grad: bool, ctx: Any, out: Any, x: Any, target: Any,
               weight: Any, pos_weight: Any) -> None:
    """buffer_callback's host side: the kernel on XLA's buffers, the gradient
    written straight into the output buffer."""
    grad_out = np.asarray(out[1]) if want_grad else None
    if grad_out is not None:
        _advise_huge_pages(grad_out)
    loss = _kernel(spec, want_grad, np.asarray(x), np.asarray(target), _host_array(weight),
                   _host_array(pos_weight), grad_out)
    np.asarray(out[0])[...] = loss[0] if want_grad else loss


# Linux's transparent huge pages: 2 MiB, asked for with madvise's MADV_HUGEPAGE.
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14


def _advise_huge_pages(a: np.ndarray[Any, Any]) -> None:
    """Asks Linux for huge pages under the whole huge pages inside a large
    buffer not yet written. XLA's CPU buffers are fresh memory on 4 KiB pages
    (NumPy asks for huge pages, XLA does not): writing a gradient of 256 MB
    into one faulted 65,536 pages and took 3x the kernel's time. Advice only:
    where it is refused or unknown nothing changes."""
    if a.nbytes < 4 * _HUGE_PAGE:
        return
    madvise = _madvise()
    if madvise is None:
        return
    start = -(-a.ctypes.data // _HUGE_PAGE) * _HUGE_PAGE
    end = (a.ctypes.data + a.nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if end > start:
        madvise(start, end - start, _MADV_HUGEPAGE)


@functools.cache
def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's madvise on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return cast(Callable[[int, int, int], int], madvise)


def _host(spec: _Spec, want_grad: bool, x: Any, target: Any, weight: Any,
          pos_weight: Any) -> tuple[Any, ...]:
    """jax.pure_callback's host side, with NumPy copies in and out."""
    x = np.asarray(x)
    out = _kernel(spec, want_grad, x, np.asarray(target), _host_array(weight),
                  _host_array(pos_weight), None)
    loss, grad = out if want_grad else (out, None)
    loss = np.asarray(loss, dtype=x.dtype)
    return (loss, grad) if want_grad else (loss,)


def _kernel(spec: _Spec, want_grad: bool, x: np.ndarray[Any, Any], target: np.ndarray[Any, Any],
            weight: np.ndarray[Any, Any] | None, pos_weight: np.ndarray[Any, Any] | None,
            grad_out: np.ndarray[Any, Any] | None) -> Any:
    if spec.op == "softmax":
        return _losses.class_loss(x, target, kind=Scores.LOGITS, weight=weight,
                                  ignore_index=spec.ignore_index, reduction=spec.reduction,
                                  label_smoothing=spec.label_smoothing, axis=spec.axis,
                                  want_grad=want_grad, out=grad_out)
    return _losses.binary_loss(x, target, kind=BinaryInput.LOGITS, weight=weight,
                               pos_weight=pos_weight, reduction=spec.reduction,
                               want_grad=want_grad, out=grad_out)


def _host_array(a: Any) -> np.ndarray[Any, Any] | None:
    return None if a is None else np.asarray(a)


# --------------------------------------------------------------------------- plain JAX


def _plain(spec: _Spec, x: jax.Array, target: jax.Array, weight: jax.Array | None,
           pos_weight: jax.Array | None) -> jax.Array:
    """The same loss written in jax.numpy: the fallback, and the autodiff of
    the arguments other than the logits."""
    import jax
    import jax.numpy as jnp

    if spec.op == "sigmoid":
        w = 1.0 if weight is None else weight
        # (1 - t) x + (1 + (pw - 1) t) softplus(-x), PyTorch's stable form
        log_weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * target
        elementwise = w * ((1.0 - target) * x + log_weight * jax.nn.softplus(-x))
        return _reduce(spec.reduction, elementwise.astype(x.dtype), None)
    log_p = jax.nn.log_softmax(x.astype(_compute_dtype(x)), axis=spec.axis)
    n_classes = x.shape[spec.axis]
    w = jnp.ones(n_classes, log_p.dtype) if weight is None else jnp.asarray(weight, log_p.dtype)
    w_shape = [1] * x.ndim
    w_shape[spec.axis] = n_classes
    w_b = w.reshape(w_shape)
    ls = spec.label_smoothing
    smooth = -jnp.sum(w_b * log_p, axis=spec.axis)
    if jnp.issubdtype(target.dtype, jnp.integer):
        valid = target != spec.ignore_index
        safe = jnp.where(valid, target, 0)
        picked = jnp.take_along_axis(log_p, jnp.expand_dims(safe, spec.axis), axis=spec.axis)
        w_t = jnp.where(valid, w[safe], 0.0)
        per = -w_t * jnp.squeeze(picked, spec.axis) * (1.0 - ls)
        per = jnp.where(valid, per + ls / n_classes * smooth, 0.0)
        return _reduce(spec.reduction, per.astype(x.dtype), jnp.sum(w_t))
    t = target.astype(log_p.dtype) * (1.0 - ls) + ls / n_classes
    per = -jnp.sum(w_b * t * log_p, axis=spec.axis)
    return _reduce(spec.reduction, per.astype(x.dtype), None)


def _reduce(reduction: str, per: jax.Array, denominator: jax.Array | None) -> jax.Array:
    import jax.numpy as jnp

    if reduction == "none":
        return per
    total = jnp.sum(per, dtype=jnp.promote_types(per.dtype, jnp.float32))
    if reduction == "sum":
        return total.astype(per.dtype)
    count = per.size if denominator is None else denominator
    return (total / count).astype(per.dtype)


def _compute_dtype(x: jax.Array) -> np.dtype[Any]:
    """float16 and bfloat16 accumulate in float32, as the kernels' contract."""
    return np.promote_types(x.dtype, np.float32)


def _optax_integer_labels(logits: jax.Array, labels: jax.Array, axis: int,
                          where: Any = None) -> jax.Array:
    """optax's formula, for the paths the kernel does not take."""
    import jax
    import jax.numpy as jnp

    picked = jnp.take_along_axis(logits, jnp.expand_dims(labels, axis), axis=axis)
    loss = jax.nn.logsumexp(logits, axis=axis, where=where) - jnp.squeeze(picked, axis)
    if where is not None:
        loss = jnp.where(jnp.any(where, axis), loss, 0.0)
    return loss.astype(logits.dtype)


def _optax_soft_labels(logits: jax.Array, labels: jax.Array, axis: Any,
                       where: Any = None) -> jax.Array:
    import jax

    if where is not None and where.ndim != logits.ndim:
        where = jax.numpy.expand_dims(where, axis)
    log_p = jax.nn.log_softmax(logits, axis, where=where)
    return -(labels * log_p).sum(axis, where=where)


def _per_example(logits: jax.Array, target: jax.Array, where: Any, axis: int,
                 plain: Callable[..., jax.Array]) -> jax.Array:
    """optax's per-example loss through the kernel, `where` masking examples."""
    import jax.numpy as jnp

    if where is not None and jnp.ndim(where) == logits.ndim:
        return plain(logits, target, axis, where)  # a mask over classes
    if not _kernel_applies(logits):
        loss = plain(logits, target, axis)
    else:
        if where is not None:  # masked examples must not reach the kernel's checks
            where = jnp.asarray(where, bool)
            logits = jnp.where(jnp.expand_dims(where, axis), logits, 0)
            target = jnp.where(where if target.ndim < logits.ndim
                               else jnp.expand_dims(where, axis), target, 0)
        spec = _Spec("softmax", "none", _unused_ignore_index(target), 0.0, axis - logits.ndim)
        loss = _fused()(spec, logits, target, None, None)
    return loss if where is None else jnp.where(where, loss, 0).astype(loss.dtype)


def _flatten_class_axes(x: jax.Array, where: Any, axis: int | tuple[int, ...] | list[int],
                        leading: int = 0) -> tuple[jax.Array, Any, int]:
    """optax's tuple `axis`: the class axes moved to the end and flattened.
    Returns (x, where, axis) with a single non-negative int axis."""
    import jax.numpy as jnp

    ndim = x.ndim - leading
    if isinstance(axis, (tuple, list)):
        classes = sorted({_canonical_axis(a, ndim) % ndim for a in axis})
        batch = [a for a in range(ndim) if a not in classes]
        lead = list(range(leading))
        x = x.transpose(lead + [leading + a for a in batch + classes])
        x = x.reshape(x.shape[:leading + len(batch)] + (-1,))
        if where is not None and jnp.ndim(where) == ndim:
            raise ValueError("where: a mask over classes needs an integer axis")
        return x, where, len(batch)
    return x, where, _canonical_axis(axis, ndim) + ndim


def _unused_ignore_index(target: jax.Array) -> int:
    """optax has no ignore_index: one no label of target's dtype can equal
    (every negative label is refused by the kernel anyway)."""
    if np.issubdtype(target.dtype, np.integer):
        return int(np.iinfo(target.dtype).min)
    from ._validate import IGNORE_INDEX_DEFAULT

    return IGNORE_INDEX_DEFAULT  # probabilities: none given


# --------------------------------------------------------------------------- arguments


def _jnp() -> Any:
    import jax.numpy as jnp

    return jnp


def _optional(a: ArrayLike | None) -> jax.Array | None:
    return None if a is None else _jnp().asarray(a)


def _is_float(a: jax.Array) -> bool:
    return bool(_jnp().issubdtype(a.dtype, _jnp().floating))


def _check_floating(x: jax.Array, name: str) -> None:
    if not _jnp().issubdtype(x.dtype, _jnp().floating):
        raise TypeError(f"{name}: expected a floating-point dtype, got {x.dtype}")


def _canonical_axis(axis: Any, ndim: int) -> int:
    """`axis` as a negative int (counting from the end)."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis: expected an integer, got {axis!r}")
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis: expected an integer, got {axis!r}") from None
    if not -ndim <= index < ndim:
        raise ValueError(f"axis: {index} is out of range for logits of {ndim} dimensions")
    return index - ndim if index >= 0 else index


def _reduction(reduction: str) -> Reduction:
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction: expected 'none', 'sum' or 'mean', got {reduction!r}")
    return cast(Reduction, reduction)


def _smoothing(label_smoothing: float) -> float:
    from ._validate import check_label_smoothing

    return float(check_label_smoothing(label_smoothing))


def _logits_ignore_index(ignore_index: int) -> int:
    from ._validate import IGNORE_INDEX_DEFAULT, check_ignore_index

    if ignore_index is IGNORE_INDEX_DEFAULT:
        return ignore_index  # not given: probability targets accept it
    return int(check_ignore_index(ignore_index))
