"""The command line of `python -m fastxent bench`: the options, their parsers,
and the checks made before anything runs (thread limit, output paths, memory),
each answered with one line naming the option."""

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from .. import _config
from .peers import PEERS, usable_cpus
from .workloads import (DEFAULT_OPS, DTYPE_NAMES, OPS, Block, Shape, make_plan, memory_needed,
                        numpy_dtype, shape_name)

DEFAULT_REPEAT = 15
# A block (one op, workload, dtype and thread count) takes at most about this
# long: the rounds are cut (to no fewer than timing.MIN_ROUNDS) when the
# slowest implementations would take longer. Only --full's big workloads hit it.
DEFAULT_MAX_SECONDS = 20.0

_SUFFIX = {"": 1, "k": 1000, "Ki": 1024, "M": 1000**2, "Mi": 1 << 20}


class ArgumentProblem(ValueError):
    """An option the bench cannot run with; the message starts with the option."""


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+)(k|Ki|M|Mi)?", text.strip())
    if not m:
        raise ValueError(text)
    return int(m[1]) * _SUFFIX[m[2] or ""]


def _shapes(text: str) -> tuple[Shape, ...]:
    try:
        shapes = tuple(tuple(_size(n) for n in item.split("x")) for item in text.split(","))
    except ValueError:
        shapes = ()
    if not shapes or any(len(s) not in (1, 2) or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(
            f"expected shapes like 8192x1000,65536x10 (rows x classes) or 4Mi (elements, "
            f"bce only), got {text!r}")
    return shapes


def _threads(text: str) -> tuple[int, ...]:
    try:
        threads = tuple(int(n) for n in text.split(","))
    except ValueError:
        threads = ()
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2, got {text!r}")
    return tuple(dict.fromkeys(threads))


def _choices(allowed: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(s.strip() for s in text.split(",")))
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"expected {what} from {','.join(allowed)} (comma-separated), got {text!r}")
        return items
    return parse


def _peers(text: str) -> tuple[str, ...]:
    if text.strip() == "none":
        return ()
    return _choices(PEERS, "peers (or none)")(text)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        s = 0.0
    if not s > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return s


LINEAR_XENT = "linear-xent"  # its own run: fastxent.bench.linear_xent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the bench options to an argparse (sub)parser."""
    parser.add_argument("--ops", type=_choices(tuple(OPS) + (LINEAR_XENT,), "operations"),
                        default=DEFAULT_OPS, metavar="OP[,OP...]",
                        help="operations to time: xent (loss+gradient), xent-fwd (loss only), "
                             "bce (binary CE with logits, loss+gradient); default: all three; "
                             "and linear-xent (linear_cross_entropy_with_grad, a language-model "
                             "head, against PyTorch and the three GEMMs, time and memory; "
                             "float32 and bfloat16; not in the default)")
    parser.add_argument("--lm-heads", action="store_true",
                        help="linear-xent at the language-model heads (N, H, V) = (4096, 1024, "
                             "32000) and (2048, 2048, 128256) (minutes) instead of 2048x512x8192")
    parser.add_argument("--peers", type=_peers, default=PEERS, metavar="PEER[,PEER...]",
                        help="libraries to compare with, where usable: torch (eager), "
                             "torch-compile (torch.compile, needs a C++ compiler; compiles "
                             "once per workload and thread count, before the timing), "
                             "sklearn, jax; or none (default: all)")
    parser.add_argument("--threads", type=_threads, default=None, metavar="N[,N...]",
                        help="thread counts to time, for thread scaling, each within "
                             "fastxent's thread limit (default: fastxent.get_num_threads())")
    parser.add_argument("--shapes", type=_shapes, default=None, metavar="SHAPE[,SHAPE...]",
                        help="workloads: rows x classes (8192x1000), or a number of elements "
                             "(16Mi; bce only: bce takes every shape). Default per op: xent "
                             "8192x1000,65536x10; xent-fwd 8192x1000; bce 4Mi")
    parser.add_argument("--dtype", type=_choices(DTYPE_NAMES, "dtypes"), default=None,
                        metavar="DTYPE[,DTYPE]",
                        help="float32, float64, float16, bfloat16 (ml_dtypes; peers in the "
                             "same dtype) (default: float32; with --full, the preset's, "
                             "filtered by this option when given)")
    parser.add_argument("--full", action="store_true",
                        help="every workload of the performance targets (a few minutes): xent "
                             "8192x1000, 2048x32768, 65536x10, 32x10, float64 8192x1000 and "
                             "65536x10, and 4x262144, 2x524288, 1x1048576 with 1 thread and "
                             "more; xent-fwd 8192x1000, 2048x32768; bce 16Mi float32 and float64")
    parser.add_argument("--repeat", type=_positive, default=DEFAULT_REPEAT, metavar="N",
                        help=f"timed rounds per block; medians are reported (default: "
                             f"{DEFAULT_REPEAT})")
    parser.add_argument("--max-seconds", type=_seconds, default=DEFAULT_MAX_SECONDS, metavar="S",
                        help=f"cut a block's rounds (to no fewer than 5) when they would take "
                             f"longer than S seconds (default: {DEFAULT_MAX_SECONDS:g})")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the configuration and every result (with all samples) "
                             "to FILE (tools/bench_table.py makes the README's table of it)")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="also draw the results (time / memory floor, per workload and "
                             "implementation) into FILE.png; needs matplotlib")


def thread_limit() -> int:
    """The most threads fastxent accepts: fastxent._config.max_threads() where
    this fastxent has it, else 4 x the CPUs this process may use."""
    limit: Callable[[], int] | None = getattr(_config, "max_threads", None)
    return limit() if limit is not None else 4 * usable_cpus()


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping, or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.3g} GB"


def _check_writable(option: str, path: str) -> None:
    """Writes nothing, but fails as the write at the end of the run would."""
    if os.path.isdir(path):
        raise ArgumentProblem(f"{option} {path}: is a directory, not a file")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise ArgumentProblem(f"{option} {path}: cannot be written ({exc.strerror})") from None
    if not existed:
        os.unlink(path)


def check_arguments(args: argparse.Namespace, default_threads: int) -> list[Block]:
    """The blocks to run, once every option has been checked against this
    machine: thread counts within fastxent's limit, output files writable,
    each workload's memory (with its peers' copies) available. Raises
    ArgumentProblem naming the option at fault."""
    limit = thread_limit()
    too_many = [n for n in args.threads or () if n > limit]
    if too_many:
        raise ArgumentProblem(
            f"--threads {too_many[0]}: more than fastxent's limit of {limit} threads here "
            f"({usable_cpus()} CPUs available)")
    try:
        plan = make_plan(args.ops, args.shapes, args.dtype, args.threads, args.full,
                         default_threads)
    except ValueError as exc:
        raise ArgumentProblem(str(exc)) from None
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            _check_writable(option, path)
    available = available_memory()
    ceiling = available if available is not None else sys.maxsize
    for block in plan:
        needed = memory_needed(block.op, block.shape, numpy_dtype(block.dtype), args.peers,
                               len(block.threads))
        if needed > ceiling:
            option = "--full" if args.full else "--shapes"
            where = f"{_gigabytes(available)} available" if available is not None else \
                "more than this platform can address"
            raise ArgumentProblem(
                f"{option}: {block.op} {shape_name(block.shape)} {block.dtype} needs about "
                f"{_gigabytes(needed)} with its peers' copies; {where}")
    return plan
