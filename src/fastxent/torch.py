"""PyTorch autograd bridge: torch.nn.functional's losses on the fused kernels.

``fastxent.torch.cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` take the arguments of their namesakes in
``torch.nn.functional`` (class axis ``dim`` 1, or 0 for unbatched input), and
``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss`` and ``BCEWithLogitsLoss`` are
subclasses of torch.nn's modules of those names. On CPU float32/float64
tensors (and float16/bfloat16 ones for ``cross_entropy`` and ``nll_loss``,
computed in float32 with results in the tensor's dtype; bfloat16 needs
``ml_dtypes``) one fused pass computes the loss and its gradient straight
from the tensors' memory (no copies); the backward only scales the saved
gradient by ``grad_output``. Every other call runs PyTorch's own
implementation:

* other devices, other dtypes (float16 and bfloat16 for the binary losses),
  other layouts, tensor subclasses that override ``__torch_function__``;
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
torch.compile (AUTO_KERNELS_UNDER_COMPILE), unless ``inplace_backward=True``.
``"fastxent"`` says the caller wants the kernels, so a fallback warns once
per reason (RuntimeWarning).
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
from collections.abc import Callable
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import torch
import torch.autograd.forward_ad as _forward_ad
import torch.nn.functional as F
from torch.nn import _reduction
from torch.overrides import has_torch_function_variadic

from . import _blas, _linear
from ._bridges import Reduction, fill
from ._losses import BinaryInput, Scores, binary_loss, class_loss
from ._validate import IGNORE_INDEX_DEFAULT

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "linear_cross_entropy",
    "nll_loss",
]

Backend: TypeAlias = Literal["auto", "fastxent", "torch"]
# kernel(x, out, want_grad=True): the loss (and gradient) of the NumPy view x
Kernel: TypeAlias = Callable[..., Any]

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
# The class losses' kernels also read float16 and bfloat16 tensors as they are
# (a bfloat16 tensor's memory seen as ml_dtypes.bfloat16, without a copy), with
# results in the tensor's dtype, as PyTorch's; the binary losses' kernels do
# not (they would return float32).
_HALF_DTYPES = (torch.float16, torch.bfloat16)
_CLASS_DTYPES = _KERNEL_DTYPES + _HALF_DTYPES
_warned: set[str] = set()  # fallback reasons already reported under backend="fastxent"


# ---------------------------------------------------------------- the choice


def _check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    return cast(Backend, backend)


def _torch_runs(input: object, inplace_backward: bool, backend: str, loss: str) -> bool:
    """Whether PyTorch's own implementation runs by the caller's choice:
    backend="torch", or "auto" on an input too small to gain from the kernels
    (loss: "cross_entropy", "nll_loss" or "binary")."""
    if _check_backend(backend) == "torch":
        return True
    if backend != "auto" or inplace_backward or not isinstance(input, torch.Tensor):
        return False
    if torch.compiler.is_compiling() and not AUTO_KERNELS_UNDER_COMPILE:
        return True
    return _small(input, loss)


def _small(input: object, loss: str) -> bool:
    """backend="auto"'s size rule: whether `input` is too small for the
    kernels to beat PyTorch's loss (loss: "cross_entropy", "nll_loss" or
    "binary"). Also the first test of every call (_quick): a few attribute
    reads, so that what auto hands to PyTorch costs next to nothing more."""
    if not isinstance(input, torch.Tensor):
        return False
    size = input.numel()
    if loss == "binary":
        return size < AUTO_MIN_ELEMENTS_BINARY
    if loss == "nll_loss":
        return size < AUTO_MIN_ELEMENTS_NLL
    dim = input.dim()
    n_classes = input.shape[1 if dim >= 2 else 0] if dim else 0
    if 0 < n_classes <= FEW_CLASSES:
        return size // n_classes < AUTO_MIN_ROWS
    return size < AUTO_MIN_ELEMENTS


def _quick(input: object, inplace_backward: bool, backend: str, loss: str) -> bool:
    """Whether backend="auto" hands this call to PyTorch by its size alone,
    before any other work (which the call then does not need: PyTorch's
    function checks its own arguments, and runs under torch.compile too)."""
    return backend == "auto" and not inplace_backward and _small(input, loss)


def _fallback_warning(reason: str, backend: str) -> None:
    """Warns once per reason, and only when the caller asked for fastxent."""
    if backend == "fastxent" and reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"fastxent.torch: {reason}: running PyTorch's own implementation",
                      RuntimeWarning, stacklevel=4)


def _unsupported(input: Any, others: tuple[Any, ...],
                 same_dtype: tuple[torch.Tensor | None, ...],
                 dtypes: tuple[torch.dtype, ...] = _KERNEL_DTYPES) -> str | None:
    """Why the fused kernels cannot take this call, or None when they can.

    input: the prediction, of one of dtypes; others: the other tensors (None
    allowed), which must not require grad; same_dtype: the subset of others
    that must have input's dtype.
    """
    if has_torch_function_variadic(input, *others):
        return "a tensor subclass overrides __torch_function__"
    if not isinstance(input, torch.Tensor):
        return "the input is not a tensor"
    if input.dtype not in dtypes or (input.dtype == torch.bfloat16 and _bfloat16() is None):
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


def _numpy(t: torch.Tensor | None) -> Any:
    """The tensor's memory as a NumPy array (a view, never a copy); a bfloat16
    tensor's as an ml_dtypes.bfloat16 array (NumPy has no bfloat16 of its own)."""
    if t is None:
        return None
    if t.dtype == torch.bfloat16:
        return t.detach().view(torch.int16).numpy().view(_bfloat16())
    return t.detach().numpy()


