"""What the tests share: constants, tolerances, independent references and
helpers (importable by name: tests/conftest.py puts this directory on the
path). Fixtures stay in conftest.py.

References, neither of which uses fastxent:

* ``torch_xent``: torch.nn.functional.cross_entropy and its autograd, in
  float64 (the caller passes the ``torch`` fixture's module).
* ``oracle_xent``: the same semantics written out with scipy.special.log_softmax
  and the analytic gradient, in float64.
"""

import contextlib

import numpy as np
import pytest
from scipy.special import log_softmax

BACKENDS = ("compiled", "numpy")

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
REDUCTIONS = ("none", "sum", "mean")

# Tolerances of a result of the given dtype against a float64 reference, in
# one place. RTOL: softmax cross-entropy against PyTorch or the oracle (its
# float64 gradients are differences of terms of the loss's size);
# RTOL_TIGHT: the binary losses, nll_loss and the special functions, whose
# float64 results keep more digits.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 1e-3}
RTOL_TIGHT = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12, np.dtype(np.float16): 1e-3}


# --------------------------------------------------------------------------- references


def _is_index(target):
    return np.asarray(target).dtype.kind in "iu"


def torch_xent(
    torch,
    logits,
    target,
    *,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    axis=-1,
):
    """(loss, grad) from torch in float64; grad is that of loss (of loss.sum()
    for reduction="none"), in the layout of `logits`."""
    logits = np.asarray(logits)
    class_dim = 1 if logits.ndim > 1 else 0
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, class_dim)
    xt = torch.tensor(np.ascontiguousarray(x), dtype=torch.float64, requires_grad=True)
    target = np.asarray(target)
    if _is_index(target):
        tt = torch.tensor(target.astype(np.int64))
    else:
        t = np.moveaxis(np.asarray(target, dtype=np.float64), axis, class_dim)
        tt = torch.tensor(np.ascontiguousarray(t), dtype=torch.float64)
    wt = None if weight is None else torch.tensor(np.asarray(weight, dtype=np.float64))
    loss = torch.nn.functional.cross_entropy(
        xt,
        tt,
        weight=wt,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )
    (loss.sum() if reduction == "none" else loss).backward()
    grad = np.moveaxis(xt.grad.numpy(), class_dim, axis)
    return loss.detach().numpy(), grad


def oracle_xent(
    logits,
    target,
    *,
    weight=None,
    ignore_index=-100,
    reduction="mean",
    label_smoothing=0.0,
    axis=-1,
):
    """(loss, grad) with torch's semantics, in float64, from scipy's log_softmax
    and the analytic gradient. Labels are assumed valid."""
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1)
    batch_shape, n_classes = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, n_classes)
    eps = float(label_smoothing)
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        logp = log_softmax(x, axis=1)
        p = np.exp(logp)
        target = np.asarray(target)
        if _is_index(target):
            t = target.reshape(-1).astype(np.int64)
            counted = t != ignore_index
            labels = np.where(counted, t, 0)
            rows = np.arange(len(t))
            w_y = np.where(counted, w[labels], 0.0)
            nll = -logp[rows, labels] * w_y
            smooth = np.where(counted, -(logp * w).sum(axis=1), 0.0)
            row_loss = (1 - eps) * nll + eps / n_classes * smooth
            onehot = np.zeros_like(x)
            onehot[rows, labels] = 1.0
            row_grad = (1 - eps) * w_y[:, None] * (p - onehot) + eps / n_classes * (w.sum() * p - w)
            row_grad[~counted] = 0.0
            denom = w_y.sum()
        else:
            t = np.moveaxis(np.asarray(target, dtype=np.float64), axis, -1).reshape(x.shape)
            wt = ((1 - eps) * t + eps / n_classes) * w
            row_loss = -(wt * logp).sum(axis=1)
            row_grad = wt.sum(axis=1, keepdims=True) * p - wt
            denom = float(x.shape[0])
        if reduction == "none":
            loss, grad = row_loss.reshape(batch_shape), row_grad
        elif reduction == "sum":
            loss, grad = row_loss.sum(), row_grad
        else:
            loss = row_loss.sum() / denom
            grad = row_grad / denom
            if _is_index(target):
                grad[~counted] = 0.0  # torch: ignored rows get 0, even when denom is 0
    grad = np.moveaxis(grad.reshape(batch_shape + (n_classes,)), -1, axis)
    return np.asarray(loss, dtype=np.float64), grad


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def selected_backend(name):
    """fastxent.set_backend(name) for the block, then the previous backend
    again; skips the test where that backend is not available."""
    import fastxent

    previous = fastxent.get_backend()
    try:
        fastxent.set_backend(name)
    except RuntimeError as exc:
        pytest.skip(f"backend {name!r} is not available: {exc}")
    try:
        yield name
    finally:
        fastxent.set_backend(previous)


