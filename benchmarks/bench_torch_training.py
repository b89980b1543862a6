"""fastxent.torch against PyTorch's own losses: per-call overhead and training steps.

    PYTHONPATH=src python benchmarks/bench_torch_training.py
        [--only overhead,small,dispatch,crossover,mlp,lm,lm-loss] [--compile] [--repeats 15]
        [--threads N]

* overhead: microseconds per call at batch 64 x 10 classes, float32, of the
  loss's forward + backward: fastxent.torch.cross_entropy with
  backend="auto" (PyTorch's own below fastxent.torch.AUTO_MIN_ELEMENTS) and
  with backend="fastxent" (the bridge), fastxent.cross_entropy_with_grad on
  NumPy arrays (the kernel alone, the bridge's floor), an autograd.Function
  that does nothing (the framework's floor) and
  torch.nn.functional.cross_entropy;
* small: every function and module of fastxent.torch with backend="auto"
  against its torch.nn namesake at 32 x 10, 64 x 10, 256 x 10 and 64 x 100,
  float32, forward + backward: where auto hands the call to PyTorch, the
  difference is the cost of the dispatch in front of it (microseconds);
* dispatch: the same pairs at 64 x 10, forward only, the best of many
  samples (timeit's estimator of a fixed cost: noise only adds): the
  dispatch's own cost, which the medians above bury in noise;
* crossover: the bridge (backend="fastxent"), backend="auto" and PyTorch's
  loss (cross_entropy, nll_loss, binary_cross_entropy_with_logits; --losses
  picks), forward + backward, over a grid of N x C, float32 and float64,
  reductions "mean" and "none": the sizes where the kernel path starts to
  win, which set fastxent.torch.AUTO_MIN_ELEMENTS and its kin;
* mlp: a training step (forward, backward, SGD step) of a small MLP classifier
  (64 features, 256 hidden, 10 classes, batch 256);
* lm: a training step of a language-model-style output layer: hidden 512,
  vocabulary 32,000, 4,096 rows (a Linear layer without bias and the loss);
* lm-loss: the loss alone (forward + backward) on that layer's logits.

Each row runs the candidates interleaved (fastxent.bench.timing: one sample
of each per round, fast calls repeated within a sample) and reports the
median and the ratio to PyTorch's loss. With --compile the steps also run
under torch.compile (the first calls, which compile, are not timed). Not a
test: no assertions on time.
"""

import argparse
import math
import statistics
import timeit

import numpy as np
import torch
import torch.nn.functional as F

import fastxent
import fastxent.torch as ft
from fastxent.bench.timing import time_round_robin


def interleaved(candidates, repeats):
    """name -> median seconds of fn(), the candidates timed round-robin."""
    samples = time_round_robin(candidates, repeats)
    return {name: statistics.median(t) for name, t in samples.items()}


def report(title, medians, unit, reference):
    print(f"\n{title}")
    scale = {"us": 1e6, "ms": 1e3}[unit]
    for name, seconds in medians.items():
        ratio = medians[reference] / seconds
        print(f"  {name:<50} {seconds * scale:10.3g} {unit}   {ratio:5.2f}x vs {reference}")


class _Nothing(torch.autograd.Function):
    """An autograd.Function that computes nothing: the framework's own floor."""

    @staticmethod
    def forward(ctx, x):
        ctx.grad = torch.zeros_like(x)
        return x.new_zeros(())

    @staticmethod
    def backward(ctx, grad_output):
        return ctx.grad


def overhead(repeats):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, generator=gen, requires_grad=True)
    y = torch.randint(0, 10, (64,), generator=gen)
    xn, yn = x.detach().numpy().copy(), y.numpy().copy()
    medians = interleaved({
        "fastxent.torch, backend='auto'": lambda: ft.cross_entropy(x, y).backward(),
        "fastxent.torch, backend='fastxent'":
            lambda: ft.cross_entropy(x, y, backend="fastxent").backward(),
        "kernel alone (cross_entropy_with_grad)":
            lambda: fastxent.cross_entropy_with_grad(xn, yn),
        "empty autograd.Function": lambda: _Nothing.apply(x).backward(),
        "F.cross_entropy": lambda: F.cross_entropy(x, y).backward(),
    }, repeats)
    report("per call, 64 x 10 float32, forward + backward", medians, "us", "F.cross_entropy")


