"""PyTorch autograd bridge: torch.nn.functional's losses on the fused kernels.

``fastxent.torch.cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` take the arguments of their namesakes in
``torch.nn.functional`` (class axis ``dim`` 1, or 0 for unbatched input), and
``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss`` and ``BCEWithLogitsLoss`` are
subclasses of torch.nn's modules of those names. On CPU float32/float64
tensors one fused pass computes the loss and its gradient straight from the
tensors' memory (no copies); the backward only scales the saved gradient by
``grad_output``. Every other call runs PyTorch's own implementation:

* other devices, other dtypes (float16, bfloat16), other layouts, tensor
  subclasses that override ``__torch_function__``;
* a target (probabilities), ``weight`` or ``pos_weight`` that requires grad;
* double backward (``create_graph=True``), forward-mode AD, ``torch.func``
  transforms.

Who is told: each function and module takes ``backend=``. ``"auto"`` (the
default) uses the fused kernels where they apply and are quicker, and
PyTorch elsewhere, silently: the result is the same either way. Quicker:
on small inputs the bridge's fixed cost per call outweighs the kernel's
speed, so "auto" runs PyTorch's loss below AUTO_MIN_ELEMENTS elements
(cross_entropy; below AUTO_MIN_ROWS rows of at most FEW_CLASSES classes),
AUTO_MIN_ELEMENTS_BINARY (the binary losses) and AUTO_MIN_ELEMENTS_NLL
(nll_loss: infinite, PyTorch's is a gather and a scatter), and under
torch.compile (AUTO_KERNELS_UNDER_COMPILE), unless ``inplace_backward=True``. ``"fastxent"`` says the caller
wants the kernels, so a fallback warns once per reason (RuntimeWarning).
``"torch"`` always runs PyTorch's implementation.

Under ``torch.compile`` the losses are torch.library custom operators
(``fastxent::class_loss``, ``fastxent::binary_loss``) that stay in the
compiled graph, with ``backend="fastxent"`` (``"auto"`` leaves the loss to
the compiler there); ``inplace_backward`` does not apply there.

Mechanism and cost: in eager mode a ``torch.autograd.Function`` entered
through its C ``apply`` (the Python ``Function.apply`` wrapper binds
arguments for torch.func, which never reaches this path); measured at
64 x 10 it costs about half as much per call as calling the custom operator
eagerly, whose dispatcher and schema handling come on top. What the bridge
adds to the kernel's own call is the autograd node and two NumPy views.

This module imports torch; ``import fastxent`` does not import it.
"""

import math
import warnings

import numpy as np
import torch
import torch.autograd.forward_ad as _forward_ad
import torch.nn.functional as F
from torch.nn import _reduction
from torch.overrides import has_torch_function_variadic

from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT

__all__ = [
    "AUTO_MIN_ELEMENTS",
    "AUTO_MIN_ELEMENTS_BINARY",
    "AUTO_MIN_ELEMENTS_NLL",
    "AUTO_KERNELS_UNDER_COMPILE",
    "AUTO_MIN_ROWS",
    "FEW_CLASSES",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
]

BACKENDS = ("auto", "fastxent", "torch")
# backend="auto" runs PyTorch's own implementation (unless inplace_backward=True)
# where the fixed cost of a Python autograd.Function, some 15 us more per call
# than PyTorch's own loss, outweighs the fused kernel's speed: cross_entropy
# below AUTO_MIN_ELEMENTS elements, or, for rows of at most FEW_CLASSES
# classes (where PyTorch's loss costs more per row), below AUTO_MIN_ROWS
# rows; the binary losses below AUTO_MIN_ELEMENTS_BINARY elements; nll_loss
# at every size (PyTorch's reads one value per row and scatters one per row:
# the kernel's pass over all N x C was slower at every size measured).
# docs/benchmarks.md has the measurement that set them.
AUTO_MIN_ELEMENTS = 65536
AUTO_MIN_ROWS = 256
FEW_CLASSES = 16
AUTO_MIN_ELEMENTS_BINARY = 16384
AUTO_MIN_ELEMENTS_NLL = math.inf
# Under torch.compile, "auto" leaves the loss to the compiler: its fused loss
# beat the custom operators in the training steps measured (whose backward
# is a further pass over N x C: it cannot skip the scaling by a cotangent of 1).
AUTO_KERNELS_UNDER_COMPILE = False
_KERNEL_DTYPES = (torch.float32, torch.float64)
_warned = set()  # fallback reasons already reported under backend="fastxent"


