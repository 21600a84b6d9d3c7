/* Channel softmax / log-softmax, sum and mean, and the losses and maps the
 * adaptation methods use (cross-entropy with ignore and weights, BCE, MSE,
 * entropy, self-information, L2 feature distance). Element-wise ops are in
 * ops_elementwise.c.
 * Every backward ACCUMULATES (+=) into in[i]->grad, and only for inputs that
 * require grad. A loss's backward scales by its output's gradient, so a loss
 * weighted in sd_backward or by sd_scale gets the right gradient. */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "segda/ops.h"


static sd_tensor *scalar_new(sd_tape *t, float v)
{
    sd_tensor *y = sd_tensor_new(t, 1, (int[]){1});
    if (y)
        sd_backend_for(y->device)->copy_from_host(y->data, &v, sizeof v);
    return y;
}

/* d(loss)/d(this scalar output), read back from the device */
static float grad0(const sd_tensor *y)
{
    float g;
    sd_backend_for(y->device)->copy_to_host(&g, y->grad, sizeof g);
    return g;
}

/* [N, C, rest...] viewed as [n, c, hw] */
typedef struct nchw {
    int n, c;
    size_t hw;
} nchw;

static nchw view_nchw(const sd_tensor *x)
{
    nchw v = {x->shape[0], x->shape[1], 0};
    v.hw = (v.n && v.c) ? x->numel / ((size_t)v.n * v.c) : 0;
    return v;
}

/* Every op here keeps a small struct of what its backward needs. */
typedef struct loss_saved {
    const sd_backend *be;
    float scale;          /* 1/count or similar, times the output grad at backward */
    float aux;            /* a constant target, 1/log C, ... */
    float *buf;           /* lse, logp, dist: per-op scratch kept for the backward */
    const uint8_t *labels;
    const float *cw, *pw; /* class and pixel weights (copies) */
    int ignore;
} loss_saved;

static loss_saved *save(sd_tape *t, sd_node *n, const char *op, const sd_backend *be)
{
    loss_saved *s = sd_arena_calloc(&t->arena, sizeof *s);
    if (!s) {
        sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", op);
        return NULL;
    }
    s->be = be;
    n->saved = s;
    return s;
}

static float *arena_copy(sd_tape *t, const void *src, size_t bytes)
{
    void *p = sd_arena_alloc(&t->arena, bytes);
    if (p)
        memcpy(p, src, bytes);
    return p;
}

/* ---- softmax and log-softmax over channels ---- */

static void softmax_backward_common(sd_node *n, bool log)
{
    loss_saved *s = n->saved;
    nchw v = view_nchw(n->out);
    s->be->softmax_bwd(log, v.n, v.c, v.hw, n->out->data, n->out->grad, n->in[0]->grad);
}
static void softmax_backward(sd_node *n) { softmax_backward_common(n, false); }
static void log_softmax_backward(sd_node *n) { softmax_backward_common(n, true); }

static sd_tensor *softmax_common(sd_tape *t, sd_tensor *x, bool log)
{
    const char *op = log ? "log_softmax" : "softmax";
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: input is NULL", op);
    if (x->ndim < 2)
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: %s, expected [N,C,...] (channels on dim 1)", op,
                            sd_shape_str(x));
    const sd_backend *be = sd_backend_check(t, op, x);
    sd_tensor *y = be ? sd_tensor_new(t, x->ndim, x->shape) : NULL;
    if (!y)
        return NULL;
    y->device = x->device;
    nchw v = view_nchw(x);
    be->softmax_fwd(log, v.n, v.c, v.hw, x->data, y->data);
    sd_node *n = sd_tape_record(t, op, log ? log_softmax_backward : softmax_backward, y, 1, (sd_tensor *[]){x});
    if (n)
        save(t, n, op, be);
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_softmax(sd_tape *t, sd_tensor *x) { return softmax_common(t, x, false); }
sd_tensor *sd_log_softmax(sd_tape *t, sd_tensor *x) { return softmax_common(t, x, true); }

/* ---- sum and mean ---- */

static void sum_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    s->be->add_const(n->in[0]->numel, grad0(n->out) * s->scale, n->in[0]->grad);
}

