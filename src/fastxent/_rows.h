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

/* ---- the instances: baseline always, AVX2 and AVX-512 on x86-64 GCC/clang ---- */

#define FX_ATTR
#define FX_T float
#define FX_DOUBLE 0
#define FX_SUFFIX f32_base
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#define FX_T double
#define FX_DOUBLE 1
#define FX_SUFFIX f64_base
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#undef FX_ATTR

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(FASTXENT_NO_DISPATCH)
#define FX_X86_DISPATCH 1

#define FX_ATTR __attribute__((target("avx2,fma")))
#define FX_T float
#define FX_DOUBLE 0
#define FX_SUFFIX f32_avx2
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#define FX_T double
#define FX_DOUBLE 1
#define FX_SUFFIX f64_avx2
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#undef FX_ATTR

#define FX_ATTR __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#define FX_T float
#define FX_DOUBLE 0
#define FX_SUFFIX f32_avx512
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#define FX_T double
#define FX_DOUBLE 1
#define FX_SUFFIX f64_avx512
#include "_rows_impl.h"
#undef FX_T
#undef FX_DOUBLE
#undef FX_SUFFIX
#undef FX_ATTR
#endif

/* ---- run-time choice ---- */

typedef double (*fx_index_row_f32_t)(const float *, float *, ptrdiff_t, ptrdiff_t,
                                     const float *, double, double, double);
typedef double (*fx_index_row_f64_t)(const double *, double *, ptrdiff_t, ptrdiff_t,
                                     const double *, double, double, double);
typedef double (*fx_prob_row_f32_t)(const float *, const float *, float *, ptrdiff_t,
                                    const float *, double, double);
typedef double (*fx_prob_row_f64_t)(const double *, const double *, double *, ptrdiff_t,
                                    const double *, double, double);

static fx_index_row_f32_t fx_index_row_f32 = fx_xent_index_row_f32_base;
static fx_index_row_f64_t fx_index_row_f64 = fx_xent_index_row_f64_base;
static fx_prob_row_f32_t fx_prob_row_f32 = fx_xent_prob_row_f32_base;
static fx_prob_row_f64_t fx_prob_row_f64 = fx_xent_prob_row_f64_base;

/* Points the row functions at the best instance this CPU runs, or at the
 * baseline when `level` caps it: 0 baseline, 1 AVX2, 2 (or more) AVX-512.
 * Returns the name of the instance chosen. */
static const char *fx_select_isa(int level)
{
#ifdef FX_X86_DISPATCH
    __builtin_cpu_init();
    if (level >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
        fx_index_row_f32 = fx_xent_index_row_f32_avx512;
        fx_index_row_f64 = fx_xent_index_row_f64_avx512;
        fx_prob_row_f32 = fx_xent_prob_row_f32_avx512;
        fx_prob_row_f64 = fx_xent_prob_row_f64_avx512;
        return "avx512";
    }
    if (level >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        fx_index_row_f32 = fx_xent_index_row_f32_avx2;
        fx_index_row_f64 = fx_xent_index_row_f64_avx2;
        fx_prob_row_f32 = fx_xent_prob_row_f32_avx2;
        fx_prob_row_f64 = fx_xent_prob_row_f64_avx2;
        return "avx2";
    }
#else
    (void)level;
#endif
    fx_index_row_f32 = fx_xent_index_row_f32_base;
    fx_index_row_f64 = fx_xent_index_row_f64_base;
    fx_prob_row_f32 = fx_xent_prob_row_f32_base;
    fx_prob_row_f64 = fx_xent_prob_row_f64_base;
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
