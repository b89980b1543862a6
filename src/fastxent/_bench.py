"""`python -m fastxent bench`: fastxent against the NumPy reference, PyTorch and a plain copy.

On a shared, noisy machine a fair comparison needs three things, done here:
every implementation is warmed up (its first call is also checked against the
reference), then the implementations are timed round-robin, one sample each
per round, so that a burst of noise hits all of them alike; the table shows
the median over the rounds.

The workloads and implementations are also used by benchmarks/ (pytest-benchmark).
"""

import argparse
import gc
import json
import math
import os
import sys
import time

import numpy as np

import fastxent
from fastxent import reference

from ._config import config

DEFAULT_SHAPES = ((8192, 1000), (65536, 10))
DEFAULT_REPEAT = 15
# Fast calls are repeated within one sample so that a sample lasts at least
# this long: well above the timer's resolution and a scheduler tick.
MIN_SAMPLE_SECONDS = 0.02
RTOL = 1e-4  # agreement required between every implementation and the reference

# Implementations, in the order they are timed and shown.
IMPLEMENTATIONS = {
    "fastxent": "fastxent",
    "fastxent-out": "fastxent (out=)",
    "numpy-reference": "numpy reference [1 thread]",
    "torch": "torch F.cross_entropy fwd+bwd",
    "copy-floor": "copy floor (np.copyto) [1 thread]",
}


# ---------------------------------------------------------------- command line

def _shapes(text):
    try:
        shapes = tuple(tuple(int(n) for n in item.lower().split("x")) for item in text.split(","))
    except ValueError:
        shapes = ()
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(f"expected shapes like 8192x1000,65536x10, got {text!r}")
    return shapes


def _threads(text):
    try:
        threads = tuple(int(n) for n in text.split(","))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}")
    return threads


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def add_arguments(parser):
    """Adds the bench options to an argparse (sub)parser."""
    parser.add_argument("--threads", type=_threads, default=None, metavar="N[,N...]",
                        help="thread counts to time (default: fastxent.get_num_threads())")
    parser.add_argument("--shapes", type=_shapes, default=DEFAULT_SHAPES, metavar="NxC[,NxC...]",
                        help="workloads, rows x classes (default: 8192x1000,65536x10)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="dtype of the logits (default: float32)")
    parser.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT, metavar="N",
                        help=f"timed rounds per workload; medians are reported (default: {DEFAULT_REPEAT})")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the configuration and every result (with all samples) to FILE")


# ---------------------------------------------------------------- workloads

def shape_name(shape):
    return "x".join(str(n) for n in shape)


def make_workload(shape, dtype, seed=0):
    """Logits of `shape` and `dtype` (standard normal, scaled like real logits) and integer labels."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape, dtype=np.dtype(dtype)) * 3
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    return logits, labels


def import_torch():
    """torch, or None where `import torch` does not work (never installed by us)."""
    try:
        import torch
    except (ImportError, OSError):
        return None
    return torch


def make_implementations(logits, labels, torch=None):
    """name -> zero-argument callable. Each call does one full loss+gradient
    (or, for the copy floor, one copy of the logits) and returns (loss, grad)
    where that makes sense. Buffers are allocated here, once, not in the calls.
    Thread counts are set by the caller (see `using_threads`)."""
    out = np.empty_like(logits)
    copy_dst = np.empty_like(logits)
    impls = {
        "fastxent": lambda: fastxent.cross_entropy_with_grad(logits, labels),
        "fastxent-out": lambda: fastxent.cross_entropy_with_grad(logits, labels, out=out),
        "numpy-reference": lambda: reference.cross_entropy_with_grad(logits, labels),
    }
    if torch is not None:
        x = torch.from_numpy(logits).requires_grad_(True)  # shares memory, no copy
        t = torch.from_numpy(labels)

        def torch_step():
            x.grad = None  # a fresh gradient each call, as fastxent allocates one
            loss = torch.nn.functional.cross_entropy(x, t)
            loss.backward()
            return loss.detach(), x.grad

        impls["torch"] = torch_step
    impls["copy-floor"] = lambda: np.copyto(copy_dst, logits)
    return impls


class using_threads:
    """Sets fastxent's and torch's thread counts for a block, then restores torch's.

    torch.set_num_threads also sets the OpenMP runtime's default (shared with
    fastxent's libgomp), so fastxent's count is always passed explicitly."""

    def __init__(self, n, torch=None):
        self.n, self.torch = n, torch

    def __enter__(self):
        self._fastxent = fastxent.num_threads(self.n)
        self._fastxent.__enter__()
        if self.torch is not None:
            self._torch_before = self.torch.get_num_threads()
            self.torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.torch is not None:
            self.torch.set_num_threads(self._torch_before)
        return self._fastxent.__exit__(*exc)


class BenchError(RuntimeError):
    pass


def check(impls, label):
    """Runs each implementation once (this is also its first warm-up call) and
    compares its loss and gradient with the NumPy reference."""
    ref_loss, ref_grad = (np.asarray(a, dtype=np.float64) for a in impls["numpy-reference"]())
    grad_scale = float(np.max(np.abs(ref_grad)))
    for name, fn in impls.items():
        result = None if name == "numpy-reference" else fn()
        if result is None:  # the reference itself, the copy floor
            continue
        loss, grad = (np.asarray(a, dtype=np.float64) for a in result)
        loss_err = abs(float(loss) - float(ref_loss)) / max(abs(float(ref_loss)), 1e-30)
        grad_err = float(np.max(np.abs(grad - ref_grad))) / max(grad_scale, 1e-30)
        if not (loss_err <= RTOL and grad_err <= RTOL):  # also catches NaN
            raise BenchError(
                f"{name} disagrees with the NumPy reference on {label}: loss {float(loss)!r} vs "
                f"{float(ref_loss)!r} (rel. error {loss_err:.2e}), gradient max rel. error "
                f"{grad_err:.2e}; allowed {RTOL:g}")


# ---------------------------------------------------------------- timing

def _sample(fn, number):
    """Seconds per call, averaged over `number` back-to-back calls, gc off (as timeit)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def time_round_robin(impls, rounds, on_round=None):
    """name -> list of `rounds` samples (seconds per call), the implementations
    interleaved A,B,C,A,B,C,... Each is warmed up and calibrated first."""
    numbers = {}
    for name, fn in impls.items():
        fn()  # warm-up: caches, page faults, lazy initialisation, thread pools
        numbers[name] = max(1, math.ceil(MIN_SAMPLE_SECONDS / max(_sample(fn, 1), 1e-9)))
    samples = {name: [] for name in impls}
    for r in range(rounds):
        for name, fn in impls.items():
            samples[name].append(_sample(fn, numbers[name]))
        if on_round is not None:
            on_round(r + 1)
    return samples