# ---------------------------------------------------------------- the choice


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    return backend


def _torch_runs(input, inplace_backward, backend, loss):
    """Whether PyTorch's own implementation runs by the caller's choice:
    backend="torch", or "auto" on an input too small to gain from the kernels
    (loss: "cross_entropy", "nll_loss" or "binary")."""
    if _check_backend(backend) == "torch":
        return True
    if backend != "auto" or inplace_backward or not isinstance(input, torch.Tensor):
        return False
    if torch.compiler.is_compiling() and not AUTO_KERNELS_UNDER_COMPILE:
        return True
    size = input.numel()
    if loss == "binary":
        return size < AUTO_MIN_ELEMENTS_BINARY
    if loss == "nll_loss":
        return size < AUTO_MIN_ELEMENTS_NLL
    n_classes = input.shape[_class_dim_of(input)] if input.dim() else 0
    if 0 < n_classes <= FEW_CLASSES:
        return size // n_classes < AUTO_MIN_ROWS
    return size < AUTO_MIN_ELEMENTS


def _fallback_warning(reason, backend):
    """Warns once per reason, and only when the caller asked for fastxent."""
    if backend == "fastxent" and reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"fastxent.torch: {reason}: running PyTorch's own implementation",
                      RuntimeWarning, stacklevel=4)


def _unsupported(input, others, same_dtype):
    """Why the fused kernels cannot take this call, or None when they can.

    input: the prediction; others: the other tensors (None allowed), which
    must not require grad; same_dtype: the subset of others that must have
    input's dtype.
    """
    if has_torch_function_variadic(input, *others):
        return "a tensor subclass overrides __torch_function__"
    if not isinstance(input, torch.Tensor):
        return "the input is not a tensor"
    if input.dtype not in _KERNEL_DTYPES:
        return f"dtype {input.dtype}"
    if not input.is_cpu or input.layout is not torch.strided:
        return f"device {input.device}, layout {input.layout}"
    if input.dim() == 0:
        return "a 0-d input"
    for other in others:
        if other is None:
            continue
        if not isinstance(other, torch.Tensor):
            return "an argument is not a tensor"
        if not other.is_cpu or other.layout is not torch.strided:
            return f"an argument on device {other.device}, layout {other.layout}"
        if other.requires_grad and torch.is_grad_enabled():
            return "an argument other than the input requires grad"
    for other in same_dtype:
        if other is not None and other.dtype != input.dtype:
            return "arguments of different dtypes"
    if _forward_ad._current_level >= 0:
        return "forward-mode AD"
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform"
    return None


def _numpy(t):
    """The tensor's memory as a NumPy array (a view, never a copy)."""
    return None if t is None else t.detach().numpy()


# ---------------------------------------------------------------- autograd


class _FusedLoss(torch.autograd.Function):
    """A loss whose gradient the kernel computed along with it (eager mode).

    forward(input, kernel, reference, grad_shape, inplace, backend): kernel(x, out)
    returns (loss, grad) for the NumPy view x of input (grad written into out
    when out is given); reference(input) is PyTorch's loss, used for double
    backward; grad_shape(grad_output) reshapes grad_output to broadcast
    against the gradient (None for reduced losses); backend: the caller's
    choice, for the warning of a double backward.
    """

    @staticmethod
    def forward(ctx, input, kernel, reference, grad_shape, inplace, backend):
        x = input.detach().numpy()
        loss, grad = kernel(x, x if inplace else None)
        if inplace:
            # The gradient now sits in input's memory: bump its version so that
            # autograd refuses any saved use of the old values (not silent).
            torch.autograd.graph.increment_version(input)
            ctx.grad = input.detach()
        else:
            ctx.grad = torch.from_numpy(grad)
            ctx.save_for_backward(input)  # unpacked only for double backward
        ctx.reference, ctx.grad_shape, ctx.inplace, ctx.backend = (reference, grad_shape,
                                                                  inplace, backend)
        return torch.from_numpy(np.asarray(loss))

    @staticmethod
    def backward(ctx, grad_output):
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            return (_double_backward(ctx, grad_output),) + (None,) * 5
        return _scaled(ctx.grad, grad_output, ctx.grad_shape), None, None, None, None, None


