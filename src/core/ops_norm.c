/* Batch norm (training with PyTorch's running-statistics update, eval,
 * frozen) and instance norm: checks, statistics bookkeeping, tape nodes and
 * backward; kernels in src/cpu/norm_cpu.c. Every backward here ACCUMULATES
 * (+=) into in[i]->grad, and only for inputs that require grad. */
#include <math.h>
#include <stdlib.h>

#include <string.h>

#include "core/backend.h"
#include "core/node_info.h"
#include "segda/ops.h"

typedef struct norm_saved {
    sd_norm_geom g;
    float *mean, *invstd;  /* [g.ch], arena */
    bool batch_stats;      /* statistics from x: the backward goes through them */
    bool synced;           /* statistics of the processes' whole batch (SyncBN) */
} norm_saved;

static sd_norm_sum_fn g_sync;

void sd_batch_norm_set_sync(sd_norm_sum_fn fn) { g_sync = fn; }

static const float *chan_of(const sd_norm_geom *g, const float *x, int o, int k)
{
    return x + ((size_t)o * g->ch + k) * g->inner;
}

/* Statistics of the processes' whole batch in one sum over them (one round
 * trip per layer): each process's two passes over its own share (sums in
 * double, channel by channel) give its sum S_r, count n_r and squared
 * deviations from its own mean M2_r; the sum over the processes of
 * (S_r, M2_r, S_r^2 / n_r, n_r) gives the mean S / n and the squared
 * deviations M2 = sum M2_r + (sum S_r^2 / n_r - S^2 / n) (Chan et al.'s
 * pairwise update: the spread of the processes' means added to their own). */
static sd_status synced_stats(const sd_norm_geom *g, const float *x, float eps, float *mean, float *invstd,
                              float *var_unbiased)
{
    const int C = g->ch;
    double *s = malloc(sizeof(double) * (3 * (size_t)C + 1));
    if (!s)
        return sd_fail(SD_ERR_NOMEM, "batch_norm: out of memory");
    const double n = (double)g->outer * g->inner;
    for (int k = 0; k < C; k++) {
        double a = 0, v = 0;
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan_of(g, x, o, k);
            for (int i = 0; i < g->inner; i++)
                a += p[i];
        }
        const double m = n > 0 ? a / n : 0;
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan_of(g, x, o, k);
            for (int i = 0; i < g->inner; i++) {
                double d = p[i] - m;
                v += d * d;
            }
        }
        s[k] = a;
        s[C + k] = v;
        s[2 * C + k] = n > 0 ? a * m : 0;
    }
    s[3 * C] = n;
    sd_status st = g_sync(s, 3 * (size_t)C + 1);
    const double cnt = s[3 * C];
    for (int k = 0; k < C && !st; k++) {
        const double m = s[k] / cnt, between = s[2 * C + k] - s[k] * m, m2 = s[C + k] + (between > 0 ? between : 0);
        mean[k] = (float)m;
        invstd[k] = (float)(1.0 / sqrt(m2 / cnt + eps));
        var_unbiased[k] = (float)(cnt > 1 ? m2 / (cnt - 1) : NAN);
    }
    free(s);
    return st;
}

/* Backward through synchronised statistics: dweight and dbias are this
 * process's sums (the trainer averages gradients over the processes); dx
 * uses the means of dy and dy*xhat over the whole batch. A failed sum (a
 * dead process: the job is being stopped) leaves this process's sums. */
