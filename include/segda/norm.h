/* Input normalisation of images for the networks: the two conventions the
 * field's checkpoints expect (Caffe BGR minus mean; torchvision RGB/255 minus
 * mean over std), their names as stored in checkpoints, and the one
 * implementation that training, inference, eval and gap all call.
 * Resizing and augmentation live in transform.h. */
#ifndef SEGDA_NORM_H
#define SEGDA_NORM_H

#include <stdbool.h>
#include <stdint.h>

/* Which convention a model expects; stored in checkpoints as its name. */
typedef enum sd_norm {
    SD_NORM_CAFFE = 0,   /* BGR, minus (104.00698793, 116.66876762, 122.67891434), no std */
    SD_NORM_IMAGENET,    /* RGB / 255, minus (0.485, 0.456, 0.406), / (0.229, 0.224, 0.225) */
    SD_NORM_COUNT
} sd_norm;
const char *sd_norm_name(sd_norm n);  /* "caffe", "imagenet"; "?" if out of range */
int sd_norm_parse(const char *s);     /* -1 if unknown */

/* out[ch] = (pixel[src_ch] * scale - mean[ch]) / std[ch], channel order BGR
 * when bgr (then mean/std are in BGR order too). */
typedef struct sd_norm_params {
    float mean[3], std[3];
    float scale;
    bool bgr;
} sd_norm_params;
extern const sd_norm_params sd_norm_torchvision; /* SD_NORM_IMAGENET: RGB, /255, ImageNet mean/std */
extern const sd_norm_params sd_norm_caffe;       /* SD_NORM_CAFFE: BGR, 0..255, mean 104.00698793 116.66876762 122.67891434 */

/* The parameters of a convention (sd_norm_caffe or sd_norm_torchvision);
 * NULL if kind is out of range. */
const sd_norm_params *sd_norm_params_of(sd_norm kind);

/* hwc [h][w][3] RGB u8 -> chw [3][h][w]. */
void sd_normalize(const uint8_t *hwc, int w, int h, const sd_norm_params *n, float *chw);
/* n images of RGB values in 0..255 as f32 [n][3][h][w] -> dst [n][3][h][w]
 * (may not alias): the same formula as sd_normalize, for batches already in
 * float (e.g. after float-domain augmentation). */
void sd_normalize_f32(const float *rgb, int n, int w, int h, const sd_norm_params *p, float *dst);
/* The u8 RGB pixel that normalises closest to 0 (padding colour). */
void sd_norm_fill(const sd_norm_params *n, uint8_t rgb[3]);

#endif
