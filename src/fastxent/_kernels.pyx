# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels: loops over rows, in parallel, calling the per-row sweeps
of _rows.h. They assume validated, C-contiguous input (fastxent._validate
sees to that) and share their contract with fastxent._numpy_kernels."""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libc.float cimport DBL_MIN
from libc.math cimport INFINITY, NAN, exp, fabs, isnan, log, log1p
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cdef extern from "_rows.h" nogil:
    ctypedef struct fx_carry:
        int has_max
    void fx_carry_start(fx_carry *c, void *scratch, size_t row_bytes)
    size_t fx_scratch_bytes(size_t row_bytes)
    int fx_streams(size_t total, size_t row_bytes)
    size_t fx_stream_min_bytes
    int FX_CAN_STREAM
    ctypedef struct fx_rows_f32:
        double xent_index(const float *x, float *g, Py_ssize_t n, Py_ssize_t y,
                          const float *w, double w_total, double eps, double scale,
                          fx_carry *c, int next_in_run) noexcept nogil
        double xent_index_short(const float *x, float *g, Py_ssize_t rows, Py_ssize_t n,
                                const int64_t *y, int64_t ignore_index, const float *w,
                                double w_total, double eps, double scale, float *row_loss,
                                Py_ssize_t *first_bad) noexcept nogil
        double xent_prob(const float *x, const float *t, float *g, Py_ssize_t n,
                         const float *w, double eps, double scale, fx_carry *c,
                         int next_in_run) noexcept nogil
        void softmax(const float *x, float *out, Py_ssize_t n, int log_space, fx_carry *c,
                     int next_in_run) noexcept nogil
        double logsumexp(const float *x, Py_ssize_t n, fx_carry *c, int next_in_run) noexcept nogil
        double bce_logits(const float *x, const float *t, const float *w, const float *pw, float *g,
                          float *loss, Py_ssize_t n, double scale) noexcept nogil
        void carry_end(fx_carry *c, Py_ssize_t n) noexcept nogil
    ctypedef struct fx_rows_f64:
        double xent_index(const double *x, double *g, Py_ssize_t n, Py_ssize_t y,
                          const double *w, double w_total, double eps, double scale,
                          fx_carry *c, int next_in_run) noexcept nogil
        double xent_index_short(const double *x, double *g, Py_ssize_t rows, Py_ssize_t n,
                                const int64_t *y, int64_t ignore_index, const double *w,
                                double w_total, double eps, double scale, double *row_loss,
                                Py_ssize_t *first_bad) noexcept nogil
        double xent_prob(const double *x, const double *t, double *g, Py_ssize_t n,
                         const double *w, double eps, double scale, fx_carry *c,
                         int next_in_run) noexcept nogil
        void softmax(const double *x, double *out, Py_ssize_t n, int log_space, fx_carry *c,
                     int next_in_run) noexcept nogil
        double logsumexp(const double *x, Py_ssize_t n, fx_carry *c, int next_in_run) noexcept nogil
        double bce_logits(const double *x, const double *t, const double *w, const double *pw, double *g,
                          double *loss, Py_ssize_t n, double scale) noexcept nogil
        void carry_end(fx_carry *c, Py_ssize_t n) noexcept nogil
    enum: FX_SHORT_ROW
    const fx_rows_f32 *fx_f32
    const fx_rows_f64 *fx_f64
    const char *fx_select_isa(int level)
    int fx_openmp_max_threads()
    int fx_openmp_version()
    const char *fx_openmp_library()
    const char *fx_compiler()
    void fx_test_exp_f32 "fx_f32->test_exp"(const float *d, float *out, Py_ssize_t n)
    void fx_test_exp_f64 "fx_f64->test_exp"(const double *d, double *out, Py_ssize_t n)
    void fx_test_log_sum "fx_f64->test_log_sum"(const double *v, double *out, Py_ssize_t n)
    void fx_test_log1p_f32 "fx_f32->test_log1p"(const float *u, float *out, Py_ssize_t n)
    void fx_test_log1p_f64 "fx_f64->test_log1p"(const double *u, double *out, Py_ssize_t n)

# GNU libgomp's thread pool does not survive fork(): a child that opens a
# parallel region with more than one thread hangs. A pthread_atfork handler
# marks every child, however it was forked (os.fork, or fork() called from C,
# which os.register_at_fork does not see), and the kernels then run on one
# thread (_threads). fastxent._config reads the mark (forked()).
cdef extern from *:
    """
    #if !defined(_WIN32)
    #include <pthread.h>
    #endif
    static volatile int fx_forked = 0;
    static void fx_mark_forked(void) { fx_forked = 1; }
    /* 0 on success (and where there is no fork()). */
    static int fx_watch_forks(void)
    {
    #if defined(_WIN32)
        return 0;
    #else
        return pthread_atfork(NULL, NULL, fx_mark_forked);
    #endif
    }
    """
    int fx_forked
    int fx_watch_forks() nogil

if fx_watch_forks() != 0:
    raise ImportError("fastxent._kernels: cannot register its fork handler (pthread_atfork)")


def forked():
    """Whether this process is the child of a fork() made after this module
    was imported (the kernels then run on one thread)."""
    return bool(fx_forked)

# Rows are processed, and their losses summed, in blocks whose size depends on
# the row length only; the block sums are then added in order. The result is
# therefore the same bits for any number of threads. Each thread takes one
# run of consecutive rows (of blocks, for the losses), with an fx_carry
# (_rows.h) that hands the next row's maximum on, and streams the output where
# that pays; run_end, the row where its run ends, tells the row sweeps whether
# the next row is this thread's.
cdef enum:
    BLOCK_ELEMENTS = 32768


cdef inline Py_ssize_t _rows_per_block(Py_ssize_t n_classes) noexcept nogil:
    return max(1, BLOCK_ELEMENTS // max(n_classes, 1))


# ---- the checks at the boundary: once per call, so that no mistake of a
# caller's can make a kernel read or write outside its buffers ----

cdef int _check_length(str kernel, str name, Py_ssize_t length,
                       Py_ssize_t expected, str what) except -1:
    if length != expected:
        raise ValueError(f"{kernel}: {name} has length {length}, expected {expected} ({what})")
    return 0


cdef int _check_shape(str kernel, str name, Py_ssize_t rows, Py_ssize_t cols,
                      Py_ssize_t expected_rows, Py_ssize_t expected_cols, str what) except -1:
    if rows != expected_rows or cols != expected_cols:
        raise ValueError(f"{kernel}: {name} has shape ({rows}, {cols}), expected "
                         f"({expected_rows}, {expected_cols}) ({what})")
    return 0


cdef int _threads(str kernel, int n_threads, Py_ssize_t n_parts) except -1:
    """The threads to run n_parts parts (blocks, rows) of work on: never more
    threads than parts (OpenMP would start them for nothing), one in a forked
    child (see fx_forked)."""
    if n_threads < 1:
        raise ValueError(f"{kernel}: n_threads must be at least 1, got {n_threads}")
    if fx_forked:
        return 1
    return <int>max(1, min(<Py_ssize_t>n_threads, n_parts))


ISA_LEVELS = {"baseline": 0, "avx2": 1, "avx512": 2}


def select_isa(str name="avx512"):
    """Use the best row code this CPU runs, capped at `name`; returns what is in use."""
    return fx_select_isa(ISA_LEVELS[name]).decode()


def set_stream_min_bytes(size_t n):
    """Outputs of at least n bytes are streamed (see fx_streams in _rows.h);
    returns the previous threshold, or None where nothing streams. For the
    tests, which stream small outputs to compare them with normal stores."""
    if not FX_CAN_STREAM:
        return None
    global fx_stream_min_bytes
    previous = fx_stream_min_bytes
    fx_stream_min_bytes = n
    return previous


def openmp_max_threads():
    return fx_openmp_max_threads()


def build_info():
    return {
        "compiler": fx_compiler().decode(),
        "openmp_version": fx_openmp_version(),
        "openmp_library": fx_openmp_library().decode(),
    }


cdef inline size_t _stream_row_bytes(const void *x, const void *out, Py_ssize_t n_rows,
                                     Py_ssize_t row_bytes) noexcept nogil:
    """The row size to stream (see _Carries): row_bytes where the output (not
    NULL, not the input itself) should be streamed, else 0."""
    if out == NULL or out == x or not fx_streams(n_rows * row_bytes, row_bytes):
        return 0
    return row_bytes


cdef inline void _carry_end(fx_carry *c, const floating *x, Py_ssize_t n_classes) noexcept nogil:
    """The end of a thread's run over the rows of n_classes elements of x (x
    says only which row functions: float or double)."""
    if floating is float:
        fx_f32.carry_end(c, n_classes)
    else:
        fx_f64.carry_end(c, n_classes)


cdef enum:
    CARRY_STRIDE = 128  # two cache lines: the adjacent-line prefetcher pairs them


cdef class _Carries:
    """One fx_carry per thread, and the scratch rows of each where rows of
    stream_bytes stream (stream_bytes 0: none), in memory this object owns.
    Each carry is on cache lines of its own: every row writes its thread's
    (shared lines would bounce between the cores at every row)."""
    cdef char *memory
    cdef char *base
    cdef Py_ssize_t n_threads
    cdef size_t stream_bytes, scratch_stride

    def __cinit__(self, int n_threads, size_t stream_bytes):
        assert sizeof(fx_carry) <= CARRY_STRIDE
        self.n_threads = max(n_threads, 1)
        self.stream_bytes = stream_bytes
        self.scratch_stride = fx_scratch_bytes(stream_bytes) if stream_bytes else 0
        # malloc, not np.empty: this is on every call's path (a microsecond
        # of (32, 10)'s twelve went to np.empty and its .ctypes)
        self.memory = <char *>malloc(self.n_threads * (CARRY_STRIDE + self.scratch_stride) + 64)
        if self.memory == NULL:
            raise MemoryError()
        self.base = self.memory + (64 - <uintptr_t>self.memory % 64) % 64

    def __dealloc__(self):
        free(self.memory)

    cdef inline fx_carry *of(self, Py_ssize_t t) noexcept nogil:
        return <fx_carry *>(self.base + t * CARRY_STRIDE)

    cdef inline fx_carry *start(self, Py_ssize_t t) noexcept nogil:
        """Thread t's carry, at the start of its run."""
        cdef char *scratch = NULL
        if self.stream_bytes:
            scratch = self.base + self.n_threads * CARRY_STRIDE + t * self.scratch_stride
        fx_carry_start(self.of(t), scratch, self.stream_bytes)
        return self.of(t)


