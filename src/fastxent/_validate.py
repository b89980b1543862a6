"""Argument checking and normalisation, shared by every public function.

Public functions call a ``prepare_*`` helper once: it checks every argument,
raises the documented exception with a message naming the argument, and
returns the inputs as C-contiguous arrays with the class axis last, flattened
to (rows, classes), together with everything needed to give results back in
the caller's shape. Kernels of both backends take it from there.
"""

from dataclasses import dataclass
from operator import index as _as_index

import numpy as np

REDUCTIONS = ("none", "sum", "mean")


def result_dtype(arr, name):
    """The float dtype computations on `arr` run in (API.md's dtype rules)."""
    dt = arr.dtype
    if dt == np.float32 or dt == np.float64:
        return dt
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt.kind == "f" or dt.kind in "iu":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected an array of real numbers, got dtype {dt}")


def as_array(value, name):
    """np.asarray with a clear TypeError for what NumPy cannot make numeric."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name}: cannot be converted to an array ({exc})") from None


def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of 'none', 'sum', 'mean', got {reduction!r}")
    return reduction


def check_axis(axis, ndim, name="logits"):
    try:
        axis = _as_index(axis)
    except TypeError:
        raise TypeError(f"axis: expected an integer, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: {axis} is out of range for {name} with {ndim} dimension(s)")
    return axis % ndim


def check_label_smoothing(value):
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"label_smoothing: expected a number, got {value!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: must lie in [0, 1], got {value!r}")
    return eps


def check_ignore_index(value):
    try:
        return _as_index(value)
    except TypeError:
        raise TypeError(f"ignore_index: expected an integer, got {value!r}") from None


def classes_last(arr, axis, dtype):
    """(rows, classes) C-contiguous array of `dtype`, and whether it is a copy."""
    moved = np.moveaxis(arr, axis, -1)
    flat = np.ascontiguousarray(moved, dtype=dtype).reshape(-1, moved.shape[-1])
    return flat, not np.may_share_memory(flat, arr)


def _same_memory(a, b):
    """True when a and b are views of the very same elements in the same layout."""
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


@dataclass
class SoftmaxProblem:
    """Validated arguments of a softmax cross-entropy call, classes on the last axis."""

    x: np.ndarray  # (rows, classes), C-contiguous, float32 or float64
    target: np.ndarray  # (rows,) int64 indices, or (rows, classes) probabilities of x's dtype
    is_index: bool
    weight: np.ndarray | None  # (classes,) of x's dtype
    ignore_index: int
    label_smoothing: float
    reduction: str
    axis: int  # the class axis of the caller's arrays, non-negative
    batch_shape: tuple  # the caller's shape without the class axis
    grad: np.ndarray | None  # (rows, classes) buffer the kernel writes the gradient into
    out: np.ndarray | None  # the caller's out=
    grad_is_out: bool  # grad is a view of out: nothing to copy back

    @property
    def dtype(self):
        return self.x.dtype

    def label_error(self, row):
        """IndexError for the out-of-range label at flat row `row`."""
        label = int(self.target[row])
        where = np.unravel_index(row, self.batch_shape) if self.batch_shape else ()
        where = tuple(int(i) for i in where)
        return IndexError(
            f"target: class label {label} at position {where} is outside [0, {self.x.shape[1]}) "
            f"and is not ignore_index ({self.ignore_index})"
        )

    def finish_loss(self, total, denom, row_loss):
        """The loss in the caller's shape and dtype, from what a kernel returned."""
        if self.reduction == "none":
            return row_loss.reshape(self.batch_shape)
        if self.reduction == "sum":
            return self.dtype.type(total)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.dtype.type(np.float64(total) / np.float64(denom))

    def finish_grad(self):
        """The gradient in the caller's layout: `out` when given, else a new array."""
        if self.grad_is_out:
            return self.out
        moved_shape = self.batch_shape + (self.x.shape[1],)
        grad = np.moveaxis(self.grad.reshape(moved_shape), -1, self.axis)
        if self.out is None:
            return grad
        np.copyto(self.out, grad)
        return self.out


