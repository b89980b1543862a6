/* Short rows without transposes: the plain softmax cross-entropy of rows of
 * n <= 16 float32 classes, 16 rows at a time, with AVX-512 intrinsics.
 * _rows_impl.h includes this file in the float32 AVX-512 instance only
 * (FX_SHORT16 set by _fx_dispatch.h); the other instances keep the tiles of
 * fx_xent_index_short_plain. Same arguments and results as that function.
 *
 * 16 rows of n classes are exactly n contiguous 16-lane vectors (the "flat"
 * layout: element j of row r at position r*n + j). Everything elementwise
 * (x - max, the exps, the gradient) stays in that layout; what is per row
 * (max, sum) is reduced over windows of n positions by shifts across
 * neighbouring vectors (vpermt2ps, a permute: this CPU family's gathers are
 * slow), read at the rows' first positions into a vector of one lane per
 * row, and broadcast back to the flat layout by one vpermps per vector. With
 * n a constant (one copy of the loop per n), the index vectors are
 * constants and the n vectors of a group stay in registers.
 * The exps are fx_exp's (_fx_math.h), written with intrinsics: the same
 * reduction, polynomial and flush of results below the smallest normal. */

/* Everything of a group in one function, so that n is a constant there. */
#define FX16_INLINE static inline __attribute__((always_inline))

/* Lane l of the result: lane l + s of the concatenation (lo, hi), s < 16. */
#define FX16_SHIFT(lo, hi, s) _mm512_permutex2var_ps((lo), c->shift[(s)], (hi))

/* The index vectors of the shifts by s = 0..15: lane l holds l + s. */
FX_ATTR FX16_INLINE void FX_FN(fx16_shift_indices)(__m512i out[16])
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int s = 0; s < 16; s++) out[s] = _mm512_add_epi32(iota, _mm512_set1_epi32(s));
}

/* exp(d) for d <= 0, as fx_exp (float) computes it, 16 lanes at once. */
FX_ATTR FX16_INLINE __m512 FX_FN(fx16_exp)(__m512 d)
{
    const __m512 shifter = _mm512_set1_ps(12582912.0f + 127.0f);
    __m512 kf = _mm512_fmadd_ps(d, _mm512_set1_ps(1.44269504088896341f), shifter);
    const __m512i kbits = _mm512_castps_si512(kf);
    kf = _mm512_sub_ps(kf, shifter);
    __m512 r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(0.693359375f), d);
    r = _mm512_fnmadd_ps(kf, _mm512_set1_ps(-2.12194440e-4f), r);
    const __m512 r2 = _mm512_mul_ps(r, r);
    const __m512 q01 =
        _mm512_fmadd_ps(_mm512_set1_ps(0.16666576305560638f), r, _mm512_set1_ps(0.5f));
    const __m512 q23 = _mm512_fmadd_ps(_mm512_set1_ps(0.008363292753030603f), r,
                                       _mm512_set1_ps(0.041666553762567636f));
    const __m512 q =
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0.0013926325618133463f), r2, q23), r2, q01);
    const __m512 p = _mm512_fmadd_ps(q, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512 two_k = _mm512_castsi512_ps(_mm512_slli_epi32(kbits, 23));
    /* below `lowest` (and -inf): 0; a NaN fails the comparison and stays NaN */
    const __mmask16 normal = _mm512_cmp_ps_mask(d, _mm512_set1_ps(-87.33654f), _CMP_NLT_UQ);
    return _mm512_maskz_mul_ps(normal, p, two_k);
}

/* log(s) for the sums of exps (s in [1, 16], or NaN), 16 lanes: s = 2^e m
 * with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(z), z = (m - 1) / (m + 1),
 * by its series to z^9 (|z| < 0.172: a relative error below 1e-9). */
