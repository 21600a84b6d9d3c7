/* conv2d, conv2d_fused (conv + frozen BN + residual + activation) and
 * conv_transpose2d: shape checks, output allocation, the tape node and its
 * backward; the arithmetic is the backend's (src/cpu/conv_cpu.c, conv_post.c).
 * Every backward here ACCUMULATES (+=) into in[i]->grad, and only for inputs
 * that require grad (sd_backward has allocated those buffers). */
#include <string.h>

#include "core/backend.h"
#include "core/node_info.h"
#include "segda/ops.h"

sd_conv_opts sd_conv_opts_default(void) { return sd_conv_opts_make(1, 0, 1); }

sd_conv_opts sd_conv_opts_make(int stride, int pad, int dil)
{
    sd_conv_opts o = {0};
    o.stride_h = o.stride_w = stride;
    o.pad_h = o.pad_w = pad;
    o.dil_h = o.dil_w = dil;
    o.groups = 1;
    return o;
}

typedef struct conv_saved {
    sd_tape *t;
    sd_conv_geom g;
} conv_saved;

/* Checks shared by both convolutions; `op` names it in messages. */
static const sd_backend *conv_check(sd_tape *t, const char *op, sd_tensor *x, sd_tensor *w, sd_tensor *b,
                                    sd_conv_opts o)
{
    if (x->ndim != 4 || w->ndim != 4) {
        sd_tape_fail(t, SD_ERR_SHAPE, "%s: input %s and weight %s: expected 4-D NCHW input and 4-D weight", op,
                     sd_shape_str(x), sd_shape_str(w));
        return NULL;
    }
    if (o.stride_h < 1 || o.stride_w < 1 || o.dil_h < 1 || o.dil_w < 1 || o.pad_h < 0 || o.pad_w < 0 ||
        o.groups < 1) {
        sd_tape_fail(t, SD_ERR_ARG,
                     "%s: input %s: stride %dx%d, dilation %dx%d, padding %dx%d, groups %d: expected stride, "
                     "dilation, groups >= 1 and padding >= 0",
                     op, sd_shape_str(x), o.stride_h, o.stride_w, o.dil_h, o.dil_w, o.pad_h, o.pad_w, o.groups);
        return NULL;
    }
    if (x->device != w->device || (b && b->device != x->device)) {
        sd_tape_fail(t, SD_ERR_ARG, "%s: input %s, weight %s and bias on different devices", op,
                     sd_shape_str(x), sd_shape_str(w));
        return NULL;
    }
    return sd_backend_check(t, op, x);
}

static void conv2d_backward(sd_node *n)
{
    conv_saved *s = n->saved;
    sd_tensor *x = n->in[0], *w = n->in[1];
    const sd_backend *be = sd_backend_for(x->device);
    if (!be->conv2d_bwd(&s->g, x->data, w->data, n->out->grad, sd_node_grad(n, 0), sd_node_grad(n, 1), sd_node_grad(n, 2)))
        sd_tape_fail(s->t, SD_ERR_NOMEM, "conv2d backward: input %s, weight %s: out of memory for im2col",
                     sd_shape_str(x), sd_shape_str(w));
}

/* conv2d's checks and geometry, shared with conv2d_fused (`op` names it). */
static const sd_backend *conv2d_geom(sd_tape *t, const char *op, sd_tensor *x, sd_tensor *w, sd_tensor *b,
                                     sd_conv_opts o, sd_conv_geom *gp)
{
    const sd_backend *be = conv_check(t, op, x, w, b, o);
    if (!be)
        return NULL;
    const int cout = w->shape[0], cin = x->shape[1];
    if (cin % o.groups || cout % o.groups || w->shape[1] * o.groups != cin) {
        sd_tape_fail(t, SD_ERR_SHAPE,
                     "%s: input %s and weight %s with %d groups: expected weight [Cout, Cin/groups, "
                     "kh, kw] with Cin and Cout divisible by groups",
                     op, sd_shape_str(x), sd_shape_str(w), o.groups);
        return NULL;
    }
    if (b && (b->numel != (size_t)cout || b->ndim != 1)) {
        sd_tape_fail(t, SD_ERR_SHAPE, "%s: weight %s and bias %s: expected bias [%d]", op, sd_shape_str(w),
                     sd_shape_str(b), cout);
        return NULL;
    }
    sd_conv_geom g = {
        .n = x->shape[0], .cin = cin, .h = x->shape[2], .w = x->shape[3],
        .cout = cout, .kh = w->shape[2], .kw = w->shape[3],
        .sh = o.stride_h, .sw = o.stride_w, .ph = o.pad_h, .pw = o.pad_w, .dh = o.dil_h, .dw = o.dil_w,
        .groups = o.groups, .compute = t->compute,
    };
    int eh = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1, ew = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
    if (eh < 0 || ew < 0 || g.kh < 1 || g.kw < 1) {
        sd_tape_fail(t, SD_ERR_SHAPE,
                     "%s: input %s and weight %s (padding %dx%d, dilation %dx%d): the dilated kernel "
                     "is larger than the padded input",
                     op, sd_shape_str(x), sd_shape_str(w), g.ph, g.pw, g.dh, g.dw);
        return NULL;
    }
    g.oh = eh / g.sh + 1;
    g.ow = ew / g.sw + 1;
    *gp = g;
    return be;
}

