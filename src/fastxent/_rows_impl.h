/* The row functions, for one element type and one instruction
 * set. _fx_dispatch.h includes this file once per (type, ISA) pair with:
 *   FX_T       float or double
 *   FX_DOUBLE  1 for double, 0 for float
 *   FX_SUFFIX  the name suffix of this instance, e.g. f32_avx2
 *   FX_ATTR    function attributes (the target ISA), possibly empty
 *   FX_STREAM_COPY  the streaming copy of that ISA (fx_stream_copy_ISA)
 *
 * Every loop is a plain elementwise sweep or a reduction marked
 * `omp simd`, so the compiler vectorises it for the ISA of this instance
 * without -ffast-math. Reductions accumulate in double.
 */

#define FX_CAT2(a, b) a##_##b
#define FX_CAT(a, b)  FX_CAT2(a, b)
#define FX_FN(name)   FX_CAT(name, FX_SUFFIX)

#include "_fx_math.h"

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
 * sweep (or to run_end). */
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
 * small buffer in the nearest cache, not back into the scratch row (which
 * measured slower: docs/benchmarks.md). FX_STREAM_COPY is this
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
#define FX_SUM_BLOCK      128
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

FX_ATTR static double FX_FN(fx_exp_sum)(const FX_T *x, FX_T *g, ptrdiff_t n, FX_T m, fx_carry *c,
                                        int next_in_run)
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
        for (ptrdiff_t i = 0; i < n; i++) acc += (double)w[i] * ((double)m - (double)x[i]);
    } else {
        FX_SIMD(reduction(+ : acc))
        for (ptrdiff_t i = 0; i < n; i++) acc += (double)m - (double)x[i];
    }
    return acc;
}

/* For a probability target t smoothed to t' = keep * t + spread:
 * *mass = sum w_i t'_i and *gap = sum w_i t'_i (m - x_i), where a class of
 * no mass adds nothing even at x_i = -inf (a masked vocabulary). */
FX_ATTR static void FX_FN(fx_target_sums)(const FX_T *x, const FX_T *t, const FX_T *w, ptrdiff_t n,
                                          FX_T m, double keep, double spread, double *mass_out,
                                          double *gap_out)
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

/* ---- the finishing functions: where the options of a class loss act ----
 * A row function computes a row's parts (maximum, sums); these turn them into
 * the row's loss and into f, the sweep that makes the row's exps the gradient.
 * A new option of the class losses (a field of fx_class_params) is read here,
 * and in fx_index_plain, which says when the tiles may skip them. */

/* Whether the options leave the index loss plain: no weights, no smoothing,
 * no z-loss, no lse (the short rows then take fx_xent_index_short_plain,
 * which skips them; it finds the accuracy's argmax itself). */
/* Whether every per-row option and side output is off (fx_row_options has
 * nothing to do). */
static inline int FX_FN(fx_row_options_off)(const fx_class_params *p)
{
    return !p->sample_weight && p->z_loss == 0.0 && !p->lse && !p->correct;
}

static inline int FX_FN(fx_index_plain)(const fx_class_params *p)
{
    return !p->weight && p->smoothing == 0.0 && !p->sample_weight && p->z_loss == 0.0 && !p->lse;
}

/* The index of the first element of x[0:n] equal to v, or n: blocks of 64
 * tested in one vector sweep each, the scalar search only in the block that
 * holds it. For return_accuracy only. */
FX_ATTR static ptrdiff_t FX_FN(fx_first_equal)(const FX_T *x, ptrdiff_t n, FX_T v)
{
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 64) {
        const ptrdiff_t len = n - i0 < 64 ? n - i0 : 64;
        int any = 0;
        FX_SIMD(reduction(| : any))
        for (ptrdiff_t j = 0; j < len; j++) any |= x[i0 + j] == v;
        if (any)
            for (ptrdiff_t j = 0; j < len; j++)
                if (x[i0 + j] == v) return i0 + j;
    }
    return n;
}

/* Whether class k is np.argmax of the row x, whose maximum is m: x[k] is m
 * and no element before it is (ties go to the first). Read before the row's
 * output, which may be x itself, is written. */
FX_ATTR static inline int FX_FN(fx_is_first_max)(const FX_T *x, ptrdiff_t k, FX_T m)
{
    return x[k] == m && FX_FN(fx_first_equal)(x, k, m) == k;
}

