/* The instance detector: Mask R-CNN with a ResNet-50-FPN backbone, laid out
 * and named as torchvision's maskrcnn_resnet50_fpn (so its published COCO
 * weights convert with tools/pth2safetensors.py), for the detection-based
 * foreground of Saleh et al. (ECCV 2018).
 *
 * What it computes, as torchvision 0.14 does in eval mode: the image scaled
 * so its short side is min_size (long side at most max_size), ImageNet
 * normalisation, padding to a multiple of 32; ResNet-50 with frozen batch
 * norm; FPN P2..P6 (P6 = max-pool of P5); RPN with anchors 32..512 x ratios
 * 0.5/1/2, top-k per level, NMS; RoIAlign 7x7 (sampling 2, FPN level
 * k = floor(4 + log2(sqrt(area)/224))); the two-layer box head; per-class
 * NMS; 14x14 RoIAlign and the 4-conv mask head to 28x28 masks, pasted into
 * the full image and thresholded.
 *
 * Ownership: an sd_detector owns its parameters; sd_detections owns its
 * masks (sd_detections_free). Errors: SD_ERR_* with a message (sd_errmsg)
 * naming the file or the value. */
#ifndef SEGDA_DETECT_H
#define SEGDA_DETECT_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/tensor.h"

#define SD_DETECTOR_MODEL "maskrcnn-r50-fpn"

typedef struct sd_detector_opts {
    int classes;                   /* including background: 91 (COCO), 9 (background + 8 Cityscapes things) */
    int min_size, max_size;        /* resize: 800 / 1333 */
    int rpn_pre_nms, rpn_post_nms; /* proposals kept per level before NMS / in all after (test): 1000 / 1000 */
    int rpn_pre_nms_train, rpn_post_nms_train; /* 2000 / 2000 */
    float rpn_nms;                 /* 0.7 */
    float score_thresh;            /* box score threshold: 0.05 */
    float nms;                     /* per-class NMS IoU: 0.5 */
    int detections;                /* detections per image: 100 */
    float mask_thresh;             /* binary mask at probability > 0.5 */
    int rpn_batch;                 /* training: anchors sampled per image: 256 */
    float rpn_pos_frac;            /* at most this fraction positive: 0.5 */
    int box_batch;                 /* training: proposals sampled per image: 512 */
    float box_pos_frac;            /* 0.25 */
    int anchor_size;               /* anchor side on P2, doubling per level to P6: 32 (32..512) */
    bool bn_train;                 /* false: torchvision's setting with pretrained weights (FrozenBatchNorm2d;
                                    * conv1 and layer1 frozen); true: its setting without them (BatchNorm2d:
                                    * batch statistics in training, running ones updated with momentum 0.1,
                                    * every layer trained). Inference uses the running statistics either way. */
} sd_detector_opts;

/* torchvision's defaults for `classes` classes (background included). */
sd_detector_opts sd_detector_opts_default(int classes);

typedef struct sd_detector sd_detector;

/* A detector with random weights (torchvision's initialisation of the heads,
 * Kaiming for the backbone, identity BN; with frozen BN the residual
 * branches' last BN scale starts at 0.1, see maskrcnn.c). */
sd_status sd_detector_create(const sd_detector_opts *o, uint64_t seed, sd_detector **out);
/* Loads a converted (pth2safetensors --model maskrcnn-r50-fpn) or segda-
 * trained detector; the class count comes from the file. A segmentation
 * network's file is SD_ERR_FORMAT naming the file and what was expected. */
sd_status sd_detector_load(const char *path, sd_detector **out);
sd_status sd_detector_save(sd_detector *d, const char *path);
/* The metadata of a detector file: model, classes, norm, format, the input
 * and anchor sizes and the BN mode it trained with (read back by
 * sd_detector_load). */
struct sd_ckpt_writer;
sd_status sd_detector_write_meta(const sd_detector *d, struct sd_ckpt_writer *w);
/* The thresholds and sizes in use; callers may change them between calls
 * (classes excepted; bn_train holds from the next training backward, the
 * optimiser groups' multipliers included). */
sd_detector_opts *sd_detector_options(sd_detector *d);
sd_params *sd_detector_params(sd_detector *d);
/* The Cityscapes trainId of a class index (see sd_detection.train_id). */
int sd_detector_train_id(const sd_detector *d, int label);
void sd_detector_free(sd_detector *d);

typedef struct sd_detection {
    int label;       /* the model's class index (1 .. classes-1) */
    int train_id;    /* Cityscapes trainId 11..18 of the class (9-class models: 10 + label; COCO models:
                      * person, car, truck, bus, train, motorcycle, bicycle), -1 for other classes */
    float score;
    float box[4];    /* x1, y1, x2, y2 in the input image's pixels */
    uint8_t *mask;   /* [h][w] of the input image: 1 inside the instance */
} sd_detection;

typedef struct sd_detections {
    int w, h;
    int n;
    sd_detection *d; /* n, by decreasing score */
} sd_detections;

/* Detects instances in an RGB image (u8, [h][w][3]). No instance is n = 0,
 * not an error. out is overwritten; free it with sd_detections_free. */
sd_status sd_detector_predict(sd_detector *d, const uint8_t *rgb, int w, int h, sd_detections *out);
void sd_detections_free(sd_detections *r);

