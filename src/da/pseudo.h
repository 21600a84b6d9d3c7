/* Private to src/da: offline pseudo-labels of the target training set, as
 * selftrain (CBST rounds) and FDA's self-supervised stage make them. Here:
 * full-size predictions of target images (one model, or the mean softmax of
 * an ensemble), the label file kept in RUNDIR so --resume trains on the
 * same labels, crops of the labels matching a batch's crop boxes, and FDA's
 * per-class percentile thresholds. Not here: CBST's class-balanced rule
 * (selftrain.c) and the losses. */
#ifndef SEGDA_DA_PSEUDO_H
#define SEGDA_DA_PSEUDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "da/train_internal.h"

/* Labels of every target training image at the size the loader resizes it
 * to before cropping (the run's --target-size, else as stored). */
typedef struct sd_pseudo {
    int n, w, h;
    uint8_t *label;            /* [n][h][w] trainIds, 255 = ignored */
} sd_pseudo;

/* Sizes p for the run's target set (n images, the size of image 0) and
 * allocates the labels (all 255). */
sd_status sd_pseudo_init(sd_pseudo *p, sd_trainer *tr);
void sd_pseudo_free(sd_pseudo *p);
/* Reads path into p->label when it holds exactly n*w*h bytes (raw, row-major);
 * false when it is absent or of another size (then p->label is unspecified). */
bool sd_pseudo_load(sd_pseudo *p, const char *path);
/* Writes the labels to path (through path.tmp and a rename). */
sd_status sd_pseudo_save(const sd_pseudo *p, const char *path);

/* Softmax probabilities [*c][*h][*w] of target image i at full size, each
 * model in eval mode under no_grad: logits upsampled (align_corners as the
 * run), softmaxed, and with several models their mean (multi-band transfer).
 * Resets tr's tape first; the result lives in its arena until the next reset. */
sd_status sd_pseudo_predict(sd_trainer *tr, sd_model *const *models, int n_models, int i, float **prob, int *w,
                            int *h, int *c);

/* The batch's crops of the labels, in tr's arena ([b->n][b->h][b->w]): each
 * crop pixel's centre mapped through its box onto the whole image, nearest
 * (exact for crops of the resized image); padding is 255. NULL when out of
 * memory. */
uint8_t *sd_pseudo_crop(sd_trainer *tr, const sd_pseudo *p, const sd_batch *b);

/* Confidences are kept as 16-bit fractions (p * 65535, rounded down): two
 * bytes a pixel for a whole target set, at a resolution of 1.5e-5. */
#define SD_PSEUDO_CONF_MAX 65535

/* Argmax over c of prob [c][hw] into label[hw], and the winning
 * probability, quantised as above, into conf[hw]. */
void sd_pseudo_argmax(const float *prob, int c, size_t hw, uint8_t *label, uint16_t *conf);

/* FDA's rule (getSudoLabels of Yang & Soatto's code): over n pixels, the
 * threshold of class k is min(cap, x_k[round(m_k * percentile)]) where x_k
 * holds the confidences of the m_k pixels labelled k sorted ascending (index
 * rounded half to even as numpy, clamped to m_k - 1); a pixel whose
 * confidence is below its class's threshold becomes 255. label values >= c
 * (255) are left alone. thr[c] (may be NULL) receives the thresholds as
 * fractions, 0 for classes with no pixel. */
sd_status sd_pseudo_threshold_percentile(uint8_t *label, const uint16_t *conf, size_t n, int c, double percentile,
                                         double cap, float *thr);

#endif
