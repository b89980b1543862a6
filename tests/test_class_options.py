"""The options of the class losses computed in the kernels' finishing step:
sample_weight, z_loss, softcap and the side outputs return_lse and
return_accuracy, on cross_entropy, nll_loss and their _with_grad forms.

Values against references that do not use fastxent: PyTorch's
F.cross_entropy with reduction="none" and autograd of the formulas written out
in float64 (the z-loss, the soft cap, the weighted mean), scikit-learn's
log_loss and accuracy_score with sample_weight, Keras's losses with
sample_weight, and central differences. The generic checks (twin, thread
counts, layouts, out=, inputs unchanged) run over these options through the
registry's variants (fastxent_testing.OPERATIONS)."""

import importlib.util
import os
import sys
import warnings

import numpy as np
import pytest

if "keras" not in sys.modules:  # Keras picks its backend at its first import (see test_compat)
    os.environ["KERAS_BACKEND"] = "torch" if importlib.util.find_spec("torch") else "numpy"

import fastxent  # noqa: E402
from fastxent_testing import (  # noqa: E402
    DTYPES,
    REDUCTIONS,
    Snapshot,
    assert_close,
    central_difference,
    random_labels,
    random_logits,
    random_probs,
)

IGNORE = -100


def torch_reference(torch, x, target, *, weight=None, reduction="mean", label_smoothing=0.0,
                    sample_weight=None, z_loss=0.0, softcap=None):
    """(loss, grad, lse) in float64 from PyTorch: F.cross_entropy's per-sample
    losses (reduction="none") of the soft-capped logits, plus z * lse**2 on the
    counted samples, times the sample weights, then summed, or divided by the
    sum over counted samples of sample weight x class weight (of the sample
    weights, for probabilities); grad by autograd. Classes on the last axis of
    x (N, C); lse is NaN for ignored samples."""
    F = torch.nn.functional
    xt = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    capped = softcap * torch.tanh(xt / softcap) if softcap is not None else xt
    target = np.asarray(target)
    w = None if weight is None else torch.tensor(np.asarray(weight, np.float64))
    n = x.shape[0]
    sw = torch.ones(n, dtype=torch.float64) if sample_weight is None else \
        torch.tensor(np.asarray(sample_weight, np.float64))
    if target.dtype.kind in "iu":
        tt = torch.tensor(target.astype(np.int64))
        ce = F.cross_entropy(capped, tt, weight=w, ignore_index=IGNORE, reduction="none",
                             label_smoothing=label_smoothing)
        counted = torch.tensor(target != IGNORE)
        labels = torch.tensor(np.where(target != IGNORE, target, 0))
        w_y = torch.ones(n, dtype=torch.float64) if w is None else w[labels]
        denominator = (sw * w_y * counted).sum()
    else:
        ce = F.cross_entropy(capped, torch.tensor(np.asarray(target, np.float64)), weight=w,
                             reduction="none", label_smoothing=label_smoothing)
        counted = torch.ones(n, dtype=torch.bool)
        denominator = sw.sum()
    lse = torch.logsumexp(capped, dim=1)
    row = (ce + z_loss * lse**2 * counted) * sw
    loss = {"none": row, "sum": row.sum(), "mean": row.sum() / denominator}[reduction]
    loss.sum().backward()
    lse = np.where(counted.numpy(), lse.detach().numpy(), np.nan)
    return loss.detach().numpy(), xt.grad.numpy(), lse


def accuracy_reference(x, target, sample_weight=None, softcap=None):
    """scikit-learn's accuracy_score of np.argmax over the counted samples."""
    accuracy_score = pytest.importorskip("sklearn.metrics").accuracy_score

    x = np.asarray(x, np.float64)
    if softcap is not None:
        x = softcap * np.tanh(x / softcap)
    target = np.asarray(target)
    truth = target if target.dtype.kind in "iu" else np.argmax(target, axis=1)
    counted = truth != IGNORE
    sw = None if sample_weight is None else np.asarray(sample_weight)[counted]
    return accuracy_score(truth[counted], np.argmax(x, axis=1)[counted], sample_weight=sw)