static sd_tensor *reduce(sd_tape *t, sd_tensor *x, bool mean)
{
    const char *op = mean ? "mean" : "sum";
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: input is NULL", op);
    if (mean && x->numel == 0)
        return sd_tape_fail(t, SD_ERR_SHAPE, "mean: %s has no elements", sd_shape_str(x));
    const sd_backend *be = sd_backend_check(t, op, x);
    if (!be)
        return NULL;
    double s = be->sum(x->numel, x->data);
    float scale = mean ? (float)(1.0 / (double)x->numel) : 1.0f;
    sd_tensor *y = scalar_new(t, (float)(mean ? s / (double)x->numel : s));
    if (!y)
        return NULL;
    sd_node *n = sd_tape_record(t, op, sum_backward, y, 1, (sd_tensor *[]){x});
    loss_saved *ls = n ? save(t, n, op, be) : NULL;
    if (ls)
        ls->scale = scale;
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_sum(sd_tape *t, sd_tensor *x) { return reduce(t, x, false); }
sd_tensor *sd_mean(sd_tape *t, sd_tensor *x) { return reduce(t, x, true); }

/* ---- cross-entropy ---- */

static void cross_entropy_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    sd_tensor *x = n->in[0];
    nchw v = view_nchw(x);
    float scale = grad0(n->out) * s->scale;
    if (scale != 0.0f)
        s->be->cross_entropy_bwd(v.n, v.c, v.hw, x->data, s->labels, s->cw, s->pw, s->ignore, s->buf, scale,
                                 x->grad);
}

static sd_tensor *cross_entropy_common(sd_tape *t, const char *op, sd_tensor *x, const uint8_t *labels,
                                       const float *cw, const float *pw, int ignore)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: logits are NULL", op);
    if (!labels)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: labels are NULL", op);
    if (x->ndim < 2 || x->shape[1] < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: logits %s, expected [N,C,H,W] or [N,C]", op, sd_shape_str(x));
    nchw v = view_nchw(x);
    size_t npix = (size_t)v.n * v.hw;
    for (size_t i = 0; i < npix; i++)
        if (labels[i] != ignore && labels[i] >= v.c)
            return sd_tape_fail(t, SD_ERR_DATA, "%s: label %d at pixel %zu of logits %s: expected < %d classes or %d (ignore)",
                                op, labels[i], i, sd_shape_str(x), v.c, ignore);
    const sd_backend *be = sd_backend_check(t, op, x);
    if (!be)
        return NULL;
    float *lse = sd_tape_scratch(t, (npix ? npix : 1) * sizeof(float), op);
    if (!lse)
        return sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", op);
    double num, wsum, count;
    be->cross_entropy_fwd(v.n, v.c, v.hw, x->data, labels, cw, pw, ignore, lse, &num, &wsum, &count);
    /* PyTorch's weighted mean; with pixel weights the mean is over valid
     * pixels. No valid pixel: 0 and no gradient rather than 0/0. */
    double denom = pw ? count : wsum;
    float scale = denom > 0.0 ? (float)(1.0 / denom) : 0.0f;
    sd_tensor *y = scalar_new(t, denom > 0.0 ? (float)(num / denom) : 0.0f);
    if (!y)
        return NULL;
    sd_node *n = sd_tape_record(t, op, cross_entropy_backward, y, 1, (sd_tensor *[]){x});
    loss_saved *s = n ? save(t, n, op, be) : NULL;
    if (s) {
        s->scale = scale;
        s->buf = lse;
        s->ignore = ignore;
        /* the caller's buffers may be reused before backward (next batch) */
        s->labels = (const uint8_t *)arena_copy(t, labels, npix ? npix : 1);
        s->cw = cw ? arena_copy(t, cw, (size_t)v.c * sizeof(float)) : NULL;
        s->pw = pw ? arena_copy(t, pw, (npix ? npix : 1) * sizeof(float)) : NULL;
        if (!s->labels || (cw && !s->cw) || (pw && !s->pw))
            return sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", op);
    }
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_cross_entropy(sd_tape *t, sd_tensor *logits, const uint8_t *labels, const float *class_weights,
                            int ignore)
{
    return cross_entropy_common(t, "cross_entropy", logits, labels, class_weights, NULL, ignore);
}

sd_tensor *sd_cross_entropy_pixel_weighted(sd_tape *t, sd_tensor *logits, const uint8_t *labels,
                                           const float *pixel_weights, int ignore)
{
    if (!pixel_weights)
        return sd_tape_fail(t, SD_ERR_ARG, "cross_entropy_pixel_weighted: pixel weights are NULL");
    return cross_entropy_common(t, "cross_entropy_pixel_weighted", logits, labels, NULL, pixel_weights, ignore);
}

/* ---- BCE-with-logits and MSE ---- */

static void bce_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    sd_tensor *x = n->in[0];
    /* a tensor target, when there is one, was kept as buf */
    s->be->bce_bwd(x->numel, x->data, s->buf, s->aux, grad0(n->out) * s->scale, x->grad);
}