cdef inline double _nll_row(const floating *x, floating *g, Py_ssize_t n, Py_ssize_t y,
                           const floating *w, double scale) noexcept nogil:
    """-w_y x_y, the loss of a row of log-probabilities; gradient into g."""
    cdef double w_y = w[y] if w != NULL else 1.0
    cdef double loss = -w_y * x[y]  # read before g (perhaps x) is written
    if g != NULL:
        memset(g, 0, n * sizeof(floating))
        g[y] = <floating>(-w_y * scale)
    return loss


cdef inline void _index_rows(const floating *x, const int64_t *target, floating *grad,
                             const floating *weight, double w_total,
                             Py_ssize_t start, Py_ssize_t stop, Py_ssize_t run_end,
                             Py_ssize_t n_classes,
                             int64_t ignore_index, double eps, double scale, bint log_probs,
                             floating *row_loss, double *block_loss,
                             int64_t *block_bad, fx_carry *carry) noexcept nogil:
    cdef Py_ssize_t i, bad = -1
    cdef int64_t y
    cdef double loss, total = 0.0
    cdef floating *g = NULL
    if n_classes <= FX_SHORT_ROW and not log_probs:
        if floating is float:
            total = fx_f32.xent_index_short(
                x + start * n_classes, grad + start * n_classes if grad != NULL else NULL,
                stop - start, n_classes, target + start, ignore_index, weight, w_total, eps,
                scale, row_loss + start if row_loss != NULL else NULL, &bad)
        else:
            total = fx_f64.xent_index_short(
                x + start * n_classes, grad + start * n_classes if grad != NULL else NULL,
                stop - start, n_classes, target + start, ignore_index, weight, w_total, eps,
                scale, row_loss + start if row_loss != NULL else NULL, &bad)
        if bad >= 0:
            block_bad[0] = start + bad
        block_loss[0] = total
        return
    for i in range(start, stop):
        y = target[i]
        g = grad + i * n_classes if grad != NULL else NULL
        if y == ignore_index or y < 0 or y >= n_classes:
            if y != ignore_index and block_bad[0] < 0:
                block_bad[0] = i
            loss = 0.0
            carry.has_max = 0  # no sweep here finds the next row's maximum
            if g != NULL:
                memset(g, 0, n_classes * sizeof(floating))
        elif log_probs:
            loss = _nll_row(x + i * n_classes, g, n_classes, y, weight, scale)
        elif floating is float:
            loss = fx_f32.xent_index(x + i * n_classes, g, n_classes, y, weight, w_total, eps, scale,
                                     carry, i + 1 < run_end)
        else:
            loss = fx_f64.xent_index(x + i * n_classes, g, n_classes, y, weight, w_total, eps, scale,
                                     carry, i + 1 < run_end)
        if row_loss != NULL:
            row_loss[i] = <floating>loss
        total += loss
    block_loss[0] = total