static conv_saved *conv_save(sd_tape *t, sd_node *n, const sd_conv_geom *g, size_t bytes)
{
    conv_saved *s = sd_arena_alloc(&t->arena, bytes);
    if (!s) {
        sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory recording the node", n->op);
        return NULL;
    }
    s->t = t;
    s->g = *g;
    n->saved = s;
    return s;
}

sd_tensor *sd_conv2d(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o)
{
    if (!x || !w)
        return NULL;
    sd_conv_geom g;
    const sd_backend *be = conv2d_geom(t, "conv2d", x, w, b, o, &g);
    if (!be)
        return NULL;
    sd_tensor *y = sd_tensor_new4(t, g.n, g.cout, g.oh, g.ow);
    if (!y)
        return NULL;
    y->device = x->device;
    if (!be->conv2d_fwd(&g, x->data, w->data, b ? b->data : NULL, y->data))
        return sd_tape_fail(t, SD_ERR_NOMEM, "conv2d: input %s, weight %s: out of memory for im2col",
                            sd_shape_str(x), sd_shape_str(w));
    sd_node *n = sd_tape_record(t, "conv2d", conv2d_backward, y, 3, (sd_tensor *[]){x, w, b});
    if (n && !conv_save(t, n, &g, sizeof(conv_saved)))
        return NULL;
    return y;
}

/* ---- conv2d_fused: conv, frozen BN, residual, activation ---- */

typedef struct fused_saved {
    conv_saved c;
    const float *scale;  /* [cout] in the store, or NULL (no batch norm) */
    sd_act act;
    float slope;
} fused_saved;

/* The epilogue's gradient into a scratch dpre (the conv output's), the
 * residual's on the way; then the convolution's backward from dpre. */
static void conv2d_fused_backward(sd_node *n)
{
    fused_saved *s = n->saved;
    const sd_conv_geom *g = &s->c.g;
    sd_tensor *x = n->in[0], *w = n->in[1], *y = n->out;
    const sd_backend *be = sd_backend_for(x->device);
    size_t bytes = y->numel * sizeof(float);
    float *dpre = sd_tape_scratch(s->c.t, bytes, "conv2d_fused backward");
    if (!dpre)
        return;
    be->conv_post_bwd(g->n, g->cout, (size_t)g->oh * g->ow, s->scale, s->act, s->slope, y->data, y->grad,
                      sd_node_grad(n, 3), dpre);
    if (!be->conv2d_bwd(g, x->data, w->data, dpre, sd_node_grad(n, 0), sd_node_grad(n, 1), sd_node_grad(n, 2)))
        sd_tape_fail(s->c.t, SD_ERR_NOMEM, "conv2d_fused backward: input %s, weight %s: out of memory for im2col",
                     sd_shape_str(x), sd_shape_str(w));
    sd_arena_give_back(&s->c.t->store, dpre, bytes);
}

