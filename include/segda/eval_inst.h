/* Instance-aware evaluation as cityscapesScripts defines it, for the 8
 * thing classes (person, rider, car, truck, bus, train, motorcycle,
 * bicycle = trainIds 11..18):
 *
 *  - iIoU (evalPixelLevelSemanticLabeling): the class IoU with each ground
 *    truth instance's TP and FN pixels weighted by avg_size[class] /
 *    instance size, so small objects count as much as large ones; FP is the
 *    plain pixel count from the confusion matrix (eval.h). The official
 *    average sizes are Cityscapes' at 2048x1024; sd_iiou_init scales them by
 *    the images' area / (2048*1024), which changes nothing at Cityscapes'
 *    resolution and keeps the TP/FN vs FP balance at other sizes.
 *  - AP and AP50 (evalInstanceLevelSemanticLabeling) of predicted instance
 *    masks with scores: ground truth instances of >= 100 pixels, overlaps
 *    (IoU) 0.50:0.95:0.05, strictly greater than the threshold to match;
 *    every further prediction matched to one ground truth is a false
 *    positive; a prediction matching nothing is a false positive unless
 *    more than `overlap` of its pixels lie on void ground truth, crowd
 *    ("group") regions or instances under 100 pixels; precision/recall
 *    integrated as the official code does (its convolution of recalls).
 *    AP of a class: mean over the 10 overlaps; 0 when the class has ground
 *    truth but no prediction anywhere, NAN when it has no ground truth.
 *    Means over classes skip NAN.
 *
 * Ground truth is the raw instanceIds image (uint16, instances.h's
 * encoding), since the AP protocol uses crowd regions (a thing label's plain
 * id) that sd_instances does not list. */
#ifndef SEGDA_EVAL_INST_H
#define SEGDA_EVAL_INST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "segda/core.h"
#include "segda/eval.h"
#include "segda/instances.h"

/* One predicted instance: a thing class, a confidence and a full-image
 * binary mask (non-zero = inside), as a detector returns them. */
typedef struct sd_inst_pred {
    int train_id;          /* 11..18; other values are passed over (as the official tool passes over non-instance labels) */
    float score;
    const uint8_t *mask;   /* [h][w] of the image */
} sd_inst_pred;

/* Cityscapes' average instance sizes in pixels at 2048x1024
 * (cityscapesScripts args.avgClassSize), by trainId - 11. */
extern const double sd_cityscapes_avg_inst_size[SD_NUM_THING_CLASSES];

/* ---- iIoU ---- */
typedef struct sd_iiou {
    double avg_size[SD_NUM_THING_CLASSES];   /* weights' numerators */
    double tp_w[SD_NUM_THING_CLASSES], fn_w[SD_NUM_THING_CLASSES];
    uint64_t tp[SD_NUM_THING_CLASSES], fn[SD_NUM_THING_CLASSES];
    int64_t instances[SD_NUM_THING_CLASSES];
} sd_iiou;

/* Zeroes the sums; avg_size = the official sizes * w*h / (2048*1024) (w, h:
 * the ground truth's size; 2048x1024 gives the official numbers exactly). */
void sd_iiou_init(sd_iiou *s, int w, int h);
void sd_iiou_merge(sd_iiou *s, const sd_iiou *other);
/* Adds one image: pred holds trainIds [h][w] (255: none), gt its decoded
 * instances (same size, else SD_ERR_ARG naming `name`). */
sd_status sd_iiou_add(sd_iiou *s, const sd_instances *gt, const uint8_t *pred, const char *name);
/* iiou[k] for trainId 11 + k (NAN: no instance and no FP) and their mean
 * over present classes (*mean, NAN if none). FP comes from cm. */
void sd_iiou_compute(const sd_iiou *s, const sd_confusion *cm, double iiou[SD_NUM_THING_CLASSES], double *mean);

/* ---- AP ---- */
#define SD_AP_OVERLAPS 10
#define SD_AP_MIN_REGION 100

typedef struct sd_ap_list { double *score; uint8_t *hit; int n, cap; } sd_ap_list;

