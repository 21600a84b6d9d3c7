/* opsB's side of the parity shim: runs the element-wise, shape, softmax and
 * loss ops by name for tests/py/test_ops_elem.py (dispatched from
 * tests/shim_ops.c), plus sdt_smallnet_*, the small segmentation network of
 * tests/py/test_smallnet.py built from weights given by the script.
 * Test-only code. Parameters per op are listed next to its name. */
#include <string.h>

#include "shim.h"

/* Labels arrive as a float array (the harness passes floats only). */
static const uint8_t *labels_of(sd_tape *t, const sd_tensor *x)
{
    if (!x)
        return NULL;
    uint8_t *l = sd_arena_alloc(&t->arena, x->numel ? x->numel : 1);
    if (l)
        for (size_t i = 0; i < x->numel; i++)
            l[i] = (uint8_t)x->data[i];
    return l;
}

sd_tensor *sdt_dispatch_b(const char *op, const sdt_args *a, bool *found)
{
    sd_tape *t = a->t;
    sd_tensor *x = sdt_in(a, 0), *y = sdt_in(a, 1);
    *found = true;
    if (!strcmp(op, "relu"))
        return sd_relu(t, x);
    if (!strcmp(op, "leaky_relu")) /* fp: slope */
        return sd_leaky_relu(t, x, sdt_fp(a, 0, 0.01f));
    if (!strcmp(op, "tanh"))
        return sd_tanh(t, x);
    if (!strcmp(op, "sigmoid"))
        return sd_sigmoid(t, x);
    if (!strcmp(op, "dropout")) { /* fp: p; ip: training, seed */
        t->training = sdt_ip(a, 0, 1) != 0;
        sd_rng_seed(&t->rng, (uint64_t)sdt_ip(a, 1, 1));
        sd_tensor *r = sd_dropout(t, x, sdt_fp(a, 0, 0.5f));
        t->training = true;
        return r;
    }
    if (!strcmp(op, "add"))
        return sd_add(t, x, y);
    if (!strcmp(op, "sub"))
        return sd_sub(t, x, y);
    if (!strcmp(op, "mul"))
        return sd_mul(t, x, y);
    if (!strcmp(op, "scale")) /* fp: s */
        return sd_scale(t, x, sdt_fp(a, 0, 1.0f));
    if (!strcmp(op, "add_scalar")) /* fp: s */
        return sd_add_scalar(t, x, sdt_fp(a, 0, 0.0f));
    if (!strcmp(op, "detach"))
        return sd_detach(t, x);
    if (!strcmp(op, "grad_reverse")) /* fp: lambda */
        return sd_grad_reverse(t, x, sdt_fp(a, 0, 1.0f));
    if (!strcmp(op, "concat")) /* every input; ip: dim */
        return sd_concat(t, a->n_in, a->in, sdt_ip(a, 0, 1));
    if (!strcmp(op, "slice")) /* ip: dim start end */
        return sd_slice(t, x, sdt_ip(a, 0, 1), sdt_ip(a, 1, 0), sdt_ip(a, 2, 1));
    if (!strcmp(op, "reshape")) /* ip: the new shape */
        return sd_reshape(t, x, a->nip, a->ip);
    if (!strcmp(op, "softmax"))
        return sd_softmax(t, x);
    if (!strcmp(op, "log_softmax"))
        return sd_log_softmax(t, x);
    if (!strcmp(op, "sum"))
        return sd_sum(t, x);
    if (!strcmp(op, "mean"))
        return sd_mean(t, x);
    if (!strcmp(op, "cross_entropy")) { /* logits, labels, [class weights]; ip: ignore */
        sd_tensor *cw = sdt_in(a, 2);
        return sd_cross_entropy(t, x, labels_of(t, y), cw ? cw->data : NULL, sdt_ip(a, 0, 255));
    }
    if (!strcmp(op, "cross_entropy_pixel_weighted")) { /* logits, labels, pixel weights; ip: ignore */
        sd_tensor *pw = sdt_in(a, 2);
        return sd_cross_entropy_pixel_weighted(t, x, labels_of(t, y), pw ? pw->data : NULL, sdt_ip(a, 0, 255));
    }
    if (!strcmp(op, "bce_logits_const")) /* fp: target */
        return sd_bce_logits_const(t, x, sdt_fp(a, 0, 0.0f));
    if (!strcmp(op, "bce_logits"))
        return sd_bce_logits(t, x, y);
    if (!strcmp(op, "mse_const")) /* fp: target */
        return sd_mse_const(t, x, sdt_fp(a, 0, 0.0f));
    if (!strcmp(op, "mse"))
        return sd_mse(t, x, y);
    if (!strcmp(op, "entropy_map"))
        return sd_entropy_map(t, x);
    if (!strcmp(op, "self_information"))
        return sd_self_information(t, x);
    if (!strcmp(op, "l2_feature_distance"))
        return sd_l2_feature_distance(t, x, y);
    *found = false;
    return NULL;
}
