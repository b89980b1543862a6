"""The types of the public signatures (numpy.typing), in one place.

``ArrayLike`` goes in; a float32 or float64 array or NumPy scalar comes out,
of the input's float dtype where that is float32 or float64 (the ``Float``
type variable), else of the union (integers give float64, float16 float16 or
float32: docs/conventions.md).
"""

from typing import Any, Literal, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "Float", "FloatArray", "FloatScalar", "NDArray", "Reduction",
           "Reduced", "Axis", "Axes", "Loss", "LossAndGrad", "ScalarOrArray"]

#: The ``reduction=`` of every loss.
Reduction = Literal["none", "sum", "mean"]
#: The reductions that give one number.
Reduced = Literal["sum", "mean"]
#: The result dtypes: the dtype of a float32 or float64 input.
Float = TypeVar("Float", np.float32, np.float64)
#: A result array whose dtype the types do not tell (an input that is not a
#: float32 or float64 array).
FloatArray = Union[NDArray[np.float16], NDArray[np.float32], NDArray[np.float64]]
#: A reduced loss whose dtype the types do not tell.
FloatScalar = Union[np.float16, np.float32, np.float64]
#: A class axis: one axis, or None for the rule of the losses.
Axis = Union[int, None]
#: The axes of a building block: one, several, or None for all.
Axes = Union[int, tuple[int, ...], None]
#: A float scalar or array: what a reduction returns whatever its arguments
#: (the overloads say which, and in which dtype).
ScalarOrArray = Union[np.floating[Any], NDArray[np.floating[Any]]]
#: What a loss function returns: a scalar ("sum", "mean") or an array ("none").
Loss = ScalarOrArray
#: What a *_with_grad function returns: the loss and its gradient.
LossAndGrad = tuple[Loss, NDArray[np.floating[Any]]]