def _scaled(grad, grad_output, grad_shape):
    """grad (of the loss, or of its sum) times grad_output, never in place: a
    second backward (retain_graph=True) reads the saved gradient again."""
    if grad_shape is not None:
        return grad * grad_shape(grad_output)
    if grad_output.item() == 1.0:  # loss.backward(): no pass over N x C
        return grad  # autograd does not write into gradients it is handed
    return grad * grad_output


# Function.apply without what only torch.func needs (bound default arguments,
# functorch's custom_function_call): _unsupported() has already sent calls
# under a torch.func transform to PyTorch's implementation.
_apply_fused = super(torch.autograd.Function, _FusedLoss).apply
_unwrap_if_dead = torch._C._functorch.unwrap_if_dead


def _double_backward(ctx, grad_output):
    _fallback_warning("double backward", ctx.backend)
    if ctx.inplace:
        raise RuntimeError("fastxent.torch: double backward (create_graph=True) needs the "
                           "input, which inplace_backward=True overwrote with the gradient")
    (input,) = ctx.saved_tensors
    with torch.enable_grad():
        loss = ctx.reference(input)
        (grad,) = torch.autograd.grad(loss, input, grad_output, create_graph=True)
    return grad


def _run(input, kernel, reference, grad_shape, inplace, backend):
    """The loss of the kernel path, with autograd when input needs a gradient."""
    if not (input.requires_grad and torch.is_grad_enabled()):
        if inplace:
            raise ValueError("inplace_backward: True needs an input that requires grad")
        return torch.from_numpy(np.asarray(kernel(_numpy(input), None, want_grad=False)))
    if inplace and input.is_leaf:
        raise ValueError("inplace_backward: True would overwrite a leaf tensor that requires "
                         "grad (a parameter or a user's input); it is for intermediate logits")
    if inplace and any(st == 0 and n > 1 for st, n in zip(input.stride(), input.shape)):
        raise ValueError("inplace_backward: True needs logits whose elements have memory of "
                         f"their own, not an expanded view (strides {input.stride()})")
    return _apply_fused(_unwrap_if_dead(input), kernel, reference, grad_shape, inplace, backend)


# ---------------------------------------------------------------- torch.compile
#
# Under torch.compile the losses are custom operators (torch.library): the
# compiler keeps them in its graph as opaque calls with a fake (shape-only)
# implementation, instead of tracing into NumPy and Cython (graph breaks and
# recompilations). In eager mode they cost more per call than the
# autograd.Function above (the dispatcher, schema checks), so eager calls
# take the Function; both run the same kernels. The gradient is an output of
# the operator, contiguous in the input's shape; inplace_backward does not
# apply under torch.compile.


def _class_dim_of(input):
    return 1 if input.dim() >= 2 else 0


def _scores(log_probs):
    """The kind of a class loss's scores, from the operators' PyTorch-style flag."""
    return Scores.LOG_PROBS if log_probs else Scores.LOGITS


def _binary_input(from_logits):
    """The kind of a binary loss's input, from the operators' PyTorch-style flag."""
    return BinaryInput.LOGITS if from_logits else BinaryInput.PROBS


def _core_ignore_index(target, ignore_index):
    """PyTorch refuses only a class index (>= 0) as ignore_index with
    probability targets; fastxent's core refuses any it is given."""
    if target.is_floating_point() and ignore_index < 0:
        return IGNORE_INDEX_DEFAULT
    return ignore_index


@torch.library.custom_op("fastxent::class_loss", mutates_args=())
def _class_loss_op(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                   ignore_index: int, reduction: str, label_smoothing: float,
                   log_probs: bool) -> tuple[torch.Tensor, torch.Tensor]:
    loss, grad = class_loss(_numpy(input), _numpy(target), kind=_scores(log_probs),
                            weight=_numpy(weight), ignore_index=_core_ignore_index(target, ignore_index),
                            reduction=reduction, label_smoothing=label_smoothing,
                            axis=_class_dim_of(input), want_grad=True, out=None)
    return torch.from_numpy(np.asarray(loss)), torch.from_numpy(grad).contiguous()


