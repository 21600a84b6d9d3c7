/* Bilinear and nearest resize, reflection/zero padding and horizontal flip:
 * checks, tape nodes and backward; kernels in src/cpu/resize_cpu.c. Every
 * backward here ACCUMULATES (+=) into in[0]->grad, and only when the input
 * requires grad. */
#include <string.h>

#include "core/backend.h"
#include "core/node_info.h"
#include "segda/ops.h"

typedef struct resize_saved {
    int planes, h, w, oh, ow;
    int top, bottom, left, right;
    bool flag;  /* align_corners (bilinear) or reflect (pad) */
} resize_saved;

static const sd_backend *spatial_check(sd_tape *t, const char *op, sd_tensor *x)
{
    if (x->ndim != 4 || x->shape[2] < 1 || x->shape[3] < 1) {
        sd_tape_fail(t, SD_ERR_SHAPE, "%s: input %s: expected a non-empty 4-D NCHW tensor", op, sd_shape_str(x));
        return NULL;
    }
    return sd_backend_check(t, op, x);
}

static sd_tensor *spatial_out(sd_tape *t, sd_tensor *x, int oh, int ow)
{
    sd_tensor *y = sd_tensor_new4(t, x->shape[0], x->shape[1], oh, ow);
    if (y)
        y->device = x->device;
    return y;
}

static sd_tensor *record(sd_tape *t, const char *op, sd_backward_fn bw, sd_tensor *x, sd_tensor *y,
                         resize_saved s)
{
    sd_node *n = sd_tape_record(t, op, bw, y, 1, &x);
    if (n) {
        resize_saved *p = sd_arena_alloc(&t->arena, sizeof *p);
        if (!p)
            return sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory recording the node", op);
        *p = s;
        n->saved = p;
    }
    return y;
}

static void bilinear_backward(sd_node *n)
{
    resize_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)
            ->resize_bilinear_bwd(s->planes, s->h, s->w, s->oh, s->ow, s->flag, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_resize_bilinear(sd_tape *t, sd_tensor *x, int out_h, int out_w, bool align_corners)
{
    if (!x)
        return NULL;
    const sd_backend *be = spatial_check(t, "resize_bilinear", x);
    if (!be)
        return NULL;
    if (out_h < 1 || out_w < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE, "resize_bilinear: input %s to %dx%d: expected an output size >= 1",
                            sd_shape_str(x), out_h, out_w);
    resize_saved s = {.planes = x->shape[0] * x->shape[1], .h = x->shape[2], .w = x->shape[3], .oh = out_h,
                      .ow = out_w, .flag = align_corners};
    sd_tensor *y = spatial_out(t, x, out_h, out_w);
    if (!y)
        return NULL;
    be->resize_bilinear_fwd(s.planes, s.h, s.w, s.oh, s.ow, align_corners, x->data, y->data);
    return record(t, "resize_bilinear", bilinear_backward, x, y, s);
}

static void nearest_backward(sd_node *n)
{
    resize_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)
            ->resize_nearest_bwd(s->planes, s->h, s->w, s->oh, s->ow, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_resize_nearest(sd_tape *t, sd_tensor *x, int out_h, int out_w)
{
    if (!x)
        return NULL;
    const sd_backend *be = spatial_check(t, "resize_nearest", x);
    if (!be)
        return NULL;
    if (out_h < 1 || out_w < 1)
        return sd_tape_fail(t, SD_ERR_SHAPE, "resize_nearest: input %s to %dx%d: expected an output size >= 1",
                            sd_shape_str(x), out_h, out_w);
    resize_saved s = {.planes = x->shape[0] * x->shape[1], .h = x->shape[2], .w = x->shape[3], .oh = out_h,
                      .ow = out_w};
    sd_tensor *y = spatial_out(t, x, out_h, out_w);
    if (!y)
        return NULL;
    be->resize_nearest_fwd(s.planes, s.h, s.w, s.oh, s.ow, x->data, y->data);
    return record(t, "resize_nearest", nearest_backward, x, y, s);
}

static void pad_backward(sd_node *n)
{
    resize_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)
            ->pad2d_bwd(s->planes, s->h, s->w, s->top, s->bottom, s->left, s->right, s->flag, n->out->grad,
                        n->in[0]->grad);
}

sd_tensor *sd_pad2d(sd_tape *t, sd_tensor *x, int top, int bottom, int left, int right, bool reflect)
{
    if (!x)
        return NULL;
    const sd_backend *be = spatial_check(t, "pad2d", x);
    if (!be)
        return NULL;
    const int h = x->shape[2], w = x->shape[3];
    if (top < 0 || bottom < 0 || left < 0 || right < 0)
        return sd_tape_fail(t, SD_ERR_ARG, "pad2d: input %s: padding %d,%d,%d,%d (top,bottom,left,right): "
                            "expected >= 0", sd_shape_str(x), top, bottom, left, right);
    /* reflection mirrors without repeating the edge: needs pad < size */
    if (reflect && (top >= h || bottom >= h || left >= w || right >= w))
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "pad2d: input %s: reflection padding %d,%d,%d,%d (top,bottom,left,right): expected "
                            "each < the input's size in that dimension",
                            sd_shape_str(x), top, bottom, left, right);
    resize_saved s = {.planes = x->shape[0] * x->shape[1], .h = h, .w = w, .oh = h + top + bottom,
                      .ow = w + left + right, .top = top, .bottom = bottom, .left = left, .right = right,
                      .flag = reflect};
    sd_tensor *y = spatial_out(t, x, s.oh, s.ow);
    if (!y)
        return NULL;
    be->pad2d_fwd(s.planes, h, w, top, bottom, left, right, reflect, x->data, y->data);
    return record(t, "pad2d", pad_backward, x, y, s);
}

static void flip_backward(sd_node *n)
{
    resize_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->flip_w_bwd(s->planes, s->h, s->w, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_flip_w(sd_tape *t, sd_tensor *x)
{
    if (!x)
        return NULL;
    const sd_backend *be = spatial_check(t, "flip_w", x);
    if (!be)
        return NULL;
    resize_saved s = {.planes = x->shape[0] * x->shape[1], .h = x->shape[2], .w = x->shape[3]};
    sd_tensor *y = spatial_out(t, x, s.h, s.w);
    if (!y)
        return NULL;
    be->flip_w_fwd(s.planes, s.h, s.w, x->data, y->data);
    return record(t, "flip_w", flip_backward, x, y, s);
}

bool sd_node_resize_info(const sd_node *n, bool *flag, int pads[4])
{
    if (!n || !n->saved || (strcmp(n->op, "resize_bilinear") && strcmp(n->op, "pad2d")))
        return false;
    const resize_saved *s = n->saved;
    *flag = s->flag;
    pads[0] = s->top;
    pads[1] = s->bottom;
    pads[2] = s->left;
    pads[3] = s->right;
    return true;
}
