/* Flat C entry points for the PyTorch parity scripts (tests/py/segda_ct.py,
 * through ctypes): run one op of the registry by name on copies of numpy
 * arrays, return its output, then backward with loss = sum(out * grad_out)
 * and return every input's gradient. Test-only code. */
#include <string.h>

#include "core/backend.h"
#include "cpu/dnnl.h"
#include "shim.h"

static sd_tape tape;
static bool tape_ready;
static sd_dtype compute = SD_DTYPE_F32;
static sdt_args args;
static sd_tensor *result;

static sd_conv_opts conv_opts(const sdt_args *a)
{
    sd_conv_opts o = sd_conv_opts_default();
    o.stride_h = sdt_ip(a, 0, 1);
    o.stride_w = sdt_ip(a, 1, 1);
    o.pad_h = sdt_ip(a, 2, 0);
    o.pad_w = sdt_ip(a, 3, 0);
    o.dil_h = sdt_ip(a, 4, 1);
    o.dil_w = sdt_ip(a, 5, 1);
    o.groups = sdt_ip(a, 6, 1);
    o.out_pad_h = sdt_ip(a, 7, 0);
    o.out_pad_w = sdt_ip(a, 8, 0);
    return o;
}

/* ip: kh kw sh sw ph pw ceil count_include_pad */
static sd_pool_opts pool_opts(const sdt_args *a)
{
    sd_pool_opts o = {
        .kh = sdt_ip(a, 0, 2), .kw = sdt_ip(a, 1, 2), .stride_h = sdt_ip(a, 2, 2), .stride_w = sdt_ip(a, 3, 2),
        .pad_h = sdt_ip(a, 4, 0), .pad_w = sdt_ip(a, 5, 0), .ceil_mode = sdt_ip(a, 6, 0) != 0,
        .count_include_pad = sdt_ip(a, 7, 1) != 0,
    };
    return o;
}

/* Labels arrive as a float array (the harness passes floats only). */
static const uint8_t *labels_of(sd_tape *t, const sd_tensor *x)
{
    if (!x)
        return NULL;
    uint8_t *l = sd_arena_alloc(&t->arena, x->numel ? x->numel : 1);
    if (l)
        for (size_t i = 0; i < x->numel; i++)
            l[i] = (uint8_t)F32(x->data)[i];
    return l;
}

/* The test registry: every op of src/core/ops.def by its id. The switch has
 * no default, so a new SD_OP without a case here fails the build (-Wswitch),
 * and an unknown name is an error. Per-op parameters are listed by each case. */
