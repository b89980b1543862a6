/* The load transform of the row functions: rows stored in another element
 * type than the instance's (float16, bfloat16: widened to float) or
 * soft-capped, loaded into a thread's scratch, where the row functions run on
 * them; and the gradient stored back (times the cap's chain factor, narrowed
 * to the stored type, rounding to nearest even). Included by _rows_impl.h once
 * per instance (no include guard); FX_ISA_AVX512 marks the AVX-512 instances,
 * which convert float16 with the F16C instructions of AVX-512F. */

#if !FX_DOUBLE
/* float16 -> float, exactly, branch-free (vectorises): the exponent rebiased,
 * inf and NaN (payload kept) moved to float's top exponent, subnormals as
 * their integer mantissa times 2^-24. */
FX_ATTR static inline float FX_FN(fx_f16_to_f32)(uint16_t h)
{
    const uint32_t em = (uint32_t)(h & 0x7fff) << 13;
    uint32_t bits = em + ((uint32_t)(127 - 15) << 23);
    bits += em >= 0x0f800000u ? (uint32_t)(128 - 16) << 23 : 0;
    float normal, r;
    memcpy(&normal, &bits, sizeof normal);
    r = em < 0x00800000u ? (float)(h & 0x3ff) * 5.9604644775390625e-8f : normal;
    memcpy(&bits, &r, sizeof bits);
    bits |= (uint32_t)(h & 0x8000) << 16;
    memcpy(&r, &bits, sizeof r);
    return r;
}

/* float -> float16, rounding to nearest even, branch-free (F. Giesen's
 * float_to_half_fast3_rtne): overflow to inf, NaN to a quiet NaN, results
 * below float16's normal range rounded by an addition that aligns them. */
FX_ATTR static inline uint16_t FX_FN(fx_f32_to_f16)(float f)
{
    uint32_t u, sub_bits;
    memcpy(&u, &f, sizeof u);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    float a, sub;
    memcpy(&a, &u, sizeof a);
    sub = a + 0.5f; /* 0.5f: 2^(-14 - 10 + 23) aligns float16's subnormal lsb to float's */
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    const uint32_t subnormal = sub_bits - 0x3f000000u;
    const uint32_t normal = (u + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((u >> 13) & 1)) >> 13;
    const uint32_t huge = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    const uint32_t o = u >= ((uint32_t)(127 + 16) << 23) ? huge
                       : u < ((uint32_t)113 << 23)       ? subnormal
                                                         : normal;
    return (uint16_t)(o | (sign >> 16));
}

/* bfloat16 is float's top 16 bits. */
FX_ATTR static inline float FX_FN(fx_bf16_to_f32)(uint16_t h)
{
    const uint32_t bits = (uint32_t)h << 16;
    float r;
    memcpy(&r, &bits, sizeof r);
    return r;
}

/* float -> bfloat16, rounding to nearest even; NaN stays NaN (made quiet). */
FX_ATTR static inline uint16_t FX_FN(fx_f32_to_bf16)(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
}

FX_ATTR static void FX_FN(fx_widen)(const uint16_t *src, int kind, float *dst, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    if (kind == FX_STORED_BF16) {
        FX_SIMD()
        for (i = 0; i < n; i++) dst[i] = FX_FN(fx_bf16_to_f32)(src[i]);
        return;
    }
#ifdef FX_ISA_AVX512
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
    FX_SIMD()
    for (ptrdiff_t j = i; j < n; j++) dst[j] = FX_FN(fx_f16_to_f32)(src[j]);
}

FX_ATTR static void FX_FN(fx_narrow)(const float *src, int kind, uint16_t *dst, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    if (kind == FX_STORED_BF16) {
        FX_SIMD()
        for (i = 0; i < n; i++) dst[i] = FX_FN(fx_f32_to_bf16)(src[i]);
        return;
    }
#ifdef FX_ISA_AVX512
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    FX_SIMD()
    for (ptrdiff_t j = i; j < n; j++) dst[j] = FX_FN(fx_f32_to_f16)(src[j]);
}
#endif /* !FX_DOUBLE */

/* n elements stored as `kind` (FX_STORED_*; only FX_STORED_SAME for double)
 * at src into dst, of the instance's type: widened, and where softcap > 0
 * soft-capped, dst = softcap tanh(x / softcap), with the derivative of the
 * cap, 1 - tanh^2, into slope (the chain rule's factor, for fx_store_rows). */
