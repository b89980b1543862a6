"""fastxent.torch against torch.nn.functional and torch.nn: values, gradients
(of random grad_outputs), gradcheck, fallbacks, in-place gradients, modules."""

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: fastxent.torch untested")
import torch.nn.functional as F

import fastxent.torch as ft

pytestmark = pytest.mark.torch
TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-6},
       torch.float64: {"rtol": 1e-10, "atol": 1e-12}}


@pytest.fixture
def gen(request):
    import zlib
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


# The sizes below which backend="auto" runs PyTorch's own loss, as shipped.
SHIPPED_AUTO_SIZES = {name: getattr(ft, name) for name in
                      ("AUTO_MIN_ELEMENTS", "AUTO_MIN_ROWS", "AUTO_MIN_ELEMENTS_BINARY",
                       "AUTO_MIN_ELEMENTS_NLL")}


@pytest.fixture(autouse=True)
def kernels_at_every_size(monkeypatch):
    """backend="auto" (the default) takes the fused kernels whatever the size:
    the inputs here are small, and these tests are of the kernel path. The
    tests of the crossover itself restore the shipped sizes."""
    for name in SHIPPED_AUTO_SIZES:
        monkeypatch.setattr(ft, name, 0)
    monkeypatch.setattr(ft, "AUTO_KERNELS_UNDER_COMPILE", True)


def layout(t, kind):
    """t as a contiguous tensor, or as a non-contiguous view of the same values."""
    if kind == "contiguous":
        return t.contiguous()
    big = torch.zeros(tuple(2 * s for s in t.shape), dtype=t.dtype)
    view = big[tuple(slice(None, None, 2) for _ in t.shape)]
    view.copy_(t)
    assert not view.is_contiguous() or t.numel() <= 1
    return view


def loss_and_grad(fn, x, *args, gen=None, **kwargs):
    """(loss, d(sum of loss * random weights)/dx) of fn(x, *args, **kwargs)."""
    x = x.detach().clone().requires_grad_(True) if x.is_contiguous() else \
        layout(x.detach(), "strided").requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    upstream = torch.rand(loss.shape, generator=gen, dtype=loss.dtype) + 0.5
    (grad,) = torch.autograd.grad(loss, x, upstream)
    return loss.detach(), grad


def assert_same(ours, theirs, tol):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, **tol, equal_nan=True)


def compare(ours_fn, torch_fn, x, *args, gen, tol=None, **kwargs):
    state = gen.get_state()
    loss, grad = loss_and_grad(ours_fn, x, *args, gen=gen, **kwargs)
    gen.set_state(state)  # the same upstream gradient for both
    loss_ref, grad_ref = loss_and_grad(torch_fn, x, *args, gen=gen, **kwargs)
    assert_same(loss, loss_ref, tol or TOL[x.dtype])
    assert_same(grad, grad_ref, tol or TOL[x.dtype])


# ---------------------------------------------------------------- grids

