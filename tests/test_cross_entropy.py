"""Values of cross_entropy and cross_entropy_with_grad against independent
references: torch.nn.functional.cross_entropy and its autograd, the analytic
formulas (conftest.oracle_xent), central finite differences, and a float64
computation for float32 accuracy. The compiled backend is also checked against
the NumPy one (fastxent.reference), on every instruction-set path."""

import itertools

import numpy as np
import pytest

import fastxent
from fastxent import _config, reference

from fastxent_testing import (
    Snapshot,
    assert_close,
    check_loss_type,
    gradient_floor,
    oracle_xent,
    random_labels,
    random_logits,
    random_probs,
    result_dtype,
    torch_xent,
)
from fastxent_testing import DTYPES, REDUCTIONS



def make_case(rng, shape, axis, dtype, kind, weighted, ignore, label_smoothing, reduction):
    """(logits, target, options) for one test case.

    kind: "index" or "prob". ignore: "absent" (default ignore_index, never in
    the targets), "default" (-100 present in the targets) or "custom" (an
    in-range class, C // 2, used as ignore_index and present in the targets).
    Weights and probabilities are drawn in `dtype` so that the references see
    exactly the numbers fastxent sees."""
    ax = axis % len(shape)
    n_classes = shape[ax]
    batch_shape = shape[:ax] + shape[ax + 1:]
    logits = random_logits(rng, shape, dtype)
    options = dict(reduction=reduction, label_smoothing=label_smoothing, axis=axis)
    if weighted:
        options["weight"] = rng.uniform(0.25, 2.0, n_classes).astype(dtype)
    if kind == "index":
        ignore_index = {"absent": None, "default": -100, "custom": n_classes // 2}[ignore]
        if ignore == "custom":
            options["ignore_index"] = ignore_index
        target = random_labels(rng, batch_shape, n_classes, ignore_index=ignore_index)
    else:
        target = random_probs(rng, shape, axis, dtype)
    return logits, target, options


def check_against(reference_fn, logits, target, **options):
    """Both public functions against reference_fn(logits, target, **options) ->
    (loss, grad) in float64; also checks result types and that no input changed."""
    dtype = result_dtype(np.asarray(logits).dtype)
    ax = options.get("axis", -1) % np.ndim(logits)
    batch_shape = np.shape(logits)[:ax] + np.shape(logits)[ax + 1:]
    reduction = options.get("reduction", "mean")
    want_loss, want_grad = reference_fn(logits, target, **options)

    snapshot = Snapshot(logits, target, options.get("weight"))
    loss = fastxent.cross_entropy(logits, target, **options)
    snapshot.assert_unchanged()
    loss2, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
    snapshot.assert_unchanged()

    check_loss_type(loss, reduction, batch_shape, dtype)
    check_loss_type(loss2, reduction, batch_shape, dtype)
    assert isinstance(grad, np.ndarray)
    assert grad.shape == np.shape(logits) and grad.dtype == dtype
    assert_close(loss, want_loss, dtype)
    assert_close(loss2, want_loss, dtype)
    assert_close(grad, want_grad, dtype, floor=gradient_floor(logits, options))
    return loss, grad


def check_against_torch(torch, logits, target, **options):
    return check_against(lambda *a, **k: torch_xent(torch, *a, **k), logits, target, **options)


# ------------------------------------------------------------------ every option combination

OPTION_PRODUCT = [
    pytest.param(kind, weighted, ignore, ls, reduction,
                 id=f"{kind}-{'w' if weighted else 'now'}-ign_{ignore}-ls{ls}-{reduction}")
    for kind, weighted, ignore, ls, reduction in itertools.product(
        ("index", "prob"), (False, True), ("absent", "default", "custom"), (0.0, 0.15), REDUCTIONS
    )
    # ignore_index does not apply to probability targets (torch rejects it there)
    if not (kind == "prob" and ignore != "absent")
]

PRODUCT_SHAPES = [
    pytest.param((6, 5), -1, id="6x5"),
    pytest.param((2, 5, 3), 1, id="2x5x3-axis1"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", PRODUCT_SHAPES)
@pytest.mark.parametrize("kind, weighted, ignore, ls, reduction", OPTION_PRODUCT)
def test_every_option_combination_matches_torch(torch, backend, rng, kind, weighted, ignore, ls,
                                                reduction, shape, axis, dtype):
    logits, target, options = make_case(rng, shape, axis, dtype, kind, weighted, ignore, ls,
                                        reduction)
    check_against_torch(torch, logits, target, **options)


# ------------------------------------------------------------------ a grid of shapes

SHAPE_GRID = [
    pytest.param((5, 1), -1, id="C=1"),
    pytest.param((7, 2), -1, id="C=2"),
    pytest.param((0, 4), -1, id="N=0"),
    pytest.param((1, 4), -1, id="N=1"),
    pytest.param((3, 50_000), -1, id="C=50000"),
    pytest.param((2, 3, 6), -1, id="rank3"),
    pytest.param((3, 6, 4), 1, id="rank3-axis1"),
    pytest.param((6, 4), 0, id="rank2-axis0"),
    pytest.param((4, 3, 2), -3, id="rank3-axis-3"),
    pytest.param((6,), -1, id="rank1"),
    pytest.param((2, 0, 3), -1, id="rank3-empty-batch"),
]

REPRESENTATIVE_OPTIONS = [
    pytest.param("index", False, "absent", 0.0, "mean", id="index-plain-mean"),
    pytest.param("index", False, "default", 0.0, "sum", id="index-ignore-sum"),
    pytest.param("index", True, "default", 0.1, "none", id="index-w-ignore-ls-none"),
    pytest.param("index", True, "custom", 0.2, "mean", id="index-w-customignore-ls-mean"),
    pytest.param("prob", False, "absent", 0.0, "mean", id="prob-plain-mean"),
    pytest.param("prob", True, "absent", 0.1, "sum", id="prob-w-ls-sum"),
    pytest.param("prob", False, "absent", 0.3, "none", id="prob-ls-none"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, weighted, ignore, ls, reduction", REPRESENTATIVE_OPTIONS)
@pytest.mark.parametrize("shape, axis", SHAPE_GRID)
def test_shape_grid_matches_torch(torch, backend, rng, shape, axis, kind, weighted, ignore, ls,
                                  reduction, dtype):
    logits, target, options = make_case(rng, shape, axis, dtype, kind, weighted, ignore, ls,
                                        reduction)
    check_against_torch(torch, logits, target, **options)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_many_rows_in_parallel_blocks_match_torch(torch, backend, rng, reduction):
    # More rows than one block of the compiled kernel (32768 elements), on two
    # threads, with ignored rows and weights: block sums and the mean's
    # denominator must still match torch.
    logits, target, options = make_case(rng, (5000, 20), -1, np.float64, "index", True,
                                        "default", 0.05, reduction)
    with fastxent.num_threads(2):
        check_against_torch(torch, logits, target, **options)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_row_is_shifted_by_its_own_maximum(torch, backend, rng, dtype, kind, threads):
    # The compiled kernels find a row's maximum during the previous row's exp
    # sweep and hand it on. Rows offset by thousands (a maximum taken from
    # another row overflows or underflows every exp of this one), ignored rows
    # between them (no sweep there to hand anything on), several blocks per
    # thread: each row must still be shifted by its own maximum.
    logits, target, options = make_case(rng, (700, 300), -1, dtype, kind, False, "default", 0.0,
                                        "none")
    logits += rng.choice([0.0, -3000.0, 3000.0, 80.0], size=(700, 1)).astype(dtype)
    with fastxent.num_threads(threads):
        check_against_torch(torch, logits, target, **options)


# ------------------------------------------------------------------ targets and dtypes

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("target_dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_every_integer_target_dtype(torch, backend, rng, target_dtype, reduction):
    n_classes = 7
    logits = random_logits(rng, (9, n_classes))
    # signed: the default ignore_index (-100) in the targets; unsigned: an in-range one
    ignore_index = -100 if np.dtype(target_dtype).kind == "i" else 3
    target = random_labels(rng, (9,), n_classes, ignore_index=ignore_index, dtype=target_dtype)
    assert target.dtype == target_dtype
    check_against_torch(torch, logits, target, weight=np.linspace(0.5, 2.0, n_classes),
                        ignore_index=ignore_index, reduction=reduction)


def test_targets_as_python_lists_and_scalars(torch, backend, rng):
    logits = random_logits(rng, (4, 3))
    check_against_torch(torch, logits, [0, 2, 1, 2])
    # probability targets as nested lists of floats; weights as a list
    probs = random_probs(rng, (4, 3), -1)
    want_loss, want_grad = torch_xent(torch, logits, probs, weight=[1.0, 2.0, 0.5])
    loss, grad = fastxent.cross_entropy_with_grad(logits, probs.tolist(), weight=[1.0, 2.0, 0.5])
    assert_close(loss, want_loss, np.float64)
    assert_close(grad, want_grad, np.float64)
    # logits as nested lists
    loss, grad = fastxent.cross_entropy_with_grad(logits.tolist(), np.array([0, 2, 1, 2]))
    want_loss, want_grad = torch_xent(torch, logits, np.array([0, 2, 1, 2]))
    assert_close(loss, want_loss, np.float64)
    assert_close(grad, want_grad, np.float64)


@pytest.mark.parametrize(
    "logits_dtype, expected",
    [  # float16 and bfloat16 keep their dtype: tests/test_half.py
        (np.int8, np.float64),
        (np.int32, np.float64),
        (np.int64, np.float64),
        (np.uint8, np.float64),
        (np.uint64, np.float64),
    ],
    ids=lambda d: np.dtype(d).name,
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_other_real_logits_dtypes_are_converted(torch, backend, rng, logits_dtype, expected,
                                                reduction):
    if np.dtype(logits_dtype).kind == "f":
        logits = random_logits(rng, (5, 4), logits_dtype)
    else:
        logits = rng.integers(0, 6, size=(5, 4)).astype(logits_dtype)
    target = np.array([0, 3, 1, 2, 3])
    loss, grad = check_against_torch(torch, logits, target, reduction=reduction)
    assert loss.dtype == expected and grad.dtype == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_and_probabilities_of_another_dtype(torch, backend, rng, dtype):
    # weight, probabilities of any real dtype: the result has the logits' dtype
    logits = random_logits(rng, (6, 5), dtype)
    weight = np.array([1, 2, 3, 1, 2], dtype=np.int32)
    probs16 = random_probs(rng, (6, 5), -1, np.float16)
    loss, grad = check_against_torch(torch, logits, probs16, weight=weight, reduction="sum")
    assert loss.dtype == dtype and grad.dtype == dtype
    other = np.float64 if dtype == np.float32 else np.float32
    weight = rng.uniform(0.5, 2.0, 5).astype(other)
    labels = np.array([0, 4, 2, 2, 1, 3])
    loss, grad = check_against_torch(torch, logits, labels, weight=weight,
                                     label_smoothing=0.1)
    assert loss.dtype == dtype and grad.dtype == dtype


@pytest.mark.parametrize("ls", [0.0, 0.5, 1.0, 1, np.float32(0.25)], ids=repr)
def test_label_smoothing_values(torch, backend, rng, ls):
    logits = random_logits(rng, (5, 4))
    target = np.array([0, 3, -100, 1, 2])
    check_against_torch(torch, logits, target, label_smoothing=ls, weight=[1.0, 0.5, 2.0, 1.5])
    check_against_torch(torch, logits, random_probs(rng, (5, 4), -1), label_smoothing=ls,
                        reduction="none")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_unnormalised_probability_targets(torch, backend, rng, reduction):
    # torch takes the targets as given: rows summing to anything, zero rows included
    logits = random_logits(rng, (5, 4))
    probs = rng.random((5, 4)) * np.array([[0.1], [1.0], [3.0], [0.0], [0.5]])
    check_against_torch(torch, logits, probs, reduction=reduction, weight=[1.0, 2.0, 0.5, 1.0],
                        label_smoothing=0.2)


def test_extreme_logit_magnitudes(torch, backend, rng):
    # logits far from 0 and far apart: no overflow, no loss of the target's share
    for dtype in (np.float32, np.float64):
        logits = (rng.standard_normal((6, 5)) * 30 + 1e4).astype(dtype)
        logits[0] -= 2e4
        target = np.array([0, 1, 2, 3, 4, 0])
        check_against_torch(torch, logits, target, reduction="none")
        check_against_torch(torch, logits, random_probs(rng, (6, 5), -1, dtype))


# ------------------------------------------------------------------ documented special cases


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_over_all_ignored_targets_is_nan(torch, backend, rng, weighted, ls, dtype):
    logits = random_logits(rng, (4, 3), dtype)
    target = np.full(4, -100)
    weight = np.array([1.0, 2.0, 3.0], dtype) if weighted else None
    with np.errstate(all="ignore"):
        loss, grad = check_against_torch(torch, logits, target, weight=weight, label_smoothing=ls)
    assert np.isnan(loss)
    # torch: ignored rows get a zero gradient, even with nothing counted
    assert np.array_equal(grad, np.zeros_like(logits))
    for reduction, expected in (("sum", 0.0), ("none", np.zeros(4))):
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, weight=weight,
                                                      label_smoothing=ls, reduction=reduction)
        assert np.array_equal(loss, expected)
        assert np.array_equal(grad, np.zeros_like(logits))


def test_mean_with_zero_total_weight_matches_torch(torch, backend, rng):
    # counted samples whose classes all weigh 0: 0/0 as in torch
    logits = random_logits(rng, (4, 3))
    with np.errstate(all="ignore"):
        loss, _ = check_against_torch(torch, logits, np.array([0, 0, 1, -100]),
                                      weight=np.array([0.0, 0.0, 1.0]))
    assert np.isnan(loss)


@pytest.mark.parametrize("kind", ["index", "prob"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0, 4), -1), ((3, 0, 4), -1), ((0, 4, 2), 1)])
def test_empty_batch(backend, kind, dtype, shape, axis):
    logits = np.zeros(shape, dtype)
    batch_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    target = np.zeros(batch_shape, np.int64) if kind == "index" else np.zeros(shape, dtype)
    for weight in (None, np.ones(4, dtype)):
        mean, grad = fastxent.cross_entropy_with_grad(logits, target, weight=weight, axis=axis)
        assert np.isnan(mean) and mean.dtype == dtype
        assert grad.shape == shape and grad.dtype == dtype
        total = fastxent.cross_entropy(logits, target, weight=weight, axis=axis, reduction="sum")
        assert total == 0 and total.dtype == dtype
        none = fastxent.cross_entropy(logits, target, weight=weight, axis=axis, reduction="none")
        assert none.shape == batch_shape and none.dtype == dtype


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rank1_logits_with_0d_target(torch, backend, rng, reduction, dtype):
    logits = random_logits(rng, (6,), dtype)
    for target in (np.array(4), np.int64(4), 4, np.uint8(4)):
        loss, grad = check_against_torch(torch, logits, target, reduction=reduction,
                                         label_smoothing=0.1, weight=np.arange(1, 7, dtype=dtype))
        assert np.shape(loss) == () and grad.shape == (6,)
    check_against_torch(torch, logits, random_probs(rng, (6,), -1, dtype), reduction=reduction)
    # the one sample ignored: NaN mean, 0 sum, 0 per-sample loss, zero gradient
    with np.errstate(all="ignore"):
        loss, grad = check_against_torch(torch, logits, np.array(-100), reduction=reduction)
    assert np.isnan(loss) if reduction == "mean" else loss == 0
    assert not grad.any()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_minus_inf_logits_on_other_classes(torch, backend, reduction, dtype, weighted):
    logits = np.array([[0.5, -np.inf, 1.0, -np.inf],
                       [-np.inf, -np.inf, -np.inf, 2.0],   # target the only finite logit
                       [-np.inf, 0.0, 0.0, 0.0],
                       [1.0, 2.0, 3.0, 4.0]], dtype)
    target = np.array([2, 3, 1, 0])
    weight = np.array([1.0, 2.0, 0.5, 1.5], dtype) if weighted else None
    loss, grad = check_against_torch(torch, logits, target, weight=weight, reduction=reduction)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(grad[np.isneginf(logits)] == 0)
    # p = 1 on the target: nothing to learn (up to rounding)
    np.testing.assert_allclose(grad[1], 0.0, atol=1e-6 if dtype == np.float32 else 1e-15)
    # label smoothing puts mass on the -inf classes: infinite loss, as in torch
    loss, grad = check_against_torch(torch, logits, target, weight=weight, reduction=reduction,
                                     label_smoothing=0.1)
    assert np.isinf(np.sum(loss))
    # a -inf logit on the target class: infinite loss for that sample
    loss = fastxent.cross_entropy(logits, np.array([1, 3, 1, 0]), reduction="none")
    assert np.isposinf(loss[0]) and np.all(np.isfinite(loss[1:]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nan_on", ["target-class", "other-class"])
def test_nan_in_logits_propagates(torch, backend, rng, dtype, nan_on):
    logits = random_logits(rng, (4, 5), dtype)
    target = np.array([1, 2, 3, 4])
    logits[2, 3 if nan_on == "target-class" else 0] = np.nan
    for reduction in REDUCTIONS:
        loss, grad = check_against_torch(torch, logits, target, reduction=reduction,
                                         weight=np.linspace(1, 2, 5, dtype=dtype))
        assert np.isnan(np.sum(loss))
        assert np.all(np.isnan(grad[2]))
        if reduction == "none":
            assert np.isnan(loss[2]) and np.all(np.isfinite(loss[[0, 1, 3]]))
        assert np.all(np.isfinite(grad[[0, 1, 3]]))
    probs = random_probs(rng, (4, 5), -1, dtype)
    loss, grad = check_against_torch(torch, logits, probs, reduction="none")
    assert np.isnan(loss[2]) and np.all(np.isfinite(loss[[0, 1, 3]]))
    assert np.all(np.isnan(grad[2])) and np.all(np.isfinite(grad[[0, 1, 3]]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_nan_logits_in_an_ignored_sample_count_for_nothing(torch, backend, rng, dtype, ls):
    logits = random_logits(rng, (4, 5), dtype)
    logits[1, 2] = np.nan
    target = np.array([0, -100, 3, 4])
    weight = np.linspace(1, 2, 5, dtype=dtype)
    for reduction in REDUCTIONS:
        want_loss, want_grad = torch_xent(torch, logits, target, weight=weight,
                                          reduction=reduction, label_smoothing=ls)
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, weight=weight,
                                                      reduction=reduction, label_smoothing=ls)
        assert np.all(np.isfinite(loss))  # torch too: an ignored sample's loss is 0
        assert_close(loss, want_loss, dtype)
        kept = [0, 2, 3]
        assert_close(grad[kept], want_grad[kept], dtype)
        # The loss does not depend on the ignored sample's logits: its gradient
        # is 0. (torch's autograd gives NaN there, from log_softmax's backward
        # pass multiplying a zero upstream gradient by NaN probabilities.)
        assert np.array_equal(grad[1], np.zeros(5, dtype))


def test_nan_in_probability_target_propagates(torch, backend, rng):
    logits = random_logits(rng, (3, 4))
    probs = random_probs(rng, (3, 4), -1)
    probs[1, 2] = np.nan
    loss, grad = check_against_torch(torch, logits, probs, reduction="none")
    assert np.isnan(loss[1]) and np.all(np.isfinite(loss[[0, 2]]))
    assert np.all(np.isnan(grad[1])) and np.all(np.isfinite(grad[[0, 2]]))


# ------------------------------------------------------------------ the test oracle itself


@pytest.mark.parametrize("kind, weighted, ignore, ls, reduction", OPTION_PRODUCT)
def test_oracle_agrees_with_torch(torch, rng, kind, weighted, ignore, ls, reduction):
    # conftest.oracle_xent stands in for torch in tests that must run without it
    logits, target, options = make_case(rng, (3, 5, 2), 1, np.float64, kind, weighted, ignore,
                                        ls, reduction)
    want_loss, want_grad = torch_xent(torch, logits, target, **options)
    loss, grad = oracle_xent(logits, target, **options)
    assert_close(loss, want_loss, np.float64)
    assert_close(grad, want_grad, np.float64)


# ------------------------------------------------------------------ finite differences

FD_CASES = [
    pytest.param(dict(kind="index", weighted=False, ignore="absent", ls=0.0, reduction="mean"),
                 (4, 5), -1, id="index-plain-mean"),
    pytest.param(dict(kind="index", weighted=True, ignore="default", ls=0.0, reduction="sum"),
                 (5, 4), -1, id="index-w-ignore-sum"),
    pytest.param(dict(kind="index", weighted=True, ignore="custom", ls=0.3, reduction="mean"),
                 (3, 4, 2), 1, id="index-w-customignore-ls-mean-axis1"),
    pytest.param(dict(kind="index", weighted=False, ignore="default", ls=0.2, reduction="none"),
                 (2, 3, 4), -1, id="index-ignore-ls-none-rank3"),
    pytest.param(dict(kind="index", weighted=True, ignore="absent", ls=0.1, reduction="mean"),
                 (5,), 0, id="index-rank1"),
    pytest.param(dict(kind="prob", weighted=False, ignore="absent", ls=0.0, reduction="mean"),
                 (4, 5), -1, id="prob-mean"),
    pytest.param(dict(kind="prob", weighted=True, ignore="absent", ls=0.25, reduction="none"),
                 (5, 3, 2), 0, id="prob-w-ls-none-axis0"),
    pytest.param(dict(kind="index", weighted=False, ignore="absent", ls=0.0, reduction="sum"),
                 (3, 1), -1, id="C=1"),
]


@pytest.mark.parametrize("case, shape, axis", FD_CASES)
def test_gradient_matches_central_differences(backend, rng, case, shape, axis):
    logits, target, options = make_case(rng, shape, axis, np.float64, case["kind"],
                                        case["weighted"], case["ignore"], case["ls"],
                                        case["reduction"])
    _, grad = fastxent.cross_entropy_with_grad(logits, target, **options)

    def f(x):
        return float(np.sum(fastxent.cross_entropy(x, target, **options)))

    h = 1e-5
    numeric = np.empty_like(logits)
    for idx in np.ndindex(*logits.shape):
        xp, xm = logits.copy(), logits.copy()
        xp[idx] += h
        xm[idx] -= h
        numeric[idx] = (f(xp) - f(xm)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ float32 accuracy


@pytest.mark.parametrize("kind", ["index", "prob"])
def test_float32_accuracy_against_float64(backend, kind):
    rng = np.random.default_rng(1234)
    n_rows, n_classes = 1 << 19, 3
    logits = random_logits(rng, (n_rows, n_classes), np.float32)
    if kind == "index":
        target = random_labels(rng, (n_rows,), n_classes, ignore_index=-100)
    else:
        target = random_probs(rng, (n_rows, n_classes), -1, np.float32)
    options = dict(weight=np.array([0.5, 1.0, 2.0], np.float32), label_smoothing=0.05)
    # the float64 computation on exactly the float32 numbers
    want_mean, want_grad = oracle_xent(logits, target, **options)
    want_rows, _ = oracle_xent(logits, target, reduction="none", **options)

    mean, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
    total = fastxent.cross_entropy(logits, target, reduction="sum", **options)
    rows = fastxent.cross_entropy(logits, target, reduction="none", **options)
    assert mean.dtype == np.float32 and grad.dtype == np.float32 and rows.dtype == np.float32
    # reductions accumulate in float64: half a million rows do not drift
    np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
    np.testing.assert_allclose(total, want_rows.sum(), rtol=1e-6)
    # each number: a few float32 ulps
    assert_close(rows, want_rows, np.float32, rtol=1e-6)
    assert_close(grad, want_grad, np.float32, rtol=1e-5)


def test_float32_large_class_count_accuracy(backend, rng):
    logits = random_logits(rng, (4, 50_000), np.float32)
    target = np.array([0, 49_999, 12_345, -100])
    options = dict(weight=rng.uniform(0.5, 2.0, 50_000).astype(np.float32), label_smoothing=0.1)
    for reduction in REDUCTIONS:
        want_loss, want_grad = oracle_xent(logits, target, reduction=reduction, **options)
        loss, grad = fastxent.cross_entropy_with_grad(logits, target, reduction=reduction,
                                                      **options)
        assert_close(loss, want_loss, np.float32, rtol=1e-5)
        assert_close(grad, want_grad, np.float32, rtol=1e-5)


# ------------------------------------------------------------------ compiled against reference

ISA_CAPS = ("baseline", "avx2", "avx512")


@pytest.fixture(params=ISA_CAPS)
def compiled_isa(request):
    """Selects the compiled backend with its row kernels capped at each
    instruction set in turn (fastxent._config.set_isa, a hook for tests)."""
    previous_backend = fastxent.get_backend()
    previous_cap = _config.config()["simd"].split()[0]  # e.g. "avx2", "baseline (x86-64 SSE2)"
    try:
        in_use = _config.set_isa(request.param)
    except RuntimeError as exc:
        pytest.skip(f"the compiled backend is not available: {exc}")
    try:
        if not in_use.startswith(request.param):
            pytest.skip(f"this CPU does not run the {request.param} kernels (best: {in_use})")
        fastxent.set_backend("compiled")
        yield in_use
    finally:
        fastxent.set_backend(previous_backend)
        _config.set_isa(previous_cap)


COMPARE_SHAPES = [((7, 5), -1), ((3, 1), -1), ((3, 4, 6), 1), ((2, 2500), -1), ((3000, 17), -1),
                  ((0, 3), -1), ((5,), 0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["index", "prob"])
def test_compiled_matches_reference(compiled_isa, rng, dtype, kind):
    rtol = {np.float32: 2e-6, np.float64: 1e-12}[dtype]
    ignores = ("absent", "default", "custom") if kind == "index" else ("absent",)
    for (shape, axis), weighted, ignore, ls, reduction in itertools.product(
            COMPARE_SHAPES, (False, True), ignores, (0.0, 0.1), REDUCTIONS):
        threads = 2 if shape[0] >= 3000 else 1  # several blocks of rows: two threads
        logits, target, options = make_case(rng, shape, axis, dtype, kind, weighted, ignore, ls,
                                            reduction)
        with fastxent.num_threads(threads), np.errstate(all="ignore"):
            loss, grad = fastxent.cross_entropy_with_grad(logits, target, **options)
            want_loss, want_grad = reference.cross_entropy_with_grad(logits, target, **options)
            loss_only = fastxent.cross_entropy(logits, target, **options)
        case = f"shape={shape} axis={axis} {options} threads={threads}"
        assert type(loss) is type(want_loss) and loss.dtype == want_loss.dtype, case
        assert grad.dtype == want_grad.dtype and grad.shape == want_grad.shape, case
        assert_close(loss, want_loss, dtype, rtol=rtol, err_msg=case)
        assert_close(loss_only, want_loss, dtype, rtol=rtol, err_msg=case)
        assert_close(grad, want_grad, dtype, rtol=rtol, err_msg=case,
                     floor=gradient_floor(logits, options))


@pytest.mark.parametrize("bad_label", [-1, 10, -(2**63), 2**63 - 1, -99, -101])
@pytest.mark.parametrize("in_place", [False, True])
def test_mean_pass_over_labels_finds_the_first_bad_one(backend, bad_label, in_place):
    """The mean's pass over the labels (and the in-place gradient's) counts
    the rows that are not ignored and stops at the first label outside
    [0, C) that is not ignore_index, wherever it is and however far out."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((5000, 10)).astype(np.float32)
    y = rng.integers(0, 10, 5000)
    y[::3] = -100
    y[4321] = bad_label
    y[4999] = -1  # a later bad label is not the one named
    before = x.copy()
    with pytest.raises(IndexError, match=rf"class label {bad_label} at position \(4321,\)"):
        fastxent.cross_entropy_with_grad(x, y, out=x if in_place else None)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_over_many_ignored_rows_matches_torch(torch, backend, weighted):
    rng = np.random.default_rng(18)
    x = rng.standard_normal((65536, 10)).astype(np.float32)
    y = rng.integers(0, 10, 65536)
    y[rng.random(65536) < 0.4] = -100
    w = rng.random(10).astype(np.float32) if weighted else None
    loss, grad = fastxent.cross_entropy_with_grad(x, y, weight=w)
    ref_loss, ref_grad = torch_xent(torch, x, y, weight=w)
    assert_close(loss, ref_loss, np.float32)
    assert_close(grad, ref_grad, np.float32)