def _tensor(a: Any) -> torch.Tensor:
    """torch.from_numpy, bfloat16 arrays included (a view, never a copy)."""
    a = np.asarray(a)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _bfloat16() -> Any:
    """ml_dtypes.bfloat16, or None where ml_dtypes is not installed (imported
    here, on the first bfloat16 tensor: an optional dependency)."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


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
    def forward(ctx: Any, input: torch.Tensor, kernel: Kernel,
                reference: Callable[[torch.Tensor], torch.Tensor],
                grad_shape: Callable[[torch.Tensor], torch.Tensor] | None, inplace: bool,
                backend: str) -> torch.Tensor:
        x = _numpy(input)
        loss, grad = kernel(x, x if inplace else None)
        if inplace:
            # The gradient now sits in input's memory: bump its version so that
            # autograd refuses any saved use of the old values (not silent).
            torch.autograd.graph.increment_version(input)
            ctx.grad = input.detach()
        else:
            ctx.grad = _tensor(grad)
            ctx.save_for_backward(input)  # unpacked only for double backward
        ctx.reference, ctx.grad_shape, ctx.inplace, ctx.backend = (reference, grad_shape,
                                                                  inplace, backend)
        return _tensor(loss)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: a differentiable gradient
            return (_double_backward(ctx, grad_output),) + (None,) * 5
        grad = ctx.grad
        if not _keeps_graph():
            # The node's last backward: let go of the gradient, so that autograd
            # may take it as the input's .grad instead of copying it (it copies
            # a gradient anything else still holds).
            ctx.grad = None
        return _scaled(grad, grad_output, ctx.grad_shape), None, None, None, None, None


def _scaled(grad: torch.Tensor, grad_output: torch.Tensor,
            grad_shape: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """grad (of the loss, or of its sum) times grad_output, never in place: a
    second backward (retain_graph=True) reads the saved gradient again."""
    if grad_shape is not None:
        return grad * grad_shape(grad_output)
    if grad_output.item() == 1.0:  # loss.backward(): no pass over N x C
        return grad  # autograd does not write into gradients it is handed
    return grad * grad_output


def _keeps_graph() -> bool:
    """Whether the running backward keeps the graph (retain_graph=True): a
    later backward will read the saved gradient again."""
    return _keep_graph is None or bool(_keep_graph())


# (a private function of torch.autograd; without it, every backward counts as kept)
_keep_graph: Callable[[], bool] | None = getattr(torch._C._autograd,
                                                 "_get_current_graph_task_keep_graph", None)


# Function.apply without what only torch.func needs (bound default arguments,
# functorch's custom_function_call): _unsupported() has already sent calls
# under a torch.func transform to PyTorch's implementation.
_apply_fused: Callable[..., torch.Tensor] = super(torch.autograd.Function, _FusedLoss).apply
_unwrap_if_dead = torch._C._functorch.unwrap_if_dead


def _double_backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
    _fallback_warning("double backward", ctx.backend)
    if ctx.inplace:
        raise RuntimeError("fastxent.torch: double backward (create_graph=True) needs the "
                           "input, which inplace_backward=True overwrote with the gradient")
    (input,) = ctx.saved_tensors
    with torch.enable_grad():
        loss = ctx.reference(input)
        (grad,) = torch.autograd.grad(loss, input, grad_output, create_graph=True)
    return cast(torch.Tensor, grad)


def _run(input: torch.Tensor, kernel: Kernel, reference: Callable[[torch.Tensor], torch.Tensor],
         grad_shape: Callable[[torch.Tensor], torch.Tensor] | None, inplace: bool,
         backend: str) -> torch.Tensor:
    """The loss of the kernel path, with autograd when input needs a gradient."""
    if not (input.requires_grad and torch.is_grad_enabled()):
        if inplace:
            raise ValueError("inplace_backward: True needs an input that requires grad")
        return _tensor(kernel(_numpy(input), None, want_grad=False))
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


def _class_dim_of(input: torch.Tensor) -> int:
    return 1 if input.dim() >= 2 else 0


def _scores(log_probs: bool) -> Scores:
    """The kind of a class loss's scores, from the operators' PyTorch-style flag."""
    return Scores.LOG_PROBS if log_probs else Scores.LOGITS


def _binary_input(from_logits: bool) -> BinaryInput:
    """The kind of a binary loss's input, from the operators' PyTorch-style flag."""
    return BinaryInput.LOGITS if from_logits else BinaryInput.PROBS


def _core_ignore_index(target: torch.Tensor, ignore_index: int) -> int:
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
    return _tensor(loss), _tensor(grad).contiguous()


@_class_loss_op.register_fake
def _class_loss_fake(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                     ignore_index: int, reduction: str, label_smoothing: float,
                     log_probs: bool) -> tuple[torch.Tensor, torch.Tensor]:
    d = _class_dim_of(input)
    shape = input.shape[:d] + input.shape[d + 1:] if reduction == "none" else ()
    return input.new_empty(shape), torch.empty_like(input, memory_format=torch.contiguous_format)


def _class_loss_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.save_for_backward(output[1])
    ctx.class_dim = _class_dim_of(inputs[0]) if inputs[4] == "none" else None


def _class_loss_backward(ctx: Any, grad_loss: torch.Tensor,
                         _: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
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
def _binary_loss_fake(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
                      pos_weight: torch.Tensor | None, reduction: str,
                      from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    shape = input.shape if reduction == "none" else ()
    return input.new_empty(shape), torch.empty_like(input, memory_format=torch.contiguous_format)


def _binary_loss_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.save_for_backward(output[1])


def _binary_loss_backward(ctx: Any, grad_loss: torch.Tensor,
                          _: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    (grad,) = ctx.saved_tensors
    return grad * grad_loss, None, None, None, None, None


_binary_loss_op.register_autograd(_binary_loss_backward, setup_context=_binary_loss_setup)


def _compilable(input: torch.Tensor, others: tuple[torch.Tensor | None, ...],
                dtypes: tuple[torch.dtype, ...] = _KERNEL_DTYPES) -> bool:
    """Whether the custom operators take this call while torch.compile traces."""
    if input.dtype == torch.bfloat16 and _bfloat16() is None:
        return False
    return (input.dtype in dtypes and input.device.type == "cpu" and input.dim() > 0
            and all(o is None or (o.device.type == "cpu" and not o.requires_grad)
                    for o in others))


def _reduction_of(size_average: bool | None, reduce: bool | None,
                  reduction: Reduction) -> Reduction:
    """PyTorch's handling of the deprecated size_average and reduce."""
    if size_average is not None or reduce is not None:
        return cast(Reduction, _reduction.legacy_get_string(size_average, reduce))
    return reduction


