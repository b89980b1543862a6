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

/* A hint to fetch the cache line at p (for writing when `write`); no-op
 * where the compiler has no portable builtin. */
#if defined(__GNUC__) || defined(__clang__)
#define FX_PREFETCH(p, write) __builtin_prefetch((p), (write), 3)
#else
#define FX_PREFETCH(p, write) ((void)0)
#endif

/* ---- the row functions of one element type, as a table ----
 * row_max, next_max: a batch's maximum handed from row to row (see
 * fx_xent_index_row in _rows_impl.h); NULL where there is none. */

#define FX_SHORT_ROW 16 /* rows up to this long take the tiled path */
#define FX_TILE_ROWS 64

#define FX_ROWS_TABLE(T, NAME)                                                          \
    typedef struct {                                                                    \
        double (*xent_index)(const T *x, T *g, ptrdiff_t n, ptrdiff_t y, const T *w,    \
                             double w_total, double eps, double scale,                  \
                             const T *row_max, T *next_max);                            \
        double (*xent_index_short)(const T *x, T *g, ptrdiff_t rows, ptrdiff_t n,       \
                                   const int64_t *y, int64_t ignore_index, const T *w,  \
                                   double w_total, double eps, double scale,            \
                                   T *row_loss, ptrdiff_t *first_bad);                  \
        double (*xent_prob)(const T *x, const T *t, T *g, ptrdiff_t n, const T *w,      \
                            double eps, double scale, const T *row_max, T *next_max);   \
        void (*softmax)(const T *x, T *out, ptrdiff_t n, int log_space,                 \
                        const T *row_max, T *next_max);                                 \
        double (*logsumexp)(const T *x, ptrdiff_t n, const T *row_max, T *next_max);    \
        double (*bce_logits)(const T *x, const T *t, const T *w, const T *pw, T *g,     \
                             T *loss, ptrdiff_t n, double scale);                       \
    } NAME;
FX_ROWS_TABLE(float, fx_rows_f32)
FX_ROWS_TABLE(double, fx_rows_f64)

/* ---- the instances: baseline always, AVX2 and AVX-512 on x86-64 GCC/clang ---- */

#define FX_T float
#define FX_DOUBLE 0
#define FX_TABLE fx_rows_f32
#define FX_ATTR
#define FX_SUFFIX f32_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_T
#undef FX_DOUBLE
#undef FX_TABLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_TABLE fx_rows_f64
#define FX_ATTR
#define FX_SUFFIX f64_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_T
#undef FX_DOUBLE
#undef FX_TABLE

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTXENT_NO_DISPATCH)
#define FX_X86_DISPATCH 1
#define FX_AVX2 __attribute__((target("avx2,fma")))
#define FX_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))

#define FX_T float
#define FX_DOUBLE 0
#define FX_TABLE fx_rows_f32
#define FX_ATTR FX_AVX2
#define FX_SUFFIX f32_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#define FX_ATTR FX_AVX512
#define FX_SUFFIX f32_avx512
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_T
#undef FX_DOUBLE
#undef FX_TABLE

#define FX_T double
#define FX_DOUBLE 1
#define FX_TABLE fx_rows_f64
#define FX_ATTR FX_AVX2
#define FX_SUFFIX f64_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#define FX_ATTR FX_AVX512
#define FX_SUFFIX f64_avx512
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
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
        return "avx512";
    }
    if (level >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fx_f32 = &fx_rows_f32_avx2;
        fx_f64 = &fx_rows_f64_avx2;
        return "avx2";
    }
#else
    (void)level;
#endif
    fx_f32 = &fx_rows_f32_base;
    fx_f64 = &fx_rows_f64_base;
#if defined(__x86_64__) || defined(_M_X64)
    return "baseline (x86-64 SSE2)";
#else
    return "baseline";
#endif
}

/* ---- for the benchmark's memory floor ---- */

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h> /* SSE2, on every x86-64 */
#endif

/* Copies n bytes from src to dst with streaming (non-temporal) stores where
 * the CPU has them: the written lines go to memory without first being read
 * into the cache. (memcpy decides for itself whether to stream, by its own
 * threshold and the cache sizes it sees.) Elsewhere, memcpy. */
static void fx_stream_copy(void *dst, const void *src, size_t n)
{
#if defined(__x86_64__) || defined(_M_X64)
    char *d = (char *)dst;
    const char *s = (const char *)src;
    const size_t head = (16 - (uintptr_t)d % 16) % 16; /* to an aligned d */
    if (n < head + 16) {
        memcpy(d, s, n);
        return;
    }
    memcpy(d, s, head);
    size_t i = head;
    for (; i + 16 <= n; i += 16)
        _mm_stream_si128((__m128i *)(d + i), _mm_loadu_si128((const __m128i *)(s + i)));
    memcpy(d + i, s + i, n - i);
    _mm_sfence(); /* the streamed stores are ordered before whatever follows */
#else
    memcpy(dst, src, n);
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
