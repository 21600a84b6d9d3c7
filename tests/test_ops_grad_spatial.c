/* Finite-difference checks of the spatial ops' backwards (conv, pool, norm, resize,
 * pad, flip), error messages for wrong shapes, the CPU backend table's
 * completeness and run-to-run determinism. The PyTorch comparison of the
 * same ops is tests/py/test_ops_conv.py.
 *
 * The gradient check perturbs every input that requires grad at once along
 * one random direction v (as KANN does): for L = sum(op(x) * r),
 * (L(x + eps v) - L(x - eps v)) / 2eps must match sum_i <dL/dx_i, v_i>. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/backend.h"
#include "segda/ops.h"

#define MAX_IN 5

typedef struct fd_case {
    const char *name;
    int n_in;
    int ndim[MAX_IN];
    int shape[MAX_IN][4];
    bool grad[MAX_IN];       /* perturbed and checked */
    bool present[MAX_IN];    /* false: passed as NULL */
    bool separated;          /* input 0 values spaced apart (max pool: no ties under eps) */
    sd_tensor *(*op)(sd_tape *t, sd_tensor **in, const void *ctx);
    const void *ctx;
} fd_case;

/* loss = sum(y * r): a node local to the test, so the check does not depend
 * on the element-wise ops. */
static void dot_backward(sd_node *n)
{
    const float *r = n->saved;
    sd_tensor *y = n->in[0];
    for (size_t i = 0; i < y->numel; i++)
        F32(y->grad)[i] += F32(n->out->grad)[0] * r[i];
}

static size_t numel_of(const fd_case *c, int k)
{
    size_t n = 1;
    for (int d = 0; d < c->ndim[k]; d++)
        n *= (size_t)c->shape[k][d];
    return n;
}

/* Runs the op on base + s*eps*dir; returns L (double) and, when `grads`,
 * copies each input's gradient. r is allocated on first use. */
static int fd_eval(sd_tape *t, const fd_case *c, float **base, float **dir, double s, float **r,
                   float **grads, double *loss)
{
    sd_tape_reset(t);
    sd_tensor *in[MAX_IN] = {0};
    for (int k = 0; k < c->n_in; k++) {
        if (!c->present[k])
            continue;
        in[k] = sd_tensor_new(t, c->ndim[k], c->shape[k]);
        for (size_t i = 0; i < in[k]->numel; i++)
            F32(in[k]->data)[i] = base[k][i] + (float)(s * (c->grad[k] ? dir[k][i] : 0.0f));
        in[k]->requires_grad = c->grad[k];
    }
    sd_tensor *y = c->op(t, in, c->ctx);
    if (!y)
        return -1;
    if (!*r) {
        sd_rng g;
        sd_rng_seed(&g, 99);
        *r = malloc(y->numel * sizeof(float));
        for (size_t i = 0; i < y->numel; i++)
            (*r)[i] = sd_rng_normal(&g);
    }
    double L = 0;
    for (size_t i = 0; i < y->numel; i++)
        L += (double)F32(y->data)[i] * (*r)[i];
    *loss = L;
    if (!grads)
        return 0;
    sd_tensor *l = sd_tensor_zeros(t, 1, (int[]){1});
    sd_node *n = sd_tape_record(t, "test_dot", dot_backward, l, 1, &y);
    if (!n)
        return -1;
    n->saved = *r;
    if (sd_backward1(t, l) != SD_OK)
        return -1;
    for (int k = 0; k < c->n_in; k++)
        if (c->grad[k]) {
            if (in[k]->grad)
                memcpy(grads[k], in[k]->grad, in[k]->numel * sizeof(float));
            else
                memset(grads[k], 0, in[k]->numel * sizeof(float));
        }
    return 0;
}

