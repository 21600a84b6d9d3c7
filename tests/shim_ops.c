/* Flat C entry points for the PyTorch parity scripts (tests/py/segda_ct.py,
 * through ctypes): run one op by name on copies of numpy arrays, return its
 * output, then backward with loss = sum(out * grad_out) and return every
 * input's gradient. opsA's ops are dispatched here; unknown names go to
 * opsB's sdt_dispatch_b (tests/shim_ops_b.c). Test-only code. */
#include <string.h>

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

static sd_tensor *dispatch_a(const char *op, const sdt_args *a, bool *found)
{
    sd_tape *t = a->t;
    *found = true;
    if (!strcmp(op, "conv2d"))
        return sd_conv2d(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), conv_opts(a));
    if (!strcmp(op, "conv_transpose2d"))
        return sd_conv_transpose2d(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), conv_opts(a));
    if (!strcmp(op, "max_pool2d"))
        return sd_max_pool2d(t, sdt_in(a, 0), pool_opts(a));
    if (!strcmp(op, "avg_pool2d"))
        return sd_avg_pool2d(t, sdt_in(a, 0), pool_opts(a));
    if (!strcmp(op, "adaptive_avg_pool2d"))
        return sd_adaptive_avg_pool2d(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1));
    /* inputs x, running_mean, running_var[, weight, bias]; ip: training; fp: momentum, eps */
    if (!strcmp(op, "batch_norm"))
        return sd_batch_norm(t, sdt_in(a, 0), sdt_in(a, 3), sdt_in(a, 4), sdt_in(a, 1), sdt_in(a, 2),
                             sdt_ip(a, 0, 1) != 0, sdt_fp(a, 0, 0.1f), sdt_fp(a, 1, 1e-5f));
    if (!strcmp(op, "instance_norm"))
        return sd_instance_norm(t, sdt_in(a, 0), sdt_in(a, 1), sdt_in(a, 2), sdt_fp(a, 0, 1e-5f));
    if (!strcmp(op, "resize_bilinear"))
        return sd_resize_bilinear(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1), sdt_ip(a, 2, 0) != 0);
    if (!strcmp(op, "resize_nearest"))
        return sd_resize_nearest(t, sdt_in(a, 0), sdt_ip(a, 0, 1), sdt_ip(a, 1, 1));
    /* ip: top bottom left right reflect */
    if (!strcmp(op, "pad2d"))
        return sd_pad2d(t, sdt_in(a, 0), sdt_ip(a, 0, 0), sdt_ip(a, 1, 0), sdt_ip(a, 2, 0), sdt_ip(a, 3, 0),
                        sdt_ip(a, 4, 0) != 0);
    if (!strcmp(op, "flip_w"))
        return sd_flip_w(t, sdt_in(a, 0));
    *found = false;
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
    bool found = false;
    sd_tensor *y = dispatch_a(op, &args, &found);
    if (!found && sdt_dispatch_b)
        y = sdt_dispatch_b(op, &args, &found);
    if (!found)
        return sd_fail(SD_ERR_ARG, "shim: unknown op '%s'", op);
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
    float g = n->out->grad[0];
    for (size_t i = 0; i < x->numel; i++)
        x->grad[i] += g * seed[i];
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
