/* The per-row code of the fastxent kernels, as the Cython kernels
 * (_kernels.pyx) include it. By concern:
 *   _fx_platform.h  platform facts: compiler spellings, streaming stores,
 *                   what show_config reports
 *   _fx_pipeline.h  the row pipeline: carries, its rules, the finishing sweep
 *   _fx_rows.h      the row functions' interface: fx_class_params, fx_rows
 *   _fx_math.h      exp and log, branch-free (per instance)
 *   _rows_impl.h    the row functions (per instance)
 *   _fx_dispatch.h  the instances and the choice among them at run time */
#ifndef FASTXENT_ROWS_H
#define FASTXENT_ROWS_H

#include "_fx_dispatch.h"

#endif /* FASTXENT_ROWS_H */
