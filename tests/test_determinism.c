/* Determinism: a few training steps of a small conv net (conv-BN-ReLU,
 * dropout, dilated conv, bilinear upsampling, cross-entropy + entropy, SGD
 * with momentum) run twice from the same seed with the same thread count
 * give bit-identical weights; a different seed gives different ones (the
 * check can fail). Also: the reductions give identical bits for 1 and 2
 * threads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/ops.h"
#include "segda/optim.h"

enum { N = 2, CIN = 3, H = 21, W = 17, K = 6, F = 8 };

typedef struct net {
    sd_params p;
    sd_tensor *c1, *g1, *b1, *m1, *v1, *c2, *c2b;
} net;

static sd_status net_init(net *m, uint64_t seed)
{
    sd_params_init(&m->p);
    int g = sd_params_add_group(&m->p, "net", 1.0f, 1.0f, false);
    int bu = sd_params_add_group(&m->p, "buffers", 0.0f, 0.0f, true);
    m->c1 = sd_params_declare(&m->p, g, "conv1.weight", 4, (int[]){F, CIN, 3, 3});
    m->g1 = sd_params_declare(&m->p, g, "bn1.weight", 1, (int[]){F});
    m->b1 = sd_params_declare(&m->p, g, "bn1.bias", 1, (int[]){F});
    m->c2 = sd_params_declare(&m->p, g, "cls.weight", 4, (int[]){K, F, 3, 3});
    m->c2b = sd_params_declare(&m->p, g, "cls.bias", 1, (int[]){K});
    m->m1 = sd_params_declare(&m->p, bu, "bn1.running_mean", 1, (int[]){F});
    m->v1 = sd_params_declare(&m->p, bu, "bn1.running_var", 1, (int[]){F});
    if (!m->v1 || sd_params_alloc(&m->p) != SD_OK)
        return SD_ERR_ARG;
    sd_rng r;
    sd_rng_seed(&r, seed);
    sd_param_group *gr = &m->p.groups[g];
    for (size_t i = 0; i < gr->numel; i++)
        F32(gr->data)[i] = 0.3f * sd_rng_normal(&r);
    for (int i = 0; i < F; i++)
        F32(m->v1->data)[i] = 1.0f;
    return SD_OK;
}

/* Runs `steps` steps; returns a malloc'd copy of every parameter and buffer. */
static float *train(uint64_t seed, int steps, size_t *count)
{
    net m;
    if (net_init(&m, 77) != SD_OK)
        return NULL;
    sd_tape t;
    sd_tape_init(&t, seed);
    sd_optim opt;
    sd_optim_opts oo = sd_optim_opts_sgd(0.9f, 5e-4f);
    sd_optim_init(&opt, &m.p, &oo);
    sd_rng data;
    sd_rng_seed(&data, seed + 1);
    float *x = malloc(sizeof(float) * N * CIN * H * W);
    uint8_t *lab = malloc((size_t)N * H * W);
    bool ok = true;
    for (int s = 0; s < steps && ok; s++) {
        for (int i = 0; i < N * CIN * H * W; i++)
            x[i] = sd_rng_normal(&data);
        for (int i = 0; i < N * H * W; i++)
            lab[i] = sd_rng_int(&data, 8) == 0 ? 255 : (uint8_t)sd_rng_int(&data, K);
        sd_tape_reset(&t);
        sd_params_zero_grad(&m.p);
        sd_tensor *xt = sd_tensor_wrap(&t, 4, (int[]){N, CIN, H, W}, x);
        sd_tensor *h = sd_conv2d(&t, xt, m.c1, NULL, sd_conv_opts_make(2, 1, 1));
        h = sd_relu(&t, sd_batch_norm(&t, h, m.g1, m.b1, m.m1, m.v1, true, 0.1f, 1e-5f));
        h = sd_dropout(&t, h, 0.2f);
        sd_tensor *y = sd_conv2d(&t, h, m.c2, m.c2b, sd_conv_opts_make(1, 2, 2));
        y = sd_resize_bilinear(&t, y, H, W, false);
        sd_tensor *ce = sd_cross_entropy(&t, y, lab, NULL, 255);
        sd_tensor *ent = sd_mean(&t, sd_entropy_map(&t, y));
        ok = ce && ent && sd_backward(&t, 2, (sd_tensor *[]){ce, ent}, (float[]){1.0f, 0.01f}) == SD_OK &&
             sd_optim_step(&opt, 0.05f) == SD_OK;
        if (!ok)
            fprintf(stderr, "  step %d failed: %s\n", s, sd_errmsg());
    }
    float *out = NULL;
    if (ok) {
        *count = m.p.groups[0].numel + m.p.groups[1].numel;
        out = malloc(*count * sizeof(float));
        memcpy(out, m.p.groups[0].data, m.p.groups[0].numel * sizeof(float));
        memcpy(out + m.p.groups[0].numel, m.p.groups[1].data, m.p.groups[1].numel * sizeof(float));
    }
    free(x);
    free(lab);
    sd_optim_free(&opt);
    sd_tape_free(&t);
    sd_params_free(&m.p);
    return out;
}

