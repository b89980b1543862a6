"""linear_cross_entropy[_with_grad]: the fused linear + cross-entropy of a
language-model head, in chunks. Checked against PyTorch's F.linear_cross_entropy
and its autograd (float64), against the unfused computation for any chunk
shape, and for its memory bound (tracemalloc)."""

import inspect
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import fastxent
from fastxent import _blas, _linear

# Chunk shapes: one row, odd, more rows than N, and classes in blocks
# (one class, odd blocks, a block larger than V).
CHUNKS = [None, 1, 7, 1000, (1, 1), (5, 4), (9, 1000), (1000, 6)]


def make_problem(rng, n=29, h=6, v=17, *, probabilities=False, dtype=np.float64):
    hidden = rng.standard_normal((n, h)).astype(dtype)
    linear_weight = (rng.standard_normal((v, h)) * 0.7).astype(dtype)
    linear_bias = rng.standard_normal(v).astype(dtype)
    if probabilities:
        target = rng.dirichlet(np.ones(v), n).astype(dtype)
    else:
        target = rng.integers(0, v, n)
        target[1::4] = -100  # some samples ignored
    return hidden, linear_weight, linear_bias, target


def torch_linear_xent(torch, hidden, linear_weight, target, *, linear_bias=None, weight=None,
                      reduction="mean", label_smoothing=0.0, ignore_index=-100):
    """(loss, d_hidden, d_weight, d_bias or None) from torch's F.linear_cross_entropy
    (its reference path) and autograd, in float64."""
    def tensor(a, grad=False):
        if a is None:
            return None
        return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)

    ht, wt, bt = tensor(hidden, True), tensor(linear_weight, True), tensor(linear_bias, True)
    target = np.asarray(target)
    tt = torch.tensor(target) if target.dtype.kind in "iu" else tensor(target)
    index_options = {"ignore_index": ignore_index} if target.dtype.kind in "iu" else {}
    loss = torch.nn.functional.linear_cross_entropy(
        ht, wt, tt, linear_bias=bt, weight=tensor(weight), reduction=reduction,
        label_smoothing=label_smoothing, **index_options)
    (loss.sum() if reduction == "none" else loss).backward()
    return (loss.detach().numpy(), ht.grad.numpy(), wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


def check_against(results, expected, dtype, with_bias):
    assert len(results) == (4 if with_bias else 3)
    for name, got, want in zip(("loss", "d_hidden", "d_weight", "d_bias"), results, expected):
        assert np.asarray(got).dtype == dtype, name
        assert np.shape(got) == np.shape(want), name
        assert_close(got, want, dtype, err_msg=name)


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("probabilities", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_every_option_and_chunk_shape_matches_torch(torch, backend, chunk_size, probabilities,
                                                    reduction):
    rng = np.random.default_rng(hash((str(chunk_size), probabilities, reduction)) % 2**32)
    hidden, linear_weight, linear_bias, target = make_problem(rng, probabilities=probabilities)
    class_weight = rng.uniform(0.3, 2.0, linear_weight.shape[0])
    for options in ({}, {"weight": class_weight, "label_smoothing": 0.15},
                    {"linear_bias": linear_bias, "weight": class_weight},
                    {"linear_bias": linear_bias, "label_smoothing": 0.3}):
        options = {"reduction": reduction, **options}
        expected = torch_linear_xent(torch, hidden, linear_weight, target, **options)
        results = fastxent.linear_cross_entropy_with_grad(
            hidden, linear_weight, target, chunk_size=chunk_size, **options)
        check_against(results, expected, np.dtype(np.float64), "linear_bias" in options)
        loss = fastxent.linear_cross_entropy(hidden, linear_weight, target,
                                             chunk_size=chunk_size, **options)
        assert_close(loss, expected[0], np.float64)


@pytest.mark.parametrize("chunk_size", [None, 3, (4, 5)])
def test_float32_within_float32_tolerance_of_torch_float64(torch, chunk_size):
    rng = np.random.default_rng(3)
    hidden, linear_weight, linear_bias, target = make_problem(rng, n=50, h=16, v=40,
                                                              dtype=np.float32)
    options = {"linear_bias": linear_bias, "weight": rng.uniform(0.5, 2, 40).astype(np.float32),
                   "label_smoothing": 0.1}
    expected = torch_linear_xent(torch, hidden, linear_weight, target, **options)
    results = fastxent.linear_cross_entropy_with_grad(hidden, linear_weight, target,
                                                      chunk_size=chunk_size, **options)
    check_against(results, expected, np.dtype(np.float32), True)


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_equals_the_unfused_computation(chunk_size):
    """cross_entropy_with_grad on the materialised logits, then the three GEMMs."""
    rng = np.random.default_rng(11)
    hidden, linear_weight, linear_bias, target = make_problem(rng, n=31, h=8, v=19,
                                                              dtype=np.float32)
    logits = hidden @ linear_weight.T + linear_bias
    loss, d_logits = fastxent.cross_entropy_with_grad(logits, target, label_smoothing=0.05)
    expected = (loss, d_logits @ linear_weight, d_logits.T @ hidden, d_logits.sum(axis=0))
    results = fastxent.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, linear_bias=linear_bias, label_smoothing=0.05,
        chunk_size=chunk_size)
    check_against(results, expected, np.dtype(np.float32), True)
    twin = fastxent.reference.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, linear_bias=linear_bias, label_smoothing=0.05)
    check_against(twin, expected, np.dtype(np.float32), True)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 25), v=st.integers(1, 20), rows=st.integers(1, 30),
       classes=st.integers(1, 25), probabilities=st.booleans())