/* The per-row options and side outputs of a finished row, the same for every
 * kind of target: the z-loss term z lse^2 added to the row's loss (and
 * scale 2 z lse / s to the factor `a` of its exps: d lse / d x = softmax), the
 * sample weight multiplying both, the row's lse and whether its prediction
 * is correct (`top`, and the row holds no NaN or infinite logit: s is a
 * number) written out. Returns the row's loss; with no option on, loss and
 * f as they came. */
FX_ATTR static inline double FX_FN(fx_row_options)(fx_finish *f, double loss,
                                                   const fx_class_params *p, ptrdiff_t row, FX_T m,
                                                   double s, double log_s, int top)
{
    const double lse = (double)m + log_s;
    if (p->z_loss != 0.0) {
        loss += p->z_loss * lse * lse;
        f->a += p->scale * 2.0 * p->z_loss * lse / s;
    }
    if (p->sample_weight) {
        const double sw = p->sample_weight[row];
        loss *= sw;
        f->a *= sw;
        f->c1 *= sw;
        f->c0 *= sw;
        f->cy *= sw;
    }
    if (p->lse) ((FX_T *)p->lse)[row] = (FX_T)lse;
    if (p->correct) p->correct[row] = (unsigned char)(top && !isnan(s));
    return loss;
}

/* The loss of a row whose target is the class y, from the row's parts: its
 * maximum m, x_y, the smoothing gap sum w_c (m - x_c), and s = sum exp(x - m):
 *   (1 - eps) w_y (lse - x_y) + eps/n * sum_c w_c (lse - x_c),
 * as torch.nn.functional.cross_entropy with reduction="none"; and into f
 * the sweep that scales the row's exps into scale * d loss / d x. */
FX_ATTR static inline double FX_FN(fx_index_finish)(fx_finish *f, ptrdiff_t n, ptrdiff_t y,
                                                    const fx_class_params *p, FX_T m, double x_y,
                                                    double gap, double s, double log_s,
                                                    ptrdiff_t row, int top, int row_options)
{
    const FX_T *w = (const FX_T *)p->weight;
    const double eps = p->smoothing, scale = p->scale, w_total = p->weight_total;
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
    return row_options ? FX_FN(fx_row_options)(f, loss, p, row, m, s, log_s, top) : loss;
}

/* The loss of a row against class probabilities t smoothed to
 * t' = (1 - eps) t + eps/n, from the row's parts: mass = sum_c w_c t'_c,
 * gap = sum_c w_c t'_c (m - x_c) and s = sum exp(x - m):
 *   sum_c w_c t'_c (lse - x_c) = mass log(s) + gap;
 * and into f the sweep that scales the row's exps into scale * d loss / d x. */
FX_ATTR static inline double FX_FN(fx_prob_finish)(fx_finish *f, ptrdiff_t n, const FX_T *t,
                                                   const fx_class_params *p, FX_T m, double mass,
                                                   double gap, double s, ptrdiff_t row, int top)
{
    const double eps = p->smoothing, scale = p->scale;
    f->a = scale * mass / s;
    f->c1 = scale * (1.0 - eps);
    f->c0 = scale * (eps / (double)n);
    f->cy = 0.0;
    f->t = t;
    f->w = p->weight;
    f->y = -1;
    f->active = 1;
    const double log_s = log(s);
    return FX_FN(fx_row_options)(f, mass * log_s + gap, p, row, m, s, log_s, top);
}

/* Loss (and gradient into g, which may be x) of one row x[0:n] whose target
 * is the class y, 0 <= y < n: a max sweep, an exp sweep, a scaling sweep.
 * c and next_in_run: see fx_carry (_rows.h). */
