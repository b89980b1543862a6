"""A PyTorch MLP on scikit-learn's bundled digits, with fastxent's loss and with PyTorch's.

The model (64 -> 128 -> ReLU -> 10) is trained twice from the same start on
the same minibatches: once with fastxent.torch.CrossEntropyLoss, whose
forward computes the loss and its gradient in one fused pass, and once with
torch.nn.CrossEntropyLoss. The script prints the accuracy and time per epoch
of both and the largest relative difference between their loss curves
(rounding only: the two are the same function), and plots both curves to a
PNG. Needs PyTorch, scikit-learn (for the data, which ships with it: nothing
is downloaded) and matplotlib.

    python examples/torch_mlp_digits.py [--epochs 30] [--lr 0.1] [--batch 64]
                                        [--out torch_mlp_digits.png]
"""

import argparse
import sys
import time

import numpy as np


def load_digits_split(test_fraction=0.25, seed=0):
    """(X_train, y_train, X_test, y_test): 8x8 images as 64 features in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def train(loss_fn, X, y, epochs, lr, batch, seed=0):
    """SGD with momentum over shuffled minibatches: (model, mean loss of each
    epoch, seconds per epoch). The same seed gives the same start and batches."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    order = torch.Generator().manual_seed(seed)
    losses = np.empty(epochs)
    start = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for rows in torch.randperm(len(y), generator=order).split(batch):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses[epoch] = total / len(y)
    return model, losses, (time.perf_counter() - start) / epochs


def accuracy(model, X, y):
    import torch

    with torch.no_grad():
        return float((model(torch.from_numpy(X)).argmax(1).numpy() == y).mean())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="passes over the data (default 30)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--out", default="torch_mlp_digits.png",
                        help="PNG file for the loss curves (default %(default)s)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch < 1:
        parser.error("--epochs and --batch must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    for module, name in [("torch", "torch"), ("matplotlib", "matplotlib"),
                         ("sklearn", "scikit-learn")]:
        try:
            __import__(module)
        except ImportError:
            print(f"This example needs {name}, which is not installed: pip install {name}",
                  file=sys.stderr)
            return 1
    import matplotlib

    matplotlib.use("Agg")  # write files; no display needed
    import matplotlib.pyplot as plt
    import torch

    import fastxent.torch

    X_train, y_train, X_test, y_test = load_digits_split()
    print(f"digits: {len(y_train)} training and {len(y_test)} test images; {args.epochs} "
          f"epochs, batch {args.batch}, learning rate {args.lr}")
    curves = {}
    # backend="fastxent": the fused kernels even at this batch, which the default
    # ("auto") leaves to PyTorch's loss, quicker there (fastxent.torch.AUTO_MIN_ROWS).
    for name, loss_fn in [("fastxent", fastxent.torch.CrossEntropyLoss(backend="fastxent")),
                          ("torch", torch.nn.CrossEntropyLoss())]:
        model, losses, seconds = train(loss_fn, X_train, y_train, args.epochs, args.lr,
                                       args.batch)
        curves[name] = (losses, seconds)
        print(f"{name}: final loss {losses[-1]:.6g}, "
              f"train accuracy {accuracy(model, X_train, y_train):.2%}, "
              f"test accuracy {accuracy(model, X_test, y_test):.2%}, "
              f"{seconds:.4f} s per epoch")
    gap = np.max(np.abs(curves["fastxent"][0] / curves["torch"][0] - 1))
    print(f"largest relative difference between the loss curves: {gap:.3g}")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, (losses, seconds)), style in zip(curves.items(), ["-", "--"]):
        ax.plot(np.arange(1, len(losses) + 1), losses, style,
                label=f"{name} ({seconds * 1e3:.1f} ms per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean cross-entropy (training set)")
    ax.set_yscale("log")
    ax.set_title("MLP on the digits: fastxent.torch against torch.nn.CrossEntropyLoss")
    ax.legend(title="loss")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
