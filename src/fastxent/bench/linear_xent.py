"""`python -m fastxent bench --ops linear-xent`: time and peak extra memory of
a language-model head's loss and gradients, fastxent.linear_cross_entropy_with_grad
(and fastxent.torch.linear_cross_entropy + backward) against the unfused NumPy
route, PyTorch eager (linear + cross_entropy + backward), PyTorch's chunked
F.linear_cross_entropy (+ backward), torch.compile of linear + cross_entropy,
and the floor: the three GEMMs alone (logits, d_hidden, d_weight) with NumPy's
BLAS (float32), and with PyTorch's (the floor of bfloat16, which NumPy's BLAS
does not compute).

    python -m fastxent bench --ops linear-xent                  # small heads
    python -m fastxent bench --ops linear-xent --lm-heads       # the two issue shapes
    python benchmarks/bench_linear_xent.py --shapes 4096,1024,32000 --dtype bfloat16
    python benchmarks/bench_linear_xent.py --paths fastxent,gemms --no-memory

Times are medians of interleaved rounds in one process (each round runs every
path once, in a rotating order). Peak extra memory is measured for each path in
a fresh subprocess: the peak resident set size during one call (after a
warm-up call, with the peak reset through /proc/self/clear_refs and the freed
heap handed back by malloc_trim, so that small buffers reused from the
warm-up's heap count too; Linux only) minus the resident size before it; "beyond grads" subtracts the gradients'
own bytes (d_hidden + d_weight), which every path must hold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LM_HEADS = ((4096, 1024, 32000), (2048, 2048, 128256))  # the two heads
SMALL_SHAPES = ((2048, 512, 8192),)  # python -m fastxent bench's default: seconds
PATHS = ("gemms", "fastxent", "fastxent-torch", "numpy-unfused", "torch-gemms", "torch-eager",
         "torch-chunked", "torch-compile")
DTYPES = ("float32", "float64", "bfloat16")
NUMPY_ONLY = ("gemms", "numpy-unfused")  # no bfloat16 GEMM in NumPy's BLAS


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The NumPy dtype of a --dtype name (bfloat16: ml_dtypes')."""
    if name == "bfloat16":
        import ml_dtypes
        dtype: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return dtype
    return np.dtype(name)


