/* Layer records and their forward helpers (conv, batch norm, pooling,
 * resize, ...) shared by every model and discriminator, with the
 * shape-and-MAC counting mode. No model topology here (see models.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

static sd_tensor *decl(nn_builder *b, int group, const char *module, const char *leaf, int ndim, const int *shape)
{
    if (b->st)
        return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", module, module[0] ? "." : "", leaf);
    sd_tensor *x = sd_params_declare(b->p, group, name, ndim, shape);
    if (!x)
        b->st = SD_ERR_ARG;
    return x;
}

void nn_conv_decl(nn_builder *b, nn_conv *c, int group, const char *name, int cin, int cout, int k, int stride,
                  int pad, int dil, bool bias)
{
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->dil = dil;
    c->w = decl(b, group, name, "weight", 4, (int[]){cout, cin, k, k});
    c->b = bias ? decl(b, group, name, "bias", 1, (int[]){cout}) : NULL;
}

void nn_bn_decl(nn_builder *b, nn_bn *bn, const char *name, int c, bool head)
{
    int g = head ? b->g_classifier : b->g_norm;
    bn->c = c;
    bn->head = head;
    bn->w = decl(b, g, name, "weight", 1, (int[]){c});
    bn->b = decl(b, g, name, "bias", 1, (int[]){c});
    bn->rm = decl(b, b->g_buffer, name, "running_mean", 1, (int[]){c});
    bn->rv = decl(b, b->g_buffer, name, "running_var", 1, (int[]){c});
}

/* ---- counting mode: shape-only tensors ---- */

static sd_tensor *shape_only(nn_ctx *c, int n, int ch, int h, int w)
{
    sd_tensor *x = sd_arena_calloc(&c->t->arena, sizeof *x);
    if (!x)
        return sd_tape_fail(c->t, SD_ERR_NOMEM, "models: out of memory counting");
    x->ndim = 4;
    x->shape[0] = n;
    x->shape[1] = ch;
    x->shape[2] = h;
    x->shape[3] = w;
    x->numel = (size_t)n * ch * h * w;
    return x;
}

static int pool_out(int in, int k, int s, int p, bool ceil_mode)
{
    int num = in + 2 * p - k;
    int out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + p)
        out--;
    return out;
}

sd_tensor *nn_conv_fwd(nn_ctx *c, const nn_conv *l, sd_tensor *x)
{
    if (!x)
        return NULL;
    if (c->count) {
        int oh = (x->shape[2] + 2 * l->pad - l->dil * (l->k - 1) - 1) / l->stride + 1;
        int ow = (x->shape[3] + 2 * l->pad - l->dil * (l->k - 1) - 1) / l->stride + 1;
        c->macs += (double)x->shape[0] * l->cout * oh * ow * l->cin * l->k * l->k;
        return shape_only(c, x->shape[0], l->cout, oh, ow);
    }
    return sd_conv2d(c->t, x, l->w, l->b, sd_conv_opts_make(l->stride, l->pad, l->dil));
}

/* Whether a BN layer normalises with batch statistics (else its running ones). */
static bool bn_batch(const nn_ctx *c, bool frozen) { return c->bn_reestimate || (c->training && !frozen); }

sd_tensor *nn_bn_fwd(nn_ctx *c, const nn_bn *l, sd_tensor *x, bool frozen)
{
    if (!x || c->count)
        return x;
    /* One value per channel (image pooling at batch 1) has no batch
     * statistics; PyTorch refuses, we fall back to the running ones. */
    bool batch = bn_batch(c, frozen) && x->numel / (size_t)x->shape[1] >= 2;
    /* (without running tensors, batch statistics are used but not folded in) */
    bool keep = batch && c->bn_keep_running && !c->bn_reestimate;
    return sd_batch_norm(c->t, x, l->w, l->b, keep ? NULL : l->rm, keep ? NULL : l->rv, batch,
                         c->bn_reestimate ? c->bn_momentum : 0.1f, 1e-5f);
}

