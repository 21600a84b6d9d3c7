/* Shape ops: concat and slice along any dim (0..3) and reshape.
 * Padding, resizing and flips are in ops_resize.c.
 * Every backward ACCUMULATES (+=) into in[i]->grad, and only for inputs that
 * require grad. */
#include <stdio.h>

#include <string.h>

#include "core/backend.h"
#include "core/node_info.h"
#include "segda/ops.h"

/* x viewed as [outer, shape[dim], inner] */
static size_t outer_of(const sd_tensor *x, int dim)
{
    size_t o = 1;
    for (int d = 0; d < dim; d++)
        o *= (size_t)x->shape[d];
    return o;
}

static size_t inner_of(const sd_tensor *x, int dim)
{
    size_t o = 1;
    for (int d = dim + 1; d < x->ndim; d++)
        o *= (size_t)x->shape[d];
    return o;
}

/* ---- concat ---- */

typedef struct concat_saved {
    const sd_backend *be;
    int dim;
} concat_saved;

static void concat_backward(sd_node *n)
{
    concat_saved *s = n->saved;
    sd_tensor *y = n->out;
    size_t outer = outer_of(y, s->dim), inner = inner_of(y, s->dim);
    size_t ylen = (size_t)y->shape[s->dim] * inner, off = 0;
    for (int i = 0; i < n->n_in; i++) {
        sd_tensor *x = n->in[i];
        size_t len = (size_t)x->shape[s->dim] * inner;
        if (sd_node_grad(n, i))
            s->be->copy_blocks(outer, len, (const float *)y->grad + off, ylen, x->grad, len, true);
        off += len;
    }
}

/* A node holds at most 4 inputs (sd_node.in): longer lists are concatenated
 * four at a time, which costs one extra copy per group. */
#define CONCAT_MAX_IN 4

sd_tensor *sd_concat(sd_tape *t, int n, sd_tensor *const *xs, int dim)
{
    if (n < 1 || !xs)
        return sd_tape_fail(t, SD_ERR_ARG, "concat: %d inputs, expected at least 1", n);
    for (int i = 0; i < n; i++)
        if (!xs[i])
            return sd_tape_fail(t, SD_ERR_ARG, "concat: input %d is NULL", i);
    const sd_tensor *x0 = xs[0];
    if (dim < 0 || dim >= x0->ndim)
        return sd_tape_fail(t, SD_ERR_ARG, "concat: dim %d of %s, expected 0..%d", dim, sd_shape_str(x0),
                            x0->ndim - 1);
    int total = 0;
    for (int i = 0; i < n; i++) {
        bool ok = xs[i]->ndim == x0->ndim && xs[i]->device == x0->device;
        for (int d = 0; ok && d < x0->ndim; d++)
            ok = d == dim || xs[i]->shape[d] == x0->shape[d];
        if (!ok)
            return sd_tape_fail(t, SD_ERR_SHAPE, "concat: input %d %s does not match input 0 %s outside dim %d",
                                i, sd_shape_str(xs[i]), sd_shape_str(x0), dim);
        total += xs[i]->shape[dim];
    }
    if (n > CONCAT_MAX_IN) {
        sd_tensor *parts[CONCAT_MAX_IN];
        int g = (n + CONCAT_MAX_IN - 1) / CONCAT_MAX_IN, np = 0;
        for (int i = 0; i < n; i += g) {
            int k = n - i < g ? n - i : g;
            parts[np] = k == 1 ? xs[i] : sd_concat(t, k, xs + i, dim);
            if (!parts[np++])
                return NULL;
        }
        return sd_concat(t, np, parts, dim);
    }
    const sd_backend *be = sd_backend_check(t, "concat", x0);
    if (!be)
        return NULL;
    int shape[SD_MAX_DIMS];
    for (int d = 0; d < x0->ndim; d++)
        shape[d] = x0->shape[d];
    shape[dim] = total;
    sd_tensor *y = sd_tensor_new(t, x0->ndim, shape);
    if (!y)
        return NULL;
    y->device = x0->device;
    size_t outer = outer_of(y, dim), inner = inner_of(y, dim);
    size_t ylen = (size_t)total * inner, off = 0;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)xs[i]->shape[dim] * inner;
        be->copy_blocks(outer, len, xs[i]->data, len, (float *)y->data + off, ylen, false);
        off += len;
    }
    sd_node *nd = sd_tape_record(t, "concat", concat_backward, y, n, xs);
    if (nd) {
        concat_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "concat: out of memory");
        s->be = be;
        s->dim = dim;
        nd->saved = s;
    }
    return t->status == SD_OK ? y : NULL;
}

/* ---- slice ---- */

