/* Inference on whole images: resize to the network's input size,
 * normalisation (norm.h), multi-scale and flip averaging, sliding windows;
 * either softmax probabilities at the image's full resolution (`segda
 * predict`) or raw logits on the network's output grid (`segda eval
 * --model`, which upsamples them to the ground truth as the field does).
 * Shared by predict, eval and gap. File writing and directory walking stay
 * in src/cli. */
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
    bool align_corners;       /* for resizing logits; default true (the published evaluation code) */
} sd_infer_opts;

sd_infer_opts sd_infer_opts_default(sd_norm norm);

/* Both functions below run the model in eval mode under no_grad on t, which
 * they reset before and after. px: 8-bit interleaved pixels (c = 1 grey,
 * 3 RGB, 4 RGBA; grey is repeated, alpha dropped), w x h >= 8 x 8.
 *
 * The input: when net_w x net_h differs from the image, the 8-bit image is
 * resized to it with PIL's bicubic (as the field's Cityscapes loaders do),
 * then normalised with sd_normalize(sd_norm_params_of(o->norm)). Each scale
 * s resizes that normalised input bilinearly (align_corners false) to
 * round(net * s); a flip pass mirrors the input and mirrors its logits back.
 * One pass's logits: with no window (or one covering the input), the head's
 * output as it is; with windows, each window's logits upsampled to the window
 * and averaged where windows overlap, on that pass's input grid. */

/* The network input of an image as both functions below build it: 8-bit
 * pixels (c 1, 3 or 4) -> normalised f32 [3][dh][dw], resized with PIL's
 * bicubic when dw x dh differs from w x h. For callers that run the model
 * themselves (segda gap). *out is malloc'd (NULL on error). */
sd_status sd_infer_input(const uint8_t *px, int w, int h, int c, int dw, int dh, sd_norm norm, float **out);

/* Softmax probabilities [classes, h, w] at the image's resolution: each
 * pass's logits are upsampled bilinearly (o->align_corners) straight to
 * w x h, softmaxed, and the passes' probabilities averaged, into probs
 * (caller-allocated). */
sd_status sd_infer_probs(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                         float *probs);

/* Raw logits (no softmax) [classes, *lh, *lw] on one grid: the first pass's,
 * and the scale-1.0 pass runs first when 1.0 is among the scales (else the
 * first scale listed). With one scale 1 and no flip this is exactly the
 * network's output for the image resized to net_w x net_h (e.g. 1/8 of it
 * at output stride 8; with windows, net_w x net_h). Every other pass's
 * logits are resized bilinearly (o->align_corners) to that grid, and all
 * passes are averaged with equal weight (a plain mean of logits, scales and
 * flips alike). *logits is malloc'd (NULL on error); the caller frees it. */
sd_status sd_infer_logits(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                          float **logits, int *lw, int *lh);

/* Per-pixel argmax of probs [classes, h, w] into pred [h*w]; conf [h*w]
 * (the winning probability) may be NULL. */
void sd_probs_argmax(const float *probs, int classes, int w, int h, uint8_t *pred, float *conf);

#endif