typedef struct sd_ap {
    sd_ap_list e[SD_NUM_THING_CLASSES][SD_AP_OVERLAPS];  /* matched GT (hit 1) and false positives (hit 0) */
    int64_t hard_fn[SD_NUM_THING_CLASSES][SD_AP_OVERLAPS]; /* GT instances with no match */
    bool have_gt[SD_NUM_THING_CLASSES], have_pred[SD_NUM_THING_CLASSES];
    int64_t gt_instances[SD_NUM_THING_CLASSES], predictions[SD_NUM_THING_CLASSES];
} sd_ap;

typedef struct sd_ap_result {
    double ap[SD_NUM_THING_CLASSES][SD_AP_OVERLAPS];
    double class_ap[SD_NUM_THING_CLASSES], class_ap50[SD_NUM_THING_CLASSES];
    double ap_mean, ap50_mean;   /* the official "average" row: AP, AP_50% */
} sd_ap_result;

void sd_ap_init(sd_ap *s);
void sd_ap_free(sd_ap *s);
/* The overlap threshold k (0.5 + 0.05 k, as numpy's arange gives it). */
double sd_ap_overlap(int k);
/* Adds one image: gt_ids [h][w] stored instance ids; preds[n] with masks of
 * the same size. An id that decodes to no label is SD_ERR_DATA naming
 * `name`. */
sd_status sd_ap_add(sd_ap *s, const uint16_t *gt_ids, int w, int h, const sd_inst_pred *preds, int n,
                    const char *name);
void sd_ap_compute(const sd_ap *s, sd_ap_result *out);

/* Tables as `segda eval` prints them: one iIoU row per name (percent, "-"
 * absent), and the official AP / AP50 table with GT and prediction counts. */
void sd_iiou_table_write(FILE *f, int n_rows, const char *const *names, const double (*iiou)[SD_NUM_THING_CLASSES],
                         const double *mean);
void sd_ap_table_write(FILE *f, const char *name, const sd_ap *s, const sd_ap_result *r);

/* ---- runners over a dataset (data.h) with instance files (instances.h) ---- */
struct sd_dataset;
struct sd_sample;

/* iIoU of each prediction folder of o (the same folders, kind and matching
 * as sd_eval_pred_dirs; samples lacking a prediction are passed over, as
 * that call has refused or skipped them): out[o->n_dirs], initialised here
 * for the first instance file's size. */
sd_status sd_iiou_pred_dirs(const struct sd_dataset *ds, const sd_eval_pred_opts *o, sd_iiou *out);

/* Wraps a model's logits callback for sd_eval_logits so one pass also sums
 * iIoU: the logits are upsampled and argmaxed (as the scorer does) and
 * added against the sample's instance file. */
typedef struct sd_iiou_logits_ctx {
    sd_eval_logits_fn fn;
    void *ctx;
    const struct sd_dataset *ds;
    bool align_corners;
    sd_iiou *stats;        /* NULL: only passes the logits through */
    bool started;          /* set on the first sample (stats initialised for its size) */
} sd_iiou_logits_ctx;
sd_status sd_iiou_logits_fn(void *ctx, const struct sd_sample *s, float **logits, int *c, int *h, int *w);

/* Instance predictions of one image in cityscapesScripts' format: a text
 * file of lines "relPathPrediction labelID confidence", each path (relative
 * to the file's folder) a mask PNG of the image's size whose non-zero pixels
 * are the instance. Lines of labels without a thing trainId are passed over
 * (as the official tool does). */
typedef struct sd_inst_preds {
    sd_inst_pred *v;       /* masks owned */
    int n;
} sd_inst_preds;
sd_status sd_inst_preds_read(const char *txt, int w, int h, sd_inst_preds *out);
void sd_inst_preds_free(sd_inst_preds *p);

/* AP over every labelled sample of ds: the list for a sample is a .txt under
 * dir (recursively) whose name contains its Cityscapes stem (other kinds:
 * STEM.txt); a sample without one is an error. Adds into ap (sd_ap_init
 * first); *n_images counts the images added. */
sd_status sd_ap_pred_dir(const struct sd_dataset *ds, const char *dir, sd_ap *ap, int *n_images);
/* The list file of every labelled sample of ds under dir (as sd_ap_pred_dir
 * finds them; NULL for unlabelled samples): lists[ds->n], free with
 * sd_inst_lists_free. A labelled sample without one is SD_ERR_DATA. */
sd_status sd_inst_lists_match(const struct sd_dataset *ds, const char *dir, char ***lists);
void sd_inst_lists_free(char **lists, int n);

#endif