FX_ATTR FX16_INLINE __m512 FX_FN(fx16_log)(__m512 s)
{
    __m512 m = _mm512_getmant_ps(s, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    __m512 e = _mm512_getexp_ps(s);
    const __mmask16 above = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, above, m, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_ps(e, above, e, _mm512_set1_ps(1.0f));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 z = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one));
    const __m512 z2 = _mm512_mul_ps(z, z);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 9.0f), z2, _mm512_set1_ps(1.0f / 7.0f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.0f / 5.0f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.0f / 3.0f));
    const __m512 two_z = _mm512_add_ps(z, z);
    /* 2z + 2z z^2 p, plus e ln2 (the NaN of a NaN sum comes through e) */
    return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693147181f),
                           _mm512_fmadd_ps(_mm512_mul_ps(two_z, z2), p, two_z));
}

/* The constants of one row length n: the index vectors that read the rows'
 * first positions into one lane per row (pairs of vectors, each a vpermt2ps
 * and a masked move), and that broadcast one lane per row back to the
 * flat layout; the flat positions, for the targets' one-hot. */
typedef struct {
    __m512i shift[16];
    __m512i gather[8]; /* pair i (vectors 2i, 2i+1): lane r takes r*n - 32i */
    __mmask16 gather_lanes[8];
    __m512i spread[16];   /* vector k: lane l takes row (16k + l) / n */
    __m512i position[16]; /* vector k: lane l holds 16k + l */
    __m512i row_start;    /* lane r holds r * n */
} fx16_consts;

FX_ATTR FX16_INLINE void FX_FN(fx16_make_consts)(fx16_consts *c, const int n)
{
    int32_t lanes[16];
    FX_FN(fx16_shift_indices)(c->shift);
    for (int i = 0; 2 * i < n; i++) {
        __mmask16 k = 0;
        for (int r = 0; r < 16; r++) {
            const int at = r * n - 32 * i;
            if (at >= 0 && at < 32) k |= (__mmask16)(1u << r);
            lanes[r] = at & 31;
        }
        c->gather[i] = _mm512_loadu_si512(lanes);
        c->gather_lanes[i] = k;
    }
    for (int k = 0; k < n; k++) {
        for (int l = 0; l < 16; l++) lanes[l] = (16 * k + l) / n;
        c->spread[k] = _mm512_loadu_si512(lanes);
        for (int l = 0; l < 16; l++) lanes[l] = 16 * k + l;
        c->position[k] = _mm512_loadu_si512(lanes);
    }
    for (int r = 0; r < 16; r++) lanes[r] = r * n;
    c->row_start = _mm512_loadu_si512(lanes);
}

/* One lane per row: lane r of the result is f[r * n] (the rows' first positions). */
FX_ATTR FX16_INLINE __m512 FX_FN(fx16_row_starts)(const __m512 *f, const fx16_consts *c,
                                                  const int n)
{
    __m512 out = _mm512_setzero_ps();
    for (int i = 0; 2 * i < n; i++) {
        const __m512 hi = 2 * i + 1 < n ? f[2 * i + 1] : f[2 * i];
        out = _mm512_mask_mov_ps(out, c->gather_lanes[i],
                                 _mm512_permutex2var_ps(f[2 * i], c->gather[i], hi));
    }
    return out;
}

/* w[k] = the max (sum when `add`) of the n positions from each position of
 * v (read at the rows' first positions only: other positions mix rows, and
 * the last ones read past the group, harmlessly). Windows of 1, 2, 4, 8
 * positions by doubling; the max then covers n by two overlapping windows,
 * the sum by n's binary digits, largest first. */
