"""``c += a.T @ b`` by the GEMM of the BLAS NumPy itself uses.

NumPy's matmul writes its product (BLAS's beta = 0): adding a product into an
existing array takes a temporary and a second pass over the sum. Where NumPy
ships its own OpenBLAS (the wheels on PyPI: ``numpy.libs`` or ``.dylibs``),
its CBLAS ``?gemm`` is called here with beta = 1, so the product is added
while the GEMM computes it. Elsewhere (NumPy linked to another BLAS) the
caller falls back to matmul and an add, by blocks.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any

import numpy as np
from numpy.typing import NDArray

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_gemms = None  # dtype -> CBLAS ?gemm, {} when NumPy's OpenBLAS cannot be reached


def _load() -> dict[np.dtype[Any], Any]:
    root = os.path.dirname(np.__file__)
    paths = (glob.glob(os.path.join(root, os.pardir, "numpy.libs", "*openblas*"))
             + glob.glob(os.path.join(root, ".dylibs", "*openblas*")))
    # scipy-openblas builds: ILP64 ("64_" suffix, 64-bit integers) or LP64.
    symbols = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("scipy_cblas_{}gemm", ctypes.c_int32))
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same library
        except OSError:
            continue
        for name, blas_int in symbols:
            try:
                fns: dict[np.dtype[Any], Any] = {np.dtype(np.float32): getattr(lib, name.format("s")),
                       np.dtype(np.float64): getattr(lib, name.format("d"))}
            except AttributeError:
                continue
            for dtype, fn in fns.items():
                real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
                fn.restype = None
                fn.argtypes = ([ctypes.c_int] * 3 + [blas_int] * 3
                               + [real, ctypes.c_void_p, blas_int, ctypes.c_void_p, blas_int,
                                  real, ctypes.c_void_p, blas_int])
            return fns
    return {}


def _rows_layout(arr: NDArray[Any]) -> int | None:
    """The leading dimension of a 2-D array whose rows are contiguous, or None."""
    if arr.ndim != 2 or arr.strides[1] != arr.itemsize or arr.strides[0] % arr.itemsize:
        return None
    lead = arr.strides[0] // arr.itemsize
    return lead if lead >= max(1, arr.shape[1]) else None


def add_product_t(c: NDArray[Any], a: NDArray[Any], b: NDArray[Any]) -> bool:
    """c += a.T @ b with NumPy's BLAS and beta = 1; False (c untouched) when
    that BLAS cannot be reached or the layouts do not suit it.

    a: (K, M), b: (K, N), c: (M, N), one dtype (float32 or float64), each with
    contiguous rows; c writable and not overlapping a or b.
    """
    global _gemms
    if _gemms is None:
        _gemms = _load()
    gemm = _gemms.get(c.dtype)
    lda, ldb, ldc = _rows_layout(a), _rows_layout(b), _rows_layout(c)
    if gemm is None or None in (lda, ldb, ldc) or not a.dtype == b.dtype == c.dtype:
        return False
    (k, m), n = a.shape, b.shape[1]
    if c.shape != (m, n) or b.shape[0] != k:
        raise ValueError(f"add_product_t: shapes {a.shape}, {b.shape}, {c.shape} do not fit")
    if m and n and k:
        gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, lda,
             b.ctypes.data, ldb, 1.0, c.ctypes.data, ldc)
    return True
