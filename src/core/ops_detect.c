/* The two ops Mask R-CNN's losses add to the registry: gather (rows by
 * host indices) and the summed smooth-L1 loss. Kernels in
 * src/cpu/detect_cpu.c and src/cuda/loss.cu. Backwards ACCUMULATE (+=)
 * into x's gradient only (indices and targets are constants). */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "segda/ops.h"

typedef struct gather_saved {
    int n, block;
    int32_t *idx; /* on the device */
} gather_saved;

static void gather_backward(sd_node *n)
{
    gather_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->gather_bwd(s->n, s->block, s->idx, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_gather(sd_tape *t, sd_tensor *x, int n, const int32_t *idx, int block)
{
    if (!x)
        return NULL;
    if (n < 1 || !idx || block < 1 || x->numel % (size_t)block)
        return sd_tape_fail(t, SD_ERR_ARG, "gather: input %s, %d indices, block %d: expected at least one index "
                            "and a block dividing the input", sd_shape_str(x), n, block);
    size_t rows = x->numel / (size_t)block;
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || (size_t)idx[i] >= rows)
            return sd_tape_fail(t, SD_ERR_ARG, "gather: input %s viewed as %zu rows of %d: index %d is %d",
                                sd_shape_str(x), rows, block, i, idx[i]);
    const sd_backend *be = sd_backend_check(t, "gather", x);
    if (!be)
        return NULL;
    int32_t *didx = sd_tape_scratch(t, (size_t)n * sizeof *didx, "gather");
    sd_tensor *y = sd_tensor_new(t, 2, (int[]){n, block});
    if (!didx || !y)
        return NULL;
    y->device = x->device;
    be->copy_from_host(didx, idx, (size_t)n * sizeof *didx);
    be->gather_fwd(n, block, didx, x->data, y->data);
    sd_node *nd = sd_tape_record(t, "gather", gather_backward, y, 1, &x);
    if (nd) {
        gather_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "gather: out of memory recording the node");
        *s = (gather_saved){n, block, didx};
        nd->saved = s;
    }
    return y;
}

typedef struct sl1_saved {
    float beta;
} sl1_saved;

static void smooth_l1_backward(sd_node *n)
{
    sl1_saved *s = n->saved;
    float g;
    const sd_backend *be = sd_backend_for(n->out->device);
    be->copy_to_host(&g, n->out->grad, sizeof g);
    if (sd_node_grad(n, 0))
        be->smooth_l1_bwd(n->in[0]->numel, s->beta, n->in[0]->data, n->in[1]->data, g, n->in[0]->grad);
}

sd_tensor *sd_smooth_l1(sd_tape *t, sd_tensor *x, sd_tensor *target, float beta)
{
    if (!x || !target)
        return x ? sd_tape_fail(t, SD_ERR_ARG, "smooth_l1: target is NULL") : NULL;
    if (!sd_shape_eq(x, target) || !(beta > 0) || !isfinite(beta))
        return sd_tape_fail(t, SD_ERR_ARG, "smooth_l1: input %s, target %s, beta %g: expected one shape and beta > 0",
                            sd_shape_str(x), sd_shape_str(target), beta);
    const sd_backend *be = sd_backend_checkn(t, "smooth_l1", 2, (const sd_tensor *const[]){x, target});
    if (!be)
        return NULL;
    float v = (float)be->smooth_l1_fwd(x->numel, beta, x->data, target->data);
    sd_tensor *y = sd_tensor_new(t, 1, (int[]){1});
    if (!y)
        return NULL;
    be->copy_from_host(y->data, &v, sizeof v);
    /* the target is recorded (the backward reads it) but never gets a gradient */
    sd_node *n = sd_tape_record(t, "smooth_l1", smooth_l1_backward, y, 2, (sd_tensor *[]){x, target});
    if (n) {
        n->wants &= 1u;
        sl1_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "smooth_l1: out of memory recording the node");
        s->beta = beta;
        n->saved = s;
    }
    return y;
}
