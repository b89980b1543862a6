"""A small MLP on scikit-learn's digits, trained in JAX with fastxent's loss
and with optax's.

The model, 64 features -> 64 tanh units -> 10 logits, is trained by
minibatch SGD (batch 64), one ``jax.jit``-compiled ``jax.lax.scan`` per
epoch of a step that takes ``jax.value_and_grad`` of the mean cross-entropy: once with
``fastxent.jax.cross_entropy`` (the fused kernel through ``jax.pure_callback``)
and once with ``optax.softmax_cross_entropy_with_integer_labels(...).mean()``
(or, without optax, the same loss written with ``jax.nn.log_softmax``), from
the same start on the same batches. The script prints each run's accuracy and
time per epoch and plots both loss curves, which agree to float32 rounding.
Needs JAX, scikit-learn (its bundled data: nothing is downloaded) and
matplotlib; optax is optional.

    python examples/jax_mlp_digits.py [--epochs 30] [--lr 0.1] [--out jax_mlp_digits.png]
"""

import argparse
import statistics
import sys
import time

import numpy as np


def load_digits_split(test_fraction=0.25, seed=0):
    """(X_train, y_train, X_test, y_test): 8x8 images as 64 features in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixel intensities run from 0 to 16
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def reference_loss():
    """(name, mean loss of logits and labels): optax's, else written out."""
    import jax

    try:
        import optax
    except ImportError:
        def written_out(logits, labels):
            log_p = jax.nn.log_softmax(logits)
            return -jax.numpy.take_along_axis(log_p, labels[:, None], axis=1).mean()
        return "jax_nn", written_out
    return "optax", lambda logits, labels: optax.softmax_cross_entropy_with_integer_labels(
        logits, labels).mean()


def init_params(n_in, n_hidden, n_out, seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": (rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in)).astype(np.float32),
            "b1": np.zeros(n_hidden, np.float32),
            "W2": (rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden)).astype(np.float32),
            "b2": np.zeros(n_out, np.float32)}


def logits_of(params, X):
    import jax.numpy as jnp

    return jnp.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def train(loss_fn, X, y, epochs, lr, batch_size=64, seed=0):
    """Minibatch SGD: (params, mean training loss of each epoch, seconds of each epoch).

    An epoch is one jitted call: ``jax.lax.scan`` of the SGD step over the
    epoch's batches (the host calls no Python between steps)."""
    import jax

    def step(params, batch):
        X_batch, y_batch = batch
        loss, grads = jax.value_and_grad(
            lambda p: loss_fn(logits_of(p, X_batch), y_batch))(params)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

    @jax.jit
    def epoch(params, X_batches, y_batches):
        return jax.lax.scan(step, params, (X_batches, y_batches))

    params = jax.tree_util.tree_map(jax.numpy.asarray, init_params(X.shape[1], 64, 10))
    order_rng = np.random.default_rng(seed)
    n_batches = len(y) // batch_size
    losses, seconds = [], []
    for _ in range(epochs):
        rows = order_rng.permutation(len(y))[:n_batches * batch_size].reshape(n_batches, -1)
        start = time.perf_counter()
        params, batch_losses = epoch(params, X[rows], y[rows])
        losses.append(float(batch_losses.mean()))  # waits for the epoch to finish
        seconds.append(time.perf_counter() - start)
    return params, np.array(losses), seconds


def accuracy(params, X, y):
    return float(np.mean(np.argmax(np.asarray(logits_of(params, X)), axis=1) == y))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument("--out", default="jax_mlp_digits.png",
                        help="PNG file for the loss curves (default %(default)s)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    needs = [("jax", "jax"), ("matplotlib", "matplotlib"), ("sklearn", "scikit-learn")]
    for module, package in needs:
        try:
            __import__(module)
        except ImportError:
            print(f"This example needs {package}, which is not installed: pip install {package}",
                  file=sys.stderr)
            return 1
    import matplotlib

    matplotlib.use("Agg")  # write files; no display needed
    import matplotlib.pyplot as plt

    import fastxent.jax

    X_train, y_train, X_test, y_test = load_digits_split()
    print(f"digits: {len(y_train)} training and {len(y_test)} test images; "
          f"MLP 64-64-10, {args.epochs} epochs of minibatch SGD, learning rate {args.lr}")
    reference_name, reference = reference_loss()
    runs = {"fastxent": fastxent.jax.cross_entropy, reference_name: reference}
    curves = {}
    for name, loss_fn in runs.items():
        params, losses, seconds = train(loss_fn, X_train, y_train, args.epochs, args.lr)
        # The first epoch compiles the step: the time per epoch is the median of the others.
        per_epoch = statistics.median(seconds[1:] or seconds)
        curves[name] = (losses, per_epoch)
        print(f"{name}: final loss {losses[-1]:.7g}, "
              f"train accuracy {accuracy(params, X_train, y_train):.2%}, "
              f"test accuracy {accuracy(params, X_test, y_test):.2%}, "
              f"{per_epoch * 1e3:.2f} ms per epoch")
    gap = np.max(np.abs(curves["fastxent"][0] - curves[reference_name][0]))
    print(f"largest difference between the loss curves: {gap:.3g}")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, (losses, per_epoch)), style in zip(curves.items(), ["-", "--"]):
        ax.plot(np.arange(1, len(losses) + 1), losses, style,
                label=f"{name} ({per_epoch * 1e3:.1f} ms per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean cross-entropy (training batches)")
    ax.set_yscale("log")
    ax.set_title("MLP on the digits in JAX: fastxent's loss and the reference")
    ax.legend(title="loss")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
