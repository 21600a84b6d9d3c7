/* The workloads of `segda bench` (segda/bench.h): whole train and inference
 * steps from the public model, op and optimiser API, timed step by step, each
 * in a forked child for its own peak RSS. Printing stays in src/cli/. */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "segda/bench.h"
#include "segda/data.h"
#include "segda/infer.h"
#include "segda/loader.h"
#include "segda/model.h"
#include "segda/ops.h"
#include "segda/optim.h"
#include "segda/synth.h"

static const char *const names[SD_BENCH_COUNT] = {"vgg321", "r101", "adaptseg", "r101-infer", "r101-infer-2k",
                                                   "mini", "loader"};

const char *sd_bench_name(sd_bench_workload w) { return (unsigned)w < SD_BENCH_COUNT ? names[w] : "?"; }

int sd_bench_parse(const char *name)
{
    for (int i = 0; i < SD_BENCH_COUNT; i++)
        if (name && !strcmp(name, names[i]))
            return i;
    return -1;
}

sd_bench_opts sd_bench_opts_default(void)
{
    return (sd_bench_opts){.precision = SD_DTYPE_F32, .threads = 2, .warmup = 1, .iters = 3, .seed = 1};
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median / min / max of n step times (sorts t) */
static void summarise(double *t, int n, sd_bench_result *r)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    r->iters = n;
    r->min_ms = t[0];
    r->max_ms = t[n - 1];
    r->median_ms = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    r->gflops = r->median_ms > 0 ? r->gflop / (r->median_ms * 1e-3) : 0;
}

/* ---- one model with its optimiser, inputs and labels ---- */

typedef struct bench_net {
    sd_model *m;
    sd_tape t;
    sd_optim opt;
    bool tape_ok, opt_ok;
    int n, h, w;
    float *x[2];          /* [n][3][h][w] random "normalised" images: source, target */
    uint8_t *label;       /* [n][h][w] classes 0..18, about 10% ignored (255) */
} bench_net;

static void net_free(bench_net *b)
{
    if (b->opt_ok)
        sd_optim_free(&b->opt);
    if (b->tape_ok)
        sd_tape_free(&b->t);
    if (b->m)
        sd_model_free(b->m);
    free(b->x[0]);
    free(b->x[1]);
    free(b->label);
    memset(b, 0, sizeof *b);
}

/* Frozen BN of a randomly initialised network keeps identity statistics
 * (mean 0, variance 1), so activations grow through ResNet-101's 33 residual
 * blocks (a first loss near 5e4 at 128x64) and the first SGD step makes the
 * next one NaN, which would time a different computation. One AdaBN pass
 * over a random batch gives the statistics a pretrained network's would
 * have; weights are untouched. */
static sd_status calibrate_bn(sd_model *m, sd_tape *t, uint64_t seed)
{
    sd_tape_reset(t);
    sd_tensor *x = sd_tensor_new4(t, 1, 3, 128, 256);
    if (!x)
        return sd_fail_prefix(t->status ? t->status : SD_ERR_NOMEM, "bench: BN calibration input");
    sd_rng rng = sd_rng_fork(seed, 13);
    float *xd = malloc(x->numel * sizeof *xd);
    if (!xd)
        return sd_fail(SD_ERR_NOMEM, "bench: BN calibration input");
    for (size_t i = 0; i < x->numel; i++)
        xd[i] = sd_rng_normal(&rng);
    sd_status st = sd_tensor_from_host(x, xd);   /* (the tape may be a device's: --device) */
    free(xd);
    if (!st)
        st = sd_model_reestimate_bn(m, t, x, 0);
    sd_tape_reset(t);
    return st;
}

