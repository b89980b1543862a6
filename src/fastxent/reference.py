"""Pure-NumPy implementations of the public functions, with identical
signatures and semantics: the fallback backend (FASTXENT_BACKEND=numpy), the
baseline of the benchmarks, and an oracle for the tests."""

from . import _numpy_kernels
from ._logits import softmax_xent


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=-1):
    """fastxent.cross_entropy, computed with NumPy."""
    return softmax_xent(_numpy_kernels, logits, target, weight, ignore_index, reduction,
                        label_smoothing, axis, False, None)


def cross_entropy_with_grad(logits, target, *, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0, axis=-1, out=None):
    """fastxent.cross_entropy_with_grad, computed with NumPy."""
    return softmax_xent(_numpy_kernels, logits, target, weight, ignore_index, reduction,
                        label_smoothing, axis, True, out)
