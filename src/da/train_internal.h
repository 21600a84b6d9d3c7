/* Private to src/da and src/train: helpers the loop (src/train/loop.c) and the methods share.
 * Batches come from the threaded loader (loader.h). Not a public API. */
#ifndef SEGDA_DA_TRAIN_INTERNAL_H
#define SEGDA_DA_TRAIN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/data.h"
#include "segda/loader.h"
#include "segda/train.h"

/* Keeps a seeded subset of n target images (finetuning budgets). */
sd_status sd_train_target_subset(sd_trainer *tr, int n);
/* Forward of batch b and its labelled segmentation loss `name` (plus
 * aux_weight x the auxiliary classifier's, when the model has one). */
sd_status sd_train_supervised(sd_trainer *tr, const sd_batch *b, const char *name, float aux_weight);

/* --log-grad-ratio (grad_ratio.c): whether this iteration measures, and
 * the backward of the pending terms as separate passes that log
 * grad_norm_seg and grad_ratio_<term> (replaces sd_backward of them). */
bool sd_grad_ratio_due(const sd_trainer *tr);
sd_status sd_grad_ratio_backward(sd_trainer *tr);
void sd_grad_ratio_free(sd_trainer *tr);

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
/* Loads the discriminator's weights from the checkpoint named by knob `key`
 * (nothing when empty), by FCDiscriminator's names (conv1.weight ..
 * classifier.bias: an official D1/D2 state dict converted as it is); a
 * missing or mis-shaped tensor is SD_ERR_DATA naming the file. */
sd_status sd_adversary_load(sd_trainer *tr, sd_adversary *a, const char *key);
/* A loss weight knob whose default "auto" means the published value
 * `published`; the value used is written back into the run's configuration
 * (config.txt) so that it records what ran. */
sd_status sd_adversary_weight(sd_trainer *tr, const char *key, const char *published, float *out);
/* Mean GAN loss of D(x) against the constant domain label (0 source, 1 target). */
sd_tensor *sd_adversary_loss(sd_trainer *tr, sd_adversary *a, sd_tensor *x, float label);

/* Target sample i whole, as the training loader would make it before
 * cropping (read, resized to the run's target size with the loader's
 * pipeline, RGB 0..255 floats [3][h][w], malloc'd into *rgb): offline
 * pseudo-labelling reads the target set by index with it. */
sd_status sd_train_target_image(sd_trainer *tr, int i, float **rgb, int *w, int *h);
int sd_train_target_count(const sd_trainer *tr);

/* FDA: one channel src (h x w) takes trg's DFT amplitude in the four corner
 * windows of half-size floor(min(h, w) * beta), keeping its phase. */
sd_status sd_fda_swap_channel(float *src, const float *trg, int h, int w, float beta);
/* FDA's robust entropy mean((E^2 + 1e-8)^eta) of logits [N, C, H, W], with E
 * the per-pixel entropy of the softmax over C divided by ln C. */
sd_tensor *sd_fda_robust_entropy(sd_tape *t, sd_tensor *logits, float eta);

/* taskgan's stage-2 generator objective (src/da/taskgan.c), shared with its
 * PyTorch check (tests/shim_gan.c): *adv = ||D_S(y) - 1||^2 (mean) and, when
 * ce is non-NULL, *ce = CE(f(y) upsampled bilinearly, align_corners true,
 * to h x w; labels [N*h*w], 255 ignored), y = G_S(x) in [-1, 1] passed to
 * f through its normalisation and f run in eval mode. The caller freezes
 * D_S and f and weights the two terms (1 - alpha, alpha * gamma); *y is
 * G_S(x), for the discriminator's step. */
struct sd_gen;
struct sd_patchgan;
sd_status sd_taskgan_g_losses(sd_tape *t, struct sd_gen *gs, struct sd_patchgan *ds, sd_model *f, sd_norm norm,
                              sd_tensor *x, const uint8_t *labels, sd_tensor **y, sd_tensor **adv, sd_tensor **ce);

#endif
