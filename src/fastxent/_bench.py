"""`python -m fastxent bench`: fastxent against NumPy, its peers and the memory floor.

Three operations ("ops") are timed, each on its workloads:

* ``xent``      cross_entropy_with_grad, loss and gradient (allocating, and with out=);
* ``xent-fwd``  cross_entropy, the loss alone;
* ``bce``       binary_cross_entropy_with_logits_with_grad (allocating, and with out=);

against the NumPy reference (fastxent.reference), PyTorch CPU, scikit-learn's
private loss classes and JAX, each where it is importable, and against the
memory floor of the operation: the least memory traffic a pass can have, moved
by a multithreaded copy (memcpy or streaming stores, the quicker) or read
(fastxent._kernels.copy_floor / read_floor).

On a shared, noisy machine a fair comparison needs three things, done here:
every implementation is checked against the reference once (which is also its
first warm-up call), then the implementations are timed round-robin, one
sample each per round, so that a burst of noise hits all of them alike; the
table shows the median over the rounds. The thread counts of a workload
(--threads 1,2) are interleaved in the same rounds, so thread scaling is
measured alike. A sample repeats a fast call until it lasts MIN_SAMPLE_SECONDS.

The floors move each op's least traffic (see OPS) with the row's thread count,
or with one thread where that is quicker (small inputs): they are lower
bounds, and 'x floor' says how far from one a kernel is. GB/s counts those
bytes (the int64 class labels of the xent ops are not counted).

The workloads and implementations are also used by benchmarks/ (pytest-benchmark)
and tests/test_bench.py.
"""

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

import numpy as np

import fastxent
from fastxent import reference

from . import _config
from ._config import config

DEFAULT_REPEAT = 15
# A block (one op, workload, dtype and thread count) takes at most about this
# long: the rounds are cut (to no fewer than MIN_ROUNDS) when the slowest
# implementations would take longer. Only --full's big workloads hit it.
DEFAULT_MAX_SECONDS = 20.0
MIN_ROUNDS = 5
# Fast calls are repeated within one sample so that a sample lasts at least
# this long: well above the timer's resolution and a scheduler tick.
MIN_SAMPLE_SECONDS = 0.02
RTOL = 1e-4  # agreement required between every implementation and the reference

MI = 1 << 20


@dataclass(frozen=True)
class Op:
    title: str
    floor: str            # what the floor implementation moves
    bytes_per_element: int  # in units of the dtype's itemsize: the floor's traffic
    default_shapes: tuple


OPS = {
    "xent": Op("cross_entropy_with_grad: loss + gradient",
               "copy of the logits (read N*C, write N*C; memcpy or streaming stores, "
               "the quicker)", 2,
               ((8192, 1000), (65536, 10))),
    "xent-fwd": Op("cross_entropy: loss only",
                   "read of the logits (N*C)", 1,
                   ((8192, 1000),)),
    "bce": Op("binary_cross_entropy_with_logits_with_grad: loss + gradient",
              "copy of the logits + read of the targets (read 2n, write n; copy as for xent)", 3,
              ((4 * MI,),)),
}
DEFAULT_OPS = tuple(OPS)

# The implementations, in the order they are timed and shown, with the name
# each has in the plot's legend (the table's labels depend on the op).
IMPLEMENTATIONS = {
    "fastxent": "fastxent",
    "fastxent-out": "fastxent (out=)",
    "numpy-reference": "NumPy reference (1 thread)",
    "torch": "PyTorch",
    "sklearn": "scikit-learn (sklearn._loss)",
    "jax": "JAX (jit)",
    "floor": "memory floor (multithreaded copy / read)",
}
IMPL_NAMES = tuple(IMPLEMENTATIONS)
PEERS = ("torch", "sklearn", "jax")

# --full: every workload of the performance targets, (op, shape, dtype, scaling);
# a scaling workload is timed with 1 thread too (two threads vs one).
FULL_PLAN = (
    ("xent", (8192, 1000), "float32", False),
    ("xent", (2048, 32768), "float32", False),
    ("xent", (65536, 10), "float32", False),
    ("xent", (32, 10), "float32", False),
    ("xent", (8192, 1000), "float64", False),
    ("xent", (4, 262144), "float32", True),
    ("xent-fwd", (8192, 1000), "float32", False),
    ("xent-fwd", (2048, 32768), "float32", False),
    ("bce", (16 * MI,), "float32", False),
)


# ---------------------------------------------------------------- command line

_SUFFIX = {"": 1, "k": 1000, "Ki": 1024, "M": 1000**2, "Mi": MI}


def _size(text):
    m = re.fullmatch(r"(\d+)(k|Ki|M|Mi)?", text.strip())
    if not m:
        raise ValueError(text)
    return int(m[1]) * _SUFFIX[m[2] or ""]


