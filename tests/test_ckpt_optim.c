/* Optimiser state in checkpoints (sd_ckpt_writer_add_optim /
 * sd_ckpt_read_optim, shared by train and pretrain): the names and values
 * written, a bit-exact read back, and damaged state rejected with messages
 * that name the file and the tensor or metadata key. */
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/checkpoint.h"
#include "segda/optim.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) { return test_path(tmpdir, name); }

/* Two trained groups and a buffer group (running statistics: no state). */
static void make_params(sd_params *p, int n_backbone)
{
    sd_params_init(p);
    int bb = sd_params_add_group(p, "backbone", 1, 1, false);
    int hd = sd_params_add_group(p, "head", 10, 1, false);
    int bn = sd_params_add_group(p, "bn", 0, 0, true);
    sd_params_declare(p, bb, "w", 1, (int[]){n_backbone});
    sd_params_declare(p, hd, "fc", 1, (int[]){2});
    sd_params_declare(p, bn, "running_mean", 1, (int[]){2});
    sd_params_alloc(p);
}

/* steps updates with a constant gradient, the same in every group:
 * g[i] = 0.5 * (i + 1). */
static void train(sd_optim *o, sd_params *p, int steps)
{
    for (int s = 0; s < steps; s++) {
        for (int g = 0; g < p->n_groups; g++)
            if (p->groups[g].grad)
                for (size_t i = 0; i < p->groups[g].numel; i++)
                    p->groups[g].grad[i] = 0.5f * (float)(i + 1);
        sd_optim_step(o, 0.1f);
    }
}

static const float *tensor_f32(sd_ckpt *c, const char *name, float *buf, size_t n)
{
    return sd_ckpt_read_tensor(c, name, n, buf) ? NULL : buf;
}

static void test_round_trip(void)
{
    sd_params p;
    make_params(&p, 4);
    sd_optim adam, sgd;
    sd_optim_opts ao = sd_optim_opts_adam(0.9f, 0.99f), so = sd_optim_opts_sgd(0.9f, 0.0f);
    CHECK_OK(sd_optim_init(&adam, &p, &ao));
    CHECK_OK(sd_optim_init(&sgd, &p, &so));
    train(&adam, &p, 3);
    train(&sgd, &p, 2);
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_optim(&w, &adam, "opt:", "opt_steps"));
    CHECK_OK(sd_ckpt_writer_add_optim(&w, &sgd, "opt:d.", "opt_steps:d:"));
    const char *path = tmp_path("optim.safetensors");
    CHECK_OK(sd_ckpt_writer_save(&w, path));
    sd_ckpt_writer_free(&w);

    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    /* buffer groups take no step and keep no state */
    CHECK(sd_ckpt_meta(&c, "opt_steps") && !strcmp(sd_ckpt_meta(&c, "opt_steps"), "3,3,0"));
    CHECK(sd_ckpt_meta(&c, "opt_steps:d:") && !strcmp(sd_ckpt_meta(&c, "opt_steps:d:"), "2,2,0"));
    CHECK(!sd_ckpt_has(&c, "opt:bn.exp_avg") && !sd_ckpt_has(&c, "opt:d.bn.momentum"));
    /* A constant gradient g over 3 Adam steps (wd 0): exp_avg = (1 - 0.9^3) g,
     * exp_avg_sq = (1 - 0.99^3) g^2; SGD momentum over 2 steps: (1 + 0.9) g. */
    float buf[4];
    const float *m = tensor_f32(&c, "opt:backbone.exp_avg", buf, 4);
    CHECK(m != NULL);
    for (int i = 0; m && i < 4; i++)
        CHECK_NEAR(m[i], 0.271 * 0.5 * (i + 1), 1e-6);
    const float *v = tensor_f32(&c, "opt:head.exp_avg_sq", buf, 2);
    CHECK(v != NULL);
    for (int i = 0; v && i < 2; i++)
        CHECK_NEAR(v[i], 0.029701 * 0.25 * (i + 1) * (i + 1), 1e-6);
    const float *mo = tensor_f32(&c, "opt:d.backbone.momentum", buf, 4);
    CHECK(mo != NULL);
    for (int i = 0; mo && i < 4; i++)
        CHECK_NEAR(mo[i], 1.9 * 0.5 * (i + 1), 1e-6);

    /* read back into fresh optimisers: the same bits and step counts */
    sd_optim adam2, sgd2;
    CHECK_OK(sd_optim_init(&adam2, &p, &ao));
    CHECK_OK(sd_optim_init(&sgd2, &p, &so));
    CHECK_OK(sd_ckpt_read_optim(&c, &adam2, "opt:", "opt_steps"));
    CHECK_OK(sd_ckpt_read_optim(&c, &sgd2, "opt:d.", "opt_steps:d:"));
    for (int g = 0; g < p.n_groups; g++) {
        CHECK(adam2.steps[g] == adam.steps[g] && sgd2.steps[g] == sgd.steps[g]);
        for (int s = 0; s < 2; s++) {
            size_t bytes = p.groups[g].numel * sizeof(float);
            CHECK((adam.state[g][s] == NULL) == (adam2.state[g][s] == NULL));
            if (adam.state[g][s] && adam2.state[g][s])
                CHECK(!memcmp(adam.state[g][s], adam2.state[g][s], bytes));
            if (sgd.state[g][s] && sgd2.state[g][s])
                CHECK(!memcmp(sgd.state[g][s], sgd2.state[g][s], bytes));
        }
    }
    CHECK(adam2.steps[0] == 3 && adam2.steps[2] == 0 && sgd2.steps[1] == 2);

    /* another namespace or steps key than was written */
    CHECK(sd_ckpt_read_optim(&c, &adam2, "opt:x.", "opt_steps") == SD_ERR_DATA);
    CHECK_ERR_HAS(path);
    CHECK_ERR_HAS("missing tensor 'opt:x.backbone.exp_avg'");
    CHECK(sd_ckpt_read_optim(&c, &adam2, "opt:", "opt_steps:x:") == SD_ERR_DATA);
    CHECK_ERR_HAS(path);
    CHECK_ERR_HAS("metadata 'opt_steps:x:' missing");
    sd_ckpt_close(&c);

    /* state of another size: a parameter set that is not the one saved */
    sd_params q;
    make_params(&q, 6);
    sd_optim adam3;
    CHECK_OK(sd_optim_init(&adam3, &q, &ao));
    CHECK_OK(sd_ckpt_open(path, &c));
    CHECK(sd_ckpt_read_optim(&c, &adam3, "opt:", "opt_steps") == SD_ERR_DATA);
    CHECK_ERR_HAS("tensor 'opt:backbone.exp_avg' has 4 elements, expected 6");
    sd_ckpt_close(&c);
    sd_optim_free(&adam3);
    sd_params_free(&q);

    sd_optim_free(&adam);
    sd_optim_free(&sgd);
    sd_optim_free(&adam2);
    sd_optim_free(&sgd2);
    sd_params_free(&p);
}