CLASS_SHAPES = [((7, 5), (7,)), ((3, 5, 4, 2), (3, 4, 2)), ((5,), ()), ((1, 1), (1,))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shapes", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["contiguous", "strided"])
def test_cross_entropy_index_targets_equal_torch(gen, dtype, shapes, reduction, kind):
    shape, tshape = shapes
    n_classes = shape[1] if len(shape) > 1 else shape[0]
    x = layout(torch.randn(shape, generator=gen, dtype=dtype) * 3, kind)
    weight = torch.rand(n_classes, generator=gen, dtype=dtype) + 0.1
    labels = torch.randint(0, n_classes, tshape, generator=gen)
    ignored = labels.clone()
    if ignored.numel() > 1:
        ignored.view(-1)[::3] = 1 if n_classes > 1 else -100
    for w, t, ii, eps in itertools.product([None, weight], [labels, ignored], [-100, 1],
                                           [0.0, 0.2]):
        compare(ft.cross_entropy, F.cross_entropy, x, t, w, gen=gen, ignore_index=ii,
                reduction=reduction, label_smoothing=eps)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shapes", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets_equal_torch(gen, dtype, shapes, reduction):
    shape, _ = shapes
    class_dim = 1 if len(shape) > 1 else 0
    x = torch.randn(shape, generator=gen, dtype=dtype) * 3
    probs = torch.softmax(torch.randn(shape, generator=gen, dtype=dtype), dim=class_dim)
    weight = torch.rand(shape[class_dim], generator=gen, dtype=dtype) + 0.1
    for w, eps, kind in itertools.product([None, weight], [0.0, 0.3], ["contiguous", "strided"]):
        compare(ft.cross_entropy, F.cross_entropy, layout(x, kind), layout(probs, kind), w,
                gen=gen, reduction=reduction, label_smoothing=eps)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shapes", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_equals_torch(gen, dtype, shapes, reduction):
    shape, tshape = shapes
    class_dim = 1 if len(shape) > 1 else 0
    n_classes = shape[class_dim]
    log_probs = torch.log_softmax(torch.randn(shape, generator=gen, dtype=dtype), class_dim)
    weight = torch.rand(n_classes, generator=gen, dtype=dtype) + 0.1
    labels = torch.randint(0, n_classes, tshape, generator=gen)
    for w, ii, kind in itertools.product([None, weight], [-100, 0], ["contiguous", "strided"]):
        compare(ft.nll_loss, F.nll_loss, layout(log_probs, kind), labels, w, gen=gen,
                ignore_index=ii, reduction=reduction)


BINARY_SHAPES = [(6, 4), (2, 3, 5), (7,)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["contiguous", "strided"])
def test_binary_cross_entropy_with_logits_equals_torch(gen, dtype, shape, reduction, kind):
    x = layout(torch.randn(shape, generator=gen, dtype=dtype) * 4, kind)
    target = layout(torch.rand(shape, generator=gen, dtype=dtype), kind)
    weight = torch.rand(shape, generator=gen, dtype=dtype)
    pos_weight = torch.rand(shape[-1:], generator=gen, dtype=dtype) * 3
    for w, pw in itertools.product([None, weight, weight[..., :1]], [None, pos_weight]):
        compare(ft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, x,
                target, w, gen=gen, reduction=reduction, pos_weight=pw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["contiguous", "strided"])
def test_binary_cross_entropy_equals_torch(gen, dtype, shape, reduction, kind):
    probs = torch.rand(shape, generator=gen, dtype=dtype) * 0.98 + 0.01
    probs.view(-1)[0] = 0.0  # the clamp of log terms at -100, a gradient of -1e12 (t - p)
    x = layout(probs, kind)
    target = torch.rand(shape, generator=gen, dtype=dtype)
    target.view(-1)[0] = 0.0 if kind == "contiguous" else 1.0
    target = layout(target, kind)
    weight = torch.rand(shape, generator=gen, dtype=dtype)
    for w in [None, weight]:
        compare(ft.binary_cross_entropy, F.binary_cross_entropy, x, target, w, gen=gen,
                reduction=reduction, tol={"rtol": 1e-8, "atol": 1e-12} if dtype == torch.float64
                else None)


# ---------------------------------------------------------------- gradcheck


def _double(gen, *shape):
    return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_(True)


def test_gradcheck_and_gradgradcheck_float64(gen):
    x = _double(gen, 6, 4)
    labels = torch.tensor([0, 3, 1, -100, 2, 3])
    probs = torch.softmax(torch.randn(6, 4, generator=gen, dtype=torch.float64), 1)
    w = torch.rand(4, generator=gen, dtype=torch.float64) + 0.5
    y = torch.rand(6, 4, generator=gen, dtype=torch.float64)
    pw = torch.rand(4, generator=gen, dtype=torch.float64) * 2
    cases = [
        lambda x: ft.cross_entropy(x, labels, w, label_smoothing=0.1),
        lambda x: ft.cross_entropy(x, probs, reduction="none"),
        lambda x: ft.cross_entropy(x.reshape(2, 4, 3), labels[:6].reshape(2, 3).clamp(0)),
        lambda x: ft.nll_loss(torch.log_softmax(x, 1), labels, w, reduction="sum"),
        lambda x: ft.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none"),
        lambda x: ft.binary_cross_entropy(torch.sigmoid(x), y, y),
    ]
    for fn in cases:
        assert torch.autograd.gradcheck(fn, (x,))
        # a differentiable gradient: PyTorch's implementation takes over
        assert torch.autograd.gradgradcheck(fn, (x,))


# ---------------------------------------------------------------- memory


def test_inputs_and_saved_gradient_are_never_overwritten(gen):
    x = torch.randn(8, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (8,), generator=gen)
    before = x.detach().clone()
    loss = ft.cross_entropy(x * 2, labels)  # x * 2: an intermediate, like a model's logits
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    loss.backward(torch.tensor(3.0))  # a second backward through the same saved gradient
    torch.testing.assert_close(x.grad, 4 * first)
    assert torch.equal(x.detach(), before)


def test_a_leaf_takes_the_kernels_gradient_without_a_copy(monkeypatch, gen):
    # The last backward lets go of the saved gradient, so that autograd makes
    # it the leaf's .grad as it is (it copies one that something else holds).
    grads = []
    kernel = ft.class_loss

    def recorded(*args, **kwargs):
        result = kernel(*args, **kwargs)
        grads.append(result[1])
        return result
    monkeypatch.setattr(ft, "class_loss", recorded)
    x = torch.randn(8, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (8,), generator=gen)
    ft.cross_entropy(x, labels, reduction="sum").backward()
    assert x.grad.data_ptr() == grads[0].ctypes.data
    torch.testing.assert_close(x.grad, torch.softmax(x.detach(), 1)
                               - F.one_hot(labels, 5).to(x.dtype))


def test_a_retained_gradient_survives_the_users_edits_of_grad(gen):
    x = torch.randn(8, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (8,), generator=gen)
    loss = ft.cross_entropy(x, labels)
    loss.backward(retain_graph=True)
    expected = x.grad.clone()
    x.grad.mul_(0.0)  # in place, as gradient clipping or zero_grad(set_to_none=False)
    x.grad = None
    loss.backward()
    torch.testing.assert_close(x.grad, expected)
    (reference,) = torch.autograd.grad(F.cross_entropy(x, labels), x)
    torch.testing.assert_close(x.grad, reference)


def test_inplace_backward_writes_the_gradient_into_the_logits(gen):
    h = torch.randn(8, 5, generator=gen, requires_grad=True)
    labels = torch.randint(0, 5, (8,), generator=gen)
    logits = h * 1.0  # mul saves its inputs, not its output: overwriting logits is safe
    version = logits._version
    ptr = logits.data_ptr()
    loss = ft.cross_entropy(logits, labels, inplace_backward=True)
    assert logits._version > version  # the overwrite is visible to autograd
    h_ref = h.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(F.cross_entropy(h_ref, labels), h_ref)
    torch.testing.assert_close(logits.detach(), expected)  # the gradient, in logits' memory
    assert logits.data_ptr() == ptr
    loss.backward()
    torch.testing.assert_close(h.grad, expected)
    ref = F.cross_entropy(h.detach(), labels)
    torch.testing.assert_close(loss.detach(), ref)


def test_inplace_backward_into_a_strided_view_leaves_the_rest_of_its_storage(gen):
    h = torch.randn(6, 3, 4, generator=gen, requires_grad=True)  # classes on dim 1
    labels = torch.randint(0, 3, (6, 4), generator=gen)
    big = torch.full((12, 3, 8), 7.0) + 0 * h.sum()  # an intermediate holding the logits
    logits = big[::2, :, ::2]
    with torch.no_grad():
        logits.copy_(h)
    loss = ft.cross_entropy(logits, labels, reduction="none", inplace_backward=True)
    h_ref = h.detach().clone().requires_grad_(True)
    loss_ref = F.cross_entropy(h_ref, labels, reduction="none")
    (expected,) = torch.autograd.grad(loss_ref.sum(), h_ref)
    torch.testing.assert_close(loss.detach(), loss_ref.detach())
    torch.testing.assert_close(logits.detach(), expected)
    untouched = torch.ones_like(big, dtype=torch.bool)
    untouched[::2, :, ::2] = False
    assert (big.detach()[untouched] == 7.0).all()


def test_inplace_backward_misuse_is_detected_not_silent(gen):
    h = torch.randn(4, 3, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 1])
    logits = torch.tanh(h)  # tanh saves its output for its backward
    loss = ft.cross_entropy(logits, labels, inplace_backward=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    leaf = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="inplace_backward"):
        ft.cross_entropy(leaf, labels, inplace_backward=True)
    with pytest.raises(ValueError, match="inplace_backward"):
        ft.cross_entropy(leaf.detach(), labels, inplace_backward=True)
    expanded = (leaf[:1] * 1.0).expand(4, 3)  # four rows on one row's memory
    with pytest.raises(ValueError, match="inplace_backward.*expanded"):
        ft.cross_entropy(expanded, labels, inplace_backward=True)
    loss = ft.cross_entropy(expanded, labels)  # without inplace_backward: fine
    (grad,) = torch.autograd.grad(loss, leaf)
    (grad_ref,) = torch.autograd.grad(F.cross_entropy((leaf[:1] * 1.0).expand(4, 3), labels),
                                      leaf)
    torch.testing.assert_close(grad, grad_ref)


