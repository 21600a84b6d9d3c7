/* Finite-difference checks of the element-wise ops' backwards (element-wise, shape, softmax
 * and loss ops), their error messages, and the tape behaviours they rest on:
 * gradient reversal, detach, no_grad, several losses, repeated backward.
 * PyTorch parity of the same ops is in tests/py/test_ops_elem.py. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/ops.h"

#define MAX_IN 6

/* An op under test: builds its output from the wrapped inputs. */
typedef sd_tensor *(*op_fn)(sd_tape *t, sd_tensor **in, const void *ctx);

typedef struct case_def {
    const char *name;
    op_fn fn;
    const void *ctx;
    int n_in;
    int ndim;
    int shapes[MAX_IN][4];
    bool no_grad_in[MAX_IN]; /* inputs that take no gradient (targets) */
    float lo, hi;            /* range of the random inputs */
} case_def;

static float *rand_buf(sd_rng *r, size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * sd_rng_uniform(r);
    return p;
}

static size_t numel_of(const int *s, int ndim)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)s[d];
    return n;
}

/* Runs the op on the inputs; returns its output (on the tape). */
static sd_tensor *run_op(sd_tape *t, const case_def *c, float **data, sd_tensor **in)
{
    sd_tape_reset(t);
    sd_rng_seed(&t->rng, 1234); /* the same dropout mask in every evaluation */
    for (int i = 0; i < c->n_in; i++) {
        in[i] = sd_tensor_wrap(t, c->ndim, c->shapes[i], data[i]);
        in[i]->requires_grad = !c->no_grad_in[i];
    }
    return c->fn(t, in, c->ctx);
}

static double weighted_sum(const sd_tensor *y, const float *r)
{
    double s = 0;
    for (size_t i = 0; i < y->numel; i++)
        s += (double)r[i] * F32(y->data)[i];
    return s;
}

/* Compares d/de L(x + e*d) by central differences with the analytic
 * directional derivative sum_i <grad_i, d_i>, where L = sum(r * op(x)) for a
 * fixed random r, all inputs perturbed at once (KANN's check). Returns the
 * relative error. */
static double fd_check(const case_def *c, double eps, bool verbose)
{
    sd_rng rng;
    sd_rng_seed(&rng, 42);
    float *data[MAX_IN], *dir[MAX_IN];
    for (int i = 0; i < c->n_in; i++) {
        size_t n = numel_of(c->shapes[i], c->ndim);
        data[i] = rand_buf(&rng, n, c->lo, c->hi);
        dir[i] = rand_buf(&rng, n, -1.0f, 1.0f);
    }
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_tensor *in[MAX_IN];
    sd_tensor *y = run_op(&t, c, data, in);
    double rel = INFINITY;
    if (!y) {
        fprintf(stderr, "  %s: forward failed: %s\n", c->name, sd_errmsg());
        goto done;
    }
    float *r = rand_buf(&rng, y->numel, -1.0f, 1.0f);
    sd_tensor *rt = sd_tensor_wrap(&t, y->ndim, y->shape, r);
    sd_tensor *loss = sd_sum(&t, sd_mul(&t, y, rt));
    if (!loss || sd_backward1(&t, loss) != SD_OK) {
        fprintf(stderr, "  %s: backward failed: %s\n", c->name, sd_errmsg());
        free(r);
        goto done;
    }
    double an = 0;
    for (int i = 0; i < c->n_in; i++) {
        if (c->no_grad_in[i])
            continue;
        if (!in[i]->grad) {
            fprintf(stderr, "  %s: input %d got no gradient\n", c->name, i);
            an = NAN;
            break;
        }
        for (size_t k = 0; k < in[i]->numel; k++)
            an += (double)F32(in[i]->grad)[k] * dir[i][k];
    }
    double lp = 0, lm = 0;
    for (int s = 0; s < 2; s++) {
        double e = s ? -eps : eps;
        for (int i = 0; i < c->n_in; i++)
            if (!c->no_grad_in[i])
                for (size_t k = 0; k < numel_of(c->shapes[i], c->ndim); k++)
                    data[i][k] += (float)(e * dir[i][k]);
        y = run_op(&t, c, data, in);
        double l = y ? weighted_sum(y, r) : NAN;
        if (s)
            lm = l;
        else
            lp = l;
        for (int i = 0; i < c->n_in; i++)
            if (!c->no_grad_in[i])
                for (size_t k = 0; k < numel_of(c->shapes[i], c->ndim); k++)
                    data[i][k] -= (float)(e * dir[i][k]);
    }
    double fd = (lp - lm) / (2 * eps);
    rel = fabs(fd - an) / fmax(fabs(fd), 1e-2);
    if (verbose && !(rel <= 2e-2))
        fprintf(stderr, "  %s: finite difference %.6g, analytic %.6g (rel %.3g)\n", c->name, fd, an, rel);
    free(r);
done:
    sd_tape_free(&t);
    for (int i = 0; i < c->n_in; i++) {
        free(data[i]);
        free(dir[i]);
    }
    return rel;
}

