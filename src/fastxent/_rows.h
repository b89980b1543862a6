/* Per-row sweeps of the fastxent kernels, compiled once per instruction set
 * and chosen at run time (fx_select_isa), plus the facts show_config reports.
 * The Cython kernels (_kernels.pyx) loop over rows and call these. */
#ifndef FASTXENT_ROWS_H
#define FASTXENT_ROWS_H

#if !defined(_GNU_SOURCE) && defined(__linux__)
#define _GNU_SOURCE /* Dl_info, dladdr (Python.h defines it too) */
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#if !defined(_WIN32)
#include <dlfcn.h>
#endif
#endif

/* `omp simd` loops (vectorised without -ffast-math). MSVC's OpenMP 2.0 has no
 * simd directive and rejects it: there the loops are left to its
 * auto-vectoriser. */
#if defined(_MSC_VER) && !defined(__clang__)
#define FX_SIMD(clauses)
#else
#define FX_PRAGMA(text) _Pragma(#text)
#define FX_SIMD(clauses) FX_PRAGMA(omp simd clauses)
#endif

/* Keeps a function out of line (see fx_stream_part); aligns a variable to
 * a cache line. */
#if defined(__GNUC__) || defined(__clang__)
#define FX_NOINLINE __attribute__((noinline))
#define FX_ALIGN64 __attribute__((aligned(64)))
#elif defined(_MSC_VER)
#define FX_NOINLINE __declspec(noinline)
#define FX_ALIGN64 __declspec(align(64))
#else
#define FX_NOINLINE
#define FX_ALIGN64
#endif

/* A hint to fetch the cache line at p for reading; no-op where the compiler
 * has no portable builtin. */
#if defined(__GNUC__) || defined(__clang__)
#define FX_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define FX_PREFETCH(p) ((void)0)
#endif

/* ---- streaming stores, and what a thread hands from row to row ---- */

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(FASTXENT_NO_STREAM)
#include <immintrin.h>
#define FX_CAN_STREAM 1
/* fx_stream_copy_ISA(dst, src, n): copies n bytes, the aligned body with
 * streaming (non-temporal) stores of one vector each: the lines go to memory
 * without first being read into the cache, nor evicting what is there. */
#define FX_DEFINE_STREAM_COPY(ISA, ATTR, VEC, LOAD, STORE)                              \
    ATTR static void fx_stream_copy_##ISA(void *dst, const void *src, size_t n)         \
    {                                                                                   \
        char *d = (char *)dst;                                                          \
        const char *s = (const char *)src;                                              \
        const size_t head = (sizeof(VEC) - (uintptr_t)d % sizeof(VEC)) % sizeof(VEC);   \
        if (n < head + sizeof(VEC)) {                                                   \
            memcpy(d, s, n);                                                            \
            return;                                                                     \
        }                                                                               \
        if (head) memcpy(d, s, head); /* (no calls for nothing: parts are aligned) */   \
        size_t i = head;                                                                \
        for (; i + sizeof(VEC) <= n; i += sizeof(VEC))                                  \
            STORE((VEC *)(d + i), LOAD((const VEC *)(s + i)));                          \
        if (i < n) memcpy(d + i, s + i, n - i);                                         \
    }