def test_inplace_backward_refuses_double_backward(gen):
    h = torch.randn(4, 3, generator=gen, requires_grad=True)
    loss = ft.cross_entropy(h * 1.0, torch.tensor([0, 1, 2, 1]), inplace_backward=True)
    with pytest.raises(RuntimeError, match="inplace_backward"):
        torch.autograd.grad(loss, h, create_graph=True)


# ---------------------------------------------------------------- fallbacks


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("loss_fn", ["cross_entropy", "nll_loss"])
def test_half_precision_runs_the_kernels(gen, dtype, reduction, loss_fn):
    """float16 and bfloat16 tensors go to the kernels (no copy, no warning):
    the loss and gradient in the tensor's dtype, PyTorch's float32 results on
    the same values rounded once, and PyTorch's own half-precision ones within
    the half type's rounding."""
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes", reason="bfloat16 arrays need ml_dtypes")
    x = (torch.randn(64, 300, generator=gen) * 3).to(dtype)
    if loss_fn == "nll_loss":
        x = torch.log_softmax(x.float(), 1).to(dtype)
    x.requires_grad_(True)
    labels = torch.randint(0, 300, (64,), generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = getattr(ft, loss_fn)(x, labels, reduction=reduction, backend="fastxent")
        (grad,) = torch.autograd.grad(loss.sum(), x)
    assert loss.dtype == dtype and grad.dtype == dtype
    wide = x.detach().double().requires_grad_(True)
    ref = getattr(F, loss_fn)(wide, labels, reduction=reduction)
    (ref_grad,) = torch.autograd.grad(ref.sum(), wide)
    ulp = 2.0**-10 if dtype == torch.float16 else 2.0**-7  # the half type's epsilon
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=ulp / 2 + 1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=ulp / 2 + 1e-5,
                               atol=1e-5 * ref_grad.abs().max().item())
    own = getattr(F, loss_fn)(x, labels, reduction=reduction)
    (own_grad,) = torch.autograd.grad(own.sum(), x)
    torch.testing.assert_close(loss.float(), own.float(), rtol=4 * ulp, atol=4 * ulp)
    torch.testing.assert_close(grad.float(), own_grad.float(), rtol=4 * ulp,
                               atol=4 * ulp * own_grad.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_binary_losses_fall_back_to_torch(gen, dtype):
    x = torch.randn(6, 4, generator=gen).to(dtype).requires_grad_(True)
    t = torch.rand(6, 4, generator=gen).to(dtype)
    loss = ft.binary_cross_entropy_with_logits(x, t)
    (grad,) = torch.autograd.grad(loss, x)
    loss_ref = F.binary_cross_entropy_with_logits(x, t)
    (grad_ref,) = torch.autograd.grad(loss_ref, x)
    assert loss.dtype == dtype and torch.equal(loss, loss_ref) and torch.equal(grad, grad_ref)


def test_fallback_warns_once_only_when_fastxent_was_asked_for(gen):
    x = torch.randn(6, 4, generator=gen).to(torch.float16)
    t = torch.rand(6, 4, generator=gen).to(torch.float16)
    ft._warned.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.binary_cross_entropy_with_logits(x, t)  # backend="auto": silent
        ft.BCEWithLogitsLoss()(x, t)
    with pytest.warns(RuntimeWarning, match="float16"):
        ft.binary_cross_entropy_with_logits(x, t, backend="fastxent")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ft.BCEWithLogitsLoss(backend="fastxent")(x, t)  # the same reason: once
    with pytest.raises(ValueError, match="backend"):
        ft.binary_cross_entropy_with_logits(x, t, backend="jax")


def test_forward_mode_ad_and_torch_func_fall_back(gen):
    import torch.autograd.forward_ad as fwAD
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    tangent = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (5,), generator=gen)
    results = []
    for fn in (ft.cross_entropy, F.cross_entropy):
        with fwAD.dual_level():
            loss = fn(fwAD.make_dual(x, tangent), labels, label_smoothing=0.1)
            results.append(fwAD.unpack_dual(loss).tangent)
    torch.testing.assert_close(results[0], results[1])
    g = torch.func.grad(lambda x: ft.cross_entropy(x, labels))(x)
    g_ref = torch.func.grad(lambda x: F.cross_entropy(x, labels))(x)
    torch.testing.assert_close(g, g_ref)
    v = torch.func.vmap(lambda x: ft.cross_entropy(x, labels))(x.expand(3, 5, 4))
    torch.testing.assert_close(v, F.cross_entropy(x, labels).expand(3))