def _shapes(text):
    try:
        shapes = tuple(tuple(_size(n) for n in item.split("x")) for item in text.split(","))
    except ValueError:
        shapes = ()
    if not shapes or any(len(s) not in (1, 2) or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(
            f"expected shapes like 8192x1000,65536x10 (rows x classes) or 4Mi (elements, "
            f"bce only), got {text!r}")
    return shapes


def _threads(text):
    try:
        threads = tuple(int(n) for n in text.split(","))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}")
    return tuple(dict.fromkeys(threads))


def _choices(allowed, what):
    def parse(text):
        items = tuple(dict.fromkeys(s.strip() for s in text.split(",")))
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"expected {what} from {','.join(allowed)} (comma-separated), got {text!r}")
        return items
    return parse


def _peers(text):
    if text.strip() == "none":
        return ()
    return _choices(PEERS, "peers (or none)")(text)


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _seconds(text):
    try:
        s = float(text)
    except ValueError:
        s = 0.0
    if not s > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return s


def add_arguments(parser):
    """Adds the bench options to an argparse (sub)parser."""
    parser.add_argument("--ops", type=_choices(tuple(OPS), "operations"), default=DEFAULT_OPS,
                        metavar="OP[,OP...]",
                        help="operations to time: xent (loss+gradient), xent-fwd (loss only), "
                             "bce (binary CE with logits, loss+gradient); default: all three")
    parser.add_argument("--peers", type=_peers, default=PEERS, metavar="PEER[,PEER...]",
                        help="libraries to compare with, where installed: torch, sklearn, jax, "
                             "or none (default: all three)")
    parser.add_argument("--threads", type=_threads, default=None, metavar="N[,N...]",
                        help="thread counts to time, for thread scaling (default: "
                             "fastxent.get_num_threads())")
    parser.add_argument("--shapes", type=_shapes, default=None, metavar="SHAPE[,SHAPE...]",
                        help="workloads: rows x classes (8192x1000), or a number of elements "
                             "(16Mi; bce only: bce takes every shape). Default per op: xent "
                             "8192x1000,65536x10; xent-fwd 8192x1000; bce 4Mi")
    parser.add_argument("--dtype", type=_choices(("float32", "float64"), "dtypes"), default=None,
                        metavar="DTYPE[,DTYPE]",
                        help="float32 and/or float64 (default: float32; with --full, the "
                             "preset's, filtered by this option when given)")
    parser.add_argument("--full", action="store_true",
                        help="every workload of the performance targets (a few minutes): xent "
                             "8192x1000, 2048x32768, 65536x10, 32x10, float64 8192x1000, "
                             "4x262144 with 1 thread and more; xent-fwd 8192x1000, 2048x32768; "
                             "bce 16Mi")
    parser.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT, metavar="N",
                        help=f"timed rounds per block; medians are reported (default: "
                             f"{DEFAULT_REPEAT})")
    parser.add_argument("--max-seconds", type=_seconds, default=DEFAULT_MAX_SECONDS, metavar="S",
                        help=f"cut a block's rounds (to no fewer than {MIN_ROUNDS}) when they "
                             f"would take longer than S seconds (default: {DEFAULT_MAX_SECONDS:g})")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the configuration and every result (with all samples) "
                             "to FILE")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="also draw the results (time / memory floor, per workload and "
                             "implementation) into FILE.png; needs matplotlib")


# ---------------------------------------------------------------- workloads