static sd_tensor *bce_common(sd_tape *t, const char *op, sd_tensor *x, sd_tensor *target, float tc)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: input is NULL", op);
    if (x->numel == 0)
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: %s has no elements", op, sd_shape_str(x));
    if (target && !sd_shape_eq(x, target))
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: input %s and target %s differ", op, sd_shape_str(x),
                            sd_shape_str(target));
    const sd_backend *be = sd_backend_check(t, op, x);
    if (!be)
        return NULL;
    const float *td = target ? target->data : NULL;
    float scale = (float)(1.0 / (double)x->numel);
    sd_tensor *y = scalar_new(t, (float)(be->bce_fwd(x->numel, x->data, td, tc) / (double)x->numel));
    if (!y)
        return NULL;
    sd_node *n = sd_tape_record(t, op, bce_backward, y, 1, (sd_tensor *[]){x});
    loss_saved *s = n ? save(t, n, op, be) : NULL;
    if (s) {
        s->scale = scale;
        s->aux = tc;
        s->buf = (float *)td;
    }
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_bce_logits_const(sd_tape *t, sd_tensor *x, float target)
{
    return bce_common(t, "bce_logits_const", x, NULL, target);
}

sd_tensor *sd_bce_logits(sd_tape *t, sd_tensor *x, sd_tensor *target)
{
    if (x && !target)
        return sd_tape_fail(t, SD_ERR_ARG, "bce_logits: target is NULL");
    return bce_common(t, "bce_logits", x, target, 0.0f);
}

static void mse_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    sd_tensor *a = n->in[0], *b = n->n_in > 1 ? n->in[1] : NULL;
    s->be->sqdiff_bwd(a->numel, a->data, b ? b->data : NULL, s->aux, grad0(n->out) * s->scale, sd_node_grad(n, 0),
                      sd_node_grad(n, 1));
}

static sd_tensor *mse_common(sd_tape *t, const char *op, sd_tensor *a, sd_tensor *b, float bc)
{
    if (!a)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: input is NULL", op);
    if (a->numel == 0)
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: %s has no elements", op, sd_shape_str(a));
    if (b && !sd_shape_eq(a, b))
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: %s and %s differ", op, sd_shape_str(a), sd_shape_str(b));
    const sd_backend *be = sd_backend_check(t, op, a);
    if (!be)
        return NULL;
    sd_tensor *y = scalar_new(t, (float)(be->sqdiff_fwd(a->numel, a->data, b ? b->data : NULL, bc) /
                                         (double)a->numel));
    if (!y)
        return NULL;
    sd_node *n = b ? sd_tape_record(t, op, mse_backward, y, 2, (sd_tensor *[]){a, b})
                   : sd_tape_record(t, op, mse_backward, y, 1, (sd_tensor *[]){a});
    loss_saved *s = n ? save(t, n, op, be) : NULL;
    if (s) {
        s->scale = (float)(1.0 / (double)a->numel);
        s->aux = bc;
    }
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_mse_const(sd_tape *t, sd_tensor *x, float target) { return mse_common(t, "mse_const", x, NULL, target); }

sd_tensor *sd_mse(sd_tape *t, sd_tensor *a, sd_tensor *b)
{
    if (a && !b)
        return sd_tape_fail(t, SD_ERR_ARG, "mse: b is NULL");
    return mse_common(t, "mse", a, b, 0.0f);
}

/* ---- entropy and self-information maps ---- */

static void entropy_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    nchw v = view_nchw(n->in[0]);
    s->be->entropy_bwd(v.n, v.c, v.hw, s->buf, s->aux, n->out->grad, n->in[0]->grad);
}

