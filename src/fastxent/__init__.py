"""fastxent: fast fused cross-entropy losses and their gradients for NumPy arrays."""

from ._config import (
    get_backend,
    get_num_threads,
    num_threads,
    set_backend,
    set_num_threads,
    show_config,
)
from ._logits import cross_entropy, cross_entropy_with_grad
from ._version import __version__

__all__ = [
    "__version__",
    "cross_entropy",
    "cross_entropy_with_grad",
    "get_backend",
    "get_num_threads",
    "num_threads",
    "set_backend",
    "set_num_threads",
    "show_config",
]