FX_ATTR static double FX_FN(fx_xent_index_row)(const void *xv, void *gv, ptrdiff_t n, ptrdiff_t y,
                                               const fx_class_params *p, fx_carry *c,
                                               int next_in_run)
{
    const FX_T *x = (const FX_T *)xv;
    FX_T *g = (FX_T *)gv;
    const double x_y = (double)x[y]; /* read before g (perhaps x) is written */
    FX_T *out = (FX_T *)fx_carry_out(c, g);
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    const double gap =
        p->smoothing != 0.0 ? FX_FN(fx_weighted_gap)(x, (const FX_T *)p->weight, n, m) : 0.0;
    const int top = p->correct ? FX_FN(fx_is_first_max)(x, y, m) : 0; /* before g is written */
    const double s = FX_FN(fx_exp_sum)(x, out, n, m, c, next_in_run);
    fx_finish f;
    const double loss = FX_FN(fx_index_finish)(&f, n, y, p, m, x_y, gap, s, log(s), p->row, top, 1);
    if (out) FX_FN(fx_hand_on)(c, g, out, n, &f);
    return loss;
}

/* return_accuracy for `rows` rows of at most FX_SHORT_ROW classes that take the
 * plain tiles, read before the tiles write anything: correct[r] is 1 where the
 * row's label counts and is its first maximum, and the row holds no NaN and
 * no infinity (whose loss is NaN, as fx_row_options says). */
FX_ATTR static void FX_FN(fx_short_correct)(const FX_T *x, ptrdiff_t rows, ptrdiff_t n,
                                            const int64_t *y, int64_t ignore_index,
                                            unsigned char *correct)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const FX_T *xr = x + r * n;
        const int64_t yr = y[r];
        if (yr == ignore_index || yr < 0 || yr >= n) continue; /* not counted: stays 0 */
        FX_T m = -INFINITY;
        int has_nan = 0;
        for (ptrdiff_t k = 0; k < n; k++) {
            m = xr[k] > m ? xr[k] : m;
            has_nan |= isnan(xr[k]);
        }
        correct[r] = (unsigned char)(!has_nan && isfinite(m) && FX_FN(fx_is_first_max)(xr, yr, m));
    }
}

/* fx_xent_index_short without weights or label smoothing (the common case),
 * vectorised across rows instead of along them: each tile is transposed
 * into xt[class][row], so that the maxima, the exps, the sums and the
 * scaling are elementwise loops over the tile's rows, with no per-row
 * reductions; the gradient is transposed back. Same arguments and results. */
FX_ATTR FX_NOINLINE static double
FX_FN(fx_xent_index_short_plain)(const FX_T *x, FX_T *g, ptrdiff_t rows, ptrdiff_t n,
                                 const int64_t *y, int64_t ignore_index, double scale,
                                 FX_T *row_loss, ptrdiff_t *first_bad)
{
    FX_T xt[FX_SHORT_ROW][FX_TILE_ROWS];
    FX_T m[FX_TILE_ROWS];
    double sums[FX_TILE_ROWS]; /* in double, at a small cost (docs/benchmarks.md) */
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

/* The tiles of fx_xent_index_short with weights or smoothing; row_options 0
 * when every per-row option and side output is off. Out of line, as the plain
 * tiles: GCC then compiles a copy for each constant row_options, and the
 * copy without them as the tiles were before they existed. */
FX_ATTR FX_NOINLINE static double FX_FN(fx_short_tiles)(const FX_T *x, FX_T *g, ptrdiff_t rows,
                                                        ptrdiff_t n, const int64_t *y,
                                                        const fx_class_params *p, FX_T *row_loss,
                                                        ptrdiff_t *first_bad, const int row_options)
{
    const int64_t ignore_index = p->ignore_index;
    const FX_T *w = (const FX_T *)p->weight;
    const double eps = p->smoothing;
    FX_T e[FX_TILE_ROWS * FX_SHORT_ROW];
    FX_T m[FX_TILE_ROWS];
    double x_y[FX_TILE_ROWS], gap[FX_TILE_ROWS], sums[FX_TILE_ROWS], log_sums[FX_TILE_ROWS];
    int top[FX_TILE_ROWS];
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
            top[r] = row_options && p->correct && yr >= 0 && yr < n
                         ? FX_FN(fx_is_first_max)(xr, yr, mr)
                         : 0;
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
                loss = FX_FN(fx_index_finish)(&f, n, yr, p, m[r], x_y[r], gap[r], sums[r],
                                              log_sums[r], p->row + r0 + r, top[r], row_options);
                if (gr) FX_FN(fx_finish_range)(gr, e + r * n, &f, 0, n);
            }
            if (row_loss) row_loss[r0 + r] = (FX_T)loss;
            total += loss;
        }
    }
    return total;
}

