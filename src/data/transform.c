/* Image and label transforms for training samples: PIL-style separable
 * resampling with precomputed weights (no per-pixel calls through filters),
 * crop with padding, flip, jitter, blur, and the augmentation pipeline that
 * ties them to one rng stream. Normalisation itself is in norm.c. No file I/O,
 * no threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/labels.h"
#include "segda/transform.h"

static inline uint8_t clip_u8(float v)
{
    v = v + 0.5f;
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

static double filter_eval(sd_interp f, double x)
{
    x = fabs(x);
    if (f == SD_INTERP_BILINEAR)
        return x < 1 ? 1 - x : 0;
    const double a = -0.5;
    if (x < 1)
        return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

typedef struct coeffs {
    int ksize;
    int *start, *count;
    float *w; /* [out][ksize] */
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->start);
    free(c->count);
    free(c->w);
}

/* PIL's precompute_coeffs: the filter widens by in/out when shrinking. */
static sd_status coeffs_make(coeffs *c, int in, int out, sd_interp f)
{
    double scale = (double)in / out, fs = scale < 1 ? 1 : scale;
    double support = (f == SD_INTERP_BILINEAR ? 1.0 : 2.0) * fs;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->start = malloc(sizeof(int) * out);
    c->count = malloc(sizeof(int) * out);
    c->w = calloc((size_t)out * c->ksize, sizeof(float));
    if (!c->start || !c->count || !c->w) {
        coeffs_free(c);
        return sd_fail(SD_ERR_NOMEM, "resize: out of memory for %d weights", out * c->ksize);
    }
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        int n = hi - lo;
        if (n > c->ksize)
            n = c->ksize;
        double sum = 0, tmp[64];
        double *ww = c->ksize <= 64 ? tmp : malloc(sizeof(double) * c->ksize);
        if (!ww) {
            coeffs_free(c);
            return sd_fail(SD_ERR_NOMEM, "resize: out of memory");
        }
        for (int k = 0; k < n; k++) {
            ww[k] = filter_eval(f, (k + lo - center + 0.5) / fs);
            sum += ww[k];
        }
        for (int k = 0; k < n; k++)
            c->w[(size_t)o * c->ksize + k] = (float)(sum != 0 ? ww[k] / sum : 0);
        if (ww != tmp)
            free(ww);
        c->start[o] = lo;
        c->count[o] = n;
    }
    return SD_OK;
}

static void resize_nearest(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh)
{
    int *xs = malloc(sizeof(int) * dw);
    if (!xs)
        return;
    for (int x = 0; x < dw; x++) {
        int s = (int)((x + 0.5) * sw / dw);
        xs[x] = (s < sw ? s : sw - 1) * c;
    }
    for (int y = 0; y < dh; y++) {
        int sy = (int)((y + 0.5) * sh / dh);
        if (sy >= sh)
            sy = sh - 1;
        const uint8_t *row = src + (size_t)sy * sw * c;
        uint8_t *o = dst + (size_t)y * dw * c;
        if (c == 1)
            for (int x = 0; x < dw; x++)
                o[x] = row[xs[x]];
        else
            for (int x = 0; x < dw; x++)
                for (int k = 0; k < c; k++)
                    o[x * c + k] = row[xs[x] + k];
    }
    free(xs);
}

sd_status sd_resize_u8(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh, sd_interp interp)
{
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 || c < 1 || c > 4 || (unsigned)interp >= SD_INTERP_COUNT)
        return sd_fail(SD_ERR_ARG, "resize: %dx%dx%d -> %dx%d with interpolation %d (expected positive sizes, c 1..4)",
                       sw, sh, c, dw, dh, (int)interp);
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * sh * c);
        return SD_OK;
    }
    if (interp == SD_INTERP_NEAREST) {
        resize_nearest(src, sw, sh, c, dst, dw, dh);
        return SD_OK;
    }
    coeffs ch = {0}, cv = {0};
    sd_status st = coeffs_make(&ch, sw, dw, interp);
    if (st)
        return st;
    st = coeffs_make(&cv, sh, dh, interp);
    if (st) {
        coeffs_free(&ch);
        return st;
    }
    /* Horizontal pass over only the source rows the vertical pass reads. */
    float *tmp = malloc(sizeof(float) * (size_t)sh * dw * c);
    if (!tmp) {
        coeffs_free(&ch);
        coeffs_free(&cv);
        return sd_fail(SD_ERR_NOMEM, "resize: out of memory for a %dx%d buffer", dw, sh);
    }
