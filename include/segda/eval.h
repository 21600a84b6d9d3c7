/* Evaluation as the official Cityscapes evaluator (cityscapesScripts,
 * evalPixelLevelSemanticLabeling) does it: one confusion matrix over the
 * whole split, class IoU, category IoU, the 19/16/13-class means, accuracies,
 * and the table / CSV / JSON writers. The core works on plain arrays; the
 * runners at the end read labels through data.h and predictions as PNGs.
 * No model code: a model enters as a callback returning logits.
 *
 * Why a 19 x 20 matrix is exactly the official 34 x 34 one. The official
 * script counts every (ground-truth id, predicted id) pair over label ids
 * 0..33 and then, for an evaluated class c (ignoreInEval false, i.e. trainId
 * != 255):
 *     TP = M[c][c]
 *     FN = row sum of c minus TP          (predictions of ANY other id, ignored ids included)
 *     FP = column c summed over the rows of evaluated ids other than c
 *                                          (pixels whose ground truth is ignored cost nothing)
 * and for a category K with evaluated ids S (getIouScoreForCategory, computed
 * on the matrix, not by averaging class IoUs):
 *     TP = sum M[S][S], FN = row sums of S minus TP,
 *     FP = columns S summed over evaluated rows outside S.
 * Rows of ignored ground-truth ids never enter any formula, and predicted
 * ignored ids only ever enter as FN. So rows are the 19 trainIds, columns are
 * the 19 trainIds plus one column SD_EVAL_VOID for "predicted an id that is
 * not an evaluated class" (label ids 0-6, 9, 10, 14-16, 18, 29, 30; trainId
 * 255), and every IoU is identical to the official one.
 *
 * A class or category whose TP + FP + FN is 0 (absent from the ground truth
 * and never predicted on valid ground truth) is absent: NAN in the results,
 * null in JSON, "-" in tables, and left out of every mean (as the official
 * getScoreAverage skips NaN). */
#ifndef SEGDA_EVAL_H
#define SEGDA_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "segda/core.h"
#include "segda/labels.h"
#include "segda/progress.h"

#define SD_EVAL_VOID SD_NUM_CLASSES        /* column: prediction of a non-evaluated id */
#define SD_EVAL_COLS (SD_NUM_CLASSES + 1)

typedef struct sd_confusion {
    uint64_t counts[SD_NUM_CLASSES][SD_EVAL_COLS]; /* [gt trainId][pred trainId | SD_EVAL_VOID] */
    uint64_t ignored;                              /* pixels with ignored ground truth (not scored) */
    int64_t images;                                /* images added */
} sd_confusion;

/* How prediction values are coded. */
typedef enum sd_pred_kind {
    SD_PRED_TRAIN_IDS = 0, /* 0..18; 255 = "no class" (scored as a wrong prediction); 19..254 are errors */
    SD_PRED_LABEL_IDS,     /* Cityscapes label ids 0..33 as the test server takes them; 34..255 are errors */
} sd_pred_kind;

void sd_confusion_init(sd_confusion *cm);
/* cm += other (both must describe the same protocol; e.g. per-thread matrices). */
void sd_confusion_merge(sd_confusion *cm, const sd_confusion *other);

/* Adds one image: gt holds trainIds (0..18, 255 ignored), pred holds values
 * of `kind`, both h*w row-major. A value outside its space gives
 * SD_ERR_DATA naming `name` (the prediction's or the ground truth's file),
 * the value and its pixel, and leaves cm unchanged. */
sd_status sd_confusion_add(sd_confusion *cm, const uint8_t *gt, const uint8_t *pred, int w, int h,
                           sd_pred_kind kind, const char *name);

/* Bilinear upsampling of logits [c][h][w] (float, CHW) to out_h x out_w
 * followed by argmax over c, computed one output row at a time so the
 * c x out_h x out_w upsampled tensor is never allocated. Matches PyTorch's
 * F.interpolate(mode="bilinear", align_corners=...) + argmax(dim=0) (same
 * float operations, same source-index formula; ties go to the lowest class).
 * out: uint8_t[out_h*out_w]; c must be 1..255. */
sd_status sd_upsample_argmax(const float *logits, int c, int h, int w, int out_h, int out_w,
                             bool align_corners, uint8_t *out);