/* ---- the ops, adapted to op_fn ---- */

static sd_tensor *f_relu(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_relu(t, x[0]); }
static sd_tensor *f_leaky(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_leaky_relu(t, x[0], 0.2f); }
static sd_tensor *f_tanh(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_tanh(t, x[0]); }
static sd_tensor *f_sigmoid(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_sigmoid(t, x[0]); }
static sd_tensor *f_dropout(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_dropout(t, x[0], 0.3f); }
static sd_tensor *f_add(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_add(t, x[0], x[1]); }
static sd_tensor *f_sub(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_sub(t, x[0], x[1]); }
static sd_tensor *f_mul(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_mul(t, x[0], x[1]); }
static sd_tensor *f_scale(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_scale(t, x[0], -1.7f); }
static sd_tensor *f_add_scalar(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_add_scalar(t, x[0], 0.4f); }
static sd_tensor *f_pow(sd_tape *t, sd_tensor **x, const void *c) { return sd_pow_scalar(t, x[0], *(const float *)c); }
static sd_tensor *f_concat(sd_tape *t, sd_tensor **x, const void *c)
{
    const int *k = c; /* {n, dim} */
    return sd_concat(t, k[0], x, k[1]);
}
static sd_tensor *f_slice(sd_tape *t, sd_tensor **x, const void *c)
{
    const int *k = c; /* {dim, start, end} */
    return sd_slice(t, x[0], k[0], k[1], k[2]);
}
static sd_tensor *f_reshape(sd_tape *t, sd_tensor **x, const void *c)
{
    (void)c;
    return sd_reshape(t, x[0], 3, (int[]){2, -1, 5});
}
static sd_tensor *f_softmax(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_softmax(t, x[0]); }
static sd_tensor *f_log_softmax(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_log_softmax(t, x[0]); }
static sd_tensor *f_sum(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_sum(t, x[0]); }
static sd_tensor *f_mean(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_mean(t, x[0]); }

typedef struct ce_ctx {
    const uint8_t *labels;
    const float *cw, *pw;
} ce_ctx;
static sd_tensor *f_ce(sd_tape *t, sd_tensor **x, const void *c)
{
    const ce_ctx *k = c;
    return sd_cross_entropy(t, x[0], k->labels, k->cw, 255);
}
static sd_tensor *f_ce_pw(sd_tape *t, sd_tensor **x, const void *c)
{
    const ce_ctx *k = c;
    return sd_cross_entropy_pixel_weighted(t, x[0], k->labels, k->pw, 255);
}
static sd_tensor *f_bce_const(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_bce_logits_const(t, x[0], 1.0f); }
static sd_tensor *f_bce(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_bce_logits(t, x[0], x[1]); }
static sd_tensor *f_mse_const(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_mse_const(t, x[0], 0.5f); }
static sd_tensor *f_mse(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_mse(t, x[0], x[1]); }
static sd_tensor *f_entropy(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_entropy_map(t, x[0]); }
static sd_tensor *f_selfinfo(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_self_information(t, x[0]); }
static sd_tensor *f_l2(sd_tape *t, sd_tensor **x, const void *c) { (void)c; return sd_l2_feature_distance(t, x[0], x[1]); }

#define S4(a, b, c, d) {a, b, c, d}