#pragma omp parallel for schedule(static) if ((size_t)sh * dw > 200000)
    for (int y = 0; y < sh; y++) {
        const uint8_t *row = src + (size_t)y * sw * c;
        float *o = tmp + (size_t)y * dw * c;
        for (int x = 0; x < dw; x++) {
            const float *w = ch.w + (size_t)x * ch.ksize;
            const uint8_t *p = row + (size_t)ch.start[x] * c;
            int n = ch.count[x];
            float acc[4] = {0, 0, 0, 0};
            if (c == 3) {
                for (int k = 0; k < n; k++) {
                    acc[0] += w[k] * p[3 * k];
                    acc[1] += w[k] * p[3 * k + 1];
                    acc[2] += w[k] * p[3 * k + 2];
                }
            } else {
                for (int k = 0; k < n; k++)
                    for (int j = 0; j < c; j++)
                        acc[j] += w[k] * p[c * k + j];
            }
            for (int j = 0; j < c; j++)
                o[x * c + j] = acc[j];
        }
    }
    size_t stride = (size_t)dw * c;
#pragma omp parallel for schedule(static) if ((size_t)dh * dw > 200000)
    for (int y = 0; y < dh; y++) {
        const float *w = cv.w + (size_t)y * cv.ksize;
        const float *base = tmp + (size_t)cv.start[y] * stride;
        int n = cv.count[y];
        uint8_t *o = dst + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++) {
            float acc = 0;
            for (int k = 0; k < n; k++)
                acc += w[k] * base[(size_t)k * stride + x];
            o[x] = clip_u8(acc);
        }
    }
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cv);
    return SD_OK;
}

void sd_flip_u8(uint8_t *img, int w, int h, int c)
{
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * w * c;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int k = 0; k < c; k++) {
                uint8_t t = row[a * c + k];
                row[a * c + k] = row[b * c + k];
                row[b * c + k] = t;
            }
    }
}

void sd_crop_u8(const uint8_t *src, int sw, int sh, int c, int x, int y, int cw, int ch, const uint8_t *fill,
                uint8_t *dst)
{
    for (int j = 0; j < ch; j++) {
        uint8_t *o = dst + (size_t)j * cw * c;
        int sy = y + j;
        int x0 = x < 0 ? -x : 0, x1 = sw - x < cw ? sw - x : cw; /* [x0, x1) inside src */
        if (sy < 0 || sy >= sh || x1 <= x0) {
            x0 = cw;
            x1 = cw;
        }
        for (int i = 0; i < x0; i++)
            memcpy(o + (size_t)i * c, fill, c);
        if (x1 > x0)
            memcpy(o + (size_t)x0 * c, src + ((size_t)sy * sw + x + x0) * c, (size_t)(x1 - x0) * c);
        for (int i = x1 > x0 ? x1 : x0; i < cw; i++)
            memcpy(o + (size_t)i * c, fill, c);
    }
}

void sd_color_jitter(uint8_t *rgb, int w, int h, float brightness, float contrast, float saturation)
{
    size_t n = (size_t)w * h;
    if (brightness != 1)
        for (size_t i = 0; i < 3 * n; i++)
            rgb[i] = clip_u8(rgb[i] * brightness);
    if (contrast != 1) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
        float mean = (float)(sum / n) * (1 - contrast);
        for (size_t i = 0; i < 3 * n; i++)
            rgb[i] = clip_u8(rgb[i] * contrast + mean);
    }
    if (saturation != 1)
        for (size_t i = 0; i < n; i++) {
            uint8_t *p = rgb + 3 * i;
            float g = (0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2]) * (1 - saturation);
            p[0] = clip_u8(p[0] * saturation + g);
            p[1] = clip_u8(p[1] * saturation + g);
            p[2] = clip_u8(p[2] * saturation + g);
        }
}

