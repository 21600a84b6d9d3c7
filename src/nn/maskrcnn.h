/* Internal to src/nn: the Mask R-CNN record and the forward pieces that
 * inference (maskrcnn.c) and training (maskrcnn_train.c) share. */
#ifndef SEGDA_NN_MASKRCNN_H
#define SEGDA_NN_MASKRCNN_H

#include "nn/nn.h"
#include "segda/detect.h"

typedef struct det_linear {
    sd_tensor *w, *b; /* w [out, in] (nn.Linear's), b [out] */
    int in, out;
} det_linear;

typedef struct det_block {  /* torchvision's Bottleneck: stride on the 3x3 */
    nn_conv c1, c2, c3, dc;
    nn_bn b1, b2, b3, db;
    bool has_down;
} det_block;

struct sd_detector {
    sd_detector_opts o;
    sd_params params;
    nn_builder b;
    nn_conv conv1;
    nn_bn bn1;
    det_block *blocks[4];         /* layer1..4: 3, 4, 6, 3 blocks */
    nn_conv fpn_inner[4], fpn_layer[4];
    nn_conv rpn_conv, rpn_cls, rpn_bbox;  /* 3 anchors per cell */
    det_linear fc6, fc7, cls_score, bbox_pred;
    nn_conv mask_fcn[4], mask_up, mask_logits;
    int g_stem;                   /* conv1 + layer1: frozen unless o.bn_train */
    sd_tape tape;                 /* training steps' tape, made on first use */
    bool tape_ready;
};

typedef struct det_rpn_out {
    sd_tensor *logits[5], *deltas[5]; /* [1, 3, h, w], [1, 12, h, w] per level */
    int h[5], w[5];
} det_rpn_out;

/* The BN affine and conv1 + layer1 groups frozen (lr 0) or trained as
 * d->o.bn_train says; at creation and at every training backward, so a
 * change through sd_detector_options holds from the next call. */
void det_bn_mode(sd_detector *d);

/* Normalised, resized (short side min_size) and padded (to 32) input
 * [1, 3, H, W]; *img_h x *img_w is the resized image inside it. */
sd_tensor *det_input(sd_detector *d, sd_tape *t, const uint8_t *rgb, int w, int h, int *img_h, int *img_w);
/* FPN P2..P6 of x. */
sd_status det_features(sd_detector *d, nn_ctx *c, sd_tensor *x, sd_tensor *feat[5]);
sd_status det_rpn_head(sd_detector *d, nn_ctx *c, sd_tensor *feat[5], det_rpn_out *r);
float *det_anchors(const det_rpn_out *r, int in_h, int in_w, int size, int counts[5]);
sd_status det_rpn_host(const det_rpn_out *r, float **logits, float **deltas);
/* RPN proposals (filter_proposals); returns their count (-1 on failure). */
int det_proposals(const sd_detector *d, bool training, const float *anchors, const int counts[5], const float *logits,
                  const float *deltas, int img_h, int img_w, float **out);
sd_tensor *det_roi_pool(nn_ctx *c, sd_tensor *feat[5], int img_h, int n, const float *boxes, int out_size, int *perm);
sd_tensor *det_linear_fwd(nn_ctx *c, const det_linear *l, sd_tensor *x, bool relu);
sd_tensor *det_mask_logits(sd_detector *d, nn_ctx *c, sd_tensor *pooled);
float *det_host_copy(const sd_tensor *x);

#endif