static void check_case(case_def c)
{
    if (c.lo == 0 && c.hi == 0) {
        c.lo = -2.0f;
        c.hi = 2.0f;
    }
    if (!c.ndim)
        c.ndim = 4;
    double rel = fd_check(&c, 1e-3, true);
    CHECK_MSG(rel <= 2e-2, "%s: relative error %.3g", c.name, rel);
}

static void test_fd_elementwise(void)
{
    check_case((case_def){"relu", f_relu, NULL, 1, 4, {S4(2, 3, 5, 7)}, {0}, 0, 0});
    check_case((case_def){"leaky_relu", f_leaky, NULL, 1, 4, {S4(2, 3, 5, 7)}, {0}, 0, 0});
    check_case((case_def){"tanh", f_tanh, NULL, 1, 4, {S4(1, 4, 3, 3)}, {0}, 0, 0});
    check_case((case_def){"sigmoid", f_sigmoid, NULL, 1, 4, {S4(3, 2, 5, 1)}, {0}, 0, 0});
    check_case((case_def){"dropout", f_dropout, NULL, 1, 4, {S4(2, 3, 9, 9)}, {0}, 0, 0});
    check_case((case_def){"scale", f_scale, NULL, 1, 4, {S4(2, 3, 2, 2)}, {0}, 0, 0});
    check_case((case_def){"add_scalar", f_add_scalar, NULL, 1, 4, {S4(2, 3, 2, 2)}, {0}, 0, 0});
    /* positive inputs, as the op's domain; real, integer and negative exponents */
    static const float pw[] = {2.5f, 1.5f, 2.0f, 0.5f, -0.7f};
    for (int i = 0; i < 5; i++)
        check_case((case_def){"pow_scalar", f_pow, &pw[i], 1, 4, {S4(2, 3, 2, 3)}, {0}, 0.2f, 2.0f});
}

static void test_fd_broadcast(void)
{
    int shapes_b[][4] = {{2, 3, 4, 5}, {1, 3, 1, 1}, {2, 1, 4, 5}, {1, 1, 1, 1}, {2, 3, 1, 5}, {1, 3, 4, 1}};
    op_fn fns[] = {f_add, f_sub, f_mul};
    const char *names[] = {"add", "sub", "mul"};
    for (int f = 0; f < 3; f++)
        for (size_t s = 0; s < sizeof shapes_b / sizeof shapes_b[0]; s++) {
            case_def c = {names[f], fns[f], NULL, 2, 4, {S4(2, 3, 4, 5)}, {0}, 0, 0};
            memcpy(c.shapes[1], shapes_b[s], sizeof c.shapes[1]);
            check_case(c);
        }
}

static void test_fd_shape(void)
{
    static const int cat_c[] = {3, 1}, cat_h[] = {2, 2}, cat_w[] = {2, 3}, cat_n[] = {2, 0}, cat5[] = {5, 1};
    check_case((case_def){"concat C", f_concat, cat_c, 3, 4, {S4(2, 1, 3, 4), S4(2, 3, 3, 4), S4(2, 2, 3, 4)}, {0}, 0, 0});
    check_case((case_def){"concat H", f_concat, cat_h, 2, 4, {S4(2, 2, 3, 4), S4(2, 2, 1, 4)}, {0}, 0, 0});
    check_case((case_def){"concat W", f_concat, cat_w, 2, 4, {S4(1, 2, 3, 4), S4(1, 2, 3, 5)}, {0}, 0, 0});
    check_case((case_def){"concat N", f_concat, cat_n, 2, 4, {S4(1, 2, 3, 4), S4(2, 2, 3, 4)}, {0}, 0, 0});
    check_case((case_def){"concat 5 inputs", f_concat, cat5, 5, 4,
                          {S4(1, 2, 3, 3), S4(1, 1, 3, 3), S4(1, 3, 3, 3), S4(1, 2, 3, 3), S4(1, 1, 3, 3)}, {0}, 0, 0});
    static const int sl_c[] = {1, 1, 3}, sl_h[] = {2, 2, 5}, sl_w[] = {3, 0, 1};
    check_case((case_def){"slice C", f_slice, sl_c, 1, 4, {S4(2, 4, 3, 3)}, {0}, 0, 0});
    check_case((case_def){"slice H", f_slice, sl_h, 1, 4, {S4(2, 2, 7, 3)}, {0}, 0, 0});
    check_case((case_def){"slice W", f_slice, sl_w, 1, 4, {S4(2, 2, 3, 3)}, {0}, 0, 0});
    check_case((case_def){"reshape", f_reshape, NULL, 1, 4, {S4(2, 3, 5, 1)}, {0}, 0, 0});
}