class Workload:
    def __init__(self, n: int, h: int, v: int, dtype: str, ignored: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.shape = (n, h, v)
        self.hidden = rng.standard_normal((n, h), dtype=np.float32).astype(numpy_dtype(dtype))
        self.weight = (rng.standard_normal((v, h), dtype=np.float32)
                       / np.float32(np.sqrt(h))).astype(numpy_dtype(dtype))
        self.target = rng.integers(0, v, n)
        self.target[rng.random(n) < ignored] = -100
        self.grad_bytes = self.hidden.nbytes + self.weight.nbytes


def make_path(name: str, w: Workload) -> Callable[[], Any]:
    """A callable running one forward + backward of the named path."""
    import fastxent

    n, _, v = w.shape
    if name == "fastxent":
        return lambda: fastxent.linear_cross_entropy_with_grad(w.hidden, w.weight, w.target)
    if name in NUMPY_ONLY and w.hidden.dtype.kind != "f":
        raise ImportError(f"NumPy's BLAS has no {w.hidden.dtype} GEMM")
    if name == "numpy-unfused":  # the N x V logits, the fused kernel in place on them, 2 GEMMs
        def unfused() -> Any:
            logits = w.hidden @ w.weight.T
            loss, grad = fastxent.cross_entropy_with_grad(logits, w.target, out=logits)
            return loss, grad @ w.weight, grad.T @ w.hidden
        return unfused
    if name == "gemms":  # the floor: the three GEMMs into buffers allocated once
        logits = np.empty((n, v), w.hidden.dtype)
        d_hidden, d_weight = np.empty_like(w.hidden), np.empty_like(w.weight)

        def gemms() -> None:
            np.matmul(w.hidden, w.weight.T, out=logits)
            np.matmul(logits, w.weight, out=d_hidden)
            np.matmul(logits.T, w.hidden, out=d_weight)
        return gemms

    import torch
    import torch.nn.functional as F

    def tensor(a: Any) -> Any:
        if a.dtype.name == "bfloat16":
            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).requires_grad_()
        return torch.from_numpy(a).requires_grad_()

    ht, wt = tensor(w.hidden), tensor(w.weight)
    tt = torch.from_numpy(w.target)
    if name == "torch-gemms":
        logits_t = torch.empty((n, v), dtype=ht.dtype)
        d_hidden_t, d_weight_t = torch.empty_like(ht), torch.empty_like(wt)

        def torch_gemms() -> None:
            with torch.no_grad():
                torch.mm(ht, wt.T, out=logits_t)
                torch.mm(logits_t, wt, out=d_hidden_t)
                torch.mm(logits_t.T, ht, out=d_weight_t)
        return torch_gemms
    if name == "torch-eager":
        def loss_fn(hidden: Any, weight: Any, target: Any) -> Any:
            return F.cross_entropy(F.linear(hidden, weight), target)
    elif name == "torch-chunked":
        options = torch.nn.LinearCrossEntropyOptions()

        def loss_fn(hidden: Any, weight: Any, target: Any) -> Any:
            return F.linear_cross_entropy(hidden, weight, target, options=options)
    elif name == "fastxent-torch":
        import fastxent.torch

        def loss_fn(hidden: Any, weight: Any, target: Any) -> Any:
            return fastxent.torch.linear_cross_entropy(hidden, weight, target, backend="fastxent")
    elif name == "torch-compile":
        loss_fn = torch.compile(lambda hidden, weight, target:
                                F.cross_entropy(F.linear(hidden, weight), target))
    else:
        raise ValueError(f"unknown path {name!r}; choose from {', '.join(PATHS)}")

    def torch_path() -> Any:
        loss = loss_fn(ht, wt, tt)
        loss.backward()
        # The gradients go to the caller, as fastxent's results do: the leaves
        # hold none between calls, so that a call's memory is measured from
        # the same start on every path.
        grads = (ht.grad, wt.grad)
        ht.grad = wt.grad = None
        return loss, *grads
    return torch_path


def set_threads(n_threads: int) -> None:
    """The same thread count for fastxent, NumPy's BLAS and PyTorch."""
    import fastxent

    fastxent.set_num_threads(n_threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n_threads, user_api="blas")
    except ImportError:
        pass  # OPENBLAS_NUM_THREADS, set for the subprocesses, then holds
    try:
        import torch
        torch.set_num_threads(n_threads)
    except ImportError:
        pass


def time_paths(w: Workload, names: list[str], rounds: int,
               log: Callable[[str], None]) -> dict[str, float]:
    runs = {}
    for name in names:
        try:
            runs[name] = make_path(name, w)
            t0 = time.perf_counter()
            runs[name]()  # warm-up (and torch.compile's compilation)
            log(f"  {name}: warm-up {time.perf_counter() - t0:.2f} s")
        except ImportError as exc:
            log(f"  {name}: skipped ({exc})")
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()))
    return {name: statistics.median(t) for name, t in times.items()}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory_here(name: str, w: Workload) -> int:
    """Peak RSS during one call beyond the RSS before it (after a warm-up call)."""
    run = make_path(name, w)
    run()
    import gc
    gc.collect()
    try:  # hand freed heap memory back, so that allocations reusing it count too
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set size, to the current size
    before = _status("VmRSS")
    result = run()
    peak = _status("VmHWM")
    del result
    return peak - before