static inline int mirror(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

sd_status sd_gaussian_blur(uint8_t *img, int w, int h, int c, float sigma)
{
    if (!(sigma > 0) || sigma > 100 || w <= 0 || h <= 0 || c < 1 || c > 4)
        return sd_fail(SD_ERR_ARG, "gaussian blur: sigma %g on %dx%dx%d (expected 0 < sigma <= 100)", sigma, w, h, c);
    int r = (int)ceilf(3 * sigma), k = 2 * r + 1;
    float *kern = malloc(sizeof(float) * k);
    float *tmp = malloc(sizeof(float) * (size_t)w * h * c);
    if (!kern || !tmp) {
        free(kern);
        free(tmp);
        return sd_fail(SD_ERR_NOMEM, "gaussian blur: out of memory");
    }
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += kern[i + r] = (float)exp(-0.5 * i * i / ((double)sigma * sigma));
    for (int i = 0; i < k; i++)
        kern[i] = (float)(kern[i] / sum);
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img + (size_t)y * w * c;
        float *o = tmp + (size_t)y * w * c;
        for (int x = 0; x < w; x++)
            for (int j = 0; j < c; j++) {
                float acc = 0;
                if (x >= r && x + r < w)
                    for (int t = 0; t < k; t++)
                        acc += kern[t] * row[(x + t - r) * c + j];
                else
                    for (int t = 0; t < k; t++)
                        acc += kern[t] * row[mirror(x + t - r, w) * c + j];
                o[x * c + j] = acc;
            }
    }
    size_t stride = (size_t)w * c;
    for (int y = 0; y < h; y++) {
        uint8_t *o = img + (size_t)y * stride;
        for (size_t x = 0; x < stride; x++) {
            float acc = 0;
            for (int t = 0; t < k; t++)
                acc += kern[t] * tmp[(size_t)mirror(y + t - r, h) * stride + x];
            o[x] = clip_u8(acc);
        }
    }
    free(kern);
    free(tmp);
    return SD_OK;
}

void sd_augment_out_size(const sd_augment *a, int w, int h, int *ow, int *oh)
{
    if (a->crop_w > 0 && a->crop_h > 0)
        *ow = a->crop_w, *oh = a->crop_h;
    else if (a->base_w > 0 && a->base_h > 0)
        *ow = a->base_w, *oh = a->base_h;
    else
        *ow = w, *oh = h;
}

/* Replaces *buf (w x h x c) by its resize to nw x nh. */
static sd_status resize_owned(uint8_t **buf, int w, int h, int c, int nw, int nh, sd_interp interp)
{
    if (w == nw && h == nh)
        return SD_OK;
    uint8_t *o = sd_malloc((size_t)nw * nh * c);
    if (!o)
        return SD_ERR_NOMEM;
    sd_status st = sd_resize_u8(*buf, w, h, c, o, nw, nh, interp);
    if (st) {
        free(o);
        return st;
    }
    free(*buf);
    *buf = o;
    return SD_OK;
}

void sd_crop_box_point(const sd_crop_box *b, int ow, int oh, double u, double v, double *x, double *y)
{
    *x = b->x + (b->flipped ? ow - u : u) * b->w / ow;
    *y = b->y + v * b->h / oh;
}