typedef struct slice_saved {
    const sd_backend *be;
    int dim, start;
} slice_saved;

static void slice_backward(sd_node *n)
{
    slice_saved *s = n->saved;
    sd_tensor *x = n->in[0], *y = n->out;
    size_t outer = outer_of(x, s->dim), inner = inner_of(x, s->dim);
    size_t len = (size_t)y->shape[s->dim] * inner;
    s->be->copy_blocks(outer, len, y->grad, len, (float *)x->grad + (size_t)s->start * inner,
                       (size_t)x->shape[s->dim] * inner, true);
}

sd_tensor *sd_slice(sd_tape *t, sd_tensor *x, int dim, int start, int end)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "slice: input is NULL");
    if (dim < 0 || dim >= x->ndim)
        return sd_tape_fail(t, SD_ERR_ARG, "slice: dim %d of %s, expected 0..%d", dim, sd_shape_str(x),
                            x->ndim - 1);
    if (start < 0 || end > x->shape[dim] || start >= end)
        return sd_tape_fail(t, SD_ERR_SHAPE, "slice: [%d, %d) along dim %d of %s, expected 0 <= start < end <= %d",
                            start, end, dim, sd_shape_str(x), x->shape[dim]);
    const sd_backend *be = sd_backend_check(t, "slice", x);
    if (!be)
        return NULL;
    int shape[SD_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = x->shape[d];
    shape[dim] = end - start;
    sd_tensor *y = sd_tensor_new(t, x->ndim, shape);
    if (!y)
        return NULL;
    y->device = x->device;
    size_t outer = outer_of(x, dim), inner = inner_of(x, dim);
    size_t len = (size_t)(end - start) * inner;
    be->copy_blocks(outer, len, (const float *)x->data + (size_t)start * inner, (size_t)x->shape[dim] * inner, y->data, len,
                    false);
    sd_node *n = sd_tape_record(t, "slice", slice_backward, y, 1, (sd_tensor *[]){x});
    if (n) {
        slice_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "slice: out of memory");
        s->be = be;
        s->dim = dim;
        s->start = start;
        n->saved = s;
    }
    return t->status == SD_OK ? y : NULL;
}

/* ---- reshape ---- */

static void reshape_backward(sd_node *n)
{
    const sd_backend *be = n->saved;
    be->axpy(n->out->numel, 1.0f, n->out->grad, n->in[0]->grad);
}

/* One entry may be -1: it takes whatever size makes the counts agree. */
sd_tensor *sd_reshape(sd_tape *t, sd_tensor *x, int ndim, const int *shape)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "reshape: input is NULL");
    if (ndim < 1 || ndim > SD_MAX_DIMS || !shape)
        return sd_tape_fail(t, SD_ERR_SHAPE, "reshape: %s to %d dims, expected 1..%d", sd_shape_str(x), ndim,
                            SD_MAX_DIMS);
    int s[SD_MAX_DIMS], infer = -1;
    size_t known = 1;
    for (int d = 0; d < ndim; d++) {
        s[d] = shape[d];
        if (s[d] == -1 && infer < 0) {
            infer = d;
        } else if (s[d] < 1) {
            infer = -2;
            break;
        } else {
            known *= (size_t)s[d];
        }
    }
    if (infer >= 0 && known > 0 && x->numel % known == 0)
        s[infer] = (int)(x->numel / known);
    else if (infer == -1 && known == x->numel)
        infer = 0;
    else
        infer = -2;
    if (infer == -2) {
        char want[64];
        int off = 0;
        for (int d = 0; d < ndim && off < 60; d++)
            off += snprintf(want + off, sizeof want - off, d ? ",%d" : "[%d", shape[d]);
        snprintf(want + off, sizeof want - off, "]");
        return sd_tape_fail(t, SD_ERR_SHAPE, "reshape: %s (%zu elements) cannot become %s", sd_shape_str(x),
                            x->numel, want);
    }
    const sd_backend *be = sd_backend_check(t, "reshape", x);
    if (!be)
        return NULL;
    sd_tensor *y = sd_tensor_wrap(t, ndim, s, x->data);
    if (!y)
        return NULL;
    y->device = x->device;
    y->dtype = x->dtype;
    sd_node *n = sd_tape_record(t, "reshape", reshape_backward, y, 1, (sd_tensor *[]){x});
    if (n)
        n->saved = (void *)be;
    return t->status == SD_OK ? y : NULL;
}

bool sd_node_concat_dim(const sd_node *n, int *dim)
{
    if (!n || !n->saved || strcmp(n->op, "concat"))
        return false;
    *dim = ((const concat_saved *)n->saved)->dim;
    return true;
}
