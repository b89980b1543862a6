"""`python -m fastxent bench`: fastxent against NumPy, its peers and the memory floor.

Three operations ("ops") are timed, each on its workloads:

* ``xent``      cross_entropy_with_grad, loss and gradient (allocating, and with out=);
* ``xent-fwd``  cross_entropy, the loss alone;
* ``bce``       binary_cross_entropy_with_logits_with_grad (allocating, and with out=);

against the NumPy reference (fastxent.reference), PyTorch (eager and
torch.compile), scikit-learn's private loss classes and JAX, each where it is
usable, and against the memory floors of the operation (see `floors`).

The parts: `workloads` (ops, shapes, the plan), `peers` (the adapters),
`floors`, `implementations` (what a block times, and the check against the
reference), `timing` (interleaved round-robin samples), `report` (table,
notes, JSON, plot, Markdown), `arguments` (the command line and its checks),
`run` (the loop). `benchmarks/` (pytest-benchmark) uses the names below.
"""

from .arguments import add_arguments, check_arguments
from .implementations import (IMPL_NAMES, IMPLEMENTATIONS, BenchError, check, floor_of,
                              make_implementations)
from .peers import PEERS, Impl, Peers, import_peers, usable_cpus
from .run import run
from .timing import using_threads
from .workloads import DEFAULT_OPS, FULL_PLAN, OPS, Workload, make_workload, shape_name

__all__ = [
    "DEFAULT_OPS", "FULL_PLAN", "IMPLEMENTATIONS", "IMPL_NAMES", "OPS", "PEERS", "BenchError",
    "Impl", "Peers", "Workload", "add_arguments", "check", "check_arguments", "floor_of",
    "import_peers", "make_implementations", "make_workload", "run", "shape_name",
    "usable_cpus", "using_threads",
]
