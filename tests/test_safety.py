"""Memory safety and wrong answers at the edges: ndarray subclasses whose
methods lie, buffers of the wrong size handed straight to the kernels,
in-place calls that overflow or fail, a mean over zero total weight, absurd
thread counts, fork() called from C, and the accuracy of the kernels' own
exp and log (against a long-double truth, in ulps, per instruction set)."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import Snapshot, oracle_xent
from scipy import special

import fastxent
from fastxent import _config

compiled_only = pytest.mark.skipif(
    _config._compiled is None, reason="the compiled extension is not built"
)
kernels = _config._compiled


def run_python(code, *, env=None, timeout=120):
    """Runs `code` in a fresh interpreter with this fastxent; returns the result."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastxent.__file__)), full_env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, check=False)


# ----------------------------------------------------------------------------------- 1. subclasses


class SmallerReshape(np.ndarray):
    """reshape, ravel and flatten give a one-element array, whatever was asked."""

    def reshape(self, *args, **kwargs):
        return np.zeros((1, 1), self.dtype)

    def ravel(self, *args, **kwargs):
        return np.zeros(1, self.dtype)

    def flatten(self, *args, **kwargs):
        return np.zeros(1, self.dtype)


class MoreRows(np.ndarray):
    """reshape says there are 64 times more rows than there are."""

    def reshape(self, *args, **kwargs):
        base = np.ndarray.view(self, np.ndarray)
        return np.zeros((64 * max(base.size, 1), 1), self.dtype)


class LyingShape(np.ndarray):
    """Its shape property claims 1000 rows."""

    @property
    def shape(self):
        return (1000,) + np.ndarray.view(self, np.ndarray).shape[1:]


class CorruptingFinalize(np.ndarray):
    """Every view or copy made of it fills its memory with garbage: a view
    shares the caller's memory, so the caller's input is destroyed too."""

    def __array_finalize__(self, obj):
        if isinstance(obj, CorruptingFinalize) and self.size and self.flags.writeable:
            base = np.ndarray.view(self, np.ndarray)
            base.fill(np.nan if base.dtype.kind == "f" else 77)


class LyingArrayFunction(np.ndarray):
    """Every NumPy function called on it answers zeros (or False)."""

    def __array_function__(self, func, types, args, kwargs):
        return False if func is np.may_share_memory else np.zeros(1)


LIARS = [SmallerReshape, MoreRows, LyingShape, CorruptingFinalize, LyingArrayFunction]


def _bce_logits_ref(x, t, w, pw):
    """PyTorch's binary_cross_entropy_with_logits (mean) and gradient, analytic."""
    log_weight = 1 + (pw - 1) * t
    loss = w * ((1 - t) * x + log_weight * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)))
    grad = w * (log_weight * special.expit(x) - pw * t) / x.size
    return loss.mean(), grad


def _bce_probs_ref(p, t, w):
    loss = -w * (t * np.log(p) + (1 - t) * np.log1p(-p))
    return loss.mean(), w * (p - t) / (p * (1 - p)) / p.size


def _nll_ref(lp, y, w):
    rows = np.arange(len(y))
    total = w[y].sum()
    grad = np.zeros_like(lp)
    grad[rows, y] = -w[y] / total
    return -(w[y] * lp[rows, y]).sum() / total, grad