/* Returns |numeric - analytic| / max(|analytic|, 0.1), or a large number on error. */
static double fd_check(const fd_case *c, float eps)
{
    sd_tape t;
    sd_tape_init(&t, 7);
    sd_rng g;
    sd_rng_seed(&g, 1234);
    float *base[MAX_IN] = {0}, *dir[MAX_IN] = {0}, *grads[MAX_IN] = {0}, *r = NULL;
    for (int k = 0; k < c->n_in; k++) {
        size_t n = numel_of(c, k);
        base[k] = malloc(n * sizeof(float));
        dir[k] = malloc(n * sizeof(float));
        grads[k] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            base[k][i] = sd_rng_normal(&g);
            dir[k][i] = 2.0f * sd_rng_uniform(&g) - 1.0f;
        }
        if (k == 0 && c->separated) /* a shuffled ramp with steps 0.05 */
            for (size_t i = 0; i < n; i++) {
                size_t j = (size_t)sd_rng_int(&g, (int)(i + 1));
                base[k][i] = base[k][j];
                base[k][j] = 0.05f * (float)i - 0.025f * (float)n;
            }
        /* variance parameters of eval batch norm must stay positive */
        if (strstr(c->name, "eval") && k == 2)
            for (size_t i = 0; i < n; i++)
                base[k][i] = 0.5f + base[k][i] * base[k][i];
    }
    double L0, Lp, Lm, err = 1e30;
    if (fd_eval(&t, c, base, dir, 0, &r, grads, &L0) || fd_eval(&t, c, base, dir, eps, &r, NULL, &Lp) ||
        fd_eval(&t, c, base, dir, -eps, &r, NULL, &Lm)) {
        fprintf(stderr, "  %s: op failed: %s\n", c->name, sd_errmsg());
        goto done;
    }
    double ana = 0;
    for (int k = 0; k < c->n_in; k++)
        if (c->grad[k])
            for (size_t i = 0; i < numel_of(c, k); i++)
                ana += (double)grads[k][i] * dir[k][i];
    double num = (Lp - Lm) / (2.0 * eps);
    err = fabs(num - ana) / (fabs(ana) > 0.1 ? fabs(ana) : 0.1);
    if (err > 5e-3)
        fprintf(stderr, "  %s: numeric %.6g analytic %.6g\n", c->name, num, ana);
done:
    for (int k = 0; k < c->n_in; k++) {
        free(base[k]);
        free(dir[k]);
        free(grads[k]);
    }
    free(r);
    sd_tape_free(&t);
    return err;
}

#define FD_TOL 5e-3

/* ---- op adapters ---- */
static sd_tensor *op_conv(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_conv2d(t, in[0], in[1], in[2], *(const sd_conv_opts *)ctx);
}
static sd_tensor *op_convt(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_conv_transpose2d(t, in[0], in[1], in[2], *(const sd_conv_opts *)ctx);
}
static sd_tensor *op_maxpool(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_max_pool2d(t, in[0], *(const sd_pool_opts *)ctx);
}
static sd_tensor *op_avgpool(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_avg_pool2d(t, in[0], *(const sd_pool_opts *)ctx);
}
static sd_tensor *op_adaptive(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_adaptive_avg_pool2d(t, in[0], 3, 2);
}
static sd_tensor *op_bn_train(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_batch_norm(t, in[0], in[3], in[4], NULL, NULL, true, 0.1f, 1e-5f);
}
static sd_tensor *op_bn_eval(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_batch_norm(t, in[0], in[3], in[4], in[1], in[2], false, 0.1f, 1e-5f);
}
static sd_tensor *op_inorm(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_instance_norm(t, in[0], in[1], in[2], 1e-5f);
}
static sd_tensor *op_bilinear(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_resize_bilinear(t, in[0], 11, 7, *(const bool *)ctx);
}
/* rois over both images, one partly outside, one tiny (legacy size 1) */
static const float fd_rois[4 * 5] = {0, 0.5f, 1.0f, 7.5f, 4.0f, 1, -2.0f, 1.5f, 5.0f, 9.0f,
                                     1, 3.0f, 3.0f, 3.2f, 3.1f, 0, 2.2f, 0.3f, 8.6f, 5.7f};