static sd_status net_init(bench_net *b, const char *model, bool freeze_bn, bool aux, int w, int h,
                          const sd_bench_opts *o)
{
    memset(b, 0, sizeof *b);
    sd_model_opts mo = sd_model_opts_default(model);
    mo.bn = freeze_bn ? SD_BN_FROZEN : SD_BN_TRAIN;
    mo.aux = aux;
    sd_status st = sd_model_create(&mo, &b->m);
    if (st)
        return st;
    sd_model_init_weights(b->m, o->seed);
    if ((st = sd_params_to_device(sd_model_params(b->m), sd_device_selected())) ||
        (st = sd_tape_init_on(&b->t, o->seed, sd_device_selected())))
        return st;
    b->tape_ok = true;
    if (freeze_bn && (st = calibrate_bn(b->m, &b->t, o->seed)))
        return st;
    /* DeepLab's SGD; the values matter only in that the step does the work */
    sd_optim_opts so = sd_optim_opts_sgd(0.9f, 5e-4f);
    if ((st = sd_optim_init(&b->opt, sd_model_params(b->m), &so)))
        return st;
    b->opt_ok = true;
    b->n = 1;
    b->h = h;
    b->w = w;
    size_t px = (size_t)b->n * h * w;
    b->x[0] = sd_malloc(px * 3 * sizeof(float));
    b->x[1] = sd_malloc(px * 3 * sizeof(float));
    b->label = sd_malloc(px);
    if (!b->x[0] || !b->x[1] || !b->label)
        return SD_ERR_NOMEM;
    sd_rng rng = sd_rng_fork(o->seed, 7);
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < px * 3; i++)
            b->x[k][i] = sd_rng_normal(&rng);
    for (size_t i = 0; i < px; i++)
        b->label[i] = sd_rng_uniform(&rng) < 0.1f ? 255 : (uint8_t)sd_rng_int(&rng, 19);
    return SD_OK;
}

/* The tape for the next step: empty, training mode, the chosen precision
 * (set every step, so nothing that resets the tape can drop it). */
static void step_begin(bench_net *b, const sd_bench_opts *o)
{
    sd_tape_reset(&b->t);
    b->t.training = true;
    b->t.compute = o->precision;
    sd_params_zero_grad(sd_model_params(b->m));
}

static sd_tensor *input(bench_net *b, int k)
{
    int shape[4] = {b->n, 3, b->h, b->w};
    return sd_tensor_wrap(&b->t, 4, shape, b->x[k]);
}

/* CE (ignore 255) of logits upsampled to the input, as the trainer's seg loss */
static sd_tensor *seg_loss(bench_net *b, sd_tensor *logits)
{
    sd_tensor *up = sd_resize_bilinear(&b->t, logits, b->h, b->w, true);
    return sd_cross_entropy(&b->t, up, b->label, NULL, 255);
}

static sd_status tape_status(bench_net *b, const char *what)
{
    sd_status st = b->t.status ? b->t.status : SD_ERR_ARG;
    return sd_fail_prefix(st, "bench: %s", what);
}

static sd_status train_step(bench_net *b, const sd_bench_opts *o, double *loss)
{
    step_begin(b, o);
    sd_model_out out;
    sd_status st = sd_model_forward(b->m, &b->t, input(b, 0), true, &out);
    if (st)
        return st;
    sd_tensor *l = seg_loss(b, out.logits);
    if (!l)
        return tape_status(b, "segmentation loss");
    if ((st = sd_backward1(&b->t, l)))
        return st;
    *loss = sd_tensor_item(l);
    return sd_optim_step(&b->opt, 2.5e-4f);
}

/* ---- AdaptSegNet, multi-level: the step of src/da/adaptseg.c without the trainer ----
 * The method itself runs only inside sd_trainer (datasets on disk, a run
 * directory, its config), so its step is composed here from the same calls:
 * the timing then holds no file reading and no logging. */

typedef struct bench_disc {
    sd_disc *d;
    sd_optim opt;
    bool opt_ok;
} bench_disc;

static void disc_free(bench_disc *d)
{
    if (d->opt_ok)
        sd_optim_free(&d->opt);
    if (d->d)
        sd_disc_free(d->d);
    memset(d, 0, sizeof *d);
}