SMALL_SHAPES = [(32, 10), (64, 10), (256, 10), (64, 100)]


def _small_cases(x, labels):
    """name -> (fastxent.torch's call, PyTorch's call) on logits x and labels."""
    probs = torch.sigmoid(x.detach()).requires_grad_()
    log_probs = torch.log_softmax(x.detach(), 1).requires_grad_()
    binary = (torch.rand(x.shape) < 0.5).float()
    pairs = {
        "cross_entropy": (lambda: ft.cross_entropy(x, labels),
                          lambda: F.cross_entropy(x, labels)),
        "nll_loss": (lambda: ft.nll_loss(log_probs, labels),
                     lambda: F.nll_loss(log_probs, labels)),
        "binary_cross_entropy": (lambda: ft.binary_cross_entropy(probs, binary),
                                 lambda: F.binary_cross_entropy(probs, binary)),
        "binary_cross_entropy_with_logits": (
            lambda: ft.binary_cross_entropy_with_logits(x, binary),
            lambda: F.binary_cross_entropy_with_logits(x, binary)),
    }
    modules = [(ft.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), x, labels),
               (ft.NLLLoss(), torch.nn.NLLLoss(), log_probs, labels),
               (ft.BCELoss(), torch.nn.BCELoss(), probs, binary),
               (ft.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), x, binary)]
    for ours, theirs, inp, target in modules:
        pairs[type(ours).__name__] = (lambda m=ours, i=inp, t=target: m(i, t),
                                      lambda m=theirs, i=inp, t=target: m(i, t))
    return pairs


def small(repeats):
    """backend="auto" against PyTorch's own at small sizes, forward + backward."""
    gen = torch.Generator().manual_seed(0)
    for n, c in SMALL_SHAPES:
        x = torch.randn(n, c, generator=gen, requires_grad=True)
        labels = torch.randint(0, c, (n,), generator=gen)
        print(f"\nsmall, {n} x {c} float32, forward + backward, backend='auto' vs PyTorch's")
        for name, (ours, theirs) in _small_cases(x, labels).items():
            medians = interleaved({"ours": lambda f=ours: f().backward(),
                                   "torch": lambda f=theirs: f().backward()}, repeats)
            print(f"  {name:<34} fastxent.torch {medians['ours'] * 1e6:7.2f} us   torch "
                  f"{medians['torch'] * 1e6:7.2f} us   difference "
                  f"{(medians['ours'] - medians['torch']) * 1e6:+6.2f} us")


