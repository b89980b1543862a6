"""fastxent.jax: values and gradients against optax's losses (where optax is
installed, else against the same formulas written out with jax.nn), against
PyTorch's and SciPy-based references for the PyTorch-style forms, under
jax.jit, jax.grad, jax.value_and_grad and jax.vmap."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    assert_close,
    oracle_xent,
    random_labels,
    random_logits,
    random_probs,
)

jax = pytest.importorskip("jax", reason="JAX is not installed: fastxent.jax not tested")
jnp = jax.numpy
fxj = pytest.importorskip("fastxent.jax")

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


@pytest.fixture(params=["buffer_callback", "pure_callback"])
def callback(request, monkeypatch):
    """Runs the test through each host callback: jax.experimental.buffer_callback
    (where JAX has it) and jax.pure_callback (the fallback of older JAX)."""
    if request.param == "pure_callback":
        monkeypatch.setattr(fxj, "_buffer_callback", lambda: None)
    elif fxj._buffer_callback() is None:
        pytest.skip("this JAX has no jax.experimental.buffer_callback")
    return request.param


@pytest.fixture(autouse=True)
def x64():
    """float64 arrays exist in JAX only with jax_enable_x64."""
    with jax.enable_x64(True):
        yield


# --------------------------------------------------------------------------- references


class WrittenOut:
    """optax's losses as optax defines them, written out with jax.nn: the
    reference where optax is not installed."""

    @staticmethod
    def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None):
        assert where is None and isinstance(axis, int)
        log_p = jax.nn.log_softmax(logits, axis=axis)
        return -jnp.take_along_axis(log_p, jnp.expand_dims(labels, axis), axis).squeeze(axis)

    @staticmethod
    def softmax_cross_entropy(logits, labels, axis=-1, where=None):
        assert where is None
        return -(labels * jax.nn.log_softmax(logits, axis=axis)).sum(axis)

    @staticmethod
    def sigmoid_binary_cross_entropy(logits, labels):
        return -labels * jax.nn.log_sigmoid(logits) - (1 - labels) * jax.nn.log_sigmoid(-logits)


def reference():
    try:
        import optax
    except ImportError:
        return WrittenOut
    return optax


def needs_optax():
    return pytest.importorskip("optax", reason="optax is not installed: its `where` and tuple "
                                               "axes are not written out here")


def value_and_grads(loss_fn, *args, argnums=0, jit=False, seed=0):
    """The per-example loss and the gradient of a random weighting of it (so
    that each example's cotangent differs)."""
    def weighted(*a):
        loss = loss_fn(*a)
        w = jnp.asarray(np.random.default_rng(seed).random(loss.shape) + 0.5, loss.dtype)
        return (loss * w).sum(), loss

    fn = jax.value_and_grad(weighted, argnums=argnums, has_aux=True)
    if jit:
        fn = jax.jit(fn)
    (_, loss), grads = fn(*args)
    return np.asarray(loss), jax.tree_util.tree_map(np.asarray, grads)


def check_same(fast, ref, dtype):
    fast_loss, fast_grads = fast
    ref_loss, ref_grads = ref
    assert fast_loss.dtype == np.dtype(dtype)
    assert_close(fast_loss, ref_loss, dtype, rtols=RTOL)
    for f, r in zip(jax.tree_util.tree_leaves(fast_grads), jax.tree_util.tree_leaves(ref_grads)):
        assert f.dtype == r.dtype and f.shape == r.shape
        assert_close(f, r, dtype, rtols=RTOL)


# --------------------------------------------------------------------------- optax's names


@pytest.mark.parametrize("dtype,jit", [pytest.param(np.float32, True, id="f32-jit"),
                                       pytest.param(np.float64, True, id="f64-jit"),
                                       pytest.param(np.float32, False, id="f32-eager")])
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((7, 5, 3), 1), ((4, 9), 0),
                                        ((33,), 0)])
def test_integer_labels_equal_optax(rng, callback, dtype, jit, shape, axis):
    logits = jnp.asarray(random_logits(rng, shape, dtype))
    batch = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    labels = jnp.asarray(random_labels(rng, batch, shape[axis], dtype=np.int32))
    args = (logits, labels)
    fast = value_and_grads(lambda x, y: fxj.softmax_cross_entropy_with_integer_labels(
        x, y, axis=axis), *args, jit=jit)
    ref = value_and_grads(lambda x, y: reference().softmax_cross_entropy_with_integer_labels(
        x, y, axis=axis), *args)
    check_same(fast, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((6, 4, 5), 1)])
