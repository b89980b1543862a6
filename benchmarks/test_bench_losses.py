"""Loss + gradient (xent, bce) and loss only (xent-fwd): fastxent against the
NumPy reference, its peers (where importable) and the op's memory floor, one
group per workload."""

import pytest

from fastxent import bench

# Modest rounds: enough for a median, short enough to run often.
pytestmark = pytest.mark.benchmark(max_time=0.5, min_rounds=5, warmup=True, warmup_iterations=2)


def why_missing(impl, op, peers, threads):
    if impl in ("fastxent-out", "floor-fresh"):
        return "forward only: no gradient to write"
    if impl == "jax" and peers.jax is not None:
        return (f"XLA's thread pool uses all {bench.usable_cpus()} CPUs, not {threads} "
                "threads")
    library = {"torch": "PyTorch", "torch-compile": "torch.compile (PyTorch and a C++ compiler)",
               "sklearn": "scikit-learn's sklearn._loss", "jax": "JAX"}
    return f"{library.get(impl, impl)} is not usable here (see the warnings)"


@pytest.mark.parametrize("impl", [
    pytest.param(name, marks=pytest.mark.torch) if name.startswith("torch") else name
    for name in bench.IMPL_NAMES
])
def test_loss(benchmark, workload, threads, peers, impl):
    group, w, impls = workload
    if impl not in impls:
        pytest.skip(f"{impl} on {w.op}: {why_missing(impl, w.op, peers, threads)}")
    benchmark.group = group
    benchmark.extra_info.update(op=w.op, workload=w.name, dtype=w.dtype, threads=threads,
                                label=impls[impl].label, bytes=w.nbytes,
                                floor=bench.floor_of(impl, impls))
    with bench.using_threads(threads, peers.torch):
        benchmark(impls[impl].fn)
