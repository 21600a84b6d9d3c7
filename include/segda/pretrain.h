/* Classification pretraining of a segmentation model's backbone on an
 * image-folder dataset (DIR/{train,val}/CLASS/NAME.png or .jpg): the benchmark's
 * stand-in for ImageNet initialisation, since published weights cannot be
 * downloaded everywhere. Not here: segmentation training (train.h).
 *
 * The network is the segmentation model itself: backbone -> global average
 * pool of `feat` (the last backbone block) -> a linear head (a 1x1 conv on the
 * pooled map) -> cross-entropy. The segmentation head is frozen and keeps its
 * initial values. The checkpoint holds the model's tensors without prefix
 * (so `segda train --init CKPT --model NAME` loads the backbone and its BN
 * statistics) and the classifier under the "pretrain:" namespace
 * ("pretrain:fc.weight" [K,C,1,1], "pretrain:fc.bias" [K]), which model loads
 * never look at; metadata "method" = "pretrain", "pretrain" = a one-line
 * summary, "pretrain_classes" = the class names, comma-separated.
 *
 * The same file is the run's resumable state, saved atomically at every
 * evaluation, every save_every iterations, on a stop and at the end: SGD
 * momentum under "opt:" (model groups) and "opt:pretrain." (the head) with
 * step counts in metadata "opt_steps" / "opt_steps:pretrain:", the loss of
 * every iteration done under "pretrain_state:loss", "iteration", and the
 * options of the run as `key = value` lines in "config". All of these are in
 * namespaces that model and head loads skip. */
#ifndef SEGDA_PRETRAIN_H
#define SEGDA_PRETRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

/* ---- image folders ---- */
/* One split of an image-folder dataset, decoded into memory as RGB u8.
 * Classes are the sorted names of the split's sub-folders; images are the
 * .png/.jpg/.jpeg files in each (sorted; hidden and other files skipped).
 * Grey and RGBA images become RGB, 16-bit ones 8-bit. Images whose shorter
 * side exceeds max_side (> 0) are shrunk to it on load, bounding memory. */
typedef struct sd_image_folder {
    int n_classes;
    char **classes;          /* [n_classes] owned names */
    int n;                   /* images */
    int *label;              /* [n] class index */
    int *w, *h;              /* [n] */
    uint8_t **rgb;           /* [n] -> [h][w][3] */
    char **paths;            /* [n] file paths, for messages */
} sd_image_folder;

/* Reads DIR/SPLIT. classes/n_classes: the class list the split must have
 * (e.g. val must match train), or NULL/0 to take it from the folders.
 * Errors (SD_ERR_IO / SD_ERR_DATA) name the path: a missing split folder, a
 * split with no class folders, a class folder without images, a class list
 * that differs from the expected one, an unreadable or undecodable image. */
sd_status sd_image_folder_load(sd_image_folder *f, const char *dir, const char *split,
                               char *const *classes, int n_classes, int max_side);
void sd_image_folder_free(sd_image_folder *f);

/* ---- pretraining ---- */
typedef struct sd_pretrain_opts {
    const char *data;        /* image-folder root with train/ and val/ */
    const char *model;       /* segmentation model name ("deeplab-mini", ...) */
    const char *out;         /* checkpoint path (.safetensors) */
    int iters;               /* default 1500 */
    int batch;               /* default 32 */
    float lr;                /* default 0.05; poly decay (power 0.9) to 0 */
    float momentum;          /* default 0.9 */
    float weight_decay;      /* default 1e-4 */
    int size;                /* network input side in pixels; default 64 */
    float scale_min;         /* random-resized crop: area fraction in [scale_min, 1]; default 0.35 */
    uint64_t seed;           /* default 1; same seed and threads -> byte-identical checkpoint */
    int val_every;           /* evaluate on val every K iterations (0: only at the end); default 500 */
    int log_every;           /* progress line every K iterations; default 50 */
    int save_every;          /* also save every K iterations (0: at evaluations and the end only); default 0 */
    int stop_after;          /* stop and save after this many iterations, as an interrupt would (0: run all) */
    bool resume;             /* continue the run saved in out (see sd_pretrain_run) */
    const char *tb;          /* TensorBoard event file in this directory (loss/ce, train/lr, val/top1 in
                              * percent); NULL or "" = none. `segda pretrain` defaults to CKPT.tb/ */
} sd_pretrain_opts;

void sd_pretrain_opts_init(sd_pretrain_opts *o);

typedef struct sd_pretrain_result {
    int classes;             /* classes of the dataset */
    int n_train, n_val;      /* images */
    double train_loss;       /* mean training loss over the last 10% of iterations */
    double val_top1;         /* top-1 accuracy on val after the last iteration, in [0, 1] */
    double best_val_top1;    /* best of the evaluations */
    double seconds;          /* wall-clock time of the training loop (evaluations included) */
    int start_iteration;     /* 0, or the iteration a resumed run continued from */
    int iterations;          /* iterations done when the run returned */
    bool finished;           /* iterations == iters: the checkpoint is the final one */
} sd_pretrain_result;

/* Trains and writes o->out. Progress goes to sd_log level 1. res may be NULL.
 * Errors name the folder, file or option at fault.
 * - A fresh run (resume false) refuses an existing o->out (SD_ERR_ARG).
 * - resume: continues the run saved in o->out; the result is byte-identical
 *   to an uninterrupted run. The options that define the run (data, model,
 *   batch, lr, momentum, weight_decay, size, scale_min, seed) must equal the
 *   saved ones: a difference is SD_ERR_ARG naming the option. iters may
 *   differ, as in `segda train --resume`: the poly schedule then follows the
 *   new count. A finished run returns SD_OK at once with res->finished and
 *   start_iteration == iterations. A missing or unreadable checkpoint is an
 *   error naming the file.
 * - stop_after N: after iteration N the state is saved and SD_OK returned
 *   with finished false. sd_request_stop (core.h; a SIGINT handler) does
 *   the same at the next iteration boundary but returns SD_ERR_INTERRUPTED.
 * - A non-finite loss stops with SD_ERR_NUMERIC naming the iteration; o->out
 *   keeps the last state saved (the message says which iteration).
 * - The loop is the training driver's (src/train/driver.c): the state is
 *   saved before each val evaluation (again after it, with the new top-1),
 *   and an evaluation that fails is reported and survived (eval_failures in
 *   OUT.summary.json). */
sd_status sd_pretrain_run(const sd_pretrain_opts *o, sd_pretrain_result *res);

/* The options a checkpoint written by sd_pretrain_run was run with (every
 * field of sd_pretrain_opts but out, log_every, stop_after and resume, which
 * keep their values in *o). data and model point into *store, which the
 * caller frees. Errors name the file. */
sd_status sd_pretrain_read_opts(const char *ckpt, sd_pretrain_opts *o, char **store);

/* Top-1 accuracy of the checkpoint written by sd_pretrain_run on DIR/val
 * (its "pretrain:" head and the model's backbone), at input side `size`. */
sd_status sd_pretrain_eval(const char *ckpt, const char *data, int size, int batch, double *top1);

#endif