static sd_status disc_init(bench_disc *d, const char *prefix, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    sd_status st = sd_disc_create(SD_DISC_OUTPUT, 19, 64, prefix, &d->d);
    if (st)
        return st;
    sd_disc_init_weights(d->d, seed);
    if ((st = sd_params_to_device(sd_disc_params(d->d), sd_device_selected())))
        return st;
    sd_optim_opts ao = sd_optim_opts_adam(0.9f, 0.99f);
    if ((st = sd_optim_init(&d->opt, sd_disc_params(d->d), &ao)))
        return st;
    d->opt_ok = true;
    return SD_OK;
}

static void disc_freeze(bench_disc *d, bool frozen)
{
    sd_params *p = sd_disc_params(d->d);
    for (int g = 0; g < p->n_groups; g++)
        if (!p->groups[g].is_buffer)
            sd_params_set_frozen(p, g, frozen);
}

static sd_tensor *prob(bench_net *b, sd_tensor *logits, bool detach)
{
    if (detach)
        logits = sd_detach(&b->t, logits);
    return sd_softmax(&b->t, sd_resize_bilinear(&b->t, logits, b->h, b->w, true));
}

static sd_tensor *gan(bench_net *b, bench_disc *d, sd_tensor *x, float label)
{
    return sd_bce_logits_const(&b->t, sd_disc_forward(d->d, &b->t, x), label);
}

