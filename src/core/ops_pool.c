/* Max pool, avg pool and adaptive avg pool: output sizes (PyTorch's rules,
 * ceil mode included), the tape nodes and their backward; kernels in
 * src/cpu/pool_cpu.c. Every backward here ACCUMULATES (+=) into
 * in[0]->grad, and only when the input requires grad. */
#include <string.h>

#include "core/backend.h"
#include "core/node_info.h"
#include "segda/ops.h"

sd_pool_opts sd_pool_opts_make(int k, int stride, int pad, bool ceil_mode)
{
    sd_pool_opts o = {
        .kh = k, .kw = k, .stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad,
        .ceil_mode = ceil_mode, .count_include_pad = true,
    };
    return o;
}

typedef struct pool_saved {
    sd_pool_geom g;
    int32_t *argmax;
} pool_saved;

/* PyTorch's pooling_output_shape: with ceil mode the last window must start
 * inside the input or the left padding. */
static int pool_out(int in, int k, int s, int p, bool ceil_mode)
{
    int num = in + 2 * p - (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (out - 1) * s >= in + p)
        out--;
    return out;
}

static const sd_backend *pool_setup(sd_tape *t, const char *op, sd_tensor *x, sd_pool_opts o, sd_pool_geom *g)
{
    if (x->ndim != 4) {
        sd_tape_fail(t, SD_ERR_SHAPE, "%s: input %s: expected 4-D NCHW", op, sd_shape_str(x));
        return NULL;
    }
    if (o.kh < 1 || o.kw < 1 || o.stride_h < 1 || o.stride_w < 1 || o.pad_h < 0 || o.pad_w < 0 ||
        o.pad_h > o.kh / 2 || o.pad_w > o.kw / 2) {
        sd_tape_fail(t, SD_ERR_ARG,
                     "%s: input %s: kernel %dx%d, stride %dx%d, padding %dx%d: expected kernel, stride >= 1 and "
                     "0 <= padding <= kernel/2",
                     op, sd_shape_str(x), o.kh, o.kw, o.stride_h, o.stride_w, o.pad_h, o.pad_w);
        return NULL;
    }
    *g = (sd_pool_geom){
        .planes = x->shape[0] * x->shape[1], .h = x->shape[2], .w = x->shape[3],
        .kh = o.kh, .kw = o.kw, .sh = o.stride_h, .sw = o.stride_w, .ph = o.pad_h, .pw = o.pad_w,
        .count_include_pad = o.count_include_pad,
    };
    g->oh = pool_out(g->h, o.kh, o.stride_h, o.pad_h, o.ceil_mode);
    g->ow = pool_out(g->w, o.kw, o.stride_w, o.pad_w, o.ceil_mode);
    if (g->oh < 1 || g->ow < 1) {
        sd_tape_fail(t, SD_ERR_SHAPE, "%s: input %s with kernel %dx%d, padding %dx%d: output size %dx%d is empty",
                     op, sd_shape_str(x), o.kh, o.kw, o.pad_h, o.pad_w, g->oh, g->ow);
        return NULL;
    }
    return sd_backend_check(t, op, x);
}

static sd_tensor *pool_output(sd_tape *t, sd_tensor *x, const sd_pool_geom *g)
{
    sd_tensor *y = sd_tensor_new4(t, x->shape[0], x->shape[1], g->oh, g->ow);
    if (y)
        y->device = x->device;
    return y;
}

static pool_saved *pool_save(sd_tape *t, sd_node *n, const sd_pool_geom *g, int32_t *argmax)
{
    pool_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
    if (!s)
        return NULL;
    s->g = *g;
    s->argmax = argmax;
    n->saved = s;
    return s;
}

static void max_pool_backward(sd_node *n)
{
    pool_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->max_pool_bwd(&s->g, n->out->grad, s->argmax, n->in[0]->grad);
}

sd_tensor *sd_max_pool2d(sd_tape *t, sd_tensor *x, sd_pool_opts o)
{
    if (!x)
        return NULL;
    sd_pool_geom g;
    const sd_backend *be = pool_setup(t, "max_pool2d", x, o, &g);
    if (!be)
        return NULL;
    sd_tensor *y = pool_output(t, x, &g);
    if (!y)
        return NULL;
    int32_t *am = sd_arena_alloc(&t->arena, y->numel * sizeof *am);
    if (!am)
        return sd_tape_fail(t, SD_ERR_NOMEM, "max_pool2d: input %s: out of memory", sd_shape_str(x));
    be->max_pool_fwd(&g, x->data, y->data, am);
    sd_node *n = sd_tape_record(t, "max_pool2d", max_pool_backward, y, 1, &x);
    if (n && !pool_save(t, n, &g, am))
        return sd_tape_fail(t, SD_ERR_NOMEM, "max_pool2d: out of memory recording the node");
    return y;
}

static void avg_pool_backward(sd_node *n)
{
    pool_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->avg_pool_bwd(&s->g, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_avg_pool2d(sd_tape *t, sd_tensor *x, sd_pool_opts o)
{
    if (!x)
        return NULL;
    sd_pool_geom g;
    const sd_backend *be = pool_setup(t, "avg_pool2d", x, o, &g);
    if (!be)
        return NULL;
    sd_tensor *y = pool_output(t, x, &g);
    if (!y)
        return NULL;
    be->avg_pool_fwd(&g, x->data, y->data);
    sd_node *n = sd_tape_record(t, "avg_pool2d", avg_pool_backward, y, 1, &x);
    if (n && !pool_save(t, n, &g, NULL))
        return sd_tape_fail(t, SD_ERR_NOMEM, "avg_pool2d: out of memory recording the node");
    return y;
}

static void adaptive_backward(sd_node *n)
{
    pool_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->adaptive_avg_pool_bwd(&s->g, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_adaptive_avg_pool2d(sd_tape *t, sd_tensor *x, int out_h, int out_w)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || out_h < 1 || out_w < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "adaptive_avg_pool2d: input %s to %dx%d: expected a non-empty 4-D NCHW input and "
                            "an output size >= 1",
                            sd_shape_str(x), out_h, out_w);
    const sd_backend *be = sd_backend_check(t, "adaptive_avg_pool2d", x);
    if (!be)
        return NULL;
    sd_pool_geom g = {.planes = x->shape[0] * x->shape[1], .h = x->shape[2], .w = x->shape[3],
                      .oh = out_h, .ow = out_w};
    sd_tensor *y = pool_output(t, x, &g);
    if (!y)
        return NULL;
    be->adaptive_avg_pool_fwd(&g, x->data, y->data);
    sd_node *n = sd_tape_record(t, "adaptive_avg_pool2d", adaptive_backward, y, 1, &x);
    if (n && !pool_save(t, n, &g, NULL))
        return sd_tape_fail(t, SD_ERR_NOMEM, "adaptive_avg_pool2d: out of memory recording the node");
    return y;
}

const sd_pool_geom *sd_node_pool_geom(const sd_node *n)
{
    bool pool = n && n->saved && (!strcmp(n->op, "max_pool2d") || !strcmp(n->op, "avg_pool2d") ||
                                  !strcmp(n->op, "adaptive_avg_pool2d"));
    return pool ? &((const pool_saved *)n->saved)->g : NULL;
}
