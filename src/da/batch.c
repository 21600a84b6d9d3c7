/* Training batches: reads a dataset's samples, resizes them to the run's
 * full-image size, keeps them in memory, and cuts seeded crops per
 * iteration. Not here: the loop (train.c), methods' own image edits. */
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"

void sd_resize_rgb_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    float sx = (float)sw / (float)dw, sy = (float)sh / (float)dh;
    for (int y = 0; y < dh; y++) {
        float fy = ((float)y + 0.5f) * sy - 0.5f;
        if (fy < 0)
            fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
        float ly = fy - (float)y0;
        for (int x = 0; x < dw; x++) {
            float fx = ((float)x + 0.5f) * sx - 0.5f;
            if (fx < 0)
                fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
            float lx = fx - (float)x0;
            for (int c = 0; c < 3; c++) {
                float a = src[((size_t)y0 * sw + x0) * 3 + c], b = src[((size_t)y0 * sw + x1) * 3 + c];
                float d = src[((size_t)y1 * sw + x0) * 3 + c], e = src[((size_t)y1 * sw + x1) * 3 + c];
                float v = (1 - ly) * ((1 - lx) * a + lx * b) + ly * ((1 - lx) * d + lx * e);
                dst[((size_t)y * dw + x) * 3 + c] = (uint8_t)(v + 0.5f);
            }
        }
    }
}

void sd_resize_label_u8(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh)
{
    for (int y = 0; y < dh; y++) {
        int sy = (int)((int64_t)y * sh / dh);
        for (int x = 0; x < dw; x++)
            dst[(size_t)y * dw + x] = src[(size_t)sy * sw + (int)((int64_t)x * sw / dw)];
    }
}

sd_status sd_train_source_open(sd_train_source *s, const char *spec, const char *split, int full_w, int full_h,
                               bool use_labels, uint32_t stream)
{
    memset(s, 0, sizeof *s);
    sd_status st = sd_dataset_open(&s->ds, spec, split, NULL);
    if (st)
        return st;
    s->opened = true;
    if (s->ds.n == 0) {
        sd_train_source_free(s);
        return sd_fail(SD_ERR_DATA, "%s: no samples", spec);
    }
    if (use_labels && !s->ds.has_labels) {
        sd_train_source_free(s);
        return sd_fail(SD_ERR_DATA, "%s: training needs its labels, but the split has none", spec);
    }
    s->use_labels = use_labels;
    s->stream = stream;
    s->full_w = full_w;
    s->full_h = full_h;
    s->cache_limit = (size_t)3 << 30;
    s->perm_epoch = -1;
    s->n_subset = s->ds.n;
    s->subset = malloc((size_t)s->ds.n * sizeof *s->subset);
    s->perm = malloc((size_t)s->ds.n * sizeof *s->perm);
    s->img = calloc((size_t)s->ds.n, sizeof *s->img);
    s->lab = calloc((size_t)s->ds.n, sizeof *s->lab);
    s->iw = calloc((size_t)s->ds.n, sizeof *s->iw);
    s->ih = calloc((size_t)s->ds.n, sizeof *s->ih);
    if (!s->subset || !s->perm || !s->img || !s->lab || !s->iw || !s->ih) {
        sd_train_source_free(s);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory listing %d samples", spec, s->ds.n);
    }
    for (int i = 0; i < s->ds.n; i++)
        s->subset[i] = i;
    return SD_OK;
}

void sd_train_source_free(sd_train_source *s)
{
    if (s->img)
        for (int i = 0; i < s->ds.n; i++) {
            free(s->img[i]);
            free(s->lab[i]);
        }
    free(s->img);
    free(s->lab);
    free(s->iw);
    free(s->ih);
    free(s->subset);
    free(s->perm);
    if (s->opened)
        sd_dataset_free(&s->ds);
    memset(s, 0, sizeof *s);
}