def xent_index(const floating[:, ::1] x not None, const int64_t[::1] target not None,
               floating[:, ::1] grad,
               const floating[::1] weight, int64_t ignore_index, double label_smoothing,
               bint mean, floating[::1] row_loss, int n_threads, bint log_probs=False):
    """Softmax cross-entropy of rows x against class indices (the negative
    log-likelihood of rows of log-probabilities x when log_probs).

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
    cdef Py_ssize_t first_bad = -1
    _check_length("xent_index", "target", target.shape[0], n_rows, "a label per row of x")
    if grad is not None:
        _check_shape("xent_index", "grad", grad.shape[0], grad.shape[1], n_rows, n_classes,
                     "the shape of x")
    if weight is not None:
        _check_length("xent_index", "weight", weight.shape[0], n_classes, "a weight per class")
    if row_loss is not None:
        _check_length("xent_index", "row_loss", row_loss.shape[0], n_rows, "a loss per row of x")
    n_threads = _threads("xent_index", n_threads, n_blocks)
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
    if mean or <const void *>gp == <const void *>xp:
        # A pass over the targets alone (N reads against the main pass's N x C):
        # the mean's gradient needs the total weight of the counted rows before
        # the main pass, and a gradient written over the logits must not start
        # before every label is known to be good. Otherwise the main pass finds
        # bad labels on its way.
        with nogil:
            for i in range(n_rows):
                y = tp[i]
                if y == ignore_index:
                    continue
                if y < 0 or y >= n_classes:
                    first_bad = i
                    break
                denom += wp[y] if wp != NULL else 1.0
        if first_bad >= 0:
            return 0.0, 0.0, first_bad
        scale = 1.0 / denom if mean else 1.0
    cdef Py_ssize_t t, b_first, b_last, per_thread = (n_blocks + n_threads - 1) // n_threads
    cdef size_t stream_bytes = 0
    if not log_probs and n_classes > FX_SHORT_ROW:  # (the others leave the carry alone)
        stream_bytes = _stream_row_bytes(xp, gp, n_rows, n_classes * sizeof(floating))
    cdef _Carries carries = _Carries(n_threads, stream_bytes)
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            b_first = t * per_thread  # one run of blocks per thread (see BLOCK_ELEMENTS)
            b_last = min(n_blocks, b_first + per_thread)
            carries.start(t)
            for b in range(b_first, b_last):
                _index_rows(xp, tp, gp, wp, w_total, b * per_block,
                            min(n_rows, (b + 1) * per_block), min(n_rows, b_last * per_block),
                            n_classes, ignore_index, label_smoothing, scale, log_probs, lp,
                            &block_loss[b], &block_bad[b], carries.of(t))
            _carry_end(carries.of(t), xp, n_classes)
    for b in range(n_blocks):
        total += block_loss[b]
    for b in range(n_blocks):
        if block_bad[b] >= 0:
            return total, denom, block_bad[b]
    return total, denom, -1


cdef inline void _prob_rows(const floating *x, const floating *target, floating *grad,
                            const floating *weight, Py_ssize_t start, Py_ssize_t stop,
                            Py_ssize_t run_end, Py_ssize_t n_classes, double eps, double scale,
                            floating *row_loss, double *block_loss,
                            fx_carry *carry) noexcept nogil:
    cdef Py_ssize_t i
    cdef double loss, total = 0.0
    cdef floating *g = NULL
    for i in range(start, stop):
        g = grad + i * n_classes if grad != NULL else NULL
        if floating is float:
            loss = fx_f32.xent_prob(x + i * n_classes, target + i * n_classes, g, n_classes,
                                   weight, eps, scale, carry, i + 1 < run_end)
        else:
            loss = fx_f64.xent_prob(x + i * n_classes, target + i * n_classes, g, n_classes,
                                   weight, eps, scale, carry, i + 1 < run_end)
        if row_loss != NULL:
            row_loss[i] = <floating>loss
        total += loss
    block_loss[0] = total


def xent_prob(const floating[:, ::1] x not None, const floating[:, ::1] target not None,
              floating[:, ::1] grad,
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
    _check_shape("xent_prob", "target", target.shape[0], target.shape[1], n_rows, n_classes,
                 "the shape of x")
    if grad is not None:
        _check_shape("xent_prob", "grad", grad.shape[0], grad.shape[1], n_rows, n_classes,
                     "the shape of x")
    if weight is not None:
        _check_length("xent_prob", "weight", weight.shape[0], n_classes, "a weight per class")
    if row_loss is not None:
        _check_length("xent_prob", "row_loss", row_loss.shape[0], n_rows, "a loss per row of x")
    n_threads = _threads("xent_prob", n_threads, n_blocks)
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
    cdef Py_ssize_t t, b_first, b_last, per_thread = (n_blocks + n_threads - 1) // n_threads
    cdef size_t stream_bytes = _stream_row_bytes(xp, gp, n_rows, n_classes * sizeof(floating))
    cdef _Carries carries = _Carries(n_threads, stream_bytes)
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            b_first = t * per_thread  # one run of blocks per thread (see BLOCK_ELEMENTS)
            b_last = min(n_blocks, b_first + per_thread)
            carries.start(t)
            for b in range(b_first, b_last):
                _prob_rows(xp, tp, gp, wp, b * per_block, min(n_rows, (b + 1) * per_block),
                           min(n_rows, b_last * per_block), n_classes, label_smoothing, scale,
                           lp, &block_loss[b], carries.of(t))
            _carry_end(carries.of(t), xp, n_classes)
    for b in range(n_blocks):
        total += block_loss[b]
    return total, <double>n_rows


def softmax_rows(const floating[:, ::1] x not None, floating[:, ::1] out not None,
                 bint log_space, int n_threads):
    """softmax (log_softmax when log_space) of each row of x into out (may be x)."""
    cdef Py_ssize_t n_rows = x.shape[0], n_classes = x.shape[1], i
    _check_shape("softmax_rows", "out", out.shape[0], out.shape[1], n_rows, n_classes,
                 "the shape of x")
    n_threads = _threads("softmax_rows", n_threads, n_rows)
    if n_rows == 0 or n_classes == 0:
        return
    cdef const floating *xp = &x[0, 0]
    cdef floating *op = &out[0, 0]
    cdef Py_ssize_t t, stop, per_thread = (n_rows + n_threads - 1) // n_threads
    cdef size_t stream_bytes = _stream_row_bytes(xp, op, n_rows, n_classes * sizeof(floating))
    cdef _Carries carries = _Carries(n_threads, stream_bytes)
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            stop = min(n_rows, (t + 1) * per_thread)  # one run of rows per thread
            carries.start(t)
            for i in range(t * per_thread, stop):
                if floating is float:
                    fx_f32.softmax(xp + i * n_classes, op + i * n_classes, n_classes, log_space,
                                   carries.of(t), i + 1 < stop)
                else:
                    fx_f64.softmax(xp + i * n_classes, op + i * n_classes, n_classes, log_space,
                                   carries.of(t), i + 1 < stop)
            _carry_end(carries.of(t), xp, n_classes)


def logsumexp_rows(const floating[:, ::1] x not None, floating[::1] out not None,
                   int n_threads):
    """log(sum(exp(row))) of each row of x into out."""
    cdef Py_ssize_t n_rows = x.shape[0], n_classes = x.shape[1], i
    _check_length("logsumexp_rows", "out", out.shape[0], n_rows, "a value per row of x")
    n_threads = _threads("logsumexp_rows", n_threads, n_rows)
    if n_rows == 0:
        return
    cdef const floating *xp = &x[0, 0]
    cdef Py_ssize_t t, stop, per_thread = (n_rows + n_threads - 1) // n_threads
    cdef _Carries carries = _Carries(n_threads, 0)
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            stop = min(n_rows, (t + 1) * per_thread)  # one run of rows per thread
            carries.start(t)
            for i in range(t * per_thread, stop):
                if floating is float:
                    out[i] = <float>fx_f32.logsumexp(xp + i * n_classes, n_classes,
                                                     carries.of(t), i + 1 < stop)
                else:
                    out[i] = fx_f64.logsumexp(xp + i * n_classes, n_classes, carries.of(t),
                                              i + 1 < stop)
            _carry_end(carries.of(t), xp, n_classes)


cdef inline double _entr(double p) noexcept nogil:
    """scipy.special.entr: -p log p, 0 at 0, -inf below 0."""
    if p > 0:
        return -p * log(p)
    if p == 0:
        return 0.0
    return p if isnan(p) else -INFINITY


cdef inline double _rel_entr(double p, double q) noexcept nogil:
    """scipy.special.rel_entr: p log(p / q), 0 where p = 0 <= q, inf otherwise;
    computed as SciPy does, by the size of p / q, so that no needless
    overflow or cancellation creeps in."""
    cdef double ratio
    if isnan(p) or isnan(q):
        return NAN
    if p > 0 and q > 0:
        ratio = p / q
        if 0.5 < ratio < 2:
            return p * log1p((p - q) / q)
        if DBL_MIN < ratio < INFINITY:
            return p * log(ratio)
        return p * (log(p) - log(q))
    if p == 0 and q >= 0:
        return 0.0
    return INFINITY


def entropy_rows(const floating[:, ::1] p not None, const floating[:, ::1] q,
                 floating[::1] out not None,
                 int n_threads):
    """Row sums of entr(p), or of rel_entr(p, q) when q is given, into out."""
    cdef Py_ssize_t n_rows = p.shape[0], n_classes = p.shape[1], i, j
    cdef double acc
    if q is not None:
        _check_shape("entropy_rows", "q", q.shape[0], q.shape[1], n_rows, n_classes,
                     "the shape of p")
    _check_length("entropy_rows", "out", out.shape[0], n_rows, "a value per row of p")
    n_threads = _threads("entropy_rows", n_threads, n_rows)
    if n_rows == 0:
        return
    cdef const floating *pp = &p[0, 0]
    cdef const floating *qp = &q[0, 0] if q is not None else NULL
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=n_threads):
            acc = 0.0
            if qp == NULL:
                for j in range(i * n_classes, (i + 1) * n_classes):
                    acc = acc + _entr(pp[j])
            else:
                for j in range(i * n_classes, (i + 1) * n_classes):
                    acc = acc + _rel_entr(pp[j], qp[j])
            out[i] = <floating>acc


cdef inline double _clamped_log(double v) noexcept nogil:
    """PyTorch's max(v, -100), letting NaN through."""
    return -100.0 if v < -100.0 else v