def size_name(n):
    for unit, scale in (("Mi", MI), ("Ki", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def shape_name(shape):
    if len(shape) == 1:
        return size_name(shape[0])
    return "x".join(str(n) for n in shape)


@dataclass
class Workload:
    op: str
    shape: tuple
    dtype: str
    logits: np.ndarray
    target: np.ndarray  # int64 labels (xent ops) or 0/1 floats of the logits' dtype (bce)

    @property
    def name(self):
        return shape_name(self.shape)

    @property
    def nbytes(self):
        """The floor's traffic, also the byte count of the GB/s column."""
        return OPS[self.op].bytes_per_element * self.logits.nbytes


def make_workload(op, shape, dtype, seed=0):
    """Logits of `shape` and `dtype` (standard normal, scaled like real logits)
    and the targets: class labels for the xent ops, 0/1 labels for bce."""
    if op not in OPS:
        raise ValueError(f"op: expected one of {tuple(OPS)}, got {op!r}")
    shape = tuple(int(n) for n in shape)
    if op != "bce" and len(shape) != 2:
        raise ValueError(f"{op} needs rows x classes, got the shape {shape_name(shape)}")
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape, dtype=np.dtype(dtype)) * 3
    if op == "bce":
        target = (rng.random(shape) < 0.5).astype(dtype)
    else:
        target = rng.integers(0, shape[-1], size=shape[:-1])
    return Workload(op, shape, np.dtype(dtype).name, logits, target)


# ---------------------------------------------------------------- peers

@dataclass
class Peers:
    """The libraries compared against; None where not importable."""
    torch: object = None
    sklearn_loss: object = None  # the module sklearn._loss.loss
    sklearn_version: str = None
    jax: object = None
    notes: list = field(default_factory=list)  # why a peer is missing
    asked: tuple = PEERS

    def versions(self):
        """name -> version, None where not importable; peers not asked for left out."""
        versions = {"torch": getattr(self.torch, "__version__", None),
                    "sklearn": self.sklearn_version,
                    "jax": getattr(self.jax, "__version__", None)}
        return {name: v for name, v in versions.items() if name in self.asked}


def import_torch():
    """torch, or None where `import torch` does not work (never installed by us)."""
    try:
        import torch
    except (ImportError, OSError):
        return None
    return torch


def import_peers(x64=False, names=PEERS):
    """Imports the peers that are installed. `x64`: enable JAX's float64 (needed
    for float64 workloads; float32 arrays stay float32)."""
    peers = Peers(asked=tuple(names))
    if "torch" in names:
        peers.torch = import_torch()
        if peers.torch is None:
            peers.notes.append("torch: not importable")
    if "sklearn" in names:
        try:
            import sklearn
            from sklearn._loss import loss as sklearn_loss  # private API: may move
            sklearn_loss.HalfMultinomialLoss, sklearn_loss.HalfBinomialLoss  # noqa: B018
        except (ImportError, AttributeError) as exc:
            peers.notes.append(f"scikit-learn: not usable ({exc})")
        else:
            peers.sklearn_loss, peers.sklearn_version = sklearn_loss, sklearn.__version__
    if "jax" in names:
        try:
            import jax
            import jax.numpy  # noqa: F401
        except ImportError:
            peers.notes.append("jax: not importable")
        else:
            if x64:
                jax.config.update("jax_enable_x64", True)
            peers.jax = jax
    return peers


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---------------------------------------------------------------- implementations

@dataclass
class Impl:
    """One implementation of an op on one workload.

    `fn()` does one call (what is timed). `to_reference(result)` turns its
    result into (mean loss, gradient of the mean loss or None) for the check,
    outside the timing: peers with other conventions (per-sample losses,
    per-sample gradients) are converted there, not charged for it. A floor
    has `verify()` instead, which checks that it really moved the bytes."""
    label: str
    fn: object
    to_reference: object = None
    verify: object = None
    threads: int = None  # the floor's thread count (one where that is quicker)


def _as_reference(result):
    if isinstance(result, tuple):
        return result
    return result, None


def _quickest(candidates, samples=5, seconds=0.002):
    """The key of the fastest of `candidates` (key -> zero-argument callable):
    the least of a few interleaved samples, each of about `seconds`."""
    numbers = {}
    for key, fn in candidates.items():
        fn()
        numbers[key] = max(1, math.ceil(seconds / max(_sample(fn, 1), 1e-9)))
    best = {key: math.inf for key in candidates}
    for _ in range(samples):
        for key, fn in candidates.items():
            best[key] = min(best[key], _sample(fn, numbers[key]))
    return min(best, key=best.get)


def _floor_impl(w, threads):
    """The op's memory floor: its least traffic (see OPS), moved by a copy
    and/or a read (XOR of 64-bit words) in `threads` threads, or in one thread
    where that is quicker (small inputs, where waking threads costs more than
    it saves: fastxent, too, uses one thread there). The copy is the quicker
    of memcpy and streaming stores (memcpy streams by its own threshold,
    which a large last-level cache can put above any workload here).
    Without the compiled extension: single-threaded NumPy, labelled so."""
    kernels = _config._compiled

    def as_bytes(a):
        return a.reshape(-1).view(np.uint8)

    def as_words(a):
        # read_floor reads 64-bit words: the last nbytes % 8 bytes (at most 4,
        # one float32) are left out, a negligible part of any real workload.
        b = as_bytes(a)
        return b[:b.size - b.size % 8].view(np.uint64)

    def xor(words):
        return int(np.bitwise_xor.reduce(words)) if words.size else 0

    dst = np.empty_like(w.logits)
    src_bytes, dst_bytes = as_bytes(w.logits), as_bytes(dst)
    logit_words, target_words = as_words(w.logits), as_words(w.target)

    def make(n, stream=False):
        if kernels is None:
            def copy():
                np.copyto(dst_bytes, src_bytes)
            read = xor
        else:
            def copy():
                kernels.copy_floor(src_bytes, dst_bytes, n, stream)

            def read(words):
                return kernels.read_floor(words, n)
        if w.op == "xent":
            return copy
        if w.op == "xent-fwd":
            return lambda: read(logit_words)

        def copy_and_read():
            copy()
            return read(target_words)
        return copy_and_read

    what = {"xent": "copy", "xent-fwd": "read", "bce": "copy+read"}[w.op]
    if kernels is None:
        n, stream, label = 1, False, f"floor: {what} (NumPy, 1 thr)"
    else:
        n, stream = _quickest({(n, stream): make(n, stream) for n in {threads, 1}
                               for stream in (False, True)})
        label = f"floor: {what}" + (" (1 thread)" if n < threads else "")
    fn = make(n, stream)

    def verify():
        dst.fill(0)
        result = fn()
        if w.op == "xent-fwd":
            return result == xor(logit_words)
        copied = np.array_equal(dst_bytes, src_bytes)
        return copied if w.op == "xent" else copied and result == xor(target_words)
    return Impl(label, fn, verify=verify, threads=n)


def _torch_impl(w, torch):
    F = torch.nn.functional
    if w.op == "xent-fwd":
        x = torch.from_numpy(w.logits)  # shares memory, no copy
        t = torch.from_numpy(w.target)

        def fwd():
            with torch.no_grad():
                return F.cross_entropy(x, t)
        return Impl("torch", fwd, to_reference=lambda r: (r.numpy(), None))

    x = torch.from_numpy(w.logits).requires_grad_(True)
    t = torch.from_numpy(w.target)
    loss_fn = F.cross_entropy if w.op == "xent" else F.binary_cross_entropy_with_logits

    def step():
        x.grad = None  # a fresh gradient each call, as fastxent allocates one
        loss = loss_fn(x, t)
        loss.backward()
        return loss.detach(), x.grad
    return Impl("torch fwd+bwd", step, to_reference=lambda r: (r[0].numpy(), r[1].numpy()))


def _sklearn_impl(w, loss_module, threads):
    """scikit-learn's Cython losses (sklearn._loss, private): per-sample losses and
    per-sample gradients (no reduction) into preallocated buffers, with
    n_threads. Its "half" multinomial loss is exactly the cross-entropy of a
    sample (and the half binomial loss that of binary CE with logits): the
    check compares their mean, and the gradient divided by the sample count,
    with fastxent's mean reduction."""
    x = w.logits if w.op != "bce" else w.logits.reshape(-1)
    n = x.shape[0]
    loss_out = np.empty(n, dtype=x.dtype)
    if w.op == "bce":
        loss = loss_module.HalfBinomialLoss()
        y = w.target.reshape(-1)
    else:
        loss = loss_module.HalfMultinomialLoss(n_classes=x.shape[1])
        y = w.target.astype(x.dtype)  # sklearn wants float labels of the logits' dtype
    if w.op == "xent-fwd":
        def fwd():
            return loss.loss(y_true=y, raw_prediction=x, loss_out=loss_out, n_threads=threads)
        return Impl("sklearn HalfMultinomialLoss", fwd,
                    to_reference=lambda r: (np.mean(r, dtype=np.float64), None))
    grad_out = np.empty_like(x)

    def step():
        return loss.loss_gradient(y_true=y, raw_prediction=x, loss_out=loss_out,
                                  gradient_out=grad_out, n_threads=threads)
    name = "HalfBinomialLoss" if w.op == "bce" else "HalfMultinomialLoss"
    return Impl(f"sklearn {name}", step,
                to_reference=lambda r: (np.mean(r[0], dtype=np.float64),
                                        np.asarray(r[1], dtype=np.float64).reshape(w.shape) / n))


def _jax_impl(w, jax):
    """jax.jit of the mean loss (xent-fwd) or of jax.value_and_grad of it, on
    arrays put on the CPU device once; every call waits for its result."""
    jnp = jax.numpy
    if w.op == "bce":
        def mean_loss(x, t):
            return jnp.mean(jax.nn.softplus(x) - t * x)  # = log(1 + e^x) - t*x
    else:
        def mean_loss(x, t):
            picked = jnp.take_along_axis(x, t[:, None], axis=-1)[:, 0]
            return jnp.mean(jax.nn.logsumexp(x, axis=-1) - picked)
    target = w.target
    if target.dtype.kind == "i":
        target = target.astype(np.int32)  # what JAX makes of labels without x64, silently
    cpu = jax.devices("cpu")[0]  # the CPU, even where JAX has a GPU: the same hardware
    x, t = jax.device_put(w.logits, cpu), jax.device_put(target, cpu)
    if x.dtype != w.logits.dtype:  # float64 without jax_enable_x64: not the same work
        raise RuntimeError(f"JAX made {x.dtype} of {w.dtype} logits (jax_enable_x64 is off)")
    if w.op == "xent-fwd":
        f = jax.jit(mean_loss)
        label = "jax jit"
    else:
        f = jax.jit(jax.value_and_grad(mean_loss))
        label = "jax jit value_and_grad"
    wait = getattr(jax, "block_until_ready", None) or (
        lambda r: jax.tree_util.tree_map(lambda a: a.block_until_ready(), r))

    def call():
        return wait(f(x, t))

    def to_reference(r):
        if w.op == "xent-fwd":
            return np.asarray(r), None
        return np.asarray(r[0]), np.asarray(r[1])
    return Impl(label, call, to_reference=to_reference)


def make_implementations(w, threads, peers=None, warn=None):
    """name -> Impl for workload `w` with `threads` threads (passed explicitly
    where an implementation takes it; fastxent's and torch's counts are set by
    the caller, see `using_threads`). Buffers are allocated here, once, not in
    the calls. Peers missing from `peers`, or that fail to set up (reported
    through `warn`), are left out; JAX only where `threads` is the number of
    usable CPUs, as its thread pool is fixed when it is imported."""
    peers = peers or Peers()
    x, t = w.logits, w.target
    impls = {}
    if w.op == "xent":
        out = np.empty_like(x)
        impls["fastxent"] = Impl("fastxent", lambda: fastxent.cross_entropy_with_grad(x, t))
        impls["fastxent-out"] = Impl(
            "fastxent out=", lambda: fastxent.cross_entropy_with_grad(x, t, out=out))
        impls["numpy-reference"] = Impl(
            "numpy reference", lambda: reference.cross_entropy_with_grad(x, t))
    elif w.op == "xent-fwd":
        impls["fastxent"] = Impl("fastxent", lambda: fastxent.cross_entropy(x, t))
        impls["numpy-reference"] = Impl("numpy reference", lambda: reference.cross_entropy(x, t))
    else:
        out = np.empty_like(x)
        impls["fastxent"] = Impl(
            "fastxent", lambda: fastxent.binary_cross_entropy_with_logits_with_grad(x, t))
        impls["fastxent-out"] = Impl(
            "fastxent out=",
            lambda: fastxent.binary_cross_entropy_with_logits_with_grad(x, t, out=out))
        impls["numpy-reference"] = Impl(
            "numpy reference",
            lambda: reference.binary_cross_entropy_with_logits_with_grad(x, t))

    makers = []
    if peers.torch is not None:
        makers.append(("torch", lambda: _torch_impl(w, peers.torch)))
    if peers.sklearn_loss is not None:
        makers.append(("sklearn", lambda: _sklearn_impl(w, peers.sklearn_loss, threads)))
    if peers.jax is not None and threads == usable_cpus():
        makers.append(("jax", lambda: _jax_impl(w, peers.jax)))
    for name, make in makers:
        try:
            impls[name] = make()
        except Exception as exc:  # a peer's API changed: leave it out, say so
            if warn is not None:
                warn(f"{name} left out of {w.op} {w.name} {w.dtype}: "
                     f"{type(exc).__name__}: {exc}")
    impls["floor"] = _floor_impl(w, threads)
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
    compares its loss and gradient with the NumPy reference; checks that each
    floor moved its bytes."""
    def as64(a):
        return None if a is None else np.asarray(a, dtype=np.float64)

    ref_loss, ref_grad = map(as64, _as_reference(impls["numpy-reference"].fn()))
    ref_loss = float(ref_loss)
    for name, impl in impls.items():
        if name == "numpy-reference":
            continue
        if impl.verify is not None:
            if not impl.verify():
                raise BenchError(f"{name} ({impl.label}) did not copy/read its bytes on {label}")
            continue
        result = impl.fn()
        loss, grad = map(as64, (impl.to_reference or _as_reference)(result))
        loss = float(loss)
        loss_err = abs(loss - ref_loss) / max(abs(ref_loss), 1e-30)
        problems = []
        if not loss_err <= RTOL:  # also catches NaN
            problems.append(f"loss {loss!r} vs {ref_loss!r} (rel. error {loss_err:.2e})")
        if ref_grad is not None:
            if grad is None or grad.shape != ref_grad.shape:
                problems.append(f"gradient of shape {None if grad is None else grad.shape}, "
                                f"expected {ref_grad.shape}")
            else:
                scale = max(float(np.max(np.abs(ref_grad), initial=0.0)), 1e-30)
                grad_err = float(np.max(np.abs(grad - ref_grad), initial=0.0)) / scale
                if not grad_err <= RTOL:
                    problems.append(f"gradient max rel. error {grad_err:.2e}")
        if problems:
            raise BenchError(f"{name} ({impl.label}) disagrees with the NumPy reference on "
                             f"{label}: {'; '.join(problems)}; allowed {RTOL:g}")


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


def time_round_robin(fns, repeat, max_seconds=None, on_start=None, on_round=None,
                     contexts=None):
    """key -> list of samples (seconds per call), the implementations
    interleaved A,B,C,A,B,C,... Each is warmed up and calibrated first. There
    are `repeat` rounds, fewer (not fewer than MIN_ROUNDS) where they would
    take longer than `max_seconds`. `contexts` (key -> context manager
    factory, optional) is entered around each sample, untimed: the thread
    counts. on_start(rounds), on_round(r) report progress."""
    contexts = contexts or {}

    def within(key):
        factory = contexts.get(key)
        return factory() if factory is not None else contextlib.nullcontext()

    numbers, round_seconds = {}, 0.0
    for key, fn in fns.items():
        with within(key):
            fn()  # warm-up: caches, page faults, lazy initialisation, thread pools
            once = max(_sample(fn, 1), 1e-9)
        numbers[key] = max(1, math.ceil(MIN_SAMPLE_SECONDS / once))
        round_seconds += numbers[key] * once
    rounds = repeat
    if max_seconds is not None and rounds * round_seconds > max_seconds:
        rounds = max(min(MIN_ROUNDS, repeat), int(max_seconds / round_seconds))
    if on_start is not None:
        on_start(rounds)
    samples = {key: [] for key in fns}
    for r in range(rounds):
        for key, fn in fns.items():
            with within(key):
                samples[key].append(_sample(fn, numbers[key]))
        if on_round is not None:
            on_round(r + 1)
    return samples


class Progress:
    """A progress bar on stderr (redrawn with \\r on a terminal; elsewhere a
    plain line per block)."""

    WIDTH = 24

    def __init__(self, total, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.index, self.rounds, self._width = total, 0, 1, 0
        self.label = ""

    def block(self, label):
        self.index += 1
        self.label = label
        if self.tty:
            self._draw(0.0, "checking")
        else:
            print(f"bench: [{self.index}/{self.total}] {label}", file=self.stream, flush=True)

    def start(self, rounds):
        self.rounds = rounds
        if self.tty:
            self._draw(0.0, f"round 0/{rounds}")

    def round(self, r):
        if self.tty:
            self._draw(r / self.rounds, f"round {r}/{self.rounds}")

    def _draw(self, fraction, status):
        done = (self.index - 1 + fraction) / max(self.total, 1)
        filled = int(done * self.WIDTH + 0.5)
        line = (f"bench [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.index}/{self.total} {self.label}: {status}")
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self):
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Block:
    op: str
    shape: tuple
    dtype: str
    threads: tuple


def make_plan(args, default_threads):
    """The blocks to run, from the parsed options."""
    threads = args.threads
    if args.full:
        if args.shapes is not None:
            raise ValueError("--full runs its own shapes: drop --shapes, or --full")
        plan = []
        for op, shape, dtype, scaling in FULL_PLAN:
            if op not in args.ops or (args.dtype is not None and dtype not in args.dtype):
                continue
            if threads is not None:
                counts = threads
            elif scaling:
                counts = tuple(sorted({1, default_threads}))
            else:
                counts = (default_threads,)
            plan.append(Block(op, shape, dtype, counts))
        if not plan:
            raise ValueError("--full has no workload for these --ops and --dtype")
        return plan
    plan = []
    for op in args.ops:
        if args.shapes is None:
            shapes = OPS[op].default_shapes
        else:
            shapes = [s for s in args.shapes if op == "bce" or len(s) == 2]
            if not shapes:
                raise ValueError(f"--shapes has no rows x classes shape (like 8192x1000) for {op}")
        for shape in shapes:
            for dtype in args.dtype or ("float32",):
                plan.append(Block(op, shape, dtype, threads or (default_threads,)))
    return plan


# ---------------------------------------------------------------- report

def _load():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def config_line(cfg, peers):
    versions = peers.versions()
    load = _load()
    return (f"fastxent {cfg['version']} | backend {cfg['backend']} | simd {cfg['simd']} | "
            f"openmp {cfg['openmp']} | threads {cfg['threads']} | cpus {usable_cpus()} | "
            f"numpy {np.__version__}"
            + "".join(f" | {k} {v or 'not installed'}" for k, v in versions.items())
            + ("" if load is None else f" | load {load:.2f}"))


def _warn_if_busy():
    # Other work on the machine skews multi-threaded timings the most: say so.
    load = _load()
    if load is not None and load >= 0.5:
        print(f"bench: warning: the machine is busy (1-minute load average {load:.2f}); "
              "timings, multi-threaded ones above all, will be noisy", file=sys.stderr)


def make_rows(w, threads, impls, samples):
    medians = {name: float(np.median(s)) for name, s in samples.items()}
    rows = []
    for name, s in samples.items():
        med = medians[name]
        rows.append({
            "op": w.op, "workload": w.name, "shape": list(w.shape), "dtype": w.dtype,
            "threads": threads, "implementation": name, "label": impls[name].label,
            "rounds": len(s), "median_ms": med * 1e3, "min_ms": min(s) * 1e3,
            "bytes": w.nbytes, "gb_per_s": w.nbytes / med / 1e9,
            "speedup_vs_numpy": medians["numpy-reference"] / med,
            "speedup_vs_torch": medians["torch"] / med if "torch" in medians else None,
            "ratio_to_floor": med / medians["floor"],
            "floor_threads": impls["floor"].threads,
            "samples_ms": [x * 1e3 for x in s],
        })
    return rows


def _ms(x):
    return f"{x:>10.3f}" if x >= 1 else f"{x:>10.4f}"


def _ratio(x, suffix=""):
    return f"{'-':>8}" if x is None else f"{x:>{8 - len(suffix)}.2f}{suffix}"


def print_table(rows, file=None):
    file = file if file is not None else sys.stdout
    with_torch = any(r["speedup_vs_torch"] is not None for r in rows)
    header = (f"{'op':<8} {'workload':<11} {'dtype':<7} {'threads':>7}  {'implementation':<28} "
              f"{'median ms':>10} {'GB/s':>8} {'vs numpy':>8}"
              + (f" {'vs torch':>8}" if with_torch else "") + f" {'x floor':>8}")
    print(header, file=file)
    print("-" * len(header), file=file)
    previous = None
    for row in rows:
        block = (row["op"], row["workload"], row["dtype"], row["threads"])
        if previous is not None and block != previous:
            print(file=file)
        previous = block
        print(f"{row['op']:<8} {row['workload']:<11} {row['dtype']:<7} {row['threads']:>7}  "
              f"{row['label']:<28} {_ms(row['median_ms'])} {row['gb_per_s']:>8.3g} "
              f"{_ratio(row['speedup_vs_numpy'], 'x')}"
              + (f" {_ratio(row['speedup_vs_torch'], 'x')}" if with_torch else "")
              + f" {_ratio(row['ratio_to_floor'])}", file=file)


def thread_scaling(rows):
    """(op, workload, dtype, implementation label, fewest threads, threads, speed-up) for
    every implementation timed with more than one thread count."""
    by_key = {}
    for r in rows:
        by_key.setdefault((r["op"], r["workload"], r["dtype"], r["implementation"]), []).append(r)
    out = []
    for (op, workload, dtype, name), rs in by_key.items():
        if len(rs) < 2 or name == "numpy-reference":  # one thread whatever the row says
            continue
        base = min(rs, key=lambda r: r["threads"])
        for r in rs:
            if r is not base:
                out.append((op, workload, dtype, r["label"], base["threads"], r["threads"],
                            base["median_ms"] / r["median_ms"]))
    return out


def print_notes(rows, file=None):
    file = file if file is not None else sys.stdout
    rounds = sorted({r["rounds"] for r in rows})
    cut = sorted({f"{r['op']} {r['workload']} {r['dtype']}" for r in rows
                  if r["rounds"] != max(rounds)})
    ops = list(dict.fromkeys(r["op"] for r in rows))
    lines = [f"Medians of {max(rounds)} interleaved rounds"
             + (f" ({min(rounds)} for {', '.join(cut)}: --max-seconds)" if cut else "") + "."]
    lines.append("GB/s: the floor's bytes / time. 'vs numpy', 'vs torch': speed-up over the "
                 "NumPy reference (1 thread) and PyTorch; 'x floor': time / the floor's time.")
    for op in ops:
        lines.append(f"{op}: {OPS[op].title}; floor = multithreaded {OPS[op].floor}.")
    if any(r["floor_threads"] != r["threads"] for r in rows):
        lines.append("floor (1 thread): one thread moved those bytes quicker than more, so that "
                     "is the floor (small inputs; also large ones on a busy machine).")
    if any(r["implementation"] == "sklearn" for r in rows):
        lines.append("sklearn: sklearn._loss Half*Loss.loss_gradient (per-sample losses and "
                     "gradients into preallocated buffers, n_threads = threads).")
    if any(r["implementation"] == "jax" for r in rows):
        lines.append("jax: XLA's own thread pool (all CPUs), shown only where threads = CPUs.")
    for line in lines:
        print(line, file=file)
    scaling = thread_scaling(rows)
    if scaling:
        print("\nThread scaling (time with the fewest threads / time with more, interleaved "
              "in the same rounds):", file=file)
        for op, workload, dtype, label, t0, t1, s in scaling:
            print(f"  {op:<8} {workload:<11} {dtype:<7} {label:<28} {t0} -> {t1} threads: "
                  f"{s:.2f}x", file=file)


def check_plot_support():
    """None if --plot can work here, else the message to print."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        return (f"fastxent bench: --plot needs matplotlib, which cannot be imported here "
                f"({exc}); install it (pip install matplotlib) or drop --plot")
    return None


