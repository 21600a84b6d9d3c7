/* Internal to src/nn: layer records (conv, batch norm) declared into an
 * sd_params set under PyTorch names, and forward helpers that either run the
 * ops on the tape or, in counting mode, only propagate shapes and add up
 * multiply-accumulates (for `segda models` at any size without compute). */
#ifndef SEGDA_NN_INTERNAL_H
#define SEGDA_NN_INTERNAL_H

#include <stdbool.h>

#include "segda/model.h"
#include "segda/ops.h"

typedef struct nn_ctx {
    sd_tape *t;          /* the step's tape (counting mode: holds shape-only tensors) */
    bool training;       /* batch statistics and dropout */
    bool count;          /* shapes and MACs only; tensors have no data */
    /* AdaBN pass: every BN layer (frozen ones too) normalises with batch
     * statistics and folds them into its running ones with bn_momentum;
     * dropout stays off, as at inference. */
    bool bn_reestimate;
    float bn_momentum;
    bool bn_keep_running;   /* batch statistics leave the running ones as they are (teachers) */
    double macs;
} nn_ctx;

/* Declaration state: where names and groups go; the first failure sticks. */
typedef struct nn_builder {
    sd_params *p;
    int g_backbone, g_classifier, g_norm, g_buffer;
    sd_status st;
} nn_builder;

typedef struct nn_conv {
    sd_tensor *w, *b;    /* w [cout, cin, k, k]; b [cout] or NULL */
    int cin, cout, k, stride, pad, dil;
} nn_conv;

typedef struct nn_bn {
    sd_tensor *w, *b, *rm, *rv;  /* [c] each */
    int c;
    bool head;           /* in a head: trains even when the backbone's BN is frozen */
} nn_bn;

/* name: the module path without ".weight"; group: one of the builder's. */
void nn_conv_decl(nn_builder *b, nn_conv *c, int group, const char *name, int cin, int cout, int k, int stride,
                  int pad, int dil, bool bias);
/* Affine parameters go to the norm group (backbone) or the classifier group
 * (head); running statistics to the buffer group. */
void nn_bn_decl(nn_builder *b, nn_bn *bn, const char *name, int c, bool head);

sd_tensor *nn_conv_fwd(nn_ctx *c, const nn_conv *l, sd_tensor *x);
/* frozen: use running statistics even in training (frozen BN). */
sd_tensor *nn_bn_fwd(nn_ctx *c, const nn_bn *l, sd_tensor *x, bool frozen);
/* act(bn(conv(x)) + res), bn and res optional (NULL): one conv2d_fused op
 * where the BN uses running statistics and trains nothing (frozen BN,
 * inference), else the separate ops; the intermediates go back (nn_done). */
sd_tensor *nn_conv_post(nn_ctx *c, const nn_conv *cv, const nn_bn *bn, bool frozen, sd_tensor *x, sd_tensor *res,
                        sd_act act, float slope);
sd_tensor *nn_relu(nn_ctx *c, sd_tensor *x);
sd_tensor *nn_leaky(nn_ctx *c, sd_tensor *x, float slope);
sd_tensor *nn_maxpool(nn_ctx *c, sd_tensor *x, int k, int stride, int pad, bool ceil_mode);
sd_tensor *nn_adaptive_avg(nn_ctx *c, sd_tensor *x, int oh, int ow);
sd_tensor *nn_add(nn_ctx *c, sd_tensor *a, sd_tensor *b);
sd_tensor *nn_resize(nn_ctx *c, sd_tensor *x, int oh, int ow, bool align_corners);
sd_tensor *nn_concat(nn_ctx *c, int n, sd_tensor *const *xs);
sd_tensor *nn_dropout(nn_ctx *c, sd_tensor *x, float p);
/* x has no further consumer: under no_grad its storage is reused at once
 * (sd_tensor_release); a no-op when x is `result` (a layer that passed its
 * input through) and whenever the tape still needs x. */
void nn_done(nn_ctx *c, sd_tensor *x, const sd_tensor *result);

/* Weight initialisation helpers (deterministic from rng). */
void nn_init_kaiming_out(sd_tensor *w, sd_rng *r);       /* N(0, sqrt(2 / fan_out)) as torchvision */
void nn_init_normal(sd_tensor *w, float std, sd_rng *r);
void nn_init_uniform_fanin(sd_tensor *w, sd_tensor *b, sd_rng *r); /* PyTorch's default conv init */
void nn_init_const(sd_tensor *w, float v);
void nn_bn_reset(const nn_bn *bn);                        /* weight 1, bias 0, mean 0, var 1 */

/* sd_model_create without the weight initialisation (every tensor zero), for
 * loaders that overwrite every tensor: initialising a ResNet-101 costs
 * seconds. */
sd_status nn_model_create_zeroed(const sd_model_opts *o, sd_model **out);

#endif
