/* One row of softmax cross-entropy, for one element type and one instruction
 * set. _rows.h includes this file once per (type, ISA) pair with:
 *   FX_T       float or double
 *   FX_DOUBLE  1 for double, 0 for float
 *   FX_SUFFIX  the name suffix of this instance, e.g. f32_avx2
 *   FX_ATTR    function attributes (the target ISA), possibly empty
 *   FX_TABLE   the table type it fills (fx_rows_f32 or fx_rows_f64)
 *   FX_STREAM_COPY  the streaming copy of that ISA (fx_stream_copy_ISA)
 *
 * Every loop is a plain elementwise sweep or a reduction marked
 * `omp simd`, so the compiler vectorises it for the ISA of this instance
 * without -ffast-math. Reductions accumulate in double.
 */

#define FX_CAT2(a, b) a##_##b
#define FX_CAT(a, b) FX_CAT2(a, b)
#define FX_FN(name) FX_CAT(name, FX_SUFFIX)

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
    const float lowest = -87.33654f; /* exp(lowest) >= FLT_MIN > exp(its predecessor) */
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

/* The row's maximum (of its numbers: a NaN reaches the results through
 * fx_exp). */
FX_ATTR static FX_T FX_FN(fx_row_max)(const FX_T *x, ptrdiff_t n)
{
    FX_T m = -INFINITY;
FX_SIMD(reduction(max : m))
    for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* The maximum of the row x[0:n]: the carried one when the previous row's
 * exp sweep found it, else a sweep. */
FX_ATTR static inline FX_T FX_FN(fx_max_of)(const FX_T *x, ptrdiff_t n, const fx_carry *c)
{
    return c->has_max ? (FX_T)c->max : FX_FN(fx_row_max)(x, n);
}

/* o_i = g_i * a - (c1 * t_i + c0) * w_i, where a missing t or w counts as 1
 * and c1 is unused without t: the gradient's scaling sweep. o may be g. */
FX_ATTR static void FX_FN(fx_scale_shift)(FX_T *o, const FX_T *g, const FX_T *t, const FX_T *w,
                                          ptrdiff_t n, double a, double c1, double c0)
{
    const FX_T fa = (FX_T)a, f1 = (FX_T)c1, f0 = (FX_T)c0;
    if (t && w) {
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] * fa - (f1 * t[i] + f0) * w[i];
    } else if (t) {
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] * fa - (f1 * t[i] + f0);
    } else if (w && c0 != 0.0) {
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] * fa - f0 * w[i];
    } else if (c0 != 0.0) {
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] * fa - f0;
    } else {
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] * fa;
    }
}

/* f (see fx_finish) applied to the elements [lo, hi) of the row g, into
 * o[0 : hi - lo]; o may be g + lo. */
FX_ATTR static inline void FX_FN(fx_finish_range)(FX_T *o, const FX_T *g, const fx_finish *f,
                                           ptrdiff_t lo, ptrdiff_t hi)
{
    if (!f->active) {
        if (o != g + lo) memcpy(o, g + lo, (size_t)(hi - lo) * sizeof(FX_T));
        return;
    }
    const FX_T *t = (const FX_T *)f->t, *w = (const FX_T *)f->w;
    FX_FN(fx_scale_shift)(o, g + lo, t ? t + lo : NULL, w ? w + lo : NULL, hi - lo, f->a, f->c1,
                          f->c0);
    if (lo <= f->y && f->y < hi) o[f->y - lo] -= (FX_T)f->cy;
}

/* A row computed into out = fx_carry_out(c, g) is finished by f: at once when
 * out is g, else later, when streamed: out is handed on to the next row's exp
 * sweep (or to carry_end). */
FX_ATTR static void FX_FN(fx_hand_on)(fx_carry *c, void *g, FX_T *out, ptrdiff_t n,
                                      const fx_finish *f)
{
    if (out == g) {
        FX_FN(fx_finish_range)(out, out, f, 0, n);
        return;
    }
    c->finish = *f;
    c->finished = 0;
    c->pending = g;
    c->cur ^= 1;
}

