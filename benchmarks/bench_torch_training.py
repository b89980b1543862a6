"""fastxent.torch against PyTorch's own losses: per-call overhead and training steps.

    PYTHONPATH=src python benchmarks/bench_torch_training.py [--only overhead,mlp,lm,lm-loss]
        [--compile] [--repeats 30] [--threads N]

* overhead: microseconds per call at batch 64 x 10 classes, float32, of the
  loss's forward + backward: fastxent.torch.cross_entropy (the bridge),
  fastxent.cross_entropy_with_grad on NumPy arrays (the kernel alone, the
  bridge's floor) and torch.nn.functional.cross_entropy;
* mlp: a training step (forward, backward, SGD step) of a small MLP classifier
  (64 features, 256 hidden, 10 classes, batch 256);
* lm: a training step of a language-model-style output layer: hidden 512,
  vocabulary 32,000, 4,096 rows (a Linear layer without bias and the loss);
* lm-loss: the loss alone (forward + backward) on that layer's logits.

Each row runs the candidates interleaved (one call of each per round, order
rotated) and reports the median and the ratio to PyTorch's loss. With
--compile the steps also run under torch.compile (the first calls, which
compile, are not timed). Not a test: no assertions on time.
"""

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastxent
import fastxent.torch as ft


def interleaved(candidates, repeats, warmup=3):
    """name -> median seconds of fn(), the candidates run in rotating order."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title, medians, unit, reference):
    print(f"\n{title}")
    scale = {"us": 1e6, "ms": 1e3}[unit]
    for name, seconds in medians.items():
        ratio = medians[reference] / seconds
        print(f"  {name:<34} {seconds * scale:10.1f} {unit}   {ratio:5.2f}x vs {reference}")


def overhead(repeats):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, generator=gen, requires_grad=True)
    y = torch.randint(0, 10, (64,), generator=gen)
    xn, yn = x.detach().numpy().copy(), y.numpy().copy()

    def bridge():
        ft.cross_entropy(x, y).backward()

    def torch_loss():
        F.cross_entropy(x, y).backward()

    def kernel():
        fastxent.cross_entropy_with_grad(xn, yn)

    medians = interleaved({"fastxent.torch.cross_entropy": bridge,
                           "fastxent.cross_entropy_with_grad": kernel,
                           "F.cross_entropy": torch_loss}, repeats * 100)
    report("per call, 64 x 10 float32, forward + backward", medians, "us", "F.cross_entropy")


def training_steps(title, model, inputs, labels, repeats, compile_too, lr=0.01):
    """Step times of model + loss with fastxent.torch and with PyTorch's loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    def make_step(loss_fn):
        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), labels)
            loss.backward()
            optimizer.step()
        return step

    candidates = {"torch eager, F.cross_entropy": make_step(F.cross_entropy),
                  "torch eager, fastxent.torch": make_step(ft.cross_entropy)}
    if compile_too:
        # Two functions with code of their own: one compiled code object
        # called with either loss would switch between guarded cache entries.
        def forward_torch(x, y):
            return F.cross_entropy(model(x), y)

        def forward_fastxent(x, y):
            return ft.cross_entropy(model(x), y)

        for name, forward in [("F.cross_entropy", torch.compile(forward_torch)),
                              ("fastxent.torch", torch.compile(forward_fastxent))]:
            def step(forward=forward):
                optimizer.zero_grad(set_to_none=True)
                forward(inputs, labels).backward()
                optimizer.step()
            candidates[f"torch.compile, {name}"] = step
    medians = interleaved(candidates, repeats)
    report(title, medians, "ms", "torch eager, F.cross_entropy")


def mlp(repeats, compile_too):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    inputs = torch.randn(256, 64)
    labels = torch.randint(0, 10, (256,))
    training_steps("training step, MLP 64-256-10, batch 256, float32", model, inputs, labels,
                   repeats * 10, compile_too)


def lm(repeats, compile_too):
    torch.manual_seed(0)
    model = torch.nn.Linear(512, 32000, bias=False)
    inputs = torch.randn(4096, 512)
    labels = torch.randint(0, 32000, (4096,))
    training_steps("training step, output layer 512 -> 32,000, 4,096 rows, float32", model,
                   inputs, labels, repeats, compile_too)


def lm_loss(repeats):
    """The loss alone (forward + backward) on the LM layer's logits."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4096, 32000, generator=gen, requires_grad=True)
    labels = torch.randint(0, 32000, (4096,), generator=gen)

    def run(fn):
        def call():
            logits.grad = None
            fn(logits, labels).backward()
        return call

    medians = interleaved({"F.cross_entropy": run(F.cross_entropy),
                           "fastxent.torch.cross_entropy": run(ft.cross_entropy)}, repeats)
    report("the loss alone, forward + backward, 4,096 x 32,000 float32 logits", medians, "ms",
           "F.cross_entropy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="overhead,mlp,lm,lm-loss")
    parser.add_argument("--compile", action="store_true", help="also under torch.compile")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for PyTorch and fastxent (default: their defaults)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        fastxent.set_num_threads(args.threads)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), fastxent "
          f"{fastxent.__version__} ({fastxent.get_num_threads()} threads, "
          f"{fastxent.get_backend()} backend), numpy {np.__version__}")
    sections = {"overhead": lambda: overhead(args.repeats),
                "mlp": lambda: mlp(args.repeats, args.compile),
                "lm": lambda: lm(args.repeats, args.compile),
                "lm-loss": lambda: lm_loss(args.repeats)}
    for name in args.only.split(","):
        sections[name]()


if __name__ == "__main__":
    main()
