"""Fused softmax cross-entropy, loss + gradient: fastxent vs the NumPy reference,
PyTorch (where importable) and the memory floor (one copy of the logits)."""

import pytest

from fastxent import _bench

# Modest rounds: enough for a median, short enough to run often.
pytestmark = pytest.mark.benchmark(max_time=0.5, min_rounds=5, warmup=True, warmup_iterations=2)


@pytest.mark.parametrize("impl", [
    "fastxent",
    "fastxent-out",
    "numpy-reference",
    pytest.param("torch", marks=pytest.mark.torch),
    "copy-floor",
])
def test_cross_entropy_with_grad(benchmark, workload, threads, impl):
    torch = pytest.importorskip("torch") if impl == "torch" else None
    group, logits, labels, ref_loss = workload
    fn = _bench.make_implementations(logits, labels, torch)[impl]
    benchmark.group = group
    benchmark.extra_info["threads"] = threads

    with _bench.using_threads(threads, torch):
        result = benchmark(fn)

    if result is not None:  # the copy floor has no loss
        assert float(result[0]) == pytest.approx(ref_loss, rel=_bench.RTOL)
