/* The interface of the row functions: the options of the class losses as one
 * record (fx_class_params) and the table of row functions of one element type
 * and instruction set (fx_rows). _rows_impl.h fills one table per instance. */
#include "_fx_pipeline.h"
#ifndef FASTXENT_FX_ROWS_H
#define FASTXENT_FX_ROWS_H

/* ---- what a class loss's rows share: one record, passed by pointer ----
 * The row functions of the class losses take the options of the whole call
 * in this record, so that a new option is a new field (filled in one place of
 * _kernels.pyx, read in the finishing functions of _rows_impl.h), not a new
 * argument through every signature, table and extern. */
typedef struct {
    const void *weight;   /* one per class, of the row type; NULL: all 1 */
    double weight_total;  /* the sum of the weights (the number of classes without) */
    double smoothing;     /* label smoothing, in [0, 1] */
    double scale;         /* the gradient's factor: 1, or 1 / the mean's denominator */
    int64_t ignore_index; /* the label of rows that count for nothing */
    /* per-row options and side outputs, indexed by the row's place in the call */
    const double *sample_weight; /* one weight per row; NULL: all 1 */
    double z_loss;               /* the coefficient of lse^2 added to each row's loss; 0: off */
    void *lse;              /* out: each computed row's log-sum-exp, of the row type; or NULL */
    unsigned char *correct; /* out: 1 where the row's first maximum is its target; or NULL */
    ptrdiff_t row;          /* the row (a tile's first row) the call is at: set by the driver */
} fx_class_params;

/* ---- the row functions, as a table ----
 * One table type for both element types: x, g, t and the like point to
 * elements of the instance's type (float or double). c, next_in_run: see
 * fx_carry. */

#define FX_SHORT_ROW 16 /* rows up to this long take the tiled path */
#define FX_TILE_ROWS 64

typedef struct {
    /* softmax cross-entropy of one row whose target is the class y */
    double (*xent_index)(const void *x, void *g, ptrdiff_t n, ptrdiff_t y, const fx_class_params *p,
                         fx_carry *c, int next_in_run);
    /* the same for `rows` rows of at most FX_SHORT_ROW classes, tiled */
    double (*xent_index_short)(const void *x, void *g, ptrdiff_t rows, ptrdiff_t n,
                               const int64_t *y, const fx_class_params *p, void *row_loss,
                               ptrdiff_t *first_bad);
    /* softmax cross-entropy of one row against the class probabilities t */
    double (*xent_prob)(const void *x, const void *t, void *g, ptrdiff_t n,
                        const fx_class_params *p, fx_carry *c, int next_in_run);
    /* the negative log-likelihood of one row of log-probabilities */
    double (*nll_index)(const void *x, void *g, ptrdiff_t n, ptrdiff_t y, const fx_class_params *p);
    void (*softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c, int next_in_run);
    void (*log_softmax)(const void *x, void *out, ptrdiff_t n, fx_carry *c, int next_in_run);
    double (*logsumexp)(const void *x, ptrdiff_t n, fx_carry *c, int next_in_run);
    double (*bce_logits)(const void *x, const void *t, const void *w, const void *pw, void *g,
                         void *loss, ptrdiff_t n, double scale);
    /* the end of a thread's run: see fx_run_begin */
    void (*run_end)(fx_carry *c, ptrdiff_t n);
    /* out = exp(x - max x) into out (may be x), the max into *max; returns the
     * sum: a part of a row split across threads */
    double (*exp_sum_part)(const void *x, void *out, ptrdiff_t n, double *max);
    /* the mean's pass over the labels y[0:rows] (no weights): the labels not
     * ignore_index counted into *counted; 1 if one of them is outside [0, n) */
    int (*count_labels)(const int64_t *y, ptrdiff_t rows, ptrdiff_t n, int64_t ignore_index,
                        ptrdiff_t *counted);
    /* test-only: the elementwise functions over arrays */
    void (*test_exp)(const void *d, void *out, ptrdiff_t n);
    void (*test_log_sum)(const double *v, double *out, ptrdiff_t n);
    void (*test_log1p)(const void *u, void *out, ptrdiff_t n);
} fx_rows;

#endif /* FASTXENT_FX_ROWS_H */