@_class_loss_op.register_fake
def _class_loss_fake(input, target, weight, ignore_index, reduction, label_smoothing, log_probs):
    d = _class_dim_of(input)
    shape = input.shape[:d] + input.shape[d + 1:] if reduction == "none" else ()
    return input.new_empty(shape), torch.empty_like(input, memory_format=torch.contiguous_format)


def _class_loss_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.class_dim = _class_dim_of(inputs[0]) if inputs[4] == "none" else None


def _class_loss_backward(ctx, grad_loss, _):
    (grad,) = ctx.saved_tensors
    if ctx.class_dim is not None:
        grad_loss = grad_loss.unsqueeze(ctx.class_dim)
    return grad * grad_loss, None, None, None, None, None, None


_class_loss_op.register_autograd(_class_loss_backward, setup_context=_class_loss_setup)


@torch.library.custom_op("fastxent::binary_loss", mutates_args=())
def _binary_loss_op(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                    pos_weight: torch.Tensor | None, reduction: str,
                    from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    loss, grad = binary_loss(_numpy(input), _numpy(target), kind=_binary_input(from_logits),
                             weight=_numpy(weight), pos_weight=_numpy(pos_weight),
                             reduction=reduction, want_grad=True, out=None)
    return torch.from_numpy(np.asarray(loss)), torch.from_numpy(grad).contiguous()


@_binary_loss_op.register_fake
def _binary_loss_fake(input, target, weight, pos_weight, reduction, from_logits):
    shape = input.shape if reduction == "none" else ()
    return input.new_empty(shape), torch.empty_like(input, memory_format=torch.contiguous_format)


def _binary_loss_setup(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _binary_loss_backward(ctx, grad_loss, _):
    (grad,) = ctx.saved_tensors
    return grad * grad_loss, None, None, None, None, None


_binary_loss_op.register_autograd(_binary_loss_backward, setup_context=_binary_loss_setup)


def _compilable(input, others):
    """Whether the custom operators take this call while torch.compile traces."""
    return (input.dtype in _KERNEL_DTYPES and input.device.type == "cpu" and input.dim() > 0
            and all(o is None or (o.device.type == "cpu" and not o.requires_grad)
                    for o in others))


def _reduction_of(size_average, reduce, reduction):
    """PyTorch's handling of the deprecated size_average and reduce."""
    if size_average is not None or reduce is not None:
        return _reduction.legacy_get_string(size_average, reduce)
    return reduction


# ---------------------------------------------------------------- functions


def _unsqueeze_class_dim(class_dim):
    return lambda grad_output: grad_output.unsqueeze(class_dim)


def _class_loss(name, torch_fn, input, target, weight, ignore_index, reduction, label_smoothing,
                inplace_backward, backend, log_probs):
    """cross_entropy and nll_loss: the kernel path, or PyTorch's function."""
    options = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction}
    if not log_probs:
        options["label_smoothing"] = label_smoothing

    def reference(x):
        return torch_fn(x, target, **options)

    if _torch_runs(input, inplace_backward, backend, name):
        return reference(input)
    if torch.compiler.is_compiling():
        if _compilable(input, (target, weight)) and (
                target.dtype == torch.int64 or (not log_probs and target.dtype == input.dtype)):
            return _class_loss_op(input, target, weight, ignore_index, reduction,
                                  label_smoothing, log_probs)[0]
        return reference(input)
    reason = _unsupported(input, (target, weight), (weight,))
    if reason is None and target.dtype != torch.int64 and (
            log_probs or target.dtype != input.dtype):
        reason = f"{name} target of dtype {target.dtype}"
    if reason is not None:
        _fallback_warning(reason, backend)
        return reference(input)
    class_dim = _class_dim_of(input)
    t, w = _numpy(target), _numpy(weight)
    ignore_index = _core_ignore_index(target, ignore_index)

    def kernel(x, out, want_grad=True):
        return class_loss(x, t, kind=_scores(log_probs), weight=w, ignore_index=ignore_index,
                          reduction=reduction, label_smoothing=label_smoothing, axis=class_dim,
                          want_grad=want_grad, out=out)

    grad_shape = _unsqueeze_class_dim(class_dim) if reduction == "none" else None
    return _run(input, kernel, reference, grad_shape, inplace_backward, backend)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0, *, inplace_backward=False,
                  backend="auto"):
    """torch.nn.functional.cross_entropy on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Logits, shape (C,), (N, C) or (N, C, d1, ...): classes on dim 1
        (dim 0 when unbatched).
    target : torch.Tensor
        int64 class indices (input's shape without the class dim), or class
        probabilities of input's shape and dtype.
    weight, size_average, ignore_index, reduce, reduction, label_smoothing
        As torch.nn.functional.cross_entropy (size_average and reduce are
        deprecated there too).
    inplace_backward : bool, keyword-only
        Let the gradient overwrite input's memory. Only for logits nothing
        else needs again: input's version counter is bumped, so autograd
        raises if anything saved them for its backward.
    backend : {"auto", "fastxent", "torch"}, keyword-only
        See the module's docstring.

    Returns
    -------
    torch.Tensor
        The loss, differentiable with respect to input.

    Raises
    ------
    ValueError, IndexError, TypeError
        Bad arguments, as the core's fastxent.cross_entropy (PyTorch's own
        errors where PyTorch's implementation runs).

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> logits = torch.randn(4, 3, requires_grad=True)
    >>> loss = fastxent.torch.cross_entropy(logits, torch.tensor([0, 2, 1, 0]))
    >>> loss.backward()
    >>> logits.grad.shape
    torch.Size([4, 3])
    """
    reduction = _reduction_of(size_average, reduce, reduction)
    return _class_loss("cross_entropy", F.cross_entropy, input, target, weight, ignore_index,
                       reduction, label_smoothing, inplace_backward, backend, log_probs=False)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean", *, inplace_backward=False, backend="auto"):
    """torch.nn.functional.nll_loss on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Log-probabilities, classes on dim 1 (dim 0 when unbatched).
    target : torch.Tensor
        int64 class indices, input's shape without the class dim.
    weight, size_average, ignore_index, reduce, reduction
        As torch.nn.functional.nll_loss.
    inplace_backward, backend : keyword-only
        As in cross_entropy.

    Returns
    -------
    torch.Tensor
        The loss.

    Raises
    ------
    ValueError, IndexError, TypeError
        Bad arguments.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> log_probs = torch.log_softmax(torch.randn(4, 3), dim=1)
    >>> float(fastxent.torch.nll_loss(log_probs, torch.tensor([0, 2, 1, 0]))) > 0
    True
    """
    reduction = _reduction_of(size_average, reduce, reduction)
    return _class_loss("nll_loss", F.nll_loss, input, target, weight, ignore_index, reduction,
                       0.0, inplace_backward, backend, log_probs=True)


