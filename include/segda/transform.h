/* Transforms on one sample (u8 HWC image + u8 trainId label): resize,
 * random scale, random crop that records where it came from, horizontal
 * flip, colour jitter, Gaussian blur, and normalisation to f32 CHW (norm.h). Batching
 * and threads live in loader.h; file reading in data.h.
 *
 * Resampling follows PIL's Image.resize, which the field's loaders call:
 * pixel centres at (i + 0.5), and when shrinking the filter widens by the
 * scale (antialiasing); bicubic uses a = -0.5. Labels use PIL's nearest:
 * src = floor((i + 0.5) * in / out). */
#ifndef SEGDA_TRANSFORM_H
#define SEGDA_TRANSFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"
#include "segda/data.h"
#include "segda/norm.h"

typedef enum sd_interp {
    SD_INTERP_BILINEAR = 0, /* the zero default, for images */
    SD_INTERP_BICUBIC,
    SD_INTERP_NEAREST,      /* labels */
    SD_INTERP_COUNT
} sd_interp;

/* src [sh][sw][c] -> dst [dh][dw][c]; c 1..4. */
sd_status sd_resize_u8(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh, sd_interp interp);

/* Horizontal flip in place. */
void sd_flip_u8(uint8_t *img, int w, int h, int c);

/* Copies the window (x, y, cw, ch) of src into dst [ch][cw][c]; parts
 * outside src are filled with fill[0..c-1]. */
void sd_crop_u8(const uint8_t *src, int sw, int sh, int c, int x, int y, int cw, int ch, const uint8_t *fill,
                uint8_t *dst);

/* torchvision-style factors (1 = unchanged): brightness scales, contrast
 * blends with the image's mean grey, saturation with each pixel's grey. */
void sd_color_jitter(uint8_t *rgb, int w, int h, float brightness, float contrast, float saturation);

/* Separable Gaussian, radius ceil(3 sigma), mirrored borders. */
sd_status sd_gaussian_blur(uint8_t *img, int w, int h, int c, float sigma);

/* Where a training crop came from, in the coordinates of the image as read
 * (before any resize): ROAD's spatial-aware module places its regions with
 * it. A crop that hangs over the edge (padding) extends outside. */
typedef struct sd_crop_box {
    float x, y, w, h;        /* full-image pixels */
    float scale_x, scale_y;  /* (augmented size) / (full size) */
    int full_w, full_h;      /* the image as read */
    bool flipped;            /* mirrored after cropping */
} sd_crop_box;

/* The full-image position (x, y), in pixels of the image as read, of the
 * point (u, v) of a crop that came out as ow x oh pixels (u, v continuous:
 * pixel j's centre is j + 0.5); the flip is undone. Points of padding fall
 * outside [0, full_w) x [0, full_h). */
void sd_crop_box_point(const sd_crop_box *b, int ow, int oh, double u, double v, double *x, double *y);

typedef struct sd_augment {
    int base_w, base_h;          /* resize first to this (0: keep the image's size) */
    sd_interp image_interp;      /* for images: BILINEAR (the zero default) or BICUBIC */
    float scale_min, scale_max;  /* random scale after the base resize; 0/0 or 1/1: none */
    int crop_w, crop_h;          /* random crop (0: none) */
    bool flip;                   /* random horizontal flip, p = 0.5 */
    float brightness, contrast, saturation; /* jitter: factor uniform in [1-v, 1+v]; 0: off */
    float blur_p;                /* probability of a Gaussian blur */
    float blur_sigma_min, blur_sigma_max;
    sd_norm_params norm;
    /* img_out gets RGB values 0..255 as floats instead of normalised ones,
     * for callers that edit images before normalising (FDA, ClassMix) and
     * then call sd_normalize_f32 (bit-identical to normalising here); norm
     * still chooses the padding colour. */
    bool raw_rgb;
} sd_augment;

/* Output size for an input of w x h: the crop, else the base size, else w x h. */
void sd_augment_out_size(const sd_augment *a, int w, int h, int *ow, int *oh);

/* Applies the pipeline (base resize, random scale, crop, flip, jitter,
 * blur, normalise) to a sample. All randomness comes from rng, so one
 * stream per sample gives the same result on any thread. img_out: [3][oh][ow];
 * label_out: [oh][ow] (255 where padded, or everywhere if the sample has no
 * label), or NULL when no label is wanted; box may be NULL. */
sd_status sd_augment_sample(const sd_augment *a, sd_rng *rng, const sd_sample *s, float *img_out,
                            uint8_t *label_out, sd_crop_box *box);

#endif