# ---------------------------------------------------------------- functions


def _unsqueeze_class_dim(class_dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda grad_output: grad_output.unsqueeze(class_dim)


def _class_loss(name: str, torch_fn: Callable[..., torch.Tensor], input: torch.Tensor,
                target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int,
                reduction: str, label_smoothing: float, inplace_backward: bool, backend: str,
                log_probs: bool) -> torch.Tensor:
    """cross_entropy and nll_loss: the kernel path, or PyTorch's function."""
    options: dict[str, Any] = {"weight": weight, "ignore_index": ignore_index,
                               "reduction": reduction}
    if not log_probs:
        options["label_smoothing"] = label_smoothing

    def reference(x: torch.Tensor) -> torch.Tensor:
        return torch_fn(x, target, **options)

    if _torch_runs(input, inplace_backward, backend, name):
        return reference(input)
    if torch.compiler.is_compiling():
        if _compilable(input, (target, weight), _CLASS_DTYPES) and (
                target.dtype == torch.int64 or (not log_probs and target.dtype == input.dtype)):
            loss: torch.Tensor = _class_loss_op(input, target, weight, ignore_index, reduction,
                                                label_smoothing, log_probs)[0]
            return loss
        return reference(input)
    reason = _unsupported(input, (target, weight), (weight,), _CLASS_DTYPES)
    if reason is None and target.dtype != torch.int64 and (
            log_probs or target.dtype != input.dtype):
        reason = f"{name} target of dtype {target.dtype}"
    if reason is not None:
        _fallback_warning(reason, backend)
        return reference(input)
    class_dim = _class_dim_of(input)
    t, w = _numpy(target), _numpy(weight)
    ignore_index = _core_ignore_index(target, ignore_index)

    def kernel(x: Any, out: Any, want_grad: bool = True) -> Any:
        return class_loss(x, t, kind=_scores(log_probs), weight=w, ignore_index=ignore_index,
                          reduction=reduction, label_smoothing=label_smoothing, axis=class_dim,
                          want_grad=want_grad, out=out)

    grad_shape = _unsqueeze_class_dim(class_dim) if reduction == "none" else None
    return _run(input, kernel, reference, grad_shape, inplace_backward, backend)


# The documentation every function and module of this bridge shares.
_SHARED_DOCS = dict(
    size_average="""
        size_average : bool or None, default None
            Deprecated in PyTorch, kept for its signature: when it or `reduce`
            is given, they decide the reduction as ``torch.nn.functional``
            decides it (and `reduction` is ignored).""",
    reduce="""
        reduce : bool or None, default None
            Deprecated in PyTorch, kept for its signature: see `size_average`.""",
    reduction="""
        reduction : {"mean", "sum", "none"}, default "mean"
            ``"none"``: one loss per element of the result's shape; ``"sum"``:
            their sum; ``"mean"``: their (weighted) mean.""",
    bridge_options="""
        inplace_backward : bool, default False, keyword-only
            Let the gradient overwrite `input`'s memory (no N x C buffer of its
            own). Only for intermediate logits that nothing else needs again:
            `input`'s version counter is bumped, so that autograd raises if
            anything saved them for its own backward. ValueError for a leaf
            tensor, an expanded view, or an input that does not require grad.
        backend : {"auto", "fastxent", "torch"}, default "auto", keyword-only
            ``"auto"``: the fused kernels where they apply, PyTorch's own
            implementation elsewhere (see Notes), silently; ``"fastxent"``: the
            same, but each reason for a fallback warns once (RuntimeWarning);
            ``"torch"``: always PyTorch's implementation.""",
    fallback_notes="""
        The fused kernels take CPU float32/float64 strided tensors: one pass
        computes the loss and its gradient straight from the tensors' memory,
        and the backward only scales the saved gradient by ``grad_output``.
        PyTorch's own implementation runs instead (same values) for other
        devices, dtypes or layouts, tensor subclasses overriding
        ``__torch_function__``, a target, `weight` or `pos_weight` that
        requires grad, double backward (``create_graph=True``), forward-mode
        AD and ``torch.func`` transforms. Under ``torch.compile`` the loss is
        the custom operator ``fastxent::class_loss`` or ``fastxent::binary_loss``
        (`inplace_backward` does not apply there).""",
)
_fill = fill(**_SHARED_DOCS)


@_fill
def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, *, inplace_backward: bool = False,
                  backend: Backend = "auto") -> torch.Tensor:
    """Softmax cross-entropy of logits, as ``torch.nn.functional.cross_entropy``,
    on the fused kernels.

    Same signature, defaults and results as PyTorch's function, plus two
    keyword-only options; the result is differentiable with respect to `input`.

    Parameters
    ----------
    input : torch.Tensor
        Logits of shape (C,), (N, C) or (N, C, d1, ...): the classes on dim 1,
        or dim 0 when unbatched.
    target : torch.Tensor
        int64 class indices in [0, C) or `ignore_index`, of `input`'s shape
        without the class dim; or class probabilities of `input`'s shape and
        dtype.
    weight : torch.Tensor of shape (C,), optional
        A weight per class, in `input`'s dtype.
    {size_average}
    ignore_index : int, default -100
        A class index whose samples count for nothing (class indices only).
    {reduce}
    {reduction}
    label_smoothing : float, default 0.0
        In [0, 1]: the target becomes ``(1 - label_smoothing) * target +
        label_smoothing / C``.
    {bridge_options}

    Returns
    -------
    torch.Tensor
        `input`'s dtype and device: 0-d for ``"mean"`` and ``"sum"``, the
        target's shape without the class dim (N, d1, ...) for ``"none"``.

    Raises
    ------
    ValueError
        Bad shapes or options (a `backend` not listed, `label_smoothing`
        outside [0, 1], a misused `inplace_backward`).
    IndexError
        A class index outside [0, C) that is not `ignore_index`.
    TypeError
        A target of another dtype than int64 or `input`'s.
    RuntimeError
        Where PyTorch's implementation runs, PyTorch's own errors.

    See Also
    --------
    fastxent.cross_entropy_with_grad : The same loss on NumPy arrays.
    CrossEntropyLoss : The module.
    torch.nn.functional.cross_entropy : PyTorch's implementation.

    Notes
    -----
    With ``p = softmax(input)`` along the class dim, the loss of a sample of
    class ``y`` is ``-weight[y] * log p[y]``; ``"mean"`` divides the sum by the
    summed weights of the counted samples (PyTorch's weighted mean).

    {fallback_notes}

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], requires_grad=True)
    >>> loss = fastxent.torch.cross_entropy(logits, torch.tensor([0, 2]))
    >>> round(loss.item(), 4)
    0.6216
    >>> loss.backward()
    >>> logits.grad
    tensor([[-0.1072,  0.0876,  0.0196],
            [ 0.1503,  0.1661, -0.3164]])
    """
    if _quick(input, inplace_backward, backend, "cross_entropy"):
        return F.cross_entropy(input, target, weight, size_average, ignore_index, reduce,
                               reduction, label_smoothing)
    reduction = _reduction_of(size_average, reduce, reduction)
    return _class_loss("cross_entropy", F.cross_entropy, input, target, weight, ignore_index,
                       reduction, label_smoothing, inplace_backward, backend, log_probs=False)