sd_tensor *nn_conv_post(nn_ctx *c, const nn_conv *cv, const nn_bn *bn, bool frozen, sd_tensor *x, sd_tensor *res,
                        sd_act act, float slope)
{
    if (!x || c->count)
        return nn_conv_fwd(c, cv, x);
    /* One op when the BN (if any) uses running statistics and trains
     * nothing: the tape then keeps one tensor where the separate ops keep
     * up to four, and the output is written once. */
    bool bn_trains = bn && (bn->w->requires_grad || bn->b->requires_grad) && c->t->no_grad <= 0;
    if (!bn || (!bn_batch(c, frozen) && !bn_trains)) {
        sd_conv_post p = {.residual = res, .act = act, .slope = slope};
        if (bn)
            p = (sd_conv_post){.bn_mean = bn->rm, .bn_var = bn->rv, .bn_weight = bn->w, .bn_bias = bn->b,
                               .bn_eps = 1e-5f, .residual = res, .act = act, .slope = slope};
        return sd_conv2d_fused(c->t, x, cv->w, cv->b, sd_conv_opts_make(cv->stride, cv->pad, cv->dil), &p);
    }
    sd_tensor *y = nn_conv_fwd(c, cv, x), *z = nn_bn_fwd(c, bn, y, frozen);
    nn_done(c, y, z);
    if (res) {
        y = z;
        z = nn_add(c, y, res);
        nn_done(c, y, z);
    }
    if (act == SD_ACT_NONE)
        return z;
    y = z;
    z = act == SD_ACT_RELU ? nn_relu(c, y) : nn_leaky(c, y, slope);
    nn_done(c, y, z);
    return z;
}

void nn_done(nn_ctx *c, sd_tensor *x, const sd_tensor *result)
{
    if (x && x != result && !c->count)
        sd_tensor_release(c->t, x);
}

sd_tensor *nn_relu(nn_ctx *c, sd_tensor *x)
{
    if (!x || c->count)
        return x;
    return sd_relu(c->t, x);
}

sd_tensor *nn_leaky(nn_ctx *c, sd_tensor *x, float slope)
{
    if (!x || c->count)
        return x;
    return sd_leaky_relu(c->t, x, slope);
}

sd_tensor *nn_maxpool(nn_ctx *c, sd_tensor *x, int k, int stride, int pad, bool ceil_mode)
{
    if (!x)
        return NULL;
    if (c->count)
        return shape_only(c, x->shape[0], x->shape[1], pool_out(x->shape[2], k, stride, pad, ceil_mode),
                          pool_out(x->shape[3], k, stride, pad, ceil_mode));
    return sd_max_pool2d(c->t, x, sd_pool_opts_make(k, stride, pad, ceil_mode));
}

sd_tensor *nn_adaptive_avg(nn_ctx *c, sd_tensor *x, int oh, int ow)
{
    if (!x)
        return NULL;
    if (c->count)
        return shape_only(c, x->shape[0], x->shape[1], oh, ow);
    return sd_adaptive_avg_pool2d(c->t, x, oh, ow);
}

sd_tensor *nn_add(nn_ctx *c, sd_tensor *a, sd_tensor *b)
{
    if (!a || !b)
        return NULL;
    if (c->count)
        return a;
    return sd_add(c->t, a, b);
}

sd_tensor *nn_resize(nn_ctx *c, sd_tensor *x, int oh, int ow, bool align_corners)
{
    if (!x)
        return NULL;
    if (c->count)
        return shape_only(c, x->shape[0], x->shape[1], oh, ow);
    if (x->shape[2] == oh && x->shape[3] == ow)
        return x;
    return sd_resize_bilinear(c->t, x, oh, ow, align_corners);
}

