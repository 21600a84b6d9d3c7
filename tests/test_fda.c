/* FDA beyond the amplitude swap (that one is in test_train.c): the robust
 * entropy with a real exponent against values computed by hand; the
 * pseudo-label rule of the self-supervised stage (per-class percentile
 * capped at 0.9) on a hand-made probability map; a run with --pseudo-from
 * an ensemble of two checkpoints; resume with pseudo-labels on; errors
 * naming a missing or mismatched checkpoint; `segda eval --model A,B`
 * (with $SEGDA_BIN). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "da/pseudo.h"
#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/infer.h"
#include "segda/ops.h"
#include "segda/synth.h"
#include "segda/train.h"

static char bench[256], src_spec[300], tgt_spec[300];

static void make_bench(void)
{
    test_tiny_bench("fda", 6, 2, bench, src_spec, tgt_spec);
}

/* Trains method fda into bench/run-NAME with extra "key=value" settings. */
static sd_status run(const char *name, int n_extra, const char *const *extra)
{
    char out[400];
    snprintf(out, sizeof out, "%s/run-%s", bench, name);
    sd_config c;
    sd_config_init(&c);
    sd_config_set(&c, "method", "fda", "test", true);
    sd_config_set(&c, "source", src_spec, "test", true);
    sd_config_set(&c, "target", tgt_spec, "test", true);
    sd_config_set(&c, "out", out, "test", true);
    sd_config_set(&c, "threads", "1", "test", true);
    sd_config_set(&c, "log-every", "1000", "test", true);
    sd_config_set(&c, "crop", "48x32", "test", true);
    sd_config_set(&c, "flip", "true", "test", true);
    for (int i = 0; i < n_extra; i++) {
        char k[64];
        const char *eq = strchr(extra[i], '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - extra[i]), extra[i]);
        char origin[70];   /* as the command line names it */
        snprintf(origin, sizeof origin, "--%s", k);
        sd_config_set(&c, k, eq + 1, origin, true);
    }
    sd_status st = sd_train_run(&c);
    sd_config_free(&c);
    return st;
}

/* Values of term `key` on the iteration lines of a run's log.jsonl. */
static int read_term(const char *name, const char *key, double *vals, int cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/run-%s/log.jsonl", bench, name);
    return test_log_terms(path, key, vals, cap);
}

static void test_robust_entropy_real_eta(void)
{
    /* four pixels of three classes, logits [1, 3, 2, 2]:
     *   (0, 0, 0)         uniform: E = 1
     *   (0, ln 2, 0)      p = (1/4, 1/2, 1/4): H = 1.5 ln 2, E = 1.5 ln 2 / ln 3 = 0.946395
     *   (4, 0, -1)        E = 0.117497
     *   (1.5, -2, 0.3)    E = 0.579894
     * mean((E^2 + 1e-8)^eta), by numpy in float64: eta 2.5 -> 0.456201775,
     * 2 -> 0.478871167, 1.5 -> 0.511069387. */
    static const float px[4][3] = {{0, 0, 0}, {0, 0.69314718f, 0}, {4, 0, -1}, {1.5f, -2, 0.3f}};
    static const double want[3][2] = {{2.5, 0.456201775}, {2.0, 0.478871167}, {1.5, 0.511069387}};
    float data[12];
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 3; c++)
            data[c * 4 + k] = px[k][c];
    sd_tape t;
    CHECK_OK(sd_tape_init(&t, 1));
    for (int i = 0; i < 3; i++) {
        sd_tape_reset(&t);
        sd_tensor *x = sd_tensor_wrap(&t, 4, (int[]){1, 3, 2, 2}, data);
        sd_tensor *r = sd_fda_robust_entropy(&t, x, (float)want[i][0]);
        CHECK(r != NULL);
        if (r)
            CHECK_NEAR(F32(r->data)[0], want[i][1], 2e-6);
    }
    /* the hand value of pixel 2 alone at eta 2.5: (0.946395^2)^2.5 = 0.759210 */
    float one[3] = {0, 0.69314718f, 0};
    sd_tape_reset(&t);
    sd_tensor *r = sd_fda_robust_entropy(&t, sd_tensor_wrap(&t, 4, (int[]){1, 3, 1, 1}, one), 2.5f);
    CHECK(r && fabs(F32(r->data)[0] - 0.759210) < 2e-6);
    /* the gradient of the whole term at eta 2.5 by central differences */
    float base = data[5];
    double fd[2];
    for (int s = 0; s < 2; s++) {
        sd_tape_reset(&t);
        data[5] = base + (s ? -1e-2f : 1e-2f);
        sd_tensor *y = sd_fda_robust_entropy(&t, sd_tensor_wrap(&t, 4, (int[]){1, 3, 2, 2}, data), 2.5f);
        fd[s] = y ? F32(y->data)[0] : NAN;
    }
    data[5] = base;
    sd_tape_reset(&t);
    sd_tensor *x = sd_tensor_wrap(&t, 4, (int[]){1, 3, 2, 2}, data);
    x->requires_grad = true;
    sd_tensor *y = sd_fda_robust_entropy(&t, x, 2.5f);
    CHECK(y != NULL);
    if (y) {
        CHECK_OK(sd_backward1(&t, y));
        double num = (fd[0] - fd[1]) / 2e-2;
        CHECK_MSG(x->grad && fabs(F32(x->grad)[5] - num) < 1e-3 * fmax(1.0, fabs(num)), "d/dx %g, finite difference %g",
                  x->grad ? F32(x->grad)[5] : NAN, num);
    }
    /* a real exponent that is not finite is refused by the op */
    sd_tape_reset(&t);
    CHECK(sd_pow_scalar(&t, sd_tensor_wrap(&t, 4, (int[]){1, 3, 2, 2}, data), NAN) == NULL);
    CHECK_ERR_HAS("pow_scalar: exponent nan, expected a finite number");
    sd_tape_free(&t);
}

