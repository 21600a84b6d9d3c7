/* conv2d and conv_transpose2d: shape checks, output allocation, the tape
 * node and its backward; the arithmetic is the backend's (src/cpu/conv_cpu.c).
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

sd_tensor *sd_conv2d(sd_tape *t, sd_tensor *x, sd_tensor *w, sd_tensor *b, sd_conv_opts o)
{
    if (!x || !w)
        return NULL;
    const sd_backend *be = conv_check(t, "conv2d", x, w, b, o);
    if (!be)
        return NULL;
    const int cout = w->shape[0], cin = x->shape[1];
    if (cin % o.groups || cout % o.groups || w->shape[1] * o.groups != cin)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "conv2d: input %s and weight %s with %d groups: expected weight [Cout, Cin/groups, "
                            "kh, kw] with Cin and Cout divisible by groups",
                            sd_shape_str(x), sd_shape_str(w), o.groups);
    if (b && (b->numel != (size_t)cout || b->ndim != 1))
        return sd_tape_fail(t, SD_ERR_SHAPE, "conv2d: weight %s and bias %s: expected bias [%d]",
                            sd_shape_str(w), sd_shape_str(b), cout);
    sd_conv_geom g = {
        .n = x->shape[0], .cin = cin, .h = x->shape[2], .w = x->shape[3],
        .cout = cout, .kh = w->shape[2], .kw = w->shape[3],
        .sh = o.stride_h, .sw = o.stride_w, .ph = o.pad_h, .pw = o.pad_w, .dh = o.dil_h, .dw = o.dil_w,
        .groups = o.groups, .compute = t->compute,
    };
    int eh = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1, ew = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
    if (eh < 0 || ew < 0 || g.kh < 1 || g.kw < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "conv2d: input %s and weight %s (padding %dx%d, dilation %dx%d): the dilated kernel "
                            "is larger than the padded input",
                            sd_shape_str(x), sd_shape_str(w), g.ph, g.pw, g.dh, g.dw);
    g.oh = eh / g.sh + 1;
    g.ow = ew / g.sw + 1;
    sd_tensor *y = sd_tensor_new4(t, g.n, cout, g.oh, g.ow);
    if (!y)
        return NULL;
    y->device = x->device;
    if (!be->conv2d_fwd(&g, x->data, w->data, b ? b->data : NULL, y->data))
        return sd_tape_fail(t, SD_ERR_NOMEM, "conv2d: input %s, weight %s: out of memory for im2col",
                            sd_shape_str(x), sd_shape_str(w));
    sd_node *n = sd_tape_record(t, "conv2d", conv2d_backward, y, 3, (sd_tensor *[]){x, w, b});
    if (n) {
        conv_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "conv2d: out of memory recording the node");
        s->t = t;
        s->g = g;
        n->saved = s;
    }
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
    if (n) {
        conv_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "conv_transpose2d: out of memory recording the node");
        s->t = t;
        s->g = g;
        n->saved = s;
    }
    return y;
}

const sd_conv_geom *sd_node_conv_geom(const sd_node *n)
{
    return n && n->saved && !strcmp(n->op, "conv2d") ? &((const conv_saved *)n->saved)->g : NULL;
}