#ifdef FX_SHORT16
#include "_fx_short16.h"
#endif

/* Rows of at most FX_SHORT_ROW classes spend more on per-row overhead than
 * on arithmetic, so they go FX_TILE_ROWS at a time: per-row maxima, then the
 * exps of the whole tile in one SIMD sweep, then per-row sums and gradients
 * (with weights or smoothing; without, fx_xent_index_short_plain).
 * Rows x[r*n : (r+1)*n] for r in [0, rows), targets y[r]: a target equal to
 * ignore_index, or outside [0, n) (*first_bad then keeps the first such r),
 * gives the row a loss of 0 and a zero gradient. Losses go to row_loss (if
 * not NULL); returns their sum. g may be x. */
FX_ATTR static double FX_FN(fx_xent_index_short)(const void *xv, void *gv, ptrdiff_t rows,
                                                 ptrdiff_t n, const int64_t *y,
                                                 const fx_class_params *p, void *row_loss_v,
                                                 ptrdiff_t *first_bad)
{
    const FX_T *x = (const FX_T *)xv;
    FX_T *g = (FX_T *)gv, *row_loss = (FX_T *)row_loss_v;
    /* A local copy: the stores to g cannot touch it, so that what the tile
     * loop derives from it is computed once, outside the loop. */
    const fx_class_params params = *p;
    p = &params;
    const int64_t ignore_index = p->ignore_index;
    if (FX_FN(fx_index_plain)(p)) {
        if (p->correct) /* the plain tiles know nothing of it: a pass of its own, first */
            FX_FN(fx_short_correct)(x, rows, n, y, ignore_index, p->correct + p->row);
#ifdef FX_SHORT16
        return FX_FN(fx16_plain)(x, g, rows, n, y, ignore_index, p->scale, row_loss, first_bad);
#else
        return FX_FN(fx_xent_index_short_plain)(x, g, rows, n, y, ignore_index, p->scale, row_loss,
                                                first_bad);
#endif
    }
    if (FX_FN(fx_row_options_off)(p))
        return FX_FN(fx_short_tiles)(x, g, rows, n, y, p, row_loss, first_bad, 0);
    return FX_FN(fx_short_tiles)(x, g, rows, n, y, p, row_loss, first_bad, 1);
}

/* Loss of one row against class probabilities t[0:n], smoothed to
 * t' = (1 - eps) t + eps/n: sum_c w_c t'_c (lse - x_c). Gradient, c and
 * next_in_run as above. */
FX_ATTR static double FX_FN(fx_xent_prob_row)(const void *xv, const void *tv, void *gv, ptrdiff_t n,
                                              const fx_class_params *p, fx_carry *c,
                                              int next_in_run)
{
    const FX_T *x = (const FX_T *)xv, *t = (const FX_T *)tv;
    FX_T *g = (FX_T *)gv;
    FX_T *out = (FX_T *)fx_carry_out(c, g);
    const FX_T m = FX_FN(fx_max_of)(x, n, c);
    const double eps = p->smoothing;
    double mass, gap;
    FX_FN(fx_target_sums)(x, t, (const FX_T *)p->weight, n, m, 1.0 - eps, eps / (double)n, &mass,
                          &gap);
    /* the prediction is right where the target's first maximal class is x's (before g);
     * a target of NaNs alone has none (truth == n) */
    const ptrdiff_t truth = p->correct ? FX_FN(fx_first_equal)(t, n, FX_FN(fx_row_max)(t, n)) : n;
    const int top = truth < n && FX_FN(fx_is_first_max)(x, truth, m);
    const double s = FX_FN(fx_exp_sum)(x, out, n, m, c, next_in_run);
    fx_finish f;
    const double loss = FX_FN(fx_prob_finish)(&f, n, t, p, m, mass, gap, s, p->row, top);
    if (out) FX_FN(fx_hand_on)(c, g, out, n, &f);
    return loss;
}

/* softmax (log_softmax when `log`) of the row x[0:n] into out (out may be x).
 * c and next_in_run as in fx_xent_index_row. */
FX_ATTR static inline void FX_FN(fx_softmax_row)(const FX_T *x, FX_T *out, ptrdiff_t n,
                                                 int log_space, fx_carry *c, int next_in_run)
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

