"""Pure-NumPy implementations of the public functions, with identical
signatures and semantics: the fallback backend (FASTXENT_BACKEND=numpy), the
baseline of the benchmarks, and an oracle for the tests.

Each function here is its public twin run on the NumPy kernels."""

import functools

from . import _config, _linear, _logits, _probs, _special
from ._validate import IGNORE_INDEX_DEFAULT as _IGNORE_INDEX_DEFAULT


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



def linear_cross_entropy(hidden, linear_weight, target, *, linear_bias=None, weight=None,
                         ignore_index=_IGNORE_INDEX_DEFAULT, reduction="mean",
                         label_smoothing=0.0, chunk_size=None, sample_weight=None, z_loss=0.0,
                         softcap=None, return_lse=False, return_accuracy=False):
    """fastxent.linear_cross_entropy the unfused way, on NumPy alone: the N x V
    logits materialised, then cross_entropy (chunk_size is checked, not used)."""
    with _config.backend_for_this_thread("numpy"):
        return _linear.unfused(hidden, linear_weight, target, linear_bias=linear_bias,
                               weight=weight, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing, chunk_size=chunk_size,
                               want_grad=False, sample_weight=sample_weight, z_loss=z_loss,
                               softcap=softcap, return_lse=return_lse,
                               return_accuracy=return_accuracy)


def linear_cross_entropy_with_grad(hidden, linear_weight, target, *, linear_bias=None,
                                   weight=None, ignore_index=_IGNORE_INDEX_DEFAULT,
                                   reduction="mean", label_smoothing=0.0, chunk_size=None,
                                   sample_weight=None, z_loss=0.0, softcap=None,
                                   return_lse=False, return_accuracy=False):
    """fastxent.linear_cross_entropy_with_grad the unfused way, on NumPy alone:
    the N x V logits and their gradient materialised, the gradients by GEMMs."""
    with _config.backend_for_this_thread("numpy"):
        return _linear.unfused(hidden, linear_weight, target, linear_bias=linear_bias,
                               weight=weight, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing, chunk_size=chunk_size,
                               want_grad=True, sample_weight=sample_weight, z_loss=z_loss,
                               softcap=softcap, return_lse=return_lse,
                               return_accuracy=return_accuracy)
