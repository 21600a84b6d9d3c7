/* Private to src/da: the training data sources (batch.c) and helpers the
 * loop and the methods share. Not a public API. */
#ifndef SEGDA_DA_TRAIN_INTERNAL_H
#define SEGDA_DA_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/data.h"
#include "segda/train.h"

/* One domain's training images: a dataset, the full-image size every sample
 * is resized to (bilinear image, nearest label), an optional subset, and
 * decoded samples kept in memory once read (bounded by cache_limit bytes).
 * Batches are a pure function of (seed, stream, iteration): the sample order
 * is a per-epoch permutation and every crop/flip comes from an RNG forked on
 * the iteration, so a resumed run sees exactly the batches it would have. */
typedef struct sd_train_source {
    sd_dataset ds;
    bool opened;
    bool use_labels;
    uint32_t stream;
    int full_w, full_h;          /* 0: as stored */
    int *subset, n_subset;       /* dataset indices in use (all by default) */
    uint8_t **img, **lab;        /* [ds.n] cached resized image / label or NULL */
    int *iw, *ih;                /* cached sizes */
    size_t cached_bytes, cache_limit;
    int64_t perm_epoch;
    int *perm;                   /* [n_subset] the current epoch's order */
} sd_train_source;

sd_status sd_train_source_open(sd_train_source *s, const char *spec, const char *split, int full_w, int full_h,
                               bool use_labels, uint32_t stream);
void sd_train_source_free(sd_train_source *s);
/* Keeps n samples chosen by seed (finetuning budgets); n >= size keeps all. */
sd_status sd_train_source_subset(sd_train_source *s, int n, uint64_t seed);
/* Reads sample i resized to the source's full size: pointers stay owned by
 * the source (cached) or by *tmp (free with free()) when caching is off. */
sd_status sd_train_source_get(sd_train_source *s, int i, const uint8_t **img, const uint8_t **lab, int *w,
                              int *h, void **tmp_img, void **tmp_lab);
/* Fills b (buffers grown as needed) with n crops of crop_w x crop_h (0: the
 * full image) for iteration it. */
sd_status sd_train_source_batch(sd_train_source *s, uint64_t seed, int64_t it, int n, int crop_w, int crop_h,
                                bool flip, sd_batch *b);
void sd_batch_free(sd_batch *b);

/* u8 HWC bilinear resize (align_corners false, as PIL/OpenCV for upsampling)
 * and nearest label resize (floor(dst * in / out)). */
void sd_resize_rgb_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);
void sd_resize_label_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

/* Normalises RGB floats [n,3,h,w] in 0..255 for a model into dst. */
void sd_normalise_rgb(sd_norm norm, const float *rgb, int n, int h, int w, float *dst);

/* Keeps a seeded subset of n target images (finetuning budgets). */
sd_status sd_train_target_subset(sd_trainer *tr, int n);
/* Forward of batch b and its labelled segmentation loss `name` (plus
 * aux_weight x the auxiliary classifier's, when the model has one). */
sd_status sd_train_supervised(sd_trainer *tr, const sd_batch *b, const char *name, float aux_weight);

/* ---- adversarial helpers shared by adaptseg, advent, feature-adv, road ---- */

/* A discriminator / domain classifier the run trains with Adam (betas 0.9,
 * 0.99, lr from the lr-d knob, poly decay) and saves under `prefix`. */
typedef struct sd_adversary {
    sd_disc *d;
    bool least_squares;    /* LS-GAN (MSE) instead of BCE-with-logits */
} sd_adversary;

sd_status sd_adversary_init(sd_trainer *tr, sd_adversary *a, sd_disc_kind kind, int in_ch, int width,
                            const char *prefix, bool least_squares);
void sd_adversary_free(sd_adversary *a);
/* Freezing stops gradients reaching the discriminator's parameters (the
 * generator's adversarial step) while still passing them to its input. */
void sd_adversary_freeze(sd_adversary *a, bool frozen);
/* Mean GAN loss of D(x) against the constant domain label (0 source, 1 target). */
sd_tensor *sd_adversary_loss(sd_trainer *tr, sd_adversary *a, sd_tensor *x, float label);

/* The full-size target image i as the training loop holds it (resized to
 * the run's target size), for pseudo-labelling. */
sd_status sd_train_target_image(sd_trainer *tr, int i, const uint8_t **rgb, int *w, int *h, void **tmp);
int sd_train_target_count(const sd_trainer *tr);

/* FDA: one channel src (h x w) takes trg's DFT amplitude in the four corner
 * windows of half-size floor(min(h, w) * beta), keeping its phase. */
sd_status sd_fda_swap_channel(float *src, const float *trg, int h, int w, float beta);

#endif