FX_ATTR FX16_INLINE void FX_FN(fx16_windows)(__m512 *w, const __m512 *v, const fx16_consts *c,
                                             const int n, const int add)
{
    __m512 span[5][16]; /* span[j]: windows of 2^j positions */
    for (int k = 0; k < n; k++) span[0][k] = v[k];
    int j = 0;
    for (; 2 << j <= n; j++) {
        const int len = 1 << j;
        for (int k = 0; k < n; k++) {
            const __m512 next = FX16_SHIFT(span[j][k], span[j][k + 1 < n ? k + 1 : k], len);
            span[j + 1][k] =
                add ? _mm512_add_ps(span[j][k], next) : _mm512_max_ps(span[j][k], next);
        }
    }
    const int top = 1 << j; /* the largest power of 2 <= n */
    for (int k = 0; k < n; k++) w[k] = span[j][k];
    if (top == n) return;
    if (!add) {
        for (int k = 0; k < n; k++)
            w[k] = _mm512_max_ps(w[k], FX16_SHIFT(w[k], w[k + 1 < n ? k + 1 : k], n - top));
        return;
    }
    int at = top; /* positions covered so far */
    for (int b = j - 1; b >= 0; b--) {
        if (!(n & (1 << b))) continue;
        /* positions at..at + 2^b - 1 from span[b], shifted by `at` (< 16) */
        for (int k = 0; k < n; k++)
            w[k] = _mm512_add_ps(w[k], FX16_SHIFT(span[b][k], span[b][k + 1 < n ? k + 1 : k], at));
        at += 1 << b;
    }
}
#undef FX16_SHIFT

/* The groups of 16 rows of fx16_plain for one row length n (a constant in
 * each copy): the row losses
 * go into lanes (16 doubles), each lane summing its rows in order. */
FX_ATTR FX16_INLINE void FX_FN(fx16_groups)(const float *x, float *g, ptrdiff_t groups, const int n,
                                            const int64_t *y, int64_t ignore_index, double scale,
                                            float *row_loss, ptrdiff_t *first_bad, __m512d lanes[2])
{
    fx16_consts c;
    FX_FN(fx16_make_consts)(&c, n);
    const __m512i ignore = _mm512_set1_epi64(ignore_index), classes = _mm512_set1_epi64(n);
    const __m512 scale_f = _mm512_set1_ps((float)scale);
    for (ptrdiff_t grp = 0; grp < groups; grp++) {
        const float *xb = x + grp * 16 * n;
        const int64_t *yb = y + grp * 16;
        /* the labels: a target position r * n + y where the row counts, else -1 */
        const __m512i y_lo = _mm512_loadu_si512(yb), y_hi = _mm512_loadu_si512(yb + 8);
        const __mmask16 counted = _mm512_kunpackb(
            _mm512_cmplt_epu64_mask(y_hi, classes) & _mm512_cmpneq_epi64_mask(y_hi, ignore),
            _mm512_cmplt_epu64_mask(y_lo, classes) & _mm512_cmpneq_epi64_mask(y_lo, ignore));
        if (counted != 0xFFFF) {
            const __mmask16 ignored = _mm512_kunpackb(_mm512_cmpeq_epi64_mask(y_hi, ignore),
                                                      _mm512_cmpeq_epi64_mask(y_lo, ignore));
            const unsigned bad = (unsigned)(__mmask16)(~counted & ~ignored);
            if (bad && *first_bad < 0) *first_bad = grp * 16 + __builtin_ctz(bad);
        }
        const __m512i y32 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(y_lo)),
                                               _mm512_cvtepi64_epi32(y_hi), 1);
        const __m512i target =
            _mm512_mask_add_epi32(_mm512_set1_epi32(-1), counted, c.row_start, y32);
        /* everything read from x before anything is written to g (perhaps x) */
        const __m512 xy = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), counted, target, xb, 4);
        __m512 v[16], w[16];
        for (int k = 0; k < n; k++) v[k] = _mm512_loadu_ps(xb + 16 * k);
        FX_FN(fx16_windows)(w, v, &c, n, 0);
        const __m512 m = FX_FN(fx16_row_starts)(w, &c, n);
        for (int k = 0; k < n; k++)
            v[k] = FX_FN(fx16_exp)(_mm512_sub_ps(v[k], _mm512_permutexvar_ps(c.spread[k], m)));
        FX_FN(fx16_windows)(w, v, &c, n, 1);
        const __m512 s = FX_FN(fx16_row_starts)(w, &c, n);
        if (g) {
            /* scale / s on counted rows, 0 on the others (whose sums may be NaN) */
            const __m512 a = _mm512_maskz_div_ps(counted, scale_f, s);
            float *gb = g + grp * 16 * n;
            for (int k = 0; k < n; k++) {
                const __m512i t = _mm512_permutexvar_epi32(c.spread[k], target);
                const __mmask16 row_counts = _mm512_cmpge_epi32_mask(t, _mm512_setzero_si512());
                const __mmask16 hot = _mm512_cmpeq_epi32_mask(t, c.position[k]);
                __m512 gk =
                    _mm512_maskz_mul_ps(row_counts, v[k], _mm512_permutexvar_ps(c.spread[k], a));
                gk = _mm512_mask_sub_ps(gk, hot, gk, scale_f);
                _mm512_storeu_ps(gb + 16 * k, gk);
            }
        }
        /* the row losses log(s) + (m - x_y), in double; 0 where the row does not count */
        const __m512 log_s = FX_FN(fx16_log)(s);
        const __m512d lo =
            _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(log_s)),
                          _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(m)),
                                        _mm512_cvtps_pd(_mm512_castps512_ps256(xy))));
        const __m512d hi =
            _mm512_add_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(log_s, 1)),
                          _mm512_sub_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(m, 1)),
                                        _mm512_cvtps_pd(_mm512_extractf32x8_ps(xy, 1))));
        const __m512d loss_lo = _mm512_maskz_mov_pd((__mmask8)counted, lo);
        const __m512d loss_hi = _mm512_maskz_mov_pd((__mmask8)(counted >> 8), hi);
        lanes[0] = _mm512_add_pd(lanes[0], loss_lo);
        lanes[1] = _mm512_add_pd(lanes[1], loss_hi);
        if (row_loss)
            _mm512_storeu_ps(row_loss + grp * 16,
                             _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(loss_lo)),
                                                _mm512_cvtpd_ps(loss_hi), 1));
    }
}

