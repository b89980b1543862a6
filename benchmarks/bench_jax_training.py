"""fastxent.jax against optax's loss: per-call overhead and jitted training steps.

    PYTHONPATH=src python benchmarks/bench_jax_training.py [--only overhead,large,mlp,lm]
        [--repeats 15]

* overhead: microseconds per call at batch 64 x 10 classes, float32, of
  ``jax.jit(jax.value_and_grad(mean loss))``: fastxent.jax.cross_entropy (the
  bridge, through buffer_callback, and forced through pure_callback),
  fastxent.cross_entropy_with_grad on NumPy arrays (the kernel alone),
  a jitted ``jax.pure_callback`` that returns its argument and a jitted
  buffer_callback that does nothing (the callbacks' own floors) and
  optax.softmax_cross_entropy_with_integer_labels(...).mean();
* large: the same at 8,192 x 1,000;
* mlp: a jitted training step (forward, backward, SGD update) of a small MLP
  classifier (64 features, 256 hidden, 10 classes, batch 256);
* lm: a jitted training step of a language-model-style output layer: hidden
  512, vocabulary 32,000, 4,096 rows (logits = h @ W, the loss, W updated).

Each row runs the candidates interleaved (fastxent.bench.timing: one sample
of each per round, fast calls repeated within a sample) and reports the
median and the ratio to optax's loss. Compilation happens in the warm-up,
untimed. Not a test: no assertions on time.
"""

import argparse
import contextlib
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fastxent
import fastxent.jax as fxj
from fastxent.bench.timing import time_round_robin


def interleaved(candidates, repeats):
    """name -> median seconds of fn(), the candidates timed round-robin
    (fastxent.bench.timing: one sample of each per round, fast calls repeated
    within a sample; the first call, which compiles, is its warm-up)."""
    samples = time_round_robin(candidates, repeats)
    return {name: statistics.median(t) for name, t in samples.items()}


def report(title, medians, unit, reference="optax"):
    print(f"\n{title}")
    scale = {"us": 1e6, "ms": 1e3}[unit]
    for name, seconds in medians.items():
        ratio = medians[reference] / seconds
        print(f"  {name:<34} {seconds * scale:10.3g} {unit}   {ratio:5.2f}x vs {reference}")


@contextlib.contextmanager
def pure_callback_only():
    """Traces fastxent.jax with jax.pure_callback instead of buffer_callback."""
    chosen = fxj._buffer_callback
    fxj._buffer_callback = lambda: None
    try:
        yield
    finally:
        fxj._buffer_callback = chosen


def optax_mean(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def loss_call(rows, classes, repeats):
    rng = np.random.default_rng(0)
    xn = rng.standard_normal((rows, classes)).astype(np.float32)
    yn = rng.integers(0, classes, rows).astype(np.int32)
    x, y = jnp.asarray(xn), jnp.asarray(yn)
    bridge = jax.jit(jax.value_and_grad(lambda x: fxj.cross_entropy(x, y)))
    with pure_callback_only():
        bridge_pure = jax.jit(jax.value_and_grad(lambda x: fxj.cross_entropy(x, y)))
        jax.block_until_ready(bridge_pure(x))  # traced (and the callback chosen) here
    reference = jax.jit(jax.value_and_grad(lambda x: optax_mean(x, y)))
    echo = jax.jit(lambda x: jax.pure_callback(lambda a: a, jax.ShapeDtypeStruct(
        x.shape, x.dtype), x))
    candidates = {}
    if fxj._buffer_callback() is not None:
        def nothing(ctx, out, x):
            pass

        empty = fxj._buffer_callback()(nothing, jax.ShapeDtypeStruct((), jnp.float32))
        empty_jit = jax.jit(lambda x: empty(x))
        candidates["empty buffer_callback"] = lambda: jax.block_until_ready(empty_jit(x))
    medians = interleaved(candidates | {
        "fastxent.jax (bridge)": lambda: jax.block_until_ready(bridge(x)),
        "bridge through pure_callback": lambda: jax.block_until_ready(bridge_pure(x)),
        "kernel alone (NumPy)": lambda: fastxent.cross_entropy_with_grad(xn, yn),
        "empty pure_callback": lambda: jax.block_until_ready(echo(x)),
        "optax": lambda: jax.block_until_ready(reference(x)),
    }, repeats)
    report(f"loss + gradient, jit(value_and_grad), {rows} x {classes} float32", medians,
           "us" if rows * classes < 10**6 else "ms")


def sgd_step(loss_fn, forward, lr):
    @jax.jit
    def step(params, x, y):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(forward(p, x), y))(params)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss
    return step


def training(title, params, forward, x, y, repeats, unit):
    steps = {"fastxent.jax (bridge)": sgd_step(fxj.cross_entropy, forward, 0.01),
             "optax": sgd_step(optax_mean, forward, 0.01)}
    # Each candidate steps from the same parameters every time (same work per call).
    medians = interleaved({name: (lambda s=s: jax.block_until_ready(s(params, x, y)))
                           for name, s in steps.items()}, repeats)
    report(title, medians, unit)


def mlp(repeats):
    rng = np.random.default_rng(1)
    params = {"W1": jnp.asarray(rng.standard_normal((64, 256)).astype(np.float32) / 8),
              "b1": jnp.zeros(256), "W2": jnp.asarray(
                  rng.standard_normal((256, 10)).astype(np.float32) / 16), "b2": jnp.zeros(10)}
    x = jnp.asarray(rng.standard_normal((256, 64)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 256).astype(np.int32))

    def forward(p, x):
        return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]

    training("MLP training step (64-256-10, batch 256), jit", params, forward, x, y, repeats,
             "us")


def lm(repeats):
    rng = np.random.default_rng(2)
    hidden, vocab, rows = 512, 32_000, 4096
    params = {"W": jnp.asarray((rng.standard_normal((hidden, vocab)) / hidden**0.5)
                               .astype(np.float32))}
    h = jnp.asarray(rng.standard_normal((rows, hidden)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, vocab, rows).astype(np.int32))
    training(f"LM output layer training step (hidden {hidden}, vocabulary {vocab}, {rows} rows),"
             " jit", params, lambda p, h: h @ p["W"], h, y, repeats, "ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="overhead,large,mlp,lm",
                        help="comma-separated: overhead, large, mlp, lm")
    parser.add_argument("--repeats", type=int, default=15, help="rounds (medians over them)")
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, optax {optax.__version__}, fastxent {fastxent.__version__}, "
          f"{fastxent.get_num_threads()} threads")
    runs = {"overhead": lambda: loss_call(64, 10, args.repeats),
            "large": lambda: loss_call(8192, 1000, args.repeats),
            "mlp": lambda: mlp(args.repeats), "lm": lambda: lm(args.repeats)}
    for name in args.only.split(","):
        runs[name.strip()]()


if __name__ == "__main__":
    main()