static sd_tensor *dispatch(const char *op, const sdt_args *a)
{
    sd_tape *t = a->t;
    sd_tensor *x = sdt_in(a, 0), *y = sdt_in(a, 1);
    sd_op id = sd_op_lookup(op);
    switch (id) {
        case SD_OP_conv2d:
            return sd_conv2d(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), conv_opts(a));
        /* inputs x, w, b, residual, bn_mean, bn_var, bn_weight, bn_bias; ip: the conv2d case's nine, then act;
         * fp: slope, eps */
        case SD_OP_conv2d_fused: {
            sd_conv_post p = {.bn_mean = sdt_in(a, 4), .bn_var = sdt_in(a, 5), .bn_weight = sdt_in(a, 6),
                              .bn_bias = sdt_in(a, 7), .bn_eps = sdt_fp(a, 1, 1e-5f), .residual = sdt_in(a, 3),
                              .act = (sd_act)sdt_ip(a, 9, 0), .slope = sdt_fp(a, 0, 0.0f)};
            return sd_conv2d_fused(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), conv_opts(a), &p);
        }
        case SD_OP_conv_transpose2d:
            return sd_conv_transpose2d(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), conv_opts(a));
        case SD_OP_max_pool2d:
            return sd_max_pool2d(t, sdt_in(a, 0), pool_opts(a));
        case SD_OP_avg_pool2d:
            return sd_avg_pool2d(t, sdt_in(a, 0), pool_opts(a));
        case SD_OP_adaptive_avg_pool2d:
            return sd_adaptive_avg_pool2d(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1));
        /* inputs x, running_mean, running_var[, weight, bias]; ip: training; fp: momentum, eps */
        case SD_OP_batch_norm:
            return sd_batch_norm(t, sdt_in(a, 0), sdt_in(a, 3), sdt_in(a, 4), sdt_in(a, 1), sdt_in(a, 2),
                                 sdt_ip(a, 0, 1) != 0, sdt_fp(a, 0, 0.1f), sdt_fp(a, 1, 1e-5f));
        case SD_OP_instance_norm:
            return sd_instance_norm(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), sdt_fp(a, 0, 1e-5f));
        case SD_OP_resize_bilinear:
            return sd_resize_bilinear(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1), sdt_ip(a, 2, 0) != 0);
        case SD_OP_resize_nearest:
            return sd_resize_nearest(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1));
        /* ip: top bottom left right reflect */
        case SD_OP_pad2d:
            return sd_pad2d(t, sdt_in(a, 0), sdt_ip(a, 0, 0), sdt_ip(a, 1, 0), sdt_ip(a, 2, 0), sdt_ip(a, 3, 0),
                            sdt_ip(a, 4, 0) != 0);
        case SD_OP_flip_w:
            return sd_flip_w(t, sdt_in(a, 0));
    
        case SD_OP_relu:
            return sd_relu(t, x);
        case SD_OP_leaky_relu: /* fp: slope */
            return sd_leaky_relu(t, x, sdt_fp(a, 0, 0.01f));
        case SD_OP_tanh:
            return sd_tanh(t, x);
        case SD_OP_sigmoid:
            return sd_sigmoid(t, x);
        case SD_OP_dropout: { /* fp: p; ip: training, seed */
            t->training = sdt_ip(a, 0, 1) != 0;
            sd_rng_seed(&t->rng, (uint64_t)sdt_ip(a, 1, 1));
            sd_tensor *r = sd_dropout(t, x, sdt_fp(a, 0, 0.5f));
            t->training = true;
            return r;
        }
        case SD_OP_add:
            return sd_add(t, x, y);
        case SD_OP_sub:
            return sd_sub(t, x, y);
        case SD_OP_mul:
            return sd_mul(t, x, y);
        case SD_OP_scale: /* fp: s */
            return sd_scale(t, x, sdt_fp(a, 0, 1.0f));
        case SD_OP_add_scalar: /* fp: s */
            return sd_add_scalar(t, x, sdt_fp(a, 0, 0.0f));
        case SD_OP_pow_scalar: /* fp: exponent */
            return sd_pow_scalar(t, x, sdt_fp(a, 0, 1.0f));
        case SD_OP_detach:
            return sd_detach(t, x);
        case SD_OP_grad_reverse: /* fp: lambda */
            return sd_grad_reverse(t, x, sdt_fp(a, 0, 1.0f));
        case SD_OP_concat: /* every input; ip: dim */
            return sd_concat(t, a->n_in, a->in, sdt_ip(a, 0, 1));
        case SD_OP_slice: /* ip: dim start end */
            return sd_slice(t, x, sdt_ip(a, 0, 1), sdt_ip(a, 1, 0), sdt_ip(a, 2, 1));
        case SD_OP_reshape: /* ip: the new shape */
            return sd_reshape(t, x, a->nip, a->ip);
        case SD_OP_softmax:
            return sd_softmax(t, x);
        case SD_OP_log_softmax:
            return sd_log_softmax(t, x);
        case SD_OP_sum:
            return sd_sum(t, x);
        case SD_OP_mean:
            return sd_mean(t, x);
        case SD_OP_cross_entropy: { /* logits, labels, [class weights]; ip: ignore */
            sd_tensor *cw = sdt_in(a, 2);
            return sd_cross_entropy(t, x, labels_of(t, y), cw ? cw->data : NULL, sdt_ip(a, 0, 255));
        }
        case SD_OP_cross_entropy_pixel_weighted: { /* logits, labels, pixel weights; ip: ignore */
            sd_tensor *pw = sdt_in(a, 2);
            return sd_cross_entropy_pixel_weighted(t, x, labels_of(t, y), pw ? pw->data : NULL, sdt_ip(a, 0, 255));
        }
        case SD_OP_bce_logits_const: /* fp: target */
            return sd_bce_logits_const(t, x, sdt_fp(a, 0, 0.0f));
        case SD_OP_bce_logits:
            return sd_bce_logits(t, x, y);
        case SD_OP_mse_const: /* fp: target */
            return sd_mse_const(t, x, sdt_fp(a, 0, 0.0f));
        case SD_OP_mse:
            return sd_mse(t, x, y);
        case SD_OP_entropy_map:
            return sd_entropy_map(t, x);
        case SD_OP_self_information:
            return sd_self_information(t, x);
        case SD_OP_l2_feature_distance:
            return sd_l2_feature_distance(t, x, y);
        case SD_OP_roi_align: /* x, rois [k,5]; ip: out_h out_w sampling aligned; fp: scale */
            return y ? sd_roi_align(t, x, y->shape[0], y->data, sdt_ip(a, 0, 7), sdt_ip(a, 1, 7), sdt_fp(a, 0, 1.0f),
                                    sdt_ip(a, 2, 2), sdt_ip(a, 3, 0) != 0)
                     : sd_roi_align(t, x, 0, NULL, 1, 1, 1.0f, 0, false);
        case SD_OP_gather: { /* x; ip: block, then the indices */
            int32_t *idx = a->nip > 1 ? sd_arena_alloc(&t->arena, (size_t)(a->nip - 1) * sizeof *idx) : NULL;
            for (int i = 1; idx && i < a->nip; i++)
                idx[i - 1] = a->ip[i];
            return sd_gather(t, x, a->nip - 1, idx, sdt_ip(a, 0, 1));
        }
        case SD_OP_smooth_l1: /* x, target; fp: beta */
            return sd_smooth_l1(t, x, y, sdt_fp(a, 0, 1.0f));
    case SD_OP_COUNT:
        break;
    }
    sd_fail(SD_ERR_ARG, "shim: unknown op '%s'", op);
    return NULL;
}