FX_ATTR static void FX_FN(fx_softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c,
                                      int next_in_run)
{
    FX_FN(fx_softmax_row)((const FX_T *)x, (FX_T *)out, n, 0, c, next_in_run);
}

FX_ATTR static void FX_FN(fx_log_softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c,
                                          int next_in_run)
{
    FX_FN(fx_softmax_row)((const FX_T *)x, (FX_T *)out, n, 1, c, next_in_run);
}

/* -w_y x_y, the loss of a row of log-probabilities x[0:n] whose target is
 * the class y (nll_loss); gradient into g (may be x, or NULL). */
FX_ATTR static double FX_FN(fx_nll_index_row)(const void *xv, void *gv, ptrdiff_t n, ptrdiff_t y,
                                              const fx_class_params *p)
{
    const FX_T *x = (const FX_T *)xv, *w = (const FX_T *)p->weight;
    FX_T *g = (FX_T *)gv;
    const double sw = p->sample_weight ? p->sample_weight[p->row] : 1.0;
    const double w_y = sw * (w ? (double)w[y] : 1.0);
    const double loss = -w_y * (double)x[y]; /* read before g (perhaps x) is written */
    if (p->correct) {
        /* a row holding NaN counts as not correct, as in the softmax losses */
        const FX_T m = FX_FN(fx_row_max)(x, n);
        int has_nan = 0;
        for (ptrdiff_t i = 0; i < n; i++) has_nan |= isnan(x[i]);
        p->correct[p->row] = (unsigned char)(!has_nan && FX_FN(fx_is_first_max)(x, y, m));
    }
    if (g) {
        memset(g, 0, (size_t)n * sizeof(FX_T));
        g[y] = (FX_T)(-w_y * p->scale);
    }
    return loss;
}

/* log(sum(exp(x))) of a row, as scipy.special.logsumexp: +-inf maxima give
 * +-inf (NaN if the row holds a NaN) rather than inf - inf. c and
 * next_in_run as in fx_xent_index_row. */
