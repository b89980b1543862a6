"""nll_loss and nll_loss_with_grad against torch.nn.functional.nll_loss and its
autograd (float64, class axis moved to dim 1), analytic values and central
finite differences; labels, ignore_index, weights, layouts, out= and threads.
Every test runs on both backends (the `backend` fixture of conftest)."""

from functools import partial

import numpy as np
import pytest

import fastxent

from fastxent_testing import (
    Snapshot,
    central_difference,
    check_loss_type,
    random_labels,
    run_both,
)
from fastxent_testing import DTYPES, REDUCTIONS, close_tight as close


# assert_close with this file's tolerances (tighter than conftest's in float64)


def torch_nll(torch, log_probs, target, *, weight=None, ignore_index=-100, reduction="mean",
              axis=-1):
    """(loss, grad) of torch's nll_loss in float64 with the classes on `axis`
    (grad of loss.sum() for reduction="none"), in the layout of log_probs."""
    x = np.asarray(log_probs, dtype=np.float64)
    class_dim = 1 if x.ndim > 1 else 0
    moved = np.ascontiguousarray(np.moveaxis(x, axis, class_dim))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a thread pool only costs time
    try:
        xt = torch.tensor(moved, requires_grad=True)
        wt = None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float64))
        loss = torch.nn.functional.nll_loss(
            xt, torch.tensor(np.asarray(target, dtype=np.int64)), weight=wt,
            ignore_index=ignore_index, reduction=reduction)
        (loss.sum() if reduction == "none" else loss).backward()
    finally:
        torch.set_num_threads(previous)
    return loss.detach().numpy(), np.moveaxis(xt.grad.numpy(), class_dim, axis)


def batch_shape_of(shape, axis):
    ax = axis % len(shape)
    return shape[:ax] + shape[ax + 1:], shape[ax]


def random_log_probs(rng, shape, axis, dtype):
    x = rng.standard_normal(shape) * 2
    x = x - np.log(np.exp(x).sum(axis=axis, keepdims=True))
    return x.astype(dtype)


# run(log_probs, target, **options): both functions, checked to agree and to
# leave their inputs alone; returns (loss, grad)
run = partial(run_both, fastxent.nll_loss, fastxent.nll_loss_with_grad)


# (weighted, ignore): "absent" = the default -100, never in the targets;
# "default" = -100 present; "custom" = an in-range class used as ignore_index
OPTION_SETS = [(False, "absent"), (True, "default"), (True, "custom")]