def test_any_chunk_shape_gives_the_unfused_result(n, v, rows, classes, probabilities):
    rng = np.random.default_rng(n * 1000 + v)
    hidden, linear_weight, _, target = make_problem(rng, n=n, h=3, v=v,
                                                    probabilities=probabilities)
    expected = fastxent.reference.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, reduction="sum")
    results = fastxent.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, reduction="sum", chunk_size=(rows, classes))
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_batch_axes_and_a_single_sample(torch):
    rng = np.random.default_rng(7)
    hidden = rng.standard_normal((3, 5, 4))
    linear_weight = rng.standard_normal((9, 4))
    target = rng.integers(0, 9, (3, 5))
    loss, d_hidden, d_weight = fastxent.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, reduction="none", chunk_size=4)
    expected = torch_linear_xent(torch, hidden.reshape(15, 4), linear_weight,
                                 target.reshape(15), reduction="none")
    assert loss.shape == (3, 5) and d_hidden.shape == (3, 5, 4)
    assert_close(loss.reshape(15), expected[0], np.float64)
    assert_close(d_hidden.reshape(15, 4), expected[1], np.float64)
    assert_close(d_weight, expected[2], np.float64)
    # One sample, unbatched as in PyTorch: hidden (H,), target ().
    single = torch_linear_xent(torch, hidden[0, 0], linear_weight, target[0, 0])
    results = fastxent.linear_cross_entropy_with_grad(hidden[0, 0], linear_weight,
                                                      target[0, 0])
    assert np.ndim(results[0]) == 0 and results[1].shape == (4,)
    check_against(results, single, np.dtype(np.float64), False)


def test_mean_over_no_counted_sample_is_nan_as_torch(torch):
    rng = np.random.default_rng(2)
    hidden, linear_weight, _, _ = make_problem(rng, n=5, h=3, v=4)
    target = np.full(5, -100)
    expected = torch_linear_xent(torch, hidden, linear_weight, target)
    results = fastxent.linear_cross_entropy_with_grad(hidden, linear_weight, target,
                                                      chunk_size=2)
    assert np.isnan(expected[0]) and np.isnan(results[0])
    for got, want in zip(results[1:], expected[1:3]):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(np.nan_to_num(got), np.nan_to_num(want))