static sd_tensor *op_roi_align(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_roi_align(t, in[0], 4, fd_rois, 3, 4, 1.0f, ctx ? 2 : 0, ctx != NULL);
}
static sd_tensor *op_gather(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    static const int32_t rows[5] = {3, 0, 3, 7, 1}; /* a repeat adds up */
    return sd_gather(t, in[0], 5, rows, 9);
}
static sd_tensor *op_smooth_l1(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    /* a beta wider than most differences of the random inputs: both branches */
    return sd_smooth_l1(t, in[0], in[1], 1.5f);
}
static sd_tensor *op_nearest(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_resize_nearest(t, in[0], 3, 13);
}
static sd_tensor *op_pad(sd_tape *t, sd_tensor **in, const void *ctx)
{
    return sd_pad2d(t, in[0], 1, 2, 3, 1, *(const bool *)ctx);
}
static sd_tensor *op_flip(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    return sd_flip_w(t, in[0]);
}

/* A deliberately wrong backward (10% too large): the checker must notice. */
static void wrong_backward(sd_node *n)
{
    for (size_t i = 0; i < n->in[0]->numel; i++)
        F32(n->in[0]->grad)[i] += 1.1f * F32(n->out->grad)[i];
}
static sd_tensor *op_wrong(sd_tape *t, sd_tensor **in, const void *ctx)
{
    (void)ctx;
    sd_tensor *y = sd_tensor_new(t, in[0]->ndim, in[0]->shape);
    memcpy(y->data, in[0]->data, y->numel * sizeof(float));
    sd_tape_record(t, "wrong", wrong_backward, y, 1, in);
    return y;
}

#define X4(a, b, c, d) {a, b, c, d}

static fd_case img_case(const char *name, int n, int c, int h, int w, sd_tensor *(*op)(sd_tape *, sd_tensor **, const void *),
                        const void *ctx)
{
    fd_case k = {.name = name, .n_in = 1, .ndim = {4}, .shape = {X4(n, c, h, w)}, .grad = {true},
                 .present = {true}, .op = op, .ctx = ctx};
    return k;
}

static void test_fd_checker_can_fail(void)
{
    fd_case c = img_case("wrong", 1, 2, 3, 3, op_wrong, NULL);
    CHECK(fd_check(&c, 1e-2f) > 0.05);
}

static void test_fd_conv2d(void)
{
    sd_conv_opts o = sd_conv_opts_make(2, 2, 2);
    fd_case c = {.name = "conv2d s2 d2", .n_in = 3, .ndim = {4, 4, 1},
                 .shape = {X4(2, 4, 9, 8), X4(6, 2, 3, 3), X4(6, 1, 1, 1)},
                 .grad = {true, true, true}, .present = {true, true, true}, .op = op_conv, .ctx = &o};
    o.groups = 2;
    CHECK(fd_check(&c, 1e-2f) < FD_TOL);
    sd_conv_opts o1 = sd_conv_opts_default();
    fd_case c1 = {.name = "conv2d 1x1", .n_in = 2, .ndim = {4, 4}, .shape = {X4(2, 3, 5, 4), X4(5, 3, 1, 1)},
                  .grad = {true, true}, .present = {true, true}, .op = op_conv, .ctx = &o1};
    CHECK(fd_check(&c1, 1e-2f) < FD_TOL);
}

static void test_fd_conv_transpose2d(void)
{
    sd_conv_opts o = sd_conv_opts_make(2, 1, 1);
    o.out_pad_h = 1;
    fd_case c = {.name = "conv_transpose2d", .n_in = 3, .ndim = {4, 4, 1},
                 .shape = {X4(2, 3, 4, 5), X4(3, 4, 3, 3), X4(4, 1, 1, 1)},
                 .grad = {true, true, true}, .present = {true, true, true}, .op = op_convt, .ctx = &o};
    CHECK(fd_check(&c, 1e-2f) < FD_TOL);
}

static void test_fd_pool(void)
{
    sd_pool_opts o = sd_pool_opts_make(3, 2, 1, true);
    fd_case c = img_case("max_pool2d ceil", 2, 2, 9, 8, op_maxpool, &o);
    c.separated = true;
    CHECK(fd_check(&c, 1e-2f) < FD_TOL);
    sd_pool_opts a = sd_pool_opts_make(3, 2, 1, true);
    a.count_include_pad = false;
    fd_case c2 = img_case("avg_pool2d", 2, 2, 9, 8, op_avgpool, &a);
    CHECK(fd_check(&c2, 1e-2f) < FD_TOL);
    fd_case c3 = img_case("adaptive_avg_pool2d", 2, 2, 9, 7, op_adaptive, NULL);
    CHECK(fd_check(&c3, 1e-2f) < FD_TOL);
}