@_fill
def nll_loss(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: Reduction = "mean", *,
             inplace_backward: bool = False, backend: Backend = "auto") -> torch.Tensor:
    """Negative log-likelihood of log-probabilities, as
    ``torch.nn.functional.nll_loss``, on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Log-probabilities of shape (C,), (N, C) or (N, C, d1, ...): the classes
        on dim 1, or dim 0 when unbatched.
    target : torch.Tensor
        int64 class indices in [0, C) or `ignore_index`, of `input`'s shape
        without the class dim.
    weight : torch.Tensor of shape (C,), optional
        A weight per class, in `input`'s dtype.
    {size_average}
    ignore_index : int, default -100
        A class index whose samples count for nothing.
    {reduce}
    {reduction}
    {bridge_options}

    Returns
    -------
    torch.Tensor
        `input`'s dtype: 0-d for ``"mean"`` and ``"sum"``, the target's shape
        for ``"none"``.

    Raises
    ------
    ValueError
        Bad shapes or options.
    IndexError
        A class index outside [0, C) that is not `ignore_index`.
    RuntimeError
        Where PyTorch's implementation runs, PyTorch's own errors.

    See Also
    --------
    cross_entropy : The same loss from logits.
    NLLLoss : The module.
    torch.nn.functional.nll_loss : PyTorch's implementation.

    Notes
    -----
    The loss of a sample of class ``y`` is ``-weight[y] * input[y]``;
    ``"mean"`` divides by the summed weights of the counted samples.

    {fallback_notes}

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> log_probs = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    >>> fastxent.torch.nll_loss(log_probs, torch.tensor([0, 2]))
    tensor(0.2899)
    """
    if _quick(input, inplace_backward, backend, "nll_loss"):
        return F.nll_loss(input, target, weight, size_average, ignore_index, reduce, reduction)
    reduction = _reduction_of(size_average, reduce, reduction)
    return _class_loss("nll_loss", F.nll_loss, input, target, weight, ignore_index, reduction,
                       0.0, inplace_backward, backend, log_probs=True)


