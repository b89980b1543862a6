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

/* A thread's carry at the start of its run: streaming rows of row_bytes
 * through `scratch` (fx_scratch_bytes of them, line-aligned, the caller's:
 * memory that stays mapped from call to call, not fresh pages each time),
 * or no streaming where scratch is NULL. The run ends with the row
 * functions' carry_end. */
static void fx_carry_start(fx_carry *c, void *scratch, size_t row_bytes)
{
    memset(c, 0, sizeof *c);
    if (scratch && FX_CAN_STREAM) {
        c->scratch[0] = scratch;
        c->scratch[1] = (char *)scratch + fx_scratch_bytes(row_bytes) / 2;
    }
}

/* The output row for the row whose output belongs at g: the current scratch
 * row when streaming (and there is an output), else g itself. */
static inline void *fx_carry_out(const fx_carry *c, void *g)
{
    return c->scratch[0] && g ? c->scratch[c->cur] : g;
}

/* ---- the row functions of one element type, as a table ----
 * c, next_in_run: see fx_carry. */

#define FX_SHORT_ROW 16 /* rows up to this long take the tiled path */
#define FX_TILE_ROWS 64

#define FX_ROWS_TABLE(T, NAME)                                                          \
    typedef struct {                                                                    \
        double (*xent_index)(const T *x, T *g, ptrdiff_t n, ptrdiff_t y, const T *w,    \
                             double w_total, double eps, double scale, fx_carry *c,     \
                             int next_in_run);                                          \
        double (*xent_index_short)(const T *x, T *g, ptrdiff_t rows, ptrdiff_t n,       \
                                   const int64_t *y, int64_t ignore_index, const T *w,  \
                                   double w_total, double eps, double scale,            \
                                   T *row_loss, ptrdiff_t *first_bad);                  \
        double (*xent_prob)(const T *x, const T *t, T *g, ptrdiff_t n, const T *w,      \
                            double eps, double scale, fx_carry *c, int next_in_run);    \
        void (*softmax)(const T *x, T *out, ptrdiff_t n, int log_space, fx_carry *c,    \
                        int next_in_run);                                               \
        double (*logsumexp)(const T *x, ptrdiff_t n, fx_carry *c, int next_in_run);     \
        double (*bce_logits)(const T *x, const T *t, const T *w, const T *pw, T *g,     \
                             T *loss, ptrdiff_t n, double scale);                       \
        void (*carry_end)(fx_carry *c, ptrdiff_t n);                                    \
        /* test-only: the elementwise functions over arrays */                          \
        void (*test_exp)(const T *d, T *out, ptrdiff_t n);                              \
        void (*test_log_sum)(const double *v, double *out, ptrdiff_t n);                \
        void (*test_log1p)(const T *u, T *out, ptrdiff_t n);                            \
    } NAME;
FX_ROWS_TABLE(float, fx_rows_f32)
FX_ROWS_TABLE(double, fx_rows_f64)

/* ---- the instances: baseline always, AVX2 and AVX-512 on x86-64 GCC/clang ---- */

#define FX_T float
#define FX_DOUBLE 0
#define FX_TABLE fx_rows_f32
#define FX_ATTR
#define FX_SUFFIX f32_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE
#undef FX_TABLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_TABLE fx_rows_f64
#define FX_ATTR
#define FX_SUFFIX f64_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE
#undef FX_TABLE

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
#define FX_TABLE fx_rows_f32
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
#undef FX_TABLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_TABLE fx_rows_f64
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
#undef FX_TABLE
#endif

/* ---- run-time choice ---- */

/* The row functions in use; fx_select_isa sets them. */
static const fx_rows_f32 *fx_f32 = &fx_rows_f32_base;
static const fx_rows_f64 *fx_f64 = &fx_rows_f64_base;

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