static void test_fd_norm(void)
{
    fd_case c = {.name = "batch_norm train", .n_in = 5, .ndim = {4, 1, 1, 1, 1},
                 .shape = {X4(3, 4, 3, 5), X4(4, 1, 1, 1), X4(4, 1, 1, 1), X4(4, 1, 1, 1), X4(4, 1, 1, 1)},
                 .grad = {true, false, false, true, true}, .present = {true, false, false, true, true},
                 .op = op_bn_train};
    CHECK(fd_check(&c, 1e-2f) < FD_TOL);
    fd_case e = c;
    e.name = "batch_norm eval";
    e.present[1] = e.present[2] = true;
    e.op = op_bn_eval;
    CHECK(fd_check(&e, 1e-2f) < FD_TOL);
    fd_case f = e;
    f.name = "batch_norm eval frozen";
    f.grad[3] = f.grad[4] = false;
    CHECK(fd_check(&f, 1e-2f) < FD_TOL);
    fd_case in = {.name = "instance_norm", .n_in = 3, .ndim = {4, 1, 1},
                  .shape = {X4(2, 3, 4, 5), X4(3, 1, 1, 1), X4(3, 1, 1, 1)},
                  .grad = {true, true, true}, .present = {true, true, true}, .op = op_inorm};
    CHECK(fd_check(&in, 1e-2f) < FD_TOL);
}

static void test_fd_resize_pad_flip(void)
{
    bool f = false, tr = true;
    fd_case a = img_case("bilinear", 2, 2, 5, 9, op_bilinear, &f);
    CHECK(fd_check(&a, 1e-2f) < FD_TOL);
    fd_case b = img_case("bilinear align_corners", 2, 2, 5, 9, op_bilinear, &tr);
    CHECK(fd_check(&b, 1e-2f) < FD_TOL);
    fd_case c = img_case("nearest", 2, 2, 5, 9, op_nearest, NULL);
    CHECK(fd_check(&c, 1e-2f) < FD_TOL);
    fd_case d = img_case("pad reflect", 2, 2, 4, 5, op_pad, &tr);
    CHECK(fd_check(&d, 1e-2f) < FD_TOL);
    fd_case e = img_case("pad zeros", 2, 2, 4, 5, op_pad, &f);
    CHECK(fd_check(&e, 1e-2f) < FD_TOL);
    fd_case g = img_case("flip_w", 2, 2, 4, 5, op_flip, NULL);
    CHECK(fd_check(&g, 1e-2f) < FD_TOL);
    fd_case r = img_case("roi_align adaptive", 2, 3, 6, 9, op_roi_align, NULL);
    CHECK(fd_check(&r, 1e-2f) < FD_TOL);
    fd_case ra = img_case("roi_align aligned sampling 2", 2, 3, 6, 9, op_roi_align, &tr);
    CHECK(fd_check(&ra, 1e-2f) < FD_TOL);
    fd_case ga = img_case("gather", 2, 1, 4, 9, op_gather, NULL);
    CHECK(fd_check(&ga, 1e-2f) < FD_TOL);
    fd_case sl = {.name = "smooth_l1", .n_in = 2, .ndim = {4, 4}, .shape = {X4(2, 3, 4, 5), X4(2, 3, 4, 5)},
                  .grad = {true, false}, .present = {true, true}, .op = op_smooth_l1};
    CHECK(fd_check(&sl, 1e-3f) < FD_TOL);
}

/* ---- errors ---- */
/* Tensors die at sd_tape_reset and the tape keeps its first failure, so
 * every case starts from a reset tape and fresh inputs. */
typedef struct err_fixture {
    sd_tensor *x, *x3, *w, *w2, *b5, *v3, *v4, *small;
} err_fixture;