def check_out(out, like, dtype, inputs):
    """Validates out= for a result shaped like `like`: it may be `like` itself
    but must not overlap any other input."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    if out.shape != like.shape:
        raise ValueError(f"out: expected shape {like.shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out: expected dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out: the array is read-only")
    in_place = _same_memory(out, like)
    for name, arr in inputs.items():
        if arr is None or (name == "logits" and in_place):
            continue
        if np.may_share_memory(out, arr):
            raise ValueError(
                f"out: overlaps {name}; pass a separate array"
                + (", or logits itself to overwrite it in place" if name == "logits" else "")
            )


def prepare_softmax_xent(logits, target, weight, ignore_index, reduction, label_smoothing, axis,
                         want_grad=False, out=None):
    """Checks the arguments of cross_entropy[_with_grad] and normalises them."""
    logits_in = as_array(logits, "logits")
    dtype = result_dtype(logits_in, "logits")
    if logits_in.ndim == 0:
        raise ValueError("logits: expected at least one dimension (the classes), got a 0-d array")
    axis = check_axis(axis, logits_in.ndim)
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    ignore_index = check_ignore_index(ignore_index)
    n_classes = logits_in.shape[axis]
    if n_classes == 0:
        raise ValueError(f"logits: the class axis {axis} of shape {logits_in.shape} has length 0")
    batch_shape = logits_in.shape[:axis] + logits_in.shape[axis + 1:]

    target_in = as_array(target, "target")
    kind = target_in.dtype.kind
    if kind in "iu":
        if target_in.shape != batch_shape:
            raise ValueError(
                f"target: class indices must have shape {batch_shape} (logits {logits_in.shape} "
                f"without axis {axis}), got {target_in.shape}"
            )
        if kind == "u" and target_in.size and target_in.max() > np.iinfo(np.int64).max:
            row = int(np.argmax(target_in.reshape(-1) > np.iinfo(np.int64).max))
            raise IndexError(
                f"target: class label {target_in.reshape(-1)[row]} at position "
                f"{tuple(int(i) for i in np.unravel_index(row, batch_shape))} is outside "
                f"[0, {n_classes})"
            )
        flat_target = np.ascontiguousarray(target_in, dtype=np.int64).reshape(-1)
        is_index = True
    elif kind == "f":
        if target_in.shape != logits_in.shape:
            hint = (
                "; class indices must be an integer array"
                if target_in.shape == batch_shape
                else ""
            )
            raise (TypeError if hint else ValueError)(
                f"target: class probabilities must have the shape of logits {logits_in.shape}, "
                f"got {target_in.shape} of dtype {target_in.dtype}{hint}"
            )
        flat_target, _ = classes_last(target_in, axis, dtype)
        is_index = False
    else:
        raise TypeError(
            f"target: expected integer class indices or float probabilities, "
            f"got dtype {target_in.dtype}"
        )

    flat_weight = None
    if weight is not None:
        weight_in = as_array(weight, "weight")
        result_dtype(weight_in, "weight")
        if weight_in.shape != (n_classes,):
            raise ValueError(
                f"weight: expected one weight per class, shape ({n_classes},), "
                f"got {weight_in.shape}"
            )
        flat_weight = np.ascontiguousarray(weight_in, dtype=dtype)

    x, x_is_copy = classes_last(logits_in, axis, dtype)
    grad = None
    grad_is_out = False
    if out is not None:
        if not want_grad:
            raise TypeError("out: only the *_with_grad functions take out=")
        check_out(out, logits_in, dtype, {"logits": logits_in, "target": target_in, "weight": weight})
        # Write straight into out when its memory has the kernel's layout (with
        # out=logits that is the logits' own memory: the kernel reads each
        # element before it writes it).
        grad_is_out = axis == logits_in.ndim - 1 and out.flags.c_contiguous
        if grad_is_out:
            grad = out.reshape(x.shape)
    if want_grad and grad is None:
        # A private copy of the logits can take the gradient: no new buffer.
        grad = x if x_is_copy else np.empty_like(x)
    return SoftmaxProblem(
        x=x, target=flat_target, is_index=is_index, weight=flat_weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
        axis=axis, batch_shape=batch_shape, grad=grad, out=out, grad_is_out=grad_is_out,
    )