/* Upsamples logits [SD_NUM_CLASSES][h][w] to the ground truth's size
 * (gt_w x gt_h trainIds), takes the argmax and accumulates, row by row. */
sd_status sd_confusion_add_logits(sd_confusion *cm, const float *logits, int c, int h, int w,
                                  const uint8_t *gt, int gt_w, int gt_h, bool align_corners,
                                  const char *name);

/* Metrics derived from a matrix. Fractions in [0, 1]; NAN = absent. */
typedef struct sd_eval_result {
    double class_iou[SD_NUM_CLASSES];
    double class_acc[SD_NUM_CLASSES];       /* TP / GT pixels; NAN when the class has no GT pixel */
    double category_iou[SD_NUM_CATEGORIES];
    double miou[SD_PROTOCOL_COUNT];          /* indexed by sd_protocol */
    double pixel_accuracy;                   /* sum TP / scored pixels (all 19 classes) */
    double mean_accuracy;                    /* mean of class_acc over present classes (all 19) */
    uint64_t scored_pixels;                  /* pixels with valid ground truth */
} sd_eval_result;

void sd_eval_compute(const sd_confusion *cm, sd_eval_result *out);
/* Mean of the non-NAN class IoUs among protocol p's classes; NAN if none. */
double sd_eval_mean_iou(const double class_iou[SD_NUM_CLASSES], sd_protocol p);

/* What was evaluated and how: printed above every table and written as the
 * JSON "protocol" object, so a number is never reported without its setup. */
typedef struct sd_eval_setup {
    sd_protocol protocol;      /* the table's classes and main mean */
    const char *dataset;       /* e.g. "cityscapes:/data/cs" (NULL = not stated) */
    const char *split;         /* e.g. "val" (NULL = not stated) */
    const char *source;        /* "predictions (trainIds)", "predictions (labelIds)", "logits" */
    int gt_w, gt_h;            /* ground-truth resolution; 0 when sizes vary */
    int align_corners;         /* 1/0 when logits were upsampled, -1 when not applicable */
    int64_t images;
    int64_t skipped;           /* images skipped (--skip-missing) */
} sd_eval_setup;

/* A named row of results (one model or prediction set). */
typedef struct sd_eval_row {
    const char *name;
    sd_eval_result r;
    /* the 8 thing classes' iIoU (person .. bicycle, fractions, NAN absent)
     * and their mean, where the dataset has instance files (eval_inst.h);
     * has_iiou false: not computed (--csv/--json leave them out / null) */
    bool has_iiou;
    double iiou[8], iiou_mean;
} sd_eval_row;

/* The protocol block: protocol, resolution, align_corners, images. */
void sd_eval_setup_write(FILE *f, const sd_eval_setup *s);

/* The papers' layout: one column per class of protocol p (short names), one
 * row per name, IoU in percent with one decimal, "-" for absent, the
 * protocol's mIoU last (for mIoU-16 the mIoU-13 "mIoU*" follows it, as the
 * SYNTHIA tables print both). class_iou[i] is row i's 19 IoUs (fractions,
 * NAN absent). Reused by the training demo for its results table. */
void sd_iou_table_write(FILE *f, sd_protocol p, int n_rows, const char *const *names,
                        const double (*class_iou)[SD_NUM_CLASSES]);
/* The same table for full results, then one line per row with category IoU,
 * pixel accuracy and mean accuracy. */
void sd_eval_table_write(FILE *f, sd_protocol p, const sd_eval_row *rows, int n_rows);

/* CSV: header "name,<19 class names>,miou_19,miou_16,miou_13,pixel_accuracy,
 * mean_accuracy,<7 categories>", one line per row, fractions, empty = absent. */
sd_status sd_eval_csv_write(const char *path, const sd_eval_row *rows, int n_rows);
/* JSON: {"protocol": {...}, "images": N, "models": [{"name", "miou_19",
 * "miou_16", "miou_13", "pixel_accuracy", "mean_accuracy", "class_iou": {...},
 * "category_iou": {...}}]}, null for absent. Written to PATH.tmp then renamed. */
sd_status sd_eval_json_write(const char *path, const sd_eval_setup *s, const sd_eval_row *rows,
                             int n_rows);
