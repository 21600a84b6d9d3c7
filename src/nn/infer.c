/* Whole-image inference: normalise, resize to the network size and scales,
 * whole-image or sliding-window forward passes, flip, upsample logits to the
 * full resolution, softmax, average. Writing PNGs is the CLI's business. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/infer.h"
#include "segda/ops.h"

sd_infer_opts sd_infer_opts_default(sd_norm norm)
{
    sd_infer_opts o = {.norm = norm, .n_scales = 1, .scales = {1.0f}, .overlap = 1.0f / 3.0f};
    return o;
}

void sd_image_normalize(const uint8_t *px, int w, int h, int c, sd_norm norm, float *dst)
{
    static const float caffe_bgr[3] = {104.00698793f, 116.66876762f, 122.67891434f};
    static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    size_t hw = (size_t)w * h;
    for (size_t i = 0; i < hw; i++) {
        const uint8_t *p = px + i * (size_t)c;
        float rgb[3] = {p[0], c >= 3 ? p[1] : p[0], c >= 3 ? p[2] : p[0]};
        if (norm == SD_NORM_CAFFE) {
            for (int k = 0; k < 3; k++)
                dst[k * hw + i] = rgb[2 - k] - caffe_bgr[k];
        } else {
            for (int k = 0; k < 3; k++)
                dst[k * hw + i] = (rgb[k] / 255.0f - in_mean[k]) / in_std[k];
        }
    }
}

void sd_probs_argmax(const float *probs, int classes, int w, int h, uint8_t *pred, float *conf)
{
    size_t hw = (size_t)w * h;
    for (size_t i = 0; i < hw; i++) {
        int best = 0;
        float bv = probs[i];
        for (int k = 1; k < classes; k++)
            if (probs[k * hw + i] > bv) {
                bv = probs[k * hw + i];
                best = k;
            }
        pred[i] = (uint8_t)(best < 255 ? best : 254);
        if (conf)
            conf[i] = bv;
    }
}

/* Window start positions covering [0, n) with windows of size win. */
static int window_starts(int n, int win, float overlap, int *starts, int cap)
{
    if (win >= n) {
        starts[0] = 0;
        return 1;
    }
    int stride = (int)ceilf((float)win * (1.0f - overlap));
    if (stride < 1)
        stride = 1;
    int k = 0;
    for (int s = 0; k < cap; s += stride) {
        if (s + win >= n) {
            starts[k++] = n - win;
            break;
        }
        starts[k++] = s;
    }
    return k;
}

/* Logits at the input's resolution [1, C, h, w] for one normalised image x. */
static sd_tensor *logits_full(sd_model *m, sd_tape *t, sd_tensor *x, const sd_infer_opts *o)
{
    int h = x->shape[2], w = x->shape[3];
    sd_model_out out;
    if (!o->win_w || !o->win_h || (o->win_w >= w && o->win_h >= h)) {
        if (sd_model_forward(m, t, x, false, &out))
            return NULL;
        return sd_resize_bilinear(t, out.logits, h, w, o->align_corners);
    }
    int ww = o->win_w < w ? o->win_w : w, wh = o->win_h < h ? o->win_h : h;
    int ys[256], xs[256];
    int ny = window_starts(h, wh, o->overlap, ys, 256), nx = window_starts(w, ww, o->overlap, xs, 256);
    int C = sd_model_options(m)->classes;
    sd_tensor *acc = sd_tensor_zeros(t, 4, (int[]){1, C, h, w});
    float *cnt = calloc((size_t)h * w, sizeof *cnt);
    if (!acc || !cnt) {
        free(cnt);
        sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d window canvas", w, h);
        return NULL;
    }
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            sd_tensor *crop = sd_slice(t, sd_slice(t, x, 2, ys[iy], ys[iy] + wh), 3, xs[ix], xs[ix] + ww);
            if (!crop || sd_model_forward(m, t, crop, false, &out)) {
                free(cnt);
                return NULL;
            }
            sd_tensor *l = sd_resize_bilinear(t, out.logits, wh, ww, o->align_corners);
            if (!l) {
                free(cnt);
                return NULL;
            }
            for (int k = 0; k < C; k++)
                for (int yy = 0; yy < wh; yy++) {
                    float *dst = acc->data + ((size_t)k * h + ys[iy] + yy) * w + xs[ix];
                    const float *src = l->data + ((size_t)k * wh + yy) * ww;
                    for (int xx = 0; xx < ww; xx++)
                        dst[xx] += src[xx];
                }
            for (int yy = 0; yy < wh; yy++)
                for (int xx = 0; xx < ww; xx++)
                    cnt[(size_t)(ys[iy] + yy) * w + xs[ix] + xx] += 1;
        }
    for (int k = 0; k < C; k++)
        for (size_t i = 0; i < (size_t)h * w; i++)
            acc->data[(size_t)k * h * w + i] /= cnt[i];
    free(cnt);
    return acc;
}

