/* Task-informed GAN translation (src/da/taskgan.c, src/nn/gan.c): a few
 * iterations of both stages on the tiny benchmark (finite losses, G_S moves,
 * stage 2 leaves G_R/D_R alone, f byte-identical, resume bit-identical),
 * the image-convention maps, the held schedule, and the bad inputs: wrong
 * checkpoint kinds, class counts, sizes. Parity with PyTorch is in
 * tests/py/test_gan_torch.py and tests/py/test_taskgan_torch.py. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "segda/checkpoint.h"
#include "segda/gan.h"
#include "segda/image.h"
#include "segda/model.h"
#include "segda/ops.h"
#include "segda/optim.h"
#include "segda/synth.h"
#include "segda/train.h"
#include "util.h"

static char bench[256], src_spec[300], tgt_spec[300], fpath[400];

static sd_status run(const char *name, int n_extra, const char *const *extra)
{
    char out[400], tm[450];
    snprintf(out, sizeof out, "%s/run-%s", bench, name);
    snprintf(tm, sizeof tm, "%s", fpath);
    sd_config c;
    sd_config_init(&c);
    sd_config_set(&c, "method", "taskgan", "test", true);
    sd_config_set(&c, "source", src_spec, "test", true);
    sd_config_set(&c, "target", tgt_spec, "test", true);
    sd_config_set(&c, "out", out, "test", true);
    sd_config_set(&c, "model", "deeplab-mini", "test", true);
    sd_config_set(&c, "task-model", tm, "test", true);
    sd_config_set(&c, "threads", "1", "test", true);
    sd_config_set(&c, "log-every", "1000", "test", true);
    /* tiny networks: the recipe, not the capacity, is under test */
    sd_config_set(&c, "gen-ngf", "4", "test", true);
    sd_config_set(&c, "gen-blocks", "1", "test", true);
    sd_config_set(&c, "disc-ndf", "4", "test", true);
    sd_config_set(&c, "crop", "40x32", "test", true);
    sd_config_set(&c, "pool-size", "2", "test", true);
    for (int i = 0; i < n_extra; i++) {
        char k[64];
        const char *eq = strchr(extra[i], '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - extra[i]), extra[i]);
        sd_config_set(&c, k, eq + 1, "test", true);
    }
    sd_status st = sd_train_run(&c);
    sd_config_free(&c);
    return st;
}

static void path_of(char *buf, size_t cap, const char *name, const char *file)
{
    snprintf(buf, cap, "%s/run-%s/%s", bench, name, file);
}

/* Every tensor of a checkpoint whose name starts with prefix ("" = the
 * model's, without ':'), as one concatenated byte string. */
static unsigned char *tensors_of(const char *path, const char *prefix, size_t *len)
{
    sd_ckpt c;
    *len = 0;
    if (sd_ckpt_open(path, &c))
        return NULL;
    unsigned char *out = NULL;
    for (int i = 0; i < c.st.n; i++) {
        const sd_st_tensor *t = &c.st.tensors[i];
        bool match = *prefix ? !strncmp(t->name, prefix, strlen(prefix)) : !strchr(t->name, ':');
        if (!match)
            continue;
        size_t n = t->end - t->begin;
        out = realloc(out, *len + n);
        memcpy(out + *len, c.st.buf + c.st.data_start + t->begin, n);
        *len += n;
    }
    sd_ckpt_close(&c);
    return out;
}

