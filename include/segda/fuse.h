/* Detection-based foreground (Saleh et al., "Effective Use of Synthetic Data
 * for Urban Scene Semantic Segmentation", ECCV 2018): instance masks of the
 * 8 thing classes from a detector are painted over a segmentation map, whose
 * labels stay wherever no mask is.
 *
 * The rule (sd_fuse_detections): detections are taken in decreasing score
 * (ties: list order); one under score_thresh ends the walk; one whose class
 * is not a thing (trainId 11..18) or whose mask is empty is passed over. A
 * mask whose share of pixels already painted by higher-scored masks exceeds
 * overlap_thresh is suppressed (an NMS on masks); otherwise its still free
 * pixels take its class.
 *
 * Defaults: the paper states the procedure (sorted masks, overlaps
 * suppressed, masks painted over DeepLab's map) but no numbers that this
 * project could find in the text available to it (the search corpus holds
 * its abstract and introduction only), so: score_thresh 0.5 (the
 * confidence at which Mask R-CNN's demos and most detection-to-segmentation
 * pipelines draw instances) and overlap_thresh 0.5 (a mask mostly covered
 * by a better one is a duplicate). Both are knobs. */
#ifndef SEGDA_FUSE_H
#define SEGDA_FUSE_H

#include "segda/core.h"
#include "segda/eval_inst.h"

typedef struct sd_fuse_opts {
    float score_thresh;     /* detections scored below are not painted; default 0.5 */
    float overlap_thresh;   /* suppress a mask when more than this share of it is already painted; default 0.5 */
    bool clear_things;      /* thing labels of the map outside every painted mask become 255 (no class):
                             * things only from the detector; default false (the paper keeps the map's labels) */
} sd_fuse_opts;

void sd_fuse_opts_init(sd_fuse_opts *o);

/* seg: trainIds [h][w], changed in place; dets[n] with full-image masks of
 * w x h. *n_painted (may be NULL): masks painted. Refuses thresholds
 * outside [0, 1] (SD_ERR_ARG). */
sd_status sd_fuse_detections(uint8_t *seg, int w, int h, const sd_inst_pred *dets, int n, const sd_fuse_opts *o,
                             int *n_painted);

/* Files: for every labelled sample of ds, the segmentation prediction in
 * pred_dir (matched as sd_eval_pred_dirs matches, trainIds or label ids by
 * kind) fused with the instance predictions in inst_dir (the official text
 * format, sd_inst_preds_read) and written to out_dir/STEM_trainIds.png. */
struct sd_dataset;
sd_status sd_fuse_pred_dirs(const struct sd_dataset *ds, const char *pred_dir, sd_pred_kind kind,
                            const char *inst_dir, const sd_fuse_opts *o, const char *out_dir);

/* ---- with the detector (detect.h) ---- */
struct sd_detector;
struct sd_detections;
struct sd_sample;

/* Runs the detector on an RGB image ([h][w][3]) and paints its detections
 * over seg ([h][w] trainIds, the image's size). *n_det / *n_painted may be
 * NULL. If inst_dir is given, also writes the detections in the official
 * instance format: inst_dir/STEM.txt listing inst_dir/STEM_K.png masks
 * (0/255) with their labelIds and scores (what segda eval --instances
 * reads). */
sd_status sd_fuse_detect(struct sd_detector *det, const uint8_t *rgb, int w, int h, uint8_t *seg, const sd_fuse_opts *o,
                         const char *inst_dir, const char *stem, int *n_det, int *n_painted);

/* Wraps a 19-class model's logits callback for sd_eval_logits: its logits
 * are upsampled and argmaxed at the label's size (align_corners as the
 * scorer), the detector's masks painted over, and the fused map returned
 * as one-hot logits at the label's size (so the scorer's argmax gives it
 * back unchanged). The image and label must have equal sizes. */
typedef struct sd_fuse_logits_ctx {
    sd_eval_logits_fn fn;
    void *ctx;
    struct sd_detector *det;
    sd_fuse_opts opts;
    bool align_corners;
} sd_fuse_logits_ctx;
sd_status sd_fuse_logits_fn(void *ctx, const struct sd_sample *s, float **logits, int *c, int *h, int *w);

#endif