static void test_fd_softmax_reduce(void)
{
    check_case((case_def){"softmax", f_softmax, NULL, 1, 4, {S4(2, 5, 3, 7)}, {0}, -4, 4});
    check_case((case_def){"log_softmax", f_log_softmax, NULL, 1, 4, {S4(2, 5, 3, 7)}, {0}, -4, 4});
    check_case((case_def){"softmax 2-D", f_softmax, NULL, 1, 2, {{3, 6}}, {0}, -4, 4});
    check_case((case_def){"sum", f_sum, NULL, 1, 4, {S4(2, 3, 5, 7)}, {0}, 0, 0});
    check_case((case_def){"mean", f_mean, NULL, 1, 4, {S4(2, 3, 5, 7)}, {0}, 0, 0});
}

static void test_fd_losses(void)
{
    enum { N = 2, C = 5, H = 3, W = 7 };
    uint8_t labels[N * H * W];
    float cw[C] = {0.5f, 2.0f, 1.0f, 0.1f, 3.0f}, pw[N * H * W];
    sd_rng r;
    sd_rng_seed(&r, 5);
    for (int i = 0; i < N * H * W; i++) {
        labels[i] = i % 6 == 0 ? 255 : (uint8_t)sd_rng_int(&r, C);
        pw[i] = sd_rng_uniform(&r);
    }
    ce_ctx plain = {labels, NULL, NULL}, weighted = {labels, cw, NULL}, pix = {labels, NULL, pw};
    check_case((case_def){"cross_entropy", f_ce, &plain, 1, 4, {S4(N, C, H, W)}, {0}, -3, 3});
    check_case((case_def){"cross_entropy weighted", f_ce, &weighted, 1, 4, {S4(N, C, H, W)}, {0}, -3, 3});
    check_case((case_def){"cross_entropy pixel weighted", f_ce_pw, &pix, 1, 4, {S4(N, C, H, W)}, {0}, -3, 3});
    check_case((case_def){"bce_logits_const", f_bce_const, NULL, 1, 4, {S4(2, 1, 4, 5)}, {0}, -5, 5});
    check_case((case_def){"bce_logits", f_bce, NULL, 2, 4, {S4(2, 1, 4, 5), S4(2, 1, 4, 5)}, {false, true}, 0, 1});
    check_case((case_def){"mse_const", f_mse_const, NULL, 1, 4, {S4(2, 1, 4, 5)}, {0}, 0, 0});
    check_case((case_def){"mse", f_mse, NULL, 2, 4, {S4(2, 3, 4, 5), S4(2, 3, 4, 5)}, {0}, 0, 0});
    check_case((case_def){"entropy_map", f_entropy, NULL, 1, 4, {S4(2, 5, 3, 4)}, {0}, -3, 3});
    check_case((case_def){"self_information", f_selfinfo, NULL, 1, 4, {S4(2, 5, 3, 4)}, {0}, -3, 3});
    check_case((case_def){"l2_feature_distance", f_l2, NULL, 2, 4, {S4(2, 6, 3, 4), S4(2, 6, 3, 4)}, {0}, 0, 0});
}

/* A broken backward must fail the check: scale's gradient with the wrong
 * factor is caught (the check can fail). */
static sd_tensor *f_wrong(sd_tape *t, sd_tensor **x, const void *c)
{
    (void)c;
    /* forward 2x, but the recorded graph differentiates as 3x: the data is
     * overwritten after the fact */
    sd_tensor *y = sd_scale(t, x[0], 3.0f);
    if (y)
        for (size_t i = 0; i < y->numel; i++)
            F32(y->data)[i] = 2.0f * F32(x[0]->data)[i];
    return y;
}

