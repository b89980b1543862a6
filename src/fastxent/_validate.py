"""Argument checking and normalisation, shared by every public function.

Public functions call a ``prepare_*`` helper once: it checks every argument,
raises the documented exception with a message naming the argument, and
returns the inputs as C-contiguous arrays with the class axis last, flattened
to (rows, classes), together with everything needed to give results back in
the caller's shape. Kernels of both backends take it from there.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from operator import index as _as_index
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._kinds import BinaryInput, Scores

REDUCTIONS = ("none", "sum", "mean")


# ---- the call itself ----

# Keywords users bring from other libraries, and fastxent's names for them.
_FOREIGN_KEYWORDS = {"dim": "axis", "input": None, "size_average": "reduction",
                     "reduce": "reduction"}


_Function = TypeVar("_Function", bound=Callable[..., Any])


def signature_hints(fn: _Function) -> _Function:
    """Wraps a public function so that a call that does not fit its signature
    says what fastxent expects: options are keyword-only (PyTorch passes
    `weight` positionally), the class axis is `axis=` (PyTorch's `dim=`).
    Calls that fit pay one function call more."""
    signature = inspect.signature(fn)
    positional = [p.name for p in signature.parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD]

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TypeError:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(_signature_hint(fn.__name__, positional, args, kwargs, exc)) \
                    from None
            raise

    return cast(_Function, checked)


def _signature_hint(name: str, positional: list[str], args: tuple[Any, ...],
                    kwargs: dict[str, Any], exc: TypeError) -> str:
    if len(args) > len(positional):
        return (f"{name}: takes {len(positional)} positional arguments "
                f"({', '.join(positional)}) but {len(args)} were given; options are "
                f"keyword-only in fastxent, e.g. {name}({', '.join(positional)}, weight=w)")
    for key in kwargs:
        if key in _FOREIGN_KEYWORDS:
            ours = _FOREIGN_KEYWORDS[key]
            return (f"{name}: unexpected keyword argument {key!r}"
                    + (f"; fastxent's name for it is {ours}=" if ours else ""))
    return f"{name}: {exc}"


# ---- single arguments ----

def is_half(dt: np.dtype[Any]) -> bool:
    """Whether dt is float16 or ml_dtypes' bfloat16 (told by its name, so that
    ml_dtypes is not imported): the half-precision types whose logits the
    kernels read directly."""
    return dt.itemsize == 2 and (dt.kind == "f" or dt.name == "bfloat16")


def compute_dtype(dt: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype results of dtype dt are computed in, and the dtype of the
    arrays that go with them (class weights, probability targets): float32
    for float16 and bfloat16, else dt itself."""
    return np.dtype(np.float32) if is_half(dt) else dt


def result_dtype(arr: NDArray[Any], name: str, *, halves: bool = False) -> np.dtype[Any]:
    """The float dtype results on `arr` come back in (docs/conventions.md's
    dtype rule). float16 and bfloat16 are computed in float32; with halves
    (the functions that read them directly) their results keep their dtype,
    elsewhere they are float32."""
    dt = arr.dtype
    if is_half(dt):
        return dt.newbyteorder("=") if halves else np.dtype(np.float32)
    if dt.kind == "f" and dt.itemsize <= 4:  # float32, either byte order
        return np.dtype(np.float32)
    if dt.kind in "fiu":
        return np.dtype(np.float64)
    raise TypeError(f"{name}: expected an array of real numbers, got dtype {dt}")


def base_view(arr: NDArray[Any]) -> NDArray[Any]:
    """arr as a plain ndarray over the same memory. Subclasses are worked on
    through this view only: their own methods and properties (reshape,
    shape, __array_function__...) may say anything, the view's cannot."""
    return arr if type(arr) is np.ndarray else np.ndarray.view(arr, np.ndarray)


def as_array(value: ArrayLike, name: str) -> NDArray[Any]:
    """np.asarray with a clear TypeError for what NumPy cannot make numeric.
    Subclasses (np.matrix, MaskedArray, ...) become plain base-class views of
    their data (base_view): no subclass method runs, results are plain
    arrays, and a mask is not honoured."""
    if type(value) is np.ndarray:  # the common case first: a call per argument costs
        return value
    if isinstance(value, np.ndarray):
        return base_view(value)
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name}: cannot be converted to an array ({exc})") from None