def make_problem(rng, n_classes, kind, dtype, n_rows=40):
    x = random_logits(rng, (n_rows, n_classes), dtype)
    if kind == "index":
        target = random_labels(rng, (n_rows,), n_classes, ignore_index=IGNORE)
    else:
        target = random_probs(rng, (n_rows, n_classes), 1, dtype)
    return x, target


KINDS = ["index", "probs"]
CLASSES = [pytest.param(7, id="short-rows"), pytest.param(300, id="long-rows")]


# --------------------------------------------------------------------------- sample_weight


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("class_weight", [False, True], ids=["", "class-weight"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2], ids=["", "smoothing"])
def test_sample_weight_matches_torch_per_sample_losses(backend, torch, rng, n_classes, kind,
                                                       dtype, reduction, class_weight, smoothing):
    x, target = make_problem(rng, n_classes, kind, dtype)
    sample_weight = rng.uniform(-0.5, 3.0, x.shape[0])  # negative weights too
    options = dict(weight=rng.uniform(0.2, 2.0, n_classes) if class_weight else None,
                   reduction=reduction, label_smoothing=smoothing)
    snapshot = Snapshot(x, target, sample_weight)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, sample_weight=sample_weight,
                                                  **options)
    assert fastxent.cross_entropy(x, target, sample_weight=sample_weight, **options) == \
        pytest.approx(loss, nan_ok=True) if reduction != "none" else True
    snapshot.assert_unchanged()
    want_loss, want_grad, _ = torch_reference(torch, x, target, sample_weight=sample_weight,
                                              **options)
    assert loss.dtype == grad.dtype == dtype
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype, floor=1.0 / x.shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_sample_weight_is_the_weighted_per_sample_loss(backend, torch, rng, dtype, reduction):
    """nll_loss with sample_weight: torch's per-sample nll_loss, weighted, divided
    by the summed combined weights of the counted samples."""
    x, labels = make_problem(rng, 9, "index", np.float64)
    log_probs = torch.log_softmax(torch.tensor(x), 1).numpy().astype(dtype)
    weight, sample_weight = rng.uniform(0.2, 2.0, 9), rng.uniform(0.0, 2.0, len(labels))
    lp = torch.tensor(log_probs.astype(np.float64), requires_grad=True)
    per_sample = torch.nn.functional.nll_loss(lp, torch.tensor(labels), weight=torch.tensor(weight),
                                              ignore_index=IGNORE, reduction="none")
    row = per_sample * torch.tensor(sample_weight)
    counted = labels != IGNORE
    denominator = (sample_weight * weight[np.where(counted, labels, 0)] * counted).sum()
    want = {"none": row, "sum": row.sum(), "mean": row.sum() / denominator}[reduction]
    want.sum().backward()
    loss, grad = fastxent.nll_loss_with_grad(log_probs, labels, weight=weight,
                                             sample_weight=sample_weight, reduction=reduction)
    assert_close(loss, want.detach().numpy(), dtype)
    assert_close(grad, lp.grad.numpy(), dtype)


def test_sample_weight_broadcasts_to_the_samples(backend, torch, rng):
    """A (N, 1) sample_weight on (N, C, T) logits with (N, T) labels (classes on
    axis 1, PyTorch's layout) is that weight for every position of a sample."""
    x = random_logits(rng, (5, 4, 6))
    labels = random_labels(rng, (5, 6), 4, ignore_index=IGNORE)
    per_sample = rng.uniform(0.1, 2.0, (5, 1))
    loss, grad = fastxent.cross_entropy_with_grad(x, labels, axis=1, sample_weight=per_sample)
    flat_x = np.moveaxis(x, 1, -1).reshape(-1, 4)
    full = np.broadcast_to(per_sample, (5, 6)).reshape(-1)
    want_loss, want_grad, _ = torch_reference(torch, flat_x, labels.reshape(-1),
                                              sample_weight=full)
    assert_close(loss, want_loss, np.float64)
    assert_close(np.moveaxis(grad, 1, -1).reshape(-1, 4), want_grad, np.float64)
    # a scalar weight scales the sum, and cancels out of the mean
    assert_close(fastxent.cross_entropy(x, labels, axis=1, sample_weight=3.0, reduction="sum"),
                 3.0 * fastxent.reference.cross_entropy(x, labels, axis=1, reduction="sum"),
                 np.float64)