/* fx_xent_index_short_plain by groups of 16 rows (the rows left over go to
 * it). The row losses are summed lane by lane (lane r: rows r, r + 16, ...)
 * and the lanes in order: a fixed order for a given number of rows. */
FX_ATTR FX_NOINLINE static double FX_FN(fx16_plain)(const float *x, float *g, ptrdiff_t rows,
                                                    ptrdiff_t n, const int64_t *y,
                                                    int64_t ignore_index, double scale,
                                                    float *row_loss, ptrdiff_t *first_bad)
{
    const ptrdiff_t groups = rows / 16, done = groups * 16;
    __m512d lanes[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    ptrdiff_t bad = -1;
    /* clang-format off */
    switch (n) {
#define FX16_CASE(N)                                                                               \
    case N:                                                                                        \
        FX_FN(fx16_groups)(x, g, groups, N, y, ignore_index, scale, row_loss, &bad, lanes);        \
        break;
    FX16_CASE(1) FX16_CASE(2) FX16_CASE(3) FX16_CASE(4) FX16_CASE(5) FX16_CASE(6)
    FX16_CASE(7) FX16_CASE(8) FX16_CASE(9) FX16_CASE(10) FX16_CASE(11) FX16_CASE(12)
    FX16_CASE(13) FX16_CASE(14) FX16_CASE(15) FX16_CASE(16)
#undef FX16_CASE
    default:
        return FX_FN(fx_xent_index_short_plain)(x, g, rows, n, y, ignore_index, scale, row_loss,
                                                first_bad);
    }
    /* clang-format on */
    FX_ALIGN64 double lane_sums[16];
    _mm512_store_pd(lane_sums, lanes[0]);
    _mm512_store_pd(lane_sums + 8, lanes[1]);
    double total = 0.0;
    for (int r = 0; r < 16; r++) total += lane_sums[r];
    if (done < rows) {
        ptrdiff_t tail_bad = -1;
        total += FX_FN(fx_xent_index_short_plain)(x + done * n, g ? g + done * n : NULL,
                                                  rows - done, n, y + done, ignore_index, scale,
                                                  row_loss ? row_loss + done : NULL, &tail_bad);
        if (bad < 0 && tail_bad >= 0) bad = done + tail_bad;
    }
    if (bad >= 0 && *first_bad < 0) *first_bad = bad;
    return total;
}