def _binary(input, target, weight, pos_weight, reduction, inplace_backward, backend,
            from_logits):
    if from_logits:
        def reference(x):
            return F.binary_cross_entropy_with_logits(x, target, weight, reduction=reduction,
                                                      pos_weight=pos_weight)
    else:
        def reference(x):
            return F.binary_cross_entropy(x, target, weight, reduction=reduction)

    if _torch_runs(input, inplace_backward, backend, "binary"):
        return reference(input)
    if torch.compiler.is_compiling():
        if _compilable(input, (target, weight, pos_weight)) and target.shape == input.shape \
                and all(o is None or o.dtype == input.dtype for o in (target, weight, pos_weight)):
            return _binary_loss_op(input, target, weight, pos_weight, reduction, from_logits)[0]
        return reference(input)
    reason = _unsupported(input, (target, weight, pos_weight), (target, weight, pos_weight))
    if reason is None and target.shape != input.shape:
        reason = "a target of another shape than the input"
    if reason is not None:
        _fallback_warning(reason, backend)
        return reference(input)
    t, w, pw = _numpy(target), _numpy(weight), _numpy(pos_weight)

    def kernel(x, out, want_grad=True):
        return binary_loss(x, t, kind=_binary_input(from_logits), weight=w, pos_weight=pw,
                           reduction=reduction, want_grad=want_grad, out=out)

    grad_shape = (lambda g: g) if reduction == "none" else None
    return _run(input, kernel, reference, grad_shape, inplace_backward, backend)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean", *, inplace_backward=False, backend="auto"):
    """torch.nn.functional.binary_cross_entropy on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Probabilities in [0, 1].
    target : torch.Tensor
        Targets in [0, 1], input's shape and dtype.
    weight, size_average, reduce, reduction
        As torch.nn.functional.binary_cross_entropy (log terms clamped at -100).
    inplace_backward, backend : keyword-only
        As in cross_entropy.

    Returns
    -------
    torch.Tensor
        The loss.

    Raises
    ------
    ValueError
        A probability or target outside [0, 1], bad options.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> p = torch.tensor([0.9, 0.2])
    >>> round(float(fastxent.torch.binary_cross_entropy(p, torch.tensor([1.0, 0.0]))), 4)
    0.1643
    """
    reduction = _reduction_of(size_average, reduce, reduction)
    return _binary(input, target, weight, None, reduction, inplace_backward, backend,
                   from_logits=False)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None, *,
                                     inplace_backward=False, backend="auto"):
    """torch.nn.functional.binary_cross_entropy_with_logits on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Logits.
    target : torch.Tensor
        Targets in [0, 1], input's shape and dtype.
    weight, size_average, reduce, reduction, pos_weight
        As torch.nn.functional.binary_cross_entropy_with_logits.
    inplace_backward, backend : keyword-only
        As in cross_entropy.

    Returns
    -------
    torch.Tensor
        The loss.

    Raises
    ------
    ValueError
        Bad shapes or options.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> x = torch.tensor([2.0, -1.0])
    >>> round(float(fastxent.torch.binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0]))), 4)
    0.2201
    """
    reduction = _reduction_of(size_average, reduce, reduction)
    return _binary(input, target, weight, pos_weight, reduction, inplace_backward, backend,
                   from_logits=True)