def dispatch(repeats):
    """The fixed cost of backend="auto"'s dispatch: the best per-call time of
    the forward (no grad) of each pair at 64 x 10, over many samples."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, generator=gen)
    labels = torch.randint(0, 10, (64,), generator=gen)
    print("\ndispatch, 64 x 10 float32, forward without grad, best of "
          f"{3 * repeats} samples of 2000 calls")
    with torch.no_grad():
        for name, (ours, theirs) in _small_cases(x, labels).items():
            best = {"ours": math.inf, "torch": math.inf}
            for _ in range(3 * repeats):
                for key, fn in (("ours", ours), ("torch", theirs)):
                    best[key] = min(best[key], timeit.timeit(fn, number=2000) / 2000)
            print(f"  {name:<34} fastxent.torch {best['ours'] * 1e6:6.2f} us   torch "
                  f"{best['torch'] * 1e6:6.2f} us   dispatch "
                  f"{(best['ours'] - best['torch']) * 1e6:+5.2f} us")


CROSSOVER_SHAPES = [(n, c) for c in (10, 100, 1000) for n in (16, 64, 256, 1024, 4096)
                    if n * c <= 1 << 20]
CROSSOVER_LOSSES = {  # name -> (the bridge's function, PyTorch's, the target for (x, labels))
    "cross_entropy": (ft.cross_entropy, F.cross_entropy, lambda x, labels: labels),
    "nll_loss": (ft.nll_loss, F.nll_loss, lambda x, labels: labels),
    "binary_cross_entropy_with_logits": (
        ft.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
        lambda x, labels: (torch.rand(x.shape, dtype=x.dtype) < 0.5).to(x.dtype)),
}


def crossover(repeats, losses=tuple(CROSSOVER_LOSSES)):
    """The bridge (backend="fastxent") against PyTorch's loss over N x C: the
    sizes where it wins, which set fastxent.torch.AUTO_MIN_ELEMENTS."""
    gen = torch.Generator().manual_seed(0)
    for loss_name in losses:
        ours, theirs, make_target = CROSSOVER_LOSSES[loss_name]
        for dtype in (torch.float32, torch.float64):
            for reduction in ("mean", "none"):
                print(f"\ncrossover, {loss_name}, {dtype}, reduction={reduction!r}: "
                      "forward + backward; ratio: the bridge's time / PyTorch's; "
                      "auto/torch: backend='auto''s / PyTorch's")
                for n, c in CROSSOVER_SHAPES:
                    x = torch.randn(n, c, generator=gen, dtype=dtype, requires_grad=True)
                    target = make_target(x, torch.randint(0, c, (n,), generator=gen))

                    def run(fn, x=x, target=target, reduction=reduction, **backend):
                        def call():
                            x.grad = None
                            fn(x, target, reduction=reduction, **backend).sum().backward()
                        return call

                    medians = interleaved({"bridge": run(ours, backend="fastxent"),
                                           "auto": run(ours), "torch": run(theirs)}, repeats)
                    print(f"  {n:>6} x {c:<5} {n * c:>9} elements   bridge "
                          f"{medians['bridge'] * 1e6:8.1f} us   torch "
                          f"{medians['torch'] * 1e6:8.1f} us   ratio "
                          f"{medians['bridge'] / medians['torch']:5.2f}   auto/torch "
                          f"{medians['auto'] / medians['torch']:5.2f}")


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
                  "torch eager, fastxent.torch": make_step(ft.cross_entropy),
                  "torch eager, fastxent.torch, backend='fastxent'": make_step(
                      lambda x, y: ft.cross_entropy(x, y, backend="fastxent"))}
    if compile_too:
        # Two functions with code of their own: one compiled code object
        # called with either loss would switch between guarded cache entries.
        def forward_torch(x, y):
            return F.cross_entropy(model(x), y)

        def forward_auto(x, y):  # backend="auto": the compiler's loss (AUTO_KERNELS_UNDER_COMPILE)
            return ft.cross_entropy(model(x), y)

        def forward_fastxent(x, y):  # the kernels, as a custom operator
            return ft.cross_entropy(model(x), y, backend="fastxent")

        for name, forward in [("F.cross_entropy", torch.compile(forward_torch)),
                              ("fastxent.torch", torch.compile(forward_auto)),
                              ("fastxent.torch, backend='fastxent'",
                               torch.compile(forward_fastxent))]:
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
                   repeats, compile_too)


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
    parser.add_argument("--only", default="overhead,small,dispatch,crossover,mlp,lm,lm-loss")
    parser.add_argument("--compile", action="store_true", help="also under torch.compile")
    parser.add_argument("--repeats", type=int, default=15, help="rounds (medians over them)")
    parser.add_argument("--losses", default=",".join(CROSSOVER_LOSSES),
                        help="the losses of the crossover section")
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
                "small": lambda: small(args.repeats),
                "dispatch": lambda: dispatch(args.repeats),
                "crossover": lambda: crossover(args.repeats, args.losses.split(",")),
                "mlp": lambda: mlp(args.repeats, args.compile),
                "lm": lambda: lm(args.repeats, args.compile),
                "lm-loss": lambda: lm_loss(args.repeats)}
    for name in args.only.split(","):
        sections[name]()


if __name__ == "__main__":
    main()
