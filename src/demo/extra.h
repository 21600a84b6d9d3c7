/* Pieces of the demo's report that --full adds (issues 18 and 19): the
 * gradient-ratio table and the translated-examples figure. The rest of the
 * report is report.c's. */
#ifndef SEGDA_DEMO_EXTRA_H
#define SEGDA_DEMO_EXTRA_H

#include <stdint.h>
#include <stdio.h>

#include "segda/core.h"

/* "## Gradient ratios" of report.md: per row whose run logged
 * grad_ratio_<term> (--log-grad-ratio), the mean, first and last logged
 * value of each term, from RUNDIR/log.jsonl. Rows without any are skipped;
 * nothing is written when no row has one. */
void demo_grad_ratio_section(FILE *f, const char *const *names, const char *const *rundirs, int n);

/* Paints a label map (trainIds, the Cityscapes palette; others black) into
 * an RGB sheet sw pixels wide at (x0, y0). */
void demo_paint_labels(uint8_t *px, int sw, int x0, int y0, const uint8_t *lab, int w, int h);

/* The translated-examples figure of a taskgan run: per real val image
 * (the first n_rows of val_spec) the columns real image, G_S(real), f's
 * prediction on G_S(real) and the ground truth; G_S and f are read from
 * the run's checkpoint `ckpt` (gen_s: tensors and the network). Writes the
 * PNG to png_path and an SVG with the PNG embedded under labelled columns
 * to svg_path. */
sd_status demo_translated_figure(const char *png_path, const char *svg_path, const char *val_spec, const char *ckpt,
                                 int n_rows);

#endif