static void test_fd_can_fail(void)
{
    case_def c = {"wrong", f_wrong, NULL, 1, 4, {S4(1, 2, 3, 3)}, {0}, -1, 1};
    double rel = fd_check(&c, 1e-3, false);
    CHECK_MSG(rel > 0.3, "a wrong gradient passed the check (rel %.3g)", rel);
}

/* ---- values checked by hand ---- */

static void test_values(void)
{
    sd_tape t;
    sd_tape_init(&t, 3);
    /* log_softmax of (0, ln 3) = (-ln 4, ln 3 - ln 4) */
    float x[2] = {0.0f, logf(3.0f)};
    sd_tensor *xt = sd_tensor_wrap(&t, 2, (int[]){1, 2}, x);
    sd_tensor *ls = sd_log_softmax(&t, xt);
    CHECK_NEAR(F32(ls->data)[0], -logf(4.0f), 1e-6);
    CHECK_NEAR(F32(ls->data)[1], logf(3.0f) - logf(4.0f), 1e-6);
    /* cross-entropy of [1,2,1,2] logits, labels {1, 255}: only pixel 0 counts */
    float lg[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint8_t lab[2] = {1, 255};
    sd_tensor *l = sd_cross_entropy(&t, sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, lg), lab, NULL, 255);
    CHECK_NEAR(F32(l->data)[0], logf(2.0f), 1e-6);
    /* class weights: labels {0, 1}, logits giving nll ln2 each: weighted mean still ln2 */
    uint8_t lab2[2] = {0, 1};
    float cw[2] = {3.0f, 1.0f};
    l = sd_cross_entropy(&t, sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, lg), lab2, cw, 255);
    CHECK_NEAR(F32(l->data)[0], logf(2.0f), 1e-6);
    /* entropy of a uniform distribution is 1 after normalisation by log C */
    float u[3] = {0.5f, 0.5f, 0.5f};
    sd_tensor *e = sd_entropy_map(&t, sd_tensor_wrap(&t, 4, (int[]){1, 3, 1, 1}, u));
    CHECK_NEAR(F32(e->data)[0], 1.0f, 1e-6);
    CHECK(e->ndim == 4 && e->shape[1] == 1);
    /* l2 distance of (3,4) vs (0,0) at each of 2 positions = 5 */
    float a[4] = {3, 3, 4, 4}, z[4] = {0};
    sd_tensor *d = sd_l2_feature_distance(&t, sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, a),
                                          sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, z));
    CHECK_NEAR(F32(d->data)[0], 5.0f, 1e-6);
    /* bce of logit 0 is ln 2 whatever the target */
    float zero1[1] = {0};
    CHECK_NEAR(F32(sd_bce_logits_const(&t, sd_tensor_wrap(&t, 1, (int[]){1}, zero1), 0.3f)->data)[0], logf(2.0f), 1e-6);
    sd_tape_free(&t);
}