sd_status sd_augment_sample(const sd_augment *a, sd_rng *rng, const sd_sample *s, float *img_out,
                            uint8_t *label_out, sd_crop_box *box)
{
    int W = s->w, H = s->h;
    if (!(a->norm.scale > 0) || !(a->norm.std[0] > 0) || !(a->norm.std[1] > 0) || !(a->norm.std[2] > 0))
        return sd_fail(SD_ERR_ARG, "augment: normalisation not set (expected sd_norm_caffe, sd_norm_torchvision or positive scale/std)");
    if (!s->image || W <= 0 || H <= 0)
        return sd_fail(SD_ERR_ARG, "augment: sample %d (%s) has no image", s->index, s->stem ? s->stem : "?");
    uint8_t *img = sd_malloc((size_t)W * H * 3), *lab = NULL;
    if (!img)
        return SD_ERR_NOMEM;
    memcpy(img, s->image, (size_t)W * H * 3);
    sd_status st = SD_OK;
    if (s->label) {
        lab = sd_malloc((size_t)s->lw * s->lh);
        if (!lab) {
            free(img);
            return SD_ERR_NOMEM;
        }
        memcpy(lab, s->label, (size_t)s->lw * s->lh);
        /* the label follows the image's size, nearest, before anything else */
        st = resize_owned(&lab, s->lw, s->lh, 1, W, H, SD_INTERP_NEAREST);
    }
    int w = W, h = H;
    if (!st && a->base_w > 0 && a->base_h > 0) {
        st = resize_owned(&img, w, h, 3, a->base_w, a->base_h, a->image_interp);
        if (!st && lab)
            st = resize_owned(&lab, w, h, 1, a->base_w, a->base_h, SD_INTERP_NEAREST);
        w = a->base_w, h = a->base_h;
    }
    if (!st && a->scale_max > 0 && (a->scale_min != 1 || a->scale_max != 1)) {
        float sc = a->scale_min + (a->scale_max - a->scale_min) * sd_rng_uniform(rng);
        int nw = (int)lrintf(w * sc), nh = (int)lrintf(h * sc);
        nw = nw < 1 ? 1 : nw;
        nh = nh < 1 ? 1 : nh;
        st = resize_owned(&img, w, h, 3, nw, nh, a->image_interp);
        if (!st && lab)
            st = resize_owned(&lab, w, h, 1, nw, nh, SD_INTERP_NEAREST);
        w = nw, h = nh;
    }
    int ow, oh, cx = 0, cy = 0;
    sd_augment_out_size(a, w, h, &ow, &oh);
    if (!st && a->crop_w > 0 && a->crop_h > 0) {
        cx = w > ow ? sd_rng_int(rng, w - ow + 1) : 0;
        cy = h > oh ? sd_rng_int(rng, h - oh + 1) : 0;
        if (cx != 0 || cy != 0 || ow != w || oh != h) {
            uint8_t fill[3], ign = SD_IGNORE;
            sd_norm_fill(&a->norm, fill);
            uint8_t *ci = sd_malloc((size_t)ow * oh * 3), *cl = lab ? sd_malloc((size_t)ow * oh) : NULL;
            if (!ci || (lab && !cl)) {
                free(ci);
                free(cl);
                st = SD_ERR_NOMEM;
            } else {
                sd_crop_u8(img, w, h, 3, cx, cy, ow, oh, fill, ci);
                if (lab)
                    sd_crop_u8(lab, w, h, 1, cx, cy, ow, oh, &ign, cl);
                free(img);
                free(lab);
                img = ci;
                lab = cl;
            }
        }
    }
    bool flipped = false;
    if (!st && a->flip && sd_rng_uniform(rng) < 0.5f) {
        flipped = true;
        sd_flip_u8(img, ow, oh, 3);
        if (lab)
            sd_flip_u8(lab, ow, oh, 1);
    }
    if (!st && (a->brightness > 0 || a->contrast > 0 || a->saturation > 0)) {
        float b = 1 + a->brightness * (2 * sd_rng_uniform(rng) - 1);
        float c = 1 + a->contrast * (2 * sd_rng_uniform(rng) - 1);
        float sa = 1 + a->saturation * (2 * sd_rng_uniform(rng) - 1);
        sd_color_jitter(img, ow, oh, b, c, sa);
    }
    if (!st && a->blur_p > 0 && sd_rng_uniform(rng) < a->blur_p) {
        float sg = a->blur_sigma_min + (a->blur_sigma_max - a->blur_sigma_min) * sd_rng_uniform(rng);
        if (sg > 0)
            st = sd_gaussian_blur(img, ow, oh, 3, sg);
    }
    if (!st) {
        if (a->raw_rgb) {
            size_t hw = (size_t)ow * oh;
            for (size_t i = 0; i < hw; i++)
                for (int c = 0; c < 3; c++)
                    img_out[c * hw + i] = img[i * 3 + c];
        } else {
            sd_normalize(img, ow, oh, &a->norm, img_out);
        }
        if (label_out && lab)
            memcpy(label_out, lab, (size_t)ow * oh);
        else if (label_out)
            memset(label_out, SD_IGNORE, (size_t)ow * oh);
        if (box) {
            float sx = (float)w / W, sy = (float)h / H;
            *box = (sd_crop_box){.x = cx / sx, .y = cy / sy, .w = ow / sx, .h = oh / sy, .scale_x = sx,
                                 .scale_y = sy, .full_w = W, .full_h = H, .flipped = flipped};
        }
    }
    free(img);
    free(lab);
    if (st)
        return sd_fail_prefix(st, "augment sample %d (%s)", s->index, s->stem ? s->stem : "?");
    return SD_OK;
}