/* Finishes and streams the pending row on from where the last part ended
 * (c->finished) up to its element upto, of a row of n: the parts are cut at
 * cache-line boundaries of the destination, so that each line is streamed
 * whole, by one part (only the row's first and last lines may be partly
 * another row's, and are stored normally). The finished values go through a
 * small buffer in the nearest cache, not back into the scratch row (writing
 * them there cost 15% more at 2048 x 32768). FX_STREAM_COPY is this
 * instruction set's copy: called directly (not through fx_stream_copy) and
 * kept out of line, so that the compiler still vectorises the loops of
 * fx_exp_sum around the call. */
#define FX_STREAM_CHUNK 1024 /* bytes, a multiple of the line: beyond one part of fx_exp_sum */
FX_ATTR FX_NOINLINE static void FX_FN(fx_stream_part)(fx_carry *c, ptrdiff_t upto, ptrdiff_t n)
{
    FX_ALIGN64 FX_T buffer[FX_STREAM_CHUNK / sizeof(FX_T)];
    const FX_T *src = (const FX_T *)c->scratch[c->cur ^ 1];
    const uintptr_t d = (uintptr_t)c->pending, end = d + (size_t)n * sizeof(FX_T);
    uintptr_t lo = d + (size_t)c->finished * sizeof(FX_T);
    uintptr_t hi = upto < n ? (d + (size_t)upto * sizeof(FX_T) + 63) & ~(uintptr_t)63 : end;
    if (hi > end) hi = end;
    while (lo < hi) {
        /* chunks end at line boundaries too (lo is at one, or at the row's start) */
        uintptr_t to = (lo + FX_STREAM_CHUNK) & ~(uintptr_t)63;
        if (to > hi) to = hi;
        const ptrdiff_t from = (ptrdiff_t)((lo - d) / sizeof(FX_T));
        const ptrdiff_t until = (ptrdiff_t)((to - d) / sizeof(FX_T));
        FX_FN(fx_finish_range)(buffer, src, &c->finish, from, until);
        FX_STREAM_COPY((void *)lo, buffer, to - lo);
        c->finished = until;
        lo = to;
    }
}

/* sum of exp(x - m); also stores each term in g when g is not NULL.
 * g may be x itself: each element is read before it is written.
 * Blocks of FX_SUM_BLOCK (the last one shorter) go as two interleaved halves,
 * two independent chains of fx_exp in flight; each block is summed in FX_T (for float, an error of
 * a few units in the last place at most) and the blocks in double.
 * The loop also does, block by block, the memory work of the rows around
 * this one, so that memory and arithmetic overlap (this row is in cache: the
 * max sweep, or the previous row's exp sweep, has just read it):
 *  - when next_in_run, the next row (n elements from x + n) streams in: its
 *    maximum is found and carried in c, its lines prefetched
 *    FX_PREFETCH_AHEAD bytes ahead of the block that reads them, within that
 *    row (prefetching past an array's end is not free: page walks);
 *  - the previous row's output, when c holds one pending, streams out. */
#define FX_SUM_BLOCK 128
#define FX_PREFETCH_AHEAD 2048
/* When `below` is not NULL (and g is), *below gets the sum of the terms of
 * the elements below m alone, in the same sweep: what log1p needs where m
 * dominates the row (see fx_softmax_row). */
