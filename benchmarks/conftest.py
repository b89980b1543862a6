"""pytest-benchmark suites for fastxent. Run them with

    PYTHONPATH=src python -m pytest benchmarks/ --benchmark-group-by=group

Each group compares the implementations (fastxent, fastxent out=, the NumPy
reference, PyTorch eager and torch.compile, scikit-learn, JAX where installed,
and the memory floors: the copy, and the copy into fresh memory)
on one workload: one op, shape and dtype, with fastxent.get_num_threads()
threads. The workloads are those of `python -m fastxent bench`; with
--bench-full, those of `python -m fastxent bench --full` (issue 17's shapes
among them: 65536x10, 1x1048576, 2x524288, 4x262144, 2048x32768, 8192x1000,
float32 and float64, BCE), without its one-thread runs. Every implementation is checked against the NumPy reference
before it is timed.

They are not part of the test run (pyproject's testpaths is tests/).
pytest-benchmark times one implementation after another; for interleaved,
noise-robust medians use `python -m fastxent bench`, which shares its
workloads and implementations (fastxent.bench).
"""

import sys

import numpy as np
import pytest

import fastxent
from fastxent import bench


def pytest_addoption(parser):
    parser.addoption("--bench-full", action="store_true", default=False,
                     help="fastxent: time every workload of `python -m fastxent bench --full`")


def _workloads(full):
    if full:
        plan = [(op, shape, dtype) for op, shape, dtype, _ in bench.FULL_PLAN]
    else:
        plan = [(op, shape, "float32") for op in bench.DEFAULT_OPS
                for shape in bench.OPS[op].default_shapes]
    return plan


def pytest_generate_tests(metafunc):
    if "workload_spec" in metafunc.fixturenames:
        specs = _workloads(metafunc.config.getoption("--bench-full"))
        metafunc.parametrize(
            "workload_spec", specs, scope="session",
            ids=[f"{op}-{bench.shape_name(shape)}-{dtype}" for op, shape, dtype in specs])


@pytest.fixture(scope="session")
def threads():
    # Read once, before torch.set_num_threads can change the OpenMP default.
    return fastxent.get_num_threads()


@pytest.fixture(scope="session")
def peers(request, threads):
    specs = _workloads(request.config.getoption("--bench-full"))
    return bench.import_peers(x64=any(dtype == "float64" for _, _, dtype in specs))


@pytest.fixture(scope="session")
def workload(workload_spec, threads, peers):
    """(group name, Workload, name -> Impl), checked against the NumPy
    reference; one workload alive at a time (pytest orders the tests by it)."""
    op, shape, dtype = workload_spec
    peers.new_workload()
    w = bench.make_workload(op, shape, dtype)
    group = f"{op} {w.name} {np.dtype(dtype).name}, {threads} threads"

    def warn(message):
        print(f"\nbench: {message}", file=sys.stderr)

    impls = bench.make_implementations(w, threads, peers, warn=warn)
    with bench.using_threads(threads, peers.torch):
        bench.check(impls, group)
    return group, w, impls