/* No valid pixel: loss 0 and gradient 0, never NaN. l2 at a == b: gradient 0. */
static void test_degenerate(void)
{
    sd_tape t;
    sd_tape_init(&t, 3);
    float lg[6] = {1, 2, 3, 4, 5, 6};
    uint8_t lab[3] = {255, 255, 255};
    sd_tensor *x = sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 3}, lg);
    x->requires_grad = true;
    sd_tensor *l = sd_cross_entropy(&t, x, lab, NULL, 255);
    CHECK(l && F32(l->data)[0] == 0.0f);
    CHECK_OK(sd_backward1(&t, l));
    for (int i = 0; i < 6; i++)
        CHECK(x->grad && F32(x->grad)[i] == 0.0f);
    /* all class weights of present labels zero */
    uint8_t lab0[3] = {0, 0, 255};
    float cw[2] = {0.0f, 1.0f};
    sd_tape_reset(&t);
    x = sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 3}, lg);
    x->requires_grad = true;
    l = sd_cross_entropy(&t, x, lab0, cw, 255);
    CHECK(l && F32(l->data)[0] == 0.0f && !isnan(F32(l->data)[0]));
    CHECK_OK(sd_backward1(&t, l));
    for (int i = 0; i < 6; i++)
        CHECK(x->grad && F32(x->grad)[i] == 0.0f);

    sd_tape_reset(&t);
    float a[4] = {1, 2, 3, 4};
    sd_tensor *ta = sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, a), *tb = sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, a);
    ta->requires_grad = tb->requires_grad = true;
    l = sd_l2_feature_distance(&t, ta, tb);
    CHECK(l && F32(l->data)[0] == 0.0f);
    CHECK_OK(sd_backward1(&t, l));
    for (int i = 0; i < 4; i++)
        CHECK(F32(ta->grad)[i] == 0.0f && F32(tb->grad)[i] == 0.0f && !isnan(F32(ta->grad)[i]));
    /* extreme logits stay finite */
    float big[4] = {1e4f, -1e4f, -1e4f, 1e4f};
    sd_tape_reset(&t);
    sd_tensor *bt = sd_tensor_wrap(&t, 4, (int[]){1, 2, 1, 2}, big);
    bt->requires_grad = true;
    sd_tensor *e = sd_entropy_map(&t, bt);
    CHECK(e && isfinite(F32(e->data)[0]) && isfinite(F32(e->data)[1]));
    sd_tensor *b = sd_bce_logits_const(&t, bt, 0.0f);
    CHECK(b && isfinite(F32(b->data)[0]));
    CHECK_NEAR(F32(b->data)[0], 0.5e4f, 1e-4);
    sd_tensor *sm = sd_log_softmax(&t, bt);
    CHECK(sm && isfinite(F32(sm->data)[1]) && F32(sm->data)[0] == 0.0f);
    CHECK_OK(sd_backward1(&t, sd_sum(&t, sd_add(&t, sd_sum(&t, e), b))));
    for (int i = 0; i < 4; i++)
        CHECK(isfinite(F32(bt->grad)[i]));
    sd_tape_free(&t);
}

static void test_dropout(void)
{
    sd_tape t;
    sd_tape_init(&t, 11);
    enum { N = 20000 };
    float *ones = malloc(N * sizeof *ones);
    for (int i = 0; i < N; i++)
        ones[i] = 1.0f;
    sd_tensor *x = sd_tensor_wrap(&t, 1, (int[]){N}, ones);
    sd_tensor *y = sd_dropout(&t, x, 0.25f);
    int zeros = 0;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        zeros += F32(y->data)[i] == 0.0f;
        CHECK(F32(y->data)[i] == 0.0f || fabsf(F32(y->data)[i] - 1.0f / 0.75f) < 1e-6f);
        sum += F32(y->data)[i];
    }
    CHECK_MSG(fabs(zeros / (double)N - 0.25) < 0.02, "dropped fraction %.3f", zeros / (double)N);
    CHECK_NEAR(sum / N, 1.0, 0.03);
    /* same seed, same mask; a second call draws a new mask */
    sd_tape t2;
    sd_tape_init(&t2, 11);
    sd_tensor *y2 = sd_dropout(&t2, sd_tensor_wrap(&t2, 1, (int[]){N}, ones), 0.25f);
    CHECK(memcmp(y->data, y2->data, N * sizeof(float)) == 0);
    sd_tensor *y3 = sd_dropout(&t2, sd_tensor_wrap(&t2, 1, (int[]){N}, ones), 0.25f);
    CHECK(memcmp(y->data, y3->data, N * sizeof(float)) != 0);
    /* evaluation mode and p = 0: identity */
    t.training = false;
    CHECK(sd_dropout(&t, x, 0.5f) == x);
    t.training = true;
    CHECK(sd_dropout(&t, x, 0.0f) == x);
    /* p = 1 drops everything */
    sd_tensor *y1 = sd_dropout(&t, x, 1.0f);
    CHECK(y1 && F32(y1->data)[0] == 0.0f && F32(y1->data)[N - 1] == 0.0f);
    CHECK(sd_dropout(&t, x, 1.5f) == NULL);
    CHECK_ERR_HAS("dropout: p = 1.5");
    sd_tape_free(&t);
    sd_tape_free(&t2);
    free(ones);
}

/* ---- error paths ---- */