FX_ATTR static inline double FX_FN(fx_exp_sums)(const FX_T *x, FX_T *g, ptrdiff_t n, FX_T m,
                                               fx_carry *c, int next_in_run, double *below)
{
    const size_t row_bytes = (size_t)n * sizeof(FX_T);
    double s = 0.0, s_below = 0.0;
    FX_T nm = -INFINITY;
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FX_SUM_BLOCK) {
        const ptrdiff_t len = n - i0 < FX_SUM_BLOCK ? n - i0 : FX_SUM_BLOCK;
        const ptrdiff_t half = len / 2;
        const FX_T *xb = x + i0;
        if (c->pending) FX_FN(fx_stream_part)(c, i0 + len, n);
        if (next_in_run) {
            const FX_T *nb = xb + n;
            const size_t at = (size_t)i0 * sizeof(FX_T);
            const size_t to = at + FX_PREFETCH_AHEAD + (size_t)len * sizeof(FX_T);
            for (size_t b = i0 == 0 ? at : at + FX_PREFETCH_AHEAD; b < to && b < row_bytes; b += 64)
                FX_PREFETCH((const char *)(x + n) + b);
FX_SIMD(reduction(max : nm))
            for (ptrdiff_t j = 0; j < len; j++) nm = nb[j] > nm ? nb[j] : nm;
        }
        FX_T block = 0;
        if (g) {
            FX_T *gb = g + i0;
FX_SIMD(reduction(+ : block))
            for (ptrdiff_t j = 0; j < half; j++) {
                const FX_T e = FX_FN(fx_exp)(xb[j] - m), f = FX_FN(fx_exp)(xb[half + j] - m);
                gb[j] = e;
                gb[half + j] = f;
                block += e + f;
            }
            if (len % 2) block += gb[len - 1] = FX_FN(fx_exp)(xb[len - 1] - m);
        } else if (below) {
            FX_T under = 0;
FX_SIMD(reduction(+ : block, under))
            for (ptrdiff_t j = 0; j < half; j++) {
                const FX_T e = FX_FN(fx_exp)(xb[j] - m), f = FX_FN(fx_exp)(xb[half + j] - m);
                block += e + f;
                under += (xb[j] < m ? e : 0) + (xb[half + j] < m ? f : 0);
            }
            if (len % 2) {
                const FX_T e = FX_FN(fx_exp)(xb[len - 1] - m);
                block += e;
                under += xb[len - 1] < m ? e : 0;
            }
            s_below += (double)under;
        } else {
FX_SIMD(reduction(+ : block))
            for (ptrdiff_t j = 0; j < half; j++)
                block += FX_FN(fx_exp)(xb[j] - m) + FX_FN(fx_exp)(xb[half + j] - m);
            if (len % 2) block += FX_FN(fx_exp)(xb[len - 1] - m);
        }
        s += (double)block;
    }
    c->pending = NULL; /* streamed, whole (n > 0: the caller has a row) */
    c->max = (double)nm;
    c->has_max = next_in_run;
    if (below) *below = s_below;
    return s;
}

FX_ATTR static double FX_FN(fx_exp_sum)(const FX_T *x, FX_T *g, ptrdiff_t n, FX_T m,
                                        fx_carry *c, int next_in_run)
{
    return FX_FN(fx_exp_sums)(x, g, n, m, c, next_in_run, NULL);
}

/* sum of w_i * (m - x_i), w_i = 1 when w is NULL: the label-smoothing term,
 * written as gaps to the maximum so that it cannot overflow needlessly. */
FX_ATTR static double FX_FN(fx_weighted_gap)(const FX_T *x, const FX_T *w, ptrdiff_t n, FX_T m)
{
    double acc = 0.0;
    if (w) {
FX_SIMD(reduction(+ : acc))
        for (ptrdiff_t i = 0; i < n; i++)
            acc += (double)w[i] * ((double)m - (double)x[i]);
    } else {
FX_SIMD(reduction(+ : acc))
        for (ptrdiff_t i = 0; i < n; i++)
            acc += (double)m - (double)x[i];
    }
    return acc;
}

/* For a probability target t smoothed to t' = keep * t + spread:
 * *mass = sum w_i t'_i and *gap = sum w_i t'_i (m - x_i), where a class of
 * no mass adds nothing even at x_i = -inf (a masked vocabulary). */
FX_ATTR static void FX_FN(fx_target_sums)(const FX_T *x, const FX_T *t, const FX_T *w, ptrdiff_t n,
                                          FX_T m, double keep, double spread,
                                          double *mass_out, double *gap_out)
{
    double mass = 0.0, gap = 0.0;
    if (w) {
FX_SIMD(reduction(+ : mass, gap))
        for (ptrdiff_t i = 0; i < n; i++) {
            double wt = (double)w[i] * (keep * (double)t[i] + spread);
            mass += wt;
            gap += wt == 0.0 ? 0.0 : wt * ((double)m - (double)x[i]); /* masked classes */
        }
    } else {
FX_SIMD(reduction(+ : mass, gap))
        for (ptrdiff_t i = 0; i < n; i++) {
            double wt = keep * (double)t[i] + spread;
            mass += wt;
            gap += wt == 0.0 ? 0.0 : wt * ((double)m - (double)x[i]); /* masked classes */
        }
    }
    *mass_out = mass;
    *gap_out = gap;
}

/* The loss of a row whose target is the class y, from the row's parts: its
 * maximum m, x_y, the smoothing gap sum w_c (m - x_c), and s = sum exp(x - m):
 *   (1 - eps) w_y (lse - x_y) + eps/n * sum_c w_c (lse - x_c),
 * as torch.nn.functional.cross_entropy with reduction="none"; and into f
 * the sweep that scales the row's exps into scale * d loss / d x. w may be
 * NULL (all weights 1); w_total is the sum of the weights. */