/* Step counts that are short, negative or not numbers. */
static void test_bad_steps(void)
{
    sd_params p;
    make_params(&p, 4);
    sd_optim o;
    sd_optim_opts so = sd_optim_opts_sgd(0.9f, 0.0f);
    CHECK_OK(sd_optim_init(&o, &p, &so));
    train(&o, &p, 1);
    const char *bad[] = {"1,1", "1,-1,0", "x,1,0", ""};
    for (int k = 0; k < 4; k++) {
        sd_ckpt_writer w;
        sd_ckpt_writer_init(&w);
        CHECK_OK(sd_ckpt_writer_add_optim(&w, &o, "opt:", "opt_steps"));
        CHECK_OK(sd_ckpt_writer_set_meta(&w, "opt_steps", bad[k]));
        const char *path = tmp_path("bad_steps.safetensors");
        CHECK_OK(sd_ckpt_writer_save(&w, path));
        sd_ckpt_writer_free(&w);
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(path, &c));
        sd_optim o2;
        CHECK_OK(sd_optim_init(&o2, &p, &so));
        CHECK_MSG(sd_ckpt_read_optim(&c, &o2, "opt:", "opt_steps") == SD_ERR_DATA, "steps '%s' accepted", bad[k]);
        CHECK_ERR_HAS(path);
        CHECK_ERR_HAS("expected 3 step counts >= 0");
        sd_optim_free(&o2);
        sd_ckpt_close(&c);
    }
    sd_optim_free(&o);
    sd_params_free(&p);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda-test-ckpt-optim-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    sd_log_set_level(0);
    RUN(test_round_trip);
    RUN(test_bad_steps);
    unlink(tmp_path("optim.safetensors"));
    unlink(tmp_path("bad_steps.safetensors"));
    rmdir(tmpdir);
    TESTS_DONE();
}
