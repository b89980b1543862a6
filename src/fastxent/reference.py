"""Pure-NumPy implementations of the public functions, with identical
signatures and semantics: the fallback backend (FASTXENT_BACKEND=numpy), the
baseline of the benchmarks, and an oracle for the tests.

Each function here is its public twin run on the NumPy kernels (vectorised
NumPy, no compiled code), in the calling Python thread only: the backend of
other threads and of the process (:func:`fastxent.set_backend`) is left as it
is. The twins take the same arguments, raise the same exceptions and return
the same types and dtypes; their docstrings are the public functions'. The
numbers agree to rounding (the kernels sum in another order).
``linear_cross_entropy`` and its gradient take the unfused route here: the
N x V logits materialised.

Examples
--------
>>> import numpy as np, fastxent, fastxent.reference
>>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
>>> labels = np.array([0, 1])
>>> bool(np.isclose(fastxent.reference.cross_entropy(logits, labels),
...                 fastxent.cross_entropy(logits, labels)))
True
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from . import _config, _linear, _logits, _probs, _special


_Function = TypeVar("_Function", bound=Callable[..., Any])


def _on_numpy(public: _Function) -> _Function:
    """`public` run on the NumPy kernels, with its signature and types."""
    @functools.wraps(public)
    def on_numpy(*args: Any, **kwargs: Any) -> Any:
        with _config.backend_for_this_thread("numpy"):
            return public(*args, **kwargs)

    return cast(_Function, on_numpy)


cross_entropy = _on_numpy(_logits.cross_entropy)
cross_entropy_with_grad = _on_numpy(_logits.cross_entropy_with_grad)
binary_cross_entropy_with_logits = _on_numpy(_logits.binary_cross_entropy_with_logits)
binary_cross_entropy_with_logits_with_grad = _on_numpy(
    _logits.binary_cross_entropy_with_logits_with_grad)
binary_cross_entropy = _on_numpy(_probs.binary_cross_entropy)
binary_cross_entropy_with_grad = _on_numpy(_probs.binary_cross_entropy_with_grad)
nll_loss = _on_numpy(_probs.nll_loss)
nll_loss_with_grad = _on_numpy(_probs.nll_loss_with_grad)
softmax = _on_numpy(_special.softmax)
log_softmax = _on_numpy(_special.log_softmax)
logsumexp = _on_numpy(_special.logsumexp)
entropy = _on_numpy(_special.entropy)
kl_divergence = _on_numpy(_special.kl_divergence)



def _unfused_twin(public: _Function, *, want_grad: bool, doc: str) -> _Function:
    """A twin of a linear_cross_entropy function that takes the unfused route
    (fastxent._linear.unfused) on NumPy alone, with `public`'s signature and types."""
    @functools.wraps(public)
    def twin(hidden: Any, linear_weight: Any, target: Any, **options: Any) -> Any:
        with _config.backend_for_this_thread("numpy"):
            return _linear.unfused(hidden, linear_weight, target, want_grad=want_grad, **options)

    twin.__doc__ = doc
    return cast(_Function, twin)


linear_cross_entropy = _unfused_twin(
    _linear.linear_cross_entropy, want_grad=False,
    doc="""fastxent.linear_cross_entropy the unfused way, on NumPy alone.

    The N x V logits are materialised (``hidden @ linear_weight.T +
    linear_bias``), then :func:`fastxent.cross_entropy` runs on the NumPy
    kernels; `chunk_size` is checked, not used.

    Parameters
    ----------
    hidden, linear_weight, target : array_like
        As :func:`fastxent.linear_cross_entropy`.
    linear_bias, weight : array_like, optional
        As :func:`fastxent.linear_cross_entropy`.
    ignore_index, reduction, label_smoothing, chunk_size : optional
        As :func:`fastxent.linear_cross_entropy`.

    Returns
    -------
    numpy scalar, or ndarray of shape ``hidden.shape[:-1]`` (``"none"``)
        As :func:`fastxent.linear_cross_entropy`: float32 when every input
        is float32, else float64.

    Raises
    ------
    ValueError, IndexError, TypeError
        As :func:`fastxent.linear_cross_entropy`.

    See Also
    --------
    fastxent.linear_cross_entropy : The chunked, fused computation.

    Notes
    -----
    Memory: the N x V logits, which the fused function never holds.

    Examples
    --------
    >>> import numpy as np, fastxent, fastxent.reference
    >>> rng = np.random.default_rng(0)
    >>> hidden, head = rng.standard_normal((6, 4)), rng.standard_normal((10, 4))
    >>> labels = np.array([1, 2, 3, -100, 5, 9])
    >>> bool(np.isclose(fastxent.reference.linear_cross_entropy(hidden, head, labels),
    ...                 fastxent.linear_cross_entropy(hidden, head, labels)))
    True
    """)
linear_cross_entropy_with_grad = _unfused_twin(
    _linear.linear_cross_entropy_with_grad, want_grad=True,
    doc="""fastxent.linear_cross_entropy_with_grad the unfused way, on NumPy alone.

    The N x V logits and their gradient are materialised
    (:func:`fastxent.cross_entropy_with_grad` on the NumPy kernels), then
    the gradients come from three GEMMs; `chunk_size` is checked, not used.

    Parameters
    ----------
    hidden, linear_weight, target : array_like
        As :func:`fastxent.linear_cross_entropy`.
    linear_bias, weight : array_like, optional
        As :func:`fastxent.linear_cross_entropy`.
    ignore_index, reduction, label_smoothing, chunk_size : optional
        As :func:`fastxent.linear_cross_entropy`.

    Returns
    -------
    loss, d_hidden, d_weight[, d_bias]
        As :func:`fastxent.linear_cross_entropy_with_grad` (``d_bias`` only
        when `linear_bias` is given).

    Raises
    ------
    ValueError, IndexError, TypeError
        As :func:`fastxent.linear_cross_entropy`.

    See Also
    --------
    fastxent.linear_cross_entropy_with_grad : The chunked, fused computation.

    Notes
    -----
    Memory: the N x V logits and their gradient (one array, in place).

    Examples
    --------
    >>> import numpy as np, fastxent, fastxent.reference
    >>> rng = np.random.default_rng(0)
    >>> hidden, head = rng.standard_normal((6, 4)), rng.standard_normal((10, 4))
    >>> labels = np.array([1, 2, 3, -100, 5, 9])
    >>> _, d_hidden, d_weight = fastxent.reference.linear_cross_entropy_with_grad(
    ...     hidden, head, labels)
    >>> _, d_hidden_fused, _ = fastxent.linear_cross_entropy_with_grad(hidden, head, labels)
    >>> bool(np.allclose(d_hidden, d_hidden_fused))
    True
    """)
