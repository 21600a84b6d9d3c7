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
 * summary, "pretrain_classes" = the class names, comma-separated. */
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
} sd_pretrain_opts;

void sd_pretrain_opts_init(sd_pretrain_opts *o);

typedef struct sd_pretrain_result {
    int classes;             /* classes of the dataset */
    int n_train, n_val;      /* images */
    double train_loss;       /* mean training loss over the last 10% of iterations */
    double val_top1;         /* top-1 accuracy on val after the last iteration, in [0, 1] */
    double best_val_top1;    /* best of the evaluations */
    double seconds;          /* wall-clock time of the training loop (evaluations included) */
} sd_pretrain_result;

/* Trains and writes o->out (atomically). Progress goes to sd_log level 1.
 * res may be NULL. Errors name the folder, file or option at fault; a
 * non-finite loss stops with SD_ERR_NUMERIC naming the iteration and writes
 * nothing. */
sd_status sd_pretrain_run(const sd_pretrain_opts *o, sd_pretrain_result *res);

/* Top-1 accuracy of the checkpoint written by sd_pretrain_run on DIR/val
 * (its "pretrain:" head and the model's backbone), at input side `size`. */
sd_status sd_pretrain_eval(const char *ckpt, const char *data, int size, int batch, double *top1);

#endif
