/* The detector's training task: instance targets from a dataset's instance
 * files, SGD steps over sd_detector_backward, checkpoints with the
 * optimiser state, resume and a CSV log. Kept apart from the segmentation
 * loop (src/da/train.c), whose steps are batches of (image, label map)
 * tensors through an sd_model; the detector takes one image with a variable
 * list of instances per forward. */
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

sd_status sd_detect_train(const sd_detect_train_opts *o, float *first, float *last)
{
    if (!o->data || !o->out_dir || o->iters < 1 || o->batch < 1 || !(o->lr > 0))
        return sd_fail(SD_ERR_ARG, "detect: data %s, out %s, %lld iterations, batch %d, lr %g: expected a dataset, "
                       "a run directory, iterations and batch >= 1 and lr > 0", o->data ? o->data : "(none)",
                       o->out_dir ? o->out_dir : "(none)", (long long)o->iters, o->batch, o->lr);
    sd_dataset ds;
    sd_status st = sd_dataset_open(&ds, o->data, NULL, NULL);
    if (st)
        return st;
    sd_detector *d = NULL;
    sd_optim opt = {0};
    bool opt_ready = false;
    FILE *log = NULL;
    int *order = NULL;
    char ckpt[4096], logp[4096];
    snprintf(ckpt, sizeof ckpt, "%s/detector.safetensors", o->out_dir);
    snprintf(logp, sizeof logp, "%s/log.csv", o->out_dir);
    if (ds.n < 1 || !sd_dataset_has_instances(&ds)) {
        st = sd_fail(SD_ERR_DATA, "detect: %s has %s: expected images with instance files (segda synth writes them: "
                     "gta5:DIR/sim or gta5:DIR/simple)", o->data, ds.n < 1 ? "no samples" : "no instance files");
        goto done;
    }
    sd_detector_opts dop = o->det;
    dop.classes = 1 + SD_NUM_THING_CLASSES;
    sd_optim_opts oo = sd_optim_opts_sgd(o->momentum, o->weight_decay);
    if ((st = sd_detector_create(&dop, o->seed, &d)) || (st = sd_optim_init(&opt, sd_detector_params(d), &oo)))
        goto done;
    opt_ready = true;
    int64_t it0 = 0;
    struct stat sb;
    bool have = stat(ckpt, &sb) == 0;
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
    for (int64_t it = it0; it < o->iters; it++) {
        sd_params_zero_grad(sd_detector_params(d));
        float sum[SD_DET_LOSSES] = {0};
        for (int b = 0; b < o->batch; b++) {
            /* a fresh permutation per epoch, a function of (seed, epoch) only, so resume continues it */
            int64_t k = it * o->batch + b, epoch = k / ds.n;
            if (k % ds.n == 0 || k == it0 * o->batch) {
                sd_rng r = sd_rng_fork(o->seed, (uint64_t)epoch);
                for (int i = 0; i < ds.n; i++)
                    order[i] = i;
                for (int i = ds.n - 1; i > 0; i--) {
                    int j = sd_rng_int(&r, i + 1), t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
            }
            int idx = order[k % ds.n];
            sd_sample s = {0};
            sd_instances in = {0};
            det_targets tg = {0};
            sd_rng r = sd_rng_fork(o->seed ^ 0x5a3d, (uint64_t)k);
            float l[SD_DET_LOSSES];
            if (!(st = sd_dataset_read_image(&ds, idx, &s)) && !(st = sd_dataset_read_instances(&ds, idx, &in)) &&
                !(st = targets_of(&in, s.w, s.h, s.stem, &tg)))
                st = sd_detector_backward(d, s.image, s.w, s.h, &tg.t, &r, 1.0f / (float)o->batch, l);
            targets_free(&tg);
            sd_instances_free(&in);
            sd_sample_free(&s);
            if (st)
                goto done;
            for (int i = 0; i < SD_DET_LOSSES; i++)
                sum[i] += l[i] / (float)o->batch;
        }
        float lr = sd_lr_at(&sch, it), total = 0;
        if ((st = sd_optim_step(&opt, lr)))
            goto done;
        fprintf(log, "%lld", (long long)it + 1);
        for (int i = 0; i < SD_DET_LOSSES; i++) {
            fprintf(log, ",%.6g", sum[i]);
            total += sum[i];
        }
        fprintf(log, ",%.6g,%.6g\n", total, lr);
        fflush(log);
        if (first && it == it0)
            *first = total;
        if (last)
            *last = total;
        if (o->on_step)
            o->on_step(o->ctx, it + 1, sum, lr);
        if ((o->save_every > 0 && (it + 1) % o->save_every == 0) || it + 1 == o->iters)
            if ((st = save(d, &opt, it + 1, ckpt)))
                goto done;
    }
done:
    if (log)
        fclose(log);
    free(order);
    if (opt_ready)
        sd_optim_free(&opt);
    sd_detector_free(d);
    sd_dataset_free(&ds);
    return st;
}