static err_fixture fresh(sd_tape *t)
{
    sd_tape_reset(t);
    sd_error_clear();
    err_fixture f = {
        .x = sd_tensor_zeros(t, 4, (int[]){1, 3, 8, 8}),
        .x3 = sd_tensor_zeros(t, 3, (int[]){3, 8, 8}),
        .w = sd_tensor_zeros(t, 4, (int[]){4, 2, 3, 3}),
        .w2 = sd_tensor_zeros(t, 4, (int[]){4, 3, 3, 3}),
        .b5 = sd_tensor_zeros(t, 1, (int[]){5}),
        .v3 = sd_tensor_zeros(t, 1, (int[]){3}),
        .v4 = sd_tensor_zeros(t, 1, (int[]){4}),
        .small = sd_tensor_zeros(t, 4, (int[]){1, 3, 4, 4}),
    };
    return f;
}

static void test_errors_name_op_and_shapes(void)
{
    sd_tape t;
    sd_tape_init(&t, 1);
    err_fixture f = fresh(&t);
    CHECK(sd_conv2d(&t, f.x, f.w, NULL, sd_conv_opts_make(1, 1, 1)) == NULL);
    CHECK_ERR_HAS("conv2d: input [1,3,8,8] and weight [4,2,3,3]");
    CHECK(t.status == SD_ERR_SHAPE);
    /* a NULL input propagates without replacing the first message */
    CHECK(sd_max_pool2d(&t, NULL, sd_pool_opts_make(2, 2, 0, false)) == NULL);
    CHECK_ERR_HAS("conv2d: input [1,3,8,8]");

    f = fresh(&t);
    CHECK(sd_conv2d(&t, f.x, f.w2, f.b5, sd_conv_opts_make(1, 1, 1)) == NULL);
    CHECK_ERR_HAS("conv2d: weight [4,3,3,3] and bias [5]: expected bias [4]");
    f = fresh(&t);
    CHECK(sd_conv2d(&t, f.small, f.w2, NULL, sd_conv_opts_make(1, 0, 3)) == NULL);
    CHECK_ERR_HAS("conv2d: input [1,3,4,4] and weight [4,3,3,3]");
    f = fresh(&t);
    CHECK(sd_conv2d(&t, f.x3, f.w2, NULL, sd_conv_opts_default()) == NULL);
    CHECK_ERR_HAS("conv2d: input [3,8,8]");
    f = fresh(&t);
    CHECK(sd_conv2d(&t, f.x, f.w2, NULL, sd_conv_opts_make(0, 1, 1)) == NULL);
    CHECK_ERR_HAS("conv2d: input [1,3,8,8]: stride 0x0");
    f = fresh(&t);
    CHECK(sd_conv_transpose2d(&t, f.x, f.w, NULL, sd_conv_opts_make(2, 1, 1)) == NULL);
    CHECK_ERR_HAS("conv_transpose2d: input [1,3,8,8] and weight [4,2,3,3]");
    f = fresh(&t);
    CHECK(sd_max_pool2d(&t, f.x, sd_pool_opts_make(3, 2, 2, false)) == NULL);
    CHECK_ERR_HAS("max_pool2d: input [1,3,8,8]");
    f = fresh(&t);
    CHECK(sd_avg_pool2d(&t, f.x3, sd_pool_opts_make(2, 2, 0, false)) == NULL);
    CHECK_ERR_HAS("avg_pool2d: input [3,8,8]");
    f = fresh(&t);
    CHECK(sd_adaptive_avg_pool2d(&t, f.x, 0, 3) == NULL);
    CHECK_ERR_HAS("adaptive_avg_pool2d: input [1,3,8,8] to 0x3");
    f = fresh(&t);
    CHECK(sd_batch_norm(&t, f.x, f.v4, f.v3, f.v3, f.v3, true, 0.1f, 1e-5f) == NULL);
    CHECK_ERR_HAS("batch_norm: input [1,3,8,8] and weight [4]: expected [3]");
    f = fresh(&t);
    CHECK(sd_batch_norm(&t, f.x, f.v3, f.v3, f.v3, f.b5, true, 0.1f, 1e-5f) == NULL);
    CHECK_ERR_HAS("batch_norm: input [1,3,8,8] and running_var [5]: expected [3]");
    f = fresh(&t);
    CHECK(sd_batch_norm(&t, f.x, f.v3, f.v3, NULL, NULL, false, 0.1f, 1e-5f) == NULL);
    CHECK_ERR_HAS("batch_norm: input [1,3,8,8]: eval mode needs running_mean");
    f = fresh(&t);
    CHECK(sd_instance_norm(&t, f.x, f.v4, NULL, 1e-5f) == NULL);
    CHECK_ERR_HAS("instance_norm: input [1,3,8,8] and weight [4]: expected [3]");
    f = fresh(&t);
    CHECK(sd_resize_bilinear(&t, f.x3, 4, 4, false) == NULL);
    CHECK_ERR_HAS("resize_bilinear: input [3,8,8]");
    f = fresh(&t);
    CHECK(sd_resize_nearest(&t, f.x, 4, -1) == NULL);
    CHECK_ERR_HAS("resize_nearest: input [1,3,8,8] to 4x-1");
    f = fresh(&t);
    CHECK(sd_pad2d(&t, f.x, 8, 0, 0, 0, true) == NULL);
    CHECK_ERR_HAS("pad2d: input [1,3,8,8]: reflection padding 8,0,0,0");
    f = fresh(&t);
    CHECK(sd_flip_w(&t, f.x3) == NULL);
    CHECK_ERR_HAS("flip_w: input [3,8,8]");
    sd_tape_free(&t);
}