def _subclass_cases():
    """name -> (function, {argument: plain array}, names of the keyword
    arguments among them, whether it takes out=, reference result)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 5))
    y = np.array([0, 1, 2, 3, 4, 2])  # every class: sklearn's log_loss infers them
    w = rng.uniform(0.5, 2.0, 5)
    p = special.softmax(rng.standard_normal((6, 5)), axis=-1)
    q = special.softmax(rng.standard_normal((6, 5)), axis=-1)
    t = rng.uniform(0, 1, (6, 5))
    bw = rng.uniform(0.5, 2.0, (6, 5))
    pw = rng.uniform(0.5, 2.0, 5)
    lp = special.log_softmax(x, axis=-1)
    onehot = np.eye(5)[y]
    minus_log_p_y = -np.log(p[np.arange(6), y])
    bce_probs = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    return {
        "cross_entropy": (fastxent.cross_entropy, {"logits": x, "target": y, "weight": w},
                          ("weight",), False, oracle_xent(x, y, weight=w)[0]),
        "nll_loss": (fastxent.nll_loss, {"log_probs": lp, "target": y, "weight": w}, ("weight",),
                     False, _nll_ref(lp, y, w)[0]),
        "binary_cross_entropy_with_logits": (
            fastxent.binary_cross_entropy_with_logits,
            {"logits": x, "target": t, "weight": bw, "pos_weight": pw}, ("weight", "pos_weight"),
            False, _bce_logits_ref(x, t, bw, pw)[0]),
        "binary_cross_entropy": (fastxent.binary_cross_entropy,
                                 {"probs": p, "target": t, "weight": bw}, ("weight",), False,
                                 _bce_probs_ref(p, t, bw)[0]),
        "sklearn.log_loss": (fastxent.sklearn.log_loss, {"y_true": y, "y_pred": p}, (), False,
                             minus_log_p_y.mean()),
        "keras.categorical_crossentropy": (fastxent.keras.categorical_crossentropy,
                                           {"y_true": onehot, "y_pred": p}, (), False,
                                           minus_log_p_y),
        "keras.sparse_categorical_crossentropy": (fastxent.keras.sparse_categorical_crossentropy,
                                                  {"y_true": y, "y_pred": p}, (), False,
                                                  minus_log_p_y),
        "keras.binary_crossentropy": (fastxent.keras.binary_crossentropy,
                                      {"y_true": t, "y_pred": p}, (), False, bce_probs.mean(-1)),
        "softmax": (fastxent.softmax, {"x": x}, (), True, special.softmax(x, axis=-1)),
        "log_softmax": (fastxent.log_softmax, {"x": x}, (), True,
                        special.log_softmax(x, axis=-1)),
        "softmax_over_all_axes": (functools.partial(fastxent.softmax, axis=(0, 1)), {"x": x}, (),
                                  True, special.softmax(x, axis=(0, 1))),
        "logsumexp": (fastxent.logsumexp, {"x": x}, (), False, special.logsumexp(x, axis=-1)),
        "logsumexp_weighted": (fastxent.logsumexp, {"x": x, "b": t}, ("b",), False,
                               special.logsumexp(x, axis=-1, b=t)),
        "entropy": (fastxent.entropy, {"p": p}, (), False, special.entr(p).sum(-1)),
        "kl_divergence": (fastxent.kl_divergence, {"p": p, "q": q}, (), False,
                          special.rel_entr(p, q).sum(-1)),
        "cross_entropy_with_grad": (fastxent.cross_entropy_with_grad,
                                    {"logits": x, "target": y, "weight": w}, ("weight",), True,
                                    oracle_xent(x, y, weight=w)),
        "cross_entropy_probabilities": (fastxent.cross_entropy,
                                        {"logits": x, "target": p}, (), False,
                                        oracle_xent(x, p)[0]),
        "nll_loss_with_grad": (fastxent.nll_loss_with_grad,
                               {"log_probs": lp, "target": y, "weight": w}, ("weight",), True,
                               _nll_ref(lp, y, w)),
        "binary_cross_entropy_with_logits_with_grad": (
            fastxent.binary_cross_entropy_with_logits_with_grad,
            {"logits": x, "target": t, "weight": bw, "pos_weight": pw},
            ("weight", "pos_weight"), True, _bce_logits_ref(x, t, bw, pw)),
        "binary_cross_entropy_with_grad": (fastxent.binary_cross_entropy_with_grad,
                                           {"probs": p, "target": t, "weight": bw}, ("weight",),
                                           True, _bce_probs_ref(p, t, bw)),
    }


SUBCLASS_CASES = _subclass_cases()
SUBCLASS_PARAMS = [
    pytest.param(case, arg, liar, id=f"{case}-{arg}-{liar.__name__}")
    for case, (_, arrays, _, takes_out, _) in SUBCLASS_CASES.items()
    for arg in list(arrays) + (["out", "out=input"] if takes_out else [])
    for liar in LIARS
]


@pytest.mark.parametrize("case, arg, liar", SUBCLASS_PARAMS)
def test_subclasses_are_read_and_written_through_their_base_class(backend, case, arg, liar):
    """An argument of a lying ndarray subclass gives the result of its
    memory as a plain array: no method or property of it is called, nothing
    is read or written outside it, and no input changes."""
    fn, arrays, keywords, _, expected = SUBCLASS_CASES[case]
    arrays = {name: value.copy() for name, value in arrays.items()}
    first = next(iter(arrays))
    out = None
    if arg == "out":
        out = np.full_like(arrays[first], -7.0).view(liar)
    elif arg == "out=input":
        arrays[first] = arrays[first].view(liar)
        out = arrays[first]
    else:
        arrays[arg] = arrays[arg].view(liar)
    untouched = Snapshot(*(np.ndarray.view(a, np.ndarray) for name, a in arrays.items()
                           if out is None or a is not out))
    positional = [a for name, a in arrays.items() if name not in keywords]
    options = {name: arrays[name] for name in keywords}
    if out is not None:
        options["out"] = out
    result = fn(*positional, **options)
    untouched.assert_unchanged()
    if isinstance(expected, tuple):  # (loss, gradient)
        loss, grad = result
        np.testing.assert_allclose(loss, expected[0], rtol=1e-10)
        np.testing.assert_allclose(np.ndarray.view(grad, np.ndarray), expected[1], rtol=1e-9,
                                   atol=1e-12)
        written = grad
    else:
        np.testing.assert_allclose(np.ndarray.view(np.asarray(result), np.ndarray), expected,
                                   rtol=1e-10, atol=1e-300)
        written = result
    if out is not None:
        assert written is out  # the caller's own object comes back, its memory written
        np.testing.assert_allclose(np.ndarray.view(out, np.ndarray),
                                   expected[1] if isinstance(expected, tuple) else expected,
                                   rtol=1e-9, atol=1e-12)


# -------------------------------------------------------------------------- 1. the kernels' checks


def _kernel_calls():
    """kernel name -> (function, the arrays of a good call, buffer names). The
    kernels take the validated problem records (fastxent._validate); these
    calls build them by hand, with any buffer of the wrong size."""
    from types import SimpleNamespace

    from fastxent._kinds import BinaryInput, Scores, Transform

    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4))
    p = special.softmax(x, axis=-1)
    y = rng.integers(0, 4, 7)

    # the per-row buffers of the options (sample_weight) and side outputs (lse, correct)
    per_row = {"sample_weight": np.ones(7), "lse": np.empty(7), "correct": np.zeros(7, np.uint8)}

    def class_loss(target, is_index):
        """The class_loss entry for targets of one kind."""
        def call(x, target, result, weight, row_loss, n_threads, sample_weight, lse, correct):
            problem = SimpleNamespace(x=x, target=target, result=result, weight=weight,
                                      is_index=is_index, scores=Scores.LOGITS,
                                      label_smoothing=0.0, ignore_index=-100, reduction="mean",
                                      sample_weight=sample_weight, z_loss=0.0, lse=lse,
                                      correct=correct, softcap=None)
            return kernels.class_loss(problem, row_loss=row_loss, n_threads=n_threads)

        return ("class_loss", call,
                {"x": x, "target": target, "result": np.empty((7, 4)), "weight": np.ones(4),
                 "row_loss": np.empty(7), **per_row})

    return {
        "class_loss-index": class_loss(y, True),
        "class_loss-probs": class_loss(p, False),
        "softmax_rows": ("softmax_rows",
            lambda x, result, n_threads: kernels.softmax_rows(
                SimpleNamespace(x=x, result=result), transform=Transform.SOFTMAX,
                n_threads=n_threads),
            {"x": x, "result": np.empty((7, 4))}),
        "logsumexp_rows": ("logsumexp_rows",
            lambda x, out, n_threads: kernels.logsumexp_rows(
                SimpleNamespace(x=x), out=out, n_threads=n_threads),
            {"x": x, "out": np.empty(7)}),
        "entropy_rows": ("entropy_rows",
            lambda p, q, out, n_threads: kernels.entropy_rows(
                SimpleNamespace(x=p), q=q, out=out, n_threads=n_threads),
            {"p": p, "q": p[::-1].copy(), "out": np.empty(7)}),
        "binary_loss": ("binary_loss",
            lambda x, target, weight, pos_weight, grad, elem_loss, n_threads: kernels.binary_loss(
                SimpleNamespace(x=x, input=BinaryInput.LOGITS, target=target, weight=weight,
                                pos_weight=pos_weight, grad=grad, reduction="mean"),
                elem_loss=elem_loss, n_threads=n_threads),
            {"x": x, "target": p, "weight": np.ones((1, 4)), "pos_weight": np.ones((7, 4)),
             "grad": np.empty((7, 4)), "elem_loss": np.empty((7, 4))}),
    }


KERNEL_CALLS = _kernel_calls() if kernels is not None else {}
KERNEL_BUFFER_PARAMS = [
    pytest.param(name, buffer, change, id=f"{name}-{buffer}-{change}")
    for name, (_, _, good) in KERNEL_CALLS.items()
    for buffer in good if buffer not in ("x", "p")
    for change in ("fewer", "more")
]


def _resized(arr, change):
    """arr with one row (element, for 1-D) fewer or more: a buffer of the wrong size."""
    rows = arr.shape[0] - 1 if change == "fewer" else arr.shape[0] + 1
    if arr.ndim == 2 and arr.shape[0] == 1:  # a row repeated for every row: wrong in its width
        return np.ones((1, arr.shape[1] + (-1 if change == "fewer" else 1)), arr.dtype)
    return np.resize(arr, (rows,) + arr.shape[1:])


@compiled_only
@pytest.mark.parametrize("name, buffer, change", KERNEL_BUFFER_PARAMS)
def test_kernels_refuse_buffers_of_the_wrong_size(name, buffer, change):
    kernel, fn, good = KERNEL_CALLS[name]
    args = {key: value.copy() for key, value in good.items()}
    fn(**args, n_threads=1)  # the good call works
    args[buffer] = _resized(args[buffer], change)
    before = Snapshot(*args.values())
    with pytest.raises(ValueError, match=rf"^{kernel}: {buffer} has (shape|length) "):
        fn(**args, n_threads=2)
    before.assert_unchanged()


@compiled_only
@pytest.mark.parametrize("name", list(KERNEL_CALLS))
def test_kernels_refuse_a_thread_count_below_one(name):
    kernel, fn, good = KERNEL_CALLS[name]
    with pytest.raises(ValueError, match=rf"^{kernel}: n_threads must be at least 1, got 0"):
        fn(**good, n_threads=0)


# --------------------------------------------------------------------- 2. BCE with logits in place


def _huge_bce_problems(dtype):
    """(logits, target, pos_weight): a mean that is 6e36, one loss of 3e39
    (beyond float32) among 499 of 10 log 2; and a -inf logit of target 1,
    whose loss is inf."""
    x = np.zeros(500, dtype)
    x[0] = -3e38
    return [(x, np.ones(500, dtype), np.full(500, 10.0, dtype)),
            (np.array([-np.inf, 1.0, 0.5], dtype), np.array([1.0, 0.0, 1.0], dtype),
             np.ones(3, dtype))]


def _bce_logits_exact(x, t, pw):
    """The mean loss and its gradient in float64 by logaddexp, exact in the
    limits (a -inf logit of target 1: loss inf, gradient -1 / n)."""
    x, t, pw = (np.asarray(a, np.float64) for a in (x, t, pw))
    with np.errstate(invalid="ignore"):
        loss = pw * t * np.logaddexp(0, -x) + np.where(t == 1, 0, (1 - t) * np.logaddexp(0, x))
    grad = ((1 + (pw - 1) * t) * special.expit(x) - pw * t) / x.size
    return loss.mean(), grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_place", [False, True], ids=["out=None", "out=logits"])
def test_bce_with_logits_in_place_keeps_the_overflowing_loss(backend, dtype, in_place):
    for x, t, pos_weight in _huge_bce_problems(dtype):
        expected_loss, expected_grad = _bce_logits_exact(x, t, pos_weight)
        logits = x.copy()
        loss, grad = fastxent.binary_cross_entropy_with_logits_with_grad(
            logits, t, pos_weight=pos_weight, out=logits if in_place else None)
        assert loss.dtype == dtype
        np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-9)
        if in_place:
            assert grad is logits


@pytest.mark.torch
def test_the_exact_bce_reference_is_torchs_where_torch_is_finite(torch):
    x, t, pos_weight = _huge_bce_problems(np.float64)[0]
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t), pos_weight=torch.tensor(pos_weight))
    expected.backward()
    loss, grad = _bce_logits_exact(x, t, pos_weight)
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
    assert 5.9e36 < loss < 6.1e36
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12)


# ------------------------------------------------------------------------- 3. errors before writes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_grad_in_place_checks_the_probabilities_before_writing(backend, dtype,
                                                                        reduction):
    p = np.full((3, 4), 0.25, dtype)
    p[1, 2] = 2.0
    t = np.full((3, 4), 0.5, dtype)
    before = Snapshot(p, t)
    with pytest.raises(ValueError, match=r"^probs: .*2\.0.* at position \(1, 2\) is outside"):
        fastxent.binary_cross_entropy_with_grad(p, t, reduction=reduction, out=p)
    before.assert_unchanged()


def test_bce_with_grad_in_place_checks_every_block_before_writing(backend):
    """The bad probability is the very last of many blocks, and threads split them."""
    p = np.full(300_000, 0.25)
    p[-1] = -0.5
    t = np.zeros_like(p)
    before = Snapshot(p, t)
    with fastxent.num_threads(2), \
            pytest.raises(ValueError, match=r"-0\.5.* at position \(299999,\)"):
        fastxent.binary_cross_entropy_with_grad(p, t, out=p)
    before.assert_unchanged()


@pytest.mark.parametrize("fn", [fastxent.cross_entropy_with_grad, fastxent.nll_loss_with_grad])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_class_losses_in_place_check_the_labels_before_writing(backend, fn, reduction):
    x = np.log(np.full((5, 3), 1 / 3))
    y = np.array([0, 1, 2, 3, 0])
    before = Snapshot(x, y)
    with pytest.raises(IndexError, match=r"class label 3 at position \(3,\)"):
        fn(x, y, reduction=reduction, out=x)
    before.assert_unchanged()


# ---------------------------------------------------------------------------- 4. zero total weight


@pytest.mark.torch
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_over_zero_total_weight_is_nan_as_torch(backend, torch, label_smoothing, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3)).astype(dtype)
    y = np.array([0, 0, -100, 0, 0, -100])
    w = np.array([0.0, 1.0, 2.0], dtype)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    expected = torch.nn.functional.cross_entropy(
        xt, torch.tensor(y), weight=torch.tensor(w.astype(np.float64)),
        label_smoothing=label_smoothing)
    expected.backward()
    assert np.isnan(expected.item())
    loss, grad = fastxent.cross_entropy_with_grad(x, y, weight=w, label_smoothing=label_smoothing)
    assert np.isnan(loss) and loss.dtype == dtype
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(xt.grad.numpy()))
    assert np.isnan(fastxent.cross_entropy(x, y, weight=w, label_smoothing=label_smoothing))


@pytest.mark.torch
def test_mean_over_weights_that_cancel_stays_torchs_infinity(backend, torch):
    """Only a zero total weight of non-negative weights is NaN: weights of
    both signs that add up to 0 give PyTorch's sum / 0."""
    x = np.array([[0.0, 1.0], [2.0, 0.5]])
    y = np.array([0, 1])
    w = np.array([1.0, -1.0])
    expected = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y),
                                                 weight=torch.tensor(w))
    assert fastxent.cross_entropy(x, y, weight=w) == expected.item() == -np.inf