FX_ATTR static inline double FX_FN(fx_index_finish)(fx_finish *f, ptrdiff_t n, ptrdiff_t y,
                                                    const FX_T *w, double w_total, double eps,
                                                    double scale, FX_T m, double x_y, double gap,
                                                    double s, double log_s)
{
    const double w_y = w ? (double)w[y] : 1.0;
    const double spread = eps / (double)n;
    const double loss = (1.0 - eps) * w_y * (log_s + ((double)m - x_y)) +
                        (eps != 0.0 ? spread * (w_total * log_s + gap) : 0.0);
    f->a = scale * ((1.0 - eps) * w_y + (eps != 0.0 ? spread * w_total : 0.0)) / s;
    f->c1 = 0.0;
    f->c0 = scale * spread;
    f->t = NULL;
    f->w = w;
    f->y = y;
    f->cy = scale * (1.0 - eps) * w_y;
    f->active = 1;
    return loss;
}

/* Loss (and gradient into g, which may be x) of one row x[0:n] whose target
 * is the class y, 0 <= y < n: a max sweep, an exp sweep, a scaling sweep.
 * c and next_in_run: see fx_carry (_rows.h). */
FX_ATTR static double FX_FN(fx_xent_index_row)(const FX_T *x, FX_T *g, ptrdiff_t n, ptrdiff_t y,
                                               const FX_T *w, double w_total,
                                               double eps, double scale, fx_carry *c,
                                               int next_in_run)
{
    const double x_y = (double)x[y]; /* read before g (perhaps x) is written */
    FX_T *out = (FX_T *)fx_carry_out(c, g);
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    const double gap = eps != 0.0 ? FX_FN(fx_weighted_gap)(x, w, n, m) : 0.0;
    const double s = FX_FN(fx_exp_sum)(x, out, n, m, c, next_in_run);
    fx_finish f;
    const double loss =
        FX_FN(fx_index_finish)(&f, n, y, w, w_total, eps, scale, m, x_y, gap, s, log(s));
    if (out) FX_FN(fx_hand_on)(c, g, out, n, &f);
    return loss;
}

/* fx_xent_index_short without weights or label smoothing (the common case),
 * vectorised across rows instead of along them: each tile is transposed
 * into xt[class][row], so that the maxima, the exps, the sums and the
 * scaling are elementwise loops over the tile's rows, with no per-row
 * reductions; the gradient is transposed back. Same arguments and results. */
FX_ATTR static double FX_FN(fx_xent_index_short_plain)(const FX_T *x, FX_T *g, ptrdiff_t rows,
                                                       ptrdiff_t n, const int64_t *y,
                                                       int64_t ignore_index, double scale,
                                                       FX_T *row_loss, ptrdiff_t *first_bad)
{
    FX_T xt[FX_SHORT_ROW][FX_TILE_ROWS];
    FX_T m[FX_TILE_ROWS];
    double sums[FX_TILE_ROWS]; /* in double: about 5% slower than float here */
    double log_sums[FX_TILE_ROWS];
    double total = 0.0;
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += FX_TILE_ROWS) {
        const ptrdiff_t tile = rows - r0 < FX_TILE_ROWS ? rows - r0 : FX_TILE_ROWS;
        const FX_T *xb = x + r0 * n;
        double x_y[FX_TILE_ROWS];
        /* Everything read from x before anything is written to g (perhaps x). */
        for (ptrdiff_t r = 0; r < tile; r++) {
            const int64_t yr = y[r0 + r];
            x_y[r] = yr >= 0 && yr < n ? (double)xb[r * n + yr] : 0.0;
            for (ptrdiff_t k = 0; k < n; k++) xt[k][r] = xb[r * n + k];
        }
FX_SIMD()
        for (ptrdiff_t r = 0; r < tile; r++) m[r] = -INFINITY;
        for (ptrdiff_t k = 0; k < n; k++) {
FX_SIMD()
            for (ptrdiff_t r = 0; r < tile; r++) m[r] = xt[k][r] > m[r] ? xt[k][r] : m[r];
        }
FX_SIMD()
        for (ptrdiff_t r = 0; r < tile; r++) sums[r] = 0;
        for (ptrdiff_t k = 0; k < n; k++) {
FX_SIMD()
            for (ptrdiff_t r = 0; r < tile; r++) {
                const FX_T e = FX_FN(fx_exp)(xt[k][r] - m[r]);
                xt[k][r] = e;
                sums[r] += (double)e;
            }
        }
FX_SIMD()
        for (ptrdiff_t r = 0; r < tile; r++) log_sums[r] = FX_FN(fx_log_sum)(sums[r]);
        if (g) {
            FX_T a[FX_TILE_ROWS];
FX_SIMD()
            for (ptrdiff_t r = 0; r < tile; r++) a[r] = (FX_T)(scale / sums[r]);
            FX_T *gb = g + r0 * n;
            for (ptrdiff_t r = 0; r < tile; r++)
                for (ptrdiff_t k = 0; k < n; k++) gb[r * n + k] = xt[k][r] * a[r];
        }
        for (ptrdiff_t r = 0; r < tile; r++) {
            const int64_t yr = y[r0 + r];
            double loss = 0.0;
            if (yr == ignore_index || yr < 0 || yr >= n) {
                if (yr != ignore_index && *first_bad < 0) *first_bad = r0 + r;
                if (g) memset(g + (r0 + r) * n, 0, (size_t)n * sizeof(FX_T));
            } else {
                if (g) g[(r0 + r) * n + yr] -= (FX_T)scale;
                loss = log_sums[r] + ((double)m[r] - x_y[r]);
            }
            if (row_loss) row_loss[r0 + r] = (FX_T)loss;
            total += loss;
        }
    }
    return total;
}