def measure_memory(name: str, shape: tuple[int, int, int],
                   args: argparse.Namespace) -> tuple[int | None, list[str] | None]:
    """measure_memory_here in a fresh Python process: bytes, or None if skipped."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "fastxent.bench.linear_xent", "--memory-of", name,
           "--shapes", ",".join(map(str, shape)), "--threads", str(args.threads),
           "--dtype", args.dtype, "--ignored", str(args.ignored)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(proc.stdout.strip().splitlines()[-1])["extra_bytes"], None


def parse_shape(text: str) -> tuple[int, int, int]:
    n, h, v = (int(x) for x in text.split(","))
    return n, h, v


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=parse_shape, nargs="+", default=list(LM_HEADS),
                        metavar="N,H,V", help="rows, features, classes (default: the two "
                        "language-model heads (4096, 1024, 32000) and (2048, 2048, 128256))")
    parser.add_argument("--paths", default=",".join(PATHS),
                        help=f"comma-separated, from {','.join(PATHS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="bfloat16: ml_dtypes arrays and torch.bfloat16 tensors")
    parser.add_argument("--ignored", type=float, default=0.1,
                        help="share of targets set to ignore_index (default 0.1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="times only")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # the subprocess's job
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads: must be at least 1, got {args.threads}")
    if args.rounds < 1:
        parser.error(f"--rounds: must be at least 1, got {args.rounds}")
    if not 0 <= args.ignored < 1:
        parser.error(f"--ignored: must lie in [0, 1), got {args.ignored}")
    names = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        parser.error(f"--paths: unknown {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    set_threads(args.threads)

    if args.memory_of:
        n, h, v = args.shapes[0]
        w = Workload(n, h, v, args.dtype, args.ignored)
        print(json.dumps({"extra_bytes": measure_memory_here(args.memory_of, w)}))
        return 0

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = []
    for shape in args.shapes:
        n, h, v = shape
        w = Workload(n, h, v, args.dtype, args.ignored)
        log(f"(N, H, V) = {shape}, {args.dtype}, {args.threads} threads, "
            f"{np.mean(w.target == -100):.0%} ignored")
        times = time_paths(w, names, args.rounds, log)
        memory: dict[str, int | None] = {}
        if not args.no_memory and os.path.exists("/proc/self/clear_refs"):
            for name in times:
                memory[name], err = extra, err = measure_memory(name, shape, args)
                log(f"  memory {name}: " + (f"{extra / 2**20:.0f} MiB" if extra is not None
                                             else f"failed: {(err or ['?'])[0]}"))
        floor = times.get("gemms", times.get("torch-gemms"))
        gib = 2**20
        print(f"\n(N, H, V) = {shape}, {args.dtype}, {args.threads} threads, medians of "
              f"{args.rounds} rounds; gradients {w.grad_bytes / gib:.0f} MiB")
        floor_name = "gemms" if "gemms" in times else "torch-gemms"
        print(f"{'path':15s} {'time':>9s} {'x ' + floor_name:>14s} {'+MiB':>7s} "
              f"{'beyond grads':>13s}")
        for name, t in times.items():
            extra = memory.get(name)
            beyond = None if extra is None or name.endswith("gemms") else extra - w.grad_bytes
            print(f"{name:15s} {t:8.3f}s {t / floor if floor else float('nan'):14.2f} "
                  f"{'' if extra is None else f'{extra / gib:7.0f}':>7s} "
                  f"{'' if beyond is None else f'{beyond / gib:13.0f}':>13s}")
            results.append({"shape": shape, "path": name, "seconds": t,
                            "extra_bytes": extra, "grad_bytes": w.grad_bytes,
                            "threads": args.threads, "dtype": args.dtype})
        del w
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def run_from_bench(args: argparse.Namespace) -> int:
    """python -m fastxent bench --ops linear-xent: the small head (or, with
    --lm-heads, the issue's two), float32 (or --dtype's) and bfloat16 where
    ml_dtypes and PyTorch are installed, at --threads' first count (default 2)."""
    shapes = LM_HEADS if args.lm_heads else SMALL_SHAPES
    dtypes = list(args.dtype or ("float32",))
    try:
        import ml_dtypes  # noqa: F401
        import torch  # noqa: F401
        dtypes.append("bfloat16")
    except ImportError:
        print("bench: linear-xent: bfloat16 left out (needs ml_dtypes and PyTorch)",
              file=sys.stderr)
    threads = args.threads[0] if args.threads else 2
    status = 0
    for dtype in dtypes:
        argv = ["--dtype", dtype, "--threads", str(threads),
                "--rounds", str(min(args.repeat, 3 if args.lm_heads else args.repeat)),
                "--shapes", *(",".join(map(str, s)) for s in shapes)]
        status = status or main(argv)
    return status


if __name__ == "__main__":
    sys.exit(main())