static void test_errors(void)
{
    sd_tape t;
    sd_tape_init(&t, 1);
    float buf[64] = {0};
    uint8_t lab[64] = {0};
#define W4(a, b, c, d) sd_tensor_wrap(&t, 4, (int[]){a, b, c, d}, buf)
    CHECK(sd_add(&t, W4(2, 3, 4, 4), W4(2, 2, 1, 1)) == NULL);
    CHECK_ERR_HAS("add: [2,3,4,4] and [2,2,1,1]");
    sd_tape_reset(&t);
    CHECK(sd_mul(&t, W4(1, 3, 1, 1), W4(2, 3, 1, 1)) == NULL);
    CHECK_ERR_HAS("mul: [1,3,1,1] and [2,3,1,1]");
    sd_tape_reset(&t);
    CHECK(sd_sub(&t, W4(1, 3, 1, 1), sd_tensor_wrap(&t, 2, (int[]){1, 3}, buf)) == NULL);
    CHECK_ERR_HAS("sub: [1,3,1,1] and [1,3]");
    sd_tape_reset(&t);
    CHECK(sd_concat(&t, 2, (sd_tensor *[]){W4(1, 2, 3, 3), W4(1, 2, 4, 3)}, 1) == NULL);
    CHECK_ERR_HAS("concat: input 1 [1,2,4,3] does not match input 0 [1,2,3,3]");
    sd_tape_reset(&t);
    CHECK(sd_concat(&t, 1, (sd_tensor *[]){W4(1, 2, 3, 3)}, 4) == NULL);
    CHECK_ERR_HAS("concat: dim 4");
    sd_tape_reset(&t);
    CHECK(sd_slice(&t, W4(1, 4, 3, 3), 1, 2, 5) == NULL);
    CHECK_ERR_HAS("slice: [2, 5) along dim 1 of [1,4,3,3]");
    sd_tape_reset(&t);
    CHECK(sd_reshape(&t, W4(1, 4, 3, 3), 2, (int[]){5, 7}) == NULL);
    CHECK_ERR_HAS("reshape: [1,4,3,3] (36 elements) cannot become [5,7]");
    sd_tape_reset(&t);
    CHECK(sd_softmax(&t, sd_tensor_wrap(&t, 1, (int[]){5}, buf)) == NULL);
    CHECK_ERR_HAS("softmax: [5]");
    sd_tape_reset(&t);
    lab[3] = 7;
    CHECK(sd_cross_entropy(&t, W4(1, 5, 2, 2), lab, NULL, 255) == NULL);
    CHECK_ERR_HAS("cross_entropy: label 7 at pixel 3 of logits [1,5,2,2]");
    lab[3] = 0;
    sd_tape_reset(&t);
    CHECK(sd_cross_entropy(&t, W4(1, 5, 2, 2), NULL, NULL, 255) == NULL);
    CHECK_ERR_HAS("cross_entropy: labels are NULL");
    sd_tape_reset(&t);
    CHECK(sd_bce_logits(&t, W4(1, 1, 2, 2), W4(1, 1, 2, 3)) == NULL);
    CHECK_ERR_HAS("bce_logits: input [1,1,2,2] and target [1,1,2,3] differ");
    sd_tape_reset(&t);
    CHECK(sd_mse(&t, W4(1, 1, 2, 2), W4(1, 2, 2, 2)) == NULL);
    CHECK_ERR_HAS("mse: [1,1,2,2] and [1,2,2,2] differ");
    sd_tape_reset(&t);
    CHECK(sd_entropy_map(&t, W4(1, 1, 2, 2)) == NULL);
    CHECK_ERR_HAS("entropy_map: logits [1,1,2,2]");
    sd_tape_reset(&t);
    CHECK(sd_l2_feature_distance(&t, W4(1, 3, 2, 2), W4(1, 3, 2, 1)) == NULL);
    CHECK_ERR_HAS("l2_feature_distance: [1,3,2,2] and [1,3,2,1]");
    /* a NULL input keeps the first message */
    sd_tape_reset(&t);
    sd_tensor *bad = sd_add(&t, W4(2, 3, 4, 4), W4(2, 2, 1, 1));
    CHECK(sd_relu(&t, sd_sigmoid(&t, bad)) == NULL);
    CHECK_ERR_HAS("add: [2,3,4,4] and [2,2,1,1]");
    CHECK(sd_backward1(&t, sd_relu(&t, bad)) != SD_OK);
#undef W4
    sd_tape_free(&t);
}

