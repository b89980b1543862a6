"""fastxent.keras on one Keras backend, against Keras's own losses: run as
``python keras_backend_check.py jax`` (or ``torch``), in a process of its own,
because Keras chooses its backend once, at its first import, from
KERAS_BACKEND. tests/test_keras_backends.py runs it; it prints one line per
check and exits with 1 at the first mismatch.

Checked: the loss classes' values and gradients for each option against
keras.losses' classes (from_logits, label_smoothing, axis, ignore_class,
every reduction, sample_weight); the ignore_class mask reaching a metric;
that logits go through fastxent's kernel; a small model trained with
model.compile(loss=fastxent.keras.sparse_categorical_crossentropy) and with
Keras's own loss: the same loss history and weights.
"""

import os
import sys

BACKEND = sys.argv[1]
os.environ["KERAS_BACKEND"] = BACKEND

import keras
import numpy as np

import fastxent._logits
import fastxent.keras as fk

if int(keras.__version__.split(".")[0]) < 3:
    print(f"Keras {keras.__version__} is not Keras 3")
    sys.exit(77)
assert keras.backend.backend() == BACKEND, keras.backend.backend()
RTOL = 2e-5

# Every call of the kernels, whichever bridge makes it.
kernel_calls = []


def counting(function):
    def counted(*args, **kwargs):
        kernel_calls.append(function.__name__)
        return function(*args, **kwargs)
    return counted


fastxent._logits.class_loss = counting(fastxent._logits.class_loss)
fastxent._logits.binary_loss = counting(fastxent._logits.binary_loss)
fastxent._losses.class_loss = counting(fastxent._losses.class_loss)  # the drivers' own home
fastxent._losses.binary_loss = counting(fastxent._losses.binary_loss)
if BACKEND == "torch":
    import fastxent.torch

    fastxent.torch.class_loss = fastxent._logits.class_loss
    fastxent.torch.binary_loss = fastxent._logits.binary_loss
    # The kernels at every size: backend="auto" leaves small inputs to PyTorch.
    fastxent.torch.AUTO_MIN_ELEMENTS = fastxent.torch.AUTO_MIN_ROWS = 0
    fastxent.torch.AUTO_MIN_ELEMENTS_BINARY = 0
    fastxent.torch.AUTO_KERNELS_UNDER_COMPILE = True


def value_and_grad(loss_fn, y_pred):
    """loss_fn(y_pred) (a Keras loss, any shape) and the gradient of its sum."""
    if BACKEND == "jax":
        import jax

        def total(x):
            loss = loss_fn(x)
            return loss.sum(), loss

        (_, loss), grad = jax.value_and_grad(total, has_aux=True)(jax.numpy.asarray(y_pred))
        return np.asarray(loss), np.asarray(grad)
    import torch

    x = torch.tensor(y_pred, requires_grad=True)
    loss = loss_fn(x)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


def check(what, actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(np.abs(expected).max(initial=0.0), 1.0)
    if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=RTOL,
                                                         atol=RTOL * scale):
        print(f"MISMATCH {what}:\n fastxent {actual}\n keras    {expected}")
        sys.exit(1)
    print(f"ok {what}")


rng = np.random.default_rng(0)


def data(name, shape, axis):
    n_classes = shape[axis]
    batch_shape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    if name == "SparseCategoricalCrossentropy":
        labels = rng.integers(0, n_classes, batch_shape)
        labels.reshape(-1)[::3] = -1  # used as ignore_class where that is set
        return labels
    if name == "BinaryCrossentropy":
        return (rng.random(shape) < 0.4).astype("float32")
    return np.moveaxis(np.eye(n_classes, dtype="float32")[
        rng.integers(0, n_classes, batch_shape)], -1, axis)


