"""The reference libraries the comparison tests need are installed where the
standard test command runs.

The comparison tests skip, with a reason, where a reference library is
missing (the test-suite installed inside a wheel must run with pytest alone).
The README's test command installs them all; CI runs it with
FASTXENT_REQUIRE_REFERENCES=1, and then a missing library fails here instead
of silently turning comparisons into skips.
"""

import importlib
import os
import sys

import pytest

# module -> what compares against it
REFERENCE_LIBRARIES = {
    "torch": "torch.nn.functional losses, the fastxent.torch bridge",
    "scipy": "the building blocks (scipy.special)",
    "sklearn": "fastxent.sklearn.log_loss, scikit-learn's loss classes, the digits examples",
    "keras": "fastxent.keras",
    "jax": "the fastxent.jax bridge, Keras's JAX backend",
    "optax": "the fastxent.jax bridge's optax-named losses and example",
    "hypothesis": "the property tests",
    "threadpoolctl": "the thread-limit tests",
    "matplotlib": "the examples' plots",
    "distributed": "fastxent.dask on a LocalCluster (dask[array,distributed])",
    "zarr": "python -m fastxent score on Zarr stores",
}

required = os.environ.get("FASTXENT_REQUIRE_REFERENCES") == "1"


@pytest.mark.skipif(not required, reason="FASTXENT_REQUIRE_REFERENCES=1 is not set")
@pytest.mark.parametrize("module", sorted(REFERENCE_LIBRARIES))
def test_reference_library_is_installed(module):
    if module == "keras" and "keras" not in sys.modules:
        # Keras 3 needs a backend it can import; TensorFlow, its default, is not one of ours.
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module} ({REFERENCE_LIBRARIES[module]}) cannot be imported: {exc}; "
                    "the standard test command must install it")
