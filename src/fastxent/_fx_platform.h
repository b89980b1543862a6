/* Platform facts of the fastxent kernels: headers, compiler spellings
 * (simd loops, alignment, prefetch), streaming stores where the CPU has them,
 * and what show_config reports. No arithmetic here. */
#ifndef FASTXENT_FX_PLATFORM_H
#define FASTXENT_FX_PLATFORM_H

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
#define FX_PRAGMA(text)  _Pragma(#text)
#define FX_SIMD(clauses) FX_PRAGMA(omp simd clauses)
#endif

/* Keeps a function out of line (see fx_stream_part); aligns a variable to
 * a cache line. */
#if defined(__GNUC__) || defined(__clang__)
#define FX_NOINLINE __attribute__((noinline))
#define FX_ALIGN64  __attribute__((aligned(64)))
#elif defined(_MSC_VER)
#define FX_NOINLINE __declspec(noinline)
#define FX_ALIGN64  __declspec(align(64))
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

#if (defined(__x86_64__) || defined(_M_X64))
#include <immintrin.h>
#define FX_CAN_STREAM 1
/* fx_stream_copy_ISA(dst, src, n): copies n bytes, the aligned body with
 * streaming (non-temporal) stores of one vector each: the lines go to memory
 * without first being read into the cache, nor evicting what is there. */
#define FX_DEFINE_STREAM_COPY(ISA, ATTR, VEC, LOAD, STORE)                                         \
    ATTR static void fx_stream_copy_##ISA(void *dst, const void *src, size_t n)                    \
    {                                                                                              \
        char *d = (char *)dst;                                                                     \
        const char *s = (const char *)src;                                                         \
        const size_t head = (sizeof(VEC) - (uintptr_t)d % sizeof(VEC)) % sizeof(VEC);              \
        if (n < head + sizeof(VEC)) {                                                              \
            memcpy(d, s, n);                                                                       \
            return;                                                                                \
        }                                                                                          \
        if (head) memcpy(d, s, head); /* (no calls for nothing: parts are aligned) */              \
        size_t i = head;                                                                           \
        for (; i + sizeof(VEC) <= n; i += sizeof(VEC))                                             \
            STORE((VEC *)(d + i), LOAD((const VEC *)(s + i)));                                     \
        if (i < n) memcpy(d + i, s + i, n - i);                                                    \
    }
FX_DEFINE_STREAM_COPY(base, , __m128i, _mm_loadu_si128, _mm_stream_si128) /* SSE2: all x86-64 */
#define FX_STREAM_FENCE() _mm_sfence()
#else
#define FX_CAN_STREAM     0
static void fx_stream_copy_base(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}
#define FX_STREAM_FENCE() ((void)0)
#endif

/* ---- fresh memory ---- */

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* Whether the memory page holding p is resident: 0 for memory of a fresh
 * mapping that nothing has written yet (a newly allocated large array), whose
 * first writes fault its pages in, zeroed by the system; 1 where the system
 * cannot tell. */
static int fx_page_resident(const void *p)
{
#if defined(__linux__)
    const long page = sysconf(_SC_PAGESIZE);
    unsigned char resident = 1;
    if (page > 0 && mincore((void *)((uintptr_t)p / (uintptr_t)page * (uintptr_t)page),
                            (size_t)page, &resident) == 0)
        return resident & 1;
#else
    (void)p;
#endif
    return 1;
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
    if (dladdr((void *)&omp_get_max_threads, &info) && info.dli_fname) return info.dli_fname;
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
#define FX_STR(x)  FX_STR2(x)
    return "msvc " FX_STR(_MSC_FULL_VER);
#else
    return "unknown";
#endif
}

#endif /* FASTXENT_FX_PLATFORM_H */