/* Rows of at most FX_SHORT_ROW classes spend more on per-row overhead than
 * on arithmetic, so they go FX_TILE_ROWS at a time: per-row maxima, then the
 * exps of the whole tile in one SIMD sweep, then per-row sums and gradients
 * (with weights or smoothing; without, fx_xent_index_short_plain).
 * Rows x[r*n : (r+1)*n] for r in [0, rows), targets y[r]: a target equal to
 * ignore_index, or outside [0, n) (*first_bad then keeps the first such r),
 * gives the row a loss of 0 and a zero gradient. Losses go to row_loss (if
 * not NULL); returns their sum. g may be x. */
FX_ATTR static double FX_FN(fx_xent_index_short)(const FX_T *x, FX_T *g, ptrdiff_t rows,
                                                 ptrdiff_t n, const int64_t *y,
                                                 int64_t ignore_index, const FX_T *w,
                                                 double w_total, double eps, double scale,
                                                 FX_T *row_loss, ptrdiff_t *first_bad)
{
    if (!w && eps == 0.0)
        return FX_FN(fx_xent_index_short_plain)(x, g, rows, n, y, ignore_index, scale,
                                                 row_loss, first_bad);
    FX_T e[FX_TILE_ROWS * FX_SHORT_ROW];
    FX_T m[FX_TILE_ROWS];
    double x_y[FX_TILE_ROWS], gap[FX_TILE_ROWS], sums[FX_TILE_ROWS], log_sums[FX_TILE_ROWS];
    double total = 0.0;
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += FX_TILE_ROWS) {
        const ptrdiff_t tile = rows - r0 < FX_TILE_ROWS ? rows - r0 : FX_TILE_ROWS;
        /* Everything read from x before anything is written to g (perhaps x). */
        for (ptrdiff_t r = 0; r < tile; r++) {
            const FX_T *xr = x + (r0 + r) * n;
            const int64_t yr = y[r0 + r];
            FX_T mr = -INFINITY;
            for (ptrdiff_t k = 0; k < n; k++) mr = xr[k] > mr ? xr[k] : mr;
            m[r] = mr;
            x_y[r] = yr >= 0 && yr < n ? (double)xr[yr] : 0.0;
            gap[r] = eps != 0.0 ? FX_FN(fx_weighted_gap)(xr, w, n, mr) : 0.0;
            for (ptrdiff_t k = 0; k < n; k++) e[r * n + k] = xr[k] - mr;
        }
        /* two interleaved halves, as in fx_exp_sum */
        const ptrdiff_t half = tile * n / 2;
FX_SIMD()
        for (ptrdiff_t j = 0; j < half; j++) {
            e[j] = FX_FN(fx_exp)(e[j]);
            e[half + j] = FX_FN(fx_exp)(e[half + j]);
        }
        if (tile * n % 2) e[tile * n - 1] = FX_FN(fx_exp)(e[tile * n - 1]);
        for (ptrdiff_t r = 0; r < tile; r++) {
            double s = 0.0;
            for (ptrdiff_t k = 0; k < n; k++) s += (double)e[r * n + k];
            sums[r] = s;
        }
FX_SIMD()
        for (ptrdiff_t r = 0; r < tile; r++) log_sums[r] = FX_FN(fx_log_sum)(sums[r]);
        for (ptrdiff_t r = 0; r < tile; r++) {
            const int64_t yr = y[r0 + r];
            FX_T *gr = g ? g + (r0 + r) * n : NULL;
            double loss = 0.0;
            if (yr == ignore_index || yr < 0 || yr >= n) {
                if (yr != ignore_index && *first_bad < 0) *first_bad = r0 + r;
                if (gr) memset(gr, 0, (size_t)n * sizeof(FX_T));
            } else {
                fx_finish f;
                loss = FX_FN(fx_index_finish)(&f, n, yr, w, w_total, eps, scale, m[r], x_y[r],
                                              gap[r], sums[r], log_sums[r]);
                if (gr) FX_FN(fx_finish_range)(gr, e + r * n, &f, 0, n);
            }
            if (row_loss) row_loss[r0 + r] = (FX_T)loss;
            total += loss;
        }
    }
    return total;
}

