/* Whole-image inference: resize to the network size, normalise (norm.h),
 * scales, whole-image or sliding-window forward passes, flip, and averaging,
 * either of softmax probabilities at the image's resolution (predict) or of
 * raw logits on the network's output grid (eval, which upsamples them to the
 * ground truth itself). Writing PNGs is the CLI's business. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/infer.h"
#include "segda/ops.h"
#include "segda/transform.h"

sd_infer_opts sd_infer_opts_default(sd_norm norm)
{
    /* align_corners true: what AdaptSegNet/ADVENT's evaluation upsamples
     * with, and the default of train's evaluation and of segda eval */
    sd_infer_opts o = {.norm = norm, .n_scales = 1, .scales = {1.0f}, .overlap = 1.0f / 3.0f, .align_corners = true};
    return o;
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

/* acc (+)= x's values, copied from x's device; first: acc = x. */
static sd_status accumulate_host(const sd_tensor *x, float *acc, bool first)
{
    if (first)
        return sd_tensor_to_host(x, acc);
    float *tmp = malloc(x->numel * sizeof *tmp);
    if (!tmp)
        return sd_fail(SD_ERR_NOMEM, "inference: out of memory for %s logits", sd_shape_str(x));
    sd_status st = sd_tensor_to_host(x, tmp);
    for (size_t i = 0; !st && i < x->numel; i++)
        acc[i] += tmp[i];
    free(tmp);
    return st;
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

/* Logits [1, C, lh, lw] of one pass on the normalised input x [1, 3, h, w]:
 * over the whole image, the head's output as it is (e.g. 1/8 of x for
 * output stride 8); with sliding windows, each window's logits upsampled to
 * the window and averaged where windows overlap, on x's own grid. */
static sd_tensor *pass_logits(sd_model *m, sd_tape *t, sd_tensor *x, const sd_infer_opts *o)
{
    int h = x->shape[2], w = x->shape[3];
    sd_model_out out;
    if (!o->win_w || !o->win_h || (o->win_w >= w && o->win_h >= h)) {
        if (sd_model_forward(m, t, x, false, &out))
            return NULL;
        return out.logits;
    }
    int ww = o->win_w < w ? o->win_w : w, wh = o->win_h < h ? o->win_h : h;
    int ys[256], xs[256];
    int ny = window_starts(h, wh, o->overlap, ys, 256), nx = window_starts(w, ww, o->overlap, xs, 256);
    int C = sd_model_options(m)->classes;
    float *acc = calloc((size_t)C * h * w, sizeof *acc), *win = malloc((size_t)C * wh * ww * sizeof *win);
    float *cnt = calloc((size_t)h * w, sizeof *cnt);
    if (!acc || !cnt || !win) {
        free(acc);
        free(win);
        free(cnt);
        sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d window canvas", w, h);
        return NULL;
    }
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            sd_tensor *crop = sd_slice(t, sd_slice(t, x, 2, ys[iy], ys[iy] + wh), 3, xs[ix], xs[ix] + ww);
            sd_tensor *l = crop && !sd_model_forward(m, t, crop, false, &out)
                               ? sd_resize_bilinear(t, out.logits, wh, ww, o->align_corners)
                               : NULL;
            if (!l || sd_tensor_to_host(l, win)) {
                free(acc);
                free(win);
                free(cnt);
                return NULL;
            }
            for (int k = 0; k < C; k++)
                for (int yy = 0; yy < wh; yy++) {
                    float *dst = acc + ((size_t)k * h + ys[iy] + yy) * w + xs[ix];
                    const float *src = win + ((size_t)k * wh + yy) * ww;
                    for (int xx = 0; xx < ww; xx++)
                        dst[xx] += src[xx];
                }
            for (int yy = 0; yy < wh; yy++)
                for (int xx = 0; xx < ww; xx++)
                    cnt[(size_t)(ys[iy] + yy) * w + xs[ix] + xx] += 1;
        }
    for (int k = 0; k < C; k++)
        for (size_t i = 0; i < (size_t)h * w; i++)
            acc[(size_t)k * h * w + i] /= cnt[i];
    free(cnt);
    free(win);
    sd_tensor *r = sd_tensor_new4(t, 1, C, h, w);
    if (r && sd_tensor_from_host(r, acc))
        r = NULL;
    free(acc);
    return r;
}

/* The resize happens on the 8-bit image, before normalising, because that
 * is where the field's loaders do it (PIL), and PIL's antialiasing matters
 * when shrinking 2048x1024 to 1024x512. */
sd_status sd_infer_input(const uint8_t *px, int w, int h, int c, int dw, int dh, sd_norm norm, float **out)
{
    *out = NULL;
    if (w < 1 || h < 1 || dw < 1 || dh < 1 || (c != 1 && c != 3 && c != 4))
        return sd_fail(SD_ERR_ARG, "inference: image %dx%d with %d channels to %dx%d, expected 1, 3 or 4 channels "
                       "and positive sizes", w, h, c, dw, dh);
    const sd_norm_params *np = sd_norm_params_of(norm);
    if (!np)
        return sd_fail(SD_ERR_ARG, "inference: normalisation %d unknown, expected caffe or imagenet", (int)norm);
    size_t hw = (size_t)w * h;
    uint8_t *rgb = NULL, *sized = NULL;
    const uint8_t *src = px;
    if (c != 3) {
        rgb = malloc(3 * hw);
        if (!rgb)
            return sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d image", w, h);
        for (size_t i = 0; i < hw; i++)
            for (int k = 0; k < 3; k++)
                rgb[3 * i + k] = px[i * (size_t)c + (c >= 3 ? k : 0)];
        src = rgb;
    }
    sd_status st = SD_OK;
    if (dw != w || dh != h) {
        sized = malloc((size_t)dw * dh * 3);
        st = sized ? sd_resize_u8(src, w, h, 3, sized, dw, dh, SD_INTERP_BICUBIC)
                   : sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d input", dw, dh);
        src = sized;
    }
    float *img = st ? NULL : malloc((size_t)dw * dh * 3 * sizeof *img);
    if (!st && !img)
        st = sd_fail(SD_ERR_NOMEM, "inference: out of memory for a %dx%d input", dw, dh);
    if (!st)
        sd_normalize(src, dw, dh, np, img);
    free(rgb);
    free(sized);
    *out = img;
    return st;
}

