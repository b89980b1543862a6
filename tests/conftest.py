"""Shared fixtures and independent references for the fastxent test-suite.

The fixtures (backend, torch, rng) and pytest's hooks. The references and
helpers are in fastxent_testing.py; two references, neither of which uses
fastxent:

* ``torch_xent``: torch.nn.functional.cross_entropy and its autograd, in
  float64, with the class axis moved to dim 1 (dim 0 for unbatched input).
  Tests that use it take the ``torch`` fixture, which skips them (with a
  reason) where PyTorch is not installed.
* ``oracle_xent``: the same semantics written out with scipy.special.log_softmax
  and the analytic gradient, in float64. It lets layout, dtype and accuracy
  tests run without PyTorch; test_cross_entropy checks it against torch.
"""

import os
import sys
import zlib

import numpy as np
import pytest

import fastxent

# The shared constants, references and helpers live in fastxent_testing.py
# beside this file, imported by name (`from fastxent_testing import ...`) in
# the source tree as in the installed test-suite, and whatever pytest's
# --import-mode: this directory goes on the path before any test imports.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastxent_testing import (  # noqa: E402  (re-exported for `from conftest import ...`)
    BACKENDS,
    RTOL,
    Snapshot,
    assert_close,
    central_difference,
    check_loss_type,
    gradient_floor,
    layouts,
    oracle_xent,
    random_labels,
    random_logits,
    random_probs,
    result_dtype,
    run_both,
    selected_backend,
    torch_xent,
    with_layout,
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test once with each backend selected by fastxent.set_backend,
    restoring the previous backend afterwards."""
    with selected_backend(request.param):
        yield request.param


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed: comparisons with torch.nn.functional skipped"
    )
    torch.set_num_threads(1)  # the references are small: threads would only add overhead
    return torch


# The markers pyproject.toml declares, for runs without it: the test-suite
# installed inside the package (fastxent.test(), pytest --pyargs fastxent).
MARKERS = {
    "torch": "compares against PyTorch (skipped where it is not installed)",
    "bigmem": "needs about 10 GB of memory (runs with FASTXENT_BIGMEM=1)",
}


def pytest_configure(config):
    declared = {line.split(":")[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in declared:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_report_header(config):
    # Which fastxent this run tests: an installed wheel or a source tree.
    from fastxent import _config

    kernels = _config._compiled.__file__ if _config._compiled is not None else "not loaded"
    return [f"fastxent {fastxent.__version__} from {os.path.dirname(fastxent.__file__)}",
            (f"fastxent: backend {fastxent.get_backend()}, extension {kernels}, "
             f"OpenMP {_config.config()['openmp']}")]


def pytest_collection_modifyitems(items):
    # Every test that compares against PyTorch carries the `torch` marker
    # (declared in pyproject.toml), so `-m "not torch"` deselects them.
    for item in items:
        if "torch" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.torch)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: every run sees the same data."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(autouse=True, scope="session")
def _threads_as_asked():
    """The kernels' contention check off (tests/test_contention.py turns it on):
    on a busy or oversubscribed machine it would send calls to one thread,
    and the thread-count tests would compare one thread with itself."""
    compiled = fastxent._config._compiled
    previous = compiled._set_busy_check(False) if compiled is not None else None
    yield
    if compiled is not None:
        compiled._set_busy_check(previous)