def _binary(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
            pos_weight: torch.Tensor | None, reduction: str, inplace_backward: bool,
            backend: str, from_logits: bool) -> torch.Tensor:
    reference: Callable[[torch.Tensor], torch.Tensor]
    if from_logits:
        def reference(x: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(x, target, weight, reduction=reduction,
                                                      pos_weight=pos_weight)
    else:
        def reference(x: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy(x, target, weight, reduction=reduction)

    if _torch_runs(input, inplace_backward, backend, "binary"):
        return reference(input)
    if torch.compiler.is_compiling():
        if _compilable(input, (target, weight, pos_weight)) and target.shape == input.shape \
                and all(o is None or o.dtype == input.dtype for o in (target, weight, pos_weight)):
            loss: torch.Tensor = _binary_loss_op(input, target, weight, pos_weight, reduction,
                                                 from_logits)[0]
            return loss
        return reference(input)
    reason = _unsupported(input, (target, weight, pos_weight), (target, weight, pos_weight))
    if reason is None and target.shape != input.shape:
        reason = "a target of another shape than the input"
    if reason is not None:
        _fallback_warning(reason, backend)
        return reference(input)
    t, w, pw = _numpy(target), _numpy(weight), _numpy(pos_weight)

    def kernel(x: Any, out: Any, want_grad: bool = True) -> Any:
        return binary_loss(x, t, kind=_binary_input(from_logits), weight=w, pos_weight=pw,
                           reduction=reduction, want_grad=want_grad, out=out)

    grad_shape = (lambda g: g) if reduction == "none" else None
    return _run(input, kernel, reference, grad_shape, inplace_backward, backend)


@_fill
def binary_cross_entropy(input: torch.Tensor, target: torch.Tensor,
                         weight: torch.Tensor | None = None, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: Reduction = "mean", *,
                         inplace_backward: bool = False, backend: Backend = "auto"
                         ) -> torch.Tensor:
    """Binary cross-entropy of probabilities, as
    ``torch.nn.functional.binary_cross_entropy``, on the fused kernels.

    Parameters
    ----------
    input : torch.Tensor
        Probabilities in [0, 1], any shape.
    target : torch.Tensor
        Targets in [0, 1], `input`'s shape and dtype.
    weight : torch.Tensor, optional
        Broadcast to `input`: a weight per element.
    {size_average}
    {reduce}
    {reduction}
    {bridge_options}

    Returns
    -------
    torch.Tensor
        `input`'s dtype: 0-d for ``"mean"`` and ``"sum"``, `input`'s shape for
        ``"none"``.

    Raises
    ------
    ValueError
        A probability or target outside [0, 1] (its position named), bad
        shapes or options.
    RuntimeError
        Where PyTorch's implementation runs, PyTorch's own errors.

    See Also
    --------
    binary_cross_entropy_with_logits : The same loss from logits, stable.
    BCELoss : The module.
    torch.nn.functional.binary_cross_entropy : PyTorch's implementation.

    Notes
    -----
    Elementwise ``-weight * (t log p + (1 - t) log(1 - p))``, each log clamped
    at -100 as PyTorch clamps it.

    {fallback_notes}

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> p = torch.tensor([0.9, 0.2])
    >>> fastxent.torch.binary_cross_entropy(p, torch.tensor([1.0, 0.0]))
    tensor(0.1643)
    """
    if _quick(input, inplace_backward, backend, "binary"):
        return F.binary_cross_entropy(input, target, weight, size_average, reduce, reduction)
    reduction = _reduction_of(size_average, reduce, reduction)
    return _binary(input, target, weight, None, reduction, inplace_backward, backend,
                   from_logits=False)


@_fill
def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor,
                                     weight: torch.Tensor | None = None,
                                     size_average: bool | None = None,
                                     reduce: bool | None = None, reduction: Reduction = "mean",
                                     pos_weight: torch.Tensor | None = None, *,
                                     inplace_backward: bool = False, backend: Backend = "auto"
                                     ) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(input)``, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``, on the fused
    kernels.

    Parameters
    ----------
    input : torch.Tensor
        Logits, any shape.
    target : torch.Tensor
        Targets in [0, 1], `input`'s shape and dtype.
    weight : torch.Tensor, optional
        Broadcast to `input`: a weight per element.
    {size_average}
    {reduce}
    {reduction}
    pos_weight : torch.Tensor, optional
        Broadcast to `input` (usually one per class, on the last dim): the
        weight of the positive term.
    {bridge_options}

    Returns
    -------
    torch.Tensor
        `input`'s dtype: 0-d for ``"mean"`` and ``"sum"``, `input`'s shape for
        ``"none"``.

    Raises
    ------
    ValueError
        Bad shapes or options.
    RuntimeError
        Where PyTorch's implementation runs, PyTorch's own errors.

    See Also
    --------
    binary_cross_entropy : The same loss from probabilities.
    BCEWithLogitsLoss : The module.
    torch.nn.functional.binary_cross_entropy_with_logits : PyTorch's implementation.

    Notes
    -----
    Elementwise ``weight * ((1 - t) x + (1 + (pos_weight - 1) t) softplus(-x))``
    for logit ``x`` and target ``t``: exact for any logit.

    {fallback_notes}

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> x = torch.tensor([2.0, -1.0])
    >>> fastxent.torch.binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0]))
    tensor(0.2201)
    """
    if _quick(input, inplace_backward, backend, "binary"):
        return F.binary_cross_entropy_with_logits(input, target, weight, size_average, reduce,
                                                  reduction, pos_weight)
    reduction = _reduction_of(size_average, reduce, reduction)
    return _binary(input, target, weight, pos_weight, reduction, inplace_backward, backend,
                   from_logits=True)


# ---------------------------------------------------------------- linear + cross-entropy
#
# linear_cross_entropy: PyTorch's F.linear_cross_entropy (a language-model
# head) on fastxent.linear_cross_entropy_with_grad, which never holds the
# N x V logits. The forward computes the loss and the three gradients (the
# reductions "mean" and "sum"); the backward scales them by grad_output. With
# reduction="none" the forward computes the losses alone and the backward
# computes the gradients of sum(grad_output * loss), grad_output as the
# sample weights (one more pass of GEMMs: a gradient per sample cannot be
# scaled afterwards).

_LINEAR_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _linear_unsupported(input: Any, linear_weight: Any, target: Any, linear_bias: Any,
                        weight: Any) -> str | None:
    """Why fastxent.linear_cross_entropy cannot take this call, or None."""
    tensors = (input, linear_weight, target, linear_bias, weight)
    if has_torch_function_variadic(*tensors):
        return "a tensor subclass overrides __torch_function__"
    if not all(t is None or isinstance(t, torch.Tensor) for t in tensors) or input is None:
        return "an argument is not a tensor"
    if input.dtype not in _LINEAR_DTYPES:
        return f"dtype {input.dtype}"
    for t in tensors:
        if t is not None and (not t.is_cpu or t.layout is not torch.strided):
            return f"an argument on device {t.device}, layout {t.layout}"
    if input.dim() not in (1, 2) or linear_weight.dim() != 2 or (
            linear_bias is not None and linear_bias.dim() != 1):
        return "input of other than 1 or 2 dims, or a multi-dimensional linear_weight"
    if any(t is not None and t.dtype != input.dtype for t in (linear_weight, linear_bias)):
        return "arguments of different dtypes"
    if target.dtype != torch.int64 and target.dtype != input.dtype:
        return f"linear_cross_entropy target of dtype {target.dtype}"
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                       for t in (target, weight)):
        return "an argument other than input, linear_weight and linear_bias requires grad"
    if input.dtype == torch.bfloat16 and _ml_dtypes() is None:
        return "bfloat16 without ml_dtypes installed"
    if _forward_ad._current_level >= 0:
        return "forward-mode AD"
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform"
    return None


def _ml_dtypes() -> Any:
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes


def _linear_numpy(t: torch.Tensor | None) -> Any:
    """The tensor's memory as a NumPy array (bfloat16: ml_dtypes.bfloat16), no copy."""
    if t is None:
        return None
    if t.dtype == torch.bfloat16:
        return t.detach().view(torch.int16).numpy().view(_ml_dtypes().bfloat16)
    return t.detach().numpy()