sd_status sd_train_source_subset(sd_train_source *s, int n, uint64_t seed)
{
    if (n <= 0 || n >= s->ds.n)
        return SD_OK;
    /* A seeded partial Fisher-Yates over all indices, then sorted, so budget
     * n of seed s is a fixed set whatever the run length. */
    int *all = malloc((size_t)s->ds.n * sizeof *all);
    if (!all)
        return sd_fail(SD_ERR_NOMEM, "subset: out of memory");
    for (int i = 0; i < s->ds.n; i++)
        all[i] = i;
    sd_rng r = sd_rng_fork(seed, 0x5b5e7ULL);
    for (int i = 0; i < n; i++) {
        int j = i + sd_rng_int(&r, s->ds.n - i);
        int t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && all[j - 1] > all[j]; j--) {
            int t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    memcpy(s->subset, all, (size_t)n * sizeof *all);
    s->n_subset = n;
    s->perm_epoch = -1;
    free(all);
    return SD_OK;
}

sd_status sd_train_source_get(sd_train_source *s, int i, const uint8_t **img, const uint8_t **lab, int *w,
                              int *h, void **tmp_img, void **tmp_lab)
{
    *tmp_img = *tmp_lab = NULL;
    if (s->img[i]) {
        *img = s->img[i];
        *lab = s->lab[i];
        *w = s->iw[i];
        *h = s->ih[i];
        return SD_OK;
    }
    sd_sample smp;
    sd_status st = sd_dataset_read(&s->ds, i, &smp);
    if (st)
        return st;
    int fw = s->full_w ? s->full_w : smp.w, fh = s->full_h ? s->full_h : smp.h;
    uint8_t *im = malloc((size_t)fw * fh * 3), *lb = NULL;
    if (!im) {
        sd_sample_free(&smp);
        return sd_fail(SD_ERR_NOMEM, "out of memory for sample %d", i);
    }
    if (fw == smp.w && fh == smp.h)
        memcpy(im, smp.image, (size_t)fw * fh * 3);
    else
        sd_resize_rgb_u8(smp.image, smp.w, smp.h, im, fw, fh);
    if (s->use_labels) {
        if (!smp.label) {
            free(im);
            sd_sample_free(&smp);
            return sd_fail(SD_ERR_DATA, "%s: sample has no label", s->ds.samples[i].image_path);
        }
        lb = malloc((size_t)fw * fh);
        if (!lb) {
            free(im);
            sd_sample_free(&smp);
            return sd_fail(SD_ERR_NOMEM, "out of memory for sample %d", i);
        }
        if (fw == smp.lw && fh == smp.lh)
            memcpy(lb, smp.label, (size_t)fw * fh);
        else
            sd_resize_label_u8(smp.label, smp.lw, smp.lh, lb, fw, fh);
    }
    sd_sample_free(&smp);
    size_t bytes = (size_t)fw * fh * (s->use_labels ? 4 : 3);
    if (s->cached_bytes + bytes <= s->cache_limit) {
        s->img[i] = im;
        s->lab[i] = lb;
        s->iw[i] = fw;
        s->ih[i] = fh;
        s->cached_bytes += bytes;
    } else {
        *tmp_img = im;
        *tmp_lab = lb;
    }
    *img = im;
    *lab = lb;
    *w = fw;
    *h = fh;
    return SD_OK;
}

static int sample_at(sd_train_source *s, uint64_t seed, int64_t g)
{
    int64_t epoch = g / s->n_subset;
    if (epoch != s->perm_epoch) {
        memcpy(s->perm, s->subset, (size_t)s->n_subset * sizeof *s->perm);
        sd_rng r = sd_rng_fork(seed, ((uint64_t)s->stream << 40) ^ (uint64_t)epoch);
        for (int i = s->n_subset - 1; i > 0; i--) {
            int j = sd_rng_int(&r, i + 1);
            int t = s->perm[i];
            s->perm[i] = s->perm[j];
            s->perm[j] = t;
        }
        s->perm_epoch = epoch;
    }
    return s->perm[g % s->n_subset];
}

void sd_batch_free(sd_batch *b)
{
    free(b->rgb);
    free(b->labels);
    free(b->box);
    free(b->index);
    free(b->flipped);
    memset(b, 0, sizeof *b);
}

sd_status sd_train_source_batch(sd_train_source *s, uint64_t seed, int64_t it, int n, int crop_w, int crop_h,
                                bool flip, sd_batch *b)
{
    sd_status st = SD_OK;
    sd_rng r = sd_rng_fork(seed, ((uint64_t)s->stream << 40) ^ 0x8000000000ULL ^ (uint64_t)it);
    for (int k = 0; k < n; k++) {
        int idx = sample_at(s, seed, it * n + k);
        const uint8_t *img, *lab;
        int w, h;
        void *ti, *tl;
        if ((st = sd_train_source_get(s, idx, &img, &lab, &w, &h, &ti, &tl)))
            return st;
        int cw = crop_w ? crop_w : w, ch = crop_h ? crop_h : h;
        if (cw > w || ch > h) {
            free(ti);
            free(tl);
            return sd_fail(SD_ERR_ARG, "%s: crop %dx%d is larger than the image (%dx%d after resizing)",
                           s->ds.samples[idx].image_path, cw, ch, w, h);
        }
        if (k == 0) {
            size_t px = (size_t)n * cw * ch;
            if (b->n != n || b->w != cw || b->h != ch || (s->use_labels && !b->labels)) {
                sd_batch_free(b);
                b->rgb = malloc(px * 3 * sizeof(float));
                b->labels = s->use_labels ? malloc(px) : NULL;
                b->box = malloc((size_t)n * sizeof *b->box);
                b->index = malloc((size_t)n * sizeof *b->index);
                b->flipped = malloc((size_t)n * sizeof *b->flipped);
                if (!b->rgb || (s->use_labels && !b->labels) || !b->box || !b->index || !b->flipped) {
                    free(ti);
                    free(tl);
                    sd_batch_free(b);
                    return sd_fail(SD_ERR_NOMEM, "out of memory for a batch of %d x %dx%d", n, cw, ch);
                }
                b->n = n;
                b->w = cw;
                b->h = ch;
            }
            b->full_w = w;
            b->full_h = h;
        } else if (cw != b->w || ch != b->h) {
            free(ti);
            free(tl);
            return sd_fail(SD_ERR_DATA, "%s: %dx%d differs from the batch's %dx%d; give a crop or a resize size",
                           s->ds.samples[idx].image_path, cw, ch, b->w, b->h);
        }
        int x0 = sd_rng_int(&r, w - cw + 1), y0 = sd_rng_int(&r, h - ch + 1);
        bool fl = flip && sd_rng_uniform(&r) < 0.5f;
        b->box[k][0] = x0;
        b->box[k][1] = y0;
        b->box[k][2] = x0 + cw;
        b->box[k][3] = y0 + ch;
        b->index[k] = idx;
        b->flipped[k] = fl;
        float *dst = b->rgb + (size_t)k * 3 * cw * ch;
        uint8_t *ldst = b->labels ? b->labels + (size_t)k * cw * ch : NULL;
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++) {
                int sx = x0 + (fl ? cw - 1 - x : x);
                const uint8_t *p = img + ((size_t)(y0 + y) * w + sx) * 3;
                for (int c = 0; c < 3; c++)
                    dst[(size_t)c * cw * ch + (size_t)y * cw + x] = p[c];
                if (ldst)
                    ldst[(size_t)y * cw + x] = lab[(size_t)(y0 + y) * w + sx];
            }
        free(ti);
        free(tl);
    }
    return SD_OK;
}

void sd_normalise_rgb(sd_norm norm, const float *rgb, int n, int h, int w, float *dst)
{
    static const float caffe_bgr[3] = {104.00698793f, 116.66876762f, 122.67891434f};
    static const float im_mean[3] = {0.485f, 0.456f, 0.406f}, im_std[3] = {0.229f, 0.224f, 0.225f};
    size_t hw = (size_t)h * w;
    for (int k = 0; k < n; k++)
        for (int c = 0; c < 3; c++) {
            float *o = dst + ((size_t)k * 3 + c) * hw;
            if (norm == SD_NORM_CAFFE) {
                /* BGR order: output channel c is input channel 2 - c */
                const float *in = rgb + ((size_t)k * 3 + (2 - c)) * hw;
                for (size_t i = 0; i < hw; i++)
                    o[i] = in[i] - caffe_bgr[c];
            } else {
                const float *in = rgb + ((size_t)k * 3 + c) * hw;
                float m = im_mean[c], inv = 1.0f / im_std[c];
                for (size_t i = 0; i < hw; i++)
                    o[i] = (in[i] / 255.0f - m) * inv;
            }
        }
}