/* The epilogue's tensors against the output's shape (NULL: fine). */
static const char *post_check(const sd_conv_post *p, const sd_tensor *y, int cout)
{
    const sd_tensor *v[4] = {p->bn_mean, p->bn_var, p->bn_weight, p->bn_bias};
    static const char *const names[4] = {"bn_mean", "bn_var", "bn_weight", "bn_bias"};
    if (!p->bn_mean != !p->bn_var)
        return "bn_mean and bn_var: expected both or neither";
    if (!p->bn_mean && (p->bn_weight || p->bn_bias))
        return "bn_weight/bn_bias without running statistics";
    for (int k = 0; k < 4; k++)
        if (v[k] && (v[k]->ndim != 1 || v[k]->shape[0] != cout))
            return names[k];
    if (p->residual && !sd_shape_eq(p->residual, y))
        return "residual";
    if (p->act < SD_ACT_NONE || p->act > SD_ACT_LEAKY_RELU || !(p->slope >= 0.0f))
        return "act/slope (expected none, relu or leaky relu with slope >= 0)";
    return NULL;
}

sd_tensor *sd_conv2d_fused(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o,
                           const sd_conv_post *post)
{
    if (!x || !w)
        return NULL;
    const sd_conv_post none = {0};
    const sd_conv_post *p = post ? post : &none;
    sd_conv_geom g;
    const sd_backend *be = conv2d_geom(t, "conv2d_fused", x, w, b, o, &g);
    if (!be)
        return NULL;
    sd_tensor *const ins[4] = {x, w, b, p->residual};
    const sd_tensor *all[8] = {x, w, b, p->residual, p->bn_mean, p->bn_var, p->bn_weight, p->bn_bias};
    if (!sd_backend_checkn(t, "conv2d_fused", 8, all))
        return NULL;
    sd_tensor *y = sd_tensor_new4(t, g.n, g.cout, g.oh, g.ow);
    if (!y)
        return NULL;
    y->device = x->device;
    const char *bad = post_check(p, y, g.cout);
    if (bad)
        return sd_tape_fail(t, SD_ERR_SHAPE, "conv2d_fused: input %s, weight %s, output %s: %s%s", sd_shape_str(x),
                            sd_shape_str(w), sd_shape_str(y), bad,
                            p->residual && !strcmp(bad, "residual") ? sd_shape_str(p->residual) : "");
    bool grads = sd_tape_wants_grad(t, 4, ins);
    for (int k = 4; k < 8 && grads; k++)
        if (all[k] && all[k]->requires_grad)
            return sd_tape_fail(t, SD_ERR_ARG,
                                "conv2d_fused: weight %s: the batch norm's %s requires grad (a trained batch "
                                "norm is conv2d + batch_norm)",
                                sd_shape_str(w), k == 6 ? "weight" : k == 7 ? "bias" : "running statistics");
    const float *scale = NULL, *shift = b ? b->data : NULL;
    float *fold = NULL;
    size_t fold_bytes = 2 * (size_t)g.cout * sizeof(float);
    if (p->bn_mean) {
        if (!(fold = sd_tape_scratch(t, fold_bytes, "conv2d_fused")))
            return NULL;
        be->conv_post_fold(g.cout, p->bn_eps, b ? b->data : NULL, p->bn_weight ? p->bn_weight->data : NULL,
                           p->bn_bias ? p->bn_bias->data : NULL, p->bn_mean->data, p->bn_var->data, fold,
                           fold + g.cout);
        scale = fold;
        shift = fold + g.cout;
    }
    /* the bias is part of the shift */
    if (!be->conv2d_fwd(&g, x->data, w->data, NULL, y->data))
        return sd_tape_fail(t, SD_ERR_NOMEM, "conv2d_fused: input %s, weight %s: out of memory for im2col",
                            sd_shape_str(x), sd_shape_str(w));
    be->conv_post_fwd(g.n, g.cout, (size_t)g.oh * g.ow, scale, shift, p->residual ? p->residual->data : NULL,
                      (int)p->act, p->slope, y->data);
    sd_node *n = sd_tape_record(t, "conv2d_fused", conv2d_fused_backward, y, 4, ins);
    if (!n) {
        sd_arena_give_back(&t->store, fold, fold_bytes);
        return t->status == SD_OK ? y : NULL;
    }
    fused_saved *s = (fused_saved *)conv_save(t, n, &g, sizeof(fused_saved));
    if (!s)
        return NULL;
    s->scale = scale;
    s->act = p->act;
    s->slope = p->slope;
    return y;
}

static void conv_transpose2d_backward(sd_node *n)
{
    conv_saved *s = n->saved;
    sd_tensor *x = n->in[0], *w = n->in[1];
    const sd_backend *be = sd_backend_for(x->device);
    if (!be->conv_transpose2d_bwd(&s->g, x->data, w->data, n->out->grad, sd_node_grad(n, 0), sd_node_grad(n, 1), sd_node_grad(n, 2)))
        sd_tape_fail(s->t, SD_ERR_NOMEM,
                     "conv_transpose2d backward: input %s, weight %s: out of memory for im2col", sd_shape_str(x),
                     sd_shape_str(w));
}