static void selfinfo_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    nchw v = view_nchw(n->in[0]);
    s->be->selfinfo_bwd(v.n, v.c, v.hw, s->buf, s->aux, n->out->grad, n->in[0]->grad);
}

static sd_tensor *entropy_common(sd_tape *t, sd_tensor *x, bool map)
{
    const char *op = map ? "entropy_map" : "self_information";
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: logits are NULL", op);
    if (x->ndim < 2 || x->shape[1] < 2)
        return sd_tape_fail(t, SD_ERR_SHAPE, "%s: logits %s, expected [N,C,...] with C >= 2 (normalised by log C)",
                            op, sd_shape_str(x));
    const sd_backend *be = sd_backend_check(t, op, x);
    if (!be)
        return NULL;
    int shape[SD_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    if (map)
        shape[1] = 1;
    sd_tensor *y = sd_tensor_new(t, x->ndim, shape);
    float *logp = y ? sd_tape_scratch(t, x->numel * sizeof(float), op) : NULL;
    if (!logp)
        return y ? sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", op) : NULL;
    y->device = x->device;
    nchw v = view_nchw(x);
    float inv = (float)(1.0 / log((double)v.c));
    if (map)
        be->entropy_fwd(v.n, v.c, v.hw, x->data, inv, logp, y->data);
    else
        be->selfinfo_fwd(v.n, v.c, v.hw, x->data, inv, logp, y->data);
    sd_node *n = sd_tape_record(t, op, map ? entropy_backward : selfinfo_backward, y, 1, (sd_tensor *[]){x});
    loss_saved *s = n ? save(t, n, op, be) : NULL;
    if (s) {
        s->aux = inv;
        s->buf = logp;
    }
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_entropy_map(sd_tape *t, sd_tensor *logits) { return entropy_common(t, logits, true); }
sd_tensor *sd_self_information(sd_tape *t, sd_tensor *logits) { return entropy_common(t, logits, false); }

/* ---- L2 feature distance ---- */

static void l2dist_backward(sd_node *n)
{
    loss_saved *s = n->saved;
    sd_tensor *a = n->in[0], *b = n->in[1];
    nchw v = view_nchw(a);
    s->be->l2dist_bwd(v.n, v.c, v.hw, a->data, b->data, s->buf, grad0(n->out) * s->scale, sd_node_grad(n, 0), sd_node_grad(n, 1));
}

sd_tensor *sd_l2_feature_distance(sd_tape *t, sd_tensor *a, sd_tensor *b)
{
    if (!a || !b)
        return sd_tape_fail(t, SD_ERR_ARG, "l2_feature_distance: input %s is NULL", a ? "b" : "a");
    if (a->ndim < 2 || !sd_shape_eq(a, b) || a->numel == 0)
        return sd_tape_fail(t, SD_ERR_SHAPE, "l2_feature_distance: %s and %s, expected one shape [N,C,...]",
                            sd_shape_str(a), sd_shape_str(b));
    const sd_backend *be = sd_backend_check(t, "l2_feature_distance", a);
    if (!be)
        return NULL;
    nchw v = view_nchw(a);
    size_t npos = (size_t)v.n * v.hw;
    float *dist = sd_tape_scratch(t, npos * sizeof(float), "l2_feature_distance");
    if (!dist)
        return sd_tape_fail(t, SD_ERR_NOMEM, "l2_feature_distance: out of memory");
    double s = be->l2dist_fwd(v.n, v.c, v.hw, a->data, b->data, dist);
    sd_tensor *y = scalar_new(t, (float)(s / (double)npos));
    if (!y)
        return NULL;
    sd_node *n = sd_tape_record(t, "l2_feature_distance", l2dist_backward, y, 2, (sd_tensor *[]){a, b});
    loss_saved *ls = n ? save(t, n, "l2_feature_distance", be) : NULL;
    if (ls) {
        ls->scale = (float)(1.0 / (double)npos);
        ls->buf = dist;
    }
    return t->status == SD_OK ? y : NULL;
}