def test_target_that_requires_grad_falls_back(gen):
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    probs = torch.softmax(torch.randn(5, 4, generator=gen, dtype=torch.float64), 1)
    probs.requires_grad_(True)
    grads = [torch.autograd.grad(fn(x, probs), (x, probs))
             for fn in (ft.cross_entropy, F.cross_entropy)]
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref)


def test_without_grad_the_loss_alone(gen):
    x = torch.randn(5, 4, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (5,), generator=gen)
    with torch.no_grad():
        loss = ft.cross_entropy(x, labels)
    assert loss.grad_fn is None and not loss.requires_grad
    torch.testing.assert_close(loss, F.cross_entropy(x.detach(), labels))
    loss = ft.cross_entropy(x.detach(), labels, reduction="none")
    torch.testing.assert_close(loss, F.cross_entropy(x.detach(), labels, reduction="none"))


# ---------------------------------------------------------------- errors


def test_bad_arguments_raise_clear_errors(gen):
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    before = x.detach().clone()
    with pytest.raises(IndexError, match="target: class label 7"):
        ft.cross_entropy(x, torch.tensor([0, 7, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        ft.cross_entropy(x, torch.tensor([0, 1, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="target"):
        ft.cross_entropy(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        ft.cross_entropy(x, torch.tensor([0, 1, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight"):
        ft.cross_entropy(x, torch.tensor([0, 1, 1, 2]), torch.ones(4))
    with pytest.raises(ValueError, match="probs: "):
        ft.binary_cross_entropy(x.detach() + 2, torch.zeros(4, 3))
    assert torch.equal(x.detach(), before)


# ---------------------------------------------------------------- modules


def test_modules_are_drop_ins_for_torch_nn(gen):
    w = torch.rand(4, generator=gen) + 0.5
    pairs = [
        (ft.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.1)),
        (ft.NLLLoss(w, reduction="sum"), torch.nn.NLLLoss(w, reduction="sum")),
        (ft.BCELoss(reduction="none"), torch.nn.BCELoss(reduction="none")),
        (ft.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=w)),
    ]
    x = torch.randn(6, 4, generator=gen)
    labels = torch.randint(0, 4, (6,), generator=gen)
    y = torch.rand(6, 4, generator=gen)
    inputs = [(x, labels), (torch.log_softmax(x, 1), labels), (torch.sigmoid(x), y), (x, y)]
    for (ours, theirs), (inp, target) in zip(pairs, inputs):
        assert isinstance(ours, type(theirs))
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        assert ours.reduction == theirs.reduction
        compare(ours, theirs, inp, target, gen=gen)
    moved = ft.CrossEntropyLoss(w).to(torch.float64)
    assert moved.weight.dtype == torch.float64  # a registered buffer


def test_deprecated_size_average_and_reduce_as_torch(gen):
    x = torch.randn(6, 4, generator=gen)
    labels = torch.randint(0, 4, (6,), generator=gen)
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = ft.cross_entropy(x, labels, size_average=size_average, reduce=reduce)
            theirs = F.cross_entropy(x, labels, size_average=size_average, reduce=reduce)
            module = ft.CrossEntropyLoss(size_average=size_average, reduce=reduce)
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(module(x, labels), theirs)


# ---------------------------------------------------------------- threads


def test_torch_and_fastxent_thread_settings_are_independent():
    import fastxent
    from fastxent import _config
    if _config.config()["openmp"] == "none":
        pytest.skip("a build without OpenMP runs one thread")
    before_torch, before_fx = torch.get_num_threads(), _config._state["threads"]
    try:
        _config._state["threads"] = None  # no fastxent setting: the default applies
        default = fastxent.get_num_threads()
        torch.set_num_threads(1)  # sets the OpenMP runtime's limit PyTorch shares
        assert fastxent.get_num_threads() == default
        torch.set_num_threads(default + 3)
        assert fastxent.get_num_threads() == default
        fastxent.set_num_threads(2)
        assert torch.get_num_threads() == default + 3
        with fastxent.num_threads(1):
            assert torch.get_num_threads() == default + 3
        torch.set_num_threads(1)
        assert fastxent.get_num_threads() == 2
    finally:
        torch.set_num_threads(before_torch)
        _config._state["threads"] = before_fx


def test_threadpoolctl_limits_fastxent_and_lifts_the_limit_on_exit():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import fastxent
    from fastxent import _config
    if not hasattr(threadpoolctl, "register") or _config._compiled is None:
        pytest.skip("threadpoolctl without register(), or no compiled kernels")
    info = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "fastxent"]
    assert len(info) == 1 and info[0]["user_api"] == "openmp"
    with fastxent.num_threads(4):
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert fastxent.get_num_threads() == 1
            with threadpoolctl.threadpool_limits(limits=3):
                assert fastxent.get_num_threads() == 3
            assert fastxent.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert fastxent.get_num_threads() == 4  # not an OpenMP limit
        assert fastxent.get_num_threads() == 4
        assert _config._state["limit"] is None


# ---------------------------------------------------------------- auto's crossover


def _kernel_calls(monkeypatch):
    """A list that records each call of the fused kernels from fastxent.torch."""
    calls = []
    for name in ("class_loss", "binary_loss"):
        kernel = getattr(ft, name)

        def counted(*args, kernel=kernel, **kwargs):
            calls.append(kernel.__name__)
            return kernel(*args, **kwargs)
        monkeypatch.setattr(ft, name, counted)
    return calls


# (function, PyTorch's, input shape (classes on dim 1), the side of the crossover)
CROSSOVER_CASES = [
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ROWS - 1, 10), "torch"),
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ROWS, 10), "fastxent"),
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ROWS // 2 - 1, ft.FEW_CLASSES, 2), "torch"),
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ROWS // 2, ft.FEW_CLASSES, 2), "fastxent"),
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ELEMENTS // 256 - 1, 256), "torch"),
    (ft.cross_entropy, F.cross_entropy, (ft.AUTO_MIN_ELEMENTS // 256, 256), "fastxent"),
    (ft.nll_loss, F.nll_loss, (ft.AUTO_MIN_ELEMENTS // 64, 64), "torch"),  # at every size
    (ft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
     (ft.AUTO_MIN_ELEMENTS_BINARY - 1,), "torch"),
    (ft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
     (ft.AUTO_MIN_ELEMENTS_BINARY // 8, 8), "fastxent"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("fn, torch_fn, shape, side", CROSSOVER_CASES,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_auto_equals_torch_on_both_sides_of_the_crossover(monkeypatch, gen, fn, torch_fn,
                                                          shape, side, dtype, reduction):
    for name, size in SHIPPED_AUTO_SIZES.items():
        monkeypatch.setattr(ft, name, size)
    calls = _kernel_calls(monkeypatch)
    x = torch.randn(shape, generator=gen, dtype=dtype) * 3
    if fn is ft.binary_cross_entropy_with_logits:
        target = torch.rand(shape, generator=gen, dtype=dtype)
    else:
        target = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=gen)
        if fn is ft.nll_loss:
            x = torch.log_softmax(x, 1)
    compare(fn, torch_fn, x, target, gen=gen, reduction=reduction)
    assert calls == ([] if side == "torch" else [fn is ft.binary_cross_entropy_with_logits
                                                 and "binary_loss" or "class_loss"])


def test_auto_leaves_small_inputs_to_torch_but_not_inplace_backward(monkeypatch, gen):
    for name, size in SHIPPED_AUTO_SIZES.items():
        monkeypatch.setattr(ft, name, size)
    calls = _kernel_calls(monkeypatch)
    h = torch.randn(4, 3, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2])
    ft.cross_entropy(h, labels).backward()
    ft.cross_entropy(h, labels, backend="fastxent").backward()
    assert calls == ["class_loss"]  # auto: PyTorch's; fastxent: the kernel
    logits = h * 2.0
    loss = ft.cross_entropy(logits, labels, inplace_backward=True)  # asked for: the kernel
    assert calls == ["class_loss"] * 2
    (grad,) = torch.autograd.grad(loss, h)
    (expected,) = torch.autograd.grad(F.cross_entropy(h * 2.0, labels), h)
    torch.testing.assert_close(grad, expected, **TOL[torch.float32])


# ---------------------------------------------------------------- torch.compile


def test_torch_compile_of_a_model_using_the_bridge_trains(gen):
    pytest.importorskip("torch._inductor", reason="torch.compile's default backend is missing")
    import torch._dynamo
    torch._dynamo.reset()
    torch.manual_seed(0)
    x = torch.randn(128, 8, generator=gen)
    y = x[:, :4].argmax(1)  # learnable: the largest of the first 4 features

    def train(loss_fn, compiled):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                    torch.nn.Linear(16, 4))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        forward = lambda x, y: loss_fn(model(x), y)
        if compiled:
            forward = torch.compile(forward, fullgraph=True)  # the loss: no graph break
        losses = []
        for _ in range(15):
            optimizer.zero_grad()
            loss = forward(x, y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    compiled = train(ft.cross_entropy, True)
    eager = train(F.cross_entropy, False)
    np.testing.assert_allclose(compiled, eager, rtol=1e-4)
    assert compiled[-1] < compiled[0] / 2


def test_under_torch_compile_auto_leaves_the_loss_to_the_compiler(monkeypatch, gen):
    pytest.importorskip("torch._inductor", reason="torch.compile's default backend is missing")
    monkeypatch.setattr(ft, "AUTO_KERNELS_UNDER_COMPILE", False)  # as shipped
    calls = _kernel_calls(monkeypatch)
    x = torch.randn(512, 200, generator=gen, requires_grad=True)  # above the eager crossover
    labels = torch.randint(0, 200, (512,), generator=gen)
    torch._dynamo.reset()
    loss = torch.compile(ft.cross_entropy, fullgraph=True)(x, labels)
    (grad,) = torch.autograd.grad(loss, x)
    assert calls == []  # neither the custom operator nor the eager kernel path ran
    want = F.cross_entropy(x, labels)
    (want_grad,) = torch.autograd.grad(want, x)
    assert_same(loss.detach(), want.detach(), TOL[torch.float32])
    assert_same(grad, want_grad, TOL[torch.float32])
    loss = torch.compile(lambda a, b: ft.cross_entropy(a, b, backend="fastxent"))(x, labels)
    assert calls == ["class_loss"]  # asked for: the custom operator
    assert_same(loss.detach(), want.detach(), TOL[torch.float32])


def test_custom_operators_pass_torch_library_opcheck(gen):
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (6,), generator=gen)
    y = torch.rand(6, 4, generator=gen, dtype=torch.float64)
    torch.library.opcheck(ft._class_loss_op, (x, labels, None, -100, "none", 0.1, False))
    torch.library.opcheck(ft._class_loss_op, (x.reshape(3, 4, 2), labels[:6].reshape(3, 2),
                                              None, -100, "mean", 0.0, False))
    torch.library.opcheck(ft._binary_loss_op, (x, y, None, None, "sum", True))


def test_import_fastxent_does_not_import_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import fastxent
    root = str(Path(fastxent.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root,
                                                                    os.environ.get("PYTHONPATH")])))
    code = ("import sys, fastxent; before = 'torch' in sys.modules; import fastxent.torch; "
            "print(before, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def test_both_fastxent_backends_serve_the_bridge(backend, gen):
    # the `backend` fixture (conftest) selects fastxent's compiled or NumPy kernels
    x = torch.randn(6, 5, 3, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 5, (6, 3), generator=gen)
    compare(ft.cross_entropy, F.cross_entropy, x, labels, gen=gen, label_smoothing=0.1,
            reduction="none")
    y = torch.rand(6, 5, 3, generator=gen, dtype=torch.float64)
    compare(ft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, x, y,
            gen=gen)