static bool same_part(const char *a, const char *b, const char *prefix)
{
    size_t la, lb;
    unsigned char *x = tensors_of(a, prefix, &la), *y = tensors_of(b, prefix, &lb);
    bool same = x && y && la == lb && la > 0 && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static void test_stages_resume_and_frozen_f(void)
{
    /* 4 iterations: 2 of CycleGAN, 2 of G_S with the task term; 3 of the 8
     * real images labelled; an evaluation of f(G_S(real val)) at the end */
    const char *a[] = {"iters=4", "stage2-at=2", "target-labels=3", "eval-every=4", "val-limit=2"};
    CHECK_OK(run("A", 5, a));
    const char *b[] = {"iters=4", "stage2-at=2", "target-labels=3", "eval-every=4", "val-limit=2", "stop-after=2"};
    CHECK_OK(run("B", 6, b));
    char pa[512], pb[512], mid[512];
    path_of(pa, sizeof pa, "A", "last.safetensors");
    path_of(pb, sizeof pb, "B", "last.safetensors");
    path_of(mid, sizeof mid, "B", "mid.safetensors");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pb, mid);
    CHECK(system(cmd) == 0);
    const char *r[] = {"iters=4", "stage2-at=2", "target-labels=3", "eval-every=4", "val-limit=2", "resume=true"};
    CHECK_OK(run("B", 6, r));
    /* resume: every tensor (networks, Adam states, pools) bit-identical */
    const char *parts[] = {"", "gen_s:", "gen_r:", "disc_s:", "disc_r:", "pool_s:", "pool_r:", "opt:gen_s"};
    for (int i = 0; i < 8; i++)
        CHECK_MSG(same_part(pa, pb, parts[i]), "resumed run differs in '%s'", parts[i]);
    /* f: the very bytes of --task-model, BN statistics included */
    CHECK(same_part(pa, fpath, ""));
    /* stage 2 moves G_S and D_S, and leaves G_R and D_R as stage 1 left them */
    CHECK(!same_part(mid, pa, "gen_s:"));
    CHECK(!same_part(mid, pa, "disc_s:"));
    CHECK(same_part(mid, pa, "gen_r:"));
    CHECK(same_part(mid, pa, "disc_r:"));
    /* the logs: stage-1 terms twice, stage-2 terms twice, all finite */
    char log[512];
    path_of(log, sizeof log, "A", "log.jsonl");
    double v[8];
    static const struct { const char *term; int n; } terms[] = {
        {"g_adv_s", 4}, {"g_adv_r", 2}, {"cycle_r", 2}, {"cycle_s", 2}, {"idt_s", 2}, {"task_ce", 2},
        {"d_s_real", 4}, {"d_s_fake", 4}, {"d_r_fake", 2}, {"stage", 4},
    };
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        int n = test_log_terms(log, terms[i].term, v, 8);
        CHECK_MSG(n == terms[i].n, "term %s logged %d times, expected %d", terms[i].term, n, terms[i].n);
        for (int k = 0; k < n; k++)
            CHECK_MSG(isfinite(v[k]), "term %s = %g at %d", terms[i].term, v[k], k);
    }
    CHECK(test_log_terms(log, "stage", v, 8) == 4 && v[0] == 1 && v[1] == 1 && v[2] == 2 && v[3] == 2);
    /* the run's evaluation went through G_S */
    FILE *f = fopen(log, "r");
    char line[8192];
    bool evaluated = false;
    while (f && fgets(line, sizeof line, f))
        evaluated |= strstr(line, "\"eval\"") != NULL;
    if (f)
        fclose(f);
    CHECK(evaluated);
    /* G_S loads by name from the run's checkpoint (the gen_s: namespace) */
    sd_gen *g = NULL;
    CHECK_OK(sd_gen_load(pa, &g));
    CHECK(g && sd_gen_options(g)->ngf == 4 && sd_gen_options(g)->n_blocks == 1);
    if (g) {
        char gp[512];
        path_of(gp, sizeof gp, "A", "G_S.safetensors");
        CHECK_OK(sd_gen_save(g, gp));
        sd_gen *h = NULL;
        CHECK_OK(sd_gen_load(gp, &h));
        CHECK(h && !memcmp(sd_gen_params(h)->groups[0].data, sd_gen_params(g)->groups[0].data,
                           sd_gen_params(g)->groups[0].numel * sizeof(float)));
        sd_gen_free(h);
    }
    sd_gen_free(g);
}

static void test_alpha_zero_and_all_unlabelled(void)
{
    /* alpha 0: no task term at all; label-fraction 0: the term is 0, not NaN */
    const char *a[] = {"iters=2", "stage2-at=0", "alpha=0", "lambda-identity=0"};
    CHECK_OK(run("alpha0", 4, a));
    char log[512];
    path_of(log, sizeof log, "alpha0", "log.jsonl");
    double v[4];
    CHECK(test_log_terms(log, "task_ce", v, 4) == 0);
    CHECK(test_log_terms(log, "g_adv_s", v, 4) == 2);
    const char *b[] = {"iters=1", "stage2-at=0", "target-labels=0", "label-fraction=0"};
    CHECK_OK(run("nolabels", 4, b));
    path_of(log, sizeof log, "nolabels", "log.jsonl");
    CHECK(test_log_terms(log, "task_ce", v, 4) == 1 && v[0] == 0.0);
}