# PyTorch keeps the denominator p (1 - p) of binary_cross_entropy's gradient
# above EPSILON = 1e-12 declared as a C++ float: 1e-12 rounded to float32.
cdef double TORCH_BCE_EPSILON = <float>1e-12


cdef inline double _bce_element(double p, double t, double w, double scale,
                                floating *g) noexcept nogil:
    """PyTorch's binary cross-entropy on a probability, log terms clamped at -100."""
    cdef double d
    if g != NULL:
        d = (1.0 - p) * p
        d = TORCH_BCE_EPSILON if d < TORCH_BCE_EPSILON else d
        g[0] = <floating>(scale * w * (p - t) / d)
    return -w * (t * _clamped_log(log(p)) + (1.0 - t) * _clamped_log(log1p(-p)))


cdef inline double _bce_span(const floating *x, const floating *t, const floating *w,
                            const floating *pw, floating *g, floating *loss, Py_ssize_t n,
                            double scale, bint from_logits, Py_ssize_t offset,
                            int64_t *first_bad) noexcept nogil:
    """Binary cross-entropy of the elements [0, n); returns the sum of losses.
    A probability outside [0, 1] sets *first_bad to offset + its index."""
    cdef Py_ssize_t k
    cdef double total = 0.0, value, p
    if from_logits:
        if floating is float:
            return fx_f32.bce_logits(x, t, w, pw, g, loss, n, scale)
        else:
            return fx_f64.bce_logits(x, t, w, pw, g, loss, n, scale)
    for k in range(n):
        p = x[k]
        if (p < 0 or p > 1) and first_bad[0] < 0:
            first_bad[0] = offset + k
        value = _bce_element(p, t[k], w[k], scale, g + k if g != NULL else NULL)
        if loss != NULL:
            loss[k] = <floating>value
        total += value
    return total