static void test_backend_table_complete(void)
{
    const sd_backend *b = sd_backend_for(SD_DEVICE_CPU);
    CHECK(b != NULL);
    const char *miss = b ? sd_backend_missing(b) : "table";
    CHECK_MSG(miss == NULL, "missing kernel %s", miss);
    /* CUDA: a table exactly when built with it and a device is present */
    CHECK((sd_backend_for(SD_DEVICE_CUDA) == NULL) == (sd_device_unavailable(SD_DEVICE_CUDA)[0] != 0));
}

/* Same inputs, same thread count: bit-identical outputs and gradients. */
static void conv_run(int threads, float *out, float *gx, float *gw)
{
    sd_set_threads(threads);
    sd_tape t;
    sd_tape_init(&t, 5);
    sd_rng g;
    sd_rng_seed(&g, 42);
    sd_tensor *x = sd_tensor_new(&t, 4, (int[]){2, 16, 37, 29});
    sd_tensor *w = sd_tensor_new(&t, 4, (int[]){16, 16, 3, 3});
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = sd_rng_normal(&g);
    for (size_t i = 0; i < w->numel; i++)
        F32(w->data)[i] = sd_rng_normal(&g);
    x->requires_grad = w->requires_grad = true;
    sd_tensor *y = sd_conv2d(&t, x, w, NULL, sd_conv_opts_make(1, 2, 2));
    sd_tensor *z = sd_batch_norm(&t, y, NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f);
    float *r = malloc(z->numel * sizeof(float));
    for (size_t i = 0; i < z->numel; i++)
        r[i] = sd_rng_normal(&g);
    sd_tensor *l = sd_tensor_zeros(&t, 1, (int[]){1});
    sd_node *n = sd_tape_record(&t, "test_dot", dot_backward, l, 1, &z);
    n->saved = r;
    CHECK_OK(sd_backward1(&t, l));
    memcpy(out, z->data, z->numel * sizeof(float));
    memcpy(gx, x->grad, x->numel * sizeof(float));
    memcpy(gw, w->grad, w->numel * sizeof(float));
    free(r);
    sd_tape_free(&t);
}

static void test_deterministic(void)
{
    size_t ny = 2 * 16 * 37 * 29, nw = 16 * 16 * 9;
    float *a = malloc(3 * ny * sizeof(float) + nw * sizeof(float)), *b = malloc(3 * ny * sizeof(float) + nw * sizeof(float));
    conv_run(2, a, a + ny, a + 2 * ny);
    conv_run(2, b, b + ny, b + 2 * ny);
    CHECK(memcmp(a, b, (2 * ny + nw) * sizeof(float)) == 0);
    free(a);
    free(b);
    sd_set_threads(0);
}

int main(void)
{
    RUN(test_fd_checker_can_fail);
    RUN(test_fd_conv2d);
    RUN(test_fd_conv_transpose2d);
    RUN(test_fd_pool);
    RUN(test_fd_norm);
    RUN(test_fd_resize_pad_flip);
    RUN(test_errors_name_op_and_shapes);
    RUN(test_backend_table_complete);
    RUN(test_deterministic);
    TESTS_DONE();
}
