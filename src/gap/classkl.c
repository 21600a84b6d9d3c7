/* Category-specific shift from labels alone: per class, the histogram of its
 * pixel proportion per image in each domain, and the KL divergence between
 * the two histograms. Smoothing: `alpha` pseudo-counts added to every bin,
 * so KL stays finite where B has an empty bin that A fills. */
#include <math.h>
#include <string.h>

#include "segda/gap.h"

sd_status sd_gap_class_hist_init(sd_gap_class_hist *h, int n_bins)
{
    if (n_bins < 1 || n_bins > SD_GAP_MAX_BINS)
        return sd_fail(SD_ERR_ARG, "class histogram: %d bins, expected 1..%d", n_bins, SD_GAP_MAX_BINS);
    memset(h, 0, sizeof *h);
    h->n_bins = n_bins;
    return SD_OK;
}

sd_status sd_gap_class_hist_add_props(sd_gap_class_hist *h, int domain, const double *prop)
{
    if (domain != 0 && domain != 1)
        return sd_fail(SD_ERR_ARG, "class histogram: domain %d, expected 0 (A) or 1 (B)", domain);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        if (!(prop[c] >= 0 && prop[c] <= 1))
            return sd_fail(SD_ERR_DATA, "class histogram: proportion of class %d (%s) is %g, expected [0, 1]",
                           c, sd_class_names[c], prop[c]);
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        int b = (int)floor(prop[c] * h->n_bins);
        if (b >= h->n_bins)
            b = h->n_bins - 1;
        h->count[domain][c][b] += 1;
    }
    h->n_images[domain]++;
    return SD_OK;
}

sd_status sd_gap_class_hist_add(sd_gap_class_hist *h, int domain, const uint8_t *label, int w, int ht)
{
    if (!label || w <= 0 || ht <= 0)
        return sd_fail(SD_ERR_ARG, "class histogram: empty label image (%dx%d)", w, ht);
    size_t cnt[SD_NUM_CLASSES] = {0}, valid = 0, n = (size_t)w * ht;
    for (size_t i = 0; i < n; i++)
        if (label[i] < SD_NUM_CLASSES) {
            cnt[label[i]]++;
            valid++;
        }
    if (!valid)
        return SD_OK; /* nothing to say about proportions of an all-void image */
    double prop[SD_NUM_CLASSES];
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        prop[c] = (double)cnt[c] / valid;
    return sd_gap_class_hist_add_props(h, domain, prop);
}

double sd_gap_kl(const double *p, const double *q, int n)
{
    double kl = 0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0)
            kl += p[i] * log(p[i] / q[i]);
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 for equal inputs */
}

sd_status sd_gap_class_hist_kl(const sd_gap_class_hist *h, double alpha, double kl[SD_NUM_CLASSES])
{
    if (!(alpha > 0))
        return sd_fail(SD_ERR_ARG, "class KL: smoothing %g, expected > 0", alpha);
    if (h->n_images[0] < 1 || h->n_images[1] < 1)
        return sd_fail(SD_ERR_DATA, "class KL: %d images with valid pixels in A and %d in B; each needs >= 1",
                       h->n_images[0], h->n_images[1]);
    int nb = h->n_bins;
    double p[SD_GAP_MAX_BINS], q[SD_GAP_MAX_BINS];
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        for (int b = 0; b < nb; b++) {
            /* smoothing on frequencies, not counts: with counts, two domains
             * with the same distribution but different image counts would
             * differ (an absent class would get KL > 0) */
            p[b] = ((double)h->count[0][c][b] / h->n_images[0] + alpha) / (1 + nb * alpha);
            q[b] = ((double)h->count[1][c][b] / h->n_images[1] + alpha) / (1 + nb * alpha);
        }
        kl[c] = sd_gap_kl(p, q, nb);
    }
    return SD_OK;
}
