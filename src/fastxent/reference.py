"""Pure-NumPy implementations of the public functions, with identical
signatures and semantics: the fallback backend (FASTXENT_BACKEND=numpy), the
baseline of the benchmarks, and an oracle for the tests.

Each function here is its public twin run on the NumPy kernels."""

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
    doc="""fastxent.linear_cross_entropy the unfused way, on NumPy alone: the N x V
    logits materialised, then cross_entropy (chunk_size is checked, not used).""")
linear_cross_entropy_with_grad = _unfused_twin(
    _linear.linear_cross_entropy_with_grad, want_grad=True,
    doc="""fastxent.linear_cross_entropy_with_grad the unfused way, on NumPy alone:
    the N x V logits and their gradient materialised, the gradients by GEMMs.""")
