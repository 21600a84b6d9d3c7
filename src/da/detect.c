/* The detector's training task: instance targets from a dataset's instance
 * files, SGD steps over sd_detector_backward, checkpoints with the
 * optimiser state, resume and a CSV log. The loop, stops, saves, progress
 * lines and summary.json are the training driver's (src/train/driver.c),
 * as for segmentation and pretraining; this file gives it a step that
 * takes one image with its own list of instances per forward. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/detect.h"
#include "segda/instances.h"
#include "segda/optim.h"
#include "segda/train.h"
#include "io/file.h"
#include "train/driver.h"

sd_detect_train_opts sd_detect_train_opts_default(void)
{
    sd_detect_train_opts o = {
        .iters = 1000, .batch = 1, .lr = 0.0025f, .momentum = 0.9f, .weight_decay = 1e-4f, .warmup_iters = 1000,
        .det = sd_detector_opts_default(1 + SD_NUM_THING_CLASSES), .save_every = 500, .seed = 1,
    };
    return o;
}

/* Boxes, labels and masks of one sample's instances (malloc'd together). */
typedef struct det_targets {
    sd_detector_target t;
    float *boxes;
    int *labels;
    uint8_t *masks;
} det_targets;

static sd_status targets_of(const sd_instances *in, int w, int h, const char *stem, det_targets *out)
{
    memset(out, 0, sizeof *out);
    if (in->w != w || in->h != h)
        return sd_fail(SD_ERR_DATA, "%s: instance file %dx%d, image %dx%d: expected one size", stem, in->w, in->h, w, h);
    int n = in->n;
    out->boxes = malloc((size_t)(n ? n : 1) * 4 * sizeof *out->boxes);
    out->labels = malloc((size_t)(n ? n : 1) * sizeof *out->labels);
    out->masks = calloc((size_t)(n ? n : 1) * w * h, 1);
    if (!out->boxes || !out->labels || !out->masks)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory for %d instance masks", stem, n);
    for (int i = 0; i < n; i++) {
        const sd_instance *s = &in->inst[i];
        out->boxes[4 * i] = (float)s->x0;
        out->boxes[4 * i + 1] = (float)s->y0;
        out->boxes[4 * i + 2] = (float)s->x1;
        out->boxes[4 * i + 3] = (float)s->y1;
        out->labels[i] = s->train_id - SD_FIRST_THING_TRAIN_ID + 1;
    }
    for (size_t p = 0; p < (size_t)w * h; p++)
        if (in->map[p] >= 0)
            out->masks[(size_t)in->map[p] * w * h + p] = 1;
    out->t = (sd_detector_target){n, out->boxes, out->labels, out->masks};
    return SD_OK;
}

static void targets_free(det_targets *t)
{
    free(t->boxes);
    free(t->labels);
    free(t->masks);
}

static sd_status save(sd_detector *d, sd_optim *opt, int64_t it, const char *path)
{
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)it);
    sd_status st = sd_ckpt_writer_add_params(&w, "", sd_detector_params(d));
    if (!st)
        st = sd_ckpt_writer_add_optim(&w, opt, "opt:", "opt_steps");
    if (!st)
        st = sd_detector_write_meta(d, &w); /* model, classes, input and anchor sizes */
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, SD_META_METHOD, "detect");
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, SD_META_ITER, buf);
    if (!st)
        st = sd_ckpt_writer_save(&w, path);
    sd_ckpt_writer_free(&w);
    return st;
}

/* Weights (and, resuming, the optimiser and the iteration) from a file. */
static sd_status load_into(sd_detector *d, sd_optim *opt, const char *path, bool resume, int64_t *it)
{
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return st;
    const char *model = sd_ckpt_meta(&c, SD_META_MODEL);
    if (!model || strcmp(model, SD_DETECTOR_MODEL))
        st = sd_fail(SD_ERR_FORMAT, "%s: metadata \"model\" is \"%s\", expected a detector (\"%s\")", path,
                     model ? model : "(none)", SD_DETECTOR_MODEL);
    else if (resume) {
        const char *iv = sd_ckpt_meta(&c, SD_META_ITER);
        st = sd_ckpt_load_params(&c, "", sd_detector_params(d), true, NULL);
        if (!st)
            st = sd_ckpt_read_optim(&c, opt, "opt:", "opt_steps");
        if (!st && !iv)
            st = sd_fail(SD_ERR_DATA, "%s: no \"%s\" in the metadata: not a checkpoint of a detector run", path,
                         SD_META_ITER);
        if (!st)
            *it = strtoll(iv, NULL, 10);
    } else {
        sd_ckpt_report rep;
        st = sd_ckpt_load_weights(&c, sd_detector_params(d), NULL, true, &rep);
    }
    sd_ckpt_close(&c);
    return st;
}

static const char *const bn_names[3] = {"auto", "frozen", "train"};

const char *sd_det_bn_name(sd_det_bn b) { return b >= SD_DET_BN_AUTO && b <= SD_DET_BN_TRAIN ? bn_names[b] : "?"; }

