"""The run loop of `python -m fastxent bench`: check the options, import the
peers, then per block make the implementations, check them against the NumPy
reference, time them round-robin, and report."""

import argparse
import functools
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import fastxent

from .._config import config
from . import report
from .arguments import LINEAR_XENT, ArgumentProblem, check_arguments
from .implementations import BenchError, check, make_implementations
from .peers import Impl, Peers, import_peers
from .progress import Progress
from .timing import time_round_robin, using_threads
from .workloads import Block, make_workload


def _warn_if_busy(load: float | None) -> None:
    # Other work on the machine skews multi-threaded timings the most: say so.
    if load is not None and load >= 0.5:
        print(f"bench: warning: the machine is busy (1-minute load average {load:.2f}); "
              "timings, multi-threaded ones above all, will be noisy", file=sys.stderr)


def run_block(block: Block, peers: Peers, repeat: int, max_seconds: float | None,
              progress: Progress, warn: Callable[[str], object]) -> list[report.Row]:
    """The result rows of one block: its workload, each thread count's
    implementations checked, then all of them timed in one round-robin (the
    thread counts interleaved too, so that thread scaling is measured as
    robustly as the rest)."""
    peers.new_workload()
    w = make_workload(block.op, block.shape, block.dtype)
    counts = ",".join(map(str, block.threads))
    progress.block(f"{w.op} {w.name} {w.dtype}, {counts} thread"
                   f"{'s' * (block.threads != (1,))}")
    impls: dict[int, dict[str, Impl]] = {}
    fns: dict[tuple[int, str], Callable[[], object]] = {}
    contexts: dict[tuple[int, str], Callable[[], AbstractContextManager[object]]] = {}
    for n in block.threads:
        label = f"{w.op} {w.name} {w.dtype}, {n} thread{'s' * (n > 1)}"
        with using_threads(n, peers.torch):
            impls[n] = make_implementations(w, n, peers, warn=warn)
            check(impls[n], label, w.dtype)
        for name, impl in impls[n].items():
            fns[n, name] = impl.fn
            contexts[n, name] = functools.partial(using_threads, n, peers.torch)
    samples = time_round_robin(fns, repeat, max_seconds, progress.start, progress.round,
                               contexts)
    rows: list[report.Row] = []
    for n in block.threads:
        rows += report.make_rows(w, n, impls[n], {name: samples[n, name] for name in impls[n]})
    return rows


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark described by the parsed `args`; returns an exit code."""
    def warn(message: str) -> None:
        progress.close()
        print(f"bench: {message}", file=sys.stderr, flush=True)

    if LINEAR_XENT in args.ops:  # its own table (time and memory of whole paths)
        from . import linear_xent

        status = linear_xent.run_from_bench(args)
        args.ops = tuple(op for op in args.ops if op != LINEAR_XENT)
        if status or not args.ops:
            return status
    cfg = config()  # read before torch is imported: torch can change the OpenMP default
    default_threads = fastxent.get_num_threads()
    try:
        plan = check_arguments(args, default_threads)
    except ArgumentProblem as exc:
        print(f"fastxent bench: {exc}", file=sys.stderr)
        return 2
    if args.plot is not None:
        problem = report.check_plot_support()
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    peers = import_peers(x64=any(b.dtype == "float64" for b in plan), names=args.peers)
    load_start = report.load_average()
    header = report.config_line(cfg, peers)
    print(header, flush=True)
    _warn_if_busy(load_start)
    for note in peers.notes:
        print(f"bench: {note}: left out", file=sys.stderr)
    if cfg["backend"] != "compiled":
        print(f"bench: warning: fastxent runs its {cfg['backend']} backend", file=sys.stderr)

    progress = Progress(len(plan))
    rows: list[report.Row] = []
    started = time.perf_counter()
    try:
        for block in plan:
            rows += run_block(block, peers, args.repeat, args.max_seconds, progress, warn)
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
    report.print_table(rows)
    print()
    report.print_notes(rows)
    print(f"({elapsed:.0f} s)")
    if args.json:
        report.write_json(args.json, cfg=cfg, peers=peers, load_start=load_start,
                          repeat=args.repeat, max_seconds=args.max_seconds, elapsed=elapsed,
                          rows=rows)
        print(f"results written to {args.json}")
    if args.plot:
        rounds = {r["rounds"] for r in rows}
        report.plot(rows, args.plot,
                    report.wrap(header) + f"\nmedians of {max(rounds)} interleaved rounds"
                    + (f" ({min(rounds)} where cut by --max-seconds)" if len(rounds) > 1 else "")
                    + "; beside each bar: the median time")
        print(f"plot written to {args.plot}")
    return 0