def check_reduction(reduction: object) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of 'none', 'sum', 'mean', got {reduction!r}")
    return reduction


def _is_bool(value: object) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_text(value: object) -> bool:
    return isinstance(value, (str, bytes))  # np.str_ and np.bytes_ included


def check_axis(axis: Any, ndim: int, name: str) -> int:
    try:
        if _is_bool(axis):  # not an integer here, as for NumPy and PyTorch
            raise TypeError
        index = _as_index(axis)
    except TypeError:
        raise TypeError(f"axis: expected an integer, got {axis!r}") from None
    if not -ndim <= index < ndim:
        raise ValueError(f"axis: {index} is out of range for {name} with {ndim} dimension(s)")
    return index % ndim


def check_label_smoothing(value: Any) -> float:
    try:
        if _is_text(value):  # float("0.1") would accept it; PyTorch does not
            raise TypeError
        eps = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"label_smoothing: expected a number, got {value!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: must lie in [0, 1], got {value!r}")
    return eps


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # np.iinfo costs microseconds a call


class _DefaultIgnoreIndex(int):
    """The type of IGNORE_INDEX_DEFAULT."""

    def __reduce__(self) -> str:  # unpickled as the one default (options sent to Dask workers)
        return "IGNORE_INDEX_DEFAULT"


# PyTorch's default ignore_index, -100, as the default of the signatures: an
# int like any other, but one that tells (`is`) that the caller passed none,
# so that an ignore_index given with probability targets can be refused.
IGNORE_INDEX_DEFAULT = _DefaultIgnoreIndex(-100)


def check_ignore_index(value: Any) -> int:
    try:
        if _is_bool(value):  # not an integer here, as for PyTorch
            raise TypeError
        index = _as_index(value)
    except TypeError:
        raise TypeError(f"ignore_index: expected an integer, got {value!r}") from None
    if not _INT64_MIN <= index <= _INT64_MAX:
        raise ValueError(f"ignore_index: {index} is outside the 64-bit integer range of labels")
    return index


def check_base(base: Any) -> float | None:
    """The log(base) that divides an entropy, or None for nats."""
    if base is None:
        return None
    try:
        if _is_text(base):  # float("2") would accept it; SciPy does not
            raise TypeError
        base = float(base)
    except (TypeError, ValueError):
        raise TypeError(f"base: expected a number, got {base!r}") from None
    if not base > 0 or base == 1:
        raise ValueError(f"base: must be positive and not 1, got {base!r}")
    return float(np.log(base))


def kernel_array(arr: NDArray[Any], dtype: Any) -> NDArray[Any]:
    """arr as the kernels need it: C-contiguous, aligned, of dtype (a copy
    only where arr is not already so)."""
    if arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned:
        return arr  # the common case, without np.require's microseconds
    return np.require(arr, dtype, ("C_CONTIGUOUS", "ALIGNED"))


def kernel_writable(out: NDArray[Any]) -> bool:
    """Whether the kernels can write straight into out."""
    return out.flags.c_contiguous and out.flags.aligned


def position(flat_index: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The multi-index, as a tuple of ints, of a flat C-order index into shape."""
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def _same_memory(a: NDArray[Any], b: NDArray[Any]) -> bool:
    """True when a and b are views of the very same elements in the same layout."""
    if a is b:  # out=x itself, the common in-place call
        return True
    # may_share_memory (bounds only) first: the data pointers cost a microsecond
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and np.may_share_memory(a, b)
        and a.ctypes.data == b.ctypes.data
    )


def check_out(
    out: object, like: NDArray[Any], dtype: np.dtype[Any], inputs: dict[str, Any],
) -> NDArray[Any]:
    """Validates out= for a result shaped like `like`: it may be `like` itself
    but must not overlap any other input. Returns out's base_view, the array
    to write into."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a NumPy array, got {type(out).__name__}")
    out = base_view(out)
    if out.shape != like.shape:
        raise ValueError(f"out: expected shape {like.shape}, got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out: expected dtype {dtype}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out: the array is read-only")
    first_name = next(iter(inputs))
    in_place = _same_memory(out, like)
    for name, arr in inputs.items():
        if arr is None or (name == first_name and in_place):
            continue
        if np.may_share_memory(out, base_view(arr) if isinstance(arr, np.ndarray) else arr):
            raise ValueError(
                f"out: overlaps {name}; pass a separate array"
                + (f", or {name} itself to overwrite it in place" if name == first_name else "")
            )
    return out


