/* Offline pseudo-labels shared by selftrain and FDA: full-size (ensemble)
 * predictions of target images, the label file in RUNDIR, batch crops of
 * the labels, FDA's per-class percentile thresholds. CBST's rule stays in
 * selftrain.c; the loss terms stay with the methods. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/pseudo.h"
#include "segda/ops.h"
#include "io/file.h"

sd_status sd_pseudo_init(sd_pseudo *p, sd_trainer *tr)
{
    memset(p, 0, sizeof *p);
    float *rgb;
    int w, h;
    sd_status st = sd_train_target_image(tr, 0, &rgb, &w, &h);
    if (st)
        return st;
    free(rgb);
    p->n = sd_train_target_count(tr);
    p->w = w;
    p->h = h;
    size_t bytes = (size_t)p->n * w * h;
    if (!(p->label = malloc(bytes)))
        return sd_fail(SD_ERR_NOMEM, "pseudo-labels: out of memory for %d images of %dx%d", p->n, w, h);
    memset(p->label, 255, bytes);
    return SD_OK;
}

void sd_pseudo_free(sd_pseudo *p)
{
    free(p->label);
    memset(p, 0, sizeof *p);
}

bool sd_pseudo_load(sd_pseudo *p, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t want = (size_t)p->n * p->w * p->h;
    size_t got = fread(p->label, 1, want, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    return got == want && !more;
}

sd_status sd_pseudo_save(const sd_pseudo *p, const char *path)
{
    char tmp[4300];
    io_tmp_name(tmp, sizeof tmp, path);
    size_t n = (size_t)p->n * p->w * p->h;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: could not write pseudo-labels", path);
    bool ok = fwrite(p->label, 1, n, f) == n;
    if (fclose(f) || !ok || rename(tmp, path))
        return sd_fail(SD_ERR_IO, "%s: could not write pseudo-labels", path);
    return SD_OK;
}

/* One model's softmax of image rgb [3][h][w], on tr's tape (not reset). */
static sd_tensor *softmax_of(sd_trainer *tr, sd_model *m, float *rgb, int w, int h, sd_status *st)
{
    sd_tape *t = &tr->tape;
    sd_tape_no_grad_begin(t);
    sd_batch b = {.n = 1, .h = h, .w = w, .image = rgb};
    sd_model_out o;
    *st = sd_model_forward(m, t, sd_train_input(tr, &b), false, &o);
    sd_tensor *p = *st ? NULL : sd_softmax(t, sd_train_upsample(tr, o.logits, h, w));
    sd_tape_no_grad_end(t);
    if (!*st && !p)
        *st = t->status ? t->status : SD_ERR_NOMEM;
    return p;
}

sd_status sd_pseudo_predict(sd_trainer *tr, sd_model *const *models, int n_models, int i, float **prob, int *w,
                            int *h, int *c)
{
    float *rgb;
    sd_status st = sd_train_target_image(tr, i, &rgb, w, h);
    if (st)
        return st;
    sd_tape_reset(&tr->tape);
    /* every model but the last adds into acc, so the tape can be reset
     * between models and holds one forward pass at a time */
    float *acc = NULL;
    size_t numel = 0;
    sd_tensor *p = NULL;
    for (int k = 0; k < n_models && !st; k++) {
        p = softmax_of(tr, models[k], rgb, *w, *h, &st);
        if (st)
            break;
        if (k + 1 < n_models) {
            if (!acc) {
                numel = p->numel;
                acc = calloc(numel, sizeof *acc);
                if (!acc)
                    st = sd_fail(SD_ERR_NOMEM, "pseudo-labels: out of memory for the ensemble's mean");
            }
            const float *pd = sd_tensor_host_view(&tr->tape, p);
            if (!pd)
                st = tr->tape.status;
            for (size_t j = 0; acc && pd && j < numel; j++)
                acc[j] += pd[j];
            sd_tape_reset(&tr->tape);
        }
    }
    float *pd = !st ? sd_tensor_host_view(&tr->tape, p) : NULL;   /* (on the host, also from a device) */
    if (!st && !pd)
        st = tr->tape.status;
    if (!st && acc) {
        float inv = 1.0f / (float)n_models;
        for (size_t j = 0; j < numel; j++)
            pd[j] = (acc[j] + pd[j]) * inv;
    }
    free(acc);
    free(rgb);
    if (!st) {
        *c = p->shape[1];
        *prob = pd;
    }
    return st;
}