static void test_percentile_rule(void)
{
    /* 11 pixels of 3 classes; the winning class and its probability:
     *   class 0: 0.50 0.70 0.95 0.99           (4 pixels)
     *   class 1: 0.40 0.60 0.70 0.80 0.85      (5 pixels)
     *   class 2: 0.55 0.65                     (2 pixels)
     * quantile index round(m * q), half to even as numpy, of the sorted values:
     *   q 0.5:  class 0 idx 2 -> 0.95 -> cap 0.9; class 1 idx round(2.5) = 2 -> 0.70;
     *           class 2 idx 1 -> 0.65
     *   q 0.66: class 0 idx round(2.64) = 3 -> 0.99 -> cap 0.9; class 1 idx round(3.3) = 3
     *           -> 0.80; class 2 idx round(1.32) = 1 -> 0.65
     *   q 0.66 with cap 1: class 0 keeps only 0.99. */
    static const int cls[11] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2};
    static const float top[11] = {0.50f, 0.70f, 0.95f, 0.99f, 0.40f, 0.60f, 0.70f, 0.80f, 0.85f, 0.55f, 0.65f};
    float prob[3 * 11];
    for (int i = 0; i < 11; i++)
        for (int k = 0; k < 3; k++) /* the rest split evenly over the two others (each < top) */
            prob[k * 11 + i] = k == cls[i] ? top[i] : (1.0f - top[i]) / 2;
    static const struct {
        double q, cap;
        float thr[3];
        int keep[11];
    } cases[] = {
        {0.5, 0.9, {0.9f, 0.70f, 0.65f}, {0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1}},
        {0.66, 0.9, {0.9f, 0.80f, 0.65f}, {0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1}},
        {0.66, 1.0, {0.99f, 0.80f, 0.65f}, {0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 1}},
        {0.0, 0.9, {0.5f, 0.40f, 0.55f}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint8_t label[11];
        uint16_t conf[11];
        float thr[3];
        sd_pseudo_argmax(prob, 3, 11, label, conf);
        for (int i = 0; i < 11; i++)
            CHECK(label[i] == cls[i]);
        CHECK_OK(sd_pseudo_threshold_percentile(label, conf, 11, 3, cases[t].q, cases[t].cap, thr));
        for (int k = 0; k < 3; k++)
            CHECK_MSG(fabsf(thr[k] - cases[t].thr[k]) < 2e-5f, "q %g cap %g: class %d threshold %g, expected %g",
                      cases[t].q, cases[t].cap, k, thr[k], cases[t].thr[k]);
        for (int i = 0; i < 11; i++)
            CHECK_MSG(label[i] == (cases[t].keep[i] ? cls[i] : 255), "q %g cap %g: pixel %d labelled %d",
                      cases[t].q, cases[t].cap, i, label[i]);
    }
    /* a class nobody predicts gets threshold 0; bad settings are refused */
    uint8_t label[11];
    uint16_t conf[11];
    float thr[4];
    sd_pseudo_argmax(prob, 3, 11, label, conf);
    CHECK_OK(sd_pseudo_threshold_percentile(label, conf, 11, 4, 0.5, 0.9, thr));
    CHECK(thr[3] == 0.0f);
    CHECK(sd_pseudo_threshold_percentile(label, conf, 11, 3, 1.5, 0.9, thr) == SD_ERR_ARG);
    CHECK_ERR_HAS("percentile 1.5 and cap 0.9 must lie in [0, 1]");
}

