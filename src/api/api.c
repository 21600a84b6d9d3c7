/* The flat binding API (include/segda/api.h): thin wrappers that turn
 * segda's structs into opaque handles and plain arrays. No logic of its own
 * beyond argument checks: prediction is sd_infer_probs + sd_probs_argmax as
 * in src/cli/cmd_predict.c, evaluation is eval.h, training is sd_train_run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/api.h"
#include "segda/demo.h"
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/train.h"

const char *sd_version(void) { return SD_VERSION; }

void sd_api_free(void *p) { free(p); }

sd_status sd_api_set_precision(const char *name)
{
    sd_dtype d;
    bool emulate;
    if (!name || sd_dtype_parse(name, &d, &emulate) != SD_OK)
        return sd_fail(SD_ERR_ARG, "precision '%s': expected f32, bf16 or bf16-emulated", name ? name : "(null)");
    return sd_set_precision(d, emulate);
}

const char *sd_api_precision(void) { return sd_dtype_name(sd_precision()); }

/* ---- prediction ---- */

struct sd_predictor {
    sd_model *model;
    sd_norm norm;
    sd_infer_opts io;
    char *path;
};

sd_status sd_predictor_open(const char *path, bool strict, sd_predictor **out)
{
    *out = NULL;
    if (!path)
        return sd_fail(SD_ERR_ARG, "no checkpoint path given");
    sd_predictor *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    }
    p->norm = SD_NORM_IMAGENET;
    sd_status st = sd_model_load(path, strict, &p->model, &p->norm);
    if (st) {
        free(p->path);
        free(p);
        return st;
    }
    p->io = sd_infer_opts_default(p->norm);
    *out = p;
    return SD_OK;
}

void sd_predictor_free(sd_predictor *p)
{
    if (!p)
        return;
    sd_model_free(p->model);
    free(p->path);
    free(p);
}

int sd_predictor_classes(const sd_predictor *p) { return sd_model_options(p->model)->classes; }

const char *sd_predictor_model_name(const sd_predictor *p) { return sd_model_options(p->model)->name; }

/* The ranges of src/cli/args.c, so an option the CLI refuses is refused here. */
static bool size_ok(int w, int h) { return (w == 0 && h == 0) || (w >= 8 && h >= 8 && w <= 16384 && h <= 16384); }

sd_status sd_predictor_set_options(sd_predictor *p, int net_w, int net_h, int n_scales, const float *scales,
                                   bool flip, int win_w, int win_h, float overlap, bool align_corners)
{
    if (!size_ok(net_w, net_h))
        return sd_fail(SD_ERR_ARG, "size %dx%d: expected WxH in 8..16384 (or none)", net_w, net_h);
    if (!size_ok(win_w, win_h))
        return sd_fail(SD_ERR_ARG, "window %dx%d: expected WxH in 8..16384 (or none)", win_w, win_h);
    if (n_scales < 0 || n_scales > SD_INFER_MAX_SCALES)
        return sd_fail(SD_ERR_ARG, "%d scales: at most %d", n_scales, SD_INFER_MAX_SCALES);
    for (int i = 0; i < n_scales; i++)
        if (!(scales[i] >= 0.1f && scales[i] <= 4.0f))
            return sd_fail(SD_ERR_ARG, "scale %g: expected 0.1..4", (double)scales[i]);
    if (!(overlap >= 0.0f && overlap <= 0.9f))
        return sd_fail(SD_ERR_ARG, "overlap %g: expected 0..0.9", (double)overlap);
    sd_infer_opts io = sd_infer_opts_default(p->norm);
    io.net_w = net_w;
    io.net_h = net_h;
    if (n_scales > 0) {
        io.n_scales = n_scales;
        memcpy(io.scales, scales, (size_t)n_scales * sizeof *scales);
    }
    io.flip = flip;
    io.win_w = win_w;
    io.win_h = win_h;
    io.overlap = overlap;
    io.align_corners = align_corners;
    p->io = io;
    return SD_OK;
}

sd_status sd_predictor_run(sd_predictor *p, const uint8_t *px, int w, int h, int c, float *probs, uint8_t *pred)
{
    if (!px || w < 8 || h < 8 || (c != 1 && c != 3 && c != 4))
        return sd_fail(SD_ERR_ARG, "image %dx%d with %d channels: expected at least 8x8 and 1, 3 or 4 channels", w, h,
                       c);
    int C = sd_predictor_classes(p);
    size_t hw = (size_t)w * h;
    float *pr = probs ? probs : malloc((size_t)C * hw * sizeof *pr);
    if (!pr)
        return sd_fail(SD_ERR_NOMEM, "out of memory for a %dx%d prediction", w, h);
    /* a tape per call: it takes the precision set now (sd_set_precision) */
    sd_tape t;
    sd_status st = sd_tape_init(&t, 0);
    if (!st) {
        st = sd_infer_probs(p->model, &t, px, w, h, c, &p->io, pr);
        sd_tape_free(&t);
    }
    if (!st && pred)
        sd_probs_argmax(pr, C, w, h, pred, NULL);
    if (pr != probs)
        free(pr);
    return st;
}