FX_ATTR static double FX_FN(fx_logsumexp_row)(const void *xv, ptrdiff_t n, fx_carry *c,
                                              int next_in_run)
{
    const FX_T *x = (const FX_T *)xv;
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

/* Binary cross-entropy with logits, elementwise: PyTorch's
 * loss_i = w_i ((1 - t_i) x_i + l_i (log1p(exp(-|x_i|)) + max(-x_i, 0)))
 * with l_i = 1 + (pw_i - 1) t_i, written for x_i < 0 as
 * w_i (pw_i t_i |x_i| + l_i log1p(exp(-|x_i|))), coefficients first, so that
 * nothing cancels or overflows on the way; and g_i = scale w_i (l_i sigmoid(x_i) - pw_i t_i),
 * which stays exact where sigmoid(x_i) is tiny. float works in float, as
 * PyTorch (log1p by fx_log1p_unit); double takes log1p(u) as log(v) corrected
 * for the rounding of v = 1 + u (fx_bce_log1p_wide). */

/* log1p(u) from u = exp(-|x|) in (0, 1], v = 1 + u and inv_v = 1 / v, in double. */
FX_ATTR static inline double FX_FN(fx_bce_log1p_wide)(double u, double v, double inv_v)
{
    return FX_FN(fx_log_sum)(v) - ((v - 1) - u) * inv_v;
}

/* The loss of element i (and its gradient into *grad, times f_scale), in
 * FX_T. w and pw may be NULL (weights of 1): called with NULL constants, the
 * compiler drops them from the loop. */
FX_ATTR static inline FX_T FX_FN(fx_bce_element)(const FX_T *x, const FX_T *t, const FX_T *w,
                                                 const FX_T *pw, ptrdiff_t i, FX_T f_scale,
                                                 FX_T *grad)
{
    const FX_T xi = x[i], ti = t[i];
    const FX_T wi = w ? w[i] : 1, pwi = pw ? pw[i] : 1;
    const int neg = xi < 0; /* the one comparison every choice below uses */
    const FX_T u = FX_FN(fx_exp)(FX_FN(fx_neg_abs)(xi));
    const FX_T v = 1 + u, inv_v = 1 / v;
#if FX_DOUBLE
    const FX_T log1p_u = FX_FN(fx_bce_log1p_wide)(u, v, inv_v);
#else
    const FX_T log1p_u = FX_FN(fx_log1p_unit)(u);
#endif
    const FX_T li = pwi == 1 ? 1 : 1 + (pwi - 1) * ti;
    const FX_T loss_i = (neg ? -(wi * pwi * ti) * xi : (wi * (1 - ti)) * xi) + (wi * li) * log1p_u;
    *grad = f_scale * wi * (li * ((neg ? u : 1) * inv_v) - pwi * ti);
    return loss_i;
}

#if !FX_DOUBLE
/* The loss of element i in double (from the float exp, as fx_bce_element):
 * for the rare chunk whose float sum is not finite. */
FX_ATTR static double FX_FN(fx_bce_element_wide)(const FX_T *x, const FX_T *t, const FX_T *w,
                                                 const FX_T *pw, ptrdiff_t i)
{
    const double xi = (double)x[i], ti = (double)t[i];
    const double wi = w ? (double)w[i] : 1, pwi = pw ? (double)pw[i] : 1;
    const int neg = xi < 0;
    const double u = (double)FX_FN(fx_exp)(FX_FN(fx_neg_abs)(x[i]));
    const double v = 1 + u, inv_v = 1 / v;
    const double log1p_u = FX_FN(fx_bce_log1p_wide)(u, v, inv_v);
    const double li = pwi == 1 ? 1 : 1 + (pwi - 1) * ti;
    return (neg ? -(wi * pwi * ti) * xi : (wi * (1 - ti)) * xi) + (wi * li) * log1p_u;
}
#endif

/* The vector loop over the m elements of a chunk from c0: gradients into gc,
 * losses into buf. */
FX_ATTR static inline void FX_FN(fx_bce_chunk)(const FX_T *x, const FX_T *t, const FX_T *w,
                                               const FX_T *pw, ptrdiff_t c0, ptrdiff_t m,
                                               FX_T f_scale, FX_T *gc, FX_T *buf)
{
    FX_SIMD()
    for (ptrdiff_t j = 0; j < m; j++)
        buf[j] = FX_FN(fx_bce_element)(x, t, w, pw, c0 + j, f_scale, &gc[j]);
}

#define FX_BCE_CHUNK 256
/* The losses of x[0:n] summed (and into loss, gradients into g; both may be
 * NULL). w and pw are arrays, both NULL where both weights are 1 (a loop of
 * its own: the common case, measurably faster). */
FX_ATTR static double FX_FN(fx_bce_logits_span)(const void *xv, const void *tv, const void *wv,
                                                const void *pwv, void *gv, void *loss_v,
                                                ptrdiff_t n, double scale)
{
    const FX_T *x = (const FX_T *)xv, *t = (const FX_T *)tv;
    const FX_T *w = (const FX_T *)wv, *pw = (const FX_T *)pwv;
    FX_T *g = (FX_T *)gv, *loss = (FX_T *)loss_v;
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
        if (w)
            FX_FN(fx_bce_chunk)(x, t, w, pw, c0, m, f_scale, gc, buf);
        else
            FX_FN(fx_bce_chunk)(x, t, NULL, NULL, c0, m, f_scale, gc, buf);
        double chunk = 0.0;
        FX_SIMD(reduction(+ : chunk))
        for (ptrdiff_t j = 0; j < m; j++) chunk += (double)buf[j];
#if !FX_DOUBLE
        if (!(chunk - chunk == 0.0)) {
            /* A loss beyond float's range (or a NaN): the sum again, in
             * double, so that a mean of such losses stays finite. Rare. */
            chunk = 0.0;
            for (ptrdiff_t j = 0; j < m; j++)
                chunk += FX_FN(fx_bce_element_wide)(x, t, w, pw, c0 + j);
        }
#endif
        total += chunk;
        if (in_place) memcpy(g + c0, chunk_grad, (size_t)m * sizeof(FX_T));
        if (loss) memcpy(loss + c0, buf, (size_t)m * sizeof(FX_T));
    }
    return total;
}

/* out = exp(x - m) over n elements, m their maximum (into *max); returns
 * the sum of the exps, in double: a part of a row split across threads
 * (_kernels.pyx's _run_split_rows), scaled afterwards. out may be x. */
