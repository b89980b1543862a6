/* The row pipeline: what a thread hands from one row of its run to the next
 * (fx_carry: the next row's maximum, the previous row's output waiting to
 * stream), its rules (fx_run_begin, fx_run_skip_row, run_end), and the last
 * sweep of a row's output (fx_finish). See docs/design.md. */
#include "_fx_platform.h"
#ifndef FASTXENT_FX_PIPELINE_H
#define FASTXENT_FX_PIPELINE_H

/* The streaming copy of the instruction set in use (fx_select_isa). */
static void (*fx_stream_copy)(void *dst, const void *src, size_t n) = fx_stream_copy_base;

/* Whether a pass that writes `total` bytes of output, in rows of row_bytes,
 * should stream them. The rows are then computed into a thread's scratch row
 * and streamed out while the next row is computed (see fx_exp_sum): no reads
 * of the output lines before they are written (a third of the traffic of a
 * fused pass), at the price of leaving none of the output in the cache. So
 * only outputs too large to stay in the cache anyway (the threshold's
 * measurements: docs/benchmarks.md), and rows whose two scratch copies stay
 * in the core's own cache beside the row being read. */
#define FX_STREAM_MAX_ROW_BYTES ((size_t)256 << 10)
static size_t fx_stream_min_bytes = (size_t)64 << 20; /* the tests lower it */
static int fx_streams(size_t total, size_t row_bytes)
{
    return FX_CAN_STREAM && total >= fx_stream_min_bytes && row_bytes <= FX_STREAM_MAX_ROW_BYTES;
}

/* Whether the output `out` of `total` bytes, in rows of row_bytes, streams
 * (fx_streams), also told whether its pages are mapped yet. An output on
 * fresh pages (an allocating call's) does not: the first write to a page
 * faults it in, and the system zeroes it through the cache, so normal stores
 * then land on cached lines and memory sees one write of each line; streaming
 * stores would send it the zeroes and then the values (about 1.2x the time
 * at 2048 x 32768 float32; docs/benchmarks.md). Probed in the middle (the
 * start shares its page with the allocator's header); outputs below
 * FX_FRESH_MIN_BYTES are not probed: they stream by the threshold alone. */
#define FX_FRESH_MIN_BYTES ((size_t)4 << 20)
static int fx_streams_into(const void *out, size_t total, size_t row_bytes)
{
    if (!fx_streams(total, row_bytes)) return 0;
    return total < FX_FRESH_MIN_BYTES || fx_page_resident((const char *)out + total / 2);
}

/* The last sweep over a row's output g: g = g * a - (c1 * t + c0) * w, where
 * a missing t or w counts as 1, then g[y] -= cy where y >= 0. Where the
 * output streams, it is applied part by part just before each part streams
 * (fx_stream_part), so that this sweep, too, overlaps the memory traffic.
 * active = 0: nothing to do (the output is final as computed). */
typedef struct {
    double a, c1, c0, cy;
    const void *t, *w;
    ptrdiff_t y;
    int active;
} fx_finish;

/* What a thread hands from one row of its run to the next (the row
 * functions take it as `c`, with next_in_run: whether the next row, at
 * x + n, is this thread's too):
 *  - the next row's maximum, which a row's exp sweep finds while it computes
 *    (see fx_exp_sum); has_max says it is there;
 *  - with streaming (scratch not NULL), the previous row's output, waiting in
 *    scratch[!cur] to be finished and streamed to `pending` during this row's
 *    exp sweep, while this row is computed into scratch[cur]; `finished` of
 *    its elements are. */
typedef struct {
    double max;
    int has_max;
    void *scratch[2];
    int cur;
    void *pending;
    fx_finish finish;
    ptrdiff_t finished;
} fx_carry;

/* The scratch memory a thread needs to stream rows of row_bytes: two rows,
 * each on whole cache lines. */
static size_t fx_scratch_bytes(size_t row_bytes)
{
    return 2 * ((row_bytes + 63) / 64 * 64);
}

/* ---- the row pipeline: the rules of a thread's run of rows ----
 * A thread computes a run of consecutive rows with one fx_carry:
 *   fx_run_begin(c, scratch, row_bytes)   before the run's first row;
 *   then, for each row in order, exactly one of
 *     - a row function of the table (fx_rows), told by next_in_run whether
 *       the next row, at x + n, is this thread's too; or
 *     - fx_run_skip_row(c), for a row no row function computes (an ignored
 *       label): the carried maximum was the skipped row's, not the next's;
 *   the table's run_end(c, n)             after the run's last row: the last
 *       pending row is finished and streamed, the streamed stores fenced.
 * Inside a row function, the row's maximum comes from fx_max_of (carried or
 * swept) and fx_exp_sum (or fx_exp_sums) is called exactly once: it streams the previous row
 * out and carries the next row's maximum on. Row functions that sweep no
 * exps (nll_index) and the short-row tiles (xent_index_short, whose rows
 * never stream) leave the carry alone, and are only used in runs of their own.
 *
 * fx_run_begin: streaming rows of row_bytes through `scratch`
 * (fx_scratch_bytes of them, line-aligned, the caller's: memory that stays
 * mapped from call to call, not fresh pages each time), or no streaming where
 * scratch is NULL. */
static void fx_run_begin(fx_carry *c, void *scratch, size_t row_bytes)
{
    memset(c, 0, sizeof *c);
    if (scratch && FX_CAN_STREAM) {
        c->scratch[0] = scratch;
        c->scratch[1] = (char *)scratch + fx_scratch_bytes(row_bytes) / 2;
    }
}

/* A row of the run that no row function computes: the maximum carried on to
 * it is not the next row's. (A row pending to stream stays pending: the next
 * row's exp sweep, or run_end, streams it.) */
static inline void fx_run_skip_row(fx_carry *c)
{
    c->has_max = 0;
}

/* The output row for the row whose output belongs at g: the current scratch
 * row when streaming (and there is an output), else g itself. */
static inline void *fx_carry_out(const fx_carry *c, void *g)
{
    return c->scratch[0] && g ? c->scratch[c->cur] : g;
}

#endif /* FASTXENT_FX_PIPELINE_H */
