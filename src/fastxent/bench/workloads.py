"""What the bench times: the operations, their workloads and the plan of a run."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import numpy as np
from numpy.typing import DTypeLike, NDArray

MI = 1 << 20

OpName = Literal["xent", "xent-fwd", "bce"]
DtypeName = Literal["float32", "float64", "float16", "bfloat16"]
DTYPE_NAMES: tuple[DtypeName, ...] = ("float32", "float64", "float16", "bfloat16")


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The NumPy dtype of a --dtype name: bfloat16 is ml_dtypes' (imported
    here, where asked for: an optional dependency)."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("--dtype bfloat16 needs ml_dtypes (pip install ml_dtypes)") from None
        bfloat16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bfloat16
    dtype: np.dtype[Any] = np.dtype(name)
    return dtype
Shape = tuple[int, ...]  # rows x classes, or (elements,) for bce


@dataclass(frozen=True)
class Op:
    title: str
    floor: str  # what the floor implementation moves
    bytes_per_element: int  # the floor's traffic, in units of the dtype's itemsize
    default_shapes: tuple[Shape, ...]


OPS: dict[OpName, Op] = {
    "xent": Op("cross_entropy_with_grad: loss + gradient",
               "copy of the logits (read N*C, write N*C; memcpy, streaming stores or "
               "memcpy in 64 KiB pieces, the quickest; into fresh memory for allocating "
               "calls)", 2,
               ((8192, 1000), (65536, 10))),
    "xent-fwd": Op("cross_entropy: loss only",
                   "read of the logits (N*C)", 1,
                   ((8192, 1000),)),
    "bce": Op("binary_cross_entropy_with_logits_with_grad: loss + gradient",
              "copy of the logits + read of the targets (read 2n, write n; copy as for xent)", 3,
              ((4 * MI,),)),
}
DEFAULT_OPS: tuple[OpName, ...] = tuple(OPS)


def is_op(name: str) -> TypeGuard[OpName]:
    """Whether `name` is one of OPS (and, for mypy, an OpName)."""
    return name in OPS


# --full: every workload of the performance targets, (op, shape, dtype, scaling);
# a scaling workload is timed with 1 thread too (two threads against one).
FULL_PLAN: tuple[tuple[OpName, Shape, DtypeName, bool], ...] = (
    ("xent", (8192, 1000), "float32", False),
    ("xent", (2048, 32768), "float32", False),
    ("xent", (65536, 10), "float32", False),
    ("xent", (32, 10), "float32", False),
    ("xent", (4, 262144), "float32", True),
    ("xent", (2, 524288), "float32", True),
    ("xent", (1, 1048576), "float32", True),
    ("xent", (8192, 1000), "float64", False),
    ("xent", (65536, 10), "float64", False),
    ("xent-fwd", (8192, 1000), "float32", False),
    ("xent-fwd", (2048, 32768), "float32", False),
    ("bce", (16 * MI,), "float32", False),
    ("bce", (16 * MI,), "float64", False),
)


def size_name(n: int) -> str:
    for unit, scale in (("Mi", MI), ("Ki", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def shape_name(shape: Sequence[int]) -> str:
    if len(shape) == 1:
        return size_name(shape[0])
    return "x".join(str(n) for n in shape)


@dataclass
class Workload:
    op: OpName
    shape: Shape
    dtype: str
    logits: NDArray[np.floating[Any]]
    # int64 labels (xent ops) or 0/1 floats of the logits' dtype (bce)
    target: NDArray[np.int64] | NDArray[np.floating[Any]]

    @property
    def name(self) -> str:
        return shape_name(self.shape)

    @property
    def nbytes(self) -> int:
        """The floor's traffic, also the byte count of the GB/s column."""
        return OPS[self.op].bytes_per_element * self.logits.nbytes


