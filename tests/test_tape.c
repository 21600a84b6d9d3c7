/* The tape's bookkeeping: freezing is read when an op is recorded, not when
 * backward runs, so a generator loss and a discriminator loss merged into one
 * backward train exactly the networks they were recorded for. */
#include "check.h"
#include "segda/ops.h"

/* A 1x1 "generator" conv g and a 1x1 "discriminator" conv d, each its own group. */
typedef struct gd {
    sd_params p;
    int gg, gd;
    sd_tensor *g, *d;
} gd;

static void gd_init(gd *m)
{
    sd_params_init(&m->p);
    m->gg = sd_params_add_group(&m->p, "gen", 1, 1, false);
    m->gd = sd_params_add_group(&m->p, "disc", 1, 1, false);
    m->g = sd_params_declare(&m->p, m->gg, "g", 4, (int[]){3, 3, 1, 1});
    m->d = sd_params_declare(&m->p, m->gd, "d", 4, (int[]){1, 3, 1, 1});
    CHECK_OK(sd_params_alloc(&m->p));
    float *g = m->g->data, *d = m->d->data;
    for (int i = 0; i < 9; i++)
        g[i] = 0.1f * (float)(i % 4) - 0.12f;
    for (int i = 0; i < 3; i++)
        d[i] = 0.3f - 0.2f * (float)i;
}

static sd_tensor *input(sd_tape *t)
{
    sd_tensor *x = sd_tensor_new4(t, 1, 3, 2, 2);
    float *v = x->data;
    for (int i = 0; i < 12; i++)
        v[i] = (float)(i % 5) - 1.5f;
    return x;
}

/* The generator's adversarial term: sum(D(G(x))^2) with D frozen. */
static sd_tensor *gen_loss(sd_tape *t, gd *m)
{
    sd_tensor *o = sd_conv2d(t, sd_conv2d(t, input(t), m->g, NULL, sd_conv_opts_default()), m->d, NULL,
                             sd_conv_opts_default());
    return sd_sum(t, sd_mul(t, o, o));
}

/* The discriminator's term on the generator's output (G frozen): sum(D(G(x))). */
static sd_tensor *disc_loss(sd_tape *t, gd *m)
{
    sd_tensor *o = sd_conv2d(t, sd_conv2d(t, input(t), m->g, NULL, sd_conv_opts_default()), m->d, NULL,
                             sd_conv_opts_default());
    return sd_sum(t, o);
}

static void copy_grads(const gd *m, float *g, float *d)
{
    memcpy(g, m->g->grad, 9 * sizeof(float));
    memcpy(d, m->d->grad, 3 * sizeof(float));
}

static void merged_backward_trains_what_was_recorded(void)
{
    gd m;
    gd_init(&m);
    sd_tape t;
    sd_tape_init(&t, 1);
    float ref_g[9], ref_d[3], got_g[9], got_d[3];

    /* References: each loss alone, with its own freezing. */
    sd_params_set_frozen(&m.p, m.gd, true);
    CHECK_OK(sd_backward1(&t, gen_loss(&t, &m)));
    sd_params_set_frozen(&m.p, m.gd, false);
    copy_grads(&m, ref_g, ref_d);
    for (int i = 0; i < 3; i++)
        CHECK(ref_d[i] == 0.0f);
    sd_params_zero_grad(&m.p);
    sd_tape_reset(&t);
    sd_params_set_frozen(&m.p, m.gg, true);
    CHECK_OK(sd_backward1(&t, disc_loss(&t, &m)));
    sd_params_set_frozen(&m.p, m.gg, false);
    float only_g[9], only_d[3];
    copy_grads(&m, only_g, only_d);
    for (int i = 0; i < 9; i++)
        CHECK(only_g[i] == 0.0f);
    for (int i = 0; i < 3; i++)
        ref_d[i] = only_d[i];
    sd_params_zero_grad(&m.p);
    sd_tape_reset(&t);

    /* Merged: record the generator's term with D frozen, the discriminator's
     * with G frozen, unfreeze both, one backward over the two losses. */
    sd_params_set_frozen(&m.p, m.gd, true);
    sd_tensor *lg = gen_loss(&t, &m);
    sd_params_set_frozen(&m.p, m.gd, false);
    sd_params_set_frozen(&m.p, m.gg, true);
    sd_tensor *ld = disc_loss(&t, &m);
    sd_params_set_frozen(&m.p, m.gg, false);
    CHECK_OK(sd_backward(&t, 2, (sd_tensor *[]){lg, ld}, NULL));
    copy_grads(&m, got_g, got_d);
    for (int i = 0; i < 9; i++)
        CHECK_MSG(got_g[i] == ref_g[i], "generator grad %d: %g, expected %g", i, got_g[i], ref_g[i]);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(got_d[i] == ref_d[i], "discriminator grad %d: %g, expected %g", i, got_d[i], ref_d[i]);
    /* The check can fail: freezing read at backward time would have given D
     * the generator term's gradient as well. */
    bool differs = false;
    sd_params_zero_grad(&m.p);
    sd_tape_reset(&t);
    CHECK_OK(sd_backward1(&t, gen_loss(&t, &m)));
    for (int i = 0; i < 3; i++)
        differs |= F32(m.d->grad)[i] != 0.0f;
    CHECK(differs);

    sd_tape_free(&t);
    sd_params_free(&m.p);
}

int main(void)
{
    RUN(merged_backward_trains_what_was_recorded);
    TESTS_DONE();
}
