"""fastxent: fast fused cross-entropy losses and their gradients for NumPy arrays."""

from ._config import (
    get_backend,
    get_num_threads,
    num_threads,
    set_backend,
    set_num_threads,
    show_config,
)
from ._logits import (
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_with_grad,
    cross_entropy,
    cross_entropy_with_grad,
)
from ._probs import (
    binary_cross_entropy,
    binary_cross_entropy_with_grad,
    nll_loss,
    nll_loss_with_grad,
)
from ._special import entropy, kl_divergence, log_softmax, logsumexp, softmax
from ._version import __version__
from . import keras, reference, sklearn  # noqa: E402  (submodules: fastxent.reference etc.)

__all__ = [
    "__version__",
    "binary_cross_entropy",
    "binary_cross_entropy_with_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_with_grad",
    "cross_entropy",
    "cross_entropy_with_grad",
    "entropy",
    "kl_divergence",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "nll_loss_with_grad",
    "reference",
    "sklearn",
    "softmax",
    "get_backend",
    "get_num_threads",
    "keras",
    "num_threads",
    "set_backend",
    "set_num_threads",
    "show_config",
]