def make_workload(op: str, shape: Sequence[int], dtype: DtypeName, seed: int = 0) -> Workload:
    """Logits of `shape` and `dtype` (standard normal, scaled like real logits)
    and the targets: class labels for the xent ops, 0/1 labels for bce."""
    if not is_op(op):
        raise ValueError(f"op: expected one of {tuple(OPS)}, got {op!r}")
    shape = tuple(int(n) for n in shape)
    if op != "bce" and len(shape) != 2:
        raise ValueError(f"{op} needs rows x classes, got the shape {shape_name(shape)}")
    rng = np.random.default_rng(seed)
    np_dtype = numpy_dtype(dtype)
    wide = np_dtype if np_dtype.itemsize >= 4 else np.dtype(np.float32)  # halves: rounded from it
    logits = (rng.standard_normal(shape, dtype=wide) * 3).astype(np_dtype)
    target: NDArray[np.int64] | NDArray[np.floating[Any]]
    if op == "bce":
        target = (rng.random(shape) < 0.5).astype(np_dtype)
    else:
        target = rng.integers(0, shape[-1], size=shape[:-1])
    return Workload(op, shape, np_dtype.name, logits, target)


# Memory a block holds at once, in units of the logits' bytes: the logits, the
# targets, fastxent's outputs (allocating and out=), the NumPy reference's
# temporaries, the floors' destinations, and per peer its copies and gradients.
# Rounded up from a measured peak (xent 2048x32768 float32 with every peer:
# 4.6 GB above the imports' 0.5 GB, 17 times the logits; this estimate: 21).
_MEMORY_OWN = 8
_MEMORY_PER_PEER: dict[str, int] = {"torch": 3, "torch-compile": 3, "sklearn": 2, "jax": 3}


def memory_needed(op: str, shape: Sequence[int], dtype: DTypeLike, peers: Collection[str],
                  thread_counts: int = 1) -> int:
    """Bytes a block of `op` on `shape` and `dtype` holds at its peak with the
    peers named in `peers` (an estimate), its buffers made once per thread count.
    Python integers: no overflow for absurd shapes."""
    elements = 1
    for n in shape:
        elements *= int(n)
    logits = elements * np.dtype(dtype).itemsize
    per_count = _MEMORY_OWN + sum(_MEMORY_PER_PEER.get(p, 4) for p in peers)
    return logits * (2 + per_count * thread_counts)


_DEFAULT_DTYPES: tuple[DtypeName] = ("float32",)


@dataclass(frozen=True)
class Block:
    """One round-robin: one workload, its thread counts interleaved."""
    op: OpName
    shape: Shape
    dtype: DtypeName
    threads: tuple[int, ...]


def make_plan(ops: Collection[OpName], shapes: Sequence[Shape] | None,
              dtypes: Collection[DtypeName] | None, threads: tuple[int, ...] | None,
              full: bool, default_threads: int) -> list[Block]:
    """The blocks to run: `full`'s preset (filtered by `ops` and `dtypes`), or
    every op on `shapes` (None: each op's default shapes) in `dtypes` (None:
    float32). `threads` (None: default_threads, and 1 too for --full's scaling
    workloads). Raises ValueError naming the option at fault."""
    if full:
        if shapes is not None:
            raise ValueError("--full runs its own shapes: drop --shapes, or --full")
        plan = []
        for op, shape, dtype, scaling in FULL_PLAN:
            if op not in ops or (dtypes is not None and dtype not in dtypes):
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
    for op in ops:
        op_shapes: Sequence[Shape]
        if shapes is None:
            op_shapes = OPS[op].default_shapes
        else:
            op_shapes = [s for s in shapes if op == "bce" or len(s) == 2]
            if not op_shapes:
                raise ValueError(f"--shapes has no rows x classes shape (like 8192x1000) for {op}")
        for shape in op_shapes:
            for dtype in dtypes or _DEFAULT_DTYPES:
                plan.append(Block(op, shape, dtype, threads or (default_threads,)))
    return plan