# -------------------------------------------------------------------------------- 5. thread counts


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_max_threads_is_four_per_available_cpu():
    assert _config.max_threads() == 4 * _cpus()


@pytest.mark.parametrize("setter", ["set_num_threads", "num_threads"])
def test_thread_counts_above_the_limit_are_refused(setter):
    limit = _config.max_threads()
    previous = _config._state["threads"]
    try:
        for n in (limit + 1, 1000 * limit, 2**31, 2**64):
            with pytest.raises(ValueError, match=rf"^n: {n} threads is more than .*"
                                                 rf"max_threads\(\) = {limit}"):
                if setter == "set_num_threads":
                    fastxent.set_num_threads(n)
                else:
                    with fastxent.num_threads(n):
                        pass
        # the limit itself is accepted, and the kernels then ask for no more
        # threads than the work has blocks
        if setter == "set_num_threads":
            fastxent.set_num_threads(limit)
            assert fastxent.get_num_threads() == limit
            x = np.arange(12.0).reshape(4, 3)
            np.testing.assert_allclose(fastxent.softmax(x), special.softmax(x, axis=-1))
    finally:
        _config._state["threads"] = previous


def test_an_absurd_environment_thread_count_is_ignored_with_a_warning():
    r = run_python("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import fastxent
            from fastxent import _config
        print(len(caught), str(caught[0].message) if caught else "")
        print(fastxent.get_num_threads() <= _config.max_threads())
        import numpy as np
        x = np.zeros((100_000, 8), np.float32)
        print(float(fastxent.cross_entropy(x, np.zeros(100_000, np.int64))))
    """, env={"FASTXENT_NUM_THREADS": "100000", "OMP_NUM_THREADS": "100000"})
    assert r.returncode == 0, r.stderr
    count, rest = r.stdout.split(" ", 1)
    assert count == "1" and "ignoring FASTXENT_NUM_THREADS='100000'" in rest, r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[1] == "True"
    np.testing.assert_allclose(float(lines[2]), np.log(8), rtol=1e-6)


@compiled_only
def test_kernels_start_no_more_threads_than_the_work_has_blocks():
    """A huge thread count on a small problem, in a child (a libgomp that
    cannot start 100000 threads ends the process): one thread per block."""
    r = run_python("""
        import json
        import numpy as np
        from types import SimpleNamespace
        from fastxent import _kernels
        from fastxent._kinds import Scores, Transform
        x = np.arange(12.0).reshape(4, 3)
        out, lse = np.empty_like(x), np.empty(4)
        _kernels.softmax_rows(SimpleNamespace(x=x, result=out), transform=Transform.SOFTMAX,
                              n_threads=100_000)
        _kernels.logsumexp_rows(SimpleNamespace(x=x), out=lse, n_threads=100_000)
        problem = SimpleNamespace(x=x, target=np.zeros(4, np.int64), result=None, weight=None,
                                  is_index=True, scores=Scores.LOGITS, label_smoothing=0.0,
                                  ignore_index=-100, reduction="mean", sample_weight=None,
                                  z_loss=0.0, lse=None, correct=None, softcap=None)
        total, denom, _ = _kernels.class_loss(problem, row_loss=None, n_threads=100_000)
        print(json.dumps([out.tolist(), lse.tolist(), total / denom]))
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    softmax, lse, mean = json.loads(r.stdout)
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_allclose(softmax, special.softmax(x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(lse, special.logsumexp(x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(mean, np.mean(special.logsumexp(x, axis=-1) - x[:, 0]),
                               rtol=1e-12)


# -------------------------------------------------------------------------------- 6. fork() from C


FORK_FROM_C = """
    import ctypes, os, sys, time
    import numpy as np
    import fastxent
    from fastxent import _kernels

    x = np.random.default_rng(0).standard_normal((4096, 512)).astype(np.float32)
    y = np.arange(4096) % 512
    with fastxent.num_threads(2):
        parent = fastxent.cross_entropy_with_grad(x, y)  # starts the OpenMP pool
    r, w = os.pipe()
    pid = ctypes.CDLL(None).fork()  # no os.register_at_fork handler runs
    if pid == 0:
        with fastxent.num_threads(2):  # asks for threads: the child must stay serial
            loss, grad = fastxent.cross_entropy_with_grad(x, y)
        same = float(loss) == float(parent[0]) and np.array_equal(grad, parent[1])
        os.write(w, f"{same} {fastxent.get_num_threads()} {_kernels.forked()}".encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.exit("the child forked from C hung")
    print(os.read(r, 100).decode(), _kernels.forked())
"""


@compiled_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_child_forked_from_c_computes_serially_and_right():
    r = run_python(FORK_FROM_C, timeout=180)
    assert r.returncode == 0, r.stderr
    # the child: the parent's bits, on one thread, marked forked; the parent unmarked
    assert r.stdout.split() == ["True", "1", "True", "False"], r.stdout


# --------------------------------------------------------------------------------- 13. exp and log


ISA_CAPS = ["baseline", "avx2", "avx512"]


@pytest.fixture(params=ISA_CAPS)
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


def _ulps(got, truth, dtype):
    """|got - truth| in units in the last place of truth rounded to dtype
    (subnormal spacing below the smallest normal)."""
    spacing = np.spacing(np.abs(truth.astype(dtype))).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - truth) / spacing


LONG_DOUBLE_HAS_ROOM = np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant
needs_long_double = pytest.mark.skipif(
    not LONG_DOUBLE_HAS_ROOM, reason="no extended long double on this platform: no truth")


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_is_within_one_and_a_half_ulps_wherever_the_result_is_normal(isa, dtype):
    tiny = np.finfo(dtype).tiny
    cut = np.log(np.longdouble(tiny))  # exp(cut) is the smallest normal number
    grid = np.linspace(float(cut), 0.0, 1_000_001).astype(dtype)
    near_cut = dtype(cut) + np.arange(-2000, 2000) * np.spacing(dtype(cut))
    small = -np.geomspace(np.finfo(dtype).eps / 4, 1.0, 20_000).astype(dtype)
    d = np.concatenate([grid, near_cut.astype(dtype), small, [dtype(0), -np.finfo(dtype).tiny]])
    got = kernels._exp(d)
    truth = np.exp(d.astype(np.longdouble))
    normal = truth >= tiny
    assert normal.sum() > 1_000_000
    worst = _ulps(got[normal], truth[normal], dtype).max()
    assert worst <= 1.5, f"{isa}: exp is off by {worst} ulps"
    # below the smallest normal, a result is flushed to 0 (and only there)
    assert np.all(got[~normal] == 0)
    assert np.all(got[normal] > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_of_specials(isa, dtype):
    d = np.array([-np.inf, np.nan, -1e30, np.finfo(dtype).min, 0.0], dtype)
    got = kernels._exp(d)
    assert got[0] == 0 and np.isnan(got[1]) and got[2] == 0 and got[3] == 0 and got[4] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_keeps_the_smallest_normal_probabilities(isa, backend, dtype):
    """softmax([-87.3, 0]) in float32 is 1.2e-38, a normal number, not 0."""
    lowest = {np.float32: -87.3, np.float64: -708.3}[dtype]
    x = np.array([lowest, 0.0], dtype)
    expected = special.softmax(x.astype(np.float64))
    assert expected[0] >= np.finfo(dtype).tiny
    got = fastxent.softmax(x)
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps)
    # log_softmax exactly: at the maximum -log1p(e^lowest), about -1.2e-38 in float32
    # (np.log(expected) would round it to 0; fastxent's log1p keeps it)
    x64 = x.astype(np.float64)
    exact = x64 - np.log1p(np.exp(x64[0]))
    np.testing.assert_allclose(fastxent.log_softmax(x), exact, rtol=1e-6)


@needs_long_double
def test_log_of_sums_is_within_two_and_a_half_ulps(isa):
    two = 2.0 ** np.arange(0, 1024)
    v = np.concatenate([
        np.geomspace(1.0, 1e308, 1_000_000),
        np.linspace(1.0, 4.0, 1_000_000)[1:],
        two[1:], np.nextafter(two, 0)[1:], np.nextafter(two, np.inf),
        np.sqrt(2.0) * two[:-1], np.nextafter(np.sqrt(2.0) * two[:-1], 0),
    ])
    got = kernels._log_sum(v)
    truth = np.log(v.astype(np.longdouble))
    worst = _ulps(got, truth, np.float64).max()
    assert worst <= 2.5, f"{isa}: log is off by {worst} ulps"
    assert kernels._log_sum(np.array([1.0]))[0] == 0.0
    assert np.isnan(kernels._log_sum(np.array([np.nan]))[0])


@needs_long_double
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_of_the_binary_losses_is_within_three_ulps(isa, dtype):
    u = np.concatenate([np.linspace(0.0, 1.0, 1_000_001),
                        np.geomspace(np.finfo(dtype).tiny, 1.0, 100_000)]).astype(dtype)
    got = kernels._log1p(u)
    truth = np.log1p(u.astype(np.longdouble))
    worst = _ulps(got, truth, dtype).max()
    assert worst <= 3, f"{isa}: log1p is off by {worst} ulps"