FX_DEFINE_STREAM_COPY(base, , __m128i, _mm_loadu_si128, _mm_stream_si128) /* SSE2: all x86-64 */
#define FX_STREAM_FENCE() _mm_sfence()
#else
#define FX_CAN_STREAM 0
static void fx_stream_copy_base(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
#define FX_STREAM_FENCE() ((void)0)
#endif

/* The streaming copy of the instruction set in use (fx_select_isa). */
static void (*fx_stream_copy)(void *dst, const void *src, size_t n) = fx_stream_copy_base;

/* Whether a pass that writes `total` bytes of output, in rows of row_bytes,
 * should stream them. The rows are then computed into a thread's scratch row
 * and streamed out while the next row is computed (see fx_exp_sum): no reads
 * of the output lines before they are written (a third of the traffic of a
 * fused pass), at the price of leaving none of the output in the cache. So
 * only outputs too large to stay in the cache anyway (below 64 MiB, normal
 * stores won on a 2-core Xeon with a large shared L3: 32 MB lost 10%, 64 MB
 * gained 5-15%, 256 MB 20%), and rows whose two scratch copies stay in the
 * core's own cache beside the row being read. */
#define FX_STREAM_MAX_ROW_BYTES ((size_t)256 << 10)
static size_t fx_stream_min_bytes = (size_t)64 << 20; /* the tests lower it */
static int fx_streams(size_t total, size_t row_bytes)
{
    return FX_CAN_STREAM && total >= fx_stream_min_bytes && row_bytes <= FX_STREAM_MAX_ROW_BYTES;
}

/* The last sweep over a row's output g: g = g * a - (c1 * t + c0) * w, where
 * a missing t or w counts as 1, then g[y] -= cy where y >= 0. Where the
 * output streams, it is applied part by part just before each part streams
 * (fx_stream_part), so that this sweep, too, overlaps the memory traffic.
 * active = 0: nothing to do (the output is final as computed). */
typedef struct {
    double a, c1, c0, cy;
    const void *t, *w;
    ptrdiff_t y;
    int active;
} fx_finish;

/* What a thread hands from one row of its run to the next (the row
 * functions take it as `c`, with next_in_run: whether the next row, at
 * x + n, is this thread's too):
 *  - the next row's maximum, which a row's exp sweep finds while it computes
 *    (see fx_exp_sum); has_max says it is there;
 *  - with streaming (scratch not NULL), the previous row's output, waiting in
 *    scratch[!cur] to be finished and streamed to `pending` during this row's
 *    exp sweep, while this row is computed into scratch[cur]; `finished` of
 *    its elements are. */
typedef struct {
    double max;
    int has_max;
    void *scratch[2];
    int cur;
    void *pending;
    fx_finish finish;
    ptrdiff_t finished;
} fx_carry;

/* The scratch memory a thread needs to stream rows of row_bytes: two rows,
 * each on whole cache lines. */
static size_t fx_scratch_bytes(size_t row_bytes)
{
    return 2 * ((row_bytes + 63) / 64 * 64);
}

/* ---- the row pipeline: the rules of a thread's run of rows ----
 * A thread computes a run of consecutive rows with one fx_carry:
 *   fx_run_begin(c, scratch, row_bytes)   before the run's first row;
 *   then, for each row in order, exactly one of
 *     - a row function of the table (fx_rows), told by next_in_run whether
 *       the next row, at x + n, is this thread's too; or
 *     - fx_run_skip_row(c), for a row no row function computes (an ignored
 *       label): the carried maximum was the skipped row's, not the next's;
 *   the table's run_end(c, n)             after the run's last row: the last
 *       pending row is finished and streamed, the streamed stores fenced.
 * Inside a row function, the row's maximum comes from fx_max_of (carried or
 * swept) and fx_exp_sum is called exactly once: it streams the previous row
 * out and carries the next row's maximum on. Row functions that sweep no
 * exps (nll_index) and the short-row tiles (xent_index_short, whose rows
 * never stream) leave the carry alone, and are only used in runs of their own.
 *
 * fx_run_begin: streaming rows of row_bytes through `scratch`
 * (fx_scratch_bytes of them, line-aligned, the caller's: memory that stays
 * mapped from call to call, not fresh pages each time), or no streaming where
 * scratch is NULL. */
static void fx_run_begin(fx_carry *c, void *scratch, size_t row_bytes)
{
    memset(c, 0, sizeof *c);
    if (scratch && FX_CAN_STREAM) {
        c->scratch[0] = scratch;
        c->scratch[1] = (char *)scratch + fx_scratch_bytes(row_bytes) / 2;
    }
}

/* A row of the run that no row function computes: the maximum carried on to
 * it is not the next row's. (A row pending to stream stays pending: the next
 * row's exp sweep, or run_end, streams it.) */
static inline void fx_run_skip_row(fx_carry *c)
{
    c->has_max = 0;
}

/* The output row for the row whose output belongs at g: the current scratch
 * row when streaming (and there is an output), else g itself. */
static inline void *fx_carry_out(const fx_carry *c, void *g)
{
    return c->scratch[0] && g ? c->scratch[c->cur] : g;
}

/* ---- what a class loss's rows share: one record, passed by pointer ----
 * The row functions of the class losses take the options of the whole call
 * in this record, so that a new option is a new field (filled in one place of
 * _kernels.pyx, read in the finishing functions of _rows_impl.h), not a new
 * argument through every signature, table and extern. */
typedef struct {
    const void *weight;    /* one per class, of the row type; NULL: all 1 */
    double weight_total;   /* the sum of the weights (the number of classes without) */
    double smoothing;      /* label smoothing, in [0, 1] */
    double scale;          /* the gradient's factor: 1, or 1 / the mean's denominator */
    int64_t ignore_index;  /* the label of rows that count for nothing */
} fx_class_params;

/* ---- the row functions, as a table ----
 * One table type for both element types: x, g, t and the like point to
 * elements of the instance's type (float or double). c, next_in_run: see
 * fx_carry. */

#define FX_SHORT_ROW 16 /* rows up to this long take the tiled path */
#define FX_TILE_ROWS 64

typedef struct {
    /* softmax cross-entropy of one row whose target is the class y */
    double (*xent_index)(const void *x, void *g, ptrdiff_t n, ptrdiff_t y,
                         const fx_class_params *p, fx_carry *c, int next_in_run);
    /* the same for `rows` rows of at most FX_SHORT_ROW classes, tiled */
    double (*xent_index_short)(const void *x, void *g, ptrdiff_t rows, ptrdiff_t n,
                               const int64_t *y, const fx_class_params *p, void *row_loss,
                               ptrdiff_t *first_bad);
    /* softmax cross-entropy of one row against the class probabilities t */
    double (*xent_prob)(const void *x, const void *t, void *g, ptrdiff_t n,
                        const fx_class_params *p, fx_carry *c, int next_in_run);
    /* the negative log-likelihood of one row of log-probabilities */
    double (*nll_index)(const void *x, void *g, ptrdiff_t n, ptrdiff_t y,
                        const fx_class_params *p);
    void (*softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c, int next_in_run);
    void (*log_softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c, int next_in_run);
    double (*logsumexp)(const void *x, ptrdiff_t n, fx_carry *c, int next_in_run);
    double (*bce_logits)(const void *x, const void *t, const void *w, const void *pw, void *g,
                         void *loss, ptrdiff_t n, double scale);
    /* the end of a thread's run: see fx_run_begin */
    void (*run_end)(fx_carry *c, ptrdiff_t n);
} fx_rows;

/* ---- the instances: baseline always, AVX2 and AVX-512 on x86-64 GCC/clang ---- */

#define FX_T float
#define FX_DOUBLE 0
#define FX_ATTR
#define FX_SUFFIX f32_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_ATTR
#define FX_SUFFIX f64_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTXENT_NO_DISPATCH)
#define FX_X86_DISPATCH 1
#define FX_AVX2 __attribute__((target("avx2,fma")))
#define FX_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#if FX_CAN_STREAM
FX_DEFINE_STREAM_COPY(avx2, FX_AVX2, __m256i, _mm256_loadu_si256, _mm256_stream_si256)
FX_DEFINE_STREAM_COPY(avx512, FX_AVX512, __m512i, _mm512_loadu_si512, _mm512_stream_si512)
#else
#define fx_stream_copy_avx2 fx_stream_copy_base
#define fx_stream_copy_avx512 fx_stream_copy_base
#endif

#define FX_T float
#define FX_DOUBLE 0
#define FX_ATTR FX_AVX2
#define FX_SUFFIX f32_avx2
#define FX_STREAM_COPY fx_stream_copy_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#define FX_ATTR FX_AVX512
#define FX_SUFFIX f32_avx512
#define FX_STREAM_COPY fx_stream_copy_avx512
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_ATTR FX_AVX2
#define FX_SUFFIX f64_avx2
#define FX_STREAM_COPY fx_stream_copy_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#define FX_ATTR FX_AVX512
#define FX_SUFFIX f64_avx512
#define FX_STREAM_COPY fx_stream_copy_avx512
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE
#endif

/* ---- run-time choice ---- */

/* The row functions in use; fx_select_isa sets them. */
static const fx_rows *fx_f32 = &fx_rows_f32_base;
static const fx_rows *fx_f64 = &fx_rows_f64_base;

/* Points the row functions at the best instance this CPU runs, or at the
 * baseline when `level` caps it: 0 baseline, 1 AVX2, 2 (or more) AVX-512.
 * Returns the name of the instance chosen. */
static const char *fx_select_isa(int level)
{
#ifdef FX_X86_DISPATCH
    __builtin_cpu_init();
    if (level >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
        fx_f32 = &fx_rows_f32_avx512;
        fx_f64 = &fx_rows_f64_avx512;
        fx_stream_copy = fx_stream_copy_avx512;
        return "avx512";
    }
    if (level >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fx_f32 = &fx_rows_f32_avx2;
        fx_f64 = &fx_rows_f64_avx2;
        fx_stream_copy = fx_stream_copy_avx2;
        return "avx2";
    }
#else
    (void)level;
#endif
    fx_f32 = &fx_rows_f32_base;
    fx_f64 = &fx_rows_f64_base;
    fx_stream_copy = fx_stream_copy_base;
#if defined(__x86_64__) || defined(_M_X64)
    return "baseline (x86-64 SSE2)";
#else
    return "baseline";
#endif
}

/* ---- what show_config reports ---- */

static int fx_openmp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The OpenMP version the extension was compiled for (yyyymm), 0 without OpenMP. */
static int fx_openmp_version(void)
{
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

/* The file of the OpenMP runtime this extension calls, "" where unknown. */
static const char *fx_openmp_library(void)
{
#if defined(_OPENMP) && !defined(_WIN32)
    Dl_info info;
    if (dladdr((void *)&omp_get_max_threads, &info) && info.dli_fname)
        return info.dli_fname;
#endif
    return "";
}

static const char *fx_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#elif defined(_MSC_VER)
#define FX_STR2(x) #x
#define FX_STR(x) FX_STR2(x)
    return "msvc " FX_STR(_MSC_FULL_VER);
#else
    return "unknown";
#endif
}

#endif /* FASTXENT_ROWS_H */