sd_status sd_infer_probs(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                         float *probs)
{
    if (w < 8 || h < 8 || (c != 1 && c != 3 && c != 4))
        return sd_fail(SD_ERR_ARG, "inference: image %dx%d with %d channels, expected at least 8x8 and 1, 3 or 4 "
                       "channels", w, h, c);
    if (o->n_scales < 1 || o->n_scales > SD_INFER_MAX_SCALES)
        return sd_fail(SD_ERR_ARG, "inference: %d scales, expected 1..%d", o->n_scales, SD_INFER_MAX_SCALES);
    int C = sd_model_options(m)->classes;
    size_t hw = (size_t)w * h;
    float *img = malloc(3 * hw * sizeof *img);
    if (!img)
        return sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d image", w, h);
    sd_image_normalize(px, w, h, c, o->norm, img);
    memset(probs, 0, (size_t)C * hw * sizeof *probs);
    int base_w = o->net_w > 0 ? o->net_w : w, base_h = o->net_h > 0 ? o->net_h : h;
    int passes = 0;
    sd_status st = SD_OK;
    for (int s = 0; s < o->n_scales && !st; s++) {
        int sw = (int)lroundf(base_w * o->scales[s]), sh = (int)lroundf(base_h * o->scales[s]);
        if (sw < 8 || sh < 8 || sw > 16384 || sh > 16384) {
            st = sd_fail(SD_ERR_ARG, "inference: scale %g gives a %dx%d network input, expected 8..16384", o->scales[s],
                         sw, sh);
            break;
        }
        for (int f = 0; f < (o->flip ? 2 : 1) && !st; f++) {
            sd_tape_reset(t);
            sd_tape_no_grad_begin(t);
            sd_tensor *x = sd_tensor_wrap(t, 4, (int[]){1, 3, h, w}, img);
            if (x && (sw != w || sh != h))
                x = sd_resize_bilinear(t, x, sh, sw, false);
            if (x && f)
                x = sd_flip_w(t, x);
            sd_tensor *l = x ? logits_full(m, t, x, o) : NULL;
            if (l && f)
                l = sd_flip_w(t, l);
            if (l && (sw != w || sh != h))
                l = sd_resize_bilinear(t, l, h, w, o->align_corners);
            sd_tensor *p = l ? sd_softmax(t, l) : NULL;
            sd_tape_no_grad_end(t);
            if (!p) {
                st = t->status ? t->status : SD_ERR_ARG;
                if (!sd_errmsg()[0])
                    sd_fail(st, "inference failed");
                break;
            }
            for (size_t i = 0; i < (size_t)C * hw; i++)
                probs[i] += p->data[i];
            passes++;
        }
    }
    sd_tape_reset(t);
    free(img);
    if (st)
        return st;
    float inv = 1.0f / (float)passes;
    for (size_t i = 0; i < (size_t)C * hw; i++)
        probs[i] *= inv;
    return SD_OK;
}