CASES = [
    ("SparseCategoricalCrossentropy", {"from_logits": True}),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1}),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1,
                                       "reduction": "sum"}),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "axis": -1, "reduction": None}),
    ("SparseCategoricalCrossentropy", {"from_logits": False, "ignore_class": -1}),
    ("CategoricalCrossentropy", {"from_logits": True}),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "axis": 1}),
    ("CategoricalCrossentropy", {"from_logits": True, "reduction": "mean_with_sample_weight"}),
    ("CategoricalCrossentropy", {"from_logits": False, "label_smoothing": 0.2}),
    ("BinaryCrossentropy", {"from_logits": True}),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2, "reduction": "sum"}),
    ("BinaryCrossentropy", {"from_logits": True, "axis": 1, "reduction": None}),
    ("BinaryCrossentropy", {"from_logits": False}),
]

for name, options in CASES:
    shape = (6, 5, 4)
    axis = options.get("axis", -1)
    y_true = data(name, shape, axis)
    if "ignore_class" not in options and name == "SparseCategoricalCrossentropy":
        y_true = np.abs(y_true)
    logits = rng.normal(size=shape).astype("float32") * 3
    y_pred = logits if options["from_logits"] else (
        keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=axis))
        if name != "BinaryCrossentropy" else 1 / (1 + np.exp(-logits)))
    batch_shape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    weight = rng.random(batch_shape).astype("float32")
    ours, theirs = getattr(fk, name)(**options), getattr(keras.losses, name)(**options)
    assert isinstance(ours, type(theirs)) and type(ours) is not type(theirs)
    for sample_weight in (None, weight):
        before = len(kernel_calls)
        label = f"{name}{options} sample_weight={sample_weight is not None}"
        loss, grad = value_and_grad(
            lambda x, fn=ours, y=y_true, w=sample_weight: fn(y, x, sample_weight=w), y_pred)
        ref_loss, ref_grad = value_and_grad(
            lambda x, fn=theirs, y=y_true, w=sample_weight: fn(y, x, sample_weight=w), y_pred)
        check(label + " loss", loss, ref_loss)
        check(label + " gradient", grad, ref_grad)
        if options["from_logits"] and len(kernel_calls) == before:
            print(f"MISMATCH {label}: fastxent's kernel was not called")
            sys.exit(1)

# The config round trip keeps fastxent's class.
loss = fk.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1, name="x")
again = keras.losses.deserialize(keras.losses.serialize(loss))
assert type(again) is type(loss) and again.ignore_class == -1, again
print("ok serialisation round trip")

# The ignore_class mask reaches a metric (MeanMetricWrapper reads it).
labels = rng.integers(0, 5, 12)
labels[::4] = -1
logits = rng.normal(size=(12, 5)).astype("float32")
metric_values = []
for fn in (fk.sparse_categorical_crossentropy, keras.losses.sparse_categorical_crossentropy):
    metric = keras.metrics.MeanMetricWrapper(fn, from_logits=True, ignore_class=-1)
    metric.update_state(labels, logits)
    metric_values.append(float(metric.result()))
check("metric with ignore_class", metric_values[0], metric_values[1])


# Training: the same model, data and seed with fastxent's loss and Keras's.
def train(loss):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    x = np.random.default_rng(2).normal(size=(96, 8)).astype("float32")
    y = np.random.default_rng(3).integers(0, 4, 96)
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    return history.history["loss"], model.get_weights()


before = len(kernel_calls)
losses, weights = train(lambda y, p: fk.sparse_categorical_crossentropy(y, p, from_logits=True))
if len(kernel_calls) == before:
    print("MISMATCH training: fastxent's kernel was not called")
    sys.exit(1)
ref_losses, ref_weights = train(
    lambda y, p: keras.losses.sparse_categorical_crossentropy(y, p, from_logits=True))
check("training loss history", losses, ref_losses)
for i, (w, ref_w) in enumerate(zip(weights, ref_weights)):
    check(f"trained weights {i}", w, ref_w)
if not losses[-1] < losses[0]:
    print(f"MISMATCH training: the loss did not decrease: {losses}")
    sys.exit(1)
losses, _ = train(fk.SparseCategoricalCrossentropy(from_logits=True))
check("training with the class", losses, ref_losses)
print("all checks passed")
