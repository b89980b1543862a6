"""Softmax regression on scikit-learn's bundled digits, trained with fastxent.

A linear model, logits = X @ W + b with W of shape (64, 10), fitted by plain
full-batch gradient descent on the mean cross-entropy. Each step takes the
loss and its gradient with respect to the logits from one fused call,
fastxent.cross_entropy_with_grad; the chain rule gives the rest
(dW = X.T @ dlogits, db = column sums of dlogits).

The model is trained twice from the same start, on the compiled backend and
on the pure-NumPy reference backend; the script prints the accuracy and time
of both and plots both loss curves to a PNG. Needs scikit-learn (for the data,
which ships with it: nothing is downloaded) and matplotlib.

    python examples/softmax_regression_digits.py [--epochs 300] [--lr 0.5]
                                                 [--out softmax_regression_digits.png]
"""

import argparse
import sys
import time

import numpy as np

import fastxent


def load_digits_split(test_fraction=0.25, seed=0):
    """(X_train, y_train, X_test, y_test): 8x8 images as 64 features in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = digits.data / 16.0  # pixel intensities run from 0 to 16
    y = digits.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def train(X, y, n_classes, epochs, lr):
    """Gradient descent from zero weights: (W, b, the loss before each step)."""
    W = np.zeros((X.shape[1], n_classes))
    b = np.zeros(n_classes)
    losses = np.empty(epochs)
    for epoch in range(epochs):
        logits = X @ W + b
        # The gradient overwrites the logits (out=logits): no new N x C array.
        loss, dlogits = fastxent.cross_entropy_with_grad(logits, y, out=logits)
        W -= lr * (X.T @ dlogits)
        b -= lr * dlogits.sum(axis=0)
        losses[epoch] = loss
    return W, b, losses


def accuracy(X, y, W, b):
    return float(np.mean(np.argmax(X @ W + b, axis=1) == y))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300, help="gradient steps (default 300)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    parser.add_argument("--out", default="softmax_regression_digits.png",
                        help="PNG file for the loss curves (default %(default)s)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)

    try:
        import matplotlib

        matplotlib.use("Agg")  # write files; no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("This example plots with matplotlib, which is not installed: "
              "pip install matplotlib", file=sys.stderr)
        return 1
    try:
        X_train, y_train, X_test, y_test = load_digits_split()
    except ImportError:
        print("This example takes its data from scikit-learn, which is not installed: "
              "pip install scikit-learn", file=sys.stderr)
        return 1
    n_classes = 10
    print(f"digits: {len(y_train)} training and {len(y_test)} test images, "
          f"{X_train.shape[1]} features; {args.epochs} epochs, learning rate {args.lr}")

    curves = {}
    previous = fastxent.get_backend()
    try:
        for backend in ("compiled", "numpy"):
            try:
                fastxent.set_backend(backend)
            except RuntimeError as exc:
                print(f"{backend}: not available ({exc})")
                continue
            start = time.perf_counter()
            W, b, losses = train(X_train, y_train, n_classes, args.epochs, args.lr)
            seconds = time.perf_counter() - start
            curves[backend] = (losses, seconds)
            print(f"{backend}: final loss {losses[-1]:.12g}, "
                  f"train accuracy {accuracy(X_train, y_train, W, b):.2%}, "
                  f"test accuracy {accuracy(X_test, y_test, W, b):.2%}, {seconds:.3f} s")
    finally:
        fastxent.set_backend(previous)
    if len(curves) == 2:
        gap = np.max(np.abs(curves["compiled"][0] - curves["numpy"][0]))
        print(f"largest difference between the backends' losses: {gap:.3g}")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"compiled": "-", "numpy": "--"}  # dashed on top: both curves stay visible
    for backend, (losses, seconds) in curves.items():
        ax.plot(np.arange(1, len(losses) + 1), losses, styles[backend],
                label=f"{backend} ({seconds:.2f} s)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean cross-entropy (training set)")
    ax.set_yscale("log")
    ax.set_title("Softmax regression on the digits, by gradient descent")
    ax.legend(title="fastxent backend")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