static char ckpt_a[400], ckpt_b[400], from[900];

static void test_pseudo_run(void)
{
    /* the ensemble: two FDA models of different beta (the second also at a
     * real eta) */
    const char *a[] = {"iters=2", "beta=0.01"};
    const char *b[] = {"iters=2", "beta=0.09", "eta=2.5"};
    CHECK_OK(run("beta1", 2, a));
    CHECK_OK(run("beta9", 3, b));
    snprintf(ckpt_a, sizeof ckpt_a, "%s/run-beta1/last.safetensors", bench);
    snprintf(ckpt_b, sizeof ckpt_b, "%s/run-beta9/last.safetensors", bench);
    snprintf(from, sizeof from, "pseudo-from=%s,%s", ckpt_a, ckpt_b);
    /* percentile 0 with cap 0 keeps every pixel: the labels are then the
     * ensemble's argmax, checked against the two models run here */
    const char *p[] = {"iters=3", "eta=2.5", from, "pseudo-percentile=0", "pseudo-cap=0"};
    CHECK_OK(run("pseudo", 5, p));
    double v[8];
    CHECK_MSG(read_term("pseudo", "pseudo", v, 8) == 3, "pseudo term not logged 3 times");
    CHECK(read_term("pseudo", "ent", v, 8) == 3);
    char path[512];
    snprintf(path, sizeof path, "%s/run-pseudo/pseudo-fda.bin", bench);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == 6 * 64 * 32);
    /* recompute image 0's labels: mean softmax of the two models at full size */
    FILE *f = fopen(path, "rb");
    uint8_t lab[64 * 32];
    CHECK(f && fread(lab, 1, sizeof lab, f) == sizeof lab);
    if (f)
        fclose(f);
    sd_model *m[2];
    sd_norm norm;
    CHECK_OK(sd_model_load(ckpt_a, true, &m[0], &norm));
    CHECK_OK(sd_model_load(ckpt_b, true, &m[1], &norm));
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, tgt_spec, NULL, NULL));
    sd_sample smp;
    CHECK_OK(sd_dataset_read(&ds, 0, &smp));
    sd_tape t;
    CHECK_OK(sd_tape_init(&t, 1));
    float *x;
    CHECK_OK(sd_infer_input(smp.image, smp.w, smp.h, 3, 64, 32, norm, &x));
    float mean[19 * 64 * 32] = {0};
    for (int k = 0; k < 2; k++) {
        sd_tape_reset(&t);
        sd_tape_no_grad_begin(&t);
        sd_tensor *in = sd_tensor_new4(&t, 1, 3, 32, 64);
        memcpy(in->data, x, sizeof(float) * 3 * 64 * 32);
        sd_model_out o;
        CHECK_OK(sd_model_forward(m[k], &t, in, false, &o));
        sd_tensor *pr = sd_softmax(&t, sd_resize_bilinear(&t, o.logits, 32, 64, true));
        sd_tape_no_grad_end(&t);
        for (int i = 0; i < 19 * 64 * 32; i++)
            mean[i] += F32(pr->data)[i] / 2;
    }
    int differ = 0, close = 0;
    for (int i = 0; i < 64 * 32; i++) {
        int best = 0, second = -1;
        for (int k = 1; k < 19; k++)
            if (mean[k * 2048 + i] > mean[best * 2048 + i])
                best = k;
        for (int k = 0; k < 19; k++)
            if (k != best && (second < 0 || mean[k * 2048 + i] > mean[second * 2048 + i]))
                second = k;
        /* near-ties may fall either way with the order of float sums */
        if (mean[best * 2048 + i] - mean[second * 2048 + i] < 1e-5f)
            close++;
        else
            differ += lab[i] != best;
    }
    CHECK_MSG(differ == 0, "%d of %d pseudo-labels differ from the ensemble's argmax (%d near-ties)", differ, 64 * 32,
              close);
    free(x);
    sd_tape_free(&t);
    sd_sample_free(&smp);
    sd_dataset_free(&ds);
    sd_model_free(m[0]);
    sd_model_free(m[1]);
}