/* Loss of one row against class probabilities t[0:n], smoothed to
 * t' = (1 - eps) t + eps/n: sum_c w_c t'_c (lse - x_c). Gradient, c and
 * next_in_run as above. */
FX_ATTR static double FX_FN(fx_xent_prob_row)(const FX_T *x, const FX_T *t, FX_T *g, ptrdiff_t n,
                                              const FX_T *w, double eps, double scale,
                                              fx_carry *c, int next_in_run)
{
    FX_T *out = (FX_T *)fx_carry_out(c, g);
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    const double spread = eps / (double)n;
    double mass, gap;
    FX_FN(fx_target_sums)(x, t, w, n, m, 1.0 - eps, spread, &mass, &gap);
    const double s = FX_FN(fx_exp_sum)(x, out, n, m, c, next_in_run);
    if (out) {
        const fx_finish f = {scale * mass / s, scale * (1.0 - eps), scale * spread, 0.0, t, w, -1, 1};
        FX_FN(fx_hand_on)(c, g, out, n, &f);
    }
    return mass * log(s) + gap;
}

/* softmax (log_softmax when `log`) of the row x[0:n] into out (out may be x).
 * c and next_in_run as in fx_xent_index_row. */
FX_ATTR static void FX_FN(fx_softmax_row)(const FX_T *x, FX_T *out, ptrdiff_t n, int log_space,
                                          fx_carry *c, int next_in_run)
{
    FX_T *o = (FX_T *)fx_carry_out(c, out);
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    fx_finish f = {0.0, 0.0, 0.0, 0.0, NULL, NULL, -1, 0}; /* log_softmax: final as computed */
    if (log_space && isinf(m)) {
        /* As scipy.special.log_softmax: shift by 0, not by an infinite maximum
         * (softmax itself keeps the NaN of inf - inf, as SciPy). Rare: scalar. */
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) s += exp((double)x[i]);
        FX_FN(fx_exp_sum)(x, NULL, n, m, c, next_in_run); /* only for what it carries */
        for (ptrdiff_t i = 0; i < n; i++) o[i] = (FX_T)((double)x[i] - log(s));
    } else if (log_space) {
        /* (x - m) - log(s), as PyTorch: x - m is exact near the maximum.
         * Where m dominates (s < 2: it is the row's only maximum), log(s) as
         * log1p of the sum of the other terms, as scipy.special.logsumexp
         * (its gh-18295): log(1 + below) would lose below's relative
         * accuracy, and the result at the maximum, -log1p(below), with it. */
        double below;
        const double s = FX_FN(fx_exp_sums)(x, NULL, n, m, c, next_in_run, &below);
        const FX_T log_s = (FX_T)(s < 2.0 ? log1p(below) : log(s));
FX_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) o[i] = (x[i] - m) - log_s;
    } else {
        f.a = 1.0 / FX_FN(fx_exp_sum)(x, o, n, m, c, next_in_run);
        f.active = 1;
    }
    FX_FN(fx_hand_on)(c, out, o, n, &f);
}

