/* Optimisers and schedules against hand-derived values: SGD with momentum
 * and weight decay, per-group lr/wd multipliers, frozen and buffer groups
 * skipped, Adam's first steps, poly decay and warm-up, state enumeration and
 * bad options. The PyTorch parity check lives in tests/py/test_optim.py. */
#include <math.h>

#include "check.h"
#include "segda/optim.h"

typedef struct fixture {
    sd_params p;
    sd_tensor *a, *b, *c, *d;
    int ga, gb, gc, gd;
} fixture;

/* a: backbone [2] (lr x1, wd x1); b: classifier [1] (lr x10, wd x0.5);
 * c: frozen [1]; d: bn buffer [1]. */
static void fixture_init(fixture *f)
{
    sd_params_init(&f->p);
    f->ga = sd_params_add_group(&f->p, "backbone", 1.0f, 1.0f, false);
    f->gb = sd_params_add_group(&f->p, "classifier", 10.0f, 0.5f, false);
    f->gc = sd_params_add_group(&f->p, "frozen", 1.0f, 1.0f, false);
    f->gd = sd_params_add_group(&f->p, "bn", 1.0f, 1.0f, true);
    int s2[1] = {2}, s1[1] = {1};
    f->a = sd_params_declare(&f->p, f->ga, "a", 1, s2);
    f->b = sd_params_declare(&f->p, f->gb, "b", 1, s1);
    f->c = sd_params_declare(&f->p, f->gc, "c", 1, s1);
    f->d = sd_params_declare(&f->p, f->gd, "d", 1, s1);
    sd_params_set_frozen(&f->p, f->gc, true);
    CHECK_OK(sd_params_alloc(&f->p));
    F32(f->a->data)[0] = 1.0f;
    F32(f->a->data)[1] = -2.0f;
    F32(f->b->data)[0] = 0.5f;
    F32(f->c->data)[0] = 3.0f;
    F32(f->d->data)[0] = 7.0f;
}

static void set_grads(fixture *f, float ga0, float ga1, float gb, float gc)
{
    F32(f->a->grad)[0] = ga0;
    F32(f->a->grad)[1] = ga1;
    F32(f->b->grad)[0] = gb;
    F32(f->c->grad)[0] = gc;
}

static void test_sgd_momentum_wd_multipliers(void)
{
    fixture f;
    fixture_init(&f);
    sd_optim opt;
    sd_optim_opts o = sd_optim_opts_sgd(0.9f, 0.1f);
    CHECK_OK(sd_optim_init(&opt, &f.p, &o));

    /* step 1, lr 0.1:
     * a0: d = 0.5 + 0.1*1 = 0.6; buf = 0.6; w = 1 - 0.1*0.6 = 0.94
     * a1: d = -1 + 0.1*-2 = -1.2; buf = -1.2; w = -2 + 0.12 = -1.88
     * b:  lr 1.0, wd 0.05: d = 0.2 + 0.025 = 0.225; buf = 0.225; w = 0.275 */
    set_grads(&f, 0.5f, -1.0f, 0.2f, 9.0f);
    CHECK_OK(sd_optim_step(&opt, 0.1f));
    CHECK_NEAR(F32(f.a->data)[0], 0.94, 1e-6);
    CHECK_NEAR(F32(f.a->data)[1], -1.88, 1e-6);
    CHECK_NEAR(F32(f.b->data)[0], 0.275, 1e-6);
    CHECK_NEAR(F32(f.c->data)[0], 3.0, 0);   /* frozen: untouched */
    CHECK_NEAR(F32(f.d->data)[0], 7.0, 0);   /* buffer: untouched */

    /* step 2, lr 0.05, same grads:
     * a0: d = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; w = 0.94 - 0.0567 = 0.8833
     * b:  lr 0.5: d = 0.2 + 0.05*0.275 = 0.21375; buf = 0.2025 + 0.21375 = 0.41625;
     *     w = 0.275 - 0.208125 = 0.066875 */
    CHECK_OK(sd_optim_step(&opt, 0.05f));
    CHECK_NEAR(F32(f.a->data)[0], 0.8833, 1e-6);
    CHECK_NEAR(F32(f.b->data)[0], 0.066875, 1e-6);
    CHECK_NEAR(opt.state[f.gb][0][0], 0.41625, 1e-6);
    CHECK(opt.steps[f.ga] == 2 && opt.steps[f.gc] == 0);
    CHECK(opt.state[f.gd][0] == NULL);

    /* unfreezing a group makes it train from then on */
    sd_params_set_frozen(&f.p, f.gc, false);
    CHECK_OK(sd_optim_step(&opt, 0.1f));
    CHECK_NEAR(F32(f.c->data)[0], 3.0 - 0.1 * (9.0 + 0.1 * 3.0), 1e-6);
    sd_optim_free(&opt);
    sd_params_free(&f.p);
}