def binary_xent(const floating[:, ::1] x not None, const floating[:, ::1] target not None,
                const floating[:, ::1] weight, const floating[:, ::1] pos_weight,
                floating[:, ::1] grad, bint mean, floating[:, ::1] elem_loss,
                bint from_logits, int n_threads):
    """Binary cross-entropy of x (logits when from_logits, else probabilities)
    against target, elementwise. weight and pos_weight (logits only) have one
    row, repeated for every row of x, or as many rows as x; None means 1.
    Returns (sum of losses, number of elements, first flat index of a
    probability outside [0, 1] or -1)."""
    cdef Py_ssize_t n_rows = x.shape[0], n_cols = x.shape[1], b, k, k0, k1, piece
    cdef Py_ssize_t n = n_rows * n_cols
    _check_shape("binary_xent", "target", target.shape[0], target.shape[1], n_rows, n_cols,
                 "the shape of x")
    if weight is not None:
        _check_shape("binary_xent", "weight", weight.shape[0], weight.shape[1],
                     n_rows if weight.shape[0] != 1 else 1, n_cols,
                     "one row, or the shape of x")
    if pos_weight is not None:
        _check_shape("binary_xent", "pos_weight", pos_weight.shape[0], pos_weight.shape[1],
                     n_rows if pos_weight.shape[0] != 1 else 1, n_cols,
                     "one row, or the shape of x")
    if grad is not None:
        _check_shape("binary_xent", "grad", grad.shape[0], grad.shape[1], n_rows, n_cols,
                     "the shape of x")
    if elem_loss is not None:
        _check_shape("binary_xent", "elem_loss", elem_loss.shape[0], elem_loss.shape[1],
                     n_rows, n_cols, "the shape of x")
    # Fixed-size blocks of elements, whatever the shape: parallel for one long
    # row as for many short ones, and the same sums for any thread count.
    cdef Py_ssize_t n_blocks = (n + BLOCK_ELEMENTS - 1) // BLOCK_ELEMENTS
    n_threads = _threads("binary_xent", n_threads, n_blocks)
    if n == 0:
        return 0.0, 0.0, -1
    cdef double[::1] block_loss = np.zeros(n_blocks)
    cdef int64_t[::1] block_bad = np.full(n_blocks, -1, dtype=np.int64)
    cdef double scale = 1.0 / n if mean else 1.0
    cdef double total = 0.0
    # Where one weight of the two is given, the span functions read ones for
    # the other; where neither is, NULL for both (their loop without weights).
    cdef floating[::1] ones = None
    cdef const floating *xp = &x[0, 0]
    cdef const floating *tp = &target[0, 0]
    cdef const floating *wp = &weight[0, 0] if weight is not None else NULL
    cdef const floating *pwp = &pos_weight[0, 0] if pos_weight is not None else NULL
    cdef bint w_row = weight is not None and weight.shape[0] == 1 and n_rows > 1
    cdef bint pw_row = pos_weight is not None and pos_weight.shape[0] == 1 and n_rows > 1
    cdef floating *gp = &grad[0, 0] if grad is not None else NULL
    cdef floating *lp = &elem_loss[0, 0] if elem_loss is not None else NULL
    cdef const floating *onesp = NULL
    cdef Py_ssize_t first_bad = -1
    if not from_logits and <const void *>gp == <const void *>xp:
        # A gradient written over the probabilities must not start before
        # every one is known to be in [0, 1] (an error leaves x as it was).
        with nogil:
            for k in range(n):
                if xp[k] < 0 or xp[k] > 1:
                    first_bad = k
                    break
        if first_bad >= 0:
            return 0.0, <double>n, first_bad
    if not from_logits or wp != NULL or pwp != NULL:
        ones = np.ones(min(n, BLOCK_ELEMENTS), dtype=np.asarray(x).dtype)
        onesp = &ones[0]
    with nogil:
        for b in prange(n_blocks, schedule="static", num_threads=n_threads):
            block_loss[b] = 0.0
            k0 = b * BLOCK_ELEMENTS
            k1 = min(n, k0 + BLOCK_ELEMENTS)
            k = k0
            while k < k1:
                # A row-vector weight repeats every n_cols elements: pieces
                # that do not cross a row's end see it as a plain array.
                piece = k1 - k
                if w_row or pw_row:
                    piece = min(piece, n_cols - k % n_cols)
                block_loss[b] += _bce_span(
                    xp + k, tp + k,
                    onesp if wp == NULL else (wp + k % n_cols if w_row else wp + k),
                    onesp if pwp == NULL else (pwp + k % n_cols if pw_row else pwp + k),
                    gp + k if gp != NULL else NULL, lp + k if lp != NULL else NULL,
                    piece, scale, from_logits, k, &block_bad[b])
                k = k + piece
    for b in range(n_blocks):
        total += block_loss[b]
    for b in range(n_blocks):
        if block_bad[b] >= 0:
            return total, <double>n, block_bad[b]
    return total, <double>n, -1


