/* Element-wise ops: activations, dropout, broadcast add/sub/mul, scalar ops,
 * detach and gradient reversal; forward and backward side by side. Kernels
 * come from the backend table; shapes, channels and losses live elsewhere
 * (ops_concat.c, ops_loss.c).
 * Every backward ACCUMULATES (+=) into in[i]->grad, and only for inputs that
 * require grad. */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "segda/ops.h"


static sd_tensor *like(sd_tape *t, const sd_tensor *x)
{
    sd_tensor *y = sd_tensor_new(t, x->ndim, x->shape);
    if (y)
        y->device = x->device;
    return y;
}

/* ---- unary activations ---- */

typedef struct unary_saved {
    const sd_backend *be;
    float alpha;
} unary_saved;

static sd_node *record1(sd_tape *t, const char *op, sd_backward_fn bw, sd_tensor *y, sd_tensor *x,
                        const sd_backend *be, float alpha)
{
    sd_node *n = sd_tape_record(t, op, bw, y, 1, (sd_tensor *[]){x});
    if (n) {
        unary_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s) {
            sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", op);
            return NULL;
        }
        s->be = be;
        s->alpha = alpha;
        n->saved = s;
    }
    return n;
}

static void relu_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    sd_tensor *x = n->in[0], *y = n->out;
    s->be->relu_bwd(x->numel, y->data, y->grad, x->grad);
}

sd_tensor *sd_relu(sd_tape *t, sd_tensor *x)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "relu: input is NULL");
    const sd_backend *be = sd_backend_check(t, "relu", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->relu_fwd(x->numel, x->data, y->data);
    record1(t, "relu", relu_backward, y, x, be, 0.0f);
    return t->status == SD_OK ? y : NULL;
}

static void leaky_relu_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    sd_tensor *x = n->in[0], *y = n->out;
    s->be->leaky_relu_bwd(x->numel, s->alpha, x->data, y->grad, x->grad);
}

sd_tensor *sd_leaky_relu(sd_tape *t, sd_tensor *x, float slope)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "leaky_relu: input is NULL");
    const sd_backend *be = sd_backend_check(t, "leaky_relu", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->leaky_relu_fwd(x->numel, slope, x->data, y->data);
    record1(t, "leaky_relu", leaky_relu_backward, y, x, be, slope);
    return t->status == SD_OK ? y : NULL;
}

static void tanh_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    s->be->tanh_bwd(n->out->numel, n->out->data, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_tanh(sd_tape *t, sd_tensor *x)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "tanh: input is NULL");
    const sd_backend *be = sd_backend_check(t, "tanh", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->tanh_fwd(x->numel, x->data, y->data);
    record1(t, "tanh", tanh_backward, y, x, be, 0.0f);
    return t->status == SD_OK ? y : NULL;
}

static void sigmoid_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    s->be->sigmoid_bwd(n->out->numel, n->out->data, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_sigmoid(sd_tape *t, sd_tensor *x)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "sigmoid: input is NULL");
    const sd_backend *be = sd_backend_check(t, "sigmoid", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->sigmoid_fwd(x->numel, x->data, y->data);
    record1(t, "sigmoid", sigmoid_backward, y, x, be, 0.0f);
    return t->status == SD_OK ? y : NULL;
}

/* scale, add_scalar and grad_reverse all pass alpha * grad back */
static void axpy_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    s->be->axpy(n->out->numel, s->alpha, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_scale(sd_tape *t, sd_tensor *x, float s)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "scale: input is NULL");
    const sd_backend *be = sd_backend_check(t, "scale", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->scale_fwd(x->numel, s, x->data, y->data);
    record1(t, "scale", axpy_backward, y, x, be, s);
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_add_scalar(sd_tape *t, sd_tensor *x, float s)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "add_scalar: input is NULL");
    const sd_backend *be = sd_backend_check(t, "add_scalar", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->add_scalar_fwd(x->numel, s, x->data, y->data);
    record1(t, "add_scalar", axpy_backward, y, x, be, 1.0f);
    return t->status == SD_OK ? y : NULL;
}

static void pow_backward(sd_node *n)
{
    unary_saved *s = n->saved;
    sd_tensor *x = n->in[0];
    s->be->pow_bwd(x->numel, s->alpha, x->data, n->out->grad, x->grad);
}

sd_tensor *sd_pow_scalar(sd_tape *t, sd_tensor *x, float p)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "pow_scalar: input is NULL");
    if (!isfinite(p))
        return sd_tape_fail(t, SD_ERR_ARG, "pow_scalar: exponent %g, expected a finite number", p);
    const sd_backend *be = sd_backend_check(t, "pow_scalar", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    if (!y)
        return NULL;
    be->pow_fwd(x->numel, p, x->data, y->data);
    record1(t, "pow_scalar", pow_backward, y, x, be, p);
    return t->status == SD_OK ? y : NULL;
}

