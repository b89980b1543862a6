"""fastxent.torch.linear_cross_entropy against PyTorch's F.linear_cross_entropy
and linear + F.cross_entropy: values and gradients (of random grad_outputs)
for every option, gradcheck in float64, PyTorch's options, bfloat16 against
float64, fallbacks, double backward and torch.compile."""

import inspect
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: fastxent.torch untested")
import torch.nn.functional as F  # noqa: E402  (after the importorskip)

import fastxent.torch as ft  # noqa: E402

pytestmark = pytest.mark.torch
TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-6},
       torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


def problem(n=37, h=6, v=23, dtype=torch.float64, probabilities=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=gen, dtype=dtype)
    linear_weight = torch.randn(v, h, generator=gen, dtype=dtype) * 0.7
    linear_bias = torch.randn(v, generator=gen, dtype=dtype)
    class_weight = torch.rand(v, generator=gen, dtype=dtype) + 0.3
    if probabilities:
        target = torch.softmax(torch.randn(n, v, generator=gen, dtype=dtype), dim=1)
    else:
        target = torch.randint(0, v, (n,), generator=gen)
        target[1::4] = -100  # some samples ignored
    return hidden, linear_weight, linear_bias, class_weight, target


def loss_and_grads(fn, hidden, linear_weight, target, linear_bias=None, **options):
    """(loss, d_hidden, d_weight, d_bias or None) of fn, the gradients those of
    sum(loss * upstream) for fixed upstream weights."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None
              for t in (hidden, linear_weight, linear_bias)]
    loss = fn(leaves[0], leaves[1], target, linear_bias=leaves[2], **options)
    upstream = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape)
    wanted = [t for t in leaves if t is not None]
    grads = list(torch.autograd.grad(loss, wanted, upstream)) + [None]
    return [loss.detach()] + grads[:3]


def assert_all_close(got, want, dtype):
    for name, g, w in zip(("loss", "d_hidden", "d_weight", "d_bias"), got, want):
        if w is None:
            assert g is None, name
            continue
        assert g.dtype == dtype and g.shape == w.shape, name
        torch.testing.assert_close(g, w, **TOL[dtype], msg=name)


OPTIONS = [{}, {"label_smoothing": 0.2}, {"weight": "class_weight"},
           {"weight": "class_weight", "label_smoothing": 0.1, "ignore_index": 3},
           {"linear_bias": "linear_bias"}, {"linear_bias": "linear_bias", "weight": "class_weight"}]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
@pytest.mark.parametrize("chunk_size", [None, 5, (4, 7)])
def test_matches_torchs_linear_cross_entropy(dtype, reduction, options, chunk_size):
    hidden, linear_weight, linear_bias, class_weight, target = problem(dtype=dtype)
    named = {"class_weight": class_weight, "linear_bias": linear_bias}
    options = {k: named.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    options["reduction"] = reduction
    if "ignore_index" in options:  # the ignored samples marked with it
        target = torch.where(target == -100, options["ignore_index"], target)
    expected = loss_and_grads(F.linear_cross_entropy, hidden, linear_weight, target, **options)
    got = loss_and_grads(ft.linear_cross_entropy, hidden, linear_weight, target,
                         chunk_size=chunk_size, backend="fastxent", **options)
    assert_all_close(got, expected, dtype)
    # ... and PyTorch written out: linear, then cross_entropy
    bias = options.pop("linear_bias", None)

    def unfused(h, w, t, linear_bias=None, **kw):
        return F.cross_entropy(F.linear(h, w, linear_bias), t, **kw)
    written_out = loss_and_grads(unfused, hidden, linear_weight, target, bias, **options)
    assert_all_close(got, written_out, dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_match_torch(reduction):
    hidden, linear_weight, linear_bias, class_weight, target = problem(probabilities=True)
    for options in ({}, {"weight": class_weight, "label_smoothing": 0.1,
                         "linear_bias": linear_bias}):
        expected = loss_and_grads(F.linear_cross_entropy, hidden, linear_weight, target,
                                  reduction=reduction, **options)
        got = loss_and_grads(ft.linear_cross_entropy, hidden, linear_weight, target,
                             reduction=reduction, chunk_size=6, backend="fastxent", **options)
        assert_all_close(got, expected, torch.float64)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_float64(reduction):
    hidden, linear_weight, linear_bias, class_weight, target = problem(n=9, h=3, v=7)
    inputs = tuple(t.requires_grad_() for t in (hidden, linear_weight, linear_bias))

    def fn(h, w, b):
        return ft.linear_cross_entropy(h, w, target, linear_bias=b, weight=class_weight,
                                       reduction=reduction, label_smoothing=0.05,
                                       chunk_size=4, backend="fastxent")
    assert torch.autograd.gradcheck(fn, inputs)


def test_only_the_inputs_that_require_grad_get_one():
    hidden, linear_weight, linear_bias, _, target = problem()
    hidden.requires_grad_()  # a frozen head: linear_weight and linear_bias need none
    loss = ft.linear_cross_entropy(hidden, linear_weight, target, linear_bias=linear_bias,
                                   backend="fastxent")
    loss.backward()
    expected_hidden = hidden.detach().clone().requires_grad_()
    F.linear_cross_entropy(expected_hidden, linear_weight, target,
                           linear_bias=linear_bias).backward()
    torch.testing.assert_close(hidden.grad, expected_hidden.grad, **TOL[torch.float64])
    assert linear_weight.grad is None and linear_bias.grad is None
    # no input requiring grad: the loss alone, no graph
    with torch.no_grad():
        plain = ft.linear_cross_entropy(hidden, linear_weight, target, backend="fastxent")
    assert plain.grad_fn is None
    torch.testing.assert_close(plain, F.linear_cross_entropy(hidden.detach(), linear_weight,
                                                             target), **TOL[torch.float64])


def test_unbatched_input():
    hidden, linear_weight, linear_bias, _, target = problem(n=1)
    for reduction in ("mean", "none"):
        expected = loss_and_grads(F.linear_cross_entropy, hidden[0], linear_weight,
                                  target[0].clone().fill_(5), linear_bias, reduction=reduction)
        got = loss_and_grads(ft.linear_cross_entropy, hidden[0], linear_weight,
                             target[0].clone().fill_(5), linear_bias, reduction=reduction,
                             backend="fastxent")
        assert_all_close(got, expected, torch.float64)


def test_signature_is_pytorchs_plus_two_keyword_options():
    ours = inspect.signature(ft.linear_cross_entropy).parameters
    theirs = inspect.signature(F.linear_cross_entropy).parameters
    assert list(ours)[:len(theirs)] == list(theirs)
    for name, param in theirs.items():
        assert ours[name].default == param.default and ours[name].kind == param.kind, name
    assert list(ours)[len(theirs):] == ["chunk_size", "backend"]


def test_pytorchs_options_are_accepted_and_batch_chunk_size_is_the_chunk():
    hidden, linear_weight, linear_bias, _, target = problem(dtype=torch.float32)
    expected = loss_and_grads(F.linear_cross_entropy, hidden, linear_weight, target)
    for options in (torch.nn.LinearCrossEntropyOptions(),
                    torch.nn.LinearCrossEntropyOptions(batch_chunk_size=3),
                    torch.nn.LinearCrossEntropyOptions(acc_policy="compact")):
        got = loss_and_grads(ft.linear_cross_entropy, hidden, linear_weight, target,
                             options=options, backend="fastxent")
        assert_all_close(got, expected, torch.float32)
    # batch_chunk_size reaches the chunking: an invalid one is refused as chunk_size is
    with pytest.raises(ValueError, match="chunk_size"):
        ft.linear_cross_entropy(hidden, linear_weight, target, backend="fastxent",
                                options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=0))


def test_inputs_are_not_modified():
    hidden, linear_weight, linear_bias, class_weight, target = problem(dtype=torch.float32)
    leaves = [t.requires_grad_() for t in (hidden, linear_weight, linear_bias)]
    before = [t.detach().clone() for t in (*leaves, class_weight, target)]
    for reduction in ("mean", "none"):
        loss = ft.linear_cross_entropy(*leaves[:2], target, linear_bias=leaves[2],
                                       weight=class_weight, reduction=reduction,
                                       backend="fastxent")
        loss.sum().backward()
    for t, copy in zip((*leaves, class_weight, target), before):
        assert torch.equal(t.detach(), copy)


def test_bfloat16_within_stated_accuracy_of_float64():
    """bfloat16 tensors: GEMMs in bfloat16, the loss computed in float32 (then
    rounded to bfloat16, PyTorch's result dtype), gradients in bfloat16; each
    within 2**-6 of its largest value of the float64 computation on the same
    bfloat16 values, and no further from it than PyTorch's own bfloat16
    F.linear_cross_entropy plus one bfloat16 rounding (2**-9)."""
    pytest.importorskip("ml_dtypes")
    hidden, linear_weight, linear_bias, _, target = problem(n=300, h=64, v=1000,
                                                            dtype=torch.float32)
    linear_weight = linear_weight * (0.3 / 0.7)  # logits of standard deviation ~2.4
    bf16 = [t.bfloat16() for t in (hidden, linear_weight, linear_bias)]
    exact = loss_and_grads(F.linear_cross_entropy, *[t.double() for t in bf16[:2]], target,
                           bf16[2].double(), label_smoothing=0.1)
    got = loss_and_grads(ft.linear_cross_entropy, *bf16[:2], target, bf16[2],
                         label_smoothing=0.1, chunk_size=64, backend="fastxent")
    theirs = loss_and_grads(F.linear_cross_entropy, *bf16[:2], target, bf16[2],
                            label_smoothing=0.1)
    for name, g, t, e in zip(("loss", "d_hidden", "d_weight", "d_bias"), got, theirs, exact):
        assert g.dtype == torch.bfloat16, name
        error = ((g.double() - e).abs().max() / e.abs().max()).item()
        torch_error = ((t.double() - e).abs().max() / e.abs().max()).item()
        assert error <= 2.0**-6 and error <= torch_error + 2.0**-9, (name, error, torch_error)


def test_fallbacks_give_pytorchs_result_and_warn_under_fastxent():
    hidden, linear_weight, _, _, target = problem(dtype=torch.float32)
    half = (hidden.half(), linear_weight.half())
    probabilities = torch.softmax(torch.randn(37, 23), 1).requires_grad_()
    cases = [(half, target, "dtype torch.float16"),
             ((hidden, linear_weight.double()), target, "different dtypes"),
             ((hidden, linear_weight), probabilities, "requires grad"),
             ((hidden[None], linear_weight), target[None], "1 or 2 dims")]
    ft._warned.clear()
    for (h, w), t, reason in cases:
        try:
            expected = F.linear_cross_entropy(h, w, t)
        except RuntimeError as exc:  # PyTorch refuses it: so does the bridge, the same way
            with pytest.raises(RuntimeError, match=str(exc)[:30]):
                ft.linear_cross_entropy(h, w, t, backend="fastxent")
            continue
        with pytest.warns(RuntimeWarning, match=reason):
            got = ft.linear_cross_entropy(h, w, t, backend="fastxent")
        torch.testing.assert_close(got, expected)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "auto" falls back silently
            torch.testing.assert_close(ft.linear_cross_entropy(h, w, t), expected)
    torch.testing.assert_close(ft.linear_cross_entropy(hidden, linear_weight, target,
                                                       backend="torch"),
                               F.linear_cross_entropy(hidden, linear_weight, target))


def test_double_backward_differentiates_pytorchs_function():
    hidden, linear_weight, _, _, target = problem(n=8, h=3, v=5)

    def first_grads(fn, **kw):
        h, w = hidden.clone().requires_grad_(), linear_weight.clone().requires_grad_()
        loss = fn(h, w, target, **kw)
        dh, dw = torch.autograd.grad(loss, (h, w), create_graph=True)
        return torch.autograd.grad((dh**2).sum() + (dw**2).sum(), (h, w))

    with pytest.warns(RuntimeWarning, match="double backward"):
        ft._warned.discard("double backward")
        got = first_grads(ft.linear_cross_entropy, backend="fastxent")
    for g, e in zip(got, first_grads(F.linear_cross_entropy)):
        torch.testing.assert_close(g, e, **TOL[torch.float64])


@pytest.mark.parametrize("backend", ["auto", "fastxent"])
def test_under_torch_compile(backend):
    """"auto" leaves the loss to the compiler; "fastxent" runs the fused path
    (a graph break around it): either way no crash, and PyTorch's values."""
    hidden, linear_weight, linear_bias, _, target = problem(dtype=torch.float32)

    def step(h, w, b):
        return ft.linear_cross_entropy(h, w, target, linear_bias=b, backend=backend) * 2
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a graph break's notice
        got = loss_and_grads(lambda h, w, t, linear_bias: torch.compile(step)(h, w, linear_bias),
                             hidden, linear_weight, target, linear_bias)
    expected = loss_and_grads(lambda h, w, t, linear_bias: F.linear_cross_entropy(
        h, w, t, linear_bias=linear_bias) * 2, hidden, linear_weight, target, linear_bias)
    assert_all_close(got, expected, torch.float32)


def test_auto_leaves_small_heads_to_pytorch(monkeypatch):
    """Below AUTO_MIN_ELEMENTS logits "auto" runs PyTorch's function (its node
    in the graph), at or above it the fused path (fastxent's node)."""
    hidden, linear_weight, _, _, target = problem(dtype=torch.float32)
    hidden.requires_grad_()
    monkeypatch.setattr(ft, "AUTO_MIN_ELEMENTS", 37 * 23 + 1)
    small = ft.linear_cross_entropy(hidden, linear_weight, target)
    monkeypatch.setattr(ft, "AUTO_MIN_ELEMENTS", 37 * 23)
    fused = ft.linear_cross_entropy(hidden, linear_weight, target)
    assert "FusedLinearLoss" not in type(small.grad_fn).__name__
    assert "FusedLinearLoss" in type(fused.grad_fn).__name__
    torch.testing.assert_close(small, fused)


def test_bad_arguments_raise_naming_them():
    hidden, linear_weight, _, _, target = problem()
    with pytest.raises(ValueError, match="backend"):
        ft.linear_cross_entropy(hidden, linear_weight, target, backend="cuda")
    with pytest.raises(ValueError, match="label_smoothing"):
        ft.linear_cross_entropy(hidden, linear_weight, target, label_smoothing=2.0,
                                backend="fastxent")
    bad = target.clone()
    bad[0] = 23
    with pytest.raises(IndexError, match="23"):
        ft.linear_cross_entropy(hidden, linear_weight, bad, backend="fastxent")
    with pytest.raises(ValueError, match="linear_weight"):
        ft.linear_cross_entropy(hidden, linear_weight[:, :4], target, backend="fastxent")
    assert np.all(np.isfinite(hidden.numpy()))