SHAPES = [
    pytest.param((6, 5), -1, id="NxC"),
    pytest.param((5, 4), 0, id="CxN-axis0"),
    pytest.param((2, 5, 3), 1, id="rank3-axis1"),
    pytest.param((3, 2, 4), -1, id="rank3-axis-1"),
    pytest.param((4, 3, 2), 0, id="rank3-axis0"),
    pytest.param((6,), -1, id="rank1"),
    pytest.param((0, 4), -1, id="N=0"),
    pytest.param((2, 0, 3), -1, id="rank3-empty-batch"),
    pytest.param((1, 1), -1, id="C=1"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", SHAPES)
def test_matches_torch(torch, backend, rng, dtype, shape, axis):
    batch_shape, n_classes = batch_shape_of(shape, axis)
    x = random_log_probs(rng, shape, axis, dtype)
    for weighted, ignore in OPTION_SETS:
        options = dict(axis=axis)
        ignore_index = {"absent": None, "default": -100, "custom": n_classes // 2}[ignore]
        if ignore == "custom":
            options["ignore_index"] = ignore_index
        if weighted:
            options["weight"] = rng.uniform(0.25, 2.0, n_classes).astype(dtype)
        target = random_labels(rng, batch_shape, n_classes, ignore_index=ignore_index)
        for reduction in REDUCTIONS:
            loss, grad = run(x, target, reduction=reduction, **options)
            want_loss, want_grad = torch_nll(torch, x, target, reduction=reduction, **options)
            where = f"weighted={weighted} ignore={ignore} {reduction}"
            check_loss_type(loss, reduction, batch_shape, dtype)
            assert grad.shape == shape and grad.dtype == dtype, where
            close(loss, want_loss, dtype, err_msg=where)
            close(grad, want_grad, dtype, err_msg=where)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unbatched_input(torch, backend, dtype, reduction):
    # 1-D log-probabilities with a 0-d label: the loss of reduction="none" is a
    # 0-d array, as torch's
    x = np.log(np.array([0.1, 0.2, 0.7])).astype(dtype)
    for label in (np.int64(2), np.array(0), 1):
        loss, grad = run(x, label, reduction=reduction, weight=np.array([1.0, 2.0, 3.0]))
        check_loss_type(loss, reduction, (), dtype)
        want_loss, want_grad = torch_nll(torch, x, label, reduction=reduction,
                                         weight=[1.0, 2.0, 3.0])
        close(loss, want_loss, dtype)
        close(grad, want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_analytic_values(backend, dtype):
    # nll picks -log_probs[label] (times its class weight)
    x = np.array([[-0.5, -1.5, -2.5], [-3.0, -0.25, -4.0]], dtype=dtype)
    target = np.array([2, 1])
    loss, grad = run(x, target, reduction="none")
    np.testing.assert_array_equal(loss, np.array([2.5, 0.25], dtype=dtype))
    np.testing.assert_array_equal(grad, np.array([[0, 0, -1], [0, -1, 0]], dtype=dtype))
    loss, grad = run(x, target, reduction="sum")
    assert loss == dtype(2.75)
    loss, grad = run(x, target, reduction="mean")
    assert loss == dtype(1.375)
    np.testing.assert_array_equal(grad, np.array([[0, 0, -0.5], [0, -0.5, 0]], dtype=dtype))
    # weighted mean divides by the weights of the counted labels: (3*2.5 + 2*0.25) / 5
    w = np.array([1.0, 2.0, 3.0], dtype=dtype)
    loss, grad = run(x, target, weight=w, reduction="mean")
    close(loss, 8.0 / 5.0, dtype)
    close(grad, [[0, 0, -3 / 5], [0, -2 / 5, 0]], dtype)
    # uniform log-probabilities: log C whatever the labels
    c = 7
    uniform = np.full((4, c), -np.log(c), dtype=dtype)
    close(fastxent.nll_loss(uniform, np.array([0, 3, 6, 2])), np.log(c), dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_is_the_finite_difference(backend, rng, reduction):
    shape, axis = (2, 3, 2), 1
    batch_shape, n_classes = batch_shape_of(shape, axis)
    x = random_log_probs(rng, shape, axis, np.float64)
    target = random_labels(rng, batch_shape, n_classes, ignore_index=-100)
    options = dict(weight=rng.uniform(0.5, 2.0, n_classes), reduction=reduction, axis=axis)

    def total(z):
        return np.sum(fastxent.nll_loss(z, target, **options))

    _, grad = fastxent.nll_loss_with_grad(x, target, **options)
    np.testing.assert_allclose(grad, central_difference(total, x, h=1e-3), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_label_ignored(torch, backend, dtype):
    # A mean over zero counted samples is NaN (as torch); the gradient is 0
    # everywhere (as torch: ignored samples get no gradient).
    x = np.log(np.full((3, 4), 0.25)).astype(dtype)
    target = np.full(3, -100)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss, grad = run(x, target)
        assert np.isnan(loss)
        np.testing.assert_array_equal(grad, np.zeros((3, 4), dtype=dtype))
        assert run(x, target, reduction="sum")[0] == 0
        np.testing.assert_array_equal(run(x, target, reduction="none")[0], np.zeros(3, dtype))
    want_loss, want_grad = torch_nll(torch, x, target)
    assert np.isnan(want_loss) and not want_grad.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_total_weight_matches_torch(torch, backend, dtype):
    # counted labels whose weights are all 0: loss NaN (0/0) as torch, with
    # torch's gradient (NaN at the labels, 0 elsewhere)
    x = np.log(np.full((3, 4), 0.25)).astype(dtype)
    target = np.array([0, 0, -100])
    weight = np.array([0.0, 1.0, 1.0, 1.0], dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss, grad = run(x, target, weight=weight)
    want_loss, want_grad = torch_nll(torch, x, target, weight=weight)
    close(loss, want_loss, dtype)
    close(grad, want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_batch(backend, dtype):
    x = np.zeros((0, 5), dtype=dtype)
    target = np.zeros(0, dtype=np.int64)
    loss, grad = run(x, target)
    assert np.isnan(loss) and loss.dtype == dtype and grad.shape == (0, 5)
    loss, grad = run(x, target, reduction="sum")
    assert loss == 0 and loss.dtype == dtype
    loss, grad = run(x, target, reduction="none")
    assert loss.shape == (0,) and loss.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_ignore_index_outside_the_classes(torch, backend, rng, dtype):
    # ignore_index need not be a class: C itself or a large number
    x = random_log_probs(rng, (6, 4), -1, dtype)
    for ignore_index in (4, 1000, -1):
        target = np.array([0, ignore_index, 3, 2, ignore_index, 1])
        for reduction in REDUCTIONS:
            loss, grad = run(x, target, ignore_index=ignore_index, reduction=reduction)
            want_loss, want_grad = torch_nll(torch, x, target, ignore_index=ignore_index,
                                             reduction=reduction)
            close(loss, want_loss, dtype)
            close(grad, want_grad, dtype)


@pytest.mark.parametrize("target_dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8,
                                          np.uint16, np.uint32, np.uint64],
                         ids=lambda d: np.dtype(d).name)
def test_every_integer_target_dtype(torch, backend, rng, target_dtype):
    x = random_log_probs(rng, (9, 5), -1, np.float64)
    target = rng.integers(0, 5, 9).astype(target_dtype)
    loss, grad = run(x, target, weight=np.linspace(0.5, 2.0, 5))
    want_loss, want_grad = torch_nll(torch, x, target, weight=np.linspace(0.5, 2.0, 5))
    close(loss, want_loss, np.float64)
    close(grad, want_grad, np.float64)
    # as a Python list too
    loss = fastxent.nll_loss(x, target.tolist(), weight=np.linspace(0.5, 2.0, 5))
    close(loss, want_loss, np.float64)


@pytest.mark.parametrize("in_dtype, out_dtype", [(np.int32, np.float64), (np.int64, np.float64),
                                                 (np.float16, np.float16),
                                                 (np.float32, np.float32),
                                                 (np.float64, np.float64)],
                         ids=lambda d: np.dtype(d).name)
def test_result_dtype(backend, in_dtype, out_dtype):
    x = np.array([[-1, -2, -3], [-4, -5, -6]]).astype(in_dtype)
    target = np.array([1, 2])
    for reduction in REDUCTIONS:
        loss, grad = run(x, target, reduction=reduction)
        check_loss_type(loss, reduction, (2,), out_dtype)
        assert grad.dtype == out_dtype
        close(loss, {"none": [2, 6], "sum": 8, "mean": 4}[reduction], out_dtype)


# ------------------------------------------------------------------ bad labels and arguments


BAD_LABELS = [
    pytest.param((4, 3), -1, (2,), 3, id="label=C"),
    pytest.param((4, 3), -1, (1,), -1, id="label=-1"),
    pytest.param((4, 3), -1, (3,), 10**12, id="label-huge"),
    pytest.param((2, 3, 4), 1, (1, 2), 3, id="rank3-axis1"),
    pytest.param((3,), -1, (), 5, id="unbatched"),
]


@pytest.mark.parametrize("fn", [fastxent.nll_loss, fastxent.nll_loss_with_grad],
                         ids=["nll_loss", "with_grad"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, axis, where, label", BAD_LABELS)
def test_label_outside_the_classes_raises_index_error(backend, fn, reduction, shape, axis,
                                                      where, label):
    batch_shape, n_classes = batch_shape_of(shape, axis)
    x = np.full(shape, -1.0)
    target = np.zeros(batch_shape, dtype=np.int64)
    target[where] = label
    snap = Snapshot(x, target)
    with pytest.raises(IndexError) as info:
        fn(x, target, axis=axis, reduction=reduction)
    message = str(info.value)
    assert "target" in message and str(label) in message
    assert str(tuple(where)) in message
    snap.assert_unchanged()


def test_label_error_in_a_late_parallel_block(backend):
    x = np.full((6000, 8), -2.0)
    target = np.zeros(6000, dtype=np.int64)
    target[5432] = 8
    with fastxent.num_threads(2):
        with pytest.raises(IndexError, match=r"\(5432,\)"):
            fastxent.nll_loss_with_grad(x, target)


NLL_FUNCTIONS = [pytest.param(fastxent.nll_loss, id="nll_loss"),
                 pytest.param(fastxent.nll_loss_with_grad, id="with_grad")]


@pytest.mark.parametrize("fn", NLL_FUNCTIONS)
def test_bad_arguments(backend, fn):
    x = np.full((4, 3), -1.0)
    target = np.array([0, 1, 2, 0])
    for reduction in ("avg", None, "MEAN"):
        with pytest.raises(ValueError, match="reduction"):
            fn(x, target, reduction=reduction)
    for bad_target in (np.array([0, 1, 2]), np.zeros((4, 1), dtype=int), np.array(0)):
        with pytest.raises(ValueError, match="target"):
            fn(x, bad_target)
    with pytest.raises(ValueError, match="weight"):
        fn(x, target, weight=np.ones(4))
    with pytest.raises(ValueError, match="axis"):
        fn(x, target, axis=2)
    with pytest.raises(ValueError, match="log_probs"):
        fn(np.array(-1.0), np.array(0))
    with pytest.raises(IndexError, match=r"\[0, 0\)"):
        fn(np.zeros((4, 0)), target)  # no classes: no label fits (as PyTorch)
    # nll_loss takes class indices only: float, bool and complex targets are refused
    for bad_target in (target.astype(np.float64), target > 0, target.astype(complex)):
        with pytest.raises(TypeError, match="target"):
            fn(x, bad_target)
    with pytest.raises(TypeError, match="target"):
        fn(x, np.full((4, 3), 1 / 3))  # probabilities
    for bad in (x.astype(complex), x.astype(object), x > 0):
        with pytest.raises(TypeError, match="log_probs"):
            fn(bad, target)
    with pytest.raises(TypeError, match="weight"):
        fn(x, target, weight=np.ones(3, dtype=complex))
    np.testing.assert_array_equal(x, -1.0)


# ------------------------------------------------------------------ layouts, out=, threads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_out_is_log_probs_overwrites_them(torch, backend, rng, dtype, axis, reduction):
    shape = (3000, 20)  # several kernel blocks
    batch_shape, n_classes = batch_shape_of(shape, axis)
    x = random_log_probs(rng, shape, axis, dtype)
    target = random_labels(rng, batch_shape, n_classes, ignore_index=-100)
    w = rng.uniform(0.5, 2.0, n_classes).astype(dtype)
    want_loss, want_grad = torch_nll(torch, x, target, weight=w, reduction=reduction, axis=axis)
    buf = x.copy()
    loss, grad = fastxent.nll_loss_with_grad(buf, target, weight=w, reduction=reduction,
                                             axis=axis, out=buf)
    assert grad is buf
    close(loss, want_loss, dtype)
    close(buf, want_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_blocks_on_two_threads_match_torch(torch, backend, rng, dtype):
    # (that 1, 2 and 3 threads give the same bits: test_operations, over the registry)
    shape = (6000, 20)  # ~4 blocks of the compiled kernel
    x = random_log_probs(rng, shape, -1, dtype)
    target = random_labels(rng, (6000,), 20, ignore_index=-100)
    w = rng.uniform(0.5, 2.0, 20).astype(dtype)
    for reduction in REDUCTIONS:
        with fastxent.num_threads(2):
            loss = fastxent.nll_loss(x, target, weight=w, reduction=reduction)
            _, grad = fastxent.nll_loss_with_grad(x, target, weight=w, reduction=reduction)
        want_loss, want_grad = torch_nll(torch, x, target, weight=w, reduction=reduction)
        close(loss, want_loss, dtype)
        close(grad, want_grad, dtype)
