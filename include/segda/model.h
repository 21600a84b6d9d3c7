/* Segmentation networks chosen by name, their forward pass on the tape, and
 * the discriminators/domain classifiers of the adaptation methods. Layers
 * and models are in src/nn/; they never include kernel or CUDA headers.
 * Parameter names follow the public PyTorch names (torchvision VGG/ResNet,
 * AdaptSegNet's DeepLab-v2: "layer5.conv2d_list.0.weight") so converted
 * published checkpoints load as they are. */
#ifndef SEGDA_MODEL_H
#define SEGDA_MODEL_H

#include <stdbool.h>

#include "segda/norm.h" /* sd_norm: the input convention stored with a model */
#include "segda/tensor.h"

/* How the backbone's batch norm behaves in training passes (head BN always
 * trains). The published DeepLab-v2 adaptation code (AdaptSegNet, ADVENT,
 * FDA) is batch-stats: model.train() with BN affine requires_grad False. */
typedef enum sd_bn_mode {
    SD_BN_TRAIN = 0,         /* batch statistics, running ones updated, affine trained */
    SD_BN_FROZEN,            /* running statistics (eval-mode BN), affine frozen */
    SD_BN_BATCH_STATS,       /* batch statistics, running ones updated, affine frozen */
    SD_BN_COUNT
} sd_bn_mode;
/* "train", "frozen", "batch-stats"; parse returns SD_ERR_ARG naming the choices. */
const char *sd_bn_mode_name(sd_bn_mode m);
sd_status sd_bn_mode_parse(const char *s, sd_bn_mode *out);

typedef struct sd_model_opts {
    const char *name;        /* "deeplabv2-resnet101", "deeplab-mini", ... */
    int classes;             /* 19 by default */
    sd_bn_mode bn;           /* backbone BN in training passes (default: the model's published practice) */
    /* Training passes normalise with batch statistics (per bn) but never
     * write the running ones: a frozen teacher that must see the batch as
     * the student does without drifting. */
    bool bn_keep_running;
    bool aux;                /* auxiliary classifier on layer3/conv4 (multi-level methods) */
    bool aspp_two_branch;    /* the widely copied two-branch ASPP ("dlv2red") */
    int output_stride;       /* 8 or 16 where the backbone allows; 0 = the model's default */
} sd_model_opts;
sd_model_opts sd_model_opts_default(const char *name);

typedef struct sd_model sd_model;

/* Everything a method may need from one forward pass. */
typedef struct sd_model_out {
    sd_tensor *logits;       /* [N, classes, h, w] at the head's resolution (1/8 for OS 8) */
    sd_tensor *aux_logits;   /* [N, classes, h, w] from layer3/conv4, or NULL without aux */
    sd_tensor *feat;         /* last backbone block (layer4 / conv5 / fc7), [N, C, h, w] */
    sd_tensor *mid;          /* layer3 / conv4 */
} sd_model_out;

sd_status sd_model_create(const sd_model_opts *o, sd_model **out);
void sd_model_free(sd_model *m);
/* Initialises weights as the reference implementations do (Kaiming/normal
 * for convs, 1/0 for BN, the DeepLab-v2 classifier's N(0, 0.01)). */
void sd_model_init_weights(sd_model *m, uint64_t seed);
/* x: normalised images [N, 3, H, W]. training selects BN batch statistics
 * (unless bn is SD_BN_FROZEN) and dropout. */
sd_status sd_model_forward(sd_model *m, sd_tape *t, sd_tensor *x, bool training, sd_model_out *out);
/* AdaBN (Li et al., 2016): a pass over the batch x that only folds its
 * statistics into every BN layer's running mean and variance, as batch k
 * (from 0) of a cumulative average: k = 0 replaces them, batch k weighs
 * 1/(k+1) (PyTorch's momentum=None). Frozen BN included, dropout off,
 * weights untouched, nothing recorded for backward. */
sd_status sd_model_reestimate_bn(sd_model *m, sd_tape *t, sd_tensor *x, int64_t k);
/* A named intermediate feature map ("layer4", "layer3", "conv5", "logits",
 * "softmax") of the last forward, for `segda gap`; NULL if unknown. */
sd_tensor *sd_model_feature(sd_model *m, const sd_model_out *out, const char *layer);

sd_params *sd_model_params(sd_model *m);
const sd_model_opts *sd_model_options(const sd_model *m);
/* Param group indices (-1 if unknown): "backbone" (convs, lr x1),
 * "classifier" (every head parameter incl. head BN affine, lr x10), "norm"
 * (backbone BN weight/bias, lr x1; frozen unless bn is SD_BN_TRAIN), "bn" (running
 * statistics, a buffer group). */
int sd_model_group(const sd_model *m, const char *group_name);
/* Channels of "layer3"/"mid", "layer4"/"feat", "logits"; -1 if unknown
 * (e.g. to size a feature-level discriminator). */
int sd_model_channels(const sd_model *m, const char *layer);
/* The input normalisation the named model's published weights expect. */
sd_norm sd_model_default_norm(const char *name);

typedef struct sd_model_info {
    const char *name;
    const char *description;
    sd_norm default_norm;
} sd_model_info;
const sd_model_info *sd_model_list(int *n);
/* Parameters (trainable and frozen, no buffers) and GFLOPs (2 x multiply-
 * accumulates of every conv, batch 1) at an input size; computed from shapes
 * alone, without allocating weights. */
sd_status sd_model_cost(const sd_model_opts *o, int h, int w, size_t *params, double *gflops);

/* ---- adaptation modules ---- */
/* Output-space discriminator (AdaptSegNet): five 4x4 stride-2 pad-1 convs
 * in_ch -> ndf -> 2ndf -> 4ndf -> 8ndf -> 1, LeakyReLU 0.2 between, no sigmoid.
 * Pixel-level domain classifier (FCNs in the wild, ROAD): 1x1 convs
 * in_ch -> hidden -> hidden -> 1 with ReLU. */
typedef enum sd_disc_kind { SD_DISC_OUTPUT = 0, SD_DISC_PIXEL, SD_DISC_COUNT } sd_disc_kind;
typedef struct sd_disc sd_disc;
sd_status sd_disc_create(sd_disc_kind kind, int in_ch, int width, const char *prefix, sd_disc **out);
void sd_disc_free(sd_disc *d);
void sd_disc_init_weights(sd_disc *d, uint64_t seed);
sd_tensor *sd_disc_forward(sd_disc *d, sd_tape *t, sd_tensor *x);
sd_params *sd_disc_params(sd_disc *d);

#endif