class Progress:
    """A one-line progress indicator on stderr; a line per block when stderr is not a terminal."""

    def __init__(self, total):
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def block(self, label, rounds):
        self.label, self.rounds = label, rounds
        if not self.tty:
            print(f"bench: {label} ...", file=sys.stderr, flush=True)

    def round(self, r):
        self.done += 1
        if self.tty:
            pct = 100 * self.done // self.total
            sys.stderr.write(f"\rbench: {pct:3d}%  {self.label}  round {r}/{self.rounds}   ")
            sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


# ---------------------------------------------------------------- report

def _config_line(cfg, torch):
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count()
    torch_version = torch.__version__ if torch is not None else "not importable"
    return (f"fastxent {cfg['version']} | backend {cfg['backend']} | simd {cfg['simd']} | "
            f"openmp {cfg['openmp']} | threads {cfg['threads']} | cpus {cpus} | "
            f"numpy {cfg['numpy']} | torch {torch_version}")


def _warn_if_busy():
    # Other work on the machine skews multi-threaded timings the most: say so.
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return
    if load >= 0.5:
        print(f"bench: warning: the machine is busy (1-minute load average {load:.2f}); "
              "timings, multi-threaded ones above all, will be noisy", file=sys.stderr)


def _rows(shape, dtype, threads, samples):
    nbytes = 2 * math.prod(shape) * np.dtype(dtype).itemsize  # read logits + write grad
    medians = {name: float(np.median(s)) for name, s in samples.items()}
    rows = []
    for name, s in samples.items():
        med = medians[name]
        rows.append({
            "workload": shape_name(shape), "dtype": dtype, "threads": threads,
            "implementation": name, "median_ms": med * 1e3, "min_ms": min(s) * 1e3,
            "gb_per_s": nbytes / med / 1e9,
            "speedup_vs_numpy": medians["numpy-reference"] / med,
            "ratio_to_copy": med / medians["copy-floor"],
            "samples_ms": [x * 1e3 for x in s],
        })
    return rows


def print_table(rows, repeat):
    header = (f"{'workload':<11} {'dtype':<8} {'threads':>7}  {'implementation':<34} "
              f"{'median ms':>10} {'GB/s':>7} {'vs numpy':>9} {'x copy':>7}")
    print(header)
    print("-" * len(header))
    previous = None
    for row in rows:
        block = (row["workload"], row["dtype"], row["threads"])
        if previous is not None and block != previous:
            print()
        previous = block
        print(f"{row['workload']:<11} {row['dtype']:<8} {row['threads']:>7}  "
              f"{IMPLEMENTATIONS[row['implementation']]:<34} {row['median_ms']:>10.3f} "
              f"{row['gb_per_s']:>7.2f} {row['speedup_vs_numpy']:>8.2f}x {row['ratio_to_copy']:>7.2f}")
    print(f"\nMedians of {repeat} interleaved rounds. GB/s counts 2*N*C*itemsize bytes (read the "
          "logits, write the gradient).\n'vs numpy': speed-up over the NumPy reference; 'x copy': "
          "time / time of one copy of the logits (the memory floor).")


def run(args):
    """Runs the benchmark described by the parsed `args`; returns an exit code."""
    threads = args.threads or (fastxent.get_num_threads(),)
    cfg = config()  # read before torch is imported: torch can change the OpenMP default
    torch = import_torch()
    print(_config_line(cfg, torch), flush=True)
    _warn_if_busy()

    progress = Progress(total=len(args.shapes) * len(threads) * args.repeat)
    rows = []
    try:
        for shape in args.shapes:
            logits, labels = make_workload(shape, args.dtype)
            impls = make_implementations(logits, labels, torch)
            for n in threads:
                label = f"{shape_name(shape)} {args.dtype}, {n} thread{'s' * (n > 1)}"
                progress.block(label, args.repeat)
                with using_threads(n, torch):
                    check(impls, label)
                    samples = time_round_robin(impls, args.repeat, progress.round)
                rows += _rows(shape, args.dtype, n, samples)
            del logits, labels, impls  # free the big buffers before the next workload
    except BenchError as exc:
        progress.close()
        print(f"\nfastxent bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        print("\nfastxent bench: interrupted", file=sys.stderr)
        return 130
    progress.close()

    print()
    print_table(rows, args.repeat)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "torch": torch.__version__ if torch is not None else None,
                       "repeat": args.repeat, "bytes": "2*N*C*itemsize", "results": rows}, f, indent=1)
        print(f"results written to {args.json}")
    return 0