def _linear_tensor(arr: Any) -> torch.Tensor:
    """A NumPy result as a tensor over its memory (bfloat16 arrays included)."""
    arr = np.asarray(arr)
    return _blas.bfloat16_tensor(arr) if _blas.is_bfloat16(arr.dtype) else torch.from_numpy(arr)


class _FusedLinearLoss(torch.autograd.Function):
    """linear_cross_entropy's autograd node (eager mode).

    forward(input, linear_weight, linear_bias, run, reduction, reference,
    backend): run(sample_weight) returns fastxent.linear_cross_entropy_with_grad's
    (loss, d_input, d_weight[, d_bias]) on the NumPy views, the loss "sum"med
    with sample_weight when it is given; run(None, want_grad=False) the loss
    alone. reference(input, linear_weight, linear_bias) is PyTorch's loss, for
    double backward.
    """

    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, linear_weight: torch.Tensor,
                linear_bias: torch.Tensor | None, run: Callable[..., Any], reduction: str,
                reference: Callable[..., torch.Tensor], backend: str) -> torch.Tensor:
        if reduction == "none":  # the gradients in the backward, per grad_output
            loss, ctx.grads = run(None, want_grad=False), None
        else:
            loss, *grads = run(None)
            ctx.grads = [_linear_tensor(g) for g in grads]
        ctx.save_for_backward(input, linear_weight, linear_bias)
        ctx.run, ctx.reference, ctx.backend = run, reference, backend
        return _linear_tensor(loss).to(input.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        needs = ctx.needs_input_grad[:3]
        saved = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: PyTorch's differentiable graph
            _fallback_warning("double backward", ctx.backend)
            wanted = [t for t, need in zip(saved, needs) if need]
            with torch.enable_grad():
                found = iter(torch.autograd.grad(ctx.reference(*saved), wanted, grad_output,
                                                 create_graph=True))
            grads = [next(found) if need else None for need in needs]
        elif ctx.grads is None:  # reduction="none"
            sample_weight = grad_output.detach().to(torch.float64).numpy()
            grads = [_linear_tensor(g) for g in ctx.run(sample_weight)[1:]]
        else:
            grads = [_scaled(g, grad_output, None) for g in ctx.grads]
        grads += [None] * (3 - len(grads))  # no linear_bias
        return (*(g if need else None for g, need in zip(grads, needs)), None, None, None, None)


_apply_linear: Callable[..., torch.Tensor] = super(  # as _apply_fused
    torch.autograd.Function, _FusedLinearLoss).apply


def linear_cross_entropy(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor,
                         *, linear_bias: torch.Tensor | None = None,
                         weight: torch.Tensor | None = None, reduction: Reduction = "mean",
                         ignore_index: int | None = None, label_smoothing: float = 0.0,
                         options: Any = None, chunk_size: int | tuple[int, int] | None = None,
                         backend: Backend = "auto") -> torch.Tensor:
    """Cross-entropy of a linear projection, as ``torch.nn.functional.linear_cross_entropy``,
    without the N x V logits.

    Same signature, defaults and values as PyTorch's function (a language-model
    head: ``cross_entropy(linear(input, linear_weight, linear_bias), target)``),
    plus two keyword-only options; the result is differentiable with respect to
    `input`, `linear_weight` and `linear_bias`. The fused path computes the loss
    and the three gradients a chunk of rows at a time
    (:func:`fastxent.linear_cross_entropy_with_grad`); the backward scales them
    by ``grad_output``.

    Parameters
    ----------
    input : torch.Tensor
        Features of shape (N, H), or (H,) for one sample.
    linear_weight : torch.Tensor
        The projection, shape (V, H) as ``torch.nn.Linear``'s weight.
    target : torch.Tensor
        int64 class indices of shape (N,) (or 0-d), or class probabilities of
        shape (N, V) in `input`'s dtype.
    linear_bias : torch.Tensor of shape (V,), optional
        Added to the logits.
    weight : torch.Tensor of shape (V,), optional
        A weight per class.
    reduction : {"mean", "sum", "none"}, default "mean"
        As ``torch.nn.functional.cross_entropy``.
    ignore_index : int or None, default None
        A class index whose samples count for nothing; None means -100, as in
        PyTorch (class indices only).
    label_smoothing : float, default 0.0
        In [0, 1], as ``torch.nn.functional.cross_entropy``.
    options : torch.nn.LinearCrossEntropyOptions, optional
        PyTorch's chunking options, accepted for its signature: their
        ``batch_chunk_size``, when set, is the rows per chunk (unless
        `chunk_size` is given); the other fields are PyTorch's own and ignored
        (fastxent always chunks, and accumulates in float32 inside each GEMM).
        They are passed on where PyTorch's implementation runs.
    chunk_size : int or (int, int), optional, keyword-only
        As :func:`fastxent.linear_cross_entropy`: rows per chunk, or (rows,
        classes). Default: its automatic rule.
    backend : {"auto", "fastxent", "torch"}, default "auto", keyword-only
        ``"auto"``: the fused path where it applies (see Notes), PyTorch's
        own function elsewhere, silently; ``"fastxent"``: the same, but each
        reason for a fallback warns once (RuntimeWarning); ``"torch"``: always
        PyTorch's function.

    Returns
    -------
    torch.Tensor
        `input`'s dtype: 0-d for ``"mean"`` and ``"sum"``, shape (N,) for
        ``"none"``.

    Raises
    ------
    ValueError
        Bad shapes or options (a `backend` not listed, `label_smoothing`
        outside [0, 1], an `ignore_index` given with probability targets).
    IndexError
        A class index outside [0, V) that is not `ignore_index`.
    RuntimeError
        Where PyTorch's implementation runs, PyTorch's own errors.

    See Also
    --------
    fastxent.linear_cross_entropy_with_grad : The same on NumPy arrays.
    torch.nn.functional.linear_cross_entropy : PyTorch's implementation.

    Notes
    -----
    The fused path takes CPU float32, float64 and bfloat16 strided tensors
    (`input` of 1 or 2 dims, `linear_weight` (V, H), `linear_bias` (V,), all
    of one dtype). bfloat16 needs ``ml_dtypes``: its GEMMs run in bfloat16
    through PyTorch's matmul, the logits and the kernel in float32, the
    gradients come back in bfloat16. PyTorch's own function runs instead for
    other devices, dtypes or layouts, tensor subclasses overriding
    ``__torch_function__``, a target or `weight` that requires grad, forward-
    mode AD and ``torch.func`` transforms; ``"auto"`` also leaves it to
    PyTorch below AUTO_MIN_ELEMENTS logits (N x V) and under
    ``torch.compile`` (``"fastxent"`` there breaks the graph around the call).
    Double backward (``create_graph=True``) differentiates PyTorch's function.

    Memory: beyond the gradients, one chunk's logits (128 MiB by default) and
    vectors of length N or V, where PyTorch's eager function holds the N x V
    logits and their gradient.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> hidden = torch.randn(512, 64, requires_grad=True)
    >>> head = torch.randn(1000, 64, requires_grad=True)
    >>> labels = torch.randint(0, 1000, (512,))
    >>> loss = fastxent.torch.linear_cross_entropy(hidden, head, labels, backend="fastxent")
    >>> loss.backward()
    >>> expected = torch.nn.functional.cross_entropy(hidden @ head.T, labels)
    >>> bool(torch.allclose(loss, expected))
    True
    """
    def reference(input: torch.Tensor, linear_weight: torch.Tensor,
                  linear_bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear_cross_entropy(input, linear_weight, target, linear_bias=linear_bias,
                                      weight=weight, reduction=reduction,
                                      ignore_index=ignore_index,
                                      label_smoothing=label_smoothing, options=options)

    if _check_backend(backend) == "torch":
        return reference(input, linear_weight, linear_bias)
    if backend == "auto" and (torch.compiler.is_compiling() or (
            isinstance(input, torch.Tensor) and isinstance(linear_weight, torch.Tensor)
            and input.numel() // max(input.shape[-1], 1) * linear_weight.shape[0]
            < AUTO_MIN_ELEMENTS)):
        return reference(input, linear_weight, linear_bias)
    reason = _linear_unsupported(input, linear_weight, target, linear_bias, weight)
    if reason is not None:
        _fallback_warning(reason, backend)
        return reference(input, linear_weight, linear_bias)
    if chunk_size is None and options is not None:
        chunk_size = getattr(options, "batch_chunk_size", None)
    return _fused_linear(input, linear_weight, target, linear_bias, weight, reduction,
                         ignore_index, label_smoothing, chunk_size, reference, backend)


def _fused_linear_eager(input: torch.Tensor, linear_weight: torch.Tensor, target: torch.Tensor,
                  linear_bias: torch.Tensor | None, weight: torch.Tensor | None, reduction: str,
                  ignore_index: int | None, label_smoothing: float, chunk_size: Any,
                  reference: Callable[..., torch.Tensor], backend: str) -> torch.Tensor:
    """linear_cross_entropy's fused path, the checks passed."""
    low_precision = input.dtype == torch.bfloat16  # class weights and targets in float32
    h, w, b = _linear_numpy(input), _linear_numpy(linear_weight), _linear_numpy(linear_bias)
    t = _numpy(target.float() if low_precision and target.is_floating_point() else target)
    cw = _numpy(weight if weight is None or not low_precision else weight.float())

    def run(sample_weight: Any, want_grad: bool = True) -> Any:
        fn: Callable[..., Any] = (_linear.linear_cross_entropy_with_grad if want_grad
                                  else _linear.linear_cross_entropy)
        return fn(h, w, t, linear_bias=b, weight=cw, ignore_index=ignore_index,
                  reduction="sum" if sample_weight is not None else reduction,
                  label_smoothing=label_smoothing, chunk_size=chunk_size,
                  sample_weight=sample_weight)

    if not torch.is_grad_enabled() or not any(
            t is not None and t.requires_grad for t in (input, linear_weight, linear_bias)):
        return _linear_tensor(run(None, want_grad=False)).to(input.dtype)
    return _apply_linear(*(None if x is None else _unwrap_if_dead(x)
                           for x in (input, linear_weight, linear_bias)),
                         run, reduction, reference, backend)


# Run eagerly under torch.compile (a graph break): the compiler would trace the
# NumPy code into its graph, which it cannot take whole.
_fused_linear: Callable[..., torch.Tensor] = torch.compiler.disable(  # type: ignore[no-untyped-call]
    _fused_linear_eager)


# ---------------------------------------------------------------- modules


class _BridgeOptions:
    """The keyword-only options the modules add to torch.nn's."""

    inplace_backward: bool
    backend: Backend
    reduction: str  # torch.nn's modules keep it as a plain str

    def _set_bridge_options(self, inplace_backward: bool, backend: Backend) -> None:
        self.inplace_backward = bool(inplace_backward)
        self.backend = _check_backend(backend)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, inplace_backward={self.inplace_backward}"

    def _reduction(self) -> Reduction:
        return cast(Reduction, self.reduction)


@_fill
class CrossEntropyLoss(_BridgeOptions, torch.nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss`` computed by `cross_entropy` on the fused kernels.

    A subclass of PyTorch's module: same constructor (`weight` a registered
    buffer), attributes, ``state_dict`` and results, plus two keyword-only
    options.

    Parameters
    ----------
    weight : torch.Tensor of shape (C,), optional
        A weight per class.
    {size_average}
    ignore_index : int, default -100
        A class index whose samples count for nothing.
    {reduce}
    {reduction}
    label_smoothing : float, default 0.0
        In [0, 1].
    {bridge_options}

    Raises
    ------
    ValueError
        A `backend` not listed (at construction); the errors of
        `cross_entropy` when called.

    See Also
    --------
    cross_entropy : The function, for the shapes and the computation.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> loss_fn = fastxent.torch.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss_fn
    CrossEntropyLoss(backend='auto', inplace_backward=False)
    >>> loss_fn(torch.zeros(2, 4), torch.tensor([1, 3]))
    tensor(1.3863)
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: Reduction = "mean", label_smoothing: float = 0.0, *,
                 inplace_backward: bool = False, backend: Backend = "auto") -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of `input` against `target` (see `cross_entropy`)."""
        if _quick(input, self.inplace_backward, self.backend, "cross_entropy"):
            return super().forward(input, target)
        return cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                             reduction=self._reduction(), label_smoothing=self.label_smoothing,
                             inplace_backward=self.inplace_backward, backend=self.backend)


@_fill
class NLLLoss(_BridgeOptions, torch.nn.NLLLoss):
    """``torch.nn.NLLLoss`` computed by `nll_loss` on the fused kernels.

    A subclass of PyTorch's module (same constructor, `weight` a registered
    buffer), plus two keyword-only options.

    Parameters
    ----------
    weight : torch.Tensor of shape (C,), optional
        A weight per class.
    {size_average}
    ignore_index : int, default -100
        A class index whose samples count for nothing.
    {reduce}
    {reduction}
    {bridge_options}

    Raises
    ------
    ValueError
        A `backend` not listed (at construction); the errors of `nll_loss`
        when called.

    See Also
    --------
    nll_loss : The function.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> loss_fn = fastxent.torch.NLLLoss(reduction="sum")
    >>> loss_fn(torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]])), torch.tensor([0, 1]))
    tensor(0.9808)
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: Reduction = "mean", *, inplace_backward: bool = False,
                 backend: Backend = "auto") -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of `input` against `target` (see `nll_loss`)."""
        if _quick(input, self.inplace_backward, self.backend, "nll_loss"):
            return super().forward(input, target)
        return nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                        reduction=self._reduction(), inplace_backward=self.inplace_backward,
                        backend=self.backend)


@_fill
class BCELoss(_BridgeOptions, torch.nn.BCELoss):
    """``torch.nn.BCELoss`` computed by `binary_cross_entropy` on the fused kernels.

    A subclass of PyTorch's module (same constructor, `weight` a registered
    buffer), plus two keyword-only options.

    Parameters
    ----------
    weight : torch.Tensor, optional
        Broadcast to the input: a weight per element.
    {size_average}
    {reduce}
    {reduction}
    {bridge_options}

    Raises
    ------
    ValueError
        A `backend` not listed (at construction); the errors of
        `binary_cross_entropy` when called.

    See Also
    --------
    binary_cross_entropy : The function.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> fastxent.torch.BCELoss()(torch.tensor([0.9, 0.2]), torch.tensor([1.0, 0.0]))
    tensor(0.1643)
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: Reduction = "mean", *,
                 inplace_backward: bool = False, backend: Backend = "auto") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of `input` against `target` (see `binary_cross_entropy`)."""
        if _quick(input, self.inplace_backward, self.backend, "binary"):
            return super().forward(input, target)
        return binary_cross_entropy(input, target, weight=self.weight,
                                    reduction=self._reduction(),
                                    inplace_backward=self.inplace_backward, backend=self.backend)


@_fill
class BCEWithLogitsLoss(_BridgeOptions, torch.nn.BCEWithLogitsLoss):
    """``torch.nn.BCEWithLogitsLoss`` computed by `binary_cross_entropy_with_logits`
    on the fused kernels.

    A subclass of PyTorch's module (same constructor; `weight` and
    `pos_weight` registered buffers), plus two keyword-only options.

    Parameters
    ----------
    weight : torch.Tensor, optional
        Broadcast to the input: a weight per element.
    {size_average}
    {reduce}
    {reduction}
    pos_weight : torch.Tensor, optional
        Broadcast to the input: the weight of the positive term.
    {bridge_options}

    Raises
    ------
    ValueError
        A `backend` not listed (at construction); the errors of
        `binary_cross_entropy_with_logits` when called.

    See Also
    --------
    binary_cross_entropy_with_logits : The function.

    Examples
    --------
    >>> import torch, fastxent.torch
    >>> loss_fn = fastxent.torch.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    >>> loss_fn(torch.tensor([[2.0], [-1.0]]), torch.tensor([[1.0], [0.0]]))
    tensor(0.2836)
    """

    def __init__(self, weight: torch.Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: Reduction = "mean",
                 pos_weight: torch.Tensor | None = None, *, inplace_backward: bool = False,
                 backend: Backend = "auto") -> None:
        super().__init__(weight, size_average, reduce, reduction, pos_weight)
        self._set_bridge_options(inplace_backward, backend)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of `input` against `target` (see `binary_cross_entropy_with_logits`)."""
        if _quick(input, self.inplace_backward, self.backend, "binary"):
            return super().forward(input, target)
        return binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self._reduction(),
            pos_weight=self.pos_weight, inplace_backward=self.inplace_backward,
            backend=self.backend)