static void test_training_steps_bit_identical(void)
{
    size_t n1 = 0, n2 = 0, n3 = 0;
    float *a = train(5, 3, &n1), *b = train(5, 3, &n2), *c = train(6, 3, &n3);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK(n1 == n2 && n1 == n3);
        CHECK_MSG(memcmp(a, b, n1 * sizeof(float)) == 0, "two runs with seed 5 differ");
        CHECK_MSG(memcmp(a, c, n1 * sizeof(float)) != 0, "seeds 5 and 6 gave the same weights");
        bool finite = true;
        for (size_t i = 0; i < n1; i++)
            finite = finite && isfinite(a[i]);
        CHECK(finite);
    }
    free(a);
    free(b);
    free(c);
}

/* sum, cross-entropy, softmax and the broadcast reduction of add's
 * backward give the same bits with 1 and with 2 threads (fixed blocking). */
static void reductions(int threads, float out[4], float *gb, float *gx)
{
    sd_set_threads(threads);
    enum { RN = 4, RC = 19, RH = 61, RW = 67 };
    size_t nx = (size_t)RN * RC * RH * RW;
    float *x = malloc(nx * sizeof *x);
    uint8_t *lab = malloc((size_t)RN * RH * RW);
    sd_rng r;
    sd_rng_seed(&r, 9);
    for (size_t i = 0; i < nx; i++)
        x[i] = 3.0f * sd_rng_normal(&r);
    for (int i = 0; i < RN * RH * RW; i++)
        lab[i] = (uint8_t)sd_rng_int(&r, RC);
    float bias[RC];
    for (int i = 0; i < RC; i++)
        bias[i] = sd_rng_normal(&r);
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_tensor *xt = sd_tensor_wrap(&t, 4, (int[]){RN, RC, RH, RW}, x);
    sd_tensor *bt = sd_tensor_wrap(&t, 4, (int[]){1, RC, 1, 1}, bias);
    xt->requires_grad = bt->requires_grad = true;
    sd_tensor *z = sd_add(&t, xt, bt);
    sd_tensor *ce = sd_cross_entropy(&t, z, lab, NULL, 255);
    sd_tensor *s = sd_sum(&t, sd_softmax(&t, z));
    sd_tensor *l2 = sd_l2_feature_distance(&t, z, xt);
    sd_tensor *bce = sd_bce_logits_const(&t, z, 1.0f);
    CHECK_OK(sd_backward(&t, 4, (sd_tensor *[]){ce, s, l2, bce}, NULL));
    out[0] = F32(ce->data)[0];
    out[1] = F32(s->data)[0];
    out[2] = F32(l2->data)[0];
    out[3] = F32(bce->data)[0];
    memcpy(gb, bt->grad, RC * sizeof(float));
    memcpy(gx, xt->grad, 16 * sizeof(float));
    sd_tape_free(&t);
    free(x);
    free(lab);
}

static void test_reductions_thread_independent(void)
{
    float o1[4], o2[4], gb1[19], gb2[19], gx1[16], gx2[16];
    int before = sd_threads();
    reductions(1, o1, gb1, gx1);
    reductions(2, o2, gb2, gx2);
    sd_set_threads(before);
    CHECK(memcmp(o1, o2, sizeof o1) == 0);
    CHECK(memcmp(gb1, gb2, sizeof gb1) == 0);
    CHECK(memcmp(gx1, gx2, sizeof gx1) == 0);
}

int main(void)
{
    RUN(test_training_steps_bit_identical);
    RUN(test_reductions_thread_independent);
    TESTS_DONE();
}
