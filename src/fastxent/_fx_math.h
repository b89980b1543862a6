/* The elementary functions of the row functions, branch-free so that the
 * loops calling them vectorise: exp, log of the sums of exps, log1p on [0, 1],
 * -|v|. Included by _rows_impl.h once per (type, instruction set) instance,
 * with its FX_T, FX_DOUBLE, FX_ATTR and FX_FN (no include guard). */

/* exp(d) for d <= 0 (a value minus its row's maximum), branch-free so that
 * it vectorises: reduction to r = d - k ln2 in [-ln2/2, ln2/2], a polynomial
 * in r, times 2^k made from k's bits. Results below the smallest normal
 * number are flushed to 0 (the cut-off `lowest` is the least d whose exp is
 * normal: every normal result is computed, and no subnormal is, whose
 * arithmetic is slow on many CPUs), so exp(-inf) is exactly 0; NaN gives NaN, whatever
 * its payload (a multiply, not an addition to p's bits, applies 2^k).
 * The loops that call this are bound by its latency (this is the code of
 * every exp sweep): hence the polynomial in Estrin's form, not Horner's. */
FX_ATTR static inline FX_T FX_FN(fx_exp)(FX_T d)
{
#if FX_DOUBLE
    typedef uint64_t bits_t;
    const double lowest = -708.3964185322641; /* exp(lowest) >= DBL_MIN > exp(its predecessor) */
    /* 1.5 * 2^52 + 1023: adding it rounds to an integer, k + 1023 in the low bits */
    const double shifter = 6755399441055744.0 + 1023.0;
    const int mantissa_bits = 52;
    double kf = d * 1.4426950408889634 + shifter;
    bits_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= shifter;
    /* two steps: k * 6.93...e-1 is exact (|k| < 2^11), the rest is small */
    double r = d - kf * 6.93145751953125e-1;
    r = r - kf * 1.42860682030941723212e-6;
    /* Chebyshev fit of (e^r - 1 - r) / r^2 of degree 9: relative error of
     * e^r below 2e-17. */
    const double r2 = r * r, r4 = r2 * r2;
    const double q01 = 0.16666666666666669 * r + 0.5000000000000001;
    const double q23 = 0.008333333333330011 * r + 0.04166666666662348;
    const double q45 = 0.00019841269863303223 * r + 0.0013888888917538296;
    const double q67 = 2.75572680728901e-06 * r + 2.4801520792572694e-05;
    const double q89 = 2.5100569275813683e-08 * r + 2.762032742826824e-07;
    const double q03 = q23 * r2 + q01, q47 = q67 * r2 + q45;
    const double q = (q89 * r4 + q47) * r4 + q03;
#else
    typedef uint32_t bits_t;
    const float lowest = -87.33654f;            /* exp(lowest) >= FLT_MIN > exp(its predecessor) */
    const float shifter = 12582912.0f + 127.0f; /* 1.5 * 2^23 + 127 */
    const int mantissa_bits = 23;
    float kf = d * 1.44269504088896341f + shifter;
    bits_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= shifter;
    float r = d - kf * 0.693359375f; /* exact: ln2 to 9 bits, |k| < 2^8 */
    r = r - kf * -2.12194440e-4f;
    /* Chebyshev fit of (e^r - 1 - r) / r^2 of degree 4: relative error of
     * e^r below 1e-8. */
    const float r2 = r * r;
    const float q01 = 0.16666576305560638f * r + 0.5f;
    const float q23 = 0.008363292753030603f * r + 0.041666553762567636f;
    const float q = (0.0013926325618133463f * r2 + q23) * r2 + q01;
#endif
    const FX_T p = q * r2 + (r + 1); /* e^r in [0.7, 1.5) */
    /* k >= -126 (-1022) from `lowest` up: the biased k fits the exponent field.
     * (The shifter's own bits shift out.) */
    const bits_t two_k_bits = kbits << mantissa_bits;
    FX_T two_k;
    memcpy(&two_k, &two_k_bits, sizeof two_k);
    return d < lowest ? 0 : p * two_k; /* NaN: p is NaN */
}

/* log(v) for the sums of exps (v >= 1, or NaN), branch-free so that a tile's
 * worth vectorises: v = 2^e * m with m in [sqrt(1/2), sqrt(2)), and
 * log(m) = 2 atanh(z), z = (m - 1) / (m + 1), by its series to z^23. */
