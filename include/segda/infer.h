/* Inference on whole images: normalisation, optional resize to the
 * network's input size, multi-scale and flip averaging of softmax
 * probabilities, sliding windows, and upsampling to the image's full
 * resolution. Shared by `segda predict`, `segda eval --model` and `segda gap`.
 * File writing and directory walking stay in src/cli. */
#ifndef SEGDA_INFER_H
#define SEGDA_INFER_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/model.h"

#define SD_INFER_MAX_SCALES 8

typedef struct sd_infer_opts {
    sd_norm norm;             /* from the checkpoint's metadata */
    int net_w, net_h;         /* the image is resized to this before the network; 0 = as is */
    int n_scales;
    float scales[SD_INFER_MAX_SCALES]; /* multiply the network size; default {1} */
    bool flip;                /* also run the mirrored image and average */
    int win_w, win_h;         /* sliding window (network pixels); 0 = whole image */
    float overlap;            /* window overlap fraction in [0, 0.9]; default 1/3 */
    bool align_corners;       /* for upsampling logits; false as PyTorch's default */
} sd_infer_opts;

sd_infer_opts sd_infer_opts_default(sd_norm norm);

/* 8-bit interleaved pixels (c = 1 grey, 3 RGB, 4 RGBA) to normalised f32
 * [3, h, w] (Caffe: BGR minus the mean; ImageNet: RGB/255 minus mean over std). */
void sd_image_normalize(const uint8_t *px, int w, int h, int c, sd_norm norm, float *dst);

/* Softmax probabilities [classes, h, w] at the image's resolution, averaged
 * over scales and flips, into probs (caller-allocated). Runs the model in
 * eval mode under no_grad on t, which it resets before and after. */
sd_status sd_infer_probs(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                         float *probs);

/* Per-pixel argmax of probs [classes, h, w] into pred [h*w]; conf [h*w]
 * (the winning probability) may be NULL. */
void sd_probs_argmax(const float *probs, int classes, int w, int h, uint8_t *pred, float *conf);

#endif