sd_tensor *nn_concat(nn_ctx *c, int n, sd_tensor *const *xs)
{
    for (int i = 0; i < n; i++)
        if (!xs[i])
            return NULL;
    if (c->count) {
        int ch = 0;
        for (int i = 0; i < n; i++)
            ch += xs[i]->shape[1];
        return shape_only(c, xs[0]->shape[0], ch, xs[0]->shape[2], xs[0]->shape[3]);
    }
    return sd_concat(c->t, n, xs, 1);
}

sd_tensor *nn_dropout(nn_ctx *c, sd_tensor *x, float p)
{
    if (!x || c->count || !c->training || c->bn_reestimate)
        return x;
    return sd_dropout(c->t, x, p);
}

/* ---- initialisation ---- */

/* std * sd_rng_normal(r), n times, bit for bit: Box-Muller's log and cos
 * were most of a ResNet-101's creation time, so the cheap uniform stream is
 * drawn in order and only the transform runs in parallel, in few large
 * regions (many small ones stall on a busy machine). The formula is
 * sd_rng_normal's (rng.c); tests/test_models.c checks that they agree. */
static void fill_normal(float *dst, size_t n, float std, sd_rng *r)
{
    enum { CHUNK = 1 << 20 };
    uint64_t *u = n >= 65536 ? malloc(2 * sizeof *u * (n < CHUNK ? n : CHUNK)) : NULL;
    if (!u) { /* small tensors, or no memory for the stream: one by one */
        for (size_t i = 0; i < n; i++)
            dst[i] = std * sd_rng_normal(r);
        return;
    }
    for (size_t at = 0; at < n; at += CHUNK) {
        long len = n - at < CHUNK ? (long)(n - at) : CHUNK;
        for (long i = 0; i < 2 * len; i++)
            u[i] = sd_rng_u64(r);
#pragma omp parallel for schedule(static)
        for (long i = 0; i < len; i++) {
            double u1 = ((u[2 * i] >> 11) + 1.0) * (1.0 / 9007199254740993.0);
            double u2 = (u[2 * i + 1] >> 11) * (1.0 / 9007199254740992.0);
            dst[at + (size_t)i] = std * (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
    free(u);
}

/* Initial values are drawn on the host, in one order whatever the device,
 * and copied to the parameter. */
static void init_host(sd_tensor *w, float std, float bound, float v, sd_rng *r)
{
    float *h = malloc(w->numel * sizeof *h + 4);
    if (!h)
        return; /* sd_params_alloc's zeros stay; the caller's next allocation reports OOM */
    if (std > 0.0f)
        fill_normal(h, w->numel, std, r);
    else if (bound > 0.0f)
        for (size_t i = 0; i < w->numel; i++)
            h[i] = bound * (2 * sd_rng_uniform(r) - 1);
    else
        for (size_t i = 0; i < w->numel; i++)
            h[i] = v;
    sd_tensor_from_host(w, h);
    free(h);
}

void nn_init_kaiming_out(sd_tensor *w, sd_rng *r)
{
    if (!w)
        return;
    size_t fan_out = (size_t)w->shape[0] * w->shape[2] * w->shape[3];
    init_host(w, sqrtf(2.0f / (float)fan_out), 0, 0, r);
}

void nn_init_normal(sd_tensor *w, float std, sd_rng *r)
{
    if (w)
        init_host(w, std, 0, 0, r);
}

void nn_init_uniform_fanin(sd_tensor *w, sd_tensor *b, sd_rng *r)
{
    size_t fan_in = (size_t)w->shape[1] * w->shape[2] * w->shape[3];
    float bound = 1.0f / sqrtf((float)fan_in);
    init_host(w, 0, bound, 0, r);
    if (b)
        init_host(b, 0, bound, 0, r);
}

void nn_init_const(sd_tensor *w, float v)
{
    if (w)
        init_host(w, 0, 0, v, NULL);
}

void nn_bn_reset(const nn_bn *bn)
{
    nn_init_const(bn->w, 1);
    nn_init_const(bn->b, 0);
    nn_init_const(bn->rm, 0);
    nn_init_const(bn->rv, 1);
}
