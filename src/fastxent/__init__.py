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
from ._linear import linear_cross_entropy, linear_cross_entropy_with_grad
from ._probs import (
    binary_cross_entropy,
    binary_cross_entropy_with_grad,
    nll_loss,
    nll_loss_with_grad,
)
from ._special import entropy, kl_divergence, log_softmax, logsumexp, softmax
from ._version import __version__
from . import keras, reference, sklearn, stream  # noqa: E402  (submodules: fastxent.reference etc.)


def test(*pytest_args: str) -> int:
    """Runs the test-suite installed with fastxent against this installation.

    Parameters
    ----------
    *pytest_args : str
        Arguments for pytest, e.g. ``fastxent.test("-x", "-k", "softmax")``.

    Returns
    -------
    int
        pytest's exit code: 0 when every test passed.

    Notes
    -----
    Needs pytest and the test requirements: ``pip install "fastxent[test]"``
    (and the ``compare`` extra for the comparisons with PyTorch, scikit-learn,
    Keras and JAX).

    Examples
    --------
    >>> import fastxent
    >>> fastxent.test("-q", "-x", "-k", "softmax")  # doctest: +SKIP
    0
    """
    from ._selftest import test as run_tests

    return run_tests(*pytest_args)


test.__test__ = False  # type: ignore[attr-defined]  # not a test function, for pytest's collection

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
    "linear_cross_entropy",
    "linear_cross_entropy_with_grad",
    "log_softmax",
    "logsumexp",
    "nll_loss",
    "nll_loss_with_grad",
    "reference",
    "sklearn",
    "softmax",
    "stream",
    "test",
    "get_backend",
    "get_num_threads",
    "keras",
    "num_threads",
    "set_backend",
    "set_num_threads",
    "show_config",
]