/* ---- tape behaviours ---- */

static sd_tensor *leaf(sd_tape *t, int n, float *data)
{
    sd_tensor *x = sd_tensor_wrap(t, 1, (int[]){n}, data);
    x->requires_grad = true;
    return x;
}

static void test_grad_reverse_and_detach(void)
{
    sd_tape t;
    sd_tape_init(&t, 1);
    float xd[3] = {1, -2, 3};
    sd_tensor *x = leaf(&t, 3, xd);
    sd_tensor *y = sd_grad_reverse(&t, x, 0.25f);
    CHECK(y && F32(y->data)[1] == -2.0f);
    /* loss = sum(3*y): d/dx = -0.25 * 3 */
    CHECK_OK(sd_backward1(&t, sd_sum(&t, sd_scale(&t, y, 3.0f))));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(F32(x->grad)[i], -0.75f, 1e-7);

    sd_tape_reset(&t);
    x = leaf(&t, 3, xd);
    sd_tensor *d = sd_detach(&t, x);
    CHECK(d && !d->requires_grad && F32(d->data)[2] == 3.0f);
    /* loss = sum(x * detach(x)): gradient only through the first factor */
    CHECK_OK(sd_backward1(&t, sd_sum(&t, sd_mul(&t, x, d))));
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(F32(x->grad)[i], xd[i], 1e-7);
    sd_tape_free(&t);
}

static void test_no_grad(void)
{
    sd_tape t;
    sd_tape_init(&t, 1);
    float xd[3] = {1, 2, 3};
    sd_tensor *x = leaf(&t, 3, xd);
    sd_tape_no_grad_begin(&t);
    sd_tensor *y = sd_sum(&t, sd_mul(&t, sd_relu(&t, x), x));
    sd_tape_no_grad_end(&t);
    CHECK(y && F32(y->data)[0] == 14.0f);
    CHECK(t.n_nodes == 0);
    CHECK(!y->requires_grad);
    CHECK_OK(sd_backward1(&t, y)); /* nothing to do, not an error */
    CHECK(x->grad == NULL);
    sd_tape_free(&t);
}

static void test_two_losses_and_repeat(void)
{
    sd_tape t;
    sd_tape_init(&t, 1);
    float xd[2] = {1, 2};
    /* a parameter-like leaf with its own grad buffer that persists */
    float grad[2] = {0, 0};
    sd_tensor *x = leaf(&t, 2, xd);
    x->grad = grad;
    sd_tensor *h = sd_scale(&t, x, 2.0f);
    sd_tensor *l1 = sd_sum(&t, h);                    /* d/dx = 2 */
    sd_tensor *l2 = sd_sum(&t, sd_mul(&t, h, h));     /* d/dx = 8x */
    CHECK_OK(sd_backward(&t, 2, (sd_tensor *[]){l1, l2}, (float[]){1.0f, 0.5f}));
    CHECK_NEAR(grad[0], 2 + 0.5 * 8 * 1, 1e-6);
    CHECK_NEAR(grad[1], 2 + 0.5 * 8 * 2, 1e-6);
    /* a second backward on the same tape starts from clean activation
     * grads; the leaf keeps accumulating */
    CHECK_OK(sd_backward1(&t, l1));
    CHECK_NEAR(grad[0], 6 + 2, 1e-6);
    CHECK_NEAR(grad[1], 10 + 2, 1e-6);
    sd_tape_free(&t);
}

int main(void)
{
    RUN(test_fd_elementwise);
    RUN(test_fd_broadcast);
    RUN(test_fd_shape);
    RUN(test_fd_softmax_reduce);
    RUN(test_fd_losses);
    RUN(test_fd_can_fail);
    RUN(test_values);
    RUN(test_degenerate);
    RUN(test_dropout);
    RUN(test_errors);
    RUN(test_grad_reverse_and_detach);
    RUN(test_no_grad);
    RUN(test_two_losses_and_repeat);
    TESTS_DONE();
}