/* ---- images ---- */

sd_status sd_api_image_read(const char *path, bool keep_palette, uint8_t **px, int *w, int *h, int *c)
{
    *px = NULL;
    sd_image img;
    sd_status st = sd_image_read(path, &img, keep_palette);
    if (st)
        return st;
    if (img.depth == 16) { /* as segda predict reads 16-bit images */
        size_t n = (size_t)img.w * img.h * img.c;
        uint8_t *d = malloc(n ? n : 1);
        if (!d) {
            sd_image_free(&img);
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        }
        const uint16_t *s = img.data;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint8_t)(s[i] >> 8);
        free(img.data);
        img.data = d;
    }
    *px = img.data; /* malloc'd by the reader: sd_api_free releases it */
    *w = img.w;
    *h = img.h;
    *c = img.c;
    return SD_OK;
}

/* ---- evaluation ---- */

sd_status sd_api_confusion_add(uint64_t *counts, uint64_t *ignored, const uint8_t *gt, const uint8_t *pred, int w,
                               int h, bool label_ids, const char *name)
{
    sd_confusion cm;
    sd_confusion_init(&cm);
    memcpy(cm.counts, counts, sizeof cm.counts);
    cm.ignored = *ignored;
    sd_status st = sd_confusion_add(&cm, gt, pred, w, h, label_ids ? SD_PRED_LABEL_IDS : SD_PRED_TRAIN_IDS,
                                    name ? name : "prediction");
    if (st)
        return st;
    memcpy(counts, cm.counts, sizeof cm.counts);
    *ignored = cm.ignored;
    return SD_OK;
}

int sd_api_protocol_count(void) { return SD_PROTOCOL_COUNT; }

void sd_api_eval_compute(const uint64_t *counts, uint64_t ignored, double *class_iou, double *miou,
                         double *pixel_accuracy, double *mean_accuracy)
{
    sd_confusion cm;
    sd_confusion_init(&cm);
    memcpy(cm.counts, counts, sizeof cm.counts);
    cm.ignored = ignored;
    sd_eval_result r;
    sd_eval_compute(&cm, &r);
    if (class_iou)
        memcpy(class_iou, r.class_iou, sizeof r.class_iou);
    if (miou)
        for (int p = 0; p < SD_PROTOCOL_COUNT; p++)
            miou[p] = r.miou[p];
    if (pixel_accuracy)
        *pixel_accuracy = r.pixel_accuracy;
    if (mean_accuracy)
        *mean_accuracy = r.mean_accuracy;
}

/* ---- datasets ---- */

struct sd_api_dataset {
    sd_dataset ds;
};

sd_status sd_api_dataset_open(const char *spec, const char *split, sd_api_dataset **out)
{
    *out = NULL;
    if (!spec)
        return sd_fail(SD_ERR_ARG, "no dataset spec given");
    sd_api_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    sd_status st = sd_dataset_open(&d->ds, spec, split && *split ? split : NULL, NULL);
    if (st) {
        free(d);
        return st;
    }
    *out = d;
    return SD_OK;
}

void sd_api_dataset_free(sd_api_dataset *d)
{
    if (!d)
        return;
    sd_dataset_free(&d->ds);
    free(d);
}

int sd_api_dataset_size(const sd_api_dataset *d) { return d->ds.n; }

bool sd_api_dataset_has_labels(const sd_api_dataset *d) { return d->ds.has_labels; }

const char *sd_api_dataset_stem(const sd_api_dataset *d, int i)
{
    return i >= 0 && i < d->ds.n ? d->ds.samples[i].stem : NULL;
}

const char *sd_api_dataset_image_path(const sd_api_dataset *d, int i)
{
    return i >= 0 && i < d->ds.n ? d->ds.samples[i].image_path : NULL;
}

sd_status sd_api_dataset_read(const sd_api_dataset *d, int i, uint8_t **image, int *w, int *h, uint8_t **label,
                              int *lw, int *lh)
{
    *image = *label = NULL;
    *w = *h = *lw = *lh = 0;
    if (i < 0 || i >= d->ds.n)
        return sd_fail(SD_ERR_ARG, "%s: sample %d out of range (%d samples)", d->ds.spec, i, d->ds.n);
    sd_sample s;
    sd_status st = sd_dataset_read(&d->ds, i, &s);
    if (st)
        return st;
    /* the sample's buffers are malloc'd and handed over as they are */
    *image = s.image;
    *w = s.w;
    *h = s.h;
    *label = s.label;
    *lw = s.label ? s.lw : 0;
    *lh = s.label ? s.lh : 0;
    return SD_OK;
}