def test_soft_labels_equal_optax_in_logits_and_labels(rng, dtype, jit, shape, axis):
    logits = jnp.asarray(random_logits(rng, shape, dtype))
    labels = jnp.asarray(random_probs(rng, shape, axis, dtype))
    fast = value_and_grads(lambda x, t: fxj.softmax_cross_entropy(x, t, axis=axis),
                           logits, labels, argnums=(0, 1), jit=jit)
    ref = value_and_grads(lambda x, t: reference().softmax_cross_entropy(x, t, axis=axis),
                          logits, labels, argnums=(0, 1))
    check_same(fast, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_sigmoid_equals_optax_in_logits_and_labels(rng, dtype, jit):
    logits = random_logits(rng, (16, 7), dtype, scale=8.0)
    logits[0, :3] = [60.0, -60.0, 0.0]  # saturated logits stay exact
    labels = jnp.asarray(rng.random((16, 7)).astype(dtype))
    fast = value_and_grads(fxj.sigmoid_binary_cross_entropy, jnp.asarray(logits), labels,
                           argnums=(0, 1), jit=jit)
    ref = value_and_grads(reference().sigmoid_binary_cross_entropy, jnp.asarray(logits), labels,
                          argnums=(0, 1))
    check_same(fast, ref, dtype)


def test_sigmoid_labels_broadcast_and_integer_labels(rng):
    optax = reference()
    logits = jnp.asarray(random_logits(rng, (5, 3), np.float32))
    for labels in (jnp.asarray([1.0, 0.0, 1.0]), jnp.asarray(rng.integers(0, 2, (5, 3)))):
        expected = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
        got = fxj.sigmoid_binary_cross_entropy(logits, labels)
        assert got.shape == (5, 3) and got.dtype == jnp.float32
        assert_close(got, expected, np.float32, rtols=RTOL)


def test_tuple_and_none_axes_equal_optax(rng):
    optax = needs_optax()
    logits = jnp.asarray(random_logits(rng, (2, 3, 4, 5), np.float64))
    labels = jnp.asarray(rng.integers(0, 12, (2, 5)))
    fast = value_and_grads(lambda x: fxj.softmax_cross_entropy_with_integer_labels(
        x, labels, axis=(1, 2)), logits)
    ref = value_and_grads(lambda x: optax.softmax_cross_entropy_with_integer_labels(
        x, labels, axis=(1, 2)), logits)
    check_same(fast, ref, np.float64)
    soft = jnp.asarray(random_probs(rng, (2, 3, 4, 5), -1, np.float64))
    for axis in [(1, 3), None, (-1,)]:
        fast = value_and_grads(lambda x, t, a=axis: fxj.softmax_cross_entropy(x, t, axis=a),
                               logits, soft, argnums=(0, 1))
        ref = value_and_grads(lambda x, t, a=axis: optax.softmax_cross_entropy(x, t, axis=a),
                              logits, soft, argnums=(0, 1))
        check_same(fast, ref, np.float64)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_where_masks_examples_as_optax(rng, jit):
    optax = needs_optax()
    logits = random_logits(rng, (12, 6), np.float32)
    labels = rng.integers(0, 6, 12).astype(np.int32)
    where = rng.random(12) < 0.6
    where[:2] = [False, True]
    # Masked examples may hold anything: padding labels and non-finite logits.
    labels[~where] = -1
    logits[~where, 0] = np.inf
    logits, labels, where = jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(where)
    fast = value_and_grads(lambda x: fxj.softmax_cross_entropy_with_integer_labels(
        x, labels, where=where), logits, jit=jit)
    ref = value_and_grads(lambda x: optax.softmax_cross_entropy_with_integer_labels(
        x, jnp.where(where, labels, 0), where=where), jnp.where(where[:, None], logits, 0))
    check_same(fast, ref, np.float32)
    assert not fast[1][~np.asarray(where)].any()
    soft = jax.nn.one_hot(jnp.where(where, labels, 0), 6)
    fast = value_and_grads(lambda x: fxj.softmax_cross_entropy(x, soft, where=where),
                           logits, jit=jit)
    ref = value_and_grads(lambda x: optax.softmax_cross_entropy(x, soft, where=where),
                          jnp.where(where[:, None], logits, 0))
    check_same(fast, ref, np.float32)


def test_where_over_classes_equals_optax(rng):
    optax = needs_optax()
    logits = jnp.asarray(random_logits(rng, (8, 5), np.float64))
    labels = jnp.asarray(rng.integers(0, 3, 8))
    where = jnp.asarray(np.arange(5) < 3).reshape(1, 5).repeat(8, 0)
    fast = value_and_grads(lambda x: fxj.softmax_cross_entropy_with_integer_labels(
        x, labels, where=where), logits)
    ref = value_and_grads(lambda x: optax.softmax_cross_entropy_with_integer_labels(
        x, labels, where=where), logits)
    check_same(fast, ref, np.float64)
    soft = jax.nn.one_hot(labels, 5)
    fast = value_and_grads(lambda x: fxj.softmax_cross_entropy(x, soft, where=where), logits)
    ref = value_and_grads(lambda x: optax.softmax_cross_entropy(x, soft, where=where), logits)
    check_same(fast, ref, np.float64)


# --------------------------------------------------------------------------- transformations


@pytest.mark.parametrize("in_axes", [(0, 0), (0, None), (None, 0)])
def test_vmap_of_per_example_loss_equals_a_loop(rng, callback, in_axes):
    logits = random_logits(rng, (3, 8, 5), np.float32)
    labels = rng.integers(0, 5, (3, 8)).astype(np.int32)
    args = [jnp.asarray(a if ax == 0 else a[0]) for a, ax in zip((logits, labels), in_axes)]

    def loss_and_grad(x, y):
        return jax.value_and_grad(
            lambda x: (fxj.softmax_cross_entropy_with_integer_labels(x, y) ** 2).sum())(x)

    loss, grad = jax.jit(jax.vmap(loss_and_grad, in_axes=in_axes))(*args)
    for i in range(3):
        one = [a[i] if ax == 0 else a for a, ax in zip(args, in_axes)]
        ref_loss, ref_grad = jax.value_and_grad(lambda x, y=one[1]: (
            reference().softmax_cross_entropy_with_integer_labels(x, y) ** 2).sum())(one[0])
        assert_close(loss[i], ref_loss, np.float32, rtols=RTOL)
        assert_close(grad[i], ref_grad, np.float32, rtols=RTOL)


def test_vmap_of_reduced_loss_reduces_each_element(rng, callback):
    logits = jnp.asarray(random_logits(rng, (4, 6, 3), np.float64))
    labels = jnp.asarray(random_labels(rng, (4, 6), 3, ignore_index=-100))
    weight = jnp.asarray([0.5, 2.0, 1.0])
    loss, grad = jax.vmap(jax.value_and_grad(
        lambda x, y: fxj.cross_entropy(x, y, weight=weight)))(logits, labels)
    for i in range(4):
        ref_loss, ref_grad = oracle_xent(logits[i], labels[i], weight=weight)
        assert_close(loss[i], ref_loss, np.float64, rtols=RTOL)
        assert_close(grad[i], ref_grad, np.float64, rtols=RTOL)


def test_second_order_differentiation_is_refused(rng):
    logits = jnp.asarray(random_logits(rng, (4, 3), np.float64))
    labels = jnp.asarray([0, 1, 2, 0])
    with pytest.raises(Exception, match="(?i)jvp|forward-mode|differentiat"):
        jax.hessian(lambda x: fxj.cross_entropy(x, labels))(logits)


# --------------------------------------------------------------------------- PyTorch's forms

TORCH_CASES = {
    "mean": {},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "weight-ignore": {"weight": [0.3, 1.0, 2.5, 0.7, 1.2], "ignore_index": 2},
    "smoothing-weight": {"weight": [0.3, 1.0, 2.5, 0.7, 1.2], "label_smoothing": 0.2},
    "smoothing-none-ignore": {"label_smoothing": 0.1, "reduction": "none", "ignore_index": 1},
    "axis0": {"axis": 0},
}


@pytest.mark.parametrize("plain", [False, True], ids=["kernel", "plain-jax"])
@pytest.mark.parametrize("probabilities", [False, True], ids=["labels", "probs"])
@pytest.mark.parametrize("case", TORCH_CASES)
def test_cross_entropy_equals_torch_semantics(rng, monkeypatch, plain, probabilities, case):
    options = dict(TORCH_CASES[case])
    if probabilities and "ignore_index" in options:
        del options["ignore_index"]
    if plain:  # the fallback of other devices and half precision
        monkeypatch.setattr(fxj, "_kernel_applies", lambda x: False)
    axis = options.get("axis", -1)
    shape = (5, 9) if axis == 0 else (9, 5)
    logits = random_logits(rng, shape, np.float64)
    if probabilities:
        target = random_probs(rng, shape, axis)
    else:
        target = random_labels(rng, (9,), 5, ignore_index=options.get("ignore_index"))
    ref_loss, ref_grad = oracle_xent(logits, target, **options)
    jax_options = dict(options, weight=None if "weight" not in options
                       else jnp.asarray(options["weight"]))
    loss, grad = jax.jit(jax.value_and_grad(
        lambda x: fxj.cross_entropy(x, jnp.asarray(target), **jax_options).sum()))(
        jnp.asarray(logits))
    assert_close(loss, ref_loss.sum(), np.float64, rtols=RTOL)
    assert_close(grad, ref_grad, np.float64, rtols=RTOL)


@pytest.mark.parametrize("plain", [False, True], ids=["kernel", "plain-jax"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_with_logits_equals_torch_in_every_argument(rng, monkeypatch, callback, torch,
                                                           plain, reduction):
    if plain:
        monkeypatch.setattr(fxj, "_kernel_applies", lambda x: False)
    arrays = {"logits": random_logits(rng, (6, 4), np.float64, scale=6.0),
              "target": rng.random((6, 4)), "weight": rng.random((6, 4)) + 0.5,
              "pos_weight": rng.random(4) * 3}
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    # PyTorch differentiates neither `weight` nor `pos_weight`: its formula,
    # written out in torch (checked against its function), gives their gradients.
    x, t, w, pw = tensors.values()
    elementwise = w * ((1 - t) * x + (1 + (pw - 1) * t) * torch.nn.functional.softplus(-x))
    ref = {"none": elementwise, "sum": elementwise.sum(), "mean": elementwise.mean()}[reduction]
    torch_ref = torch.nn.functional.binary_cross_entropy_with_logits(
        *[torch.tensor(arrays[k]) for k in ("logits", "target")],
        weight=torch.tensor(arrays["weight"]), pos_weight=torch.tensor(arrays["pos_weight"]),
        reduction=reduction)
    assert_close(ref.detach().numpy(), torch_ref.numpy(), np.float64, rtols=RTOL)
    cotangent = rng.random(ref.shape) + 0.5
    (ref * torch.tensor(cotangent)).sum().backward()

    def fn(logits, target, weight, pos_weight):
        loss = fxj.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                                    pos_weight=pos_weight, reduction=reduction)
        return (loss * cotangent).sum(), loss

    (_, loss), grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3), has_aux=True))(
        *[jnp.asarray(a) for a in arrays.values()])
    assert_close(loss, ref.detach().numpy(), np.float64, rtols=RTOL)
    for name, g in zip(arrays, grads):
        assert_close(g, tensors[name].grad.numpy(), np.float64, rtols=RTOL, err_msg=name)


