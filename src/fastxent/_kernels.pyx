# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels: loops over rows, in parallel, calling the per-row sweeps
of _rows.h. They assume validated, C-contiguous input (fastxent._validate
sees to that) and share their contract with fastxent._numpy_kernels."""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

cdef extern from "_rows.h" nogil:
    double fx_index_row_f32(const float *x, float *g, Py_ssize_t n, Py_ssize_t y,
                            const float *w, double w_total, double eps, double scale)
    double fx_index_row_f64(const double *x, double *g, Py_ssize_t n, Py_ssize_t y,
                            const double *w, double w_total, double eps, double scale)
    double fx_prob_row_f32(const float *x, const float *t, float *g, Py_ssize_t n,
                           const float *w, double eps, double scale)
    double fx_prob_row_f64(const double *x, const double *t, double *g, Py_ssize_t n,
                           const double *w, double eps, double scale)
    const char *fx_select_isa(int level)
    int fx_openmp_max_threads()
    int fx_openmp_version()
    const char *fx_openmp_library()
    const char *fx_compiler()

# Rows are processed, and their losses summed, in blocks whose size depends on
# the row length only; the block sums are then added in order. The result is
# therefore the same bits for any number of threads.
cdef enum:
    BLOCK_ELEMENTS = 32768


cdef inline Py_ssize_t _rows_per_block(Py_ssize_t n_classes) noexcept nogil:
    return max(1, BLOCK_ELEMENTS // max(n_classes, 1))


ISA_LEVELS = {"baseline": 0, "avx2": 1, "avx512": 2}


def select_isa(str name="avx512"):
    """Use the best row code this CPU runs, capped at `name`; returns what is in use."""
    return fx_select_isa(ISA_LEVELS[name]).decode()


def openmp_max_threads():
    return fx_openmp_max_threads()


def build_info():
    return {
        "compiler": fx_compiler().decode(),
        "openmp_version": fx_openmp_version(),
        "openmp_library": fx_openmp_library().decode(),
    }


cdef inline void _index_rows(const floating *x, const int64_t *target, floating *grad,
                             const floating *weight, double w_total,
                             Py_ssize_t start, Py_ssize_t stop, Py_ssize_t n_classes,
                             int64_t ignore_index, double eps, double scale,
                             floating *row_loss, double *block_loss,
                             int64_t *block_bad) noexcept nogil:
    cdef Py_ssize_t i
    cdef int64_t y
    cdef double loss, total = 0.0
    cdef floating *g = NULL
    for i in range(start, stop):
        y = target[i]
        g = grad + i * n_classes if grad != NULL else NULL
        if y == ignore_index or y < 0 or y >= n_classes:
            if y != ignore_index and block_bad[0] < 0:
                block_bad[0] = i
            loss = 0.0
            if g != NULL:
                memset(g, 0, n_classes * sizeof(floating))
        elif floating is float:
            loss = fx_index_row_f32(x + i * n_classes, g, n_classes, y, weight, w_total, eps, scale)
        else:
            loss = fx_index_row_f64(x + i * n_classes, g, n_classes, y, weight, w_total, eps, scale)
        if row_loss != NULL:
            row_loss[i] = <floating>loss
        total += loss
    block_loss[0] = total


def xent_index(const floating[:, ::1] x, const int64_t[::1] target, floating[:, ::1] grad,
               const floating[::1] weight, int64_t ignore_index, double label_smoothing,
               bint mean, floating[::1] row_loss, int n_threads):
    """Softmax cross-entropy of rows x against class indices.

    Returns (sum of row losses, mean denominator, first row whose label is out
    of range or -1). grad (may be x itself) receives the gradient of the sum,
    or of the mean when `mean`; row_loss the per-row losses; either may be None.
    """
    cdef Py_ssize_t n_rows = x.shape[0], n_classes = x.shape[1], i, b
    cdef Py_ssize_t per_block = _rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = (n_rows + per_block - 1) // per_block
    cdef double[::1] block_loss = np.zeros(n_blocks)
    cdef int64_t[::1] block_bad = np.full(n_blocks, -1, dtype=np.int64)
    cdef const floating *xp = NULL
    cdef floating *gp = NULL
    cdef floating *lp = NULL
    cdef const floating *wp = NULL
    cdef const int64_t *tp = NULL
    cdef double w_total = <double>n_classes, denom = 0.0, scale = 1.0, total = 0.0
    cdef int64_t y
    if n_rows == 0:
        return 0.0, 0.0, -1
    xp = &x[0, 0]
    tp = &target[0]
    if grad is not None:
        gp = &grad[0, 0]
    if row_loss is not None:
        lp = &row_loss[0]
    if weight is not None:
        wp = &weight[0]
        w_total = 0.0
        for i in range(n_classes):
            w_total += wp[i]
    if mean:
        # The mean divides by the total weight of the counted rows; the gradient
        # needs it before the main pass. Bad labels are reported by that pass.
        for i in range(n_rows):
            y = tp[i]
            if y != ignore_index and 0 <= y < n_classes:
                denom += wp[y] if wp != NULL else 1.0
        scale = 1.0 / denom
    with nogil:
        for b in prange(n_blocks, schedule="static", num_threads=n_threads):
            _index_rows(xp, tp, gp, wp, w_total, b * per_block, min(n_rows, (b + 1) * per_block),
                        n_classes, ignore_index, label_smoothing, scale, lp,
                        &block_loss[b], &block_bad[b])
    for b in range(n_blocks):
        total += block_loss[b]
    for b in range(n_blocks):
        if block_bad[b] >= 0:
            return total, denom, block_bad[b]
    return total, denom, -1


cdef inline void _prob_rows(const floating *x, const floating *target, floating *grad,
                            const floating *weight, Py_ssize_t start, Py_ssize_t stop,
                            Py_ssize_t n_classes, double eps, double scale,
                            floating *row_loss, double *block_loss) noexcept nogil:
    cdef Py_ssize_t i
    cdef double loss, total = 0.0
    cdef floating *g = NULL
    for i in range(start, stop):
        g = grad + i * n_classes if grad != NULL else NULL
        if floating is float:
            loss = fx_prob_row_f32(x + i * n_classes, target + i * n_classes, g, n_classes,
                                   weight, eps, scale)
        else:
            loss = fx_prob_row_f64(x + i * n_classes, target + i * n_classes, g, n_classes,
                                   weight, eps, scale)
        if row_loss != NULL:
            row_loss[i] = <floating>loss
        total += loss
    block_loss[0] = total


def xent_prob(const floating[:, ::1] x, const floating[:, ::1] target, floating[:, ::1] grad,
              const floating[::1] weight, double label_smoothing, bint mean,
              floating[::1] row_loss, int n_threads):
    """Softmax cross-entropy of rows x against class probabilities.

    Returns (sum of row losses, mean denominator = number of rows). grad and
    row_loss as in xent_index.
    """
    cdef Py_ssize_t n_rows = x.shape[0], n_classes = x.shape[1], b
    cdef Py_ssize_t per_block = _rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = (n_rows + per_block - 1) // per_block
    cdef double[::1] block_loss = np.zeros(n_blocks)
    cdef const floating *xp = NULL
    cdef const floating *tp = NULL
    cdef floating *gp = NULL
    cdef floating *lp = NULL
    cdef const floating *wp = NULL
    cdef double scale = 1.0, total = 0.0
    if n_rows == 0:
        return 0.0, 0.0
    xp = &x[0, 0]
    tp = &target[0, 0]
    if grad is not None:
        gp = &grad[0, 0]
    if row_loss is not None:
        lp = &row_loss[0]
    if weight is not None:
        wp = &weight[0]
    if mean:
        scale = 1.0 / n_rows
    with nogil:
        for b in prange(n_blocks, schedule="static", num_threads=n_threads):
            _prob_rows(xp, tp, gp, wp, b * per_block, min(n_rows, (b + 1) * per_block),
                       n_classes, label_smoothing, scale, lp, &block_loss[b])
    for b in range(n_blocks):
        total += block_loss[b]
    return total, <double>n_rows
