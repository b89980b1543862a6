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
import warnings
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


# ---------------------------------------------------------------- bfloat16
#
# NumPy's OpenBLAS exports no bfloat16 GEMM (its "support_avx512_bf16" is a
# query, not a GEMM), and the MKL inside PyTorch, whose cblas_gemm_bf16bf16f32
# writes float32, ran 4x slower than PyTorch's own bf16 matmul on this
# project's AMD CPU (MKL does not take its AVX512-BF16 path there). PyTorch's
# matmul (oneDNN) uses AVX512-BF16 or AMX where the CPU has them, accumulates
# in float32 and rounds its result to bfloat16: it computes the GEMMs of
# linear_cross_entropy on bfloat16 inputs, when PyTorch is installed.


def is_bfloat16(dtype: np.dtype[Any]) -> bool:
    """Whether dtype is ml_dtypes.bfloat16 (told by name: no import needed)."""
    return dtype.name == "bfloat16" and dtype.itemsize == 2


def torch_or_none() -> Any:
    """The torch module, imported on first use, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def bfloat16_tensor(arr: NDArray[Any]) -> Any:
    """A torch.bfloat16 tensor over the memory of the bfloat16 array arr (no copy)."""
    import torch

    bits = arr.view(np.int16)
    if not bits.flags.writeable:  # only read here: torch.from_numpy would warn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(bits).view(torch.bfloat16)
    return torch.from_numpy(bits).view(torch.bfloat16)


def scale_bfloat16(arr: NDArray[Any], factor: float) -> None:
    """arr *= factor, computed in float32 and rounded once (NumPy would round
    factor to bfloat16 first)."""
    bfloat16_tensor(arr).mul_(factor)


class TorchBfloat16Gemms:
    """The GEMMs of linear_cross_entropy on bfloat16 `hidden` (N, H) and
    `weight` (V, H), C-contiguous, by PyTorch's matmul; a chunk's logits come
    back in float32 (for the kernel), its gradient goes in as bfloat16."""

    def __init__(self, hidden: NDArray[Any], weight: NDArray[Any]) -> None:
        self.hidden, self.weight = bfloat16_tensor(hidden), bfloat16_tensor(weight)
        self.chunk: Any = None  # (rows, V) bfloat16: the product, then the gradient

    def _chunk(self, n_rows: int) -> Any:
        if self.chunk is None or self.chunk.shape[0] < n_rows:
            import torch

            self.chunk = torch.empty((n_rows, self.weight.shape[0]), dtype=torch.bfloat16)
        return self.chunk[:n_rows]

    def logits_into(self, buf: NDArray[np.float32], rows: slice) -> None:
        """buf (float32) = hidden[rows] @ weight.T."""
        import torch

        product = self._chunk(buf.shape[0])
        torch.mm(self.hidden[rows], self.weight.T, out=product)
        torch.from_numpy(buf).copy_(product)

    def backprop(self, grad: NDArray[np.float32], rows: slice, d_hidden: NDArray[Any],
                 d_weight: NDArray[Any], first_rows: bool) -> None:
        """d_hidden[rows] = grad @ weight; d_weight (+)= grad.T @ hidden[rows]
        (written for the first chunk of rows, then added by the GEMM: beta = 1),
        with grad (float32) narrowed to bfloat16; d_hidden, d_weight bfloat16."""
        import torch

        g = self._chunk(grad.shape[0])
        g.copy_(torch.from_numpy(grad))
        torch.mm(g, self.weight, out=bfloat16_tensor(d_hidden)[rows])
        dw = bfloat16_tensor(d_weight)
        if first_rows:
            torch.mm(g.T, self.hidden[rows], out=dw)
        else:
            dw.addmm_(g.T, self.hidden[rows])