static void test_sgd_plain(void)
{
    fixture f;
    fixture_init(&f);
    sd_optim opt;
    sd_optim_opts o = sd_optim_opts_sgd(0.0f, 0.0f);
    CHECK_OK(sd_optim_init(&opt, &f.p, &o));
    CHECK(sd_optim_state_count(&opt) == 0);
    set_grads(&f, 1.0f, 2.0f, 3.0f, 0.0f);
    CHECK_OK(sd_optim_step(&opt, 0.01f));
    CHECK_OK(sd_optim_step(&opt, 0.01f));
    CHECK_NEAR(F32(f.a->data)[0], 0.98, 1e-6);
    CHECK_NEAR(F32(f.a->data)[1], -2.04, 1e-6);
    CHECK_NEAR(F32(f.b->data)[0], 0.5 - 2 * 0.1 * 3.0, 1e-6);
    sd_optim_free(&opt);
    sd_params_free(&f.p);
}

static void test_adam_steps(void)
{
    fixture f;
    fixture_init(&f);
    sd_optim opt;
    sd_optim_opts o = sd_optim_opts_adam(0.9f, 0.99f);
    CHECK_OK(sd_optim_init(&opt, &f.p, &o));
    CHECK(sd_optim_state_count(&opt) == 6);   /* frozen groups keep state too */
    /* Step 1: m = 0.1g, v = 0.01g^2, mhat = g, vhat = g^2: w -= lr*sign(g)
     * (up to eps). Step 2 with the same g: the same again. */
    set_grads(&f, 0.5f, -4.0f, 0.2f, 0.0f);
    CHECK_OK(sd_optim_step(&opt, 0.01f));
    CHECK_NEAR(F32(f.a->data)[0], 1.0 - 0.01, 1e-6);
    CHECK_NEAR(F32(f.a->data)[1], -2.0 + 0.01, 1e-6);
    CHECK_NEAR(F32(f.b->data)[0], 0.5 - 0.1, 1e-6);   /* lr x10 */
    CHECK_NEAR(opt.state[f.ga][0][1], -0.4, 1e-6);
    CHECK_NEAR(opt.state[f.ga][1][1], 0.16, 1e-6);
    CHECK_OK(sd_optim_step(&opt, 0.01f));
    CHECK_NEAR(F32(f.a->data)[0], 1.0 - 0.02, 1e-6);
    /* Step 3 with g = 0: m = 0.081*g0... hand: m3 = 0.9*0.19*0.5 = 0.0855 (g=0.5 before),
     * v3 = 0.99*(0.0199*0.25) = 0.00492525; bc1 = 1-0.729 = 0.271, bc2 = 1-0.970299 = 0.029701;
     * update = 0.01/0.271 * 0.0855 / (sqrt(0.00492525)/sqrt(0.029701)) */
    set_grads(&f, 0.0f, 0.0f, 0.0f, 0.0f);
    CHECK_OK(sd_optim_step(&opt, 0.01f));
    double upd = 0.01 / 0.271 * 0.0855 / (sqrt(0.00492525) / sqrt(0.029701));
    CHECK_NEAR(F32(f.a->data)[0], 0.98 - upd, 1e-6);
    sd_optim_free(&opt);
    sd_params_free(&f.p);
}