# ---- test-only: the elementwise functions of the row code in use (select_isa),
# over arrays, for tests/test_safety.py to compare with a high-precision truth ----

def _exp(const floating[::1] d not None):
    """Test-only: the kernels' exp of each d <= 0 (fx_exp, _rows_impl.h)."""
    out = np.empty(d.shape[0], np.float32 if floating is float else np.float64)
    cdef floating[::1] o = out
    if d.shape[0]:
        if floating is float:
            fx_test_exp_f32(&d[0], &o[0], d.shape[0])
        else:
            fx_test_exp_f64(&d[0], &o[0], d.shape[0])
    return out


def _log_sum(const double[::1] v not None):
    """Test-only: the kernels' log of each sum of exps v >= 1 (fx_log_sum)."""
    out = np.empty(v.shape[0])
    cdef double[::1] o = out
    if v.shape[0]:
        fx_test_log_sum(&v[0], &o[0], v.shape[0])
    return out


def _log1p(const floating[::1] u not None):
    """Test-only: the binary cross-entropy's log1p of each u in [0, 1]."""
    out = np.empty(u.shape[0], np.float32 if floating is float else np.float64)
    cdef floating[::1] o = out
    if u.shape[0]:
        if floating is float:
            fx_test_log1p_f32(&u[0], &o[0], u.shape[0])
        else:
            fx_test_log1p_f64(&u[0], &o[0], u.shape[0])
    return out