static void test_bad_inputs(void)
{
    const char *one[] = {"iters=1"};
    /* a generator where f is expected */
    char gp[400], keep[400];
    snprintf(gp, sizeof gp, "%s/gen.safetensors", bench);
    sd_gen_opts go = sd_gen_opts_default();
    go.ngf = 2;
    go.n_blocks = 1;
    sd_gen *g = NULL;
    CHECK_OK(sd_gen_create(&go, &g));
    CHECK_OK(sd_gen_save(g, gp));
    snprintf(keep, sizeof keep, "%s", fpath);
    snprintf(fpath, sizeof fpath, "%s", gp);
    CHECK(run("bad-gen", 1, one) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("a generator checkpoint");
    CHECK_ERR_HAS(gp);
    /* a segmentation net where a generator is expected */
    sd_gen *x = NULL;
    CHECK(sd_gen_load(keep, &x) == SD_ERR_FORMAT && !x);
    CHECK_ERR_HAS("a segmentation network checkpoint");
    CHECK_ERR_HAS(keep);
    /* other class count */
    char c5[400];
    snprintf(c5, sizeof c5, "%s/f5.safetensors", bench);
    sd_model_opts mo = sd_model_opts_default("deeplab-mini");
    mo.classes = 5;
    sd_model *m = NULL;
    CHECK_OK(sd_model_create(&mo, &m));
    CHECK_OK(sd_model_save(m, sd_model_default_norm("deeplab-mini"), c5));
    sd_model_free(m);
    snprintf(fpath, sizeof fpath, "%s", c5);
    CHECK(run("bad-classes", 1, one) == SD_ERR_ARG);
    CHECK_ERR_HAS("5 classes, expected 19");
    snprintf(fpath, sizeof fpath, "%s", keep);
    /* no f at all; a crop the generator cannot cover */
    char none[8] = "";
    snprintf(fpath, sizeof fpath, "%s", none);
    CHECK(run("no-f", 1, one) == SD_ERR_ARG);
    CHECK_ERR_HAS("needs --task-model");
    snprintf(fpath, sizeof fpath, "%s", keep);
    const char *crop[] = {"iters=1", "crop=42x30"};
    CHECK(run("bad-crop", 2, crop) == SD_ERR_ARG);
    CHECK_ERR_HAS("multiples of 4");
    /* images too small for the generator */
    sd_tape t;
    sd_tape_init(&t, 1);
    uint8_t px[6 * 6 * 3] = {0}, out[6 * 6 * 3];
    CHECK(sd_gen_translate_rgb(g, &t, px, 6, 6, 3, out) == SD_ERR_SHAPE);
    CHECK_ERR_HAS("at least 8x8");
    float z[3 * 4 * 4] = {0};
    CHECK(sd_gen_forward(g, &t, sd_tensor_wrap(&t, 4, (int[]){1, 3, 4, 4}, z)) == NULL);
    CHECK_ERR_HAS("H, W >= 5");
    /* odd sizes translate to the same size */
    uint8_t big[13 * 9 * 3], bo[13 * 9 * 3];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    CHECK_OK(sd_gen_translate_rgb(g, &t, big, 13, 9, 3, bo));
    sd_tape_free(&t);
    sd_gen_free(g);
}

static void test_conventions_and_schedule(void)
{
    /* [-1,1] RGB -> normalised matches sd_normalize_f32 of the same pixels,
     * and from_norm inverts it, for both conventions */
    float rgb[3 * 2 * 3], unit[3 * 2 * 3], ref[3 * 2 * 3];
    for (int i = 0; i < 18; i++) {
        rgb[i] = (float)((i * 37) % 256);
        unit[i] = rgb[i] / 127.5f - 1.0f;
    }
    for (int nk = 0; nk < SD_NORM_COUNT; nk++) {
        sd_tape t;
        sd_tape_init(&t, 1);
        sd_normalize_f32(rgb, 1, 3, 2, sd_norm_params_of((sd_norm)nk), ref);
        sd_tensor *y = sd_tensor_wrap(&t, 4, (int[]){1, 3, 2, 3}, unit);
        sd_tensor *n = sd_gen_to_norm(&t, y, (sd_norm)nk), *back = sd_gen_from_norm(&t, n, (sd_norm)nk);
        CHECK(n && back);
        if (n && back)
            for (int i = 0; i < 18; i++) {
                CHECK_NEAR(F32(n->data)[i], ref[i], 1e-4);
                CHECK_NEAR(F32(back->data)[i], unit[i], 1e-5);
            }
        sd_tape_free(&t);
    }
    /* CycleGAN's schedule: constant for hold_iters, then linear to 0 */
    sd_lr_schedule s = sd_lr_poly(2e-4f, 10, 1.0f);
    s.hold_iters = 6;
    CHECK(sd_lr_at(&s, 0) == 2e-4f && sd_lr_at(&s, 5) == 2e-4f && sd_lr_at(&s, 6) == 2e-4f);
    CHECK_NEAR(sd_lr_at(&s, 8), 1e-4, 1e-9);
    CHECK(sd_lr_at(&s, 10) == 0.0f);
}


static bool file_has(const char *path, const char *needle)
{
    char *s = test_slurp(path, NULL);
    bool r = s && strstr(s, needle);
    if (!r)
        fprintf(stderr, "  %s lacks \"%s\": %s\n", path, needle, s ? s : "(unreadable)");
    free(s);
    return r;
}

/* segda translate, eval --translate and predict --translate on run A's G_S
 * (test_stages_resume_and_frozen_f ran first), and their bad inputs. */
static void test_cli(void)
{
    const char *bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP test_cli (no SEGDA_BIN)\n");
        return;
    }
    char g[512], err[512], val[512], out[512];
    path_of(g, sizeof g, "A", "last.safetensors");
    snprintf(err, sizeof err, "%s/err.txt", bench);
    snprintf(val, sizeof val, "%s/real/leftImg8bit/val", bench);
    snprintf(out, sizeof out, "%s/translated", bench);
    CHECK(test_sh("'%s' translate --model '%s' --input '%s' --out '%s' --threads 1 --quiet 2> '%s'", bin, g, val, out,
             err) == 0);
    /* same relative paths and names, same sizes */
    CHECK(test_sh("cd '%s' && find . -name '*.png' | sort > '%s/a.txt' && cd '%s' && find . -name '*.png' | sort > "
             "'%s/b.txt' && cmp -s '%s/a.txt' '%s/b.txt'", val, bench, out, bench, bench, bench) == 0);
    CHECK(test_sh("test $(find '%s' -name '*.png' | wc -l) -eq 2", out) == 0);
    /* segmenting through G_S */
    CHECK(test_sh("'%s' eval --model '%s' --translate '%s' --data 'cityscapes:%s/real:val' --threads 1 > '%s/ev.txt' 2> "
             "'%s'", bin, fpath, g, bench, bench, err) == 0);
    CHECK(test_sh("'%s' predict --model '%s' --translate '%s' --input '%s' --out '%s/pred' --threads 1 --quiet 2> '%s'",
             bin, fpath, g, val, bench, err) == 0);
    CHECK(test_sh("test $(find '%s/pred' -name '*_trainIds.png' | wc -l) -eq 2", bench) == 0);
    /* wrong kinds, both ways */
    CHECK(test_sh("'%s' translate --model '%s' --input '%s' --out '%s/x' --quiet 2> '%s'", bin, fpath, val, bench, err) == 1);
    CHECK(file_has(err, "a segmentation network checkpoint"));
    char gs[512];
    path_of(gs, sizeof gs, "A", "G_S.safetensors");
    CHECK(test_sh("'%s' eval --model '%s' --data 'cityscapes:%s/real:val' 2> '%s' > /dev/null", bin, gs, bench, err) == 1);
    CHECK(file_has(err, "a generator checkpoint"));
    CHECK(file_has(err, gs));
    CHECK(test_sh("'%s' predict --model '%s' --translate '%s' --input '%s' --out '%s/p2' --quiet 2> '%s'", bin, fpath,
             fpath, val, bench, err) == 1);
    CHECK(file_has(err, "expected a generator"));
    /* an image too small for the generator, named */
    char tiny[512];
    snprintf(tiny, sizeof tiny, "%s/tiny.png", bench);
    uint8_t px[6 * 6 * 3] = {0};
    sd_image im = {.w = 6, .h = 6, .c = 3, .depth = 8, .data = px};
    CHECK_OK(sd_png_write(tiny, &im));
    CHECK(test_sh("'%s' translate --model '%s' --input '%s' --out '%s/t2' --quiet 2> '%s'", bin, gs, tiny, bench, err) == 1);
    CHECK(file_has(err, "tiny.png"));
    CHECK(file_has(err, "at least 8x8"));
}