# The operations that read float16 (and bfloat16) inputs as they are and give
# results in that dtype (docs/conventions.md); the others compute in float32.
KEEPS_HALF = frozenset(
    {
        "cross_entropy",
        "cross_entropy_with_grad",
        "nll_loss",
        "nll_loss_with_grad",
        "softmax",
        "log_softmax",
        "logsumexp",
        "binary_cross_entropy_with_logits",
        "binary_cross_entropy_with_logits_with_grad",
    }
)


def result_dtype(dtype):
    """The dtype fastxent computes in for logits of `dtype` (API.md)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 4:  # float16, float32, either byte order
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def assert_close(
    actual, expected, dtype, *, rtol=None, atol=None, floor=0.0, rtols=RTOL, err_msg=""
):
    """actual (of `dtype`) against a float64 reference, with the relative
    tolerance of `dtype` (from the table `rtols`) and an absolute one of rtol
    times the reference's largest magnitude (elements near zero are differences
    of terms that large), or times `floor` when that is larger: the natural size
    of the quantity, for references that are rounding noise around 0. An
    all-zero reference without a floor gets an absolute tolerance of rtol; an
    explicit `atol` replaces all of this. NaN must match NaN."""
    rtol = rtols[np.dtype(dtype)] if rtol is None else rtol
    expected = np.asarray(expected, dtype=np.float64)
    if atol is None:
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(finite.max() if finite.size else 0.0, floor)
        atol = rtol * (scale if scale > 0 else 1.0)
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        expected,
        rtol=rtol,
        atol=atol,
        equal_nan=True,
        err_msg=err_msg,
    )


def gradient_floor(logits, options):
    """A lower bound on the natural size of the gradient's elements (one
    sample's share of a weighted mean), for assert_close(floor=...)."""
    axis = options.get("axis", -1) % np.ndim(logits)
    rows = max(1, int(np.prod(np.shape(logits)[:axis] + np.shape(logits)[axis + 1 :])))
    weight = options.get("weight")
    w_min = 1.0 if weight is None else float(np.min(np.abs(weight)))
    return min(1.0, w_min) / rows


def check_loss_type(loss, reduction, batch_shape, dtype):
    """A reduced loss is a NumPy scalar of `dtype`; "none" an array of the batch shape."""
    dtype = np.dtype(dtype)
    if reduction == "none":
        assert isinstance(loss, np.ndarray), type(loss)
        assert loss.shape == tuple(batch_shape)
    else:
        assert isinstance(loss, np.generic) and not isinstance(loss, np.ndarray), type(loss)
    assert loss.dtype == dtype, (loss.dtype, dtype)


class Snapshot:
    """Copies of every array argument, to check that a call left them unchanged."""

    def __init__(self, *arrays):
        self.items = [(a, np.array(a, copy=True)) for a in arrays if isinstance(a, np.ndarray)]

    def assert_unchanged(self):
        for arr, copy in self.items:
            assert arr.dtype == copy.dtype and arr.shape == copy.shape
            # compare bytes, so that NaN, -0.0 and every bit count
            assert arr.tobytes() == copy.tobytes(), "an input array was modified"