def test_layouts_and_dtypes_of_inputs_and_results():
    """Fortran-ordered, strided and read-only inputs give the same numbers and are
    never modified; each gradient comes back in its input's float dtype."""
    rng = np.random.default_rng(5)
    hidden, linear_weight, linear_bias, target = make_problem(rng, n=20, h=6, v=11)
    expected = fastxent.linear_cross_entropy_with_grad(hidden, linear_weight, target,
                                                       linear_bias=linear_bias)
    wide = np.repeat(hidden, 2, axis=1)[:, ::2]  # a strided view
    fortran = np.asfortranarray(linear_weight)
    readonly_target = target.copy()
    readonly_target.flags.writeable = False
    copies = [a.copy() for a in (wide, fortran, linear_bias, readonly_target)]
    results = fastxent.linear_cross_entropy_with_grad(wide, fortran, readonly_target,
                                                      linear_bias=linear_bias, chunk_size=3)
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    for after, before in zip((wide, fortran, linear_bias, readonly_target), copies):
        np.testing.assert_array_equal(after, before)
    mixed = fastxent.linear_cross_entropy_with_grad(hidden.astype(np.float32), linear_weight,
                                                    target)
    assert mixed[0].dtype == np.float64  # promoted, as NumPy does
    assert mixed[1].dtype == np.float32 and mixed[2].dtype == np.float64


@pytest.mark.parametrize("call, error, match", [
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w[:, :3], t), ValueError, "hidden"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w[0], t), ValueError, "linear_weight"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t[:-1]), ValueError, "target"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, linear_bias=np.ones(3)),
     ValueError, "linear_bias"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, weight=np.ones(3)),
     ValueError, "weight"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t.astype(str)), TypeError, "target"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, reduction="avg"),
     ValueError, "reduction"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, label_smoothing=2),
     ValueError, "label_smoothing"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, chunk_size=0),
     ValueError, "chunk_size"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, chunk_size=(2, -1)),
     ValueError, "chunk_size"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, chunk_size=(1, 2, 3)),
     ValueError, "chunk_size"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, chunk_size=True),
     TypeError, "chunk_size"),
    (lambda h, w, t: fastxent.linear_cross_entropy(h, w, t, chunk_size=2.5),
     TypeError, "chunk_size"),
    (lambda h, w, t: fastxent.linear_cross_entropy_with_grad(h, w, t + [0, 0, 0, 9]),
     IndexError, r"class label 12 at position \(3,\) is outside \[0, 5\)"),
])
def test_bad_arguments_raise_naming_them(call, error, match):
    hidden, linear_weight = np.ones((4, 6)), np.ones((5, 6))
    target = np.array([0, 1, 2, 3])
    with pytest.raises(error, match=match):
        call(hidden, linear_weight, target)


def test_automatic_chunks_follow_the_rule():
    # 128 MiB of float32 logits: 1,048 rows of 32,000 classes, 261 of 128,256;
    # all rows when fewer.
    assert _linear.choose_chunking(None, 4096, 32000, 4) == (1048, 32000)
    assert _linear.choose_chunking(None, 2048, 128256, 4) == (261, 128256)
    assert _linear.choose_chunking(None, 100, 32000, 4) == (100, 32000)
    # Fewer than 128 rows would fit: 128 rows, classes in blocks of 128 MiB.
    rows, classes = _linear.choose_chunking(None, 4096, 1_000_000, 4)
    assert rows == 128 and classes == 128 * 2**20 // (128 * 4)


def extra_peak_bytes(fn):
    """Peak bytes traced during fn() beyond the arrays it returns."""
    tracemalloc.start()
    try:
        results = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    returned = sum(np.asarray(r).nbytes for r in results)
    return peak - returned