# ---------------------------------------------------------------- modules


class _BridgeOptions:
    """The keyword-only options the modules add to torch.nn's."""

    def _set_bridge_options(self, inplace_backward, backend):
        self.inplace_backward = bool(inplace_backward)
        self.backend = _check_backend(backend)

    def extra_repr(self):
        return f"backend={self.backend!r}, inplace_backward={self.inplace_backward}"


class CrossEntropyLoss(_BridgeOptions, torch.nn.CrossEntropyLoss):
    """torch.nn.CrossEntropyLoss computed by fastxent.torch.cross_entropy.

    Same constructor (weight is a registered buffer), plus the keyword-only
    ``inplace_backward`` and ``backend`` of cross_entropy.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> loss_fn = fastxent.torch.CrossEntropyLoss(label_smoothing=0.1)
    >>> float(loss_fn(torch.zeros(2, 4), torch.tensor([1, 3]))) > 0
    True
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0, *, inplace_backward=False,
                 backend="auto"):
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input, target):
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing,
                             inplace_backward=self.inplace_backward, backend=self.backend)


class NLLLoss(_BridgeOptions, torch.nn.NLLLoss):
    """torch.nn.NLLLoss computed by fastxent.torch.nll_loss."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", *, inplace_backward=False, backend="auto"):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input, target):
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction, inplace_backward=self.inplace_backward,
                        backend=self.backend)


class BCELoss(_BridgeOptions, torch.nn.BCELoss):
    """torch.nn.BCELoss computed by fastxent.torch.binary_cross_entropy."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", *,
                 inplace_backward=False, backend="auto"):
        super().__init__(weight, size_average, reduce, reduction)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input, target):
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction,
                                    inplace_backward=self.inplace_backward, backend=self.backend)


class BCEWithLogitsLoss(_BridgeOptions, torch.nn.BCEWithLogitsLoss):
    """torch.nn.BCEWithLogitsLoss computed by
    fastxent.torch.binary_cross_entropy_with_logits (weight and pos_weight
    are registered buffers)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None, *, inplace_backward=False, backend="auto"):
        super().__init__(weight, size_average, reduce, reduction, pos_weight)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction,
            pos_weight=self.pos_weight, inplace_backward=self.inplace_backward,
            backend=self.backend)