/* A view sharing x's data: ops never write into their inputs, so sharing is
 * safe for the life of the step. */
static sd_tensor *view_of(sd_tape *t, sd_tensor *x, int ndim, const int *shape)
{
    sd_tensor *y = sd_tensor_wrap(t, ndim, shape, x->data);
    if (y) {
        y->device = x->device;
        y->dtype = x->dtype;
    }
    return y;
}

sd_tensor *sd_detach(sd_tape *t, sd_tensor *x)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "detach: input is NULL");
    return view_of(t, x, x->ndim, x->shape);
}

sd_tensor *sd_grad_reverse(sd_tape *t, sd_tensor *x, float lambda)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "grad_reverse: input is NULL");
    const sd_backend *be = sd_backend_check(t, "grad_reverse", x);
    sd_tensor *y = be ? view_of(t, x, x->ndim, x->shape) : NULL;
    if (!y)
        return NULL;
    record1(t, "grad_reverse", axpy_backward, y, x, be, -lambda);
    return t->status == SD_OK ? y : NULL;
}

/* ---- dropout ---- */

typedef struct dropout_saved {
    const sd_backend *be;
    float *mask;
} dropout_saved;

static void dropout_backward(sd_node *n)
{
    dropout_saved *s = n->saved;
    s->be->mul(n->out->numel, n->out->grad, s->mask, n->in[0]->grad, true);
}

sd_tensor *sd_dropout(sd_tape *t, sd_tensor *x, float p)
{
    if (!x)
        return sd_tape_fail(t, SD_ERR_ARG, "dropout: input is NULL");
    if (!(p >= 0.0f && p <= 1.0f))
        return sd_tape_fail(t, SD_ERR_ARG, "dropout: p = %g, expected 0 <= p <= 1", p);
    if (!t->training || p == 0.0f)
        return x;
    const sd_backend *be = sd_backend_check(t, "dropout", x);
    sd_tensor *y = be ? like(t, x) : NULL;
    float *mask = y ? sd_arena_alloc(&t->arena, x->numel * sizeof(float)) : NULL;
    if (!mask)
        return y ? sd_tape_fail(t, SD_ERR_NOMEM, "dropout: out of memory") : NULL;
    /* One draw from the tape's stream per call: the masks of a step depend
     * only on the seed and the order of the calls. */
    be->dropout_mask(sd_rng_u64(&t->rng), p, x->numel, mask);
    be->mul(x->numel, x->data, mask, y->data, false);
    sd_node *n = sd_tape_record(t, "dropout", dropout_backward, y, 1, (sd_tensor *[]){x});
    if (n) {
        dropout_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "dropout: out of memory");
        s->be = be;
        s->mask = mask;
        n->saved = s;
    }
    return t->status == SD_OK ? y : NULL;
}

/* ---- broadcast binary ops ---- */

typedef struct binary_saved {
    const sd_backend *be;
    char op;
} binary_saved;

static void binary_backward(sd_node *n)
{
    binary_saved *s = n->saved;
    sd_tensor *a = n->in[0], *b = n->in[1];
    s->be->binary_bwd(s->op, a->shape, b->shape, a->data, b->data, n->out->grad, sd_node_grad(n, 0), sd_node_grad(n, 1));
}

static sd_tensor *binary(sd_tape *t, const char *name, char op, sd_tensor *a, sd_tensor *b)
{
    if (!a || !b)
        return sd_tape_fail(t, SD_ERR_ARG, "%s: input %s is NULL", name, a ? "b" : "a");
    bool ok = a->ndim == b->ndim && a->device == b->device;
    for (int d = 0; ok && d < SD_MAX_DIMS; d++)
        ok = b->shape[d] == a->shape[d] || b->shape[d] == 1;
    if (!ok)
        return sd_tape_fail(t, SD_ERR_SHAPE,
                            "%s: %s and %s: b must have a's number of dims and, in each, a's size or 1",
                            name, sd_shape_str(a), sd_shape_str(b));
    const sd_backend *be = sd_backend_check(t, name, a);
    sd_tensor *y = be ? like(t, a) : NULL;
    if (!y)
        return NULL;
    be->binary_fwd(op, a->shape, b->shape, a->data, b->data, y->data);
    sd_node *n = sd_tape_record(t, name, binary_backward, y, 2, (sd_tensor *[]){a, b});
    if (n) {
        binary_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory", name);
        s->be = be;
        s->op = op;
        n->saved = s;
    }
    return t->status == SD_OK ? y : NULL;
}

sd_tensor *sd_add(sd_tape *t, sd_tensor *a, sd_tensor *b) { return binary(t, "add", '+', a, b); }
sd_tensor *sd_sub(sd_tape *t, sd_tensor *a, sd_tensor *b) { return binary(t, "sub", '-', a, b); }
sd_tensor *sd_mul(sd_tape *t, sd_tensor *a, sd_tensor *b) { return binary(t, "mul", '*', a, b); }