def plot(rows, path, title):
    """Horizontal bars, one group per block: each implementation's median time
    over the floor's (log scale, 1 = the floor), the median in ms written beside."""
    from matplotlib.figure import Figure

    blocks = list(dict.fromkeys((r["op"], r["workload"], r["dtype"], r["threads"]) for r in rows))
    names = [n for n in IMPL_NAMES if any(r["implementation"] == n for r in rows)]
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    colors["floor"] = "0.55"
    positions, labels_at, y = [], [], 0.0
    fig = Figure(figsize=(10, 1.2 + 0.22 * (len(rows) + 1.5 * len(blocks))))
    ax = fig.add_subplot()
    seen = set()
    for block in reversed(blocks):
        brows = [r for r in rows if (r["op"], r["workload"], r["dtype"], r["threads"]) == block]
        brows.sort(key=lambda r: -IMPL_NAMES.index(r["implementation"]))
        start = y
        for r in brows:
            name = r["implementation"]
            ax.barh(y, r["ratio_to_floor"], height=0.8, color=colors[name],
                    label=IMPLEMENTATIONS[name] if name not in seen else None)
            seen.add(name)
            ms = r["median_ms"]
            ax.text(r["ratio_to_floor"] * 1.04, y, f"{ms:.0f} ms" if ms >= 100 else f"{ms:.3g} ms",
                    va="center", fontsize=7)
            y += 1
        positions.append((start + y - 1) / 2)
        op, workload, dtype, threads = block
        labels_at.append(f"{op}\n{workload} {dtype}\n{threads} thread{'s' * (threads > 1)}")
        y += 1.5
    ax.set_xscale("log")
    ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ax.set_yticks(positions, labels_at, fontsize=8)
    ax.set_ylim(-1, y - 0.5)
    ratios = [r["ratio_to_floor"] for r in rows]
    ax.set_xlim(min(0.5, min(ratios) / 1.5), max(ratios) * 3)
    ax.set_xlabel("median time / memory-floor time (log scale; 1 = the floor)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_title(title, fontsize=7, loc="left")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _wrap(text, width=150):
    parts, line = [], ""
    for piece in text.split(" | "):
        if line and len(line) + len(piece) + 3 > width:
            parts.append(line)
            line = piece
        else:
            line = f"{line} | {piece}" if line else piece
    return "\n".join(parts + [line])


def run(args):
    """Runs the benchmark described by the parsed `args`; returns an exit code."""
    def warn(message):
        progress.close()
        print(f"bench: {message}", file=sys.stderr, flush=True)

    if args.plot is not None:
        problem = check_plot_support()
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    cfg = config()  # read before torch is imported: torch can change the OpenMP default
    default_threads = fastxent.get_num_threads()
    try:
        plan = make_plan(args, default_threads)
    except ValueError as exc:
        print(f"fastxent bench: {exc}", file=sys.stderr)
        return 2
    peers = import_peers(x64=any(b.dtype == "float64" for b in plan), names=args.peers)
    header = config_line(cfg, peers)
    print(header, flush=True)
    _warn_if_busy()
    for note in peers.notes:
        print(f"bench: {note}: left out", file=sys.stderr)
    if cfg["backend"] != "compiled":
        print(f"bench: warning: fastxent runs its {cfg['backend']} backend", file=sys.stderr)

    progress = Progress(len(plan))
    rows = []
    started = time.perf_counter()
    try:
        for block in plan:
            # One round-robin per workload: its thread counts are interleaved
            # too, so that thread scaling is measured as robustly as the rest.
            w = make_workload(block.op, block.shape, block.dtype)
            counts = ",".join(map(str, block.threads))
            progress.block(f"{w.op} {w.name} {w.dtype}, {counts} thread"
                           f"{'s' * (block.threads != (1,))}")
            impls, fns, contexts = {}, {}, {}
            for n in block.threads:
                label = f"{w.op} {w.name} {w.dtype}, {n} thread{'s' * (n > 1)}"
                impls[n] = make_implementations(w, n, peers, warn=warn)
                with using_threads(n, peers.torch):
                    check(impls[n], label)
                for name, impl in impls[n].items():
                    fns[n, name] = impl.fn
                    contexts[n, name] = functools.partial(using_threads, n, peers.torch)
            samples = time_round_robin(fns, args.repeat, args.max_seconds, progress.start,
                                       progress.round, contexts)
            for n in block.threads:
                rows += make_rows(w, n, impls[n], {name: samples[n, name] for name in impls[n]})
            del w, impls, fns, contexts, samples  # free the buffers before the next workload
    except BenchError as exc:
        progress.close()
        print(f"\nfastxent bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        print("\nfastxent bench: interrupted", file=sys.stderr)
        return 130
    progress.close()
    elapsed = time.perf_counter() - started

    print()
    print_table(rows)
    print()
    print_notes(rows)
    print(f"({elapsed:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "cpus": usable_cpus(), "numpy": np.__version__,
                       "peers": peers.versions(), "load_average": _load(),
                       "repeat": args.repeat, "max_seconds": args.max_seconds,
                       "floors": {op: OPS[op].floor for op in OPS},
                       "bytes": "the floor's traffic: xent 2*N*C*itemsize, xent-fwd N*C*itemsize, "
                                "bce 3*n*itemsize",
                       "elapsed_s": elapsed, "results": rows}, f, indent=1)
        print(f"results written to {args.json}")
    if args.plot:
        rounds = {r["rounds"] for r in rows}
        plot(rows, args.plot, _wrap(header) + f"\nmedians of {max(rounds)} interleaved rounds"
             + (f" ({min(rounds)} where cut by --max-seconds)" if len(rounds) > 1 else "")
             + "; beside each bar: the median time")
        print(f"plot written to {args.plot}")
    return 0