/* log(sum(exp(x))) of a row, as scipy.special.logsumexp: +-inf maxima give
 * +-inf (NaN if the row holds a NaN) rather than inf - inf. c and
 * next_in_run as in fx_xent_index_row. */
FX_ATTR static double FX_FN(fx_logsumexp_row)(const FX_T *x, ptrdiff_t n, fx_carry *c,
                                              int next_in_run)
{
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    double below;
    const double s = FX_FN(fx_exp_sums)(x, NULL, n, m, c, next_in_run, &below);
    if (isinf(m)) {
        for (ptrdiff_t i = 0; i < n; i++)
            if (isnan(x[i])) return NAN;
        return m;
    }
    /* log1p where m dominates, as in fx_softmax_row: logsumexp([0, -40]) is
     * 4.2e-18, not 0. */
    return (double)m + (s < 2.0 ? log1p(below) : log(s));
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

/* Binary cross-entropy with logits over x[0:n], elementwise: PyTorch's
 * loss_i = w_i ((1 - t_i) x_i + l_i (log1p(exp(-|x_i|)) + max(-x_i, 0)))
 * with l_i = 1 + (pw_i - 1) t_i, written for x_i < 0 as
 * w_i (pw_i t_i |x_i| + l_i log1p(exp(-|x_i|))), coefficients first, so that
 * nothing cancels or overflows on the way; and g_i = scale w_i (l_i sigmoid(x_i) - pw_i t_i),
 * which stays exact where sigmoid(x_i) is tiny. w and pw are arrays, both
 * NULL where both weights are 1 (a loop of its own: the common case, ~20%
 * faster); g and loss may be NULL. Returns the sum of the
 * losses. float works in float, as PyTorch (log1p by fx_log1p_unit); double
 * takes log1p(u) as log(v) corrected for the rounding of v = 1 + u. */
#define FX_BCE_LOG1P_DOUBLE(u, v, inv_v) (FX_FN(fx_log_sum)(v) - (((v) - 1) - (u)) * (inv_v))
#if FX_DOUBLE
#define FX_BCE_LOG1P FX_BCE_LOG1P_DOUBLE
#else
#define FX_BCE_LOG1P(u, v, inv_v) FX_FN(fx_log1p_unit)(u)
#endif
/* The terms of element i, computed in type T; LOG1P(u, v, inv_v) is log1p(u). */
#define FX_BCE_ELEMENT(T, i, LOG1P)                                                    \
    const T xi = (T)x[i], ti = (T)t[i];                                                \
    const T wi = w ? (T)w[i] : 1, pwi = pw ? (T)pw[i] : 1;                             \
    const int neg = xi < 0; /* the one comparison every choice below uses */           \
    const T u = (T)FX_FN(fx_exp)(FX_FN(fx_neg_abs)(x[i]));                             \
    const T v = 1 + u, inv_v = 1 / v;                                                  \
    const T log1p_u = LOG1P(u, v, inv_v);                                              \
    const T li = pwi == 1 ? 1 : 1 + (pwi - 1) * ti;                                    \
    const T loss_i =                                                                   \
        (neg ? -(wi * pwi * ti) * xi : (wi * (1 - ti)) * xi) + (wi * li) * log1p_u

#define FX_BCE_CHUNK 256
#define FX_BCE_GRAD(i) (f_scale * wi * (li * ((neg ? u : 1) * inv_v) - pwi * ti))
/* The vector loop over a chunk: gradients into gc, losses into buf. A macro,
 * so that the copy where w and pw are NULL constants compiles without them. */
#define FX_BCE_CHUNK_LOOP()                                                            \
    FX_SIMD()                                                                          \
    for (ptrdiff_t j = 0; j < m; j++) {                                                \
        const ptrdiff_t i = c0 + j;                                                    \
        FX_BCE_ELEMENT(FX_T, i, FX_BCE_LOG1P);                                         \
        gc[j] = FX_BCE_GRAD(i);                                                        \
        buf[j] = loss_i;                                                               \
    }

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

FX_ATTR static double FX_FN(fx_bce_logits_span)(const FX_T *x, const FX_T *t, const FX_T *w,
                                                const FX_T *pw, FX_T *g, FX_T *loss,
                                                ptrdiff_t n, double scale)
{
    /* The losses of a chunk go through buf and are summed in double in a
     * fixed order, so that they are the same bits with or without a gradient. */
    FX_T buf[FX_BCE_CHUNK];
    /* one loop, one rounding, with or without g; and where g is x (in place),
     * the chunk's gradient waits here until x's chunk is no longer needed
     * (the float fallback below reads it again) */
    FX_T chunk_grad[FX_BCE_CHUNK];
    const int in_place = g != NULL && (const FX_T *)g == x;
    const FX_T f_scale = (FX_T)scale;
    double total = 0.0;
    for (ptrdiff_t c0 = 0; c0 < n; c0 += FX_BCE_CHUNK) {
        const ptrdiff_t m = n - c0 < FX_BCE_CHUNK ? n - c0 : FX_BCE_CHUNK;
        FX_T *gc = g && !in_place ? g + c0 : chunk_grad;
        if (w) {
            FX_BCE_CHUNK_LOOP();
        } else {
            const FX_T *const w = NULL, *const pw = NULL; /* constants now: folded away */
            FX_BCE_CHUNK_LOOP();
        }
        double chunk = 0.0;
FX_SIMD(reduction(+ : chunk))
        for (ptrdiff_t j = 0; j < m; j++) chunk += (double)buf[j];
#if !FX_DOUBLE
        if (!(chunk - chunk == 0.0)) {
            /* A loss beyond float's range (or a NaN): the sum again, in
             * double, so that a mean of such losses stays finite. Rare. */
            chunk = 0.0;
            for (ptrdiff_t j = 0; j < m; j++) {
                const ptrdiff_t i = c0 + j;
                FX_BCE_ELEMENT(double, i, FX_BCE_LOG1P_DOUBLE);
                chunk += loss_i;
            }
        }
#endif
        total += chunk;
        if (in_place) memcpy(g + c0, chunk_grad, (size_t)m * sizeof(FX_T));
        if (loss) memcpy(loss + c0, buf, (size_t)m * sizeof(FX_T));
    }
    return total;
}

/* Test-only (fastxent._kernels' _exp and friends): the elementwise functions
 * of this instance over arrays, in loops vectorised as the kernels' are. */
FX_ATTR static void FX_FN(fx_test_exp)(const FX_T *d, FX_T *out, ptrdiff_t n)
{
FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) out[i] = FX_FN(fx_exp)(d[i]);
}