def with_layout(values, layout):
    """An array equal to `values` (except for "broadcast", whose values are those
    of its first slice repeated) in the given memory layout."""
    values = np.asarray(values)
    if layout == "c":
        return np.ascontiguousarray(values)
    if layout == "fortran":
        out = np.asfortranarray(values)
        # not C-ordered too (which it is when at most one axis is longer than 1)
        assert sum(n > 1 for n in values.shape) < 2 or not out.flags.c_contiguous
        return out
    if layout == "strided":
        big = np.full(tuple(2 * s + 1 for s in values.shape), 99, values.dtype)
        view = big[tuple(slice(1, None, 2) for _ in values.shape)]
        view[...] = values
        return view
    if layout == "negative":
        flipped = np.flip(values).copy()
        return np.flip(flipped)  # negative strides on every axis
    if layout == "readonly":
        out = values.copy()
        out.flags.writeable = False
        return out
    if layout == "broadcast":
        first = values[(slice(0, 1),) * values.ndim] if values.ndim else values
        return np.broadcast_to(first, values.shape)  # zero strides, read-only
    if layout == "unaligned":
        raw = bytearray(values.nbytes + 1)
        out = np.frombuffer(raw, dtype=values.dtype, offset=1, count=values.size)
        out = out.reshape(values.shape)
        out[...] = values
        assert values.dtype.itemsize == 1 or not out.flags.aligned
        return out
    raise AssertionError(layout)


def layouts(values):
    """(name, array): `values` Fortran-ordered, strided, with negative strides
    and read-only (with_layout's kinds, under the names the tests report)."""
    for name, layout in [
        ("fortran", "fortran"),
        ("strided", "strided"),
        ("negative-stride", "negative"),
        ("read-only", "readonly"),
    ]:
        yield name, with_layout(values, layout)


def run_both(fn, fn_with_grad, *args, **options):
    """(loss, grad) from fn_with_grad(*args, **options), having checked that fn
    gives the same loss and that neither call modifies an array argument."""
    snapshot = Snapshot(*args, *options.values())
    loss = fn(*args, **options)
    snapshot.assert_unchanged()
    loss2, grad = fn_with_grad(*args, **options)
    snapshot.assert_unchanged()
    np.testing.assert_array_equal(loss, loss2)
    return loss, grad