static sd_status adaptseg_step(bench_net *b, bench_disc d[2], const sd_bench_opts *o, double *loss)
{
    step_begin(b, o);
    for (int k = 0; k < 2; k++) {
        sd_params_zero_grad(sd_disc_params(d[k].d));
        disc_freeze(&d[k], true);
    }
    sd_model_out os, ot;
    sd_status st = sd_model_forward(b->m, &b->t, input(b, 0), true, &os);
    if (st)
        return st;
    sd_tensor *g[4] = {seg_loss(b, os.logits), seg_loss(b, os.aux_logits)};
    if ((st = sd_model_forward(b->m, &b->t, input(b, 1), true, &ot)))
        return st;
    sd_tensor *pt = prob(b, ot.logits, false), *pt_aux = prob(b, ot.aux_logits, false);
    g[2] = gan(b, &d[0], pt, 0.0f);
    g[3] = gan(b, &d[1], pt_aux, 0.0f);
    for (int i = 0; i < 4; i++)
        if (!g[i])
            return tape_status(b, "adaptseg generator losses");
    /* AdaptSegNet's published weights: aux 0.1, adversarial 0.001 / 0.0002 */
    const float gw[4] = {1.0f, 0.1f, 0.001f, 0.0002f};
    if ((st = sd_backward(&b->t, 4, g, gw)))
        return st;
    sd_tensor *dl[4];
    for (int k = 0; k < 2; k++) {
        disc_freeze(&d[k], false);
        dl[2 * k] = gan(b, &d[k], prob(b, k ? os.aux_logits : os.logits, true), 0.0f);
        dl[2 * k + 1] = gan(b, &d[k], sd_detach(&b->t, k ? pt_aux : pt), 1.0f);
    }
    for (int i = 0; i < 4; i++)
        if (!dl[i])
            return tape_status(b, "adaptseg discriminator losses");
    const float dw[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    if ((st = sd_backward(&b->t, 4, dl, dw)))
        return st;
    *loss = sd_tensor_item(g[0]) + 0.1 * sd_tensor_item(g[1]);
    if ((st = sd_optim_step(&b->opt, 2.5e-4f)))
        return st;
    for (int k = 0; k < 2 && !st; k++)
        st = sd_optim_step(&d[k].opt, 1e-4f);
    return st;
}

/* Convolutions of one output-space discriminator (19 -> 64 -> 128 -> 256 ->
 * 512 -> 1, 4x4 stride 2 pad 1) on an h x w input, GFLOPs. */
static double disc_gflop(int h, int w)
{
    const int ch[6] = {19, 64, 128, 256, 512, 1};
    double f = 0;
    for (int i = 0; i < 5; i++) {
        h = (h + 2 - 4) / 2 + 1;
        w = (w + 2 - 4) / 2 + 1;
        f += 2.0 * ch[i] * ch[i + 1] * 16 * h * w;
    }
    return f * 1e-9;
}

static sd_status model_gflop(const char *model, bool aux, int w, int h, double *gf)
{
    sd_model_opts mo = sd_model_opts_default(model);
    mo.aux = aux;
    size_t params;
    return sd_model_cost(&mo, h, w, &params, gf);
}

/* ---- the timed loops ---- */

static void arena_stats(const sd_tape *t, sd_bench_result *r)
{
    r->arena_mb = (double)t->store.held / (1 << 20);
    r->arena_peak_mb = (double)t->store.peak / (1 << 20);
}

typedef struct spec {
    const char *model;
    bool freeze_bn, aux;
    int w, h;
} spec;

static sd_status run_train(sd_bench_workload wl, const sd_bench_opts *o, sd_bench_result *r)
{
    static const spec specs[] = {
        [SD_BENCH_VGG321] = {"deeplabv2-vgg16", false, false, 321, 321},
        [SD_BENCH_R101] = {"deeplabv2-resnet101", true, false, 512, 256},
        [SD_BENCH_ADAPTSEG] = {"deeplabv2-resnet101", true, true, 512, 256},
        /* the demo: batch norm trained, whole 256x128 frames (batch 1 here) */
        [SD_BENCH_MINI] = {"deeplab-mini", false, false, 256, 128},
    };
    const spec *s = &specs[wl];
    bool adv = wl == SD_BENCH_ADAPTSEG;
    double fwd;
    sd_status st = model_gflop(s->model, s->aux, s->w, s->h, &fwd);
    if (st)
        return st;
    /* two network passes with backward; six discriminator passes */
    r->gflop = adv ? 2 * 3 * fwd + 2 * 3 * 3 * disc_gflop(s->h, s->w) : 3 * fwd;
    snprintf(r->model, sizeof r->model, "%s", s->model);
    r->w = s->w;
    r->h = s->h;
    r->batch = 1;
    bench_net b;
    bench_disc d[2] = {{0}, {0}};
    double *t = sd_calloc((size_t)o->iters, sizeof *t);
    if (!t)
        return SD_ERR_NOMEM;
    if ((st = net_init(&b, s->model, s->freeze_bn, s->aux, s->w, s->h, o)))
        goto done;
    if (adv && ((st = disc_init(&d[0], "disc", o->seed ^ 0x5a)) || (st = disc_init(&d[1], "disc_aux", o->seed ^ 0xa5))))
        goto done;
    for (int i = 0; i < o->warmup + o->iters && !st; i++) {
        double t0 = now_ms();
        st = adv ? adaptseg_step(&b, d, o, &r->loss) : train_step(&b, o, &r->loss);
        if (i >= o->warmup)
            t[i - o->warmup] = now_ms() - t0;
    }
    if (!st && !isfinite(r->loss))
        st = sd_fail(SD_ERR_NUMERIC, "the last step's loss is %g", r->loss);
    arena_stats(&b.t, r);
    if (!st)
        summarise(t, o->iters, r);
done:
    disc_free(&d[0]);
    disc_free(&d[1]);
    net_free(&b);
    free(t);
    return st;
}

static sd_status run_infer(const sd_bench_opts *o, int w, int h, sd_bench_result *r)
{
    const char *model = "deeplabv2-resnet101";
    const int classes = 19;
    sd_status st = model_gflop(model, false, w, h, &r->gflop);
    if (st)
        return st;
    snprintf(r->model, sizeof r->model, "%s", model);
    r->w = w;
    r->h = h;
    r->batch = 1;
    sd_model_opts mo = sd_model_opts_default(model);
    sd_model *m = NULL;
    sd_tape t;
    bool tape_ok = false;
    uint8_t *px = sd_malloc((size_t)w * h * 3), *pred = sd_malloc((size_t)w * h);
    float *probs = sd_malloc((size_t)classes * w * h * sizeof(float));
    double *times = sd_calloc((size_t)o->iters, sizeof *times);
    if (!px || !pred || !probs || !times) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    sd_rng rng = sd_rng_fork(o->seed, 9);
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        px[i] = (uint8_t)sd_rng_int(&rng, 256);
    if ((st = sd_model_create(&mo, &m)))
        goto done;
    sd_model_init_weights(m, o->seed);
    if ((st = sd_params_to_device(sd_model_params(m), sd_device_selected())) ||
        (st = sd_tape_init_on(&t, o->seed, sd_device_selected())))
        goto done;
    tape_ok = true;
    if ((st = calibrate_bn(m, &t, o->seed)))
        goto done;
    /* `segda predict` with no --size: the image as it is, one scale, no flip */
    sd_infer_opts io = sd_infer_opts_default(sd_model_default_norm(model));
    for (int i = 0; i < o->warmup + o->iters && !st; i++) {
        t.compute = o->precision;
        double t0 = now_ms();
        if (!(st = sd_infer_probs(m, &t, px, w, h, 3, &io, probs)))
            sd_probs_argmax(probs, classes, w, h, pred, NULL);
        if (i >= o->warmup)
            times[i - o->warmup] = now_ms() - t0;
    }
    if (!st)
        summarise(times, o->iters, r);
    if (tape_ok)
        arena_stats(&t, r);
done:
    if (tape_ok)
        sd_tape_free(&t);
    if (m)
        sd_model_free(m);
    free(px);
    free(pred);
    free(probs);
    free(times);
    return st;
}

/* ---- loader ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* batches/s of a 2-worker loader after its first batch (workers started) */
static sd_status loader_rate(const sd_dataset *ds, const sd_augment *aug, int n, uint64_t seed, double *bps)
{
    sd_loader_opts lo = {.batch = 1, .workers = 2, .seed = seed, .shuffle = true, .aug = *aug};
    sd_loader *l;
    sd_status st = sd_loader_init(&l, ds, &lo);
    if (st)
        return st;
    const sd_batch *b;
    if (!(st = sd_loader_next(l, &b))) {
        double t0 = now_ms();
        for (int i = 0; i < n && !st; i++)
            st = sd_loader_next(l, &b);
        double dt = now_ms() - t0;
        *bps = dt > 0 ? 1e3 * n / dt : 0;
    }
    sd_loader_free(l);
    return st;
}

static sd_status run_loader(const sd_bench_opts *o, sd_bench_result *r)
{
    char dir[] = "/tmp/segda-bench-XXXXXX", spec_a[96], spec_e[96];
    const char *sa = o->data, *se = o->data;
    sd_status st = SD_OK;
    bool made = false;
    if (!o->data) {
        if (!mkdtemp(dir))
            return sd_fail(SD_ERR_IO, "bench loader: temporary directory in /tmp: %s", strerror(errno));
        made = true;
        /* GTA5-like frames for the 321 crops; the demo's 256x128 for mini */
        const int size[2][2] = {{640, 360}, {256, 128}};
        const char *sub[2] = {"a", "e"};
        char *specs[2] = {spec_a, spec_e};
        for (int k = 0; k < 2 && !st; k++) {
            char path[64];
            snprintf(path, sizeof path, "%s/%s", dir, sub[k]);
            sd_synth_opts so;
            sd_synth_opts_init(&so);
            so.n_sim = 24;
            so.n_real = so.n_real_val = 0;
            so.w = size[k][0];
            so.h = size[k][1];
            so.seed = o->seed;
            so.threads = o->threads;
            so.quiet = true;
            st = sd_synth_write(path, &so);
            snprintf(specs[k], 96, "gta5:%s/sim", path);
        }
        sa = spec_a;
        se = spec_e;
    }
    sd_dataset ds[2];
    int opened = 0;
    for (int k = 0; k < 2 && !st; k++)
        if (!(st = sd_dataset_open(&ds[k], k ? se : sa, NULL, NULL)))
            opened++;
    if (!st) {
        /* the trainers' pipelines: DeepLab's 321 crop with flips; the demo's whole frames with flips */
        sd_augment a = {.crop_w = 321, .crop_h = 321, .flip = true, .norm = *sd_norm_params_of(SD_NORM_CAFFE)};
        sd_augment e = {.base_w = 256, .base_h = 128, .flip = true, .norm = *sd_norm_params_of(SD_NORM_IMAGENET)};
        /* enough batches that the prefetched ones (2 per worker) hardly count */
        int n = 100 + 20 * o->iters;
        if (!(st = loader_rate(&ds[0], &a, n, o->seed, &r->loader_bps_321)))
            st = loader_rate(&ds[1], &e, 2 * n, o->seed, &r->loader_bps_mini);
        r->iters = n;
    }
    for (int k = 0; k < opened; k++)
        sd_dataset_free(&ds[k]);
    if (made)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(r->model, sizeof r->model, "%s", "");
    r->w = 321;
    r->h = 321;
    r->batch = 1;
    /* one "step" = one 321 batch, so the time columns mean something */
    if (!st && r->loader_bps_321 > 0)
        r->median_ms = r->min_ms = r->max_ms = 1e3 / r->loader_bps_321;
    return st;
}

sd_status sd_bench_run(sd_bench_workload w, const sd_bench_opts *o, sd_bench_result *r)
{
    memset(r, 0, sizeof *r);
    if ((unsigned)w >= SD_BENCH_COUNT)
        return sd_fail(SD_ERR_ARG, "bench: unknown workload %d", (int)w);
    if (o->precision != SD_DTYPE_F32 && o->precision != SD_DTYPE_BF16)
        return sd_fail(SD_ERR_ARG, "bench: precision %d, expected f32 or bf16", (int)o->precision);
    if (o->threads < 1 || o->iters < 1 || o->warmup < 0)
        return sd_fail(SD_ERR_ARG, "bench: threads %d, iters %d, warmup %d: expected >= 1, >= 1, >= 0", o->threads,
                       o->iters, o->warmup);
    snprintf(r->workload, sizeof r->workload, "%s", names[w]);
    sd_set_threads(o->threads);
    sd_status st;
    if (w == SD_BENCH_LOADER)
        st = run_loader(o, r);
    else if (w == SD_BENCH_R101_INFER || w == SD_BENCH_R101_INFER_2K)
        st = w == SD_BENCH_R101_INFER ? run_infer(o, 1024, 512, r) : run_infer(o, 2048, 1024, r);
    else
        st = run_train(w, o, r);
    if (st)
        return sd_fail_prefix(st, "bench %s", names[w]);
    return SD_OK;
}

/* ---- children ---- */

/* what a child sends back: status, result, message */
typedef struct child_msg {
    sd_status st;
    sd_bench_result r;
    double value;
    char msg[512];
} child_msg;

static bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

typedef void (*child_fn)(const void *arg, child_msg *m);

/* Runs fn in a forked child (fresh OpenMP and BLAS pools, its own peak
 * RSS); *m gets its answer, *rss_mb its peak resident set. */
static sd_status in_child(const char *what, child_fn fn, const void *arg, child_msg *m, double *rss_mb)
{
    int fd[2];
    if (pipe(fd))
        return sd_fail(SD_ERR_IO, "%s: pipe: %s", what, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return sd_fail(SD_ERR_NOMEM, "%s: fork: %s", what, strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        child_msg cm;
        memset(&cm, 0, sizeof cm);
        fn(arg, &cm);
        if (cm.st)
            snprintf(cm.msg, sizeof cm.msg, "%s", sd_errmsg());
        write_all(fd[1], &cm, sizeof cm);
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    bool got = read_all(fd[0], m, sizeof *m);
    close(fd[0]);
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0)
        if (errno != EINTR)
            return sd_fail(SD_ERR_IO, "%s: wait: %s", what, strerror(errno));
    if (!got || !WIFEXITED(status) || WEXITSTATUS(status))
        return sd_fail(SD_ERR_DATA, "%s: the child process %s %d", what,
                       WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (m->st)
        return sd_fail(m->st, "%s", m->msg);
    if (rss_mb)
        *rss_mb = (double)ru.ru_maxrss / 1024.0;   /* Linux: kilobytes */
    return SD_OK;
}

typedef struct workload_arg {
    sd_bench_workload w;
    const sd_bench_opts *o;
} workload_arg;

static void workload_child(const void *arg, child_msg *m)
{
    const workload_arg *a = arg;
    m->st = sd_bench_run(a->w, a->o, &m->r);
}

sd_status sd_bench_run_isolated(sd_bench_workload w, const sd_bench_opts *o, sd_bench_result *r)
{
    memset(r, 0, sizeof *r);
    child_msg *m = sd_calloc(1, sizeof *m);
    if (!m)
        return SD_ERR_NOMEM;
    workload_arg a = {w, o};
    double rss = 0;
    sd_status st = in_child(sd_bench_name(w), workload_child, &a, m, &rss);
    if (!st) {
        *r = m->r;
        r->peak_rss_mb = rss;
    }
    free(m);
    return st;
}

typedef struct sgemm_arg {
    int threads, n, iters;
} sgemm_arg;

static void sgemm_child(const void *arg, child_msg *m)
{
    const sgemm_arg *a = arg;
    size_t nn = (size_t)a->n * a->n;
    float *A = sd_malloc(nn * sizeof(float)), *B = sd_malloc(nn * sizeof(float)), *C = sd_malloc(nn * sizeof(float));
    double *t = sd_calloc((size_t)a->iters, sizeof *t);
    if (!A || !B || !C || !t) {
        m->st = SD_ERR_NOMEM;
    } else {
        sd_rng rng = sd_rng_fork(1, 11);
        for (size_t i = 0; i < nn; i++) {
            A[i] = sd_rng_uniform(&rng) - 0.5f;
            B[i] = sd_rng_uniform(&rng) - 0.5f;
        }
        /* BLAS's own threads here: the peak the library's GEMMs could reach */
        openblas_set_num_threads(a->threads);
        for (int i = 0; i < a->iters + 1; i++) {
            double t0 = now_ms();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->n, a->n, a->n, 1.0f, A, a->n, B, a->n, 0.0f,
                        C, a->n);
            if (i > 0)
                t[i - 1] = now_ms() - t0;
        }
        sd_bench_result r = {0};
        r.gflop = 2.0 * a->n * (double)a->n * a->n * 1e-9;
        summarise(t, a->iters, &r);
        m->value = r.gflops;
    }
    free(A);
    free(B);
    free(C);
    free(t);
}

sd_status sd_bench_sgemm_peak(int threads, int n, int iters, double *gflops)
{
    *gflops = 0;
    if (threads < 1 || n < 64 || iters < 1)
        return sd_fail(SD_ERR_ARG, "bench sgemm: threads %d, n %d, iters %d: expected >= 1, >= 64, >= 1", threads,
                       n, iters);
    child_msg *m = sd_calloc(1, sizeof *m);
    if (!m)
        return SD_ERR_NOMEM;
    sgemm_arg a = {threads, n, iters};
    sd_status st = in_child("sgemm peak", sgemm_child, &a, m, NULL);
    if (!st)
        *gflops = m->value;
    free(m);
    return st;
}