bool sd_det_bn_parse(const char *s, sd_det_bn *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, bn_names[i])) {
            *out = (sd_det_bn)i;
            return true;
        }
    return false;
}

/* The backbone's BN mode of the run: a resumed run keeps its file's (metadata
 * det_bn, absent: frozen), which an explicit o->bn must agree with; a new
 * run takes o->bn, auto = torchvision's choice (trained BN from random
 * weights, frozen BN from a detector file). */
static sd_status resolve_bn(const sd_detect_train_opts *o, const char *ckpt, bool resuming, bool *train)
{
    *train = o->bn == SD_DET_BN_TRAIN || (o->bn == SD_DET_BN_AUTO && !o->init);
    if (!resuming)
        return SD_OK;
    sd_ckpt c;
    sd_status st = sd_ckpt_open(ckpt, &c);
    if (st)
        return st;
    const char *v = sd_ckpt_meta(&c, SD_META_DET_BN);
    bool file_train = v && !strcmp(v, "train");
    if (o->bn != SD_DET_BN_AUTO && file_train != (o->bn == SD_DET_BN_TRAIN))
        st = sd_fail(SD_ERR_ARG, "%s: metadata \"%s\" is \"%s\": the run trained with that BN mode, --bn %s "
                     "asks for another (resume with --bn auto or %s)", ckpt, SD_META_DET_BN, v ? v : "frozen",
                     sd_det_bn_name(o->bn), file_train ? "train" : "frozen");
    *train = file_train;
    sd_ckpt_close(&c);
    return st;
}

/* ---- the driver's callbacks (src/train/driver.h) ---- */

typedef struct det_run {
    const sd_detect_train_opts *o;
    sd_dataset *ds;
    sd_detector *d;
    sd_optim *opt;
    FILE *log;                 /* RUN/log.csv */
    int *order;                /* [ds->n] the epoch's image order */
    int64_t it0;               /* the iteration the run started at */
    float sum[SD_DET_LOSSES];  /* the step's losses, averaged over its images */
    float *first, *last;       /* the caller's (may be NULL) */
    const char *ckpt;
} det_run;

/* One step: o->batch images, one forward and backward each with its own
 * instance list (losses scaled by 1/batch), then SGD. */
static sd_status det_step(void *ctx, int64_t it, float lr)
{
    det_run *k = ctx;
    const sd_detect_train_opts *o = k->o;
    int n = k->ds->n;
    sd_status st = SD_OK;
    sd_params_zero_grad(sd_detector_params(k->d));
    memset(k->sum, 0, sizeof k->sum);
    for (int b = 0; b < o->batch; b++) {
        /* a fresh permutation per epoch, a function of (seed, epoch) only, so resume continues it */
        int64_t j = it * o->batch + b, epoch = j / n;
        if (j % n == 0 || j == k->it0 * o->batch) {
            sd_rng r = sd_rng_fork(o->seed, (uint64_t)epoch);
            for (int i = 0; i < n; i++)
                k->order[i] = i;
            for (int i = n - 1; i > 0; i--) {
                int m = sd_rng_int(&r, i + 1), t = k->order[i];
                k->order[i] = k->order[m];
                k->order[m] = t;
            }
        }
        int idx = k->order[j % n];
        sd_sample s = {0};
        sd_instances in = {0};
        det_targets tg = {0};
        sd_rng r = sd_rng_fork(o->seed ^ 0x5a3d, (uint64_t)j);
        float l[SD_DET_LOSSES];
        if (!(st = sd_dataset_read_image(k->ds, idx, &s)) && !(st = sd_dataset_read_instances(k->ds, idx, &in)) &&
            !(st = targets_of(&in, s.w, s.h, s.stem, &tg)))
            st = sd_detector_backward(k->d, s.image, s.w, s.h, &tg.t, &r, 1.0f / (float)o->batch, l);
        targets_free(&tg);
        sd_instances_free(&in);
        sd_sample_free(&s);
        if (st)
            return st;
        for (int i = 0; i < SD_DET_LOSSES; i++)
            k->sum[i] += l[i] / (float)o->batch;
    }
    return sd_optim_step(k->opt, lr);
}

/* A row of log.csv; the caller's first/last and on_step. */
static void det_record(void *ctx, int64_t it, float lr, double elapsed, bool failed)
{
    (void)elapsed;
    det_run *k = ctx;
    if (failed)
        return;
    float total = 0;
    fprintf(k->log, "%lld", (long long)it + 1);
    for (int i = 0; i < SD_DET_LOSSES; i++) {
        fprintf(k->log, ",%.6g", k->sum[i]);
        total += k->sum[i];
    }
    fprintf(k->log, ",%.6g,%.6g\n", total, lr);
    fflush(k->log);
    if (k->first && it == k->it0)
        *k->first = total;
    if (k->last)
        *k->last = total;
    if (k->o->on_step)
        k->o->on_step(k->o->ctx, it + 1, k->sum, lr);
}