static void test_state_names(void)
{
    fixture f;
    fixture_init(&f);
    sd_optim opt;
    sd_optim_opts o = sd_optim_opts_adam(0.9f, 0.999f);
    CHECK_OK(sd_optim_init(&opt, &f.p, &o));
    char name[64];
    float *data;
    size_t n;
    CHECK_OK(sd_optim_state_at(&opt, 1, "optim_d.", name, sizeof name, &data, &n));
    CHECK(!strcmp(name, "optim_d.backbone.exp_avg_sq"));
    CHECK(n == 2 && data == opt.state[f.ga][1]);
    CHECK_OK(sd_optim_state_at(&opt, 2, "", name, sizeof name, &data, &n));
    CHECK(!strcmp(name, "classifier.exp_avg"));
    CHECK(sd_optim_state_at(&opt, 6, "", name, sizeof name, &data, &n) == SD_ERR_ARG);
    CHECK_ERR_HAS("out of range");
    /* reset zeroes state and counts */
    set_grads(&f, 1.0f, 1.0f, 1.0f, 1.0f);
    CHECK_OK(sd_optim_step(&opt, 0.1f));
    sd_optim_reset(&opt);
    CHECK(opt.steps[f.ga] == 0 && opt.state[f.ga][0][0] == 0.0f);
    sd_optim_free(&opt);
    sd_params_free(&f.p);
}

static void test_bad_options(void)
{
    fixture f;
    fixture_init(&f);
    sd_optim opt;
    sd_optim_opts o = sd_optim_opts_sgd(1.5f, 0.0f);
    CHECK(sd_optim_init(&opt, &f.p, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("momentum 1.5");
    o = sd_optim_opts_adam(0.9f, 1.0f);
    CHECK(sd_optim_init(&opt, &f.p, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("adam betas");
    o = sd_optim_opts_sgd(0.9f, 0.0f);
    CHECK_OK(sd_optim_init(&opt, &f.p, &o));
    CHECK(sd_optim_step(&opt, NAN) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("learning rate");
    sd_optim_free(&opt);
    sd_params p;
    sd_params_init(&p);
    CHECK(sd_optim_init(&opt, &p, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("not allocated");
    CHECK(sd_optim_kind_parse("adam") == SD_OPTIM_ADAM && sd_optim_kind_parse("rmsprop") == -1);
    sd_params_free(&f.p);
}

static void test_schedules(void)
{
    sd_lr_schedule s = sd_lr_poly(2.5e-4f, 100, 0.9f);
    CHECK_NEAR(sd_lr_at(&s, 0), 2.5e-4, 1e-9);
    CHECK_NEAR(sd_lr_at(&s, 50), 2.5e-4 * pow(0.5, 0.9), 1e-9);
    CHECK_NEAR(sd_lr_at(&s, 99), 2.5e-4 * pow(0.01, 0.9), 1e-9);
    CHECK(sd_lr_at(&s, 100) == 0.0f && sd_lr_at(&s, 1000) == 0.0f);
    s.warmup_iters = 10;
    s.warmup_ratio = 0.1f;
    /* it 5: poly(5) * (0.1 + 0.9*0.5) */
    CHECK_NEAR(sd_lr_at(&s, 5), 2.5e-4 * pow(0.95, 0.9) * 0.55, 1e-9);
    CHECK_NEAR(sd_lr_at(&s, 0), 2.5e-5, 1e-9);
    CHECK_NEAR(sd_lr_at(&s, 10), 2.5e-4 * pow(0.9, 0.9), 1e-9);
    sd_lr_schedule c = sd_lr_poly(0.01f, 0, 0.9f);   /* no max: constant */
    CHECK_NEAR(sd_lr_at(&c, 12345), 0.01, 1e-9);
}

int main(void)
{
    RUN(test_sgd_momentum_wd_multipliers);
    RUN(test_sgd_plain);
    RUN(test_adam_steps);
    RUN(test_state_names);
    RUN(test_bad_options);
    RUN(test_schedules);
    TESTS_DONE();
}
