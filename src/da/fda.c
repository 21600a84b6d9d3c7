/* FDA (Yang & Soatto, CVPR 2020): Fourier domain adaptation. Each source
 * image takes the low-frequency amplitude of a target image (a square
 * window of half-size floor(min(H, W) * beta) at each corner of the
 * unshifted spectrum) and keeps its own phase; then
 *   L = L_seg(FDA(x_s)) + lambda_ent * mean_pixels( (E(x_t)^2 + 1e-8)^eta )
 * with E the normalised entropy of the target prediction (the "robust
 * entropy", eta 2, weight 0.005). The DFT is our own: radix-2 where a side
 * is a power of two, a direct transform otherwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"beta", SD_KNOB_FLOAT, "0.01", NULL, "low-frequency window: half-size floor(min(H,W) * beta) (0.01-0.09)"},
    {"lambda-ent", SD_KNOB_FLOAT, "0.005", NULL, "robust entropy weight on target predictions"},
    {"eta", SD_KNOB_INT, "2", NULL, "robust entropy exponent (a positive integer)"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (when the model has one)"},
    {NULL, 0, NULL, NULL, NULL},
};

/* In-place 1-D DFT of n complex values with stride (sign -1 forward, +1
 * inverse, unnormalised); tmp holds 2n doubles. */
static void dft1(double *re, double *im, int n, size_t stride, int sign, double *tmp)
{
    double *tr = tmp, *ti = tmp + n;
    for (int i = 0; i < n; i++) {
        tr[i] = re[(size_t)i * stride];
        ti[i] = im[(size_t)i * stride];
    }
    if ((n & (n - 1)) == 0) {
        for (int i = 1, j = 0; i < n; i++) {   /* bit reversal */
            int bit = n >> 1;
            for (; j & bit; bit >>= 1)
                j ^= bit;
            j ^= bit;
            if (i < j) {
                double a = tr[i], b = ti[i];
                tr[i] = tr[j];
                ti[i] = ti[j];
                tr[j] = a;
                ti[j] = b;
            }
        }
        for (int len = 2; len <= n; len <<= 1) {
            double ang = sign * 2 * M_PI / len;
            for (int i = 0; i < n; i += len)
                for (int k = 0; k < len / 2; k++) {
                    double wr = cos(ang * k), wi = sin(ang * k);
                    double ur = tr[i + k], ui = ti[i + k];
                    double vr = tr[i + k + len / 2] * wr - ti[i + k + len / 2] * wi;
                    double vi = tr[i + k + len / 2] * wi + ti[i + k + len / 2] * wr;
                    tr[i + k] = ur + vr;
                    ti[i + k] = ui + vi;
                    tr[i + k + len / 2] = ur - vr;
                    ti[i + k + len / 2] = ui - vi;
                }
        }
        for (int i = 0; i < n; i++) {
            re[(size_t)i * stride] = tr[i];
            im[(size_t)i * stride] = ti[i];
        }
        return;
    }
    for (int k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int i = 0; i < n; i++) {
            double a = sign * 2 * M_PI * (double)((int64_t)k * i % n) / n;
            sr += tr[i] * cos(a) - ti[i] * sin(a);
            si += tr[i] * sin(a) + ti[i] * cos(a);
        }
        re[(size_t)k * stride] = sr;
        im[(size_t)k * stride] = si;
    }
}

static void dft2(double *re, double *im, int h, int w, int sign, double *tmp)
{
    for (int y = 0; y < h; y++)
        dft1(re + (size_t)y * w, im + (size_t)y * w, w, 1, sign, tmp);
    for (int x = 0; x < w; x++)
        dft1(re + x, im + x, h, (size_t)w, sign, tmp);
}

sd_status sd_fda_swap_channel(float *src, const float *trg, int h, int w, float beta)
{
    int b = (int)floor((h < w ? h : w) * (double)beta);
    if (b <= 0)
        return SD_OK;
    size_t n = (size_t)h * w;
    double *sr = malloc(n * sizeof(double)), *si = calloc(n, sizeof(double));
    double *tr = malloc(n * sizeof(double)), *ti = calloc(n, sizeof(double));
    double *tmp = malloc(2 * (size_t)(h > w ? h : w) * sizeof(double));
    if (!sr || !si || !tr || !ti || !tmp) {
        free(sr);
        free(si);
        free(tr);
        free(ti);
        free(tmp);
        return sd_fail(SD_ERR_NOMEM, "fda: out of memory for a %dx%d transform", w, h);
    }
    for (size_t i = 0; i < n; i++) {
        sr[i] = src[i];
        tr[i] = trg[i];
    }
    dft2(sr, si, h, w, -1, tmp);
    dft2(tr, ti, h, w, -1, tmp);
    if (b > h / 2)
        b = h / 2;
    if (b > w / 2)
        b = w / 2;
    for (int y = 0; y < h; y++) {
        bool ly = y < b || y >= h - b;
        for (int x = 0; x < w && ly; x++) {
            if (!(x < b || x >= w - b))
                continue;
            size_t i = (size_t)y * w + x;
            double amp = hypot(tr[i], ti[i]), ph = atan2(si[i], sr[i]);
            sr[i] = amp * cos(ph);
            si[i] = amp * sin(ph);
        }
    }
    dft2(sr, si, h, w, +1, tmp);
    for (size_t i = 0; i < n; i++)
        src[i] = (float)(sr[i] / (double)n);
    free(sr);
    free(si);
    free(tr);
    free(ti);
    free(tmp);
    return SD_OK;
}

static sd_status step(sd_trainer *tr, void *state)
{
    (void)state;
    sd_tape *t = &tr->tape;
    const sd_batch *s = tr->src, *g = tr->tgt;
    if (s->h != g->h || s->w != g->w)
        return sd_fail(SD_ERR_ARG, "fda: source crops %dx%d and target crops %dx%d must have one size (give --crop)",
                       s->w, s->h, g->w, g->h);
    float beta = (float)sd_config_float(tr->cfg, "beta");
    size_t hw = (size_t)s->h * s->w;
    sd_status st;
    for (int k = 0; k < s->n; k++)
        for (int c = 0; c < 3; c++)
            if ((st = sd_fda_swap_channel(s->image + ((size_t)k * 3 + c) * hw, g->image + ((size_t)(k % g->n) * 3 + c) * hw,
                                          s->h, s->w, beta)))
                return st;
    if ((st = sd_train_supervised(tr, s, "seg", (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    sd_model_out ot;
    if ((st = sd_model_forward(tr->model, t, sd_train_input(tr, g), true, &ot)))
        return st;
    sd_tensor *e = sd_entropy_map(t, sd_train_upsample(tr, ot.logits, g->h, g->w));
    sd_tensor *base = sd_add_scalar(t, sd_mul(t, e, e), 1e-8f), *p = base;
    int64_t eta = sd_config_int(tr->cfg, "eta");
    if (eta < 1)
        return sd_fail(SD_ERR_ARG, "%s: eta = %lld, expected a positive integer", sd_config_origin(tr->cfg, "eta"),
                       (long long)eta);
    for (int64_t i = 1; i < eta; i++)
        p = sd_mul(t, p, base);
    return sd_train_loss(tr, "ent", sd_mean(t, p), (float)sd_config_float(tr->cfg, "lambda-ent"));
}

const sd_method sd_method_fda = {
    .name = "fda",
    .summary = "FDA: low-frequency amplitude swap of source images to the target's, plus robust entropy",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .step = step,
};
