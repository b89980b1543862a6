"""pytest-benchmark suites for fastxent. Run them with

    PYTHONPATH=src python -m pytest benchmarks/ --benchmark-group-by=group

Each group compares the implementations on one workload. They are not part of
the test run (pyproject's testpaths is tests/). pytest-benchmark times one
implementation after another; for interleaved, noise-robust medians use
`python -m fastxent bench`, which shares its workloads and implementations.
"""

import numpy as np
import pytest

import fastxent
from fastxent import _bench, reference

WORKLOADS = [(shape, "float32") for shape in _bench.DEFAULT_SHAPES]


@pytest.fixture(scope="session")
def threads():
    # Read once, before torch.set_num_threads can change the OpenMP default.
    return fastxent.get_num_threads()


@pytest.fixture(scope="session", params=WORKLOADS,
                ids=[f"{_bench.shape_name(s)}-{d}" for s, d in WORKLOADS])
def workload(request):
    """(group name, logits, labels, reference loss); one workload alive at a time."""
    shape, dtype = request.param
    logits, labels = _bench.make_workload(shape, dtype)
    ref_loss = float(reference.cross_entropy(logits, labels))
    return f"{_bench.shape_name(shape)} {np.dtype(dtype).name}", logits, labels, ref_loss
