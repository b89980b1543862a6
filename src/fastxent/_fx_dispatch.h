/* The instances of the row functions (_fx_math.h and _rows_impl.h compiled
 * once per element type and instruction set: baseline always, AVX2 and
 * AVX-512 on x86-64 with GCC or clang) and the choice among them at run time
 * (fx_select_isa). */
#include "_fx_rows.h"
#ifndef FASTXENT_FX_DISPATCH_H
#define FASTXENT_FX_DISPATCH_H

/* ---- the instances: baseline always, AVX2 and AVX-512 on x86-64 GCC/clang ---- */

#define FX_T      float
#define FX_DOUBLE 0
#define FX_ATTR
#define FX_SUFFIX      f32_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#define FX_T      double
#define FX_DOUBLE 1
#define FX_ATTR
#define FX_SUFFIX      f64_base
#define FX_STREAM_COPY fx_stream_copy_base
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FX_X86_DISPATCH 1
#define FX_AVX2         __attribute__((target("avx2,fma")))
#define FX_AVX512                                                                                  \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#if FX_CAN_STREAM
FX_DEFINE_STREAM_COPY(avx2, FX_AVX2, __m256i, _mm256_loadu_si256, _mm256_stream_si256)
FX_DEFINE_STREAM_COPY(avx512, FX_AVX512, __m512i, _mm512_loadu_si512, _mm512_stream_si512)
#else
#define fx_stream_copy_avx2   fx_stream_copy_base
#define fx_stream_copy_avx512 fx_stream_copy_base
#endif

#define FX_T           float
#define FX_DOUBLE      0
#define FX_ATTR        FX_AVX2
#define FX_SUFFIX      f32_avx2
#define FX_STREAM_COPY fx_stream_copy_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#define FX_ATTR        FX_AVX512
#define FX_SUFFIX      f32_avx512
#define FX_STREAM_COPY fx_stream_copy_avx512
#define FX_SHORT16     1 /* the short rows of _fx_short16.h */
#include "_rows_impl.h"
#undef FX_SHORT16
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#undef FX_T
#undef FX_DOUBLE

#define FX_T           double
#define FX_DOUBLE      1
#define FX_ATTR        FX_AVX2
#define FX_SUFFIX      f64_avx2
#define FX_STREAM_COPY fx_stream_copy_avx2
#include "_rows_impl.h"
#undef FX_ATTR
#undef FX_SUFFIX
#undef FX_STREAM_COPY
#define FX_ATTR        FX_AVX512
#define FX_SUFFIX      f64_avx512
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

#endif /* FASTXENT_FX_DISPATCH_H */
