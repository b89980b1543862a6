"""float16 and bfloat16 logits (ml_dtypes.bfloat16, where installed), read
directly by the kernels and computed in float32; and the soft cap of the
logits, computed in the kernels' row pass.

The accuracy promised (docs/conventions.md): a result in the half type is
the float32 computation rounded once to nearest, so it lies within half an
ulp of the half type, plus float32's error, of the float64 computation of the
same half inputs."""

import subprocess
import sys

import numpy as np
import pytest
from fastxent_testing import torch_xent

import fastxent
from fastxent import _config

kernels = _config._compiled
compiled_only = pytest.mark.skipif(kernels is None, reason="the compiled extension is not built")

HALVES = [pytest.param(np.dtype(np.float16), id="float16")]
try:
    import ml_dtypes

    HALVES.append(pytest.param(np.dtype(ml_dtypes.bfloat16), id="bfloat16"))
except ImportError:  # the optional dependency: bfloat16 is not there to test
    HALVES.append(pytest.param(None, id="bfloat16",
                               marks=pytest.mark.skip(reason="ml_dtypes is not installed")))

# float32's own error on the way, relative to the largest value in the result
# (sums of exps in float32 blocks, the exp to about an ulp)
F32_SLACK = 4e-6


def ulp_above(values, dtype):
    """The gap from |v| (of dtype) to the next value of dtype above it, in float64."""
    v = np.abs(np.asarray(values).astype(dtype))
    bits = v.reshape(-1).view(np.uint16)
    above = np.minimum(bits.astype(np.uint32) + 1, 0x7FFF).astype(np.uint16).view(dtype)
    return (above.astype(np.float64) - v.reshape(-1).astype(np.float64)).reshape(v.shape)


def assert_rounded_from(got, want, dtype, slack=F32_SLACK):
    """got (of the half dtype) is want (float64) rounded to dtype from a float32
    computation: within half an ulp of dtype, plus slack x the largest |want|."""
    assert got.dtype == dtype
    got64 = np.asarray(got).astype(np.float64)
    want = np.asarray(want, np.float64)
    bound = 0.5 * ulp_above(got, dtype) + slack * max(np.max(np.abs(want), initial=0), 1e-30)
    err = np.abs(got64 - want)
    assert np.all(err <= bound), (
        f"worst {np.max(err - bound)} beyond the bound at {np.argmax(err - bound)}: "
        f"{got64.reshape(-1)[np.argmax(err - bound)]} against "
        f"{want.reshape(-1)[np.argmax(err - bound)]}")


def half_logits(rng, shape, dtype, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(dtype)


SHAPES = [(64, 10), (37, 1000), (3, 9000)]  # short rows; rows; rows longer than a load chunk


# ------------------------------------------------------------- against float64


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("options", [
    {}, {"reduction": "none"}, {"reduction": "sum", "label_smoothing": 0.1},
    {"weight": True, "ignore_index": 1}, {"probabilities": True},
], ids=lambda o: ",".join(o) or "plain")
def test_cross_entropy_is_the_float64_result_rounded(backend, torch, rng, shape, dtype, options):
    x = half_logits(rng, shape, dtype)
    options = dict(options)
    n, c = shape
    if options.pop("probabilities", False):
        target = rng.dirichlet(np.ones(c), n).astype(np.float32)
    else:
        target = rng.integers(0, c, n)
    if options.get("weight"):
        options["weight"] = rng.uniform(0.5, 2, c).astype(np.float32)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, **options)
    want_loss, want_grad = torch_xent(torch, x.astype(np.float64), target, **options)
    assert np.asarray(loss).dtype == dtype
    assert_rounded_from(np.asarray(loss), want_loss, dtype)
    assert_rounded_from(grad, want_grad, dtype)
    # the loss alone is the same
    alone = fastxent.cross_entropy(x, target, **options)
    np.testing.assert_array_equal(np.asarray(alone).astype(np.float32),
                                  np.asarray(loss).astype(np.float32))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", HALVES)