# ---- arrays with a class axis ----

@dataclass
class Rows:
    """An array with its class axis moved last, as (rows, classes), and a
    buffer of that shape for an N x C result (a gradient, a softmax)."""

    x: NDArray[Any]  # (rows, classes), C-contiguous, float32 or float64
    axis: int  # the class axis of the caller's array, non-negative
    batch_shape: tuple[int, ...]  # the caller's shape without the class axis
    result: NDArray[Any] | None  # (rows, classes) buffer for the N x C result
    out: NDArray[Any] | None  # the caller's out=
    result_is_out: bool  # result is a view of out: nothing to copy back

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.x.dtype

    @property
    def compute_dtype(self) -> np.dtype[Any]:
        """float32 for float16 and bfloat16 rows (see compute_dtype), else dtype."""
        return compute_dtype(self.x.dtype)

    def finish_result(self) -> NDArray[Any]:
        """The N x C result in the caller's layout: `out` when given, else new."""
        if self.result_is_out:
            return self.out  # type: ignore[return-value]  # result_is_out: out was given
        assert self.result is not None  # finish_result follows prepare_rows(want_result=True)
        moved_shape = self.batch_shape + (self.x.shape[1],)
        result = moveaxis(self.result.reshape(moved_shape), -1, self.axis)
        if self.out is None:
            return result
        np.copyto(base_view(self.out), result)
        return self.out

    def per_row(self, values: NDArray[Any]) -> np.floating[Any] | NDArray[np.floating[Any]]:
        """Per-row values in the caller's shape without the class axis (a NumPy
        scalar when that shape is ())."""
        restored: np.floating[Any] | NDArray[np.floating[Any]]
        restored = values.reshape(self.batch_shape)[()]
        return restored


def moveaxis(arr: NDArray[Any], source: int, destination: int) -> NDArray[Any]:
    """np.moveaxis, skipped when the axis is already in place: it costs
    microseconds even when it has nothing to do, and small inputs notice."""
    if source % arr.ndim == destination % arr.ndim:
        return arr
    return np.moveaxis(arr, source, destination)


def classes_last(arr: NDArray[Any], axis: int, dtype: Any) -> tuple[NDArray[Any], bool]:
    """(rows, classes) C-contiguous array of `dtype`, and whether it is a copy."""
    moved = moveaxis(arr, axis, -1)
    rows = math.prod(moved.shape[:-1])  # explicit: reshape(-1, 0) is ambiguous
    flat = kernel_array(moved, dtype).reshape(rows, moved.shape[-1])
    return flat, is_private_copy(flat, arr)


def is_private_copy(flat: NDArray[Any], arr: NDArray[Any]) -> bool:
    """Whether flat is a new array the kernels may write into. An empty one
    may still be a view of arr (read-only, perhaps): NumPy says zero-size
    arrays share no memory."""
    return flat.size > 0 and not np.may_share_memory(flat, arr)