def test_reduced_forms_accept_float32_and_return_scalars(rng):
    logits = jnp.asarray(random_logits(rng, (64, 10), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 64))
    loss = fxj.cross_entropy(logits, labels)
    ref = reference().softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    assert loss.shape == () and loss.dtype == jnp.float32
    assert_close(loss, ref, np.float32, rtols=RTOL)


# --------------------------------------------------------------------------- fallbacks, errors


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_runs_in_plain_jax(rng, monkeypatch, dtype):
    def no_kernel(*args):
        raise AssertionError("the kernel was called with half-precision logits")

    monkeypatch.setattr(fxj, "_kernel", no_kernel)
    logits32 = jnp.asarray(random_logits(rng, (16, 10), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 16))
    logits = logits32.astype(dtype)
    loss, grad = jax.value_and_grad(
        lambda x: fxj.softmax_cross_entropy_with_integer_labels(x, labels).sum())(logits)
    ref_loss, ref_grad = jax.value_and_grad(
        lambda x: reference().softmax_cross_entropy_with_integer_labels(
            x.astype(jnp.float32), labels).sum())(logits)
    assert loss.dtype == jnp.dtype(dtype) and grad.dtype == jnp.dtype(dtype)
    tolerance = 2e-2 if dtype == "bfloat16" else 2e-3
    assert_close(loss.astype(np.float32), ref_loss, np.float32, rtol=tolerance)
    assert_close(grad.astype(np.float32), ref_grad, np.float32, rtol=tolerance,
                 atol=tolerance / 10)
    mean = fxj.cross_entropy(logits, labels, weight=jnp.ones(10), label_smoothing=0.1)
    ref = oracle_xent(np.asarray(logits, np.float64), labels, label_smoothing=0.1)[0]
    assert mean.dtype == jnp.dtype(dtype)
    assert_close(np.float32(mean), ref, np.float32, rtol=tolerance)