/* Short class names for table headers ("road", "side.", "build.", ...). */
extern const char *const sd_class_short_names[SD_NUM_CLASSES];

/* Matching prediction files to ground-truth samples, as the official
 * getPrediction does: every regular file under `dir` (recursively) whose
 * name ends in .png is a candidate; a sample's key is its Cityscapes stem
 * CITY_SSSSSS_FFFFFF, which must appear in the file name (followed by a
 * non-digit or the end), or, for other datasets, its base name without
 * extension, which must equal the file's. Two candidates for one key is an
 * error naming both files.
 * `segda predict` writes NAME_trainIds.png, NAME_labelIds.png, NAME_color.png
 * and NAME_overlay.png side by side; so that its output folder can be scored
 * as it is, the companions that are not predictions of `kind` are passed
 * over, and in base-name mode the suffix of `kind` is not part of the name. */
typedef enum sd_match_mode {
    SD_MATCH_STEM = 0,   /* key appears in the file name (Cityscapes stems) */
    SD_MATCH_BASENAME,   /* key equals the file's base name without extension */
} sd_match_mode;

typedef struct sd_pred_match {
    char **paths;        /* [n_keys]: matched file (owned) or NULL when none */
    int n_keys;
    int n_files;         /* .png files found under dir */
    int n_unmatched;     /* files that matched no key (ignored, as the official tool does) */
} sd_pred_match;

sd_status sd_pred_match_dir(sd_pred_match *m, const char *dir, const char *const *keys, int n_keys,
                            sd_match_mode mode, sd_pred_kind kind);
void sd_pred_match_free(sd_pred_match *m);

/* ---- scoring prediction folders against a dataset (data.h) ---- */
struct sd_dataset;

/* Sample i's label as trainIds (0..18, 255), read without decoding the
 * image: ids outside the dataset's table are an error naming the file
 * unless the dataset was opened with allow_unknown_ids. *gt is malloc'd. */
sd_status sd_eval_read_gt(const struct sd_dataset *ds, int i, uint8_t **gt, int *w, int *h);

typedef struct sd_eval_pred_opts {
    const char *const *dirs;   /* [n_dirs] prediction folders: one confusion matrix (row) each */
    int n_dirs;
    sd_pred_kind kind;         /* trainIds (default) or Cityscapes label ids */
    bool skip_missing;         /* skip a sample lacking a prediction in ANY folder (rows stay comparable) */
    int threads;               /* images read in parallel; 0 = sd_threads() */
    sd_progress_mode progress; /* bar on stderr: auto (a TTY), on, off */
} sd_eval_pred_opts;

/* Matches every sample of ds (Cityscapes: by stem; others: by base name)
 * in each folder, reads prediction PNGs (8-bit, one channel; palette PNGs
 * as their indices) and accumulates cms[d] for folder d. Errors name the
 * file: no prediction (with the count of all missing), a size different
 * from the ground truth's, more than one channel or 16 bits, a value
 * outside the label space. Fills setup->images, ->skipped, ->gt_w/gt_h. */
sd_status sd_eval_pred_dirs(const struct sd_dataset *ds, const sd_eval_pred_opts *o,
                            sd_confusion *cms, sd_eval_setup *setup);

/* ---- scoring a model: the caller supplies logits per sample ---- */
struct sd_sample;
/* Runs the caller's model on one sample (image and label at their stored
 * sizes) and returns malloc'd logits [*c][*h][*w] at any resolution; the
 * runner frees them. */
typedef sd_status (*sd_eval_logits_fn)(void *ctx, const struct sd_sample *s, float **logits,
                                       int *c, int *h, int *w);

/* For every labelled sample of ds, in order: reads it, asks fn for logits,
 * upsamples them bilinearly to the label's full resolution (align_corners
 * as given; the field's AdaptSegNet/ADVENT evaluation uses True), takes the
 * argmax and accumulates into cm. Fills setup->images, gt_w/gt_h and
 * align_corners. Errors name the sample's image (callback failures) or
 * label file. */
sd_status sd_eval_logits(const struct sd_dataset *ds, sd_eval_logits_fn fn, void *ctx,
                         bool align_corners, sd_progress_mode progress, sd_confusion *cm,
                         sd_eval_setup *setup);

#endif