static void det_terms(void *ctx, char *buf, size_t cap)
{
    const float *l = ((det_run *)ctx)->sum;
    snprintf(buf, cap, "  loss %.4f  (objectness %.4f rpn_box %.4f classifier %.4f box %.4f mask %.4f)",
             l[0] + l[1] + l[2] + l[3] + l[4], l[0], l[1], l[2], l[3], l[4]);
}

static sd_status det_save(void *ctx, int64_t done)
{
    det_run *k = ctx;
    return save(k->d, k->opt, done, k->ckpt);
}

static void det_describe(void *ctx, sd_run_summary *s)
{
    const float *l = ((det_run *)ctx)->sum;
    s->task = "detect";
    s->method = "detect";
    s->metric = "loss";   /* the last step's summed loss */
    if (s->iterations > ((det_run *)ctx)->it0)
        s->final_value = l[0] + l[1] + l[2] + l[3] + l[4];
}

sd_status sd_detect_train(const sd_detect_train_opts *o, float *first, float *last)
{
    if (!o->data || !o->out_dir || o->iters < 1 || o->batch < 1 || !(o->lr > 0))
        return sd_fail(SD_ERR_ARG, "detect: data %s, out %s, %lld iterations, batch %d, lr %g: expected a dataset, "
                       "a run directory, iterations and batch >= 1 and lr > 0", o->data ? o->data : "(none)",
                       o->out_dir ? o->out_dir : "(none)", (long long)o->iters, o->batch, o->lr);
    /* RUN/.lock: a second run into the same directory is refused */
    char ckpt[4096], logp[4096], lockp[4096], summary[4096];
    snprintf(lockp, sizeof lockp, "%s/.lock", o->out_dir);
    int lock_fd = -1;
    sd_status st = io_lock(lockp, o->out_dir, &lock_fd);
    if (st)
        return sd_fail_prefix(st, "detect --out");
    sd_dataset ds;
    if ((st = sd_dataset_open(&ds, o->data, NULL, NULL))) {
        io_unlock(lock_fd);
        return st;
    }
    sd_detector *d = NULL;
    sd_optim opt = {0};
    bool opt_ready = false;
    FILE *log = NULL;
    int *order = NULL;
    snprintf(ckpt, sizeof ckpt, "%s/detector.safetensors", o->out_dir);
    snprintf(logp, sizeof logp, "%s/log.csv", o->out_dir);
    snprintf(summary, sizeof summary, "%s/summary.json", o->out_dir);
    if (ds.n < 1 || !sd_dataset_has_instances(&ds)) {
        st = sd_fail(SD_ERR_DATA, "detect: %s has %s: expected images with instance files (segda synth writes them: "
                     "gta5:DIR/sim or gta5:DIR/simple)", o->data, ds.n < 1 ? "no samples" : "no instance files");
        goto done;
    }
    sd_detector_opts dop = o->det;
    dop.classes = 1 + SD_NUM_THING_CLASSES;
    struct stat sb;
    bool have = stat(ckpt, &sb) == 0;
    if ((st = resolve_bn(o, ckpt, o->resume && have, &dop.bn_train)))
        goto done;
    sd_optim_opts oo = sd_optim_opts_sgd(o->momentum, o->weight_decay);
    if ((st = sd_detector_create(&dop, o->seed, &d)) || (st = sd_optim_init(&opt, sd_detector_params(d), &oo)))
        goto done;
    opt_ready = true;
    int64_t it0 = 0;
    if (o->resume && have)
        st = load_into(d, &opt, ckpt, true, &it0);
    else if (o->init)
        st = load_into(d, &opt, o->init, false, &it0);
    if (st)
        goto done;
    log = fopen(logp, o->resume && have ? "a" : "w");
    order = malloc((size_t)ds.n * sizeof *order);
    if (!log || !order) {
        st = sd_fail(SD_ERR_IO, "detect: cannot write %s: %s", logp, strerror(errno));
        goto done;
    }
    if (!(o->resume && have))
        fprintf(log, "iter,%s,%s,%s,%s,%s,total,lr\n", sd_detector_loss_names[0], sd_detector_loss_names[1],
                sd_detector_loss_names[2], sd_detector_loss_names[3], sd_detector_loss_names[4]);
    sd_lr_schedule sch = sd_lr_poly(o->lr, o->iters, 0.0f);
    sch.warmup_iters = o->warmup_iters;
    sch.warmup_ratio = 0.001f;
    det_run k = {.o = o, .ds = &ds, .d = d, .opt = &opt, .log = log, .order = order, .it0 = it0,
                 .first = first, .last = last, .ckpt = ckpt};
    sd_drive_task t = {
        .name = "detect", .ckpt = ckpt, .summary = summary, .ctx = &k,
        .iters = o->iters, .start = it0, .save_every = o->save_every, .log_every = 1, .sched = &sch,
        .step = det_step, .record = det_record, .terms = det_terms, .save = det_save, .describe = det_describe,
    };
    sd_drive_result r;
    st = sd_drive(&t, &r);
done:
    if (log)
        fclose(log);
    free(order);
    if (opt_ready)
        sd_optim_free(&opt);
    sd_detector_free(d);
    sd_dataset_free(&ds);
    io_unlock(lock_fd);
    return st;
}