FX_ATTR static double FX_FN(fx_exp_sum_part)(const void *xv, void *out_v, ptrdiff_t n, double *max)
{
    const FX_T *x = (const FX_T *)xv;
    FX_T *out = (FX_T *)out_v;
    const FX_T m = FX_FN(fx_row_max)(x, n);
    fx_carry alone; /* a run of its own: no row around it, nothing pending */
    memset(&alone, 0, sizeof alone);
    *max = (double)m;
    return FX_FN(fx_exp_sums)(x, out, n, m, &alone, 0, NULL);
}

/* The mean's pass over the labels without weights: a branch-free count,
 * vectorised for this instance's instruction set (64-bit unsigned compares:
 * the baseline x86-64 has none, and ran it scalar, a sixth of a whole call
 * at 65536 x 10 float32). */
FX_ATTR static int FX_FN(fx_count_labels)(const int64_t *y, ptrdiff_t rows, ptrdiff_t n,
                                          int64_t ignore_index, ptrdiff_t *counted)
{
    ptrdiff_t count = 0;
    uint64_t bad = 0;
    FX_SIMD(reduction(+ : count) reduction(| : bad))
    for (ptrdiff_t i = 0; i < rows; i++) {
        const uint64_t kept = y[i] != ignore_index;
        count += (ptrdiff_t)kept;
        bad |= kept & ((uint64_t)y[i] >= (uint64_t)n);
    }
    *counted = count;
    return bad != 0;
}

/* Test-only (fastxent._kernels' _exp and friends): the elementwise functions
 * of this instance over arrays, in loops vectorised as the kernels' are. */
FX_ATTR static void FX_FN(fx_test_exp)(const void *dv, void *out_v, ptrdiff_t n)
{
    const FX_T *d = (const FX_T *)dv;
    FX_T *out = (FX_T *)out_v;
    FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) out[i] = FX_FN(fx_exp)(d[i]);
}

FX_ATTR static void FX_FN(fx_test_log_sum)(const double *v, double *out, ptrdiff_t n)
{
    FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) out[i] = FX_FN(fx_log_sum)(v[i]);
}

/* log1p(u) for u in [0, 1] as the binary cross-entropy takes it. */
FX_ATTR static void FX_FN(fx_test_log1p)(const void *uv, void *out_v, ptrdiff_t n)
{
    const FX_T *u = (const FX_T *)uv;
    FX_T *out = (FX_T *)out_v;
    FX_SIMD()
    for (ptrdiff_t i = 0; i < n; i++) {
#if FX_DOUBLE
        const FX_T v = 1 + u[i], inv_v = 1 / v;
        out[i] = FX_FN(fx_bce_log1p_wide)(u[i], v, inv_v);
#else
        out[i] = FX_FN(fx_log1p_unit)(u[i]);
#endif
    }
}
#undef FX_BCE_CHUNK
#undef FX_SUM_BLOCK
#undef FX_STREAM_CHUNK
#undef FX_PREFETCH_AHEAD

/* The end of a thread's run: the last pending row finished and streamed
 * out, the streamed stores ordered before what follows. */
FX_ATTR static void FX_FN(fx_run_end)(fx_carry *c, ptrdiff_t n)
{
    if (c->pending) FX_FN(fx_stream_part)(c, n, n);
    c->pending = NULL;
    FX_STREAM_FENCE();
}

static const fx_rows FX_FN(fx_rows) = {
    .xent_index = FX_FN(fx_xent_index_row),
    .xent_index_short = FX_FN(fx_xent_index_short),
    .xent_prob = FX_FN(fx_xent_prob_row),
    .nll_index = FX_FN(fx_nll_index_row),
    .softmax = FX_FN(fx_softmax),
    .log_softmax = FX_FN(fx_log_softmax),
    .logsumexp = FX_FN(fx_logsumexp_row),
    .bce_logits = FX_FN(fx_bce_logits_span),
    .run_end = FX_FN(fx_run_end),
    .exp_sum_part = FX_FN(fx_exp_sum_part),
    .count_labels = FX_FN(fx_count_labels),
    .test_exp = FX_FN(fx_test_exp),
    .test_log_sum = FX_FN(fx_test_log_sum),
    .test_log1p = FX_FN(fx_test_log1p),
};

#undef FX_FN
#undef FX_CAT
#undef FX_CAT2