def prepare_rows(x: ArrayLike, axis: Any, name: str, *, want_result: bool = False,
                 out: NDArray[Any] | None = None,
                 others: dict[str, Any] | None = None,
                 halves: bool = False) -> tuple[Rows, NDArray[Any]]:
    """Checks an array with a class axis and lays it out as Rows.

    want_result: allocate (or take from out=) a buffer for an N x C result;
    others: further inputs (name -> array) out= must not overlap; halves:
    float16 and bfloat16 rows stay as they are (see result_dtype).
    """
    x_in = as_array(x, name)
    dtype = result_dtype(x_in, name, halves=halves)
    if x_in.ndim == 0:
        raise ValueError(f"{name}: expected at least one dimension (the classes), got a 0-d array")
    axis = check_axis(axis, x_in.ndim, name)
    flat, is_copy = classes_last(x_in, axis, dtype)
    result, result_is_out = None, False
    if out is not None:
        if not want_result:
            raise TypeError("out: this function does not take out=")
        out_view = check_out(out, x_in, dtype, {name: x_in, **(others or {})})
        # Write straight into out when its memory has the kernel's layout (with
        # out=x that is x's own memory: kernels read each element of a row
        # before they write it).
        result_is_out = axis == x_in.ndim - 1 and kernel_writable(out_view)
        if result_is_out:
            result = out_view.reshape(flat.shape)
    if want_result and result is None:
        # A private copy of the input can take the result: no new buffer.
        result = flat if is_copy else np.empty_like(flat)
    return Rows(x=flat, axis=axis, batch_shape=x_in.shape[:axis] + x_in.shape[axis + 1:],
                result=result, out=out, result_is_out=result_is_out), x_in


def prepare_pair(p: ArrayLike, q: ArrayLike, axis: int) -> tuple[Rows, NDArray[Any]]:
    """p as Rows and q as the matching (rows, classes) array, after broadcasting
    them to one shape and one dtype (kl_divergence)."""
    p_in, q_in = as_array(p, "p"), as_array(q, "q")
    dtype = np.promote_types(result_dtype(p_in, "p"), result_dtype(q_in, "q"))
    try:
        p_in, q_in = np.broadcast_arrays(p_in, q_in)
    except ValueError:
        raise ValueError(f"p, q: shapes {p_in.shape} and {q_in.shape} do not broadcast") from None
    rows, _ = prepare_rows(p_in.astype(dtype, copy=False), axis, "p")
    q_flat, _ = classes_last(q_in, rows.axis, dtype)
    return rows, q_flat


# ---- class targets: cross_entropy, nll_loss ----

@dataclass
class ClassProblem(Rows):
    """Rows of scores (logits or log-probabilities) with their targets."""

    # (rows,) int64 indices, or (rows, classes) probabilities (always given)
    target: NDArray[Any] = None  # type: ignore[assignment]
    is_index: bool = True
    scores: Scores = Scores.LOGITS  # what the rows x hold
    weight: NDArray[Any] | None = None  # (classes,) of compute_dtype
    ignore_index: int = -100
    label_smoothing: float = 0.0
    reduction: str = "mean"
    sample_weight: np.ndarray | None = None  # (rows,) float64, one weight per sample
    z_loss: float = 0.0  # coefficient of each row's lse**2 added to its loss
    softcap: float | None = None  # logits soft-capped as softcap * tanh(x / softcap)
    lse: np.ndarray | None = None  # (rows,) of compute_dtype: the kernel writes each row's lse
    correct: np.ndarray | None = None  # (rows,) uint8: the kernel writes 1 where argmax == target

    def counted(self) -> NDArray[np.bool_]:
        """(rows,) bool: the rows that count (every row for probability targets)."""
        counted: NDArray[np.bool_] = (np.not_equal(self.target, self.ignore_index)
                                      if self.is_index else np.ones(self.x.shape[0], bool))
        return counted

    def side_outputs(self) -> tuple[Any, ...]:
        """The side outputs asked for, in order: each row's lse (NaN for the rows
        not counted) in the caller's shape, and the accuracy: the share of counted
        rows, weighted by sample_weight, whose prediction was right."""
        outputs: list[Any] = []
        if self.lse is not None:
            self.lse[~self.counted()] = np.nan
            outputs.append(self.lse.astype(self.dtype, copy=False).reshape(self.batch_shape))
        if self.correct is not None:
            outputs.append(reduce_loss("mean", self.dtype, *self.hits()))
        return tuple(outputs)

    def denominator(self) -> float:
        """What reduction="mean" divides the sum by, in float64: the summed
        weights (class weight x sample weight) of the counted rows, or for
        probability targets the summed sample weights (the number of rows)."""
        sw = self.sample_weight
        if not self.is_index:
            return float(self.x.shape[0]) if sw is None else float(np.sum(sw, dtype=np.float64))
        counted = self.counted()
        w_y = (np.ones(int(np.count_nonzero(counted))) if self.weight is None
               else self.weight[self.target[counted]].astype(np.float64))
        return float(np.sum(w_y if sw is None else w_y * sw[counted], dtype=np.float64))

    def hits(self) -> tuple[float, float]:
        """(correct, counted) in float64 after the kernel has run with return_accuracy:
        the summed sample weights (1 each without) of the counted rows whose
        prediction was right, and of all counted rows."""
        counted = self.counted()  # the kernels leave `correct` 0 on the rows not counted
        assert self.correct is not None, "hits() after a kernel run with return_accuracy"
        if self.sample_weight is None:
            return float(np.count_nonzero(self.correct)), float(np.count_nonzero(counted))
        sw = self.sample_weight
        return (float(np.sum(sw[self.correct != 0], dtype=np.float64)),
                float(np.sum(sw[counted], dtype=np.float64)))

    def label_error(self, row: int) -> IndexError:
        """IndexError for the out-of-range label at flat row `row`."""
        return IndexError(
            f"target: class label {int(self.target[row])} at position "
            f"{position(row, self.batch_shape)} is outside [0, {self.x.shape[1]}) "
            f"and is not ignore_index ({self.ignore_index})"
        )

    def finish_loss(self, total: float, denom: float, row_loss: NDArray[Any] | None) -> Any:
        """The loss in the caller's shape and dtype, from what a kernel returned."""
        if self.reduction == "none":
            assert row_loss is not None  # the kernels fill it for "none"
            # an array, even 0-d (as PyTorch); in float32 from float16/bfloat16 rows
            return row_loss.astype(self.dtype, copy=False).reshape(self.batch_shape)
        if self.reduction == "mean" and denom == 0 and self.label_smoothing:
            # Rows of weight 0 still add their smoothing term to the sum, but
            # the mean over a total weight of 0 is NaN (PyTorch's: its
            # likelihood part is 0 / 0), not sum / 0 = inf.
            return self.dtype.type(np.nan)
        return reduce_loss(self.reduction, self.dtype, total, denom)