static bool same_weights(const char *a, const char *b)
{
    sd_model *x, *y;
    if (sd_model_load(a, true, &x, NULL))
        return false;
    if (sd_model_load(b, true, &y, NULL)) {
        sd_model_free(x);
        return false;
    }
    sd_params *px = sd_model_params(x), *py = sd_model_params(y);
    bool same = px->n_groups == py->n_groups;
    for (int g = 0; same && g < px->n_groups; g++)
        same = px->groups[g].numel == py->groups[g].numel &&
               !memcmp(px->groups[g].data, py->groups[g].data, px->groups[g].numel * sizeof(float));
    sd_model_free(x);
    sd_model_free(y);
    return same;
}

static void test_pseudo_resume(void)
{
    /* 4 iterations, and 2 + 2 with --resume: the same weights; the resumed
     * half reads pseudo-fda.bin back, so it needs no ensemble (a missing
     * checkpoint would be an error) */
    const char *a[] = {"iters=4", from};
    const char *b[] = {"iters=4", from, "stop-after=2"};
    CHECK_OK(run("resA", 2, a));
    CHECK_OK(run("resB", 3, b));
    char moved[420];
    snprintf(moved, sizeof moved, "%s.away", ckpt_b);
    CHECK(rename(ckpt_b, moved) == 0);
    const char *r[] = {"iters=4", from, "resume=true"};
    CHECK_OK(run("resB", 3, r));
    CHECK(rename(moved, ckpt_b) == 0);
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/run-resA/last.safetensors", bench);
    snprintf(pb, sizeof pb, "%s/run-resB/last.safetensors", bench);
    CHECK(same_weights(pa, pb));
    double la[8], lb[8];
    CHECK(read_term("resA", "pseudo", la, 8) == 4 && read_term("resB", "pseudo", lb, 8) == 4);
    CHECK(la[3] == lb[3] && la[1] == lb[1]);
}

static void test_pseudo_errors(void)
{
    char bad[900];
    snprintf(bad, sizeof bad, "pseudo-from=%s,%s/no-such.safetensors", ckpt_a, bench);
    const char *a[] = {"iters=1", bad};
    CHECK(run("missing", 2, a) != SD_OK);
    CHECK_ERR_HAS("--pseudo-from: ");
    CHECK_ERR_HAS("/no-such.safetensors");
    /* a checkpoint of another model */
    snprintf(bad, sizeof bad, "pseudo-from=%s", ckpt_a);
    const char *b[] = {"iters=1", bad, "model=deeplabv2-resnet18"};
    CHECK(run("othermodel", 3, b) == SD_ERR_ARG);
    CHECK_ERR_HAS("holds a deeplab-mini with 19 classes; the run trains a deeplabv2-resnet18 with 19");
    CHECK_ERR_HAS(ckpt_a);
    const char *c[] = {"iters=1", "eta=-1"};
    CHECK(run("badeta", 2, c) == SD_ERR_ARG);
    CHECK_ERR_HAS("eta = -1, expected a positive number");
}

static void test_eval_ensemble(void)
{
    const char *bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP test_eval_ensemble (no SEGDA_BIN)\n");
        return;
    }
    char cmd[3000], json[400], err[400];
    snprintf(json, sizeof json, "%s/ens.json", bench);
    snprintf(err, sizeof err, "%s/ens.err", bench);
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s,%s' --model '%s' --data 'cityscapes:%s/real:val' --threads 1 "
             "--json '%s' > /dev/null 2> '%s'", bin, ckpt_a, ckpt_b, ckpt_a, bench, json, err);
    CHECK(system(cmd) == 0);
    char buf[8192] = "", row[900];
    FILE *f = fopen(json, "r");
    if (f) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
        fclose(f);
    }
    snprintf(row, sizeof row, "\"%s,%s\"", ckpt_a, ckpt_b);
    CHECK_MSG(strstr(buf, row) && strstr(buf, "miou_19"), "no ensemble row in %s", json);
    /* a missing member fails, naming it */
    snprintf(cmd, sizeof cmd, "'%s' eval --model '%s,%s/gone.safetensors' --data 'cityscapes:%s/real:val' "
             "> /dev/null 2> '%s'", bin, ckpt_a, bench, bench, err);
    CHECK(system(cmd) != 0);
    buf[0] = 0;
    if ((f = fopen(err, "r"))) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = 0;
        fclose(f);
    }
    CHECK_MSG(strstr(buf, "gone.safetensors: cannot open"), "stderr: %s", buf);
}

int main(void)
{
    make_bench();
    RUN(test_robust_entropy_real_eta);
    RUN(test_percentile_rule);
    RUN(test_pseudo_run);
    RUN(test_pseudo_resume);
    RUN(test_pseudo_errors);
    RUN(test_eval_ensemble);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bench);
    TESTS_DONE();
}