FX_ATTR static void FX_FN(fx_load_rows)(const void *src, int kind, void *dst_v, void *slope_v,
                                        ptrdiff_t n, double softcap)
{
    FX_T *dst = (FX_T *)dst_v, *slope = (FX_T *)slope_v;
    const FX_T *from = (const FX_T *)src;
#if !FX_DOUBLE
    if (kind != FX_STORED_SAME) {
        FX_FN(fx_widen)((const uint16_t *)src, kind, dst, n);
        from = dst;
    }
#else
    (void)kind;
#endif
    if (!(softcap > 0)) {
        if (from != dst) memcpy(dst, from, (size_t)n * sizeof(FX_T));
        return;
    }
    const FX_T cap = (FX_T)softcap;
    FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) {
        FX_T d;
        const FX_T t = FX_FN(fx_tanh)(from[i] / cap, &d);
        dst[i] = cap * t;
        slope[i] = d;
    }
}

/* The gradient g[0:n] (the scratch, overwritten) stored at dst as `kind`:
 * times slope first where slope is not NULL. */
FX_ATTR static void FX_FN(fx_store_plain)(FX_T *g, const FX_T *slope, void *dst, int kind,
                                          ptrdiff_t n)
{
    FX_T *to = kind == FX_STORED_SAME ? (FX_T *)dst : g;
    if (slope) {
        FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) to[i] = g[i] * slope[i];
    } else if (to != g) {
        memcpy(to, g, (size_t)n * sizeof(FX_T));
    }
#if !FX_DOUBLE
    if (kind != FX_STORED_SAME) FX_FN(fx_narrow)(g, kind, (uint16_t *)dst, n);
#endif
}

/* fx_store_plain, with streaming stores where `stream` (an output too large
 * to stay in the cache, see fx_streams): in parts through a small buffer,
 * the parts cut at the destination's cache lines (as fx_stream_part). */
#define FX_STORE_PART 1024 /* bytes of the row type */
FX_ATTR static void FX_FN(fx_store_rows)(void *g_v, const void *slope_v, void *dst, int kind,
                                         ptrdiff_t n, int stream)
{
    FX_T *g = (FX_T *)g_v;
    const FX_T *slope = (const FX_T *)slope_v;
    if (!stream) {
        FX_FN(fx_store_plain)(g, slope, dst, kind, n);
        return;
    }
    FX_ALIGN64 FX_T buffer[FX_STORE_PART / sizeof(FX_T)];
    FX_ALIGN64 uint16_t narrowed[FX_STORE_PART / sizeof(FX_T)];
    const size_t item = kind == FX_STORED_SAME ? sizeof(FX_T) : 2;
    const ptrdiff_t part = FX_STORE_PART / sizeof(FX_T); /* whole lines of output */
    /* the first part up to the first line boundary of dst: the others start at one */
    ptrdiff_t m = (ptrdiff_t)(((64 - (uintptr_t)dst % 64) % 64) / item);
    for (ptrdiff_t i0 = 0; i0 < n; i0 += m, m = part) {
        if (m == 0) m = part;
        if (m > n - i0) m = n - i0;
        const void *from = g + i0; /* the row type without a slope: as it is */
        if (kind != FX_STORED_SAME) {
            FX_FN(fx_store_plain)(g + i0, slope ? slope + i0 : NULL, narrowed, kind, m);
            from = narrowed;
        } else if (slope) {
            FX_FN(fx_store_plain)(g + i0, slope + i0, buffer, kind, m);
            from = buffer;
        }
        FX_STREAM_COPY((char *)dst + (size_t)i0 * item, from, (size_t)m * item);
    }
}
#undef FX_STORE_PART

/* Test-only: the conversions of this instance over arrays. */
FX_ATTR static void FX_FN(fx_test_convert)(const void *src, int from, void *dst, int to,
                                           ptrdiff_t n)
{
#if !FX_DOUBLE
    if (from != FX_STORED_SAME)
        FX_FN(fx_widen)((const uint16_t *)src, from, (float *)dst, n);
    else if (to != FX_STORED_SAME)
        FX_FN(fx_narrow)((const float *)src, to, (uint16_t *)dst, n);
#else
    (void)src, (void)from, (void)dst, (void)to, (void)n;
#endif
}

FX_ATTR static void FX_FN(fx_test_tanh)(const void *u_v, void *out_v, void *slope_v, ptrdiff_t n)
{
    const FX_T *u = (const FX_T *)u_v;
    FX_T *out = (FX_T *)out_v, *slope = (FX_T *)slope_v;
    FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) {
        FX_T d;
        out[i] = FX_FN(fx_tanh)(u[i], &d);
        slope[i] = d;
    }
}