def reduce_loss(reduction: str, dtype: np.dtype[Any], total: float, denom: float) -> Any:
    """A "sum" or "mean" loss as a NumPy scalar of dtype (a mean over nothing is NaN)."""
    if reduction == "sum":
        return dtype.type(total)
    if denom != 0:  # Python's float division: the same IEEE quotient, without np.errstate's cost
        return dtype.type(float(total) / float(denom))
    with np.errstate(divide="ignore", invalid="ignore"):
        return dtype.type(np.float64(total) / np.float64(denom))


def _without(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1:]


def fitting_axes(scores_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> list[int]:
    """The class axes of scores_shape that a target of class indices shaped
    target_shape would fit."""
    return [a for a in range(len(scores_shape)) if _without(scores_shape, a) == target_shape]


def _axis_hint(scores_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> str:
    fits = fitting_axes(scores_shape, target_shape)
    return f"; axis={fits[0]} would fit" if len(fits) == 1 else (
        f"; axis={' or axis='.join(map(str, fits))} would fit" if fits else "")


def class_axis(axis: Any, scores_shape: tuple[int, ...], target_in: NDArray[Any], name: str) -> Any:
    """The class axis: `axis` when given; when it is None, the last axis for
    inputs of rank <= 2, and for rank >= 3 the axis the target's shape fits
    among PyTorch's (1) and the last (Keras's, JAX's, NumPy's); where both
    fit, a ValueError asks for it."""
    if axis is not None:
        return axis
    ndim = len(scores_shape)
    if ndim < 3:
        return -1
    if (target_in.dtype.kind == "f" or is_half(target_in.dtype)) \
            and target_in.shape == tuple(scores_shape):
        fits = [1, ndim - 1]  # probabilities fit either way
    else:
        fits = [a for a in (1, ndim - 1) if _without(scores_shape, a) == target_in.shape]
    if len(fits) == 2:
        raise ValueError(
            f"axis: {name} of shape {tuple(scores_shape)} and target of shape "
            f"{target_in.shape} fit classes on axis 1 and on the last axis: pass axis=1 "
            "(PyTorch's layout, (N, C, ...)) or axis=-1 (Keras's, JAX's and NumPy's, "
            "(..., C))")
    return fits[0] if fits else -1  # where neither fits, the shape check explains


def _index_target(target_in: NDArray[Any], batch_shape: tuple[int, ...], n_classes: int, axis: int,
                  shape: tuple[int, ...]) -> NDArray[Any]:
    if target_in.shape != batch_shape:
        hint = _axis_hint(shape, target_in.shape)
        if not hint and len(shape) == 1 and target_in.shape == shape:
            hint = ("; for one score per sample use binary_cross_entropy_with_logits, for "
                    f"one sample of {shape[0]} classes a 0-d label")
        elif not hint and target_in.shape == batch_shape + (1,):
            hint = f"; drop the length-1 axis: target.reshape({batch_shape})"
        raise ValueError(
            f"target: class indices must have shape {batch_shape} (input {shape} "
            f"without axis {axis}), got {target_in.shape}{hint}"
        )
    if target_in.dtype.kind == "u" and target_in.size and target_in.max() > _INT64_MAX:
        row = int(np.argmax(target_in.reshape(-1) > _INT64_MAX))
        raise IndexError(
            f"target: class label {target_in.reshape(-1)[row]} at position "
            f"{position(row, batch_shape)} is outside [0, {n_classes})"
        )
    return kernel_array(target_in, np.int64).reshape(-1)


def check_z_loss(value: object) -> float:
    """The z-loss coefficient: a finite number >= 0."""
    try:
        if _is_text(value) or _is_bool(value):
            raise TypeError
        z = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"z_loss: expected a number, got {value!r}") from None
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"z_loss: must be a finite number >= 0, got {value!r}")
    return z