/* ---- training ---- */
typedef struct sd_detector_target {
    int n;                  /* instances (0: the image is all background) */
    const float *boxes;     /* [n][4] x1, y1, x2, y2 in the image's pixels */
    const int *labels;      /* [n] class indices 1 .. classes-1 */
    const uint8_t *masks;   /* [n][h][w], 1 inside */
} sd_detector_target;

/* The five losses of torchvision's Mask R-CNN in training mode. */
enum { SD_DET_LOSS_OBJECTNESS, SD_DET_LOSS_RPN_BOX, SD_DET_LOSS_CLASSIFIER, SD_DET_LOSS_BOX, SD_DET_LOSS_MASK,
       SD_DET_LOSSES };
extern const char *const sd_detector_loss_names[SD_DET_LOSSES]; /* "loss_objectness", ... as torchvision */

/* One training forward and backward on one image (the network input is
 * built as at inference; the backbone's BN as opts.bn_train says): accumulates
 * weight * d(sum of the losses) into the parameters' gradients and writes
 * the five loss values. The samplers draw from rng; rng NULL takes the
 * first candidates in index order (deterministic, for parity tests; with
 * rpn_batch/box_batch above the candidate counts every candidate is taken,
 * as torchvision would). A loss with nothing to average (no positive box)
 * is 0 with no gradient. */
sd_status sd_detector_backward(sd_detector *d, const uint8_t *rgb, int w, int h, const sd_detector_target *tg,
                               sd_rng *rng, float weight, float losses[SD_DET_LOSSES]);

/* ---- the training task (src/da/detect.c; `segda train --method detect`) ----
 * Trains on a dataset with instance files (sd_dataset_read_instances: the
 * 8 thing classes become labels 1..8 = trainId - 10) with SGD (momentum,
 * weight decay) and a linear warm-up to a constant learning rate, one image
 * per forward, `batch` images per step (losses averaged over them). The run
 * directory holds detector.safetensors (weights, optimiser state and the
 * iteration: what --resume continues from), log.csv (one row per step:
 * the five losses, their sum and the learning rate) and summary.json, and
 * is locked (.lock) while the run writes it. The loop is the training
 * driver's (src/train/driver.c): Ctrl-C saves the state and returns
 * SD_ERR_INTERRUPTED; a progress line per step goes to stderr. */
/* The backbone's batch norm in training: auto = torchvision's choice, train
 * from random weights (no init), frozen from a detector file (init). */
typedef enum { SD_DET_BN_AUTO, SD_DET_BN_FROZEN, SD_DET_BN_TRAIN } sd_det_bn;
const char *sd_det_bn_name(sd_det_bn b);                 /* "auto", "frozen", "train" */
bool sd_det_bn_parse(const char *s, sd_det_bn *out);     /* false: none of those names */

typedef struct sd_detect_train_opts {
    const char *data;          /* dataset spec with instance files, e.g. gta5:DIR/sim */
    const char *out_dir;       /* existing directory */
    const char *init;          /* NULL, or a detector file to start from: tensors of matching shape are
                                * taken (COCO weights: everything but the 91-class predictors) */
    int64_t iters;             /* total steps */
    int batch;
    float lr, momentum, weight_decay;
    int64_t warmup_iters;
    sd_detector_opts det;      /* sizes, proposal counts, sampler batches (classes: 9, fixed; bn_train
                                * comes from bn) */
    sd_det_bn bn;              /* resuming, auto takes the file's (metadata det_bn); another is an error */
    int save_every;            /* steps between checkpoints (0: only at the end) */
    bool resume;               /* continue from out_dir/detector.safetensors */
    uint64_t seed;
    /* called after every step (may be NULL) */
    void (*on_step)(void *ctx, int64_t it, const float losses[SD_DET_LOSSES], float lr);
    void *ctx;
} sd_detect_train_opts;
/* torchvision's reference recipe scaled to one image per step: lr 0.0025
 * (0.02 for 8 GPUs x 2 images), momentum 0.9, weight decay 1e-4, warm-up
 * 1000 steps; the detector's defaults (min_size 800, max_size 1333). */
sd_detect_train_opts sd_detect_train_opts_default(void);
/* first/last: the summed loss of the first and the last step run. */
sd_status sd_detect_train(const sd_detect_train_opts *o, float *first, float *last);

/* Intermediate results of one prediction, host copies, for the parity tests
 * against torchvision (tests/py/test_maskrcnn_torch.py). */
typedef struct sd_detector_trace {
    int in_h, in_w;            /* the padded network input */
    int img_h, img_w;          /* the resized image inside it */
    float *input;              /* [3][in_h][in_w] */
    int feat_h[5], feat_w[5];
    float *feat[5];            /* FPN P2..P6, [256][h][w] */
    int n_props;
    float *props;              /* [n_props][4], resized-image coordinates */
    float *class_logits;       /* [n_props][classes] */
    float *box_regression;     /* [n_props][classes*4] */
    int n_det;
    float *det_boxes;          /* [n_det][4], resized-image coordinates */
    float *det_scores;         /* [n_det] */
    int *det_labels;           /* [n_det] */
    float *mask_probs;         /* [n_det][28][28], the label's channel after the sigmoid */
} sd_detector_trace;
sd_status sd_detector_predict_trace(sd_detector *d, const uint8_t *rgb, int w, int h, sd_detections *out,
                                    sd_detector_trace *trace);
void sd_detector_trace_free(sd_detector_trace *tr);

#endif
