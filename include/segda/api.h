/* Flat entry points for language bindings (the Python package in python/
 * loads them with ctypes): opaque handles and plain C types only, so a
 * binding never mirrors a segda struct whose layout may change. Each call
 * returns an sd_status and leaves its message in sd_errmsg() (core.h).
 * Buffers this file returns through `**` arguments are malloc'd: release
 * them with sd_api_free. Not here: anything that prints. */
#ifndef SEGDA_API_H
#define SEGDA_API_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_VERSION "0.1.0"
#define SD_VERSION_MAJOR 0

const char *sd_version(void);   /* SD_VERSION of the library actually loaded */
void sd_api_free(void *p);

/* Compute precision of every later prediction or training run: "f32",
 * "bf16" or "bf16-emulated" (as --precision). SD_ERR_ARG for another
 * word; bf16 without CPU support is SD_ERR_UNSUPPORTED with the message,
 * and the precision stays f32 (the CLI prints it as a warning). */
sd_status sd_api_set_precision(const char *name);
const char *sd_api_precision(void);  /* "f32" or "bf16" */

/* ---- prediction: a checkpoint and the options of `segda predict` ---- */
typedef struct sd_predictor sd_predictor;

/* Loads a checkpoint as sd_model_load does (strict: any missing/unexpected
 * tensor fails). Errors name the file. */
sd_status sd_predictor_open(const char *path, bool strict, sd_predictor **out);
void sd_predictor_free(sd_predictor *p);
int sd_predictor_classes(const sd_predictor *p);
const char *sd_predictor_model_name(const sd_predictor *p);
/* The options of segda predict: --size (net_w x net_h, 0 = as is), --scales
 * (n_scales 0 = {1}), --flip, --window (0 = whole image), --overlap,
 * --align-corners. Checked as the CLI checks them; SD_ERR_ARG naming the
 * bad value. */
sd_status sd_predictor_set_options(sd_predictor *p, int net_w, int net_h, int n_scales, const float *scales,
                                   bool flip, int win_w, int win_h, float overlap, bool align_corners);
/* px: 8-bit interleaved [h][w][c] (c 1, 3 or 4). probs [classes][h][w] and
 * pred [h][w] (trainIds, the argmax) may each be NULL. Exactly what
 * `segda predict` computes for the same pixels and options. */
sd_status sd_predictor_run(sd_predictor *p, const uint8_t *px, int w, int h, int c, float *probs, uint8_t *pred);

/* ---- images ---- */
/* Reads a PNG/JPEG as 8-bit interleaved pixels (16-bit samples keep their
 * high byte, as segda predict does; palette PNGs as their indices when
 * keep_palette, else expanded to RGB). */
sd_status sd_api_image_read(const char *path, bool keep_palette, uint8_t **px, int *w, int *h, int *c);

/* ---- evaluation on arrays (eval.h's protocol) ---- */
/* counts: uint64_t[19][20] (rows ground-truth trainIds, columns predicted
 * trainIds plus the void column), *ignored: pixels with ignored ground
 * truth. gt: trainIds (255 ignored); pred: trainIds, or Cityscapes label
 * ids when label_ids. A value outside its space is SD_ERR_DATA naming
 * `name`, the value and the pixel, and changes nothing. */
sd_status sd_api_confusion_add(uint64_t *counts, uint64_t *ignored, const uint8_t *gt, const uint8_t *pred, int w,
                               int h, bool label_ids, const char *name);
/* class_iou[19], miou[sd_api_protocol_count()] (mIoU-19, -16, -13, ...), fractions, NAN = absent. */
/* How many entries sd_api_eval_compute writes to miou (one per protocol:
 * 19, 16, 13, CamVid's shared classes, ...): callers size the array by it. */
int sd_api_protocol_count(void);
void sd_api_eval_compute(const uint64_t *counts, uint64_t ignored, double *class_iou, double *miou,
                         double *pixel_accuracy, double *mean_accuracy);

/* ---- datasets by spec (data.h) ---- */
typedef struct sd_api_dataset sd_api_dataset;
sd_status sd_api_dataset_open(const char *spec, const char *split, sd_api_dataset **out);
void sd_api_dataset_free(sd_api_dataset *d);
int sd_api_dataset_size(const sd_api_dataset *d);
bool sd_api_dataset_has_labels(const sd_api_dataset *d);
/* Sample i's stem and image path (NULL when i is out of range). */
const char *sd_api_dataset_stem(const sd_api_dataset *d, int i);
const char *sd_api_dataset_image_path(const sd_api_dataset *d, int i);
/* Sample i: RGB [h][w][3] and trainIds [lh][lw] (*label NULL, *lw = *lh = 0
 * without a label), each at its stored size. */
sd_status sd_api_dataset_read(const sd_api_dataset *d, int i, uint8_t **image, int *w, int *h, uint8_t **label,
                              int *lw, int *lh);

/* Scores the prediction PNGs under dir against d as `segda eval --pred`
 * does (matched by Cityscapes stem or base name; NAME_trainIds.png as
 * segda predict writes them) into counts/ignored (as above, added to).
 * skip_missing: samples without a prediction are skipped, not an error;
 * *images / *skipped (may be NULL) get the counts. */
sd_status sd_api_eval_folder(const sd_api_dataset *d, const char *dir, bool label_ids, bool skip_missing,
                             uint64_t *counts, uint64_t *ignored, int64_t *images, int64_t *skipped);

/* ---- training in-process ---- */
/* Called after every iteration with the iteration done (1-based), the
 * total, and this iteration's loss terms; a nonzero return stops the run
 * cleanly as SIGINT does (state saved; the run returns SD_ERR_INTERRUPTED). */
typedef int (*sd_api_progress_fn)(void *ctx, int64_t it, int64_t iters, int n_terms, const char *const *names,
                                  const double *values);
/* Runs `segda train` with the settings keys[i] = values[i] (the knobs of
 * segda train --help, without dashes). best_miou / final_miou (may be
 * NULL) get the run's best and final target-val mIoU-19, NAN when it was
 * not evaluated. */
sd_status sd_api_train(int n, const char *const *keys, const char *const *values, sd_api_progress_fn fn, void *ctx,
                       double *best_miou, double *final_miou);

/* ---- the demo in-process (demo.h) ---- */
/* Called for every event of the demo: kind (sd_demo_event_kind: 0 note,
 * 1 start, 2 done, 3 kept, 4 failed, 5 skipped, 6 iteration, 7 table),
 * text (the line segda demo prints), the run's name (NULL for notes and the
 * table), seed, miou (done/kept training runs; NAN otherwise), seconds; for
 * iterations it (1-based) of iters and the loss terms. A nonzero return
 * stops the demo (SD_ERR_INTERRUPTED). */
typedef int (*sd_api_demo_fn)(void *ctx, int kind, const char *text, const char *name, int seed, double miou,
                              double seconds, int64_t it, int64_t iters, int n_terms, const char *const *names,
                              const double *values);
/* Runs `segda demo` in this process (the in-process runner: one run after
 * another) with the options keys[i] = values[i] (the flags of segda demo
 * --help without dashes: "out", "iters", "no-gap" = "true", ...). An unknown
 * option or a bad value is SD_ERR_ARG naming it. */
sd_status sd_api_demo(int n, const char *const *keys, const char *const *values, sd_api_demo_fn fn, void *ctx);

#endif