sd_tensor *sd_conv_transpose2d(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o)
{
    if (!x || !w)
        return NULL;
    const sd_backend *be = conv_check(t, "conv_transpose2d", x, w, b, o);
    if (!be)
        return NULL;
    /* weight [Cin, Cout/groups, kh, kw]: the layout of the conv2d it is the
     * adjoint of, with that conv's Cout = our Cin */
    const int cin = x->shape[1], cout = w->shape[1] * o.groups;
    if (w->shape[0] != cin || cin % o.groups)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "conv_transpose2d: input %s and weight %s with %d groups: expected weight [Cin, "
                            "Cout/groups, kh, kw] with Cin = %d divisible by groups",
                            sd_shape_str(x), sd_shape_str(w), o.groups, cin);
    if (b && (b->numel != (size_t)cout || b->ndim != 1))
        return sd_tape_fail(t, SD_ERR_SHAPE, "conv_transpose2d: weight %s and bias %s: expected bias [%d]",
                            sd_shape_str(w), sd_shape_str(b), cout);
    if (o.out_pad_h < 0 || o.out_pad_w < 0 || o.out_pad_h >= o.stride_h || o.out_pad_w >= o.stride_w)
        return sd_tape_fail(t, SD_ERR_ARG,
                            "conv_transpose2d: input %s: output padding %dx%d: expected 0 <= output padding < "
                            "stride %dx%d",
                            sd_shape_str(x), o.out_pad_h, o.out_pad_w, o.stride_h, o.stride_w);
    sd_conv_geom g = {
        .n = x->shape[0], .cin = cout, .cout = cin, .oh = x->shape[2], .ow = x->shape[3],
        .kh = w->shape[2], .kw = w->shape[3],
        .sh = o.stride_h, .sw = o.stride_w, .ph = o.pad_h, .pw = o.pad_w, .dh = o.dil_h, .dw = o.dil_w,
        .groups = o.groups, .compute = t->compute,
    };
    g.h = (g.oh - 1) * g.sh - 2 * g.ph + g.dh * (g.kh - 1) + o.out_pad_h + 1;
    g.w = (g.ow - 1) * g.sw - 2 * g.pw + g.dw * (g.kw - 1) + o.out_pad_w + 1;
    if (g.h < 1 || g.w < 1 || g.kh < 1 || g.kw < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "conv_transpose2d: input %s and weight %s (stride %d, padding %d): output size %dx%d "
                            "is not positive",
                            sd_shape_str(x), sd_shape_str(w), g.sh, g.ph, g.h, g.w);
    sd_tensor *y = sd_tensor_new4(t, g.n, cout, g.h, g.w);
    if (!y)
        return NULL;
    y->device = x->device;
    if (!be->conv_transpose2d_fwd(&g, x->data, w->data, b ? b->data : NULL, y->data))
        return sd_tape_fail(t, SD_ERR_NOMEM, "conv_transpose2d: input %s, weight %s: out of memory for im2col",
                            sd_shape_str(x), sd_shape_str(w));
    sd_node *n = sd_tape_record(t, "conv_transpose2d", conv_transpose2d_backward, y, 3, (sd_tensor *[]){x, w, b});
    if (n && !conv_save(t, n, &g, sizeof(conv_saved)))
        return NULL;
    return y;
}

const sd_conv_geom *sd_node_conv_geom(const sd_node *n)
{
    return n && n->saved && !strcmp(n->op, "conv2d") ? &((const conv_saved *)n->saved)->g : NULL;
}

bool sd_node_conv_fused(const sd_node *n, const sd_conv_geom **g, const float **scale, const float **shift,
                        int *act, float *slope)
{
    if (!n || !n->saved || strcmp(n->op, "conv2d_fused"))
        return false;
    const fused_saved *s = n->saved;
    *g = &s->c.g;
    *scale = s->scale;   /* (the fold is [scale | shift], both [cout]) */
    *shift = s->scale ? s->scale + s->c.g.cout : n->in[2] ? (const float *)n->in[2]->data : NULL;
    *act = (int)s->act;
    *slope = s->slope;
    return true;
}