def test_unaligned_sample_weight_reaches_the_kernels_aligned(rng):
    """A float64 sample_weight at an odd address (a view into a byte buffer)
    is copied aligned before the kernels read it as doubles (undefined
    behaviour otherwise: UBSan stops on it), and gives the aligned call's bits."""
    from fastxent._kinds import Scores
    from fastxent._validate import prepare_classes

    x = random_logits(rng, (6, 3))
    labels = random_labels(rng, (6,), 3)
    weights = rng.uniform(0.1, 2.0, 6)
    raw = np.zeros(6 * 8 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64)
    unaligned[...] = weights
    assert not unaligned.flags.aligned
    problem = prepare_classes(x, labels, kind=Scores.LOGITS, weight=None, ignore_index=-100,
                              reduction="mean", label_smoothing=0.0, axis=None,
                              want_grad=True, out=None, sample_weight=unaligned)
    assert problem.sample_weight is not None and problem.sample_weight.flags.aligned
    got = fastxent.cross_entropy_with_grad(x, labels, sample_weight=unaligned)
    want = fastxent.cross_entropy_with_grad(x, labels, sample_weight=weights)
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_weight_matches_sklearn_log_loss(backend, rng, dtype):
    """sklearn.metrics.log_loss(y, p, sample_weight=w) = sum w_i (-log p_{i,y_i}) / sum w_i:
    nll_loss of log(p) and cross_entropy of log(p) with sample_weight."""
    metrics = pytest.importorskip("sklearn.metrics")
    probs = random_probs(rng, (60, 5), 1)
    labels = random_labels(rng, (60,), 5)
    sample_weight = rng.uniform(0.0, 3.0, 60)
    want = metrics.log_loss(labels, probs, sample_weight=sample_weight, labels=range(5))
    log_probs = np.log(probs).astype(dtype)
    assert_close(fastxent.nll_loss(log_probs, labels, sample_weight=sample_weight), want, dtype)
    assert_close(fastxent.cross_entropy(log_probs, labels, sample_weight=sample_weight), want,
                 dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_weight_sum_matches_keras(backend, rng, dtype):
    """Keras's losses with sample_weight and reduction="sum": sum w_i loss_i.
    (Keras's "sum_over_batch_size" divides by the batch size, not by the weights:
    fastxent's mean is PyTorch's weighted mean.)"""
    keras = pytest.importorskip("keras", minversion="3")
    x = random_logits(rng, (30, 6), dtype)
    labels = random_labels(rng, (30,), 6)
    probs = random_probs(rng, (30, 6), 1, dtype)
    sample_weight = rng.uniform(0.0, 2.0, 30).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        dense = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")
        want_sparse = keras.ops.convert_to_numpy(sparse(labels, x, sample_weight=sample_weight))
        want_dense = keras.ops.convert_to_numpy(dense(probs, x, sample_weight=sample_weight))
    rtol = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-6}[np.dtype(dtype)]
    assert_close(fastxent.cross_entropy(x, labels, sample_weight=sample_weight, reduction="sum"),
                 want_sparse, dtype, rtol=rtol)
    assert_close(fastxent.cross_entropy(x, probs, sample_weight=sample_weight, reduction="sum"),
                 want_dense, dtype, rtol=rtol)


BAD_SAMPLE_WEIGHTS = {
    "too-long": (lambda n: np.ones(n + 1), ValueError, r"shape \(9,\)"),
    "classes": (lambda n: np.ones((n, 5)), ValueError, r"shape \(8, 5\)"),
    "nan": (lambda n: np.where(np.arange(n) == 3, np.nan, 1.0), ValueError, r"nan at position \(3,\)"),
    "inf": (lambda n: np.where(np.arange(n) == 6, -np.inf, 1.0), ValueError, r"-inf at position \(6,\)"),
    "complex": (lambda n: np.ones(n, complex), TypeError, "complex128"),
    "text": (lambda n: "1", TypeError, "<U1"),
}