FX_ATTR static inline double FX_FN(fx_log_sum)(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    /* The exponent field as a double, exactly: 2^52 + field, minus 2^52. */
    uint64_t field_bits = UINT64_C(0x4330000000000000) | (bits >> 52);
    double e;
    memcpy(&e, &field_bits, sizeof e);
    e -= 4503599627370496.0 + 1023.0;
    uint64_t mbits = (bits & UINT64_C(0x000fffffffffffff)) | UINT64_C(0x3ff0000000000000);
    double m;
    memcpy(&m, &mbits, sizeof m);
    const int above = m > 1.4142135623730951;
    m = above ? m * 0.5 : m;
    e = above ? e + 1.0 : e;
    const double z = (m - 1.0) / (m + 1.0), z2 = z * z;
    double p = 1.0 / 23.0;
    p = p * z2 + 1.0 / 21.0;
    p = p * z2 + 1.0 / 19.0;
    p = p * z2 + 1.0 / 17.0;
    p = p * z2 + 1.0 / 15.0;
    p = p * z2 + 1.0 / 13.0;
    p = p * z2 + 1.0 / 11.0;
    p = p * z2 + 1.0 / 9.0;
    p = p * z2 + 1.0 / 7.0;
    p = p * z2 + 1.0 / 5.0;
    p = p * z2 + 1.0 / 3.0;
    /* ln 2 in two parts: e * hi is exact. */
    const double result =
        e * 6.93145751953125e-1 + (2.0 * z + (2.0 * z * z2 * p + e * 1.42860682030941723212e-6));
    return v == v ? result : v;
}

#if !FX_DOUBLE
/* log1p(u) for u in [0, 1], branch-free: u times a Chebyshev fit of
 * log1p(u) / u of degree 9 (Estrin's form), relative error about 1e-7. */
FX_ATTR static inline float FX_FN(fx_log1p_unit)(float u)
{
    const float u2 = u * u, u4 = u2 * u2;
    const float c01 = -0.49999892648063277f * u + 0.999999994656292f;
    const float c23 = -0.24951616262872076f * u + 0.3332971049891775f;
    const float c45 = -0.15269667074363288f * u + 0.19663274257204805f;
    const float c67 = -0.05637361283010733f * u + 0.10543623795419527f;
    const float c89 = -0.00317605701843196f * u + 0.019542527261014103f;
    const float c03 = c23 * u2 + c01, c47 = c67 * u2 + c45;
    return u * ((c89 * u4 + c47) * u4 + c03);
}
#endif

/* -|v|, by the sign bit: one operation (NaN stays NaN). */
FX_ATTR static inline FX_T FX_FN(fx_neg_abs)(FX_T v)
{
#if FX_DOUBLE
    uint64_t bits;
    const uint64_t sign = UINT64_C(1) << 63;
#else
    uint32_t bits;
    const uint32_t sign = UINT32_C(1) << 31;
#endif
    memcpy(&bits, &v, sizeof bits);
    bits |= sign;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* tanh(u), and its derivative 1 - tanh(u)^2 into *slope (the soft cap's chain
 * rule), branch-free so that the loops calling it vectorise. Near 0
 * (|u| <= 0.625), u + u^3 P(u^2), P a least-squares fit (degree 5 for
 * float, 10 for double: within an ulp of the correctly rounded tanh); beyond,
 * from e = exp(-2|u|): tanh = 1 - 2e / (1 + e) and 1 - tanh^2 = 4e / (1 + e)^2,
 * which keeps its relative accuracy where tanh itself rounds to +-1 (as
 * 1 - tanh^2 would not). +-inf gives +-1 and slope 0; NaN gives NaN. */
FX_ATTR static inline FX_T FX_FN(fx_tanh)(FX_T u, FX_T *slope)
{
    const FX_T s = u * u;
#if FX_DOUBLE
    const double s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
    const double p01 = 0.13333333333326852 * s - 0.3333333333333332;
    const double p23 = 0.02186948826586936 * s - 0.05396825396155842;
    const double p45 = 0.0035920598156011876 * s - 0.008863229918927299;
    const double p67 = 0.0005874547463612622 * s - 0.001455314159225995;
    const double p89 = 7.9645129009901e-05 * s - 0.00023081406852181892;
    const double p =
        ((p89 - 1.7268164417323396e-05 * s2) * s8) + ((p67 * s2 + p45) * s4) + (p23 * s2 + p01);
#else
    const float s2 = s * s;
    const float p01 = 0.13333304226398468f * s - 0.3333333432674408f;
    const float p23 = 0.021769961342215538f * s - 0.05395940691232681f;
    const float p45 = 0.0022958412300795317f * s - 0.008346980437636375f;
    const float p = (p45 * s2 + p23) * s2 + p01;
#endif
    const FX_T near = u + u * s * p;
    const FX_T e = FX_FN(fx_exp)(2 * FX_FN(fx_neg_abs)(u));
    const FX_T inv = 1 / (1 + e);
    const FX_T far_abs = 1 - 2 * e * inv;
    const int is_near = s <= (FX_T)0.390625; /* 0.625^2; NaN is not near */
    *slope = is_near ? 1 - near * near : 4 * e * inv * inv;
    return is_near ? near : (u < 0 ? -far_abs : far_abs);
}