def test_label_outside_the_classes_raises_naming_it(rng, callback):
    logits = jnp.asarray(random_logits(rng, (4, 5), np.float32))
    labels = jnp.asarray([0, 1, 7, 2])
    with pytest.raises(Exception, match=r"label 7 at position \(2,\) is outside \[0, 5\)"):
        jax.block_until_ready(fxj.softmax_cross_entropy_with_integer_labels(logits, labels))
    with pytest.raises(Exception, match=r"label 7 at position \(2,\) is outside \[0, 5\)"):
        jax.block_until_ready(jax.jit(jax.grad(lambda x: fxj.cross_entropy(x, labels)))(logits))
    # optax has no ignore_index: -100 is a bad label there, not an ignored one
    with pytest.raises(Exception, match=r"label -100 at position \(0,\)"):
        jax.block_until_ready(fxj.softmax_cross_entropy_with_integer_labels(
            logits, jnp.asarray([-100, 0, 0, 0])))


@pytest.mark.parametrize("call,error,match", [
    (lambda x, y: fxj.cross_entropy(x, y, reduction="avg"), ValueError, "reduction: .*'avg'"),
    (lambda x, y: fxj.cross_entropy(x, y, axis=2), ValueError, "axis: 2 is out of range"),
    (lambda x, y: fxj.cross_entropy(x, y, axis=1.0), TypeError, "axis: expected an integer"),
    (lambda x, y: fxj.cross_entropy(x, y, label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda x, y: fxj.softmax_cross_entropy_with_integer_labels(x, y.astype(float)),
     TypeError, "labels: expected an integer dtype"),
    (lambda x, y: fxj.softmax_cross_entropy_with_integer_labels(x.astype(int), y),
     TypeError, "logits: expected a floating-point dtype"),
    (lambda x, y: fxj.softmax_cross_entropy(x, y), ValueError,
     r"labels: expected the shape of logits \(4, 5\), got \(4,\)"),
])
def test_bad_options_raise_naming_the_argument(call, error, match):
    logits = jnp.zeros((4, 5), jnp.float32)
    labels = jnp.asarray([0, 1, 2, 3])
    with pytest.raises(error, match=match):
        call(logits, labels)


def test_import_fastxent_does_not_import_jax():
    code = ("import sys, fastxent, fastxent.keras; "
            "assert 'jax' not in sys.modules and 'keras' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('jax', 'keras')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_gradient_of_many_huge_pages_written_into_xlas_buffer(monkeypatch):
    # 16 MB: the bridge asks for huge pages under XLA's output buffer before the
    # kernel writes the gradient there (advice only: same values).
    advised = []
    advise = fxj._advise_huge_pages
    monkeypatch.setattr(fxj, "_advise_huge_pages", lambda a: (advised.append(a.nbytes),
                                                              advise(a)))
    rng = np.random.default_rng(14)
    x = jnp.asarray(rng.standard_normal((1024, 4096)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 4096, 1024))
    loss, grad = jax.jit(jax.value_and_grad(lambda a: fxj.cross_entropy(a, y)))(x)

    def reference(a):
        picked = jnp.take_along_axis(jax.nn.log_softmax(a), y[:, None], axis=1)
        return -picked.mean()
    want_loss, want_grad = jax.value_and_grad(reference)(x)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-9)
    if fxj._buffer_callback() is not None:
        assert advised == [x.size * 4]