/* Runs `op`; returns 0 or an sd_status (message in sdt_errmsg). */
int sdt_forward(const char *op, int n_in, float **in_data, const int *in_ndim, const int *in_shapes,
                const int *req_grad, const int *ip, int nip, const float *fp, int nfp, int *out_ndim,
                int *out_shape)
{
    if (!tape_ready) {
        sd_tape_init(&tape, 1234);
        tape_ready = true;
    }
    sd_tape_reset(&tape);
    tape.compute = compute;
    sd_error_clear();
    result = NULL;
    if (n_in > SDT_MAX_IN)
        return sd_fail(SD_ERR_ARG, "shim: %d inputs, at most %d", n_in, SDT_MAX_IN);
    memset(&args, 0, sizeof args);
    args.t = &tape;
    args.n_in = n_in;
    args.ip = ip;
    args.nip = nip;
    args.fp = fp;
    args.nfp = nfp;
    for (int i = 0; i < n_in; i++) {
        if (!in_data[i])
            continue; /* an absent optional input */
        sd_tensor *x = sd_tensor_new(&tape, in_ndim[i], in_shapes + 4 * i);
        if (!x)
            return tape.status;
        memcpy(x->data, in_data[i], x->numel * sizeof(float));
        x->requires_grad = req_grad[i] != 0;
        args.in[i] = x;
    }
    sd_tensor *y = dispatch(op, &args);
    if (!y)
        return tape.status != SD_OK ? tape.status : SD_ERR_ARG;
    result = y;
    *out_ndim = y->ndim;
    for (int i = 0; i < 4; i++)
        out_shape[i] = y->shape[i];
    return SD_OK;
}

int sdt_output(float *out)
{
    if (!result)
        return sd_fail(SD_ERR_ARG, "shim: no output");
    memcpy(out, result->data, result->numel * sizeof(float));
    return SD_OK;
}

/* loss = sum(out * seed): a node local to the shim, so seeding works before
 * (and independently of) the element-wise ops. */
static void dot_backward(sd_node *n)
{
    const float *seed = n->saved;
    sd_tensor *x = n->in[0];
    float g = F32(n->out->grad)[0];
    for (size_t i = 0; i < x->numel; i++)
        F32(x->grad)[i] += g * seed[i];
}

int sdt_backward(const float *grad_out)
{
    if (!result)
        return sd_fail(SD_ERR_ARG, "shim: no output");
    if (!result->requires_grad)
        return SD_OK; /* nothing upstream wants a gradient */
    sd_tensor *loss = sd_tensor_zeros(&tape, 1, (int[]){1});
    float *seed = sd_arena_alloc(&tape.arena, result->numel * sizeof(float));
    if (!loss || !seed)
        return SD_ERR_NOMEM;
    memcpy(seed, grad_out, result->numel * sizeof(float));
    sd_node *n = sd_tape_record(&tape, "shim_dot", dot_backward, loss, 1, &result);
    if (!n)
        return tape.status != SD_OK ? tape.status : SD_ERR_ARG;
    n->saved = seed;
    return sd_backward1(&tape, loss);
}

/* Gradient of input i (zeros when it has none). */
int sdt_grad(int i, float *g)
{
    sd_tensor *x = i < args.n_in ? args.in[i] : NULL;
    if (!x)
        return sd_fail(SD_ERR_ARG, "shim: no input %d", i);
    if (x->grad)
        memcpy(g, x->grad, x->numel * sizeof(float));
    else
        memset(g, 0, x->numel * sizeof(float));
    return SD_OK;
}

/* Input i's data after the op (batch norm updates running statistics). */
int sdt_input(int i, float *d)
{
    sd_tensor *x = i < args.n_in ? args.in[i] : NULL;
    if (!x)
        return sd_fail(SD_ERR_ARG, "shim: no input %d", i);
    memcpy(d, x->data, x->numel * sizeof(float));
    return SD_OK;
}

const char *sdt_errmsg(void) { return sd_errmsg(); }

/* The registry's op names, for the scripts' coverage check. */
int sdt_op_count(void) { return SD_OP_COUNT; }
const char *sdt_op_name(int i) { return i >= 0 && i < SD_OP_COUNT ? sd_op_names[i] : NULL; }

/* The compute dtype of later sdt_forward calls' convolutions (0 f32, 1 bf16). */
int sdt_set_compute(int dtype)
{
    if (dtype < 0 || dtype >= SD_DTYPE_COUNT)
        return sd_fail(SD_ERR_ARG, "shim: compute dtype %d", dtype);
    compute = (sd_dtype)dtype;
    return SD_OK;
}

/* 1 when the CPU backend has native (oneDNN) bf16 convolutions. */
int sdt_bf16_native(void) { return sd_cpu_bf16_supported(); }