int main(void)
{
    test_tiny_bench("taskgan", 8, 2, bench, src_spec, tgt_spec);
    /* f: a deeplab-mini as a source-only run would save it (random weights
     * with non-trivial BN statistics suffice: only its bytes are checked) */
    snprintf(fpath, sizeof fpath, "%s/f.safetensors", bench);
    sd_model *m = NULL;
    sd_model_opts mo = sd_model_opts_default("deeplab-mini");
    if (sd_model_create(&mo, &m)) {
        fprintf(stderr, "%s\n", sd_errmsg());
        return 1;
    }
    sd_model_init_weights(m, 3);
    sd_params *p = sd_model_params(m);
    for (int i = 0; i < p->n; i++)
        if (strstr(p->tensors[i]->name, "running_var"))
            for (size_t k = 0; k < p->tensors[i]->numel; k++)
                F32(p->tensors[i]->data)[k] = 0.5f + 0.01f * (float)k;
    if (sd_model_save(m, sd_model_default_norm("deeplab-mini"), fpath)) {
        fprintf(stderr, "%s\n", sd_errmsg());
        return 1;
    }
    sd_model_free(m);
    RUN(test_conventions_and_schedule);
    RUN(test_stages_resume_and_frozen_f);
    RUN(test_cli);
    RUN(test_alpha_zero_and_all_unlabelled);
    RUN(test_bad_inputs);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bench);
    TESTS_DONE();
}