sd_status sd_api_eval_folder(const sd_api_dataset *d, const char *dir, bool label_ids, bool skip_missing,
                             uint64_t *counts, uint64_t *ignored, int64_t *images, int64_t *skipped)
{
    if (!dir)
        return sd_fail(SD_ERR_ARG, "no prediction folder given");
    sd_confusion cm;
    sd_confusion_init(&cm);
    memcpy(cm.counts, counts, sizeof cm.counts);
    cm.ignored = *ignored;
    sd_eval_pred_opts o = {
        .dirs = &dir,
        .n_dirs = 1,
        .kind = label_ids ? SD_PRED_LABEL_IDS : SD_PRED_TRAIN_IDS,
        .skip_missing = skip_missing,
        .progress = SD_PROGRESS_OFF, /* a library caller draws its own */
    };
    sd_eval_setup setup;
    memset(&setup, 0, sizeof setup);
    sd_status st = sd_eval_pred_dirs(&d->ds, &o, &cm, &setup);
    if (st)
        return st;
    memcpy(counts, cm.counts, sizeof cm.counts);
    *ignored = cm.ignored;
    if (images)
        *images = setup.images;
    if (skipped)
        *skipped = setup.skipped;
    return SD_OK;
}

/* ---- training ---- */

typedef struct train_hook {
    sd_api_progress_fn fn;
    void *ctx;
} train_hook;

static int on_iteration(void *ctx, const sd_trainer *tr)
{
    const train_hook *hk = ctx;
    const char *names[SD_TRAIN_MAX_TERMS];
    double values[SD_TRAIN_MAX_TERMS];
    int n = sd_trainer_term_list(tr, names, values);
    return hk->fn(hk->ctx, tr->it + 1, tr->iters, n, names, values);
}

sd_status sd_api_train(int n, const char *const *keys, const char *const *values, sd_api_progress_fn fn, void *ctx,
                       double *best_miou, double *final_miou)
{
    if (best_miou)
        *best_miou = NAN;
    if (final_miou)
        *final_miou = NAN;
    sd_config cfg;
    sd_config_init(&cfg);
    sd_status st = SD_OK;
    for (int i = 0; i < n && !st; i++)
        st = sd_config_set(&cfg, keys[i], values[i], "config dict", true);
    /* the precedence of segda train: given keys, then --config's file, then
     * (resume) the run's own config.txt */
    const char *file = st ? NULL : sd_config_get(&cfg, "config");
    if (file && *file)
        st = sd_config_read(&cfg, file);
    const char *resume = st ? NULL : sd_config_get(&cfg, "resume");
    if (resume && (!strcmp(resume, "true") || !strcmp(resume, "1") || !strcmp(resume, "yes"))) {
        const char *out = sd_config_get(&cfg, "out");
        char path[4096];
        if (!out || !*out)
            st = sd_fail(SD_ERR_ARG, "config dict: resume needs 'out' (the run directory)");
        else if (snprintf(path, sizeof path, "%s/config.txt", out) >= (int)sizeof path)
            st = sd_fail(SD_ERR_ARG, "config dict: out path too long: %s", out);
        else
            st = sd_config_read(&cfg, path);
    }
    if (!st && !sd_config_get(&cfg, "method"))
        st = sd_fail(SD_ERR_ARG, "config dict: 'method' is required");
    train_hook hk = {fn, ctx};
    sd_train_summary sum;
    if (!st) {
        sd_train_set_progress(fn ? on_iteration : NULL, &hk);
        st = sd_train_run_summary(&cfg, &sum);
        sd_train_set_progress(NULL, NULL);
        if (sum.best_miou >= 0 && best_miou)
            *best_miou = sum.best_miou;
        if (sum.evaluated && final_miou)
            *final_miou = sum.miou_19;
    }
    sd_config_free(&cfg);
    return st;
}

/* ---- the demo ---- */

typedef struct demo_hook {
    sd_api_demo_fn fn;
    void *ctx;
} demo_hook;

static int on_demo_event(void *ctx, const sd_demo_event *ev)
{
    const demo_hook *hk = ctx;
    return hk->fn(hk->ctx, (int)ev->kind, ev->text, ev->name, ev->seed, ev->miou, ev->seconds, ev->it, ev->iters,
                  ev->n_terms, ev->term_names, ev->term_values);
}

sd_status sd_api_demo(int n, const char *const *keys, const char *const *values, sd_api_demo_fn fn, void *ctx)
{
    sd_demo_opts o;
    sd_demo_opts_init(&o);
    for (int i = 0; i < n; i++) {
        sd_status st = sd_demo_opts_set(&o, keys[i], values[i]);
        if (st)
            return st;
    }
    demo_hook hk = {fn, ctx};
    return sd_demo_run(&o, NULL, fn ? on_demo_event : NULL, &hk);
}