def test_nll_loss_of_half_log_probabilities(backend, torch, rng, dtype):
    logp = np.log(rng.dirichlet(np.ones(20), 50)).astype(np.float32).astype(dtype)
    y = rng.integers(0, 20, 50)
    w = rng.uniform(0.5, 2, 20)
    loss, grad = fastxent.nll_loss_with_grad(logp, y, weight=w)
    xt = torch.tensor(logp.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.nll_loss(xt, torch.tensor(y), weight=torch.tensor(w))
    ref.backward()
    assert_rounded_from(np.asarray(loss), ref.item(), dtype)
    assert_rounded_from(grad, xt.grad.numpy(), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", HALVES)
def test_softmax_log_softmax_logsumexp_of_half_rows(backend, torch, rng, shape, dtype):
    x = half_logits(rng, shape, dtype)
    xt = torch.tensor(x.astype(np.float64))
    assert_rounded_from(fastxent.softmax(x), torch.softmax(xt, -1).numpy(), dtype)
    # log_softmax and logsumexp: float32's error relative to the row's values
    assert_rounded_from(fastxent.log_softmax(x), torch.log_softmax(xt, -1).numpy(), dtype)
    assert_rounded_from(fastxent.logsumexp(x), torch.logsumexp(xt, -1).numpy(), dtype)
    # several axes at once, and out= of the half dtype
    out = np.empty_like(x)
    assert fastxent.softmax(x, axis=None, out=out) is out
    assert_rounded_from(out, torch.softmax(xt.reshape(-1), 0).numpy().reshape(shape), dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", HALVES)
def test_the_side_outputs_and_options_of_half_logits(backend, torch, rng, dtype):
    x = half_logits(rng, (40, 30), dtype)
    y = rng.integers(0, 30, 40)
    sw = rng.uniform(0.5, 2, 40)
    loss, grad, lse, acc = fastxent.cross_entropy_with_grad(
        x, y, z_loss=1e-3, softcap=4.0, sample_weight=sw, return_lse=True, return_accuracy=True)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    capped = 4.0 * torch.tanh(xt / 4.0)
    lse_t = torch.logsumexp(capped, -1)
    rows = torch.nn.functional.cross_entropy(capped, torch.tensor(y), reduction="none")
    rows = (rows + 1e-3 * lse_t**2) * torch.tensor(sw)
    ref = rows.sum() / sw.sum()
    ref.backward()
    assert_rounded_from(np.asarray(loss), ref.item(), dtype)
    assert_rounded_from(grad, xt.grad.numpy(), dtype)
    assert_rounded_from(lse, lse_t.detach().numpy(), dtype)
    right = (capped.argmax(-1).numpy() == y)
    assert np.asarray(acc).dtype == dtype
    assert float(acc) == pytest.approx(np.sum(sw * right) / np.sum(sw), rel=2**-7)


# ------------------------------------------------- against PyTorch's own half


@pytest.mark.torch
@pytest.mark.parametrize("dtype", HALVES)
def test_as_pytorch_computes_in_the_half_type(backend, torch, rng, dtype):
    """PyTorch's CPU cross_entropy on half tensors: the same numbers within
    the half type's rounding (PyTorch rounds its intermediate log_softmax to
    the half type too, so a few ulps apart)."""
    x = half_logits(rng, (128, 500), dtype)
    y = rng.integers(0, 500, 128)
    torch_dtype = torch.float16 if dtype == np.float16 else torch.bfloat16
    xt = torch.tensor(x.astype(np.float32)).to(torch_dtype).requires_grad_()
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(y))
    ref.backward()
    loss, grad = fastxent.cross_entropy_with_grad(x, y)
    eps = 2.0**-10 if dtype == np.float16 else 2.0**-7
    assert float(loss) == pytest.approx(ref.item(), rel=4 * eps)
    np.testing.assert_allclose(grad.astype(np.float32), xt.grad.float().numpy(),
                               rtol=8 * eps, atol=8 * eps / 500)


# --------------------------------------------- the float32 kernels, to the bit


@compiled_only
@pytest.mark.parametrize("shape", SHAPES + [(5, 7)], ids=str)
@pytest.mark.parametrize("dtype", HALVES)
def test_nan_and_inf_go_as_in_float32(shape, dtype, rng):
    """Half rows are the float32 rows they widen to: the per-row losses and the
    gradient are the float32 kernels' (on the widened rows) rounded to the half
    type, NaN and infinities included."""
    x = half_logits(rng, shape, dtype)
    flat = x.reshape(-1)
    k = rng.choice(flat.size, size=max(3, flat.size // 50), replace=False)
    flat[k[0::3]] = np.nan
    flat[k[1::3]] = np.inf
    flat[k[2::3]] = -np.inf
    y = rng.integers(0, shape[1], shape[0])
    wide = x.astype(np.float32)
    for call in (
        lambda a: fastxent.cross_entropy_with_grad(a, y, reduction="none"),
        lambda a: fastxent.cross_entropy_with_grad(a, y, reduction="none", label_smoothing=0.2),
        lambda a: (fastxent.softmax(a), fastxent.log_softmax(a), fastxent.logsumexp(a)),
    ):
        with np.errstate(all="ignore"):
            got, want = call(x), call(wide)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == dtype
            np.testing.assert_array_equal(g.view(np.uint16), w.astype(dtype).view(np.uint16))


@compiled_only
@pytest.mark.parametrize("dtype", HALVES)
def test_the_same_bits_for_any_thread_count(dtype, rng):
    x = half_logits(rng, (3001, 67), dtype)
    y = rng.integers(0, 67, 3001)
    long_rows = half_logits(rng, (40, 9000), dtype)
    y_long = rng.integers(0, 9000, 40)

    def run():
        return [*fastxent.cross_entropy_with_grad(x, y, softcap=5.0, label_smoothing=0.1),
                *fastxent.cross_entropy_with_grad(x[:, :10].copy(), y % 10),
                *fastxent.cross_entropy_with_grad(long_rows, y_long),
                fastxent.softmax(x), fastxent.logsumexp(long_rows),
                *fastxent.binary_cross_entropy_with_logits_with_grad(
                    long_rows, (long_rows > 0).astype(dtype))]

    with fastxent.num_threads(1):
        expected = run()
    for n in (2, 3, 5):
        with fastxent.num_threads(n):
            for got, want in zip(run(), expected, strict=True):
                np.testing.assert_array_equal(np.atleast_1d(got).view(np.uint8),
                                              np.atleast_1d(want).view(np.uint8))


# ---------------------------------------------------------- arguments, memory


@pytest.mark.parametrize("dtype", HALVES)
def test_out_in_place_and_the_input_left_alone(backend, rng, dtype):
    x = half_logits(rng, (30, 50), dtype)
    y = rng.integers(0, 50, 30)
    kept = x.copy()
    loss, grad = fastxent.cross_entropy_with_grad(x, y)
    np.testing.assert_array_equal(x.view(np.uint16), kept.view(np.uint16))
    out = np.empty_like(x)
    _, same = fastxent.cross_entropy_with_grad(x, y, out=out)
    assert same is out
    np.testing.assert_array_equal(out.view(np.uint16), grad.view(np.uint16))
    # in place over the logits, and over a non-contiguous view (copied back)
    _, over = fastxent.cross_entropy_with_grad(x, y, out=x)
    assert over is x
    np.testing.assert_array_equal(x.view(np.uint16), grad.view(np.uint16))
    t = kept.T.copy().T  # Fortran order
    _, g_t = fastxent.cross_entropy_with_grad(t, y)
    np.testing.assert_array_equal(g_t.view(np.uint16), grad.view(np.uint16))
    with pytest.raises(TypeError, match=r"out: expected dtype " + str(dtype)):
        fastxent.cross_entropy_with_grad(kept, y, out=np.empty(x.shape, np.float32))


@pytest.mark.parametrize("dtype", HALVES)
def test_weights_and_targets_in_half_or_wider(backend, rng, dtype):
    """Class weights, probability targets and sample weights of any float
    dtype: taken in float32 (float64 for sample_weight), the same results."""
    x = half_logits(rng, (20, 8), dtype)
    p = rng.dirichlet(np.ones(8), 20)
    w = rng.uniform(0.5, 2, 8)
    y = rng.integers(0, 8, 20)
    for wide, narrow in ((p.astype(np.float32), p.astype(np.float32).astype(dtype)),):
        a = fastxent.cross_entropy(x, narrow.astype(np.float32))
        b = fastxent.cross_entropy(x, narrow)
        assert a.dtype == b.dtype == dtype and a == b
        assert fastxent.cross_entropy(x, wide).dtype == dtype
    w32 = w.astype(np.float32)
    assert fastxent.cross_entropy(x, y, weight=w) == fastxent.cross_entropy(x, y, weight=w32)
    assert (fastxent.cross_entropy(x, y, weight=w32.astype(dtype))
            == fastxent.cross_entropy(x, y, weight=w32.astype(dtype).astype(np.float32)))


def test_import_fastxent_does_not_import_ml_dtypes():
    code = "import sys, fastxent; print('ml_dtypes' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


# ------------------------------------------------------- the kernels' pieces


@pytest.fixture(params=["baseline", "avx2", "avx512"])
def isa(request):
    """Runs the test with the row code of each instruction set this CPU has."""
    if kernels is None:
        pytest.skip("the compiled extension is not built")
    previous = _config._state["isa"].split()[0]
    in_use = _config.set_isa(request.param)
    try:
        if not in_use.startswith(request.param):
            pytest.skip(f"this CPU has no {request.param} (capped at it, {in_use} runs)")
        yield in_use
    finally:
        _config.set_isa(previous)


def midpoints(every):
    """The float32 values halfway between neighbouring finite values of every."""
    with np.errstate(invalid="ignore"):  # the NaNs of bfloat16
        wide = every.astype(np.float64)
    wide = np.sort(wide[np.isfinite(wide)])
    return ((wide[:-1] + wide[1:]) / 2).astype(np.float32)


@compiled_only
@pytest.mark.parametrize("dtype", HALVES)
def test_conversions_are_exact_and_round_to_nearest_even(isa, dtype, rng):
    every = np.arange(65536, dtype=np.uint16).view(dtype)
    widened = kernels._convert(every, np.float32)
    want = every.astype(np.float32)
    same = (widened.view(np.uint32) == want.view(np.uint32)) | (np.isnan(widened) & np.isnan(want))
    assert same.all()
    floats = np.concatenate([
        rng.integers(0, 2**32, 200_000, dtype=np.uint32).view(np.float32),
        (rng.standard_normal(200_000) * 10.0 ** rng.integers(-12, 8, 200_000)).astype(np.float32),
        # the midpoints between neighbouring half values (ties to even)
        midpoints(every),
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.996, 65520, 3.4e38,
                  2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 1e-45], np.float32),
    ])
    with np.errstate(all="ignore"):
        want = floats.astype(dtype)
        got = kernels._convert(floats, dtype)
        nan = np.isnan(floats)
    np.testing.assert_array_equal(got[~nan].view(np.uint16), want[~nan].view(np.uint16))
    assert np.isnan(got[nan].astype(np.float32)).all()


@compiled_only
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_and_its_derivative(isa, dtype):
    """fx_tanh within 1 ulp (float32) or 2 ulps (float64) of np.tanh over a
    dense grid, and the cap's derivative 1 - tanh^2 to a relative accuracy
    where tanh itself has rounded to +-1."""
    u = np.concatenate([np.linspace(-30, 30, 400_001), np.geomspace(1e-30, 400, 50_001),
                        -np.geomspace(1e-30, 400, 50_001),
                        [0.0, -0.0, 0.625, -0.625, np.nextafter(0.625, 1)]]).astype(dtype)
    t, slope = kernels._tanh(u)
    want = np.tanh(u.astype(np.float64)).astype(dtype)  # float32's: correctly rounded
    ulps = np.abs(t - want) / np.spacing(np.abs(want))
    assert ulps.max() <= (1 if dtype == np.float32 else 2)
    with np.errstate(over="ignore"):
        want_slope = 1 / np.cosh(u.astype(np.float64)) ** 2
    tiny = np.finfo(dtype).tiny
    normal = want_slope > tiny * 2**8  # below, flushed to 0 as the kernels' exp
    assert np.all(np.abs(slope[normal] - want_slope[normal]) <= 4 * np.finfo(dtype).eps
                  * want_slope[normal])
    assert np.all(slope[~normal] <= tiny * 2**8)
    t, slope = kernels._tanh(np.array([np.inf, -np.inf, np.nan], dtype))
    np.testing.assert_array_equal(t[:2], [1, -1])
    np.testing.assert_array_equal(slope[:2], [0, 0])
    assert np.isnan(t[2]) and np.isnan(slope[2])


@pytest.mark.torch
@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("options", [{}, {"reduction": "none"}, {"weights": True},
                                     {"target_as_logits": True}],
                         ids=lambda o: ",".join(o) or "plain")
def test_binary_cross_entropy_with_logits_of_half_logits(backend, torch, rng, dtype, options):
    """Half logits (and targets of their dtype, read as they are; others in
    float32), 40001 elements: several blocks and load chunks."""
    options = dict(options)
    x = half_logits(rng, (157, 255), dtype)[:, :-1].copy()
    t = rng.random(x.shape).astype(np.float32)
    if options.pop("target_as_logits", False):
        t = t.astype(dtype)
    if options.pop("weights", False):
        options["weight"] = rng.uniform(0.5, 2, x.shape[1]).astype(np.float32)
        options["pos_weight"] = rng.uniform(0.5, 2, x.shape).astype(np.float32)
    loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(x, t, **options)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    torch_options = {k: torch.tensor(v.astype(np.float64)) for k, v in options.items()
                     if k != "reduction"}
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t.astype(np.float64)), reduction=options.get("reduction", "mean"),
        **torch_options)
    ref.sum().backward()
    assert_rounded_from(np.asarray(loss), ref.detach().numpy(), dtype)
    assert_rounded_from(grad, xt.grad.numpy(), dtype)


@compiled_only
@pytest.mark.parametrize("dtype", HALVES + [pytest.param(np.dtype(np.float32), id="float32")])
def test_streamed_stores_give_the_same_bits(dtype, rng):
    """Outputs large enough to stream (the threshold lowered here) are the
    bits of the same outputs stored normally: half rows, and soft-capped ones."""
    x = half_logits(rng, (301, 1000), dtype)[:, 3:]  # rows that start off the cache lines
    x = np.ascontiguousarray(x)
    y = rng.integers(0, x.shape[1], x.shape[0])

    def run():
        return [*fastxent.cross_entropy_with_grad(x, y, softcap=7.0),
                fastxent.softmax(x) if dtype.itemsize == 2 else fastxent.softmax(x[:, :5])]

    normal = run()
    previous = kernels.set_stream_min_bytes(0)
    try:
        if previous is None:
            pytest.skip("no streaming stores on this platform")
        streamed = run()
    finally:
        if previous is not None:
            kernels.set_stream_min_bytes(previous)
    for got, want in zip(streamed, normal, strict=True):
        np.testing.assert_array_equal(np.atleast_1d(got).view(np.uint8),
                                      np.atleast_1d(want).view(np.uint8))
