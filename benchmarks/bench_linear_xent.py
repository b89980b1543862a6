"""Time and peak extra memory of a language-model head's loss and gradients
(fastxent.linear_cross_entropy_with_grad against NumPy's unfused route,
PyTorch's eager, chunked and compiled paths, and the three GEMMs alone); the
code is fastxent.bench.linear_xent, which `python -m fastxent bench --ops
linear-xent` runs too.

    python benchmarks/bench_linear_xent.py                 # both workloads, 2 threads
    python benchmarks/bench_linear_xent.py --shapes 4096,1024,32000 --rounds 5
    python benchmarks/bench_linear_xent.py --dtype bfloat16 --shapes 4096,1024,32000
    python benchmarks/bench_linear_xent.py --paths fastxent,gemms --no-memory
"""

import sys

from fastxent.bench.linear_xent import main

if __name__ == "__main__":
    sys.exit(main())
