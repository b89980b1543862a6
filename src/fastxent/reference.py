"""Pure-NumPy implementations of the public functions, with identical
signatures and semantics: the fallback backend (FASTXENT_BACKEND=numpy), the
baseline of the benchmarks, and an oracle for the tests.

Each function here is its public twin run on the NumPy kernels."""

import functools

from . import _config, _logits, _probs, _special


def _on_numpy(public):
    @functools.wraps(public)
    def on_numpy(*args, **kwargs):
        with _config.backend_for_this_thread("numpy"):
            return public(*args, **kwargs)

    return on_numpy


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