static void synced_backward(const norm_saved *s, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db)
{
    const sd_norm_geom *g = &s->g;
    const int C = g->ch;
    double *sum = malloc(sizeof(double) * (2 * (size_t)C + 1));
    if (!sum)
        return;
    for (int k = 0; k < C; k++) {
        double a = 0, b = 0;
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan_of(g, x, o, k), *d = chan_of(g, dy, o, k);
            for (int i = 0; i < g->inner; i++) {
                a += d[i];
                b += (double)d[i] * (p[i] - s->mean[k]);
            }
        }
        sum[k] = a;
        sum[C + k] = b * s->invstd[k];
        if (db)
            db[k] += (float)a;
        if (dw)
            dw[k] += (float)sum[C + k];
    }
    sum[2 * C] = (double)g->outer * g->inner;
    (void)g_sync(sum, 2 * (size_t)C + 1);
    const double cnt = sum[2 * C];
    for (int k = 0; k < C && dx; k++) {
        float sc = s->invstd[k] * (w ? w[k] : 1.0f);
        float mdy = (float)(sum[k] / cnt), mdyx = (float)(sum[C + k] / cnt), m = s->mean[k], is = s->invstd[k];
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan_of(g, x, o, k), *d = chan_of(g, dy, o, k);
            float *r = (float *)chan_of(g, dx, o, k);
            for (int i = 0; i < g->inner; i++)
                r[i] += sc * (d[i] - mdy - (p[i] - m) * is * mdyx);
        }
    }
    free(sum);
}

static void norm_backward(sd_node *n)
{
    norm_saved *s = n->saved;
    sd_tensor *x = n->in[0], *w = n->in[1];
    if (s->synced) {
        synced_backward(s, x->data, w ? w->data : NULL, n->out->grad, sd_node_grad(n, 0), sd_node_grad(n, 1),
                        sd_node_grad(n, 2));
        return;
    }
    sd_backend_for(x->device)
        ->norm_bwd(&s->g, x->data, s->mean, s->invstd, w ? w->data : NULL, n->out->grad, s->batch_stats,
                   sd_node_grad(n, 0), sd_node_grad(n, 1), sd_node_grad(n, 2));
}

static bool vec_ok(const sd_tensor *v, int c) { return !v || (v->ndim == 1 && v->shape[0] == c); }

static sd_tensor *norm_finish(sd_tape *t, const char *op, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_tensor *y,
                              const sd_norm_geom *g, float *mean, float *invstd, bool batch_stats, bool synced)
{
    sd_node *n = sd_tape_record(t, op, norm_backward, y, 3, (sd_tensor *[]){x, w, b});
    if (n) {
        norm_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory recording the node", op);
        s->g = *g;
        s->mean = mean;
        s->invstd = invstd;
        s->batch_stats = batch_stats;
        s->synced = synced;
        n->saved = s;
    }
    return y;
}

