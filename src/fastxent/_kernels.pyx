# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels: loops over rows, in parallel, calling the per-row sweeps
of _rows.h. They assume validated, C-contiguous input (fastxent._validate
sees to that) and share their contract with fastxent._numpy_kernels."""

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint16_t, uint64_t, uintptr_t
from libc.float cimport DBL_MIN
from libc.math cimport INFINITY, NAN, exp, fabs, isnan, log, log1p
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from ._kinds import BinaryInput, Scores, Transform

cdef extern from "_rows.h" nogil:
    ctypedef struct fx_carry:
        pass
    void fx_run_begin(fx_carry *c, void *scratch, size_t row_bytes)
    void fx_run_skip_row(fx_carry *c)
    size_t fx_scratch_bytes(size_t row_bytes)
    int fx_streams(size_t total, size_t row_bytes)
    int fx_streams_into(const void *out, size_t total, size_t row_bytes)
    size_t fx_stream_min_bytes
    int FX_CAN_STREAM
    void fx_stream_copy(void *dst, const void *src, size_t n)
    void FX_STREAM_FENCE()
    ctypedef struct fx_class_params:
        const void *weight
        double weight_total
        double smoothing
        double scale
        int64_t ignore_index
        const double *sample_weight
        double z_loss
        void *lse
        unsigned char *correct
        Py_ssize_t row
    # One table for both element types (see _fx_rows.h): pointers to elements
    # are void pointers, of the type of the table in use.
    ctypedef struct fx_rows:
        double xent_index(const void *x, void *g, Py_ssize_t n, Py_ssize_t y,
                          const fx_class_params *p, fx_carry *c, int next_in_run) noexcept nogil
        double xent_index_short(const void *x, void *g, Py_ssize_t rows, Py_ssize_t n,
                                const int64_t *y, const fx_class_params *p, void *row_loss,
                                Py_ssize_t *first_bad) noexcept nogil
        double xent_prob(const void *x, const void *t, void *g, Py_ssize_t n,
                         const fx_class_params *p, fx_carry *c, int next_in_run) noexcept nogil
        double nll_index(const void *x, void *g, Py_ssize_t n, Py_ssize_t y,
                         const fx_class_params *p) noexcept nogil
        void softmax(const void *x, void *out, Py_ssize_t n, fx_carry *c,
                     int next_in_run) noexcept nogil
        void log_softmax(const void *x, void *out, Py_ssize_t n, fx_carry *c,
                         int next_in_run) noexcept nogil
        double logsumexp(const void *x, Py_ssize_t n, fx_carry *c, int next_in_run) noexcept nogil
        double bce_logits(const void *x, const void *t, const void *w, const void *pw, void *g,
                          void *loss, Py_ssize_t n, double scale) noexcept nogil
        void run_end(fx_carry *c, Py_ssize_t n) noexcept nogil
        double exp_sum_part(const void *x, void *out, Py_ssize_t n, double *max) noexcept nogil
        int count_labels(const int64_t *y, Py_ssize_t rows, Py_ssize_t n, int64_t ignore_index,
                         Py_ssize_t *counted) noexcept nogil
        void load_rows(const void *src, int kind, void *dst, void *slope, Py_ssize_t n,
                       double softcap) noexcept nogil
        void store_rows(void *g, const void *slope, void *dst, int kind,
                        Py_ssize_t n, int stream) noexcept nogil
        void test_convert(const void *src, int src_kind, void *dst, int dst_kind,
                          Py_ssize_t n) noexcept nogil
        void test_tanh(const void *u, void *out, void *slope, Py_ssize_t n) noexcept nogil
    enum:
        FX_STORED_SAME
        FX_STORED_F16
        FX_STORED_BF16
    enum: FX_SHORT_ROW
    # Whether the class-loss options leave the index loss plain (no option
    # that the plain paths skip is on); the same rule for every instance.
    int fx_index_plain "fx_index_plain_f32_base"(const fx_class_params *p)
    const fx_rows *fx_f32
    const fx_rows *fx_f64
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

# A busy machine: where other processes hold the CPUs, a parallel region
# waits for its descheduled threads, and OpenMP's waiting threads spin,
# taking CPU time from the ones with work: 2 threads took up to 12x the
# 1-thread time beside two busy loops (docs/benchmarks.md). The wait policy
# cannot be changed for fastxent's regions alone (libgomp reads it once, for
# every library of the process), so each region of several threads measures
# itself instead: the CPU time its threads got against its wall time. Where
# they got much less than their share, the next calls run on one thread, for
# a while that doubles while the machine stays busy (0.1 s, up to 2 s), and
# then try again. Results do not depend on it (the same bits for any thread
# count).
cdef extern from *:
    """
    #include <time.h>
    /* Seconds of a monotonic clock, and of this thread's CPU time; 0 where
     * the system has no such clocks (the measuring is then off). */
    static double fx_now(void)
    {
    #if defined(CLOCK_MONOTONIC) && !defined(_WIN32)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) return (double)ts.tv_sec + 1e-9 * ts.tv_nsec;
    #endif
        return 0.0;
    }
    static double fx_thread_cpu(void)
    {
    #if defined(CLOCK_THREAD_CPUTIME_ID) && !defined(_WIN32)
        struct timespec ts;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
            return (double)ts.tv_sec + 1e-9 * ts.tv_nsec;
    #endif
        return 0.0;
    }
    #define FX_BUSY_FIRST 0.1    /* seconds on one thread after a starved region */
    #define FX_BUSY_LONGEST 2.0
    #define FX_BUSY_SHARE 0.7    /* a region's threads got less of their CPUs: starved */
    /* and lost more than waking sleeping threads takes (a region can lose that much on an idle machine) */
    #define FX_BUSY_MIN_LOST 200e-6
    static double fx_busy_until = 0.0, fx_busy_for = FX_BUSY_FIRST;
    static int fx_busy_check = 1; /* the test-suite turns it off (_set_busy_check) */
    /* Plain statics: a race between two calls costs at most one call's choice. */
    static int fx_machine_busy(void)
    {
        return fx_busy_check && fx_busy_until > 0.0 && fx_now() < fx_busy_until;
    }
    /* A region of n_threads took `wall` seconds, in which its threads got
     * `cpu` seconds of CPU time between them. */
    static void fx_region_report(double wall, double cpu, int n_threads)
    {
        const double lost = n_threads * wall - cpu; /* thread-seconds without a CPU */
    #if !defined(_OPENMP)
        return; /* the threads of a serial build run one after the other */
    #endif
        if (!fx_busy_check || n_threads < 2 || cpu <= 0.0) return;
        if (lost > (1 - FX_BUSY_SHARE) * n_threads * wall && lost > n_threads * FX_BUSY_MIN_LOST) {
            fx_busy_until = fx_now() + fx_busy_for;
            fx_busy_for = fx_busy_for * 2 < FX_BUSY_LONGEST ? fx_busy_for * 2 : FX_BUSY_LONGEST;
        } else if (fx_busy_for > FX_BUSY_FIRST) {
            /* halved, not reset: one lucky region on a busy machine is not the end of it */
            fx_busy_for = fx_busy_for / 2;
        }
    }
    """
    double fx_now() nogil
    double fx_thread_cpu() nogil
    int fx_machine_busy() nogil
    void fx_region_report(double wall, double cpu, int n_threads) nogil
    double fx_busy_until
    double fx_busy_for
    int fx_busy_check
    double FX_BUSY_FIRST


def _busy_seconds_left():
    """Test-only: how much longer the calls run on one thread (0: not busy)."""
    return max(0.0, fx_busy_until - fx_now()) if fx_busy_until > 0 else 0.0


def _report_region(double wall, double cpu, int n_threads):
    """Test-only: tells the contention check of a region of n_threads that
    took `wall` seconds, of which its threads got `cpu` (fx_region_report)."""
    fx_region_report(wall, cpu, n_threads)


def _set_busy_check(bint on):
    """Test-only: turns the contention check on or off; returns whether it was
    on. The test-suite runs with it off, so that a call's thread count is the
    one it asks for (an oversubscribed test would otherwise send the next
    tests' calls to one thread), except where it tests the check itself."""
    global fx_busy_check
    previous = bool(fx_busy_check)
    fx_busy_check = on
    return previous


def _reset_busy():
    """Test-only: forgets what the regions measured."""
    global fx_busy_until, fx_busy_for
    fx_busy_until = 0.0
    fx_busy_for = FX_BUSY_FIRST


def forked():
    """Whether this process is the child of a fork() made after this module
    was imported (the kernels then run on one thread)."""
    return bool(fx_forked)


cdef int _stored(arr) except -1:
    """How arr's elements are stored, for the kernels: in the kernel's own type
    (FX_STORED_SAME: float32, float64), or as float16 or bfloat16 (rows the
    float32 row functions read through the load transform, _run_loaded_rows)."""
    if arr is None or arr.dtype.itemsize != 2:
        return FX_STORED_SAME
    if arr.dtype == np.float16:
        return FX_STORED_F16
    if arr.dtype.name == "bfloat16":
        return FX_STORED_BF16
    raise TypeError(f"fastxent._kernels: unsupported dtype {arr.dtype}")


cdef const uint16_t[:, ::1] _halves(arr):
    """A float16 or bfloat16 (rows, classes) array's elements as their bits."""
    return arr.view(np.uint16) if arr is not None else None


cdef inline const fx_rows *_rows_of(const floating *x) noexcept nogil:
    """The row functions in use for elements of x's type (x says only which)."""
    if floating is float:
        return fx_f32
    else:
        return fx_f64


# The elements of a block of rows (of a block of the binary losses): the block
# sums are added in order, so results are the same bits for any thread count
# (see _run_rows).
cdef enum:
    BLOCK_ELEMENTS = 32768


cdef inline Py_ssize_t _rows_per_block(Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t rows = max(1, BLOCK_ELEMENTS // max(n_classes, 1))
    # Short rows go 16 at a time (_fx_short16.h): blocks of whole groups of 16.
    return rows - rows % 16 if n_classes <= FX_SHORT_ROW else rows


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
    child (see fx_forked) and while the machine is busy (fx_machine_busy)."""
    if n_threads < 1:
        raise ValueError(f"{kernel}: n_threads must be at least 1, got {n_threads}")
    if fx_forked or (n_threads > 1 and n_parts > 1 and fx_machine_busy()):
        return 1
    return <int>max(1, min(<Py_ssize_t>n_threads, n_parts))


ISA_LEVELS = {"baseline": 0, "avx2": 1, "avx512": 2}


def select_isa(str name="avx512"):
    """Use the best row code this CPU runs, capped at `name`; returns what is in use."""
    return fx_select_isa(ISA_LEVELS[name]).decode()


def set_stream_min_bytes(size_t n):
    """Outputs of at least n bytes are streamed (see fx_streams in _fx_pipeline.h);
    returns the previous threshold, or None where nothing streams. For the
    tests, which stream small outputs to compare them with normal stores."""
    if not FX_CAN_STREAM:
        return None
    global fx_stream_min_bytes
    previous = fx_stream_min_bytes
    fx_stream_min_bytes = n
    return previous


def _output_streams(out, size_t row_bytes):
    """Test-only: whether the kernels would stream into the array out, in rows
    of row_bytes (fx_streams_into): not while out is a fresh large array that
    nothing has written yet."""
    cdef uintptr_t address = out.ctypes.data
    return bool(fx_streams_into(<const void *>address, out.nbytes, row_bytes))


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
    NULL, not the input itself) should be streamed (fx_streams_into), else 0."""
    if out == NULL or out == x or not fx_streams_into(out, n_rows * row_bytes, row_bytes):
        return 0
    return row_bytes


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
        # malloc, not np.empty: this is on every call's path, where small
        # inputs notice np.empty's cost (docs/benchmarks.md)
        self.memory = <char *>malloc(self.n_threads * (CARRY_STRIDE + self.scratch_stride) + 64)
        if self.memory == NULL:
            raise MemoryError()
        self.base = self.memory + (64 - <uintptr_t>self.memory % 64) % 64

    def __dealloc__(self):
        free(self.memory)

    cdef inline fx_carry *of(self, Py_ssize_t t) noexcept nogil:
        return <fx_carry *>(self.base + t * CARRY_STRIDE)

    cdef inline void *scratch(self, Py_ssize_t t) noexcept nogil:
        """Thread t's scratch memory (stream_bytes of it, line-aligned, twice)."""
        return self.base + self.n_threads * CARRY_STRIDE + t * self.scratch_stride

    cdef inline fx_carry *start(self, Py_ssize_t t) noexcept nogil:
        """Thread t's carry, at the start of its run."""
        cdef char *scratch = NULL
        if self.stream_bytes:
            scratch = self.base + self.n_threads * CARRY_STRIDE + t * self.scratch_stride
        fx_run_begin(self.of(t), scratch, self.stream_bytes)
        return self.of(t)


cdef class _BlockSums:
    """Per block of rows: the sum of its losses (0 to start with) and its
    first bad label's row (-1), in memory this object owns."""
    cdef double *loss
    cdef int64_t *bad

    def __cinit__(self, Py_ssize_t n_blocks):
        cdef Py_ssize_t b
        self.loss = <double *>malloc(max(n_blocks, 1) * (sizeof(double) + sizeof(int64_t)))
        if self.loss == NULL:
            raise MemoryError()
        self.bad = <int64_t *>(self.loss + max(n_blocks, 1))
        for b in range(n_blocks):
            self.loss[b] = 0.0
            self.bad[b] = -1

    def __dealloc__(self):
        free(self.loss)

    cdef tuple in_order(self, Py_ssize_t n_blocks):
        """(the sum of the first n_blocks losses, added in block order: the
        same bits for any number of threads; the first bad row, or -1)."""
        cdef double total = 0.0
        cdef Py_ssize_t b
        for b in range(n_blocks):
            total += self.loss[b]
        for b in range(n_blocks):
            if self.bad[b] >= 0:
                return total, self.bad[b]
        return total, -1


# ---- one driver for every operation on rows ----

cdef enum RowOp:  # what _run_rows does to each row
    ROWS_XENT_INDEX    # softmax cross-entropy against class indices
    ROWS_NLL_INDEX     # negative log-likelihood of log-probabilities
    ROWS_XENT_PROB     # softmax cross-entropy against class probabilities
    ROWS_SOFTMAX
    ROWS_LOG_SOFTMAX
    ROWS_LOGSUMEXP


cdef struct RowJob:  # one call's rows, and what to do to them
    RowOp op
    Py_ssize_t n_rows, n_classes
    const void *x             # (n_rows, n_classes)
    const void *target        # int64 (n_rows,) labels, or (n_rows, n_classes) probabilities
    void *out                 # (n_rows, n_classes): gradient or softmax, or NULL
    void *per_row             # (n_rows,): row losses or logsumexp, or NULL
    fx_class_params params    # the class losses' options
    # The load transform (_run_loaded_rows): x and out stored as float16 or
    # bfloat16 (FX_STORED_SAME: in the row type), and the logits' soft cap
    # (0: none).
    int stored
    double softcap


cdef inline bint _sums_losses(RowOp op) noexcept nogil:
    return op == ROWS_XENT_INDEX or op == ROWS_NLL_INDEX or op == ROWS_XENT_PROB


cdef inline bint _sweeps_rows(const RowJob *job) noexcept nogil:
    """Whether the rows go through the row pipeline's exp sweeps (and may
    stream): not the log-likelihoods, not the short-row tiles."""
    if job.op == ROWS_NLL_INDEX:
        return False
    return job.op != ROWS_XENT_INDEX or job.n_classes > FX_SHORT_ROW


cdef inline void _block_rows(const RowJob *job, const fx_rows *R, const floating *x,
                             Py_ssize_t start, Py_ssize_t stop, Py_ssize_t run_end,
                             fx_carry *carry, double *block_loss,
                             int64_t *block_bad) noexcept nogil:
    """The rows [start, stop) of a thread's run, which ends at run_end: their
    losses summed into *block_loss and the first bad label's row into
    *block_bad (for the losses)."""
    cdef Py_ssize_t n = job.n_classes, i, bad = -1
    cdef floating *out = <floating *>job.out
    cdef floating *per_row = <floating *>job.per_row
    cdef const int64_t *labels = <const int64_t *>job.target
    cdef const floating *probs = <const floating *>job.target
    # A copy that knows the row it is at (fx_class_params.row: the per-row options)
    cdef fx_class_params row_params = job.params
    cdef const fx_class_params *params = &row_params
    cdef RowOp op = job.op
    cdef floating *g = NULL
    cdef double value = 0.0, total = 0.0
    cdef int64_t y
    if op == ROWS_XENT_INDEX and n <= FX_SHORT_ROW:
        row_params.row = start
        total = R.xent_index_short(x + start * n, out + start * n if out != NULL else NULL,
                                   stop - start, n, labels + start, params,
                                   per_row + start if per_row != NULL else NULL, &bad)
        if bad >= 0:
            block_bad[0] = start + bad
        block_loss[0] = total
        return
    for i in range(start, stop):
        g = out + i * n if out != NULL else NULL
        row_params.row = i
        if op == ROWS_SOFTMAX:
            R.softmax(x + i * n, g, n, carry, i + 1 < run_end)
            continue
        if op == ROWS_LOG_SOFTMAX:
            R.log_softmax(x + i * n, g, n, carry, i + 1 < run_end)
            continue
        if op == ROWS_LOGSUMEXP:
            per_row[i] = <floating>R.logsumexp(x + i * n, n, carry, i + 1 < run_end)
            continue
        if op == ROWS_XENT_PROB:
            value = R.xent_prob(x + i * n, probs + i * n, g, n, params, carry, i + 1 < run_end)
        else:
            y = labels[i]
            if y == params.ignore_index or y < 0 or y >= n:
                if y != params.ignore_index and block_bad[0] < 0:
                    block_bad[0] = i
                value = 0.0
                fx_run_skip_row(carry)
                if g != NULL:
                    memset(g, 0, n * sizeof(floating))
            elif op == ROWS_NLL_INDEX:
                value = R.nll_index(x + i * n, g, n, y, params)
            else:
                value = R.xent_index(x + i * n, g, n, y, params, carry, i + 1 < run_end)
        if per_row != NULL:
            per_row[i] = <floating>value
        total += value
    if block_loss != NULL:
        block_loss[0] = total


# Rows split across threads: a call with fewer rows than SPLIT_ROWS_BELOW, each
# of at least 2 * SPLIT_ELEMENTS classes, computes each row in chunks of
# SPLIT_ELEMENTS: whatever the thread count (the shape alone decides it), so
# that the results are the same bits on any number of threads.
cdef enum:
    SPLIT_ROWS_BELOW = 4
    SPLIT_ELEMENTS = 65536


cdef inline bint _splits_rows(const RowJob *job) noexcept nogil:
    """Whether job's rows go in chunks (_run_split_rows): few long rows of
    softmax cross-entropy against class indices, without options (the
    accuracy included: the chunks know no row's argmax)."""
    return (job.op == ROWS_XENT_INDEX and job.n_rows < SPLIT_ROWS_BELOW
            and job.n_classes >= 2 * SPLIT_ELEMENTS and fx_index_plain(&job.params)
            and job.params.correct == NULL)


cdef tuple _run_split_rows(str kernel, const RowJob *job, const floating *x, int n_threads):
    """_run_rows for few long rows (_splits_rows): each row in chunks of
    SPLIT_ELEMENTS, over all the threads. A pass writes each chunk's exps
    (of x minus the chunk's maximum) and finds their sum; the chunks' sums
    are combined in chunk order into the row's (the loss); a second pass
    scales each chunk by exp(chunk's max - row's max) * scale / row's sum,
    and the label's element gets -scale. Without a gradient to write, the
    first pass writes the exps into a scratch chunk per thread."""
    cdef Py_ssize_t n_rows = job.n_rows, n = job.n_classes, t, item, i, c, lo, hi, k
    cdef Py_ssize_t per_row = (n + SPLIT_ELEMENTS - 1) // SPLIT_ELEMENTS
    cdef Py_ssize_t n_items = n_rows * per_row
    n_threads = _threads(kernel, n_threads, n_items)
    cdef Py_ssize_t per_thread = (n_items + n_threads - 1) // n_threads
    cdef _BlockSums chunks = _BlockSums(2 * n_items)  # .loss: each chunk's max and sum
    cdef double *chunk_max = chunks.loss
    cdef double *chunk_sum = chunks.loss + n_items
    cdef _BlockSums rows = _BlockSums(n_rows)  # .loss: each row's x at its label
    cdef double *x_label = rows.loss
    cdef const fx_rows *R = _rows_of(x)
    cdef floating *out = <floating *>job.out
    cdef floating *per_row_loss = <floating *>job.per_row
    cdef const int64_t *labels = <const int64_t *>job.target
    cdef double scale = job.params.scale, total = 0.0, m, sum_exp, loss
    cdef int64_t y
    cdef Py_ssize_t first_bad = -1
    cdef floating factor
    # Without an output, the exps go to a scratch chunk per thread.
    cdef _Carries scratch = _Carries(n_threads, SPLIT_ELEMENTS * sizeof(floating)
                                     if out == NULL else 0)
    cdef floating *into
    cdef double started = fx_now() if n_threads > 1 else 0.0, cpu = 0.0, cpu_start
    for i in range(n_rows):  # read before the first pass writes (out may be x)
        y = labels[i]
        x_label[i] = <double>x[i * n + y] if 0 <= y < n else 0.0
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            cpu_start = fx_thread_cpu()
            for item in range(t * per_thread, min(n_items, (t + 1) * per_thread)):
                i = item // per_row
                lo = (item % per_row) * SPLIT_ELEMENTS
                hi = min(n, lo + SPLIT_ELEMENTS)
                into = out + i * n + lo if out != NULL else <floating *>scratch.scratch(t)
                chunk_sum[item] = R.exp_sum_part(x + i * n + lo, into, hi - lo, &chunk_max[item])
            cpu += fx_thread_cpu() - cpu_start
    for i in range(n_rows):  # the rows' losses, in order; the chunks' factors
        y = labels[i]
        if y == job.params.ignore_index or y < 0 or y >= n:
            if y != job.params.ignore_index and first_bad < 0:
                first_bad = i
            loss = 0.0
            for c in range(per_row):
                chunk_sum[i * per_row + c] = -1.0  # a zero gradient (factors are >= 0)
        else:
            m = chunk_max[i * per_row]
            for c in range(1, per_row):
                m = max(m, chunk_max[i * per_row + c])
            sum_exp = 0.0
            for c in range(per_row):
                sum_exp += chunk_sum[i * per_row + c] * exp(chunk_max[i * per_row + c] - m)
            loss = m + log(sum_exp) - x_label[i]
            for c in range(per_row):
                chunk_sum[i * per_row + c] = exp(chunk_max[i * per_row + c] - m) * scale / sum_exp
        if per_row_loss != NULL:
            per_row_loss[i] = <floating>loss
        total += loss
    if out != NULL:
        with nogil:
            for t in prange(n_threads, schedule="static", num_threads=n_threads):
                cpu_start = fx_thread_cpu()
                for item in range(t * per_thread, min(n_items, (t + 1) * per_thread)):
                    i = item // per_row
                    lo = (item % per_row) * SPLIT_ELEMENTS
                    hi = min(n, lo + SPLIT_ELEMENTS)
                    if chunk_sum[item] < 0:
                        memset(out + i * n + lo, 0, (hi - lo) * sizeof(floating))
                        continue
                    factor = <floating>chunk_sum[item]
                    for k in range(i * n + lo, i * n + hi):
                        out[k] = out[k] * factor
                cpu += fx_thread_cpu() - cpu_start
        for i in range(n_rows):
            y = labels[i]
            if y != job.params.ignore_index and 0 <= y < n:
                out[i * n + y] -= <floating>scale
    if n_threads > 1:
        fx_region_report(fx_now() - started, cpu, n_threads)
    return total, first_bad


# The load transform: rows stored as float16 or bfloat16, or soft-capped, go
# through a scratch of each thread's in the row type, LOAD_ELEMENTS elements
# at a time (whole rows, at least one): loaded there (widened, capped), run
# through the row functions there (the gradient in place), and the gradient
# stored back (times the cap's derivative, narrowed). The scratch stays in the
# core's cache, so the input is still read once and the output written once,
# at the half type's size: no copy of the whole input in the row type.
cdef enum:
    LOAD_ELEMENTS = 2048


cdef void _loaded_run(const RowJob *job, const fx_rows *R, floating *rows, void *slope,
                      fx_carry *carry, Py_ssize_t b_first, Py_ssize_t b_last,
                      Py_ssize_t per_block, Py_ssize_t chunk_rows, double *loss_p,
                      int64_t *bad_p, bint stream) noexcept nogil:
    """A thread's run of blocks [b_first, b_last) through the load transform:
    chunks of chunk_rows rows loaded into `rows` (and the cap's derivative
    into slope), computed there as a job of their own, and stored back
    (streamed where `stream`)."""
    cdef Py_ssize_t n = job.n_classes, b, start, stop, s, e
    cdef size_t item = 2 if job.stored != FX_STORED_SAME else sizeof(floating)
    cdef RowJob chunk = job[0]
    cdef double chunk_loss
    cdef int64_t chunk_bad
    chunk.x = rows
    chunk.out = rows if job.out != NULL else NULL
    chunk.stored, chunk.softcap = FX_STORED_SAME, 0.0
    fx_run_begin(carry, NULL, 0)
    for b in range(b_first, b_last):
        start = b * per_block
        stop = min(job.n_rows, start + per_block)
        s = start
        while s < stop:
            e = min(stop, s + chunk_rows)
            R.load_rows(<const char *>job.x + s * n * item, job.stored, rows, slope, (e - s) * n,
                        job.softcap)
            # the chunk's rows as the rows of a job of its own: the per-row
            # arrays start at its first row
            chunk.n_rows = e - s
            if job.op == ROWS_XENT_PROB:
                chunk.target = <const floating *>job.target + s * n
            elif job.target != NULL:
                chunk.target = <const int64_t *>job.target + s
            chunk.per_row = <floating *>job.per_row + s if job.per_row != NULL else NULL
            if job.params.sample_weight != NULL:
                chunk.params.sample_weight = job.params.sample_weight + s
            if job.params.lse != NULL:
                chunk.params.lse = <floating *>job.params.lse + s
            if job.params.correct != NULL:
                chunk.params.correct = job.params.correct + s
            chunk_loss, chunk_bad = 0.0, -1
            _block_rows(&chunk, R, rows, 0, e - s, e - s, carry,
                        &chunk_loss if loss_p != NULL else NULL,
                        &chunk_bad if bad_p != NULL else NULL)
            if loss_p != NULL:
                loss_p[b] += chunk_loss
                if chunk_bad >= 0 and bad_p[b] < 0:
                    bad_p[b] = s + chunk_bad
            if job.out != NULL:
                R.store_rows(rows, slope, <char *>job.out + s * n * item, job.stored, (e - s) * n,
                             stream)
            s = e
    R.run_end(carry, n)


cdef tuple _run_loaded_rows(str kernel, const RowJob *job, const floating *kind, int n_threads):
    """_run_rows through the load transform (see LOAD_ELEMENTS): job.x (and
    job.out) stored as job.stored, soft-capped by job.softcap; kind says the
    row type. The blocks of the losses are _run_rows': the same bits for any
    number of threads."""
    cdef Py_ssize_t n_rows = job.n_rows, n = job.n_classes, t
    cdef bint sums = _sums_losses(job.op)
    cdef Py_ssize_t chunk_rows = max(1, LOAD_ELEMENTS // max(n, 1))
    if n <= FX_SHORT_ROW:  # whole groups of 16 short rows, as _rows_per_block's
        chunk_rows -= chunk_rows % 16
    cdef Py_ssize_t per_block = _rows_per_block(n) if sums else chunk_rows
    cdef Py_ssize_t n_blocks = (n_rows + per_block - 1) // per_block
    n_threads = _threads(kernel, n_threads, n_blocks)
    cdef Py_ssize_t per_thread = (n_blocks + n_threads - 1) // n_threads
    cdef _BlockSums block_sums = _BlockSums(n_blocks if sums else 0)
    cdef double *loss_p = block_sums.loss if sums else NULL
    cdef int64_t *bad_p = block_sums.bad if sums else NULL
    cdef const fx_rows *R = _rows_of(kind)
    # each thread's scratch: two rows of chunk_bytes (_Carries' streaming
    # scratch, not used to stream here): the chunk, and the cap's derivative
    cdef size_t chunk_bytes = chunk_rows * n * sizeof(floating)
    cdef size_t half_scratch = fx_scratch_bytes(chunk_bytes) // 2
    cdef _Carries carries = _Carries(n_threads, chunk_bytes)
    cdef bint capped = job.softcap > 0
    # a large output streams out (see fx_streams), past the cache
    cdef size_t item = 2 if job.stored != FX_STORED_SAME else sizeof(floating)
    cdef bint stream = _stream_row_bytes(job.x, job.out, n_rows, n * item) != 0
    cdef double started = fx_now() if n_threads > 1 else 0.0, cpu = 0.0, cpu_start
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            cpu_start = fx_thread_cpu()
            _loaded_run(job, R, <floating *>carries.scratch(t),
                        <char *>carries.scratch(t) + half_scratch if capped else NULL,
                        carries.of(t), t * per_thread, min(n_blocks, (t + 1) * per_thread),
                        per_block, chunk_rows, loss_p, bad_p, stream)
            cpu += fx_thread_cpu() - cpu_start
    if n_threads > 1:
        fx_region_report(fx_now() - started, cpu, n_threads)
    if not sums:
        return 0.0, -1
    return block_sums.in_order(n_blocks)


cdef tuple _run_rows(str kernel, const RowJob *job, const floating *x, int n_threads):
    """Runs job over its rows, x (job.x, typed) on n_threads threads; returns
    (sum of the row losses, first row of a bad label or -1).

    Rows go in blocks whose size depends on the row length only, and the
    block sums are added in order: the same bits for any number of threads.
    Each thread takes one run of consecutive blocks, with an fx_carry (the
    row pipeline, _fx_pipeline.h) that hands the next row's maximum on and streams
    the output where that pays. Operations without a loss take blocks of one
    row: runs of rows split evenly."""
    if job.stored != FX_STORED_SAME or job.softcap > 0:
        return _run_loaded_rows(kernel, job, x, n_threads)
    if _splits_rows(job):
        return _run_split_rows(kernel, job, x, n_threads)
    cdef Py_ssize_t n_rows = job.n_rows, n = job.n_classes, t, b, b_first, b_last
    cdef bint sums = _sums_losses(job.op)
    cdef Py_ssize_t per_block = _rows_per_block(n) if sums else 1
    cdef Py_ssize_t n_blocks = (n_rows + per_block - 1) // per_block
    n_threads = _threads(kernel, n_threads, n_blocks)
    cdef Py_ssize_t per_thread = (n_blocks + n_threads - 1) // n_threads
    # malloc, not np.zeros / np.full: small inputs notice their microsecond
    cdef _BlockSums block_sums = _BlockSums(n_blocks if sums else 0)
    cdef double *loss_p = block_sums.loss if sums else NULL
    cdef int64_t *bad_p = block_sums.bad if sums else NULL
    cdef const fx_rows *R = _rows_of(x)
    cdef size_t stream_bytes = 0
    if _sweeps_rows(job):
        stream_bytes = _stream_row_bytes(x, job.out, n_rows, n * sizeof(floating))
    cdef _Carries carries = _Carries(n_threads, stream_bytes)
    cdef double started = fx_now() if n_threads > 1 else 0.0, cpu = 0.0, cpu_start
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            cpu_start = fx_thread_cpu()
            b_first = t * per_thread
            b_last = min(n_blocks, b_first + per_thread)
            carries.start(t)
            for b in range(b_first, b_last):
                _block_rows(job, R, x, b * per_block, min(n_rows, (b + 1) * per_block),
                            min(n_rows, b_last * per_block), carries.of(t),
                            loss_p + b if sums else NULL, bad_p + b if sums else NULL)
            R.run_end(carries.of(t), n)
            cpu += fx_thread_cpu() - cpu_start
    if n_threads > 1:
        fx_region_report(fx_now() - started, cpu, n_threads)
    if not sums:
        return 0.0, -1
    return block_sums.in_order(n_blocks)


cdef Py_ssize_t _index_denominator(const int64_t *labels, Py_ssize_t n_rows, Py_ssize_t n_classes,
                                   int64_t ignore_index, const floating *w,
                                   const double *sample_weight, double *denom) noexcept nogil:
    """The mean's denominator (the summed weights of the counted rows, class
    weight times sample weight) into *denom; returns the first row of a bad
    label, or -1."""
    cdef Py_ssize_t i, counted = 0
    cdef int64_t y
    cdef double total = 0.0, w_y
    if w == NULL and sample_weight == NULL:
        # Without weights the denominator is a count (the same double as a sum
        # of ones), and the pass has no branch: it vectorises, in the row
        # code's instruction set. A sum in *denom, a double in memory, cost
        # 1.25x the whole call at 65536 x 10.
        if not _rows_of(w).count_labels(labels, n_rows, n_classes, ignore_index, &counted):
            denom[0] = <double>counted
            return -1
    for i in range(n_rows):  # with weights, or to find the first bad label
        y = labels[i]
        if y == ignore_index:
            continue
        if y < 0 or y >= n_classes:
            return i
        w_y = w[y] if w != NULL else 1.0
        total += w_y * sample_weight[i] if sample_weight != NULL else w_y
    denom[0] = total
    return -1


cdef tuple _class_loss(problem, floating[::1] row_loss, int n_threads, const floating *kind):
    # x and its gradient in the row type, or float16/bfloat16 (x16, grad16)
    # that the load transform reads and writes
    cdef int stored = _stored(problem.x)
    cdef const floating[:, ::1] x = problem.x if stored == FX_STORED_SAME else None
    cdef const uint16_t[:, ::1] x16 = _halves(problem.x) if stored != FX_STORED_SAME else None
    cdef floating[:, ::1] grad = problem.result if stored == FX_STORED_SAME else None
    cdef uint16_t[:, ::1] grad16 = (problem.result.view(np.uint16)
                                    if stored != FX_STORED_SAME and problem.result is not None
                                    else None)
    cdef const floating[::1] weight = problem.weight
    cdef const int64_t[::1] labels
    cdef const floating[:, ::1] probs
    cdef const double[::1] sample_weight = problem.sample_weight
    cdef floating[::1] lse = problem.lse
    cdef unsigned char[::1] correct = problem.correct
    if problem.x is None or problem.target is None:
        raise ValueError("class_loss: the problem has no x or no target")
    cdef Py_ssize_t n_rows = problem.x.shape[0], n_classes = problem.x.shape[1], i, first_bad = -1
    cdef bint mean = problem.reduction == "mean"
    cdef double denom = 0.0, total
    cdef RowJob job
    if problem.is_index:
        labels = problem.target
        _check_length("class_loss", "target", labels.shape[0], n_rows, "a label per row of x")
    else:
        probs = problem.target
        _check_shape("class_loss", "target", probs.shape[0], probs.shape[1], n_rows, n_classes,
                     "the shape of x")
    if problem.result is not None:
        _check_shape("class_loss", "result", problem.result.shape[0], problem.result.shape[1],
                     n_rows, n_classes, "the shape of x")
    if weight is not None:
        _check_length("class_loss", "weight", weight.shape[0], n_classes, "a weight per class")
    if row_loss is not None:
        _check_length("class_loss", "row_loss", row_loss.shape[0], n_rows, "a loss per row of x")
    if sample_weight is not None:
        _check_length("class_loss", "sample_weight", sample_weight.shape[0], n_rows,
                      "a weight per row of x")
    if lse is not None:
        _check_length("class_loss", "lse", lse.shape[0], n_rows, "a value per row of x")
    if correct is not None:
        _check_length("class_loss", "correct", correct.shape[0], n_rows, "a flag per row of x")
    if n_threads < 1:
        _threads("class_loss", n_threads, 1)
    if n_rows == 0:
        return 0.0, 0.0, -1
    memset(&job, 0, sizeof(job))
    job.n_rows, job.n_classes = n_rows, n_classes
    job.x = &x[0, 0] if x is not None else <const void *>&x16[0, 0]
    job.out = (&grad[0, 0] if grad is not None else
               <void *>&grad16[0, 0] if grad16 is not None else NULL)
    job.stored = stored
    job.softcap = problem.softcap if problem.softcap is not None else 0.0
    job.per_row = &row_loss[0] if row_loss is not None else NULL
    job.params.weight_total = <double>n_classes
    if weight is not None:
        job.params.weight = &weight[0]
        job.params.weight_total = 0.0
        for i in range(n_classes):
            job.params.weight_total += weight[i]
    job.params.smoothing = problem.label_smoothing
    job.params.ignore_index = problem.ignore_index
    job.params.scale = 1.0
    job.params.z_loss = problem.z_loss
    job.params.sample_weight = &sample_weight[0] if sample_weight is not None else NULL
    job.params.lse = &lse[0] if lse is not None else NULL
    job.params.correct = &correct[0] if correct is not None else NULL
    if problem.is_index:
        job.target = &labels[0]
        job.op = ROWS_NLL_INDEX if problem.scores is Scores.LOG_PROBS else ROWS_XENT_INDEX
        if mean or job.out == job.x:
            # A pass over the targets alone (N reads against the main pass's N x C):
            # the mean's gradient needs the total weight of the counted rows before
            # the main pass, and a gradient written over the logits must not start
            # before every label is known to be good. Otherwise the main pass finds
            # bad labels on its way.
            with nogil:
                first_bad = _index_denominator(&labels[0], n_rows, n_classes,
                                               job.params.ignore_index,
                                               <const floating *>job.params.weight,
                                               job.params.sample_weight, &denom)
            if first_bad >= 0:
                return 0.0, 0.0, first_bad
            job.params.scale = 1.0 / denom if mean else 1.0
    else:
        job.target = &probs[0, 0]
        job.op = ROWS_XENT_PROB
        denom = <double>n_rows
        if sample_weight is not None:
            denom = 0.0
            for i in range(n_rows):
                denom += sample_weight[i]
        job.params.scale = 1.0 / denom if mean else 1.0
    total, first_bad = _run_rows("class_loss", &job, <const floating *>job.x, n_threads)
    return total, denom, first_bad


def class_loss(problem, *, row_loss, int n_threads):
    """The loss of a validated class problem (fastxent._validate.ClassProblem):
    softmax cross-entropy of its rows of logits, or the negative
    log-likelihood of rows of log-probabilities (problem.scores), against
    class indices or probabilities (problem.is_index).

    Returns (sum of row losses, mean denominator, first row whose label is
    out of range and not ignore_index, or -1). problem.result (may be
    problem.x itself) receives the gradient of the sum, or of the mean when
    problem.reduction is "mean"; row_loss (or None) the per-row losses.
    """
    if problem.x.itemsize <= 4:  # float16 and bfloat16 computed in float32
        return _class_loss[float](problem, row_loss, n_threads, NULL)
    return _class_loss[double](problem, row_loss, n_threads, NULL)


cdef _transform_rows(str kernel, rows, RowOp op, floating[::1] per_row, int n_threads,
                     const floating *kind):
    if rows.x is None:
        raise ValueError(f"{kernel}: rows.x is None")
    # as in _class_loss: float16/bfloat16 rows through the load transform
    cdef int stored = _stored(rows.x)
    cdef const floating[:, ::1] x = rows.x if stored == FX_STORED_SAME else None
    cdef const uint16_t[:, ::1] x16 = _halves(rows.x) if stored != FX_STORED_SAME else None
    result = rows.result if op != ROWS_LOGSUMEXP else None
    cdef floating[:, ::1] out = result if stored == FX_STORED_SAME else None
    cdef uint16_t[:, ::1] out16 = (result.view(np.uint16)
                                   if stored != FX_STORED_SAME and result is not None else None)
    cdef Py_ssize_t n_rows = rows.x.shape[0], n_classes = rows.x.shape[1]
    cdef RowJob job
    if op == ROWS_LOGSUMEXP:
        if per_row is None:
            raise ValueError(f"{kernel}: out is None")
        _check_length(kernel, "out", per_row.shape[0], n_rows, "a value per row of x")
    elif result is None:
        raise ValueError(f"{kernel}: rows.result is None")
    else:
        _check_shape(kernel, "result", result.shape[0], result.shape[1], n_rows, n_classes,
                     "the shape of x")
    if n_threads < 1:
        _threads(kernel, n_threads, 1)
    if n_rows == 0 or n_classes == 0:
        return
    memset(&job, 0, sizeof(job))
    job.op, job.n_rows, job.n_classes = op, n_rows, n_classes
    job.x = &x[0, 0] if x is not None else <const void *>&x16[0, 0]
    job.out = (&out[0, 0] if out is not None else
               <void *>&out16[0, 0] if out16 is not None else NULL)
    job.stored = stored
    job.per_row = &per_row[0] if per_row is not None else NULL
    _run_rows(kernel, &job, <const floating *>job.x, n_threads)


def softmax_rows(rows, *, transform, int n_threads):
    """softmax or log_softmax (transform, a fastxent._kinds.Transform) of each
    row of rows.x (fastxent._validate.Rows) into rows.result (may be rows.x)."""
    cdef RowOp op = ROWS_LOG_SOFTMAX if transform is Transform.LOG_SOFTMAX else ROWS_SOFTMAX
    if rows.x.itemsize <= 4:  # float16 and bfloat16 computed in float32
        _transform_rows[float]("softmax_rows", rows, op, None, n_threads, NULL)
    else:
        _transform_rows[double]("softmax_rows", rows, op, None, n_threads, NULL)


def logsumexp_rows(rows, *, out, int n_threads):
    """log(sum(exp(row))) of each row of rows.x (fastxent._validate.Rows) into out."""
    if rows.x.shape[1] == 0 and out is not None and len(out) == rows.x.shape[0]:
        out[...] = -np.inf  # the log of an empty sum
        return
    if rows.x.itemsize <= 4:  # float16 and bfloat16: out is float32
        _transform_rows[float]("logsumexp_rows", rows, ROWS_LOGSUMEXP, out, n_threads, NULL)
    else:
        _transform_rows[double]("logsumexp_rows", rows, ROWS_LOGSUMEXP, out, n_threads, NULL)


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


def entropy_rows(rows, *, q, out, int n_threads):
    """Row sums of entr(p), or of rel_entr(p, q) when q (like rows.x) is
    given, into out; p is rows.x (fastxent._validate.Rows)."""
    _entropy_rows(rows.x, q, out, n_threads)


def _entropy_rows(const floating[:, ::1] p not None, const floating[:, ::1] q,
                  floating[::1] out not None,
                  int n_threads):
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
        return _rows_of(x).bce_logits(x, t, w, pw, g, loss, n, scale)
    for k in range(n):
        p = x[k]
        if (p < 0 or p > 1) and first_bad[0] < 0:
            first_bad[0] = offset + k
        value = _bce_element(p, t[k], w[k], scale, g + k if g != NULL else NULL)
        if loss != NULL:
            loss[k] = <floating>value
        total += value
    return total


def binary_loss(problem, *, elem_loss, int n_threads):
    """Binary cross-entropy of a validated problem (fastxent._validate.
    BinaryProblem) elementwise: of problem.x, logits or probabilities
    (problem.input), against problem.target. Its weight and pos_weight
    (logits only) have one row, repeated for every row of x, or as many rows
    as x; None means 1. problem.grad (or None) receives the gradient of the
    sum, or of the mean; elem_loss (or None) the losses.
    Returns (sum of losses, number of elements, first flat index of a
    probability outside [0, 1] or -1)."""
    if _stored(problem.x) != FX_STORED_SAME:
        return _binary_loaded(problem, elem_loss, n_threads)
    return _binary_xent(problem.x, problem.target, problem.weight, problem.pos_weight,
                        problem.grad, problem.reduction == "mean", elem_loss,
                        problem.input is BinaryInput.LOGITS, n_threads)


cdef void _binary_loaded_run(const fx_rows *R, int stored, const uint16_t *x, const void *t,
                             int t_stored, const float *w, const float *pw, bint w_row,
                             bint pw_row, const float *ones, uint16_t *g, float *loss,
                             Py_ssize_t n, Py_ssize_t n_cols, Py_ssize_t b_first,
                             Py_ssize_t b_last, double scale, float *scratch,
                             double *block_loss) noexcept nogil:
    """A thread's blocks [b_first, b_last) of a binary loss of float16/bfloat16
    logits: each piece (as in _binary_xent) in chunks of LOAD_ELEMENTS, its
    logits (and targets stored as they are) widened into the scratch, the
    float32 span function run there, the gradient narrowed back."""
    cdef Py_ssize_t b, k, k1, piece, m
    cdef float *xs = scratch
    cdef float *ts = scratch + LOAD_ELEMENTS
    cdef float *gs = scratch + 2 * LOAD_ELEMENTS
    cdef const float *tp
    for b in range(b_first, b_last):
        block_loss[b] = 0.0
        k = b * BLOCK_ELEMENTS
        k1 = min(n, k + BLOCK_ELEMENTS)
        while k < k1:
            piece = k1 - k
            if w_row or pw_row:  # a row-vector weight: pieces within a row
                piece = min(piece, n_cols - k % n_cols)
            piece = min(piece, LOAD_ELEMENTS)
            R.load_rows(x + k, stored, xs, NULL, piece, 0.0)
            if t_stored != FX_STORED_SAME:
                R.load_rows(<const uint16_t *>t + k, t_stored, ts, NULL, piece, 0.0)
                tp = ts
            else:
                tp = <const float *>t + k
            block_loss[b] += R.bce_logits(
                xs, tp,
                ones if w == NULL else (w + k % n_cols if w_row else w + k),
                ones if pw == NULL else (pw + k % n_cols if pw_row else pw + k),
                gs if g != NULL else NULL, loss + k if loss != NULL else NULL, piece, scale)
            if g != NULL:
                R.store_rows(gs, NULL, g + k, stored, piece, False)
            k = k + piece


cdef tuple _binary_loaded(problem, float[:, ::1] elem_loss, int n_threads):
    """binary_loss of float16/bfloat16 logits (the load transform, as
    _run_loaded_rows): targets of the logits' dtype read as they are, others
    and the weights in float32; the losses (elem_loss) in float32. The blocks
    are _binary_xent's: the same sums for any thread count."""
    cdef int stored = _stored(problem.x), t_stored = _stored(problem.target)
    cdef const uint16_t[:, ::1] x = _halves(problem.x)
    cdef const uint16_t[:, ::1] t16 = _halves(problem.target) if t_stored else None
    cdef const float[:, ::1] t32 = problem.target if not t_stored else None
    cdef const float[:, ::1] weight = problem.weight
    cdef const float[:, ::1] pos_weight = problem.pos_weight
    cdef uint16_t[:, ::1] grad = (problem.grad.view(np.uint16) if problem.grad is not None
                                  else None)
    cdef Py_ssize_t n_rows = x.shape[0], n_cols = x.shape[1], t_idx
    cdef Py_ssize_t n = n_rows * n_cols
    if problem.input is not BinaryInput.LOGITS:
        raise ValueError("binary_loss: float16/bfloat16 input must be logits")
    _check_shape("binary_loss", "target", problem.target.shape[0], problem.target.shape[1],
                 n_rows, n_cols, "the shape of x")
    for name, arr in (("weight", problem.weight), ("pos_weight", problem.pos_weight)):
        if arr is not None:
            _check_shape("binary_loss", name, arr.shape[0], arr.shape[1],
                         n_rows if arr.shape[0] != 1 else 1, n_cols, "one row, or the shape of x")
    for name, arr in (("grad", problem.grad), ("elem_loss", elem_loss)):
        if arr is not None:
            _check_shape("binary_loss", name, arr.shape[0], arr.shape[1], n_rows, n_cols,
                         "the shape of x")
    cdef Py_ssize_t n_blocks = (n + BLOCK_ELEMENTS - 1) // BLOCK_ELEMENTS
    n_threads = _threads("binary_loss", n_threads, n_blocks)
    if n == 0:
        return 0.0, 0.0, -1
    cdef _BlockSums block_sums = _BlockSums(n_blocks)
    cdef double *block_loss = block_sums.loss
    cdef double scale = 1.0 / n if problem.reduction == "mean" else 1.0
    cdef double total = 0.0
    cdef const float *wp = &weight[0, 0] if weight is not None else NULL
    cdef const float *pwp = &pos_weight[0, 0] if pos_weight is not None else NULL
    cdef float[::1] ones = None
    if wp != NULL or pwp != NULL:  # where one weight is given, ones for the other
        ones = np.ones(min(n, BLOCK_ELEMENTS), np.float32)
    # each thread's scratch: logits, targets and gradient of a chunk
    cdef _Carries scratch = _Carries(n_threads, 2 * LOAD_ELEMENTS * sizeof(float))
    cdef Py_ssize_t t, per_thread = (n_blocks + n_threads - 1) // n_threads
    cdef double started = fx_now() if n_threads > 1 else 0.0, cpu = 0.0, cpu_start
    cdef const void *tp = (<const void *>&t16[0, 0] if t16 is not None
                           else <const void *>&t32[0, 0])
    cdef bint w_row = weight is not None and weight.shape[0] == 1 and n_rows > 1
    cdef bint pw_row = pos_weight is not None and pos_weight.shape[0] == 1 and n_rows > 1
    cdef const float *onesp = &ones[0] if ones is not None else NULL
    cdef uint16_t *gp = &grad[0, 0] if grad is not None else NULL
    cdef float *lp = &elem_loss[0, 0] if elem_loss is not None else NULL
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            cpu_start = fx_thread_cpu()
            _binary_loaded_run(fx_f32, stored, &x[0, 0], tp, t_stored, wp, pwp, w_row, pw_row,
                               onesp, gp, lp, n, n_cols, t * per_thread,
                               min(n_blocks, (t + 1) * per_thread), scale,
                               <float *>scratch.scratch(t), block_loss)
            cpu += fx_thread_cpu() - cpu_start
    if n_threads > 1:
        fx_region_report(fx_now() - started, cpu, n_threads)
    for t_idx in range(n_blocks):
        total += block_loss[t_idx]
    return total, <double>n, -1


def _binary_xent(const floating[:, ::1] x not None, const floating[:, ::1] target not None,
                 const floating[:, ::1] weight, const floating[:, ::1] pos_weight,
                 floating[:, ::1] grad, bint mean, floating[:, ::1] elem_loss,
                 bint from_logits, int n_threads):
    cdef Py_ssize_t n_rows = x.shape[0], n_cols = x.shape[1], b, k, k0, k1, piece
    cdef Py_ssize_t n = n_rows * n_cols
    _check_shape("binary_loss", "target", target.shape[0], target.shape[1], n_rows, n_cols,
                 "the shape of x")
    if weight is not None:
        _check_shape("binary_loss", "weight", weight.shape[0], weight.shape[1],
                     n_rows if weight.shape[0] != 1 else 1, n_cols,
                     "one row, or the shape of x")
    if pos_weight is not None:
        _check_shape("binary_loss", "pos_weight", pos_weight.shape[0], pos_weight.shape[1],
                     n_rows if pos_weight.shape[0] != 1 else 1, n_cols,
                     "one row, or the shape of x")
    if grad is not None:
        _check_shape("binary_loss", "grad", grad.shape[0], grad.shape[1], n_rows, n_cols,
                     "the shape of x")
    if elem_loss is not None:
        _check_shape("binary_loss", "elem_loss", elem_loss.shape[0], elem_loss.shape[1],
                     n_rows, n_cols, "the shape of x")
    # Fixed-size blocks of elements, whatever the shape: parallel for one long
    # row as for many short ones, and the same sums for any thread count.
    cdef Py_ssize_t n_blocks = (n + BLOCK_ELEMENTS - 1) // BLOCK_ELEMENTS
    n_threads = _threads("binary_loss", n_threads, n_blocks)
    if n == 0:
        return 0.0, 0.0, -1
    cdef _BlockSums block_sums = _BlockSums(n_blocks)
    cdef double *block_loss = block_sums.loss
    cdef int64_t *block_bad = block_sums.bad
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
    # One run of consecutive blocks per thread (as prange's static schedule
    # made them), timed for the contention check (fx_region_report).
    cdef Py_ssize_t t, per_thread = (n_blocks + n_threads - 1) // n_threads
    cdef double started = fx_now() if n_threads > 1 else 0.0, cpu = 0.0, cpu_start
    with nogil:
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            cpu_start = fx_thread_cpu()
            for b in range(t * per_thread, min(n_blocks, (t + 1) * per_thread)):
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
            cpu += fx_thread_cpu() - cpu_start
    if n_threads > 1:
        fx_region_report(fx_now() - started, cpu, n_threads)
    total, bad = block_sums.in_order(n_blocks)
    return total, <double>n, bad


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


def _tanh(const floating[::1] u not None):
    """Test-only: the kernels' tanh of each u, and its derivative (fx_tanh)."""
    dtype = np.float32 if floating is float else np.float64
    out, slope = np.empty(u.shape[0], dtype), np.empty(u.shape[0], dtype)
    cdef floating[::1] o = out, d = slope
    if u.shape[0]:
        _rows_of(&u[0]).test_tanh(&u[0], &o[0], &d[0], u.shape[0])
    return out, slope


def _convert(src, dtype):
    """Test-only: float16 or bfloat16 src widened to float32, or float32 src
    narrowed to dtype (float16 or bfloat16), by the kernels' conversions."""
    src = np.ascontiguousarray(src)
    out = np.empty(src.shape, np.float32 if src.dtype.itemsize == 2 else dtype)
    cdef int src_kind = _stored(src), dst_kind = _stored(out)
    cdef const unsigned char[::1] s = src.reshape(-1).view(np.uint8)
    cdef unsigned char[::1] o = out.reshape(-1).view(np.uint8)
    if src.size:
        fx_f32.test_convert(&s[0], src_kind, &o[0], dst_kind, src.size)
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