@pytest.mark.parametrize("case", BAD_SAMPLE_WEIGHTS)
@pytest.mark.parametrize("fn", ["cross_entropy", "cross_entropy_with_grad", "nll_loss",
                                "nll_loss_with_grad"])
def test_bad_sample_weight_raises_naming_it(backend, rng, fn, case):
    make, exc, value_re = BAD_SAMPLE_WEIGHTS[case]
    x = random_logits(rng, (8, 5))
    labels = random_labels(rng, (8,), 5)
    bad = make(8)
    snapshot = Snapshot(x, labels, bad)
    with pytest.raises(exc, match=rf"^sample_weight: .*{value_re}"):
        getattr(fastxent, fn)(x, labels, sample_weight=bad)
    with pytest.raises(exc, match=r"^sample_weight: "):  # also over the gradient in place
        if fn.endswith("_with_grad"):
            getattr(fastxent, fn)(x, labels, sample_weight=bad, out=x)
        else:
            raise exc("sample_weight: (no out=)")
    snapshot.assert_unchanged()


def test_out_must_not_overlap_sample_weight(backend, rng):
    x = random_logits(rng, (8, 5))
    out = np.empty((8, 5))
    with pytest.raises(ValueError, match="out: overlaps sample_weight"):
        fastxent.cross_entropy_with_grad(x, random_labels(rng, (8,), 5), out=out,
                                         sample_weight=out[:, 0])


# --------------------------------------------------------------------------- return_accuracy


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sample-weight"])
def test_accuracy_matches_sklearn(backend, rng, n_classes, kind, dtype, weighted):
    x, target = make_problem(rng, n_classes, kind, dtype, n_rows=200)
    x = np.round(x)  # ties: the first maximal class is the prediction, as np.argmax
    if kind == "index":  # and enough hits to tell a wrong count
        hit = rng.random(len(target)) < 0.5
        target = np.where(hit & (target != IGNORE), np.argmax(x, axis=1), target)
    sample_weight = rng.uniform(0.0, 2.0, len(x)) if weighted else None
    want = accuracy_reference(x, target, sample_weight)
    loss, accuracy = fastxent.cross_entropy(x, target, sample_weight=sample_weight,
                                            return_accuracy=True)
    assert isinstance(accuracy, np.generic) and accuracy.dtype == dtype
    assert_close(accuracy, want, dtype)
    returned = fastxent.cross_entropy_with_grad(x, target, sample_weight=sample_weight,
                                                return_accuracy=True)
    assert len(returned) == 3 and returned[2] == accuracy
    if kind == "index":
        log_probs = x - np.max(x, axis=1, keepdims=True)  # argmax kept, ties too
        _, nll_accuracy = fastxent.nll_loss(log_probs, target, sample_weight=sample_weight,
                                            return_accuracy=True)
        assert_close(nll_accuracy, want, dtype)


def test_accuracy_edge_cases(backend):
    x = np.array([[1.0, 3.0, 3.0], [np.nan, 0.0, 0.0], [5.0, np.inf, 0.0], [0.0, 1.0, 2.0]])
    # row 0: tie, first maximum (1) is right; row 1: NaN, not correct; row 2: an
    # infinite logit (NaN loss), not correct; row 3: ignored
    labels = np.array([1, 1, 1, IGNORE])
    _, accuracy = fastxent.cross_entropy(x, labels, return_accuracy=True)
    assert accuracy == pytest.approx(1 / 3)
    _, accuracy = fastxent.cross_entropy(x, np.array([2, 1, 1, IGNORE]), return_accuracy=True)
    assert accuracy == 0.0  # the tie's second maximum is not the prediction
    _, accuracy = fastxent.cross_entropy(x, np.full(4, IGNORE), reduction="sum",
                                         return_accuracy=True)
    assert np.isnan(accuracy)  # nothing counted


# --------------------------------------------------------------------------- z_loss, softcap, lse


