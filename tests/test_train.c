/* The training loop and the methods on a tiny generated benchmark: config
 * errors name their origin; resume is bit-identical to an uninterrupted
 * run; a NaN loss stops the run with the last checkpoint intact; kill -9
 * during saves never leaves a broken checkpoint; the discriminator learns
 * when the generator is frozen; MinEnt lowers target entropy; gradient
 * reversal flips the sign; FDA's amplitude swap moves the image mean;
 * training streams its data (peak memory does not grow with the dataset),
 * the loader's worker count does not change the weights, adabn changes
 * nothing but BN statistics, and crop boxes map
 * crop pixels onto the resized whole image exactly (ROAD, pseudo-labels). */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/image.h"
#include "segda/ops.h"
#include "segda/synth.h"
#include "segda/train.h"

static char bench[256], src_spec[300], tgt_spec[300];

static void make_bench(void)
{
    test_tiny_bench("train", 8, 4, bench, src_spec, tgt_spec);
}

/* A config for method m writing to bench/run-NAME, plus extra "key=value" pairs. */
static void base_cfg(sd_config *c, const char *m, const char *name, int n_extra, const char *const *extra)
{
    char out[400];
    snprintf(out, sizeof out, "%s/run-%s", bench, name);
    sd_config_init(c);
    sd_config_set(c, "method", m, "test", true);
    sd_config_set(c, "source", src_spec, "test", true);
    sd_config_set(c, "target", tgt_spec, "test", true);
    sd_config_set(c, "out", out, "test", true);
    sd_config_set(c, "threads", "1", "test", true);
    sd_config_set(c, "log-every", "1000", "test", true);
    for (int i = 0; i < n_extra; i++) {
        char k[64];
        const char *eq = strchr(extra[i], '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - extra[i]), extra[i]);
        sd_config_set(c, k, eq + 1, "test", true);
    }
}

static sd_status run(const char *m, const char *name, int n_extra, const char *const *extra)
{
    sd_config c;
    base_cfg(&c, m, name, n_extra, extra);
    sd_status st = sd_train_run(&c);
    sd_config_free(&c);
    return st;
}

/* Every tensor of two checkpoints byte-equal (metadata may differ: paths). */
static bool same_tensors(const char *a, const char *b, int *n_tensors)
{
    sd_ckpt x, y;
    if (sd_ckpt_open(a, &x))
        return false;
    if (sd_ckpt_open(b, &y)) {
        sd_ckpt_close(&x);
        return false;
    }
    bool same = x.st.n == y.st.n;
    for (int i = 0; same && i < x.st.n; i++) {
        int j = sd_st_find(&y.st, x.st.tensors[i].name);
        const sd_st_tensor *tx = &x.st.tensors[i], *ty = j >= 0 ? &y.st.tensors[j] : NULL;
        same = ty && tx->end - tx->begin == ty->end - ty->begin &&
               !memcmp(x.st.buf + x.st.data_start + tx->begin, y.st.buf + y.st.data_start + ty->begin,
                       tx->end - tx->begin);
        if (!same)
            fprintf(stderr, "  tensor %s differs\n", tx->name);
    }
    *n_tensors = x.st.n;
    sd_ckpt_close(&x);
    sd_ckpt_close(&y);
    return same;
}

static void path_of(char *buf, size_t cap, const char *name, const char *file)
{
    snprintf(buf, cap, "%s/run-%s/%s", bench, name, file);
}

/* The terms of every iteration line of a run's log.jsonl, as value of `key`. */
static int read_term(const char *name, const char *key, double *vals, int cap)
{
    char path[512];
    path_of(path, sizeof path, name, "log.jsonl");
    return test_log_terms(path, key, vals, cap);
}

static void test_config_errors(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.cfg", bench);
    FILE *f = fopen(path, "w");
    fprintf(f, "# a comment\nmethod = adaptseg\n\niters = 5\nlamda-adv = 0.1\n");
    fclose(f);
    sd_config c;
    sd_config_init(&c);
    CHECK_OK(sd_config_read(&c, path));
    const sd_method *m;
    CHECK(sd_train_resolve(&c, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("bad.cfg:5: unknown key 'lamda-adv'");
    sd_config_free(&c);

    sd_config_init(&c);
    sd_config_set(&c, "method", "fda", "--method", true);
    sd_config_set(&c, "grid", "3x3", "--grid", true);
    CHECK(sd_train_resolve(&c, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("'grid' is a setting of method road, not of fda");
    sd_config_free(&c);

    sd_config_init(&c);
    sd_config_set(&c, "method", "adaptseg", "--method", true);
    sd_config_set(&c, "gan", "wgan", "run.cfg:3", true);
    CHECK(sd_train_resolve(&c, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("run.cfg:3: gan = 'wgan': expected one of vanilla|ls");
    sd_config_set(&c, "gan", "ls", "run.cfg:3", true);
    sd_config_set(&c, "iters", "12x", "run.cfg:4", true);
    CHECK(sd_train_resolve(&c, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("run.cfg:4: iters = '12x': expected an integer");
    sd_config_set(&c, "iters", "12", "run.cfg:4", true);
    CHECK_OK(sd_train_resolve(&c, &m));
    CHECK(!strcmp(sd_config_get(&c, "lambda-adv-aux"), "0.0002"));   /* defaults filled */
    CHECK(!strcmp(sd_config_origin(&c, "levels"), "default"));
    sd_config_free(&c);

    /* bn: auto gives the method's published recipe from --init and train
     * from scratch (recorded with its origin), freeze-bn is the old
     * spelling, and the two may not disagree */
    const char *bn_cases[][4] = {
        {"adaptseg", NULL, NULL, "batch-stats"}, {"advent", NULL, NULL, "batch-stats"},
        {"fda", NULL, NULL, "batch-stats"},      {"source-only", NULL, NULL, "frozen"},
        {"road", NULL, NULL, "frozen"},          {"adaptseg", "freeze-bn", "true", "frozen"},
        {"adaptseg", "freeze-bn", "false", "train"}, {"source-only", "bn", "batch-stats", "batch-stats"},
        {"adaptseg", "init", "", "train"},       {"source-only", "init", "", "train"},
    };
    for (size_t i = 0; i < sizeof bn_cases / sizeof bn_cases[0]; i++) {
        sd_config_init(&c);
        sd_config_set(&c, "method", bn_cases[i][0], "--method", true);
        sd_config_set(&c, "init", "pretrained.safetensors", "--init", true);
        if (bn_cases[i][1])
            sd_config_set(&c, bn_cases[i][1], bn_cases[i][2], "--x", true);
        CHECK_OK(sd_train_resolve(&c, &m));
        CHECK_MSG(!strcmp(sd_config_get(&c, "bn"), bn_cases[i][3]), "%s: bn = %s, expected %s", bn_cases[i][0],
                  sd_config_get(&c, "bn"), bn_cases[i][3]);
        sd_config_free(&c);
    }
    sd_config_init(&c);
    sd_config_set(&c, "method", "adaptseg", "--method", true);
    sd_config_set(&c, "freeze-bn", "true", "run.cfg:2", true);
    sd_config_set(&c, "bn", "batch-stats", "--bn", true);
    CHECK(sd_train_resolve(&c, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("run.cfg:2: freeze-bn = true means bn = frozen, but --bn: bn = batch-stats");
    sd_config_free(&c);

    f = fopen(path, "w");
    fprintf(f, "iters 5\n");
    fclose(f);
    sd_config_init(&c);
    CHECK(sd_config_read(&c, path) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("bad.cfg:1: expected 'key = value'");
    sd_config_free(&c);
    int w, h;
    CHECK(sd_parse_size("64x", &w, &h) == SD_ERR_ARG);
    CHECK_OK(sd_parse_size("321x161", &w, &h));
    CHECK(w == 321 && h == 161);
    const char *big[] = {"iters=1", "crop=100x20", "source-size=80x40"};
    CHECK(run("source-only", "bigcrop", 3, big) == SD_ERR_ARG);
    CHECK_ERR_HAS("crop 100x20 is larger than source-size 80x40");
}

/* A duplicated key in a --config file is an error naming both lines; a
 * directory given as --config is refused; a crop too small for the model
 * is refused at start, naming crop and model. */
static void test_config_dup_dir_small_crop(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/dup.cfg", bench);
    FILE *f = fopen(path, "w");
    fprintf(f, "method = source-only\nlr = 0.1\n# again\nlr = 0.2\n");
    fclose(f);
    sd_config c;
    sd_config_init(&c);
    CHECK(sd_config_read(&c, path) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("dup.cfg:4: key 'lr' given twice (first at ");
    CHECK_ERR_HAS("dup.cfg:2)");
    sd_config_free(&c);
    sd_config_init(&c);
    CHECK(sd_config_read(&c, bench) == SD_ERR_IO);
    CHECK_ERR_HAS("not a regular file");
    sd_config_free(&c);
    const char *a[] = {"iters=1", "crop=4x4"};
    CHECK(run("source-only", "tinycrop", 2, a) == SD_ERR_ARG);
    CHECK_ERR_HAS("crop 4x4 is too small for model deeplab-mini");
    char p[512];
    path_of(p, sizeof p, "tinycrop", "log.jsonl");
    CHECK(access(p, F_OK) != 0);
}

static void test_resume_bit_identical(void)
{
    /* adaptseg: model, discriminator, SGD momentum and Adam state all resume */
    /* random crops and flips: the loaders must restart where they stopped */
    const char *a[] = {"iters=4", "disc-width=8", "crop=48x32", "flip=true"};
    const char *b[] = {"iters=4", "disc-width=8", "crop=48x32", "flip=true", "stop-after=2"};
    CHECK_OK(run("adaptseg", "resA", 4, a));
    CHECK_OK(run("adaptseg", "resB", 5, b));
    sd_config c;
    const char *r[] = {"iters=4", "disc-width=8", "crop=48x32", "flip=true", "resume=true"};
    base_cfg(&c, "adaptseg", "resB", 5, r);
    CHECK_OK(sd_train_run(&c));
    sd_config_free(&c);
    char pa[512], pb[512];
    path_of(pa, sizeof pa, "resA", "last.safetensors");
    path_of(pb, sizeof pb, "resB", "last.safetensors");
    int n = 0;
    CHECK(same_tensors(pa, pb, &n));
    CHECK(n > 20);   /* model + disc: + opt: tensors */
    double la[8], lb[8];
    CHECK(read_term("resA", "adv", la, 8) == 4 && read_term("resB", "adv", lb, 8) == 4);
    CHECK(la[3] == lb[3]);
    /* a finished run refuses to start over without --resume */
    CHECK(run("adaptseg", "resA", 4, a) == SD_ERR_ARG);
    CHECK_ERR_HAS("already holds a run");
}

/* --resume refuses settings that alter the result, naming each with its
 * saved and new value, unless resume-force (then said in log.jsonl); a
 * checkpoint whose iteration lies outside the run, or of another model, is
 * refused whatever the flags. */
static void test_resume_refuses_mismatch(void)
{
    const char *a[] = {"iters=4", "stop-after=2"};
    CHECK_OK(run("source-only", "mis", 2, a));
    const char *lr[] = {"iters=4", "lr=0.001", "resume=true"};
    CHECK(run("source-only", "mis", 3, lr) == SD_ERR_ARG);
    CHECK_ERR_HAS("lr: '2.5e-4' -> '0.001'");
    const char *src[] = {"iters=4", "seed=7", "batch=2,1", "resume=true"};
    CHECK(run("source-only", "mis", 4, src) == SD_ERR_ARG);
    CHECK_ERR_HAS("seed: '1' -> '7'");
    CHECK_ERR_HAS("batch: '1,1' -> '2,1'");
    CHECK_ERR_HAS("--resume-force");
    const char *it[] = {"iters=6", "resume=true"};
    CHECK(run("source-only", "mis", 2, it) == SD_ERR_ARG);
    CHECK_ERR_HAS("iters: '4' -> '6'");
    /* settings that only report, evaluate or schedule saves may change */
    const char *ok[] = {"iters=4", "log-every=1", "save-every=1", "workers=0", "resume=true", "stop-after=3"};
    CHECK_OK(run("source-only", "mis", 6, ok));
    const char *force[] = {"iters=4", "lr=0.001", "resume=true", "resume-force=true"};
    CHECK_OK(run("source-only", "mis", 4, force));
    char p[512];
    path_of(p, sizeof p, "mis", "log.jsonl");
    char *log = test_slurp(p, NULL);
    CHECK(log && strstr(log, "\"resume_force\": \"lr: '2.5e-4' -> '0.001'\""));
    free(log);
    /* finished at 4: as the checkpoint of a 2-iteration run it is out of range */
    const char *short_run[] = {"iters=2", "resume=true", "resume-force=true"};
    CHECK(run("source-only", "mis", 3, short_run) == SD_ERR_DATA);
    CHECK_ERR_HAS("stored iteration '4' is outside this run's 0..2");
    const char *model[] = {"iters=4", "model=deeplabv2-resnet18", "resume=true", "resume-force=true"};
    sd_status st = run("source-only", "mis", 4, model);
    CHECK(st == SD_ERR_DATA);
    CHECK_ERR_HAS("holds model 'deeplab-mini', resuming with --model deeplabv2-resnet18");
}

/* A second run into a locked --out refuses, naming the holder's pid; the
 * run that holds the lock writes its own pid into RUNDIR/.lock. */
static void test_run_dir_lock(void)
{
    char dir[400], lock[450];
    snprintf(dir, sizeof dir, "%s/run-locked", bench);
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    CHECK(mkdir(dir, 0755) == 0);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    CHECK(fd >= 0 && write(fd, "4242\n", 5) == 5 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    const char *a[] = {"iters=1"};
    CHECK(run("source-only", "locked", 1, a) == SD_ERR_ARG);
    CHECK_ERR_HAS("in use by another process (pid 4242");
    CHECK_ERR_HAS("run-locked");
    char p[512];
    path_of(p, sizeof p, "locked", "log.jsonl");
    CHECK(access(p, F_OK) != 0); /* refused before touching the run's files */
    close(fd);
    CHECK_OK(run("source-only", "locked", 1, a));
    char *held = test_slurp(lock, NULL), want[32];
    snprintf(want, sizeof want, "%d\n", (int)getpid());
    CHECK(held && !strcmp(held, want));
    free(held);
}

/* Validation on a benchmark of its own (its files are damaged here): a val
 * image with an unreadable header stops the run before iteration 1 naming
 * the file, or is skipped and listed with skip-bad; an image whose header
 * reads but whose data does not fails the evaluation, which is logged by
 * name while training goes on, with last.safetensors saved before it. */
static void test_val_checked_and_eval_failure_survived(void)
{
    char vb[256], vs[300], vt[300];
    test_tiny_bench("trainval", 2, 2, vb, vs, vt);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, vt, "val", NULL));
    if (ds.n < 1) {
        CHECK(ds.n >= 1);
        return;
    }
    char img[1024];
    snprintf(img, sizeof img, "%s", ds.samples[0].image_path);
    sd_dataset_free(&ds);
    size_t len = 0;
    char *orig = test_slurp(img, &len);
    CHECK(orig && len > 100);
    char out[400], logp[450], lastp[450];
    sd_config c;
    const char *a[] = {"iters=2", "eval-every=1", "method=source-only"};

    FILE *f = fopen(img, "wb");
    fputs("junk", f);
    fclose(f);
    base_cfg(&c, "source-only", "x", 3, a);
    sd_config_set(&c, "source", vs, "test", true);
    sd_config_set(&c, "target", vt, "test", true);
    snprintf(out, sizeof out, "%s/run-badhdr", vb);
    sd_config_set(&c, "out", out, "test", true);
    CHECK(sd_train_run(&c) == SD_ERR_DATA);
    CHECK_ERR_HAS(img);
    CHECK_ERR_HAS("--skip-bad");
    snprintf(logp, sizeof logp, "%s/log.jsonl", out);
    CHECK(access(logp, F_OK) != 0); /* stopped before iteration 1 */
    sd_config_set(&c, "skip-bad", "true", "test", true);
    CHECK_OK(sd_train_run(&c));
    char *log = test_slurp(logp, NULL);
    CHECK(log && strstr(log, "\"val_skipped\"") && strstr(log, img));
    free(log);
    sd_config_free(&c);

    f = fopen(img, "wb");
    fwrite(orig, 1, 100, f); /* the header survives, the pixels do not */
    fclose(f);
    base_cfg(&c, "source-only", "x", 3, a);
    sd_config_set(&c, "source", vs, "test", true);
    sd_config_set(&c, "target", vt, "test", true);
    snprintf(out, sizeof out, "%s/run-badpix", vb);
    sd_config_set(&c, "out", out, "test", true);
    sd_train_summary sum;
    CHECK_OK(sd_train_run_summary(&c, &sum));
    CHECK(sum.iters == 2 && sum.eval_failures == 2);
    sd_config_free(&c);
    snprintf(logp, sizeof logp, "%s/log.jsonl", out);
    log = test_slurp(logp, NULL);
    CHECK(log && strstr(log, "{\"it\": 1, \"eval_error\": ") && strstr(log, "{\"it\": 2, \"eval_error\": "));
    CHECK(log && strstr(log, img));
    free(log);
    snprintf(lastp, sizeof lastp, "%s/last.safetensors", out);
    sd_ckpt ck;
    CHECK_OK(sd_ckpt_open(lastp, &ck));
    const char *it = sd_ckpt_meta(&ck, SD_META_ITER);
    CHECK(it && !strcmp(it, "2"));
    sd_ckpt_close(&ck);
    free(orig);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", vb);
    CHECK(system(cmd) == 0);
}

/* deeplab-mini's weights saved to path with `classes` classes, metadata
 * model `name` and classes `meta_classes` (0: as the model), one weight NaN
 * when poison. */
static void save_mini(const char *path, int classes, const char *name, int meta_classes, bool poison)
{
    sd_model_opts mo = sd_model_opts_default("deeplab-mini");
    mo.classes = classes;
    sd_model *m;
    CHECK_OK(sd_model_create(&mo, &m));
    sd_model_init_weights(m, 3);
    sd_params *p = sd_model_params(m);
    if (poison)
        F32(p->tensors[p->n / 2]->data)[1] = NAN;
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_model(&w, m, SD_NORM_IMAGENET));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_MODEL, name));
    char buf[16];
    snprintf(buf, sizeof buf, "%d", meta_classes ? meta_classes : classes);
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_CLASSES, buf));
    CHECK_OK(sd_ckpt_writer_save(&w, path));
    sd_ckpt_writer_free(&w);
    sd_model_free(m);
}

/* --init refuses a checkpoint of another model (by its metadata) or with
 * mis-shaped tensors, listing them, unless partial-init; loading a model
 * for predict/eval/gap (sd_model_load) refuses mis-shaped tensors and
 * non-finite weights, naming the tensor. */
static void test_weights_checked(void)
{
    char other[400], cls5[400], lie[400], nan[400], init[450];
    snprintf(other, sizeof other, "%s/other-model.safetensors", bench);
    snprintf(cls5, sizeof cls5, "%s/five-classes.safetensors", bench);
    snprintf(lie, sizeof lie, "%s/meta-lies.safetensors", bench);
    snprintf(nan, sizeof nan, "%s/nan.safetensors", bench);
    save_mini(other, 19, "deeplabv2-resnet18", 0, false);
    save_mini(cls5, 5, "deeplab-mini", 0, false);
    save_mini(lie, 5, "deeplab-mini", 19, false);
    save_mini(nan, 19, "deeplab-mini", 0, true);
    sd_log_set_level(0);
    snprintf(init, sizeof init, "init=%s", other);
    const char *a[] = {"iters=1", init, "partial-init=false"};
    CHECK(run("source-only", "init-other", 2, a) == SD_ERR_DATA);
    CHECK_ERR_HAS("holds model 'deeplabv2-resnet18', not 'deeplab-mini'");
    CHECK_ERR_HAS("--partial-init");
    a[2] = "partial-init=true";
    CHECK_OK(run("source-only", "init-other", 3, a));
    snprintf(init, sizeof init, "init=%s", cls5);
    a[2] = "partial-init=false";
    CHECK(run("source-only", "init-cls5", 3, a) == SD_ERR_DATA);
    CHECK_ERR_HAS("tensors mis-shaped");
    CHECK_ERR_HAS("[5,");
    a[2] = "partial-init=true";
    CHECK_OK(run("source-only", "init-cls5", 3, a));
    snprintf(init, sizeof init, "init=%s", nan);
    CHECK(run("source-only", "init-nan", 2, a) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("non-finite");

    sd_model *m = NULL;
    sd_norm norm;
    CHECK(sd_model_load(lie, false, &m, &norm) == SD_ERR_DATA);
    CHECK_ERR_HAS("mis-shaped");
    CHECK(m == NULL);
    CHECK(sd_model_load(nan, false, &m, &norm) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("nan.safetensors: tensor '");
    CHECK_OK(sd_model_load(cls5, false, &m, &norm)); /* a 5-class model, whole */
    if (m)
        sd_model_free(m);
    sd_log_set_level(1);
}

static void test_nan_stops_cleanly(void)
{
    setenv("SEGDA_INJECT_NAN_AT", "3", 1);
    const char *a[] = {"iters=6", "save-every=1"};
    sd_status st = run("source-only", "nan", 2, a);
    unsetenv("SEGDA_INJECT_NAN_AT");
    CHECK(st == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("iteration 3: loss term 'seg' is NaN");
    CHECK_ERR_HAS("last.safetensors holds iteration 2");
    char p[512];
    path_of(p, sizeof p, "nan", "last.safetensors");
    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(p, &c));
    const char *it = sd_ckpt_meta(&c, SD_META_ITER);
    CHECK(it && !strcmp(it, "2"));
    /* the weights saved are finite */
    bool finite = true;
    for (int i = 0; i < c.st.n; i++) {
        float *v = malloc(c.st.tensors[i].numel * sizeof(float) + 4);
        if (v && !sd_st_to_f32(&c.st, i, v))
            for (uint64_t j = 0; j < c.st.tensors[i].numel; j++)
                finite &= isfinite(v[j]) != 0;
        free(v);
    }
    CHECK(finite);
    sd_ckpt_close(&c);
}

static void test_kill_during_save(void)
{
    /* A child trains saving every iteration; it is killed with SIGKILL at
     * several moments. Whatever moment, last.safetensors opens. */
    int opened = 0;
    for (int k = 0; k < 4; k++) {
        char name[32];
        snprintf(name, sizeof name, "kill%d", k);
        pid_t pid = fork();
        if (pid == 0) {
            const char *a[] = {"iters=1000", "save-every=1"};
            run("source-only", name, 2, a);
            _exit(0);
        }
        usleep(1500000 + 230000 * k);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char p[512];
        path_of(p, sizeof p, name, "last.safetensors");
        if (access(p, F_OK) != 0)
            continue;
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(p, &c));
        opened++;
        sd_ckpt_close(&c);
    }
    CHECK_MSG(opened > 0, "no child got as far as a first save");
}

static void test_disc_learns_with_frozen_generator(void)
{
    /* A briefly trained source-only model predicts differently on the two
     * domains; with its learning rate 0 (generator frozen) only D learns,
     * and its loss must fall well below log 2. */
    /* G must have learnt enough for its outputs to differ by domain; with
     * less (10 iterations at lr 0.002) D's progress depends on the seed */
    const char *pre[] = {"iters=20", "lr=0.005"};
    CHECK_OK(run("source-only", "dpre", 2, pre));
    char init[600];
    snprintf(init, sizeof init, "init=%s/run-dpre/last.safetensors", bench);
    /* bn frozen: with batch statistics (adaptseg's published default) each
     * domain's batch is normalised by its own statistics, which hides much
     * of what this fixed G tells the domains apart by */
    const char *a[] = {"iters=30", "disc-width=16", "lr=0", "lr-d=2e-3", init, "bn=frozen"};
    CHECK_OK(run("adaptseg", "dfrozen", 6, a));
    double s[40], t[40], g[40];
    int n = read_term("dfrozen", "d_src", s, 40);
    CHECK(n == 30 && read_term("dfrozen", "d_tgt", t, 40) == 30 && read_term("dfrozen", "seg", g, 40) == 30);
    double first = (s[0] + t[0]) / 2, last = 0;
    for (int i = n - 5; i < n; i++)
        last += (s[i] + t[i]) / 10;
    CHECK_MSG(last < 0.85 * first, "D loss %g -> %g (mean of the last 5)", first, last);
}

static void test_minent_lowers_entropy(void)
{
    const char *a[] = {"mode=minent", "iters=10", "lambda-ent=0", "lr=0.001"};
    const char *b[] = {"mode=minent", "iters=10", "lambda-ent=2", "lr=0.001"};
    CHECK_OK(run("advent", "ent0", 4, a));
    CHECK_OK(run("advent", "ent1", 4, b));
    double e0[16], e1[16], m0 = 0, m1 = 0;
    CHECK(read_term("ent0", "ent", e0, 16) == 10 && read_term("ent1", "ent", e1, 16) == 10);
    CHECK(e0[0] == e1[0]);   /* same start */
    for (int i = 1; i < 10; i++) {
        m0 += e0[i] / 9;
        m1 += e1[i] / 9;
    }
    CHECK_MSG(m1 < m0 && e1[9] < e0[9], "mean target entropy with MinEnt %g, without %g (last %g vs %g)", m1, m0,
              e1[9], e0[9]);
}

static void test_every_method_runs(void)
{
    /* each method, two iterations, logs its own terms */
    static const struct {
        const char *method, *name, *extra, *term;
    } cases[] = {
        {"oracle", "m-oracle", "lambda-aux=0.1", "seg"},
        {"feature-adv", "m-fadv", "disc-width=8", "dom_tgt"},
        {"adaptseg", "m-as-multi", "levels=multi", "adv_aux"},
        {"road", "m-road", "grid=2x2", "spatial"},
        {"road", "m-road-src", "distill=source", "dist"},
        {"advent", "m-advent-multi", "levels=multi", "d_tgt_aux"},
        {"fda", "m-fda", "beta=0.09", "ent"},
        {"selftrain", "m-cbst", "mode=cbst", "pseudo"},
        {"selftrain", "m-stuff", "mode=stuff", "pseudo"},
        {"selftrain", "m-mt", "mode=mean-teacher", "confident"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool has_disc = !strcmp(cases[i].method, "feature-adv") || !strcmp(cases[i].method, "adaptseg") ||
                        !strcmp(cases[i].method, "road") || !strcmp(cases[i].method, "advent");
        const char *a[] = {"iters=2", cases[i].extra, "disc-width=8"};
        sd_status st = run(cases[i].method, cases[i].name, has_disc ? 3 : 2, a);
        CHECK_MSG(st == SD_OK, "%s (%s): %s", cases[i].method, cases[i].extra, sd_errmsg());
        double v[4];
        CHECK_MSG(read_term(cases[i].name, cases[i].term, v, 4) == 2, "%s: term %s not logged twice", cases[i].name,
                  cases[i].term);
    }
    /* finetune starts from a checkpoint and keeps a seeded subset */
    char init[600];
    snprintf(init, sizeof init, "init=%s/run-m-oracle/last.safetensors", bench);
    const char *f[] = {"iters=2", "target-labels=3", init};
    CHECK_OK(run("finetune", "m-ft", 3, f));
    const char *nf[] = {"iters=2"};
    CHECK(run("finetune", "m-ft-noinit", 1, nf) == SD_ERR_ARG);
    CHECK_ERR_HAS("give --init");
}

/* adabn: the weights of --init unchanged, the BN statistics replaced, one
 * "images" value per iteration; N + N with --resume equals 2N; no --init
 * is an error. */
static void test_adabn_keeps_weights(void)
{
    const char *b[] = {"iters=2"};
    CHECK_OK(run("source-only", "ab-base", 1, b));
    char init[600], base[512], out[512];
    path_of(base, sizeof base, "ab-base", "last.safetensors");
    snprintf(init, sizeof init, "init=%s", base);
    const char *a[] = {"iters=4", "batch=1,2", "flip=true", init};
    CHECK_OK(run("adabn", "ab", 4, a));
    double v[8];
    CHECK(read_term("ab", "images", v, 8) == 4 && v[3] == 8);
    path_of(out, sizeof out, "ab", "last.safetensors");
    sd_ckpt x, y;
    CHECK_OK(sd_ckpt_open(base, &x));
    CHECK_OK(sd_ckpt_open(out, &y));
    int same = 0, stats_changed = 0, weights_changed = 0;
    for (int i = 0; i < x.st.n; i++) {
        const sd_st_tensor *tx = &x.st.tensors[i];
        int j = sd_st_find(&y.st, tx->name);
        if (strchr(tx->name, ':') || j < 0)
            continue;
        const sd_st_tensor *ty = &y.st.tensors[j];
        bool eq = tx->end - tx->begin == ty->end - ty->begin &&
                  !memcmp(x.st.buf + x.st.data_start + tx->begin, y.st.buf + y.st.data_start + ty->begin,
                          tx->end - tx->begin);
        bool stat = strstr(tx->name, "running_") != NULL;
        same += eq;
        stats_changed += stat && !eq;
        weights_changed += !stat && !eq;
        if (!stat && !eq)
            fprintf(stderr, "  adabn changed weight %s\n", tx->name);
    }
    CHECK(same > 20 && weights_changed == 0 && stats_changed > 10);
    sd_ckpt_close(&x);
    sd_ckpt_close(&y);

    const char *s[] = {"iters=4", "batch=1,2", "flip=true", init, "stop-after=2"};
    CHECK_OK(run("adabn", "ab-res", 5, s));
    const char *r[] = {"iters=4", "batch=1,2", "flip=true", init, "resume=true"};
    CHECK_OK(run("adabn", "ab-res", 5, r));
    char res[512];
    path_of(res, sizeof res, "ab-res", "last.safetensors");
    int n = 0;
    CHECK(same_tensors(out, res, &n));
    const char *ni[] = {"iters=2"};
    CHECK(run("adabn", "ab-noinit", 1, ni) == SD_ERR_ARG);
    CHECK_ERR_HAS("give --init");
}

/* A folder: dataset of n samples, all links to one 400x200 image/label
 * pair (so making it is cheap, while reading it is as for distinct files). */
static void make_folder_set(const char *root, int n)
{
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/images", root);
    mkdir(root, 0777);
    mkdir(a, 0777);
    snprintf(a, sizeof a, "%s/labels", root);
    mkdir(a, 0777);
    sd_image img, lab;
    sd_image_alloc(&img, 400, 200, 3, 8);
    sd_image_alloc(&lab, 400, 200, 1, 8);
    uint8_t *p = img.data, *l = lab.data;
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 400; x++) {
            p[(y * 400 + x) * 3] = (uint8_t)(x * 3 + y * 5);
            p[(y * 400 + x) * 3 + 1] = (uint8_t)(x ^ y);
            p[(y * 400 + x) * 3 + 2] = (uint8_t)y;
            l[y * 400 + x] = (uint8_t)((x / 40 + y / 50 * 3) % 19);
        }
    snprintf(a, sizeof a, "%s/images/s000.png", root);
    snprintf(b, sizeof b, "%s/labels/s000.png", root);
    CHECK_OK(sd_png_write(a, &img));
    CHECK_OK(sd_png_write(b, &lab));
    sd_image_free(&img);
    sd_image_free(&lab);
    for (int i = 1; i < n; i++)
        for (int k = 0; k < 2; k++) {
            char src[600], dst[600];
            snprintf(src, sizeof src, "%s/%s/s000.png", root, k ? "labels" : "images");
            snprintf(dst, sizeof dst, "%s/%s/s%03d.png", root, k ? "labels" : "images", i);
            CHECK(link(src, dst) == 0);
        }
}

/* Peak resident memory (KiB) of a child that trains one pass over `spec`. */
static long train_peak_kib(const char *spec, const char *name, int iters)
{
    pid_t pid = fork();
    if (pid == 0) {
        char it[32], out[600];
        snprintf(it, sizeof it, "%d", iters);
        snprintf(out, sizeof out, "%s/run-%s", bench, name);
        sd_config c;
        sd_config_init(&c);
        sd_config_set(&c, "method", "source-only", "test", true);
        sd_config_set(&c, "source", spec, "test", true);
        sd_config_set(&c, "out", out, "test", true);
        sd_config_set(&c, "iters", it, "test", true);
        sd_config_set(&c, "batch", "4,0", "test", true);
        sd_config_set(&c, "crop", "32x32", "test", true);
        sd_config_set(&c, "threads", "1", "test", true);
        sd_config_set(&c, "log-every", "1000", "test", true);
        _exit(sd_train_run(&c) == SD_OK ? 0 : 1);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return ru.ru_maxrss;
}

static void test_memory_independent_of_dataset_size(void)
{
    /* One pass over 8 and over 128 images of 400x200: a loop that kept the
     * images it had read (320 KB each with the label) would peak about 38 MB
     * higher on the larger set; the streaming loader's peak is the same. */
    char small[400], large[400], s_spec[420], l_spec[420];
    snprintf(small, sizeof small, "%s/mem8", bench);
    snprintf(large, sizeof large, "%s/mem128", bench);
    make_folder_set(small, 8);
    make_folder_set(large, 128);
    snprintf(s_spec, sizeof s_spec, "folder:%s", small);
    snprintf(l_spec, sizeof l_spec, "folder:%s", large);
    long a = train_peak_kib(s_spec, "mem8", 32), b = train_peak_kib(l_spec, "mem128", 32);
    CHECK_MSG(a > 0 && b > 0, "training children failed (%ld, %ld)", a, b);
    fprintf(stderr, "  peak memory: %ld KiB over 8 images, %ld KiB over 128\n", a, b);
    CHECK_MSG(b - a < 12 * 1024, "peak memory %ld KiB on 8 images, %ld KiB on 128: grows with the dataset", a, b);
}

static void test_workers_same_weights(void)
{
    /* adaptseg reads both domains; crops and flips are drawn per sample, so
     * 1 and 3 loader threads must give byte-identical weights */
    const char *a[] = {"iters=3", "disc-width=8", "crop=48x32", "flip=true", "batch=2,2", "workers=1"};
    const char *b[] = {"iters=3", "disc-width=8", "crop=48x32", "flip=true", "batch=2,2", "workers=3"};
    CHECK_OK(run("adaptseg", "w1", 6, a));
    CHECK_OK(run("adaptseg", "w3", 6, b));
    char pa[512], pb[512];
    path_of(pa, sizeof pa, "w1", "last.safetensors");
    path_of(pb, sizeof pb, "w3", "last.safetensors");
    int n = 0;
    CHECK(same_tensors(pa, pb, &n));
    CHECK(n > 20);
    /* and the weights did move: another seed gives others */
    const char *c[] = {"iters=3", "disc-width=8", "crop=48x32", "flip=true", "batch=2,2", "workers=3", "seed=2"};
    CHECK_OK(run("adaptseg", "w3s2", 7, c));
    path_of(pb, sizeof pb, "w3s2", "last.safetensors");
    CHECK(!same_tensors(pa, pb, &n));
}

static void test_crop_box_maps_to_resized_image(void)
{
    /* What selftrain does with offline pseudo-labels: a training crop's
     * pixels, mapped through its box onto the whole image resized to the
     * run's size, must be those very pixels (flip included). */
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, tgt_spec, NULL, NULL));
    sd_augment full = {.base_w = 48, .base_h = 24, .image_interp = SD_INTERP_BICUBIC, .norm = sd_norm_caffe,
                       .raw_rgb = true};
    sd_loader_opts o = {.batch = 2, .workers = 2, .seed = 7, .shuffle = true, .images_only = true, .aug = full};
    o.aug.crop_w = 20;
    o.aug.crop_h = 10;
    o.aug.flip = true;
    sd_loader *l;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    int flips = 0, mismatches = 0;
    float whole[3 * 48 * 24];
    for (int it = 0; it < 6; it++) {
        const sd_batch *b;
        CHECK_OK(sd_loader_next(l, &b));
        CHECK(b->label == NULL);
        for (int k = 0; k < b->n; k++) {
            sd_sample smp;
            CHECK_OK(sd_dataset_read(&ds, b->index[k], &smp));
            sd_rng r = sd_rng_fork(1, 1);
            CHECK_OK(sd_augment_sample(&full, &r, &smp, whole, NULL, NULL));
            sd_sample_free(&smp);
            const sd_crop_box *box = &b->box[k];
            flips += box->flipped;
            for (int y = 0; y < b->h; y++)
                for (int x = 0; x < b->w; x++) {
                    double fx, fy;
                    sd_crop_box_point(box, b->w, b->h, x + 0.5, y + 0.5, &fx, &fy);
                    int px = (int)floor(fx * 48 / box->full_w), py = (int)floor(fy * 24 / box->full_h);
                    for (int c = 0; c < 3; c++)
                        mismatches += b->image[(((size_t)k * 3 + c) * b->h + y) * b->w + x] !=
                                      whole[((size_t)c * 24 + py) * 48 + px];
                }
        }
    }
    CHECK_MSG(mismatches == 0, "%d crop pixels differ from the resized image at their box position", mismatches);
    CHECK(flips > 0 && flips < 12);
    sd_loader_free(l);
    sd_dataset_free(&ds);
}

static void test_grad_reverse_flips_sign(void)
{
    sd_tape t;
    CHECK_OK(sd_tape_init(&t, 1));
    sd_params p;
    sd_params_init(&p);
    int g = sd_params_add_group(&p, "x", 1, 1, false);
    sd_tensor *x = sd_params_declare(&p, g, "x", 4, (int[]){1, 2, 1, 1});
    CHECK_OK(sd_params_alloc(&p));
    F32(x->data)[0] = 0.3f;
    F32(x->data)[1] = -1.0f;
    /* loss = mean(2 * R(x)): without R, dL/dx = 1; with R(lambda 0.25), -0.25 */
    sd_tensor *loss = sd_mean(&t, sd_scale(&t, sd_grad_reverse(&t, x, 0.25f), 2.0f));
    CHECK(loss != NULL);
    if (loss) {
        CHECK_NEAR(F32(loss->data)[0], -0.7, 1e-6);
        CHECK_OK(sd_backward1(&t, loss));
        CHECK_NEAR(F32(x->grad)[0], -0.25, 1e-6);
        CHECK_NEAR(F32(x->grad)[1], -0.25, 1e-6);
    }
    sd_params_free(&p);
    sd_tape_free(&t);
}

static void test_fda_swap(void)
{
    /* b = floor(min(h,w) * beta) = 1 swaps the amplitudes of the four corner
     * bins (0,0), (0,w-1), (h-1,0), (h-1,w-1). Bin (0,0) is the sum; both
     * sums are positive (phase 0), so the result's mean becomes the
     * target's. Checked on a power-of-two size and an odd one. */
    int sizes[2][2] = {{8, 16}, {5, 7}};
    for (int s = 0; s < 2; s++) {
        int h = sizes[s][0], w = sizes[s][1];
        float src[128], trg[128], orig[128];
        double mt = 0;
        for (int i = 0; i < h * w; i++) {
            src[i] = orig[i] = 100.0f + 50.0f * sinf((float)i * 0.7f);
            trg[i] = 30.0f + 10.0f * cosf((float)i * 1.3f);
            mt += trg[i];
        }
        mt /= h * w;
        CHECK_OK(sd_fda_swap_channel(src, trg, h, w, 0.0f));
        CHECK(!memcmp(src, orig, sizeof(float) * (size_t)(h * w)));   /* beta 0: unchanged */
        CHECK_OK(sd_fda_swap_channel(src, trg, h, w, 1.0f / (float)(h < w ? h : w) + 1e-4f));
        double m = 0;
        for (int i = 0; i < h * w; i++)
            m += src[i];
        m /= h * w;
        CHECK_NEAR(m, mt, 1e-3);
        /* with only the corner bins changed, the image is not the target */
        CHECK(fabs(src[1] - trg[1]) > 1.0f);
    }
}

/* Every network tensor of ref (names without a namespace) equals the
 * tensor prefix+name of file run. */
static bool module_is(const char *run_path, const char *prefix, const char *ref_path)
{
    sd_ckpt x, y;
    if (sd_ckpt_open(run_path, &x))
        return false;
    if (sd_ckpt_open(ref_path, &y)) {
        sd_ckpt_close(&x);
        return false;
    }
    bool same = true;
    int n = 0;
    for (int i = 0; same && i < y.st.n; i++) {
        const sd_st_tensor *ty = &y.st.tensors[i];
        if (strchr(ty->name, ':'))
            continue;
        char nm[512];
        snprintf(nm, sizeof nm, "%s%s", prefix, ty->name);
        int j = sd_st_find(&x.st, nm);
        const sd_st_tensor *tx = j >= 0 ? &x.st.tensors[j] : NULL;
        same = tx && tx->end - tx->begin == ty->end - ty->begin &&
               !memcmp(x.st.buf + x.st.data_start + tx->begin, y.st.buf + y.st.data_start + ty->begin,
                       ty->end - ty->begin);
        n++;
    }
    sd_ckpt_close(&x);
    sd_ckpt_close(&y);
    return same && n > 0;
}

static void test_road_teacher(void)
{
    /* p0 (from scratch) -> p1 (--init p0) -> road --init p1: the default
     * teacher is p0, the root of the chain (the pretrained backbone in the
     * demo), not p1; after training it is still p0 bit for bit, running
     * statistics included (the teacher normalises with the batch like the
     * student's target pass, writing nothing). --teacher picks another. */
    char p0[600], p1[600], i1[620], t1[700], bad[620];
    const char *a0[] = {"iters=2", "lr=0.01"};
    CHECK_OK(run("source-only", "tp0", 2, a0));
    snprintf(p0, sizeof p0, "%s/run-tp0/last.safetensors", bench);
    snprintf(i1, sizeof i1, "init=%s", p0);
    const char *a1[] = {"iters=2", "lr=0.01", i1};
    CHECK_OK(run("source-only", "tp1", 3, a1));
    snprintf(p1, sizeof p1, "%s/run-tp1/last.safetensors", bench);
    snprintf(i1, sizeof i1, "init=%s", p1);
    for (int k = 0; k < 2; k++) {
        const char *ar[] = {"iters=2", "spatial=false", "lr=0.01", i1, k ? "bn=batch-stats" : "bn=frozen"};
        CHECK_OK(run("road", k ? "troad-bs" : "troad", 5, ar));
        char last[600];
        snprintf(last, sizeof last, "%s/run-%s/last.safetensors", bench, k ? "troad-bs" : "troad");
        CHECK_MSG(module_is(last, "teacher:", p0), "bn %d: the default teacher is not the root of the --init chain", k);
        CHECK(!module_is(last, "teacher:", p1));
        CHECK(!module_is(last, "", p1));   /* the student did train */
    }
    snprintf(t1, sizeof t1, "teacher=%s", p1);
    const char *at[] = {"iters=1", "spatial=false", i1, t1};
    CHECK_OK(run("road", "troad-t", 4, at));
    char last[600];
    snprintf(last, sizeof last, "%s/run-troad-t/last.safetensors", bench);
    CHECK(module_is(last, "teacher:", p1));
    /* a teacher that is not a checkpoint of the model: the error names it */
    snprintf(bad, sizeof bad, "%s/not-a-teacher.safetensors", bench);
    FILE *f = fopen(bad, "w");
    fprintf(f, "hello\n");
    fclose(f);
    snprintf(t1, sizeof t1, "teacher=%s", bad);
    const char *ab[] = {"iters=1", "spatial=false", i1, t1};
    CHECK(run("road", "troad-bad", 4, ab) != SD_OK);
    CHECK_ERR_HAS("not-a-teacher.safetensors");
    snprintf(t1, sizeof t1, "teacher=%s/missing.safetensors", bench);
    CHECK(run("road", "troad-missing", 4, ab) != SD_OK);
    CHECK_ERR_HAS("missing.safetensors");
}

static bool file_has_line(const char *path, const char *line)
{
    FILE *f = fopen(path, "r");
    char buf[1024];
    bool found = false;
    while (f && !found && fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = 0;
        found = !strcmp(buf, line);
    }
    if (f)
        fclose(f);
    return found;
}

static void test_adversarial_weights_and_disc_names(void)
{
    /* lambda-adv: auto is the published value and config.txt says which;
     * 0 is 0 (it used to mean "published") */
    const char *cases[][3] = {{"lambda-adv=auto", "gan=vanilla", "lambda-adv = 0.001"},
                              {"lambda-adv=auto", "gan=ls", "lambda-adv = 0.01"},
                              {"lambda-adv=0", "gan=vanilla", "lambda-adv = 0"}};
    for (int k = 0; k < 3; k++) {
        char name[32], path[600];
        snprintf(name, sizeof name, "lam%d", k);
        const char *a[] = {"iters=1", "disc-width=8", cases[k][0], cases[k][1]};
        CHECK_OK(run("adaptseg", name, 4, a));
        path_of(path, sizeof path, name, "config.txt");
        CHECK_MSG(file_has_line(path, cases[k][2]), "%s: config.txt lacks '%s'", cases[k][0], cases[k][2]);
    }
    const char *neg[] = {"iters=1", "lambda-adv=-1"};
    CHECK(run("adaptseg", "lamneg", 2, neg) == SD_ERR_ARG);
    CHECK_ERR_HAS("lambda-adv = '-1': expected auto or a number >= 0");

    /* An FCDiscriminator state dict (conv1..conv4, classifier: AdaptSegNet's
     * D1/D2 converted by name) loads into both levels; with lr-d 0 the run's
     * discriminators are still exactly it */
    sd_disc *d;
    CHECK_OK(sd_disc_create(SD_DISC_OUTPUT, 19, 8, NULL, &d));
    sd_disc_init_weights(d, 77);
    char dpath[600], arg[700], arg2[700], last[600];
    snprintf(dpath, sizeof dpath, "%s/D1.safetensors", bench);
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_params(&w, "", sd_disc_params(d)));
    CHECK_OK(sd_ckpt_writer_save(&w, dpath));
    sd_ckpt_writer_free(&w);
    sd_disc_free(d);
    snprintf(arg, sizeof arg, "disc-init=%s", dpath);
    snprintf(arg2, sizeof arg2, "disc-aux-init=%s", dpath);
    for (int k = 0; k < 2; k++) {
        const char *a[] = {"iters=1", "disc-width=8", "levels=multi", "lr-d=0", arg, arg2};
        CHECK_OK(run(k ? "advent" : "adaptseg", k ? "dinit-adv" : "dinit", 6, a));
        path_of(last, sizeof last, k ? "dinit-adv" : "dinit", "last.safetensors");
        CHECK(module_is(last, "disc:", dpath));
        CHECK(module_is(last, "disc_aux:", dpath));
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(last, &c));
        CHECK(sd_st_find(&c.st, "disc:conv1.weight") >= 0 && sd_st_find(&c.st, "disc:classifier.bias") >= 0);
        sd_ckpt_close(&c);
    }
    /* ADVENT's nn.Sequential names (0, 2, 4, 6, 8) load as well */
    {
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(dpath, &c));
        char spath[600];
        snprintf(spath, sizeof spath, "%s/d_main_seq.safetensors", bench);
        sd_st_entry e[10];
        float *bufs[10];
        const char *ours[5] = {"conv1", "conv2", "conv3", "conv4", "classifier"};
        char names[10][32];
        for (int i = 0; i < 10; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "%s.%s", ours[i / 2], i % 2 ? "bias" : "weight");
            snprintf(names[i], sizeof names[i], "%d.%s", 2 * (i / 2), i % 2 ? "bias" : "weight");
            int k = sd_st_find(&c.st, nm);
            CHECK(k >= 0);
            const sd_st_tensor *t = &c.st.tensors[k];
            bufs[i] = malloc(t->numel * sizeof(float));
            CHECK_OK(sd_st_to_f32(&c.st, k, bufs[i]));
            memset(&e[i], 0, sizeof e[i]);
            e[i].name = names[i];
            e[i].data = bufs[i];
            e[i].ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++)
                e[i].shape[d] = t->shape[d];
        }
        sd_ckpt_close(&c);
        CHECK_OK(sd_st_write(spath, 10, e, 0, NULL, NULL));
        for (int i = 0; i < 10; i++)
            free(bufs[i]);
        snprintf(arg, sizeof arg, "disc-init=%s", spath);
        const char *a[] = {"iters=1", "disc-width=8", "levels=single", "lr-d=0", arg};
        CHECK_OK(run("advent", "dinit-seq", 5, a));
        path_of(last, sizeof last, "dinit-seq", "last.safetensors");
        CHECK(module_is(last, "disc:", dpath));
    }
    /* a checkpoint of the segmentation network is not a discriminator */
    path_of(last, sizeof last, "lam0", "last.safetensors");
    snprintf(arg, sizeof arg, "disc-init=%s", last);
    const char *b[] = {"iters=1", "disc-width=8", arg};
    CHECK(run("adaptseg", "dinit-bad", 3, b) != SD_OK);
    CHECK_ERR_HAS("expected FCDiscriminator tensors");
    CHECK_ERR_HAS("run-lam0/last.safetensors");
}

/* Stuff-only pseudo-labels (Saleh et al.'s background ps-GT): with
 * pseudo-classes=stuff and every prediction kept (portion 1) the stored
 * labels hold no thing class (trainIds 11..18) but do hold stuff; the same
 * run with all classes holds things, so the check can fail. */
static int count_bytes(const char *name, int lo, int hi, size_t *total)
{
    char p[600];
    path_of(p, sizeof p, name, "pseudo-round-0.bin");
    size_t n = 0;
    uint8_t *b = test_slurp(p, &n);
    int c = 0;
    for (size_t i = 0; b && i < n; i++)
        c += b[i] >= lo && b[i] <= hi;
    *total = b ? n : 0;
    free(b);
    return c;
}

static void test_pseudo_stuff_only(void)
{
    const char *a[] = {"iters=2", "mode=cbst", "portion=1", "portion-max=1", "pseudo-classes=stuff"};
    const char *b[] = {"iters=2", "mode=cbst", "portion=1", "portion-max=1", "pseudo-classes=all"};
    CHECK_OK(run("selftrain", "ps-stuff", 5, a));
    CHECK_OK(run("selftrain", "ps-all", 5, b));
    size_t n1 = 0, n2 = 0;
    int things = count_bytes("ps-stuff", 11, 18, &n1), stuff = count_bytes("ps-stuff", 0, 10, &n1);
    int things_all = count_bytes("ps-all", 11, 18, &n2);
    CHECK(n1 > 0 && n1 == n2);
    CHECK_MSG(things == 0 && stuff > 0, "stuff-only labels: %d thing, %d stuff bytes of %zu", things, stuff, n1);
    CHECK_MSG(things_all > 0, "all-class labels hold no thing pixel (%zu bytes): the check above cannot fail",
              n2);
    /* resumable: a resumed run reloads the stored labels and finishes */
    const char *s1[] = {"iters=4", "mode=cbst", "portion=1", "pseudo-classes=stuff", "stop-after=2"};
    const char *s2[] = {"iters=4", "mode=cbst", "portion=1", "pseudo-classes=stuff", "resume=true"};
    CHECK_OK(run("selftrain", "ps-res", 5, s1));
    CHECK_OK(run("selftrain", "ps-res", 5, s2));
    double v[8];
    CHECK(read_term("ps-res", "pseudo", v, 8) == 4);
    const char *bad[] = {"iters=2", "pseudo-classes=things"};
    CHECK(run("selftrain", "ps-bad", 2, bad) != SD_OK);
}

int main(void)
{
    make_bench();
    RUN(test_config_errors);
    RUN(test_grad_reverse_flips_sign);
    RUN(test_fda_swap);
    RUN(test_resume_bit_identical);
    RUN(test_resume_refuses_mismatch);
    RUN(test_config_dup_dir_small_crop);
    RUN(test_run_dir_lock);
    RUN(test_weights_checked);
    RUN(test_val_checked_and_eval_failure_survived);
    RUN(test_nan_stops_cleanly);
    RUN(test_disc_learns_with_frozen_generator);
    RUN(test_minent_lowers_entropy);
    RUN(test_kill_during_save);
    RUN(test_every_method_runs);
    RUN(test_pseudo_stuff_only);
    RUN(test_adabn_keeps_weights);
    RUN(test_road_teacher);
    RUN(test_adversarial_weights_and_disc_names);
    RUN(test_crop_box_maps_to_resized_image);
    RUN(test_workers_same_weights);
    RUN(test_memory_independent_of_dataset_size);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", bench);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", bench);
    TESTS_DONE();
}