@pytest.mark.parametrize("chunk_size", [32, (32, 4096), None])
def test_extra_memory_is_one_chunk_of_logits_not_the_logits(monkeypatch, chunk_size):
    """Peak extra memory, traced: at most one chunk's logits plus the
    accumulation block plus O(N + V) vectors, where the unfused logits alone
    (64 MiB) are more than 10x that bound."""
    n, h, v = 2048, 32, 8192
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((n, h), dtype=np.float32)
    linear_weight = rng.standard_normal((v, h), dtype=np.float32) * 0.1
    linear_bias = rng.standard_normal(v, dtype=np.float32)
    target = rng.integers(0, v, n)
    target[::10] = -100
    # The automatic rule under a smaller budget than the default 128 MiB.
    monkeypatch.setattr(_linear, "CHUNK_BYTES", 1 * 2**20)
    chunking = _linear.choose_chunking(chunk_size, n, v, 4)
    chunk_bytes = chunking.rows * chunking.classes * 4
    block_bytes = min(v, _linear.ACCUMULATE_BYTES // (h * 4)) * h * 4
    vectors = 16 * (n + v) * 8  # row and class vectors, generously
    d_hidden_chunk = chunking.rows * h * 4  # the chunk's d_hidden, transposed
    bound = chunk_bytes + block_bytes + d_hidden_chunk + vectors
    logits_bytes = n * v * 4
    assert logits_bytes >= 10 * bound

    # One BLAS thread: small GEMMs on threads the OS deschedules (a busy
    # machine) take seconds instead of milliseconds; the memory is the same.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        extra = extra_peak_bytes(lambda: fastxent.linear_cross_entropy_with_grad(
            hidden, linear_weight, target, linear_bias=linear_bias, chunk_size=chunk_size))
        forward = extra_peak_bytes(lambda: (fastxent.linear_cross_entropy(
            hidden, linear_weight, target, linear_bias=linear_bias, chunk_size=chunk_size),))
        if chunk_size is None:  # the unfused route, for scale: it holds the N x V logits
            unfused = extra_peak_bytes(lambda: fastxent.reference.linear_cross_entropy_with_grad(
                hidden, linear_weight, target, linear_bias=linear_bias))
            assert unfused >= logits_bytes
    assert extra <= bound, (extra, bound)
    assert forward <= chunk_bytes + vectors, (forward, chunk_bytes)


@pytest.fixture(params=["blas", "matmul-and-add"])
def accumulate(request, monkeypatch):
    """d_weight's later chunks added by NumPy's BLAS with beta = 1 (where it can
    be reached), or by the fallback: matmul into a block, then an add."""
    if request.param == "matmul-and-add":
        monkeypatch.setattr(_blas, "_gemms", {})
    return request.param


