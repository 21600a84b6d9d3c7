/* Host-side box arithmetic of Mask R-CNN (torchvision's detection utilities):
 * anchors, box coding, IoU, NMS, the proposal matcher and the balanced
 * sampler. Plain C on float arrays of boxes (x1, y1, x2, y2); nothing here is
 * differentiable or touches the tape. Internal to the library (src/nn), but
 * exported (sd_box_*) so the tests reach them through ctypes. */
#ifndef SEGDA_NN_DETECT_BOXES_H
#define SEGDA_NN_DETECT_BOXES_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

/* Anchors of one FPN level as AnchorGenerator makes them: for each cell of
 * the gh x gw grid (row-major), for each aspect ratio r (h/w = r), a box of
 * area size^2 centred on the cell's top-left corner * stride, rounded as
 * torchvision rounds its base anchors. out: [gh*gw*n_ratios*4]. */
void sd_box_anchors(int gh, int gw, int stride_h, int stride_w, float size, int n_ratios, const float *ratios,
                    float *out);

/* BoxCoder: weights (wx, wy, ww, wh), dw/dh clipped at log(1000/16).
 * decode: n deltas against n reference boxes -> n boxes; encode the inverse. */
void sd_box_decode(int n, const float *deltas, const float *ref, const float w[4], float *out);
void sd_box_encode(int n, const float *gt, const float *ref, const float w[4], float *out);

void sd_box_clip(int n, float *boxes, int img_h, int img_w);
/* IoU matrix [na][nb]. */
void sd_box_iou(int na, const float *a, int nb, const float *b, float *out);

/* torchvision.ops.nms / batched_nms: indices of the kept boxes in
 * decreasing score order (ties: lower index first); returns how many.
 * groups may be NULL (one group); boxes of different groups never suppress
 * each other. keep: [n]. */
int sd_box_nms(int n, const float *boxes, const float *scores, const int *groups, float iou_thresh, int *keep);
/* Indices of the k largest values in decreasing order (ties: lower index
 * first); returns min(k, n). */
int sd_box_topk(int n, const float *v, int k, int *idx);

/* Matcher: for each of n_pred boxes the index of its best ground truth, or
 * -1 (IoU < low) / -2 (between low and high). allow_low_quality: a
 * prediction that is some ground truth's best match keeps it whatever its
 * IoU. iou: [n_gt][n_pred]. */
void sd_box_match(int n_gt, int n_pred, const float *iou, float high, float low, bool allow_low_quality,
                  int *matches);

/* BalancedPositiveNegativeSampler over labels (>= 1 positive, 0 negative,
 * < 0 ignored): at most batch*pos_frac positives, the rest of the batch
 * negatives, chosen at random from rng (rng NULL: the first ones in index
 * order, a deterministic mode for tests). Writes 1 to pos[i]/neg[i] for the
 * chosen ones, 0 elsewhere. */
void sd_box_sample(int n, const int *labels, int batch, float pos_frac, sd_rng *rng, uint8_t *pos, uint8_t *neg);

#endif