@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [
    {"z_loss": 1e-2},
    {"softcap": 3.0},
    {"z_loss": 1e-3, "softcap": 5.0, "label_smoothing": 0.1},
    {"z_loss": 0.1, "weighted": True, "label_smoothing": 0.2},
    {"z_loss": 1e-2, "softcap": 2.0, "weighted": True},
], ids=["z", "cap", "z-cap-smoothing", "z-weights-smoothing", "z-cap-weights"])
def test_z_loss_and_softcap_match_torch(backend, torch, rng, n_classes, kind, dtype, reduction,
                                        options):
    options = dict(options)
    x, target = make_problem(rng, n_classes, kind, dtype)
    x = x * 2  # logits beyond the cap
    if options.pop("weighted", False):
        options["weight"] = rng.uniform(0.2, 2.0, n_classes)
        options["sample_weight"] = rng.uniform(0.0, 2.0, x.shape[0])
    want_loss, want_grad, want_lse = torch_reference(torch, x, target, reduction=reduction,
                                                     **options)
    snapshot = Snapshot(x, target)
    loss, grad, lse, accuracy = fastxent.cross_entropy_with_grad(
        x, target, reduction=reduction, return_lse=True, return_accuracy=True, **options)
    snapshot.assert_unchanged()
    assert lse.shape == target.shape[:1] and lse.dtype == dtype
    assert_close(loss, want_loss, dtype)
    assert_close(grad, want_grad, dtype, floor=1.0 / x.shape[0])
    assert_close(lse, want_lse, dtype)
    assert_close(accuracy, accuracy_reference(x, target, options.get("sample_weight"),
                                              options.get("softcap")), dtype)
    # the same with the gradient written over the logits, and without a gradient
    inplace = x.copy()
    returned = fastxent.cross_entropy_with_grad(inplace, target, reduction=reduction, out=inplace,
                                                return_lse=True, **options)
    assert returned[1] is inplace
    assert_close(inplace, want_grad, dtype, floor=1.0 / x.shape[0])
    loss_only, lse_only = fastxent.cross_entropy(x, target, reduction=reduction,
                                                 return_lse=True, **options)
    assert_close(loss_only, want_loss, dtype)
    np.testing.assert_array_equal(lse_only, lse)