sd_tensor *sd_batch_norm(sd_tape *t, sd_tensor *x, sd_tensor *weight, sd_tensor *bias, sd_tensor *running_mean,
                         sd_tensor *running_var, bool training, float momentum, float eps)
{
    if (!x)
        return NULL;
    if (x->ndim < 2)
        return sd_tape_fail(t, SD_ERR_SHAPE, "batch_norm: input %s: expected [N, C, ...]", sd_shape_str(x));
    const int C = x->shape[1];
    const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
    sd_tensor *vecs[4] = {weight, bias, running_mean, running_var};
    for (int k = 0; k < 4; k++)
        if (!vec_ok(vecs[k], C))
            return sd_tape_fail(t, SD_ERR_SHAPE, "batch_norm: input %s and %s %s: expected [%d]",
                                sd_shape_str(x), names[k], sd_shape_str(vecs[k]), C);
    if (!training && (!running_mean || !running_var))
        return sd_tape_fail(t, SD_ERR_ARG, "batch_norm: input %s: eval mode needs running_mean and running_var",
                            sd_shape_str(x));
    sd_norm_geom g = {.outer = x->shape[0], .ch = C, .inner = (int)(x->numel / ((size_t)x->shape[0] * C)),
                      .affine_ch = C};
    if (x->shape[0] == 0 || C == 0 || g.inner == 0)
        return sd_tape_fail(t, SD_ERR_SHAPE, "batch_norm: input %s is empty", sd_shape_str(x));
    if (training && (size_t)g.outer * g.inner < 2)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "batch_norm: input %s: expected more than 1 value per channel when training",
                            sd_shape_str(x));
    const sd_backend *be = sd_backend_check(t, "batch_norm", x);
    if (!be)
        return NULL;
    sd_tensor *y = sd_tensor_new(t, x->ndim, x->shape);
    float *mean = sd_tape_scratch(t, 3 * (size_t)C * sizeof(float), "batch_norm");
    if (!y || !mean)
        return sd_tape_fail(t, SD_ERR_NOMEM, "batch_norm: input %s: out of memory", sd_shape_str(x));
    y->device = x->device;
    float *invstd = mean + C, *var = mean + 2 * C;
    bool synced = training && g_sync && x->device == SD_DEVICE_CPU;
    if (synced) {
        sd_status st = synced_stats(&g, x->data, eps, mean, invstd, var);
        if (st)
            return sd_tape_fail(t, st, "batch_norm: input %s: synchronised statistics: %s", sd_shape_str(x),
                                sd_errmsg());
        be->norm_update_running(C, momentum, mean, var, running_mean ? running_mean->data : NULL,
                                running_var ? running_var->data : NULL);
    } else if (training) {
        be->norm_stats(&g, x->data, eps, mean, invstd, var);
        be->norm_update_running(C, momentum, mean, var, running_mean ? running_mean->data : NULL,
                                running_var ? running_var->data : NULL);
    } else {
        be->norm_running_stats(C, eps, running_mean->data, running_var->data, mean, invstd);
    }
    be->norm_apply(&g, x->data, mean, invstd, weight ? weight->data : NULL, bias ? bias->data : NULL, y->data);
    return norm_finish(t, "batch_norm", x, weight, bias, y, &g, mean, invstd, training, synced);
}

sd_tensor *sd_instance_norm(sd_tape *t, sd_tensor *x, sd_tensor *weight, sd_tensor *bias, float eps)
{
    if (!x)
        return NULL;
    if (x->ndim != 4)
        return sd_tape_fail(t, SD_ERR_SHAPE, "instance_norm: input %s: expected 4-D NCHW", sd_shape_str(x));
    const int N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    if (!vec_ok(weight, C) || !vec_ok(bias, C))
        return sd_tape_fail(t, SD_ERR_SHAPE, "instance_norm: input %s and %s %s: expected [%d]", sd_shape_str(x),
                            vec_ok(weight, C) ? "bias" : "weight", sd_shape_str(vec_ok(weight, C) ? bias : weight),
                            C);
    if (N * C == 0 || HW < 2)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "instance_norm: input %s: expected more than 1 spatial element per channel",
                            sd_shape_str(x));
    const sd_backend *be = sd_backend_check(t, "instance_norm", x);
    if (!be)
        return NULL;
    sd_norm_geom g = {.outer = 1, .ch = N * C, .inner = HW, .affine_ch = C};
    sd_tensor *y = sd_tensor_new(t, 4, x->shape);
    float *mean = sd_tape_scratch(t, 2 * (size_t)N * C * sizeof(float), "instance_norm");
    if (!y || !mean)
        return sd_tape_fail(t, SD_ERR_NOMEM, "instance_norm: input %s: out of memory", sd_shape_str(x));
    y->device = x->device;
    float *invstd = mean + (size_t)N * C;
    be->norm_stats(&g, x->data, eps, mean, invstd, NULL);
    be->norm_apply(&g, x->data, mean, invstd, weight ? weight->data : NULL, bias ? bias->data : NULL, y->data);
    return norm_finish(t, "instance_norm", x, weight, bias, y, &g, mean, invstd, true, false);
}

bool sd_node_norm_stats(const sd_node *n, const float **mean, const float **invstd, bool *batch_stats)
{
    if (!n || !n->saved || strcmp(n->op, "batch_norm"))
        return false;
    const norm_saved *s = n->saved;
    *mean = s->mean;
    *invstd = s->invstd;
    *batch_stats = s->batch_stats;
    return true;
}