def central_difference(f, x, h, *, relative=False):
    """d f / d x by central differences, element by element, in float64; the
    step is h, or h * max(1, |x_i|) with `relative`."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        step = h * max(1.0, abs(orig)) if relative else h
        flat[i] = orig + step
        up = float(f(x))
        flat[i] = orig - step
        down = float(f(x))
        flat[i] = orig
        gflat[i] = (up - down) / (2 * step)
    return grad


def random_logits(rng, shape, dtype=np.float64, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def random_probs(rng, shape, axis, dtype=np.float64):
    """Non-negative rows summing to 1 along `axis` (to the precision of `dtype`)."""
    t = rng.random(shape) + 0.05
    return (t / t.sum(axis=axis, keepdims=True)).astype(dtype)


def random_labels(rng, batch_shape, n_classes, *, ignore_index=None, dtype=np.int64):
    """Labels in [0, n_classes); with ignore_index, about a third of them are
    replaced by it (at least one, and at least one is kept when there are two
    or more)."""
    labels = np.asarray(rng.integers(0, n_classes, size=batch_shape))
    if ignore_index is not None and labels.size:
        flat = labels.reshape(-1)
        mask = rng.random(flat.size) < 0.35
        mask[rng.integers(flat.size)] = True
        if flat.size >= 2 and mask.all():
            mask[0] = False
        flat[mask] = ignore_index
        if ignore_index in range(n_classes) and flat.size >= 2 and (flat == ignore_index).all():
            flat[0] = (ignore_index + 1) % n_classes
        labels = flat.reshape(batch_shape)
    return labels.astype(dtype)


def close_tight(actual, expected, dtype, **options):
    """assert_close with the RTOL_TIGHT table."""
    assert_close(actual, expected, dtype, rtols=RTOL_TIGHT, **options)


# --------------------------------------------------------------------------- the registry


class Operation:
    """A public operation, as the generic tests (test_operations.py) see it:
    its name in fastxent and fastxent.reference, a representative problem,
    and where its N x C result is (the one out= takes), if it has one.

    make(rng, shape, dtype) -> (args, kwargs): shape is (rows, classes); the
    first argument is the input out= is shaped like. variants: keyword
    arguments to run it with besides kwargs. result_index: the position of
    the N x C result in the returned tuple (None: the result is the returned
    array itself; no out= when has_out is False). rtols: the tolerance table
    of the compiled result against its NumPy twin (RTOL_TIGHT where the
    float64 results keep more digits, as for the family's references)."""

    def __init__(
        self, name, make, *, has_out=False, result_index=None, variants=({},), rtols=RTOL_TIGHT
    ):
        self.name, self.make, self.has_out = name, make, has_out
        self.result_index, self.variants, self.rtols = result_index, variants, rtols

    def __repr__(self):
        return self.name

    @property
    def fn(self):
        import fastxent

        return getattr(fastxent, self.name)

    @property
    def twin(self):
        from fastxent import reference

        return getattr(reference, self.name)

    def result(self, returned):
        """The N x C result out= fills (or the loss, the first result), from
        what the call returned: an array, or a tuple with side outputs."""
        if self.result_index is None:
            return returned[0] if isinstance(returned, tuple) else returned
        return returned[self.result_index]


def as_tuple(returned):
    """A call's results as a tuple of arrays."""
    items = returned if isinstance(returned, tuple) else (returned,)
    return tuple(np.asarray(item) for item in items)


def _counted_labels(rng, shape):
    """Labels with some rows ignored (-100), the first one counted (so that a
    broadcast of the first row, or the first row alone, counts too)."""
    y = random_labels(rng, shape[:1], shape[1], ignore_index=-100)
    y[:1] = shape[1] - 1
    return y


def _labels(rng, shape, dtype):
    return (random_logits(rng, shape, dtype), _counted_labels(rng, shape)), {}


def _class_probs(rng, shape, dtype):
    return (random_logits(rng, shape, dtype), random_probs(rng, shape, 1, dtype)), {}


def _log_probs(rng, shape, dtype):
    x = log_softmax(random_logits(rng, shape), axis=1).astype(dtype)
    return (x, _counted_labels(rng, shape)), {}


def _binary_logits(rng, shape, dtype):
    return (random_logits(rng, shape, dtype), rng.random(shape).astype(dtype)), {}


def _binary_probs(rng, shape, dtype):
    p = rng.uniform(0.001, 0.999, shape).astype(dtype)
    return (p, rng.random(shape).astype(dtype)), {}


def _rows(rng, shape, dtype):
    return (random_logits(rng, shape, dtype),), {}


def _distribution(rng, shape, dtype):
    return (random_probs(rng, shape, 1, dtype),), {}


def _two_distributions(rng, shape, dtype):
    return (random_probs(rng, shape, 1, dtype), random_probs(rng, shape, 1, dtype)), {}


# Array options of a variant, made from the shape of the operation's first argument.


def _class_weight(shape):
    return np.linspace(0.5, 2.0, shape[-1])


def _row_weight(shape):
    return np.linspace(0.5, 2.0, shape[0]).reshape(shape[0], 1)


def _element_weight(shape):
    return np.linspace(0.5, 2.0, int(np.prod(shape))).reshape(shape)


def _sample_weight(shape):
    """One weight per row (sample_weight of the class losses), one of them negative."""
    w = np.linspace(0.25, 2.0, shape[0])
    w[1:2] = -0.5
    return w


_REDUCED = tuple({"reduction": r} for r in REDUCTIONS)
_WEIGHTED = ({"weight": _class_weight}, {"weight": _class_weight, "reduction": "none"})
_CLASS_VARIANTS = (
    _REDUCED
    + ({"label_smoothing": 0.1},)
    + _WEIGHTED
    + ({"weight": _class_weight, "label_smoothing": 0.1, "reduction": "sum"},)
)
# The options of the class losses' finishing step (sample_weight, z_loss,
# softcap, side outputs), alone and together.
_SAMPLE_WEIGHTED = (
    {"sample_weight": _sample_weight},
    {"sample_weight": _sample_weight, "weight": _class_weight, "reduction": "none"},
)
_LOGIT_OPTIONS = _SAMPLE_WEIGHTED + (
    {"z_loss": 1e-2, "return_lse": True, "return_accuracy": True},
    {"softcap": 4.0, "reduction": "sum"},
    {
        "softcap": 4.0,
        "z_loss": 1e-2,
        "label_smoothing": 0.1,
        "weight": _class_weight,
        "sample_weight": _sample_weight,
        "return_lse": True,
        "return_accuracy": True,
    },
)
_NLL_OPTIONS = _SAMPLE_WEIGHTED + (
    {"return_accuracy": True},
    {"sample_weight": _sample_weight, "return_accuracy": True, "reduction": "sum"},
)
_ELEMENT_WEIGHTED = ({"weight": _element_weight}, {"weight": _element_weight, "reduction": "none"})
_BINARY_VARIANTS = _REDUCED + _WEIGHTED + ({"weight": _row_weight},) + _ELEMENT_WEIGHTED
_BINARY_LOGITS_VARIANTS = (
    _BINARY_VARIANTS
    + ({"pos_weight": _class_weight},)
    + tuple({**v, "pos_weight": _element_weight} for v in _ELEMENT_WEIGHTED)
)
_ROW_VARIANTS = ({}, {"axis": 0})
_DISTRIBUTION_VARIANTS = _ROW_VARIANTS + ({"base": 2},)

# Every public operation (fastxent.__all__'s functions of arrays). A new one
# gets an entry here, and the generic checks run over it.
OPERATIONS = [
    Operation("cross_entropy", _labels, variants=_CLASS_VARIANTS + _LOGIT_OPTIONS, rtols=RTOL),
    Operation("cross_entropy", _class_probs, variants=_CLASS_VARIANTS, rtols=RTOL),
    Operation(
        "cross_entropy_with_grad",
        _labels,
        has_out=True,
        result_index=1,
        variants=_CLASS_VARIANTS + _LOGIT_OPTIONS,
        rtols=RTOL,
    ),
    Operation(
        "cross_entropy_with_grad",
        _class_probs,
        has_out=True,
        result_index=1,
        variants=_CLASS_VARIANTS + _LOGIT_OPTIONS,
        rtols=RTOL,
    ),
    Operation("nll_loss", _log_probs, variants=_REDUCED + _WEIGHTED + _NLL_OPTIONS),
    Operation(
        "nll_loss_with_grad",
        _log_probs,
        has_out=True,
        result_index=1,
        variants=_REDUCED + _WEIGHTED + _NLL_OPTIONS,
    ),
    Operation("binary_cross_entropy_with_logits", _binary_logits, variants=_BINARY_LOGITS_VARIANTS),
    Operation(
        "binary_cross_entropy_with_logits_with_grad",
        _binary_logits,
        has_out=True,
        result_index=1,
        variants=_BINARY_LOGITS_VARIANTS,
    ),
    Operation("binary_cross_entropy", _binary_probs, variants=_BINARY_VARIANTS),
    Operation(
        "binary_cross_entropy_with_grad",
        _binary_probs,
        has_out=True,
        result_index=1,
        variants=_BINARY_VARIANTS,
    ),
    Operation("softmax", _rows, has_out=True, variants=_ROW_VARIANTS),
    Operation("log_softmax", _rows, has_out=True, variants=_ROW_VARIANTS),
    Operation("logsumexp", _rows, variants=_ROW_VARIANTS),
    Operation("entropy", _distribution, variants=_DISTRIBUTION_VARIANTS),
    Operation("kl_divergence", _two_distributions, variants=_DISTRIBUTION_VARIANTS),
]


def options_of(args, kwargs, variant):
    """The keyword arguments of a call: kwargs and the variant, with an array
    option given as a function of the first argument's shape made an array
    (of that argument's dtype)."""
    options = {**kwargs, **variant}
    for name, value in options.items():
        if callable(value):
            options[name] = value(args[0].shape).astype(args[0].dtype)
    return options


def variant_options(op, args, kwargs):
    """(variant, the keyword arguments of its call) for each variant of op."""
    for variant in op.variants:
        yield variant, options_of(args, kwargs, variant)


def array_options(op):
    """The names of the array options (weights) some variant of `op` passes."""
    return sorted({name for v in op.variants for name, value in v.items() if callable(value)})