@pytest.mark.parametrize("chunk_size", [1, 7, (5, 4), (9, 1000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_ways_of_accumulating_d_weight_match_torch(torch, accumulate, chunk_size, dtype):
    rng = np.random.default_rng(17)
    hidden, linear_weight, linear_bias, target = make_problem(rng, n=40, h=9, v=23, dtype=dtype)
    expected = torch_linear_xent(torch, hidden, linear_weight, target, linear_bias=linear_bias,
                                 label_smoothing=0.1)
    results = fastxent.linear_cross_entropy_with_grad(
        hidden, linear_weight, target, linear_bias=linear_bias, label_smoothing=0.1,
        chunk_size=chunk_size)
    check_against(results, expected, np.dtype(dtype), True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_accumulation_adds_the_product(dtype):
    rng = np.random.default_rng(4)
    wide = rng.standard_normal((13, 40)).astype(dtype)
    a = wide[:, 3:30]  # rows longer than the view: a leading dimension of 40
    b = rng.standard_normal((13, 6)).astype(dtype)
    c = rng.standard_normal((27, 6)).astype(dtype)
    expected = c.astype(np.float64) + a.T.astype(np.float64) @ b
    if not _blas.add_product_t(c, a, b):
        pytest.skip("NumPy's own OpenBLAS is not reachable here (NumPy linked to another BLAS)")
    assert_close(c, expected, dtype)
    # Layouts a BLAS cannot take are declined, the array untouched.
    before = c.copy()
    assert not _blas.add_product_t(c, a[:, ::2], b[:, :])
    assert not _blas.add_product_t(c[:, ::2], a, b[:, ::2])
    np.testing.assert_array_equal(c, before)


@pytest.mark.parametrize("name", ["linear_cross_entropy", "linear_cross_entropy_with_grad"])
def test_reference_twin_has_the_public_signature(name):
    public, twin = getattr(fastxent, name), getattr(fastxent.reference, name)
    assert inspect.signature(twin) == inspect.signature(public)
    # and PyTorch's names: the projection linear_weight, its bias linear_bias,
    # the class weights weight
    assert list(inspect.signature(public).parameters)[:5] == [
        "hidden", "linear_weight", "target", "linear_bias", "weight"]


def test_ignore_index_with_probability_targets_is_refused_as_by_cross_entropy(torch):
    rng = np.random.default_rng(8)
    hidden, linear_weight, _, target = make_problem(rng, n=6, h=3, v=5, probabilities=True)
    for ignore_index in (-100, 0):
        with pytest.raises(ValueError, match="ignore_index: .* not supported for floating"):
            fastxent.linear_cross_entropy(hidden, linear_weight, target,
                                          ignore_index=ignore_index)
        with pytest.raises(RuntimeError):  # PyTorch refuses it too
            torch.nn.functional.linear_cross_entropy(
                torch.tensor(hidden), torch.tensor(linear_weight), torch.tensor(target),
                ignore_index=ignore_index)
    # Not given, or None as PyTorch's "not given": accepted.
    expected = torch_linear_xent(torch, hidden, linear_weight, target)
    for options in ({}, {"ignore_index": None}):
        assert_close(fastxent.linear_cross_entropy(hidden, linear_weight, target, **options),
                     expected[0], np.float64)


# bfloat16 hidden and linear_weight (ml_dtypes): the GEMMs in bfloat16 by
# PyTorch's matmul (float32 accumulation inside each GEMM), the logits and the
# loss in float32, the gradients in bfloat16. Stated accuracy, against the
# same bfloat16 values computed in float64: the loss within 1e-3 (relative),
# each gradient within 2**-6 of its largest element (the logits are rounded to
# bfloat16 once, the chunk gradient once, d_weight after each chunk).
BF16_LOSS_RTOL = 1e-3
BF16_GRAD_TOL = 2.0**-6


def bf16_problem(rng, n=300, h=64, v=1000):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = ml_dtypes.bfloat16
    hidden = rng.standard_normal((n, h)).astype(bf16)
    linear_weight = (rng.standard_normal((v, h)) * 0.3).astype(bf16)
    linear_bias = rng.standard_normal(v).astype(bf16)
    target = rng.integers(0, v, n)
    target[::7] = -100
    return hidden, linear_weight, linear_bias, target


def relative_to_largest(got, want):
    want = np.asarray(want, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


@pytest.mark.parametrize("chunk_size", [None, 64, 1, (64, 300)])
@pytest.mark.parametrize("gemms", ["torch", "float32-fallback"])
def test_bfloat16_within_stated_accuracy_of_float64(monkeypatch, chunk_size, gemms):
    if gemms == "torch":
        pytest.importorskip("torch")
    else:  # without PyTorch: hidden and linear_weight converted to float32
        monkeypatch.setattr(_blas, "torch_or_none", lambda: None)
    rng = np.random.default_rng(21)
    hidden, linear_weight, linear_bias, target = bf16_problem(rng)
    options = {"linear_bias": linear_bias, "label_smoothing": 0.1}
    exact = fastxent.reference.linear_cross_entropy_with_grad(
        hidden.astype(np.float64), linear_weight.astype(np.float64), target,
        **{**options, "linear_bias": linear_bias.astype(np.float64)})
    before = [hidden.copy(), linear_weight.copy()]
    results = fastxent.linear_cross_entropy_with_grad(hidden, linear_weight, target,
                                                      chunk_size=chunk_size, **options)
    assert results[0].dtype == np.float32
    assert all(r.dtype == hidden.dtype for r in results[1:])  # bfloat16 gradients
    assert abs(float(results[0]) - exact[0]) <= BF16_LOSS_RTOL * abs(exact[0])
    for name, got, want in zip(("d_hidden", "d_weight", "d_bias"), results[1:], exact[1:]):
        assert relative_to_largest(got, want) <= BF16_GRAD_TOL, name
    loss = fastxent.linear_cross_entropy(hidden, linear_weight, target, chunk_size=chunk_size,
                                         **options)
    assert abs(float(loss) - exact[0]) <= BF16_LOSS_RTOL * abs(exact[0])
    for arr, copy in zip((hidden, linear_weight), before):  # inputs untouched
        np.testing.assert_array_equal(arr.view(np.int16), copy.view(np.int16))


def test_bfloat16_no_less_accurate_than_torchs_bfloat16(torch):
    """PyTorch's own F.linear_cross_entropy in bfloat16 (eager), same inputs,
    both against float64: fastxent's error at most PyTorch's (plus 2**-9, one
    bfloat16 rounding, for the ties of rounding)."""
    rng = np.random.default_rng(22)
    hidden, linear_weight, _, target = bf16_problem(rng, n=257, h=48, v=700)
    exact = fastxent.reference.linear_cross_entropy_with_grad(
        hidden.astype(np.float64), linear_weight.astype(np.float64), target)
    ht = torch.from_numpy(hidden.astype(np.float32)).bfloat16().requires_grad_()
    wt = torch.from_numpy(linear_weight.astype(np.float32)).bfloat16().requires_grad_()
    loss_t = torch.nn.functional.linear_cross_entropy(ht, wt, torch.from_numpy(target))
    loss_t.backward()
    theirs = [loss_t.float().item(), ht.grad.float().numpy(), wt.grad.float().numpy()]
    ours = fastxent.linear_cross_entropy_with_grad(hidden, linear_weight, target, chunk_size=100)
    for name, mine, torch_value, want in zip(("loss", "d_hidden", "d_weight"), ours, theirs,
                                             exact):
        assert (relative_to_largest(mine, want)
                <= relative_to_largest(torch_value, want) + 2.0**-9), name


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bench_paths_compute_the_same_loss(torch, dtype, capsys):
    """python -m fastxent bench --ops linear-xent times the same loss on every
    path (fastxent, its PyTorch bridge, the unfused NumPy route, PyTorch eager
    and chunked), and its command line runs."""
    from fastxent.bench import linear_xent

    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    w = linear_xent.Workload(64, 8, 100, dtype, ignored=0.2)
    losses = {}
    for name in ("fastxent", "fastxent-torch", "numpy-unfused", "torch-eager", "torch-chunked"):
        try:
            result = linear_xent.make_path(name, w)()
        except ImportError:
            assert dtype == "bfloat16" and name in linear_xent.NUMPY_ONLY
            continue
        loss = result[0] if isinstance(result, tuple) else result
        losses[name] = float(loss.float() if hasattr(loss, "float") else loss)
    exact = fastxent.reference.linear_cross_entropy(
        w.hidden.astype(np.float64), w.weight.astype(np.float64), w.target)
    for name, loss in losses.items():
        assert loss == pytest.approx(exact, rel=1e-5 if dtype == "float32" else 1e-2), name
    assert linear_xent.main(["--shapes", "64,8,100", "--rounds", "1", "--no-memory",
                             "--dtype", dtype, "--paths", "fastxent,torch-gemms"]) == 0
    assert "fastxent" in capsys.readouterr().out


# Peak resident memory of one call, in a fresh process (after a warm-up call,
# the peak reset through /proc/self/clear_refs): everything counts, NumPy's,
# OpenBLAS's and PyTorch's allocations alike (tracemalloc sees NumPy's only).
RSS_SCRIPT = """
import ctypes, gc, json, sys
import numpy as np
import fastxent
from fastxent import _linear
from fastxent.bench.linear_xent import Workload, _status

n, h, v, dtype, chunk_bytes = sys.argv[1:]
_linear.CHUNK_BYTES = int(chunk_bytes)
fastxent.set_num_threads(2)
w = Workload(int(n), int(h), int(v), dtype, ignored=0.1)
def call():
    return fastxent.linear_cross_entropy_with_grad(w.hidden, w.weight, w.target)
call()
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = _status("VmRSS")
result = call()
print(json.dumps({"extra": _status("VmHWM") - before, "grads": w.grad_bytes}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"),
                    reason="peak RSS reset through /proc/self/clear_refs: Linux only")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_peak_rss_beyond_the_gradients_is_a_tenth_of_the_logits(dtype):
    """4096 x 64 -> 16384 classes: the unfused logits take 256 MiB (float32);
    with an 8 MiB chunk budget the call's peak resident memory beyond its
    gradients (4.5 MiB) stays under a tenth of that."""
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
        pytest.importorskip("torch")
    n, h, v = 4096, 64, 16384
    logits_bytes = n * v * 4
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    package_root = str(Path(fastxent.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(n), str(h), str(v), dtype,
                           str(8 * 2**20)], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    beyond = measured["extra"] - measured["grads"]
    assert beyond <= logits_bytes / 10, (beyond / 2**20, "MiB")