uint8_t *sd_pseudo_crop(sd_trainer *tr, const sd_pseudo *p, const sd_batch *b)
{
    uint8_t *out = sd_arena_alloc(&tr->tape.arena, (size_t)b->n * b->w * b->h);
    if (!out)
        return NULL;
    for (int k = 0; k < b->n; k++) {
        const uint8_t *src = p->label + (size_t)b->index[k] * p->w * p->h;
        const sd_crop_box *box = &b->box[k];
        for (int y = 0; y < b->h; y++)
            for (int x = 0; x < b->w; x++) {
                double fx, fy;
                sd_crop_box_point(box, b->w, b->h, x + 0.5, y + 0.5, &fx, &fy);
                int px = (int)floor(fx * p->w / box->full_w), py = (int)floor(fy * p->h / box->full_h);
                out[((size_t)k * b->h + y) * b->w + x] =
                    px >= 0 && px < p->w && py >= 0 && py < p->h ? src[(size_t)py * p->w + px] : 255;
            }
    }
    return out;
}

void sd_pseudo_argmax(const float *prob, int c, size_t hw, uint8_t *label, uint16_t *conf)
{
    for (size_t i = 0; i < hw; i++) {
        int best = 0;
        for (int k = 1; k < c; k++)
            if (prob[k * hw + i] > prob[best * hw + i])
                best = k;
        double q = (double)prob[best * hw + i] * SD_PSEUDO_CONF_MAX;
        label[i] = (uint8_t)best;
        conf[i] = (uint16_t)(q >= SD_PSEUDO_CONF_MAX ? SD_PSEUDO_CONF_MAX : q > 0 ? q : 0);
    }
}

sd_status sd_pseudo_threshold_percentile(uint8_t *label, const uint16_t *conf, size_t n, int c, double percentile,
                                         double cap, float *thr)
{
    if (c < 1 || c > 255)
        return sd_fail(SD_ERR_ARG, "pseudo-labels: %d classes, expected 1..255", c);
    if (!(percentile >= 0 && percentile <= 1) || !(cap >= 0 && cap <= 1))
        return sd_fail(SD_ERR_ARG, "pseudo-labels: percentile %g and cap %g must lie in [0, 1]", percentile, cap);
    /* an exact order statistic from a histogram of the 16-bit confidences */
    const size_t bins = SD_PSEUDO_CONF_MAX + 1;
    uint64_t *hist = calloc((size_t)c * bins, sizeof *hist), count[256] = {0};
    if (!hist)
        return sd_fail(SD_ERR_NOMEM, "pseudo-labels: out of memory");
    for (size_t i = 0; i < n; i++)
        if (label[i] < c) {
            hist[label[i] * bins + conf[i]]++;
            count[label[i]]++;
        }
    /* conf >= ceil(cap * 65535) implies p >= cap */
    uint32_t cap_bin = (uint32_t)ceil(cap * SD_PSEUDO_CONF_MAX), tb[256];
    for (int k = 0; k < c; k++) {
        tb[k] = 0;
        if (!count[k])
            continue;
        /* numpy's np.round: half to even, which rint does in the default mode */
        double r = rint((double)count[k] * percentile);
        uint64_t idx = r >= (double)count[k] ? count[k] - 1 : (uint64_t)r, acc = 0;
        for (size_t b = 0; b < bins; b++) {
            acc += hist[k * bins + b];
            if (acc > idx) {
                tb[k] = (uint32_t)b;
                break;
            }
        }
        if (tb[k] > cap_bin)
            tb[k] = cap_bin;
    }
    free(hist);
    for (size_t i = 0; i < n; i++)
        if (label[i] < c && conf[i] < tb[label[i]])
            label[i] = 255;
    if (thr)
        for (int k = 0; k < c; k++)
            thr[k] = (float)tb[k] / SD_PSEUDO_CONF_MAX;
    return SD_OK;
}