def check_softcap(value: object) -> float | None:
    """The soft cap of the logits: None (off) or a finite number > 0."""
    if value is None:
        return None
    try:
        if _is_text(value) or _is_bool(value):
            raise TypeError
        cap = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"softcap: expected a number or None, got {value!r}") from None
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"softcap: must be a finite number > 0 (or None), got {value!r}")
    return cap


def check_flag(value: object, name: str) -> bool:
    if not _is_bool(value):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_sample_weight(value: ArrayLike | None,
                        batch_shape: tuple[int, ...]) -> NDArray[np.float64] | None:
    """One weight per sample as a (rows,) float64 array: sample_weight of the
    target's shape without classes, or broadcastable to it; finite real
    numbers (negative ones allowed, as PyTorch's class weights)."""
    if value is None:
        return None
    w = as_array(value, "sample_weight")
    if w.dtype.kind not in "fiu" and not is_half(w.dtype):
        raise TypeError(f"sample_weight: expected real numbers, got dtype {w.dtype}")
    try:
        broadcast = np.broadcast_shapes(w.shape, batch_shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(batch_shape):
        raise ValueError(f"sample_weight: shape {w.shape} does not broadcast to the samples' "
                         f"shape {tuple(batch_shape)} (the target's without classes)")
    # aligned too: the kernels read it as doubles (an unaligned view is copied)
    flat = kernel_array(np.broadcast_to(w, batch_shape), np.float64).reshape(-1)
    finite = np.isfinite(flat)
    if not finite.all():
        k = int(np.argmin(finite))
        raise ValueError(f"sample_weight: {float(flat[k])!r} at position {position(k, batch_shape)} "
                         "is not a finite number")
    return flat


def prepare_classes(scores: ArrayLike, target: ArrayLike, *, kind: Scores,
                    weight: ArrayLike | None, ignore_index: Any, reduction: Any,
                    label_smoothing: Any, axis: Any, want_grad: bool,
                    out: NDArray[Any] | None, sample_weight: ArrayLike | None = None,
                    z_loss: object = 0.0, softcap: object = None, return_lse: object = False,
                    return_accuracy: object = False) -> ClassProblem:
    """Checks the arguments of cross_entropy / nll_loss [_with_grad]; kind
    (a Scores) says which, and names the scores' argument."""
    name = kind.value
    allow_probabilities = kind is Scores.LOGITS  # nll_loss takes class indices only
    reduction = check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    z_loss = check_z_loss(z_loss)
    softcap = check_softcap(softcap)
    return_lse = check_flag(return_lse, "return_lse")
    return_accuracy = check_flag(return_accuracy, "return_accuracy")
    is_default_ignore_index = ignore_index is IGNORE_INDEX_DEFAULT
    ignore_index = check_ignore_index(ignore_index)
    target_in = as_array(target, "target")
    scores = as_array(scores, name)
    axis = class_axis(axis, scores.shape, target_in, name)
    rows, scores_in = prepare_rows(scores, axis, name, want_result=want_grad, out=out,
                                   others={"target": target, "weight": weight,
                                           "sample_weight": sample_weight}, halves=True)
    n_classes, axis = rows.x.shape[1], rows.axis

    target_kind = target_in.dtype.kind
    if target_kind in "iu":
        flat_target = _index_target(target_in, rows.batch_shape, n_classes, axis, scores_in.shape)
        is_index = True
    elif (target_kind == "f" or is_half(target_in.dtype)) and allow_probabilities:
        if target_in.shape != scores_in.shape:
            # Float labels, (N,) or (N, 1): the same TypeError either way.
            as_labels = target_in.shape in (rows.batch_shape, rows.batch_shape + (1,))
            raise (TypeError if as_labels else ValueError)(
                f"target: class probabilities must have the shape of {name} {scores_in.shape}, "
                f"got {target_in.shape} of dtype {target_in.dtype}"
                + (f"; class indices must be an integer array of shape {rows.batch_shape}"
                   if as_labels else _axis_hint(scores_in.shape, target_in.shape))
            )
        if not is_default_ignore_index:
            raise ValueError(  # PyTorch's refusal
                f"ignore_index: {ignore_index} given, but ignore_index is not supported for "
                "floating point target (class probabilities)")
        flat_target, _ = classes_last(target_in, axis, rows.compute_dtype)
        is_index = False
    else:
        raise TypeError(
            "target: expected integer class indices"
            + (" or float probabilities" if allow_probabilities else "")
            + f", got dtype {target_in.dtype}"
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
        flat_weight = kernel_array(weight_in, rows.compute_dtype)
    n_rows = rows.x.shape[0]
    return ClassProblem(
        **vars(rows), target=flat_target, is_index=is_index, weight=flat_weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
        scores=kind, sample_weight=check_sample_weight(sample_weight, rows.batch_shape),
        z_loss=z_loss, softcap=softcap,
        lse=np.full(n_rows, np.nan, rows.compute_dtype) if return_lse else None,
        correct=np.zeros(n_rows, np.uint8) if return_accuracy else None,
    )


# ---- elementwise binary targets ----

@dataclass
class BinaryProblem:
    """Elementwise inputs of a binary cross-entropy, as (rows, last axis) arrays."""

    x: NDArray[Any]  # C-contiguous, float32 or float64
    input: BinaryInput  # what x holds
    target: NDArray[Any]  # like x
    weight: NDArray[Any] | None  # (1, cols) repeated for every row, or like x
    pos_weight: NDArray[Any] | None  # as weight
    reduction: str
    shape: tuple[int, ...]  # the caller's shape
    grad: NDArray[Any] | None  # like x: the kernel's gradient buffer
    out: NDArray[Any] | None
    grad_is_out: bool

    @property
    def dtype(self) -> Any:
        return self.x.dtype

    def finish_loss(self, total: float, count: float, elem_loss: NDArray[Any] | None) -> Any:
        if self.reduction == "none":
            assert elem_loss is not None  # the kernels fill it for "none"
            return elem_loss.astype(self.dtype, copy=False).reshape(self.shape)
        return reduce_loss(self.reduction, self.dtype, total, count)

    def finish_grad(self) -> NDArray[Any]:
        if self.grad_is_out:
            return self.out  # type: ignore[return-value]  # grad_is_out: out was given
        assert self.grad is not None  # finish_grad follows prepare_binary(want_grad=True)
        grad = self.grad.reshape(self.shape)
        if self.out is None:
            return grad
        np.copyto(base_view(self.out), grad)
        return self.out


def _flat2d(arr: NDArray[Any], dtype: Any) -> tuple[NDArray[Any], bool]:
    """C-contiguous (rows, last axis) of arr; a 0-d array is one row of one."""
    flat = kernel_array(arr, dtype)
    cols = flat.shape[-1] if flat.ndim else 1
    rows = math.prod(flat.shape[:-1]) if flat.ndim else 1
    return flat.reshape(rows, cols), is_private_copy(flat, arr)


def _broadcast_weight(weight: ArrayLike | None, name: str, shape: tuple[int, ...],
                      dtype: Any) -> NDArray[Any] | None:
    """weight broadcast to shape: (1, cols) when it varies along the last axis
    only (no copy of the whole shape), else (rows, cols)."""
    if weight is None:
        return None
    w = as_array(weight, name)
    result_dtype(w, name)
    try:
        np.broadcast_shapes(w.shape, shape)
    except ValueError:
        raise ValueError(f"{name}: shape {w.shape} does not broadcast to the input's {shape}") \
            from None
    if np.broadcast_shapes(w.shape, shape) != shape:
        raise ValueError(f"{name}: shape {w.shape} would broadcast the input's {shape} to more")
    cols = shape[-1] if shape else 1
    if all(n == 1 for n in w.shape[:-1]):
        return kernel_array(np.broadcast_to(w.reshape(w.shape[-1:]), (cols,)),
                            dtype).reshape(1, cols)
    return _flat2d(np.broadcast_to(w, shape), dtype)[0]


def prepare_binary(x: ArrayLike, target: ArrayLike, *, kind: BinaryInput,
                   weight: ArrayLike | None, pos_weight: ArrayLike | None, reduction: Any,
                   want_grad: bool, out: NDArray[Any] | None,
                   target_in_unit: bool = True) -> BinaryProblem:
    """Checks the arguments of binary_cross_entropy[_with_logits][_with_grad];
    kind (a BinaryInput) says which, and names x's argument. Targets of
    probabilities must lie in [0, 1], as PyTorch's, unless not target_in_unit
    (Keras computes the formula for any target)."""
    name = kind.value
    reduction = check_reduction(reduction)
    x_in = as_array(x, name)
    # float16/bfloat16 logits stay as they are (probabilities: float32)
    dtype = result_dtype(x_in, name, halves=kind is BinaryInput.LOGITS)
    work_dtype = compute_dtype(dtype)  # of the targets and weights
    target_in = as_array(target, "target")
    if target_in.dtype.kind not in "fiu" and not is_half(target_in.dtype):
        raise TypeError(f"target: expected real numbers in [0, 1], got dtype {target_in.dtype}")
    if target_in.shape != x_in.shape:
        raise ValueError(f"target: expected the shape of {name} {x_in.shape}, got {target_in.shape}")
    flat_x, x_is_copy = _flat2d(x_in, dtype)
    # targets of the logits' half dtype are read as they are, others in float32
    flat_t, _ = _flat2d(target_in, dtype if target_in.dtype == dtype else work_dtype)
    if kind is BinaryInput.PROBS and target_in_unit:
        outside = (flat_t < 0) | (flat_t > 1)  # NaN passes, and gives NaN
        if outside.any():
            k = int(np.argmax(outside.reshape(-1)))
            raise ValueError(f"target: {flat_t.reshape(-1)[k]!r} at position "
                             f"{position(k, x_in.shape)} is outside [0, 1]")
    grad, grad_is_out = None, False
    if out is not None:
        if not want_grad:
            raise TypeError("out: this function does not take out=")
        out_view = check_out(out, x_in, dtype, {name: x_in, "target": target, "weight": weight,
                                                "pos_weight": pos_weight})
        grad_is_out = kernel_writable(out_view)
        if grad_is_out:
            grad = out_view.reshape(flat_x.shape)
    if want_grad and grad is None:
        grad = flat_x if x_is_copy else np.empty_like(flat_x)
    return BinaryProblem(
        x=flat_x, input=kind, target=flat_t,
        weight=_broadcast_weight(weight, "weight", x_in.shape, work_dtype),
        pos_weight=_broadcast_weight(pos_weight, "pos_weight", x_in.shape, work_dtype),
        reduction=reduction, shape=x_in.shape, grad=grad, out=out, grad_is_out=grad_is_out,
    )