FX_ATTR static void FX_FN(fx_test_log_sum)(const double *v, double *out, ptrdiff_t n)
{
FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) out[i] = FX_FN(fx_log_sum)(v[i]);
}

/* log1p(u) for u in [0, 1] as the binary cross-entropy takes it. */
FX_ATTR static void FX_FN(fx_test_log1p)(const FX_T *u, FX_T *out, ptrdiff_t n)
{
FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) {
        const FX_T v = 1 + u[i], inv_v = 1 / v;
        (void)v;
        (void)inv_v;
        out[i] = FX_BCE_LOG1P(u[i], v, inv_v);
    }
}
#undef FX_BCE_LOG1P
#undef FX_BCE_LOG1P_DOUBLE
#undef FX_BCE_ELEMENT
#undef FX_BCE_GRAD
#undef FX_BCE_CHUNK_LOOP
#undef FX_BCE_CHUNK
#undef FX_SUM_BLOCK
#undef FX_STREAM_CHUNK
#undef FX_PREFETCH_AHEAD

/* The end of a thread's run: the last pending row finished and streamed
 * out, the streamed stores ordered before what follows. */
FX_ATTR static void FX_FN(fx_carry_end)(fx_carry *c, ptrdiff_t n)
{
    if (c->pending) FX_FN(fx_stream_part)(c, n, n);
    c->pending = NULL;
    FX_STREAM_FENCE();
}

static const FX_TABLE FX_FN(fx_rows) = {
    FX_FN(fx_xent_index_row),
    FX_FN(fx_xent_index_short),
    FX_FN(fx_xent_prob_row),
    FX_FN(fx_softmax_row),
    FX_FN(fx_logsumexp_row),
    FX_FN(fx_bce_logits_span),
    FX_FN(fx_carry_end),
    FX_FN(fx_test_exp),
    FX_FN(fx_test_log_sum),
    FX_FN(fx_test_log1p),
};

#undef FX_FN
#undef FX_CAT
#undef FX_CAT2