/* The passes (scale x flip) of one image and their average. probs != NULL:
 * softmax of each pass's logits resized to the image (w x h), averaged into
 * probs. Otherwise raw logits, each resized to the first pass's grid (the
 * scale-1 pass runs first when 1 is among the scales), averaged into a
 * malloc'd *logits [C][*lh][*lw]. */
static sd_status infer_run(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                           float *probs, float **logits, int *lw, int *lh)
{
    if (w < 8 || h < 8 || (c != 1 && c != 3 && c != 4))
        return sd_fail(SD_ERR_ARG, "inference: image %dx%d with %d channels, expected at least 8x8 and 1, 3 or 4 "
                       "channels", w, h, c);
    if (o->n_scales < 1 || o->n_scales > SD_INFER_MAX_SCALES)
        return sd_fail(SD_ERR_ARG, "inference: %d scales, expected 1..%d", o->n_scales, SD_INFER_MAX_SCALES);
    int bw = o->net_w > 0 ? o->net_w : w, bh = o->net_h > 0 ? o->net_h : h;
    if (bw < 8 || bh < 8 || bw > 16384 || bh > 16384)
        return sd_fail(SD_ERR_ARG, "inference: network size %dx%d, expected 8..16384 per side", bw, bh);
    int order[SD_INFER_MAX_SCALES], n = 0;
    for (int s = 0; s < o->n_scales; s++)
        if (o->scales[s] == 1.0f && n == 0)
            order[n++] = s;
    for (int s = 0; s < o->n_scales; s++)
        if (n == 0 || s != order[0])
            order[n++] = s;
    float *img = NULL;
    sd_status st = sd_infer_input(px, w, h, c, bw, bh, o->norm, &img);
    if (st)
        return st;
    int C = sd_model_options(m)->classes;
    float *acc = probs;
    int gw = w, gh = h;
    if (probs)
        memset(probs, 0, (size_t)C * w * h * sizeof *probs);
    int passes = 0;
    for (int k = 0; k < n && !st; k++) {
        float scale = o->scales[order[k]];
        int sw = (int)lroundf(bw * scale), sh = (int)lroundf(bh * scale);
        if (sw < 8 || sh < 8 || sw > 16384 || sh > 16384) {
            st = sd_fail(SD_ERR_ARG, "inference: scale %g gives a %dx%d network input, expected 8..16384", scale, sw,
                         sh);
            break;
        }
        for (int f = 0; f < (o->flip ? 2 : 1) && !st; f++) {
            sd_tape_reset(t);
            sd_tape_no_grad_begin(t);
            sd_tensor *x = sd_tensor_wrap(t, 4, (int[]){1, 3, bh, bw}, img);
            if (x && (sw != bw || sh != bh))
                x = sd_resize_bilinear(t, x, sh, sw, false);
            if (x && f)
                x = sd_flip_w(t, x);
            sd_tensor *l = x ? pass_logits(m, t, x, o) : NULL;
            if (l && f)
                l = sd_flip_w(t, l);
            if (l && !probs && !acc) {
                gh = l->shape[2];
                gw = l->shape[3];
                acc = calloc((size_t)C * gw * gh, sizeof *acc);
                if (!acc) {
                    sd_tape_no_grad_end(t);
                    st = sd_fail(SD_ERR_NOMEM, "inference: out of memory for %dx%d logits", gw, gh);
                    break;
                }
            }
            /* each step's input goes back once used: at full resolution
             * the logits are as large as a backbone activation */
            sd_tensor *prev = l;
            if (l && (l->shape[2] != gh || l->shape[3] != gw))
                l = sd_resize_bilinear(t, l, gh, gw, o->align_corners);
            if (l && l != prev)
                sd_tensor_release(t, prev);
            prev = l;
            if (l && probs)
                l = sd_softmax(t, l);
            if (l && l != prev)
                sd_tensor_release(t, prev);
            sd_tape_no_grad_end(t);
            if (!l) {
                st = t->status ? t->status : SD_ERR_ARG;
                if (!sd_errmsg()[0])
                    sd_fail(st, "inference failed");
                break;
            }
            st = accumulate_host(l, acc, passes == 0);
            passes++;
        }
    }
    sd_tape_reset(t);
    free(img);
    if (!st) {
        float inv = 1.0f / (float)passes;
        if (passes > 1)
            for (size_t i = 0; i < (size_t)C * gw * gh; i++)
                acc[i] *= inv;
    }
    if (!probs) {
        if (st) {
            free(acc);
            acc = NULL;
        }
        *logits = acc;
        *lw = st ? 0 : gw;
        *lh = st ? 0 : gh;
    }
    return st;
}

sd_status sd_infer_probs(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                         float *probs)
{
    return infer_run(m, t, px, w, h, c, o, probs, NULL, NULL, NULL);
}

sd_status sd_infer_logits(sd_model *m, sd_tape *t, const uint8_t *px, int w, int h, int c, const sd_infer_opts *o,
                          float **logits, int *lw, int *lh)
{
    *logits = NULL;
    return infer_run(m, t, px, w, h, c, o, NULL, logits, lw, lh);
}