def test_z_loss_and_softcap_gradient_is_the_central_difference(backend, rng):
    x = random_logits(rng, (6, 5)) * 2
    labels = np.array([0, 4, IGNORE, 2, 3, 1])
    options = dict(z_loss=0.05, softcap=2.5, label_smoothing=0.1,
                   sample_weight=np.linspace(0.5, 1.5, 6), weight=np.linspace(1, 2, 5))
    _, grad = fastxent.cross_entropy_with_grad(x, labels, **options)
    numeric = central_difference(lambda v: fastxent.cross_entropy(v, labels, **options), x, 1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_side_outputs_come_in_order_and_only_when_asked(backend, rng):
    x = random_logits(rng, (4, 3, 5))
    labels = random_labels(rng, (4, 3), 5, ignore_index=IGNORE)
    plain = fastxent.cross_entropy(x, labels, reduction="none")
    assert isinstance(plain, np.ndarray)
    loss, lse = fastxent.cross_entropy(x, labels, reduction="none", return_lse=True)
    np.testing.assert_array_equal(loss, plain)
    assert lse.shape == (4, 3)
    want_lse = np.log(np.exp(x).sum(axis=-1))
    assert_close(lse[labels != IGNORE], want_lse[labels != IGNORE], np.float64)
    assert np.isnan(lse[labels == IGNORE]).all()
    returned = fastxent.cross_entropy_with_grad(x, labels, return_lse=True, return_accuracy=True)
    assert len(returned) == 4 and returned[1].shape == x.shape and returned[2].shape == (4, 3)
    assert np.ndim(returned[3]) == 0


BAD_OPTIONS = [
    ("z_loss", -0.1, ValueError, r"-0\.1"),
    ("z_loss", np.nan, ValueError, "nan"),
    ("z_loss", "0.1", TypeError, "'0.1'"),
    ("softcap", 0.0, ValueError, r"0\.0"),
    ("softcap", -3, ValueError, "-3"),
    ("softcap", np.inf, ValueError, "inf"),
    ("softcap", "3", TypeError, "'3'"),
    ("return_lse", 1, TypeError, "1"),
    ("return_accuracy", "yes", TypeError, "'yes'"),
]


@pytest.mark.parametrize("name, value, exc, value_re", BAD_OPTIONS)
def test_bad_options_raise_naming_them(backend, rng, name, value, exc, value_re):
    x = random_logits(rng, (4, 3))
    labels = random_labels(rng, (4,), 3)
    snapshot = Snapshot(x, labels)
    with pytest.raises(exc, match=rf"^{name}: .*{value_re}"):
        fastxent.cross_entropy_with_grad(x, labels, out=x, **{name: value})
    snapshot.assert_unchanged()


def test_nll_loss_takes_no_logit_options(backend, rng):
    """z_loss, softcap and lse are options of logits: nll_loss does not take them."""
    x = random_logits(rng, (4, 3))
    for name, value in [("z_loss", 0.1), ("softcap", 2.0), ("return_lse", True)]:
        with pytest.raises(TypeError, match=name):
            fastxent.nll_loss(x, random_labels(rng, (4,), 3), **{name: value})


# --------------------------------------------------------------------------- linear_cross_entropy


@pytest.mark.parametrize("chunk_size", [None, 7, (5, 6)], ids=["whole", "rows", "rows-classes"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [
    {"sample_weight": True},
    {"z_loss": 1e-2, "softcap": 3.0, "sample_weight": True, "weighted": True,
     "label_smoothing": 0.1},
], ids=["sample-weight", "all"])
def test_linear_cross_entropy_options_match_torch(torch, rng, chunk_size, kind, dtype, reduction,
                                                  options):
    """linear_cross_entropy[_with_grad] with the options (row chunks, and classes
    in blocks) against PyTorch on the float64 logits hidden @ W.T + b, the
    gradients carried back through the product."""
    options = dict(options)
    n_rows, n_features, n_classes = 23, 4, 17
    hidden = rng.standard_normal((n_rows, n_features)).astype(dtype)
    head = (rng.standard_normal((n_classes, n_features)) * 1.5).astype(dtype)
    bias = rng.standard_normal(n_classes).astype(dtype)
    logits = hidden.astype(np.float64) @ head.T.astype(np.float64) + bias
    _, target = make_problem(rng, n_classes, kind, dtype, n_rows=n_rows)
    if options.pop("weighted", False):
        options["weight"] = rng.uniform(0.2, 2.0, n_classes)
    if options.pop("sample_weight", False):
        options["sample_weight"] = rng.uniform(-0.2, 2.0, n_rows)
    want_loss, want_grad, want_lse = torch_reference(torch, logits, target, reduction=reduction,
                                                     **options)
    want_accuracy = accuracy_reference(logits, target, options.get("sample_weight"),
                                       options.get("softcap"))
    loss, d_hidden, d_weight, d_bias, lse, accuracy = fastxent.linear_cross_entropy_with_grad(
        hidden, head, target, linear_bias=bias, reduction=reduction, chunk_size=chunk_size,
        return_lse=True, return_accuracy=True, **options)
    assert_close(loss, want_loss, dtype)
    assert_close(d_hidden, want_grad @ head.astype(np.float64), dtype)
    assert_close(d_weight, want_grad.T @ hidden.astype(np.float64), dtype)
    assert_close(d_bias, want_grad.sum(axis=0), dtype)
    assert_close(lse, want_lse, dtype)
    assert_close(accuracy, want_accuracy, dtype)
    loss_only, accuracy_only = fastxent.linear_cross_entropy(
        hidden, head, target, linear_bias=bias, reduction=reduction, chunk_size=chunk_size,
        return_accuracy=True, **options)
    assert_close(loss_only, want_loss, dtype)
    assert accuracy_only == accuracy
    twin = fastxent.reference.linear_cross_entropy_with_grad(
        hidden, head, target, linear_bias=bias, reduction=reduction, chunk_size=chunk_size,
        return_lse=True, return_accuracy=True, **options)
    for got, want in zip(twin, (want_loss, want_grad @ head, want_grad.T @ hidden,
                                want_grad.sum(axis=0), want_lse, want_accuracy), strict=True):
        assert_close(got, want, dtype)


def test_linear_cross_entropy_checks_the_options_before_any_gemm(rng):
    hidden, head = rng.standard_normal((6, 3)), rng.standard_normal((5, 3))
    labels = random_labels(rng, (6,), 5)
    for name, value, exc in [("sample_weight", np.ones(7), ValueError),
                             ("z_loss", -1.0, ValueError), ("softcap", 0, ValueError),
                             ("return_lse", "no", TypeError)]:
        with pytest.raises(exc, match=rf"^{name}: "):
            fastxent.linear_cross_entropy_with_grad(hidden, head, labels, **{name: value})


@pytest.mark.parametrize("n_rows", [1, 3])
def test_accuracy_and_sample_weight_of_few_very_long_rows(backend, torch, rng, n_rows):
    """Rows long enough to be split across threads (a path without options):
    with the options they take the row path and keep their values."""
    x = random_logits(rng, (n_rows, 140_000))
    labels = np.argmax(x, axis=1)
    labels[0] = (labels[0] + 1) % x.shape[1]  # the first row predicted wrong
    sample_weight = np.linspace(1.0, 2.0, n_rows)
    loss, grad, accuracy = fastxent.cross_entropy_with_grad(
        x, labels, sample_weight=sample_weight, return_accuracy=True)
    want_loss, want_grad, _ = torch_reference(torch, x, labels, sample_weight=sample_weight)
    assert_close(loss, want_loss, np.float64)
    assert_close(grad, want_grad, np.float64, floor=1.0 / x.size)
    assert_close(accuracy, accuracy_reference(x, labels, sample_weight), np.float64)
    _, plain_accuracy = fastxent.cross_entropy(x, labels, return_accuracy=True)
    assert_close(plain_accuracy, (n_rows - 1) / n_rows, np.float64)


@pytest.mark.parametrize("softcap", [1e-3, 0.5, 30.0, 1e6], ids=lambda c: f"cap={c:g}")
@pytest.mark.parametrize("n_classes", [7, 300])
def test_softcap_extremes_in_float32(backend, torch, rng, softcap, n_classes):
    """Logits far beyond the cap (|x| >> softcap: tanh saturated, the gradient
    through it vanishing), tiny and huge caps, and infinite logits (capped to
    +-softcap, a zero gradient through the cap), against PyTorch's autograd of
    the formula in float64."""
    x = (rng.standard_normal((20, n_classes)) * 10.0 ** rng.uniform(-2, 4, (20, 1))).astype(
        np.float32)
    x[3, 2], x[5, 0], x[5, 1] = np.inf, -np.inf, 3e38
    target = rng.integers(0, n_classes, 20)
    want_loss, want_grad, want_lse = torch_reference(torch, x, target, softcap=softcap,
                                                     reduction="none")
    loss, grad, lse = fastxent.cross_entropy_with_grad(x, target, softcap=softcap,
                                                       reduction="none", return_lse=True)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert_close(loss, want_loss, np.float32)
    assert_close(grad, want_grad, np.float32, floor=1.0)
    assert_close(lse, want_lse, np.float32)
    assert grad[3, 2] == 0 and grad[5, 0] == 0


@pytest.mark.parametrize("n_classes", [7, 300])
def test_softcap_of_nan_logits_gives_nan_rows(backend, torch, rng, n_classes):
    """A NaN logit makes its row's loss and gradient NaN, as PyTorch's; the
    other rows are untouched by it."""
    x = random_logits(rng, (6, n_classes)).astype(np.float32)
    x[2, 1] = np.nan
    target = rng.integers(0, n_classes, 6)
    loss, grad = fastxent.cross_entropy_with_grad(x, target, softcap=4.0, reduction="none")
    want_loss, want_grad, _ = torch_reference(torch, x, target, softcap=4.0, reduction="none")
    assert np.isnan(loss[2]) and np.isnan(grad[2]).all()
    assert np.isnan(want_loss[2]) and np.isnan(want_grad[2]).all()
    rest = np.arange(6) != 2
    assert_close(loss[rest], want_loss[rest], np.float32)
    assert_close(grad[rest], want_grad[rest], np.float32, floor=1.0)
