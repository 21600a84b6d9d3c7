/* Training curves of one or more runs on one chart (`segda plot`, the demo
 * report): a panel of loss terms (every run's terms on one shared axis, log
 * scale when the values span more than a factor of 30) and a panel of
 * validation mIoU-19 in percent, with ticks at 1-2-5 steps, axis labels and
 * a legend. Reads RUNDIR/log.jsonl; writes SVG text or a PNG drawn by
 * draw.h, chosen by the output's extension, with the same layout. */
#ifndef SEGDA_PLOT_H
#define SEGDA_PLOT_H

#include "segda/core.h"

typedef struct sd_plot_opts {
    int width, height;   /* pixels; 0 = 800 x 600 */
    const char *title;   /* NULL = none */
    int max_points;      /* a series longer than this is drawn as window means; 0 = 400 */
} sd_plot_opts;

/* labels[i] names run i in the legend (NULL, or a NULL entry: the
 * directory's last component). out ends in .svg or .png; written through a
 * temporary file, never half. Errors name the log file or the output. */
sd_status sd_plot_runs(int n_runs, const char *const *rundirs, const char *const *labels, const char *out,
                       const sd_plot_opts *opts);

/* Axis ticks at 1, 2 or 5 x 10^k covering [lo, hi] with about `target`
 * intervals: *first, *step and the count (at most 64). */
int sd_plot_nice_ticks(double lo, double hi, int target, double *first, double *step);

#endif
