/* The segmentation task (every method of src/da, the task-informed GAN
 * included): settings, model and optimiser set-up, per-iteration batches,
 * the method's step, one or more backward passes, optimiser steps on the
 * poly schedule, evaluation on target val; the loop itself, stops, saves and
 * progress lines are the driver's (driver.c), which this file gives its
 * callbacks (run directory: rundir.c; checkpoints and --resume: resume.c).
 * Batches come from two threaded loaders (loader.h), never from images
 * held in memory. Not here: what a method computes (src/da/<method>.c),
 * reading and augmenting samples (src/data), configuration (config.c). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "da/tblog.h"
#include "da/train_internal.h"
#include "train/driver.h"
#include "train/loop_priv.h"
#include "io/file.h"
#include "segda/checkpoint.h"
#include "segda/dist.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/ops.h"
#include "segda/progress.h"
#include "segda/stage.h"
#include "segda/train.h"


sd_status sd_train_supervised(sd_trainer *tr, const sd_batch *b, const char *name, float aux_weight)
{
    sd_tensor *x = sd_train_input(tr, b);
    sd_model_out out;
    sd_status st = sd_model_forward(tr->model, &tr->tape, x, true, &out);
    if (st)
        return st;
    if ((st = sd_train_loss(tr, name, sd_train_seg_loss(tr, out.logits, b->label, b->h, b->w), 1.0f)))
        return st;
    if (out.aux_logits && aux_weight > 0) {
        char aux[40];
        snprintf(aux, sizeof aux, "%s_aux", name);
        st = sd_train_loss(tr, aux, sd_train_seg_loss(tr, out.aux_logits, b->label, b->h, b->w), aux_weight);
    }
    return st;
}

/* ---- for methods ---- */

static sd_tensor *sd_train_device_input(sd_trainer *tr, const sd_batch *b);
static sd_status sd_train_host_view(const sd_tensor *x, float **out);

sd_tensor *sd_train_input(sd_trainer *tr, const sd_batch *b)
{
    if (tr->tape.device != SD_DEVICE_CPU)
        return sd_train_device_input(tr, b);
    sd_tensor *x = sd_tensor_new4(&tr->tape, b->n, 3, b->h, b->w);
    if (!x)
        return NULL;
    sd_normalize_f32(b->image, b->n, b->w, b->h, sd_norm_params_of(tr->norm), x->data);
    return x;
}

sd_status sd_train_loss(sd_trainer *tr, const char *name, sd_tensor *loss, float weight)
{
    if (!loss)
        return sd_fail_prefix(tr->tape.status ? tr->tape.status : SD_ERR_ARG, "iteration %lld: loss '%s'",
                              (long long)tr->it + 1, name);
    if (tr->n_terms == SD_TRAIN_MAX_TERMS || tr->n_pending == SD_TRAIN_MAX_TERMS)
        return sd_fail(SD_ERR_ARG, "iteration %lld: more than %d loss terms", (long long)tr->it + 1,
                       SD_TRAIN_MAX_TERMS);
    if (tr->inject_nan_at == tr->it + 1) {
        sd_tensor_from_host(loss, (const float[]){NAN}); /* the test hook: as if the term had diverged */
        tr->inject_nan_at = -1;
    }
    double v = sd_tensor_item(loss);
    sd_train_term *t = &tr->terms[tr->n_terms++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->value = v;
    t->weight = weight;
    t->logged_only = false;
    if (!isfinite(v))
        return sd_fail(SD_ERR_NUMERIC, "iteration %lld: loss term '%s' is %s", (long long)tr->it + 1, name,
                       isnan(v) ? "NaN" : "infinite");
    tr->pending[tr->n_pending] = loss;
    tr->pending_w[tr->n_pending++] = weight;
    return SD_OK;
}

void sd_train_log_value(sd_trainer *tr, const char *name, double value)
{
    if (tr->n_terms == SD_TRAIN_MAX_TERMS)
        return;
    sd_train_term *t = &tr->terms[tr->n_terms++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->value = value;
    t->weight = 0;
    t->logged_only = true;
}

sd_status sd_train_backward(sd_trainer *tr)
{
    if (tr->n_pending == 0)
        return SD_OK;
    sd_status st = sd_grad_ratio_due(tr) ? sd_grad_ratio_backward(tr)
                                         : sd_backward(&tr->tape, tr->n_pending, tr->pending, tr->pending_w);
    tr->n_pending = 0;
    if (st)
        return sd_fail_prefix(st, "iteration %lld: backward", (long long)tr->it + 1);
    return SD_OK;
}

sd_status sd_train_add_module(sd_trainer *tr, const char *prefix, sd_params *params, const sd_optim_opts *opt,
                              float base_lr)
{
    if (tr->n_mods == SD_TRAIN_MAX_MODULES)
        return sd_fail(SD_ERR_ARG, "train: more than %d modules", SD_TRAIN_MAX_MODULES);
    size_t n = strlen(prefix);
    if (n == 0 || n >= sizeof tr->mods[0].prefix || prefix[n - 1] != ':')
        return sd_fail(SD_ERR_ARG, "train: module prefix '%s' must end in ':'", prefix);
    sd_train_module *m = &tr->mods[tr->n_mods];
    memset(m, 0, sizeof *m);
    snprintf(m->prefix, sizeof m->prefix, "%s", prefix);
    m->params = params;
    sd_status mv = sd_params_to_device(params, tr->tape.device);   /* (--device) */
    if (mv)
        return sd_fail_prefix(mv, "module %s", prefix);
    if (opt) {
        sd_status st = sd_optim_init(&m->opt, params, opt);
        if (st)
            return sd_fail_prefix(st, "module %s", prefix);
        m->trainable = true;
        m->sched = tr->sched;
        m->sched.base_lr = base_lr;
    }
    tr->n_mods++;
    return SD_OK;
}

sd_tensor *sd_train_upsample(sd_trainer *tr, sd_tensor *logits, int h, int w)
{
    if (logits && logits->shape[2] == h && logits->shape[3] == w)
        return logits;
    return sd_resize_bilinear(&tr->tape, logits, h, w, true);
}

static double dp_label_scale(const sd_trainer *tr, const uint8_t *labels);

sd_tensor *sd_train_seg_loss(sd_trainer *tr, sd_tensor *logits, const uint8_t *labels, int h, int w)
{
    sd_tensor *up = sd_train_upsample(tr, logits, h, w);
    if (!up)
        return NULL;
    sd_tensor *loss = sd_cross_entropy(&tr->tape, up, labels, NULL, 255);
    double sc = dp_label_scale(tr, labels);
    return sc == 1.0 ? loss : sd_scale(&tr->tape, loss, (float)sc);
}


/* --device cuda: the batch staged at the start of the iteration (its copy
 * overlapped what ran before), or else normalised here and copied. */
static sd_tensor *sd_train_device_input(sd_trainer *tr, const sd_batch *b)
{
    loop_priv *pv = tr->priv;
    sd_tensor *x = sd_stage_take(&pv->stage, &tr->tape, b);
    if (x)
        return x;
    size_t numel = (size_t)b->n * 3 * b->h * b->w;
    float *h = malloc((numel ? numel : 1) * sizeof *h);
    if (!h)
        return sd_tape_fail(&tr->tape, SD_ERR_NOMEM, "input: out of memory for %zu floats", numel);
    sd_normalize_f32(b->image, b->n, b->w, b->h, sd_norm_params_of(tr->norm), h);
    x = sd_tensor_wrap(&tr->tape, 4, (int[]){b->n, 3, b->h, b->w}, h);   /* (a copy on a device tape) */
    free(h);
    return x;
}

/* x's values on the host: x's own storage on the CPU, else a malloc'd copy. */
static sd_status sd_train_host_view(const sd_tensor *x, float **out)
{
    if ((*out = sd_tensor_host(x)))
        return SD_OK;
    if (!(*out = malloc((x->numel ? x->numel : 1) * sizeof(float))))
        return sd_fail(SD_ERR_NOMEM, "out of memory copying %s to the host", sd_shape_str(x));
    sd_status st = sd_tensor_to_host(x, *out);
    if (st) {
        free(*out);
        *out = NULL;
    }
    return st;
}

/* The CE of a rank's share is a mean over its own labelled pixels; the run
 * must give the mean over the whole batch's (what one process with batch
 * N*b computes), so a rank's loss is weighted N * mine / all before the
 * gradients are averaged. Equal counts give exactly 1 (no extra op). Labels
 * other than the batch's own (pseudo-labels) keep per-rank means. */
static double dp_label_scale(const sd_trainer *tr, const uint8_t *labels)
{
    const loop_priv *pv = tr->priv;
    if (!pv || pv->ranks <= 1 || !labels)
        return 1.0;
    for (int d = 0; d < 2; d++) {
        const sd_batch *b = d ? tr->tgt : tr->src;
        if (b && b->label == labels && pv->valid_px[d][1] > 0)
            return (double)pv->ranks * (double)pv->valid_px[d][0] / (double)pv->valid_px[d][1];
    }
    return 1.0;
}

static sd_status domain_open(domain *d, const char *spec, bool use_labels, bool skip_bad, bool lane, uint32_t stream)
{
    memset(d, 0, sizeof *d);
    sd_dataset_opts o = {.skip_bad = skip_bad, .synthia_lanemarking_as_road = lane};
    sd_status st = sd_dataset_open(&d->ds, spec, NULL, &o);
    if (st)
        return st;
    d->opened = true;
    if (d->ds.n == 0)
        return sd_fail(SD_ERR_DATA, "%s: no samples", spec);
    if (use_labels && !d->ds.has_labels)
        return sd_fail(SD_ERR_DATA, "%s: training needs its labels, but the split has none", spec);
    d->images_only = !use_labels;
    d->stream = stream;
    return SD_OK;
}

static void domain_free(domain *d)
{
    if (d->loader) {
        int n = sd_loader_n_skipped(d->loader);
        if (n > 0) {
            sd_log(1, "train: %d unreadable sample(s) of %s were replaced (--skip-bad):\n", n, d->ds.spec);
            for (int i = 0; i < n; i++)
                sd_log(1, "  %s\n", sd_loader_skipped(d->loader, i));
        }
        sd_loader_free(d->loader);
    }
    free(d->subset);
    if (d->opened)
        sd_dataset_free(&d->ds);
    memset(d, 0, sizeof *d);
}

/* The pipeline of a domain: resize to the run's size for it (PIL bicubic,
 * as the field's GTA5/Cityscapes loaders; labels nearest), crop, flip. */
static void domain_pipeline(domain *d, const sd_trainer *tr, int full_w, int full_h, bool flip)
{
    d->aug = (sd_augment){.base_w = full_w, .base_h = full_h, .image_interp = SD_INTERP_BICUBIC,
                          .crop_w = tr->crop_w, .crop_h = tr->crop_h, .flip = flip,
                          .norm = *sd_norm_params_of(tr->norm), .raw_rgb = true};
}

static sd_status domain_start(domain *d, const sd_trainer *tr, int workers, bool skip_bad)
{
    d->aug.norm = *sd_norm_params_of(tr->norm);   /* padding colour; known once --init is read */
    sd_rng r = sd_rng_fork(tr->seed, 0x10ade40000ULL + d->stream);
    const loop_priv *pv = tr->priv;
    /* rank r reads slots r*b .. r*b+b-1 of the global batch of ranks*b */
    sd_loader_opts o = {.batch = d->batch, .workers = workers, .seed = sd_rng_u64(&r), .shuffle = true,
                        .start_iter = tr->it, .skip_bad = skip_bad, .subset = d->subset, .n_subset = d->n_subset,
                        .images_only = d->images_only, .aug = d->aug, .global_batch = d->batch * pv->ranks,
                        .first = d->batch * pv->rank, .device = tr->tape.device};
    return sd_loader_init(&d->loader, &d->ds, &o);
}

sd_status sd_train_target_subset(sd_trainer *tr, int n)
{
    loop_priv *pv = tr->priv;
    domain *d = &pv->tgt;
    if (!pv->have_tgt)
        return sd_fail(SD_ERR_ARG, "no target set to take a labelled subset of");
    if (n > d->ds.n)
        return sd_fail(SD_ERR_ARG, "target-labels %d: the target set has only %d images", n, d->ds.n);
    if (n <= 0 || n == d->ds.n)
        return SD_OK;
    /* A seeded partial Fisher-Yates over all indices, then sorted, so budget
     * n of seed s is a fixed set whatever the run length. */
    int *all = malloc((size_t)d->ds.n * sizeof *all);
    if (!all)
        return sd_fail(SD_ERR_NOMEM, "subset: out of memory");
    for (int i = 0; i < d->ds.n; i++)
        all[i] = i;
    sd_rng r = sd_rng_fork(tr->seed, 0x5b5e7ULL);
    for (int i = 0; i < n; i++) {
        int j = i + sd_rng_int(&r, d->ds.n - i), t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && all[j - 1] > all[j]; j--) {
            int t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    free(d->subset);
    d->subset = all;
    d->n_subset = n;
    return SD_OK;
}

sd_status sd_train_target_image(sd_trainer *tr, int i, float **rgb, int *w, int *h)
{
    loop_priv *pv = tr->priv;
    domain *d = &pv->tgt;
    *rgb = NULL;
    if (!pv->have_tgt || i < 0 || i >= d->ds.n)
        return sd_fail(SD_ERR_ARG, "target sample %d: expected 0..%d", i, pv->have_tgt ? d->ds.n - 1 : -1);
    sd_sample smp;
    sd_status st = sd_dataset_read(&d->ds, i, &smp);
    if (st)
        return st;
    free(smp.label);
    smp.label = NULL;
    sd_augment a = d->aug;   /* the same resize, without crop and flip (nothing random left) */
    a.crop_w = a.crop_h = 0;
    a.flip = false;
    a.norm = *sd_norm_params_of(tr->norm);
    sd_augment_out_size(&a, smp.w, smp.h, w, h);
    sd_rng unused = sd_rng_fork(tr->seed, 0);
    *rgb = malloc((size_t)3 * *w * *h * sizeof(float));
    st = *rgb ? sd_augment_sample(&a, &unused, &smp, *rgb, NULL, NULL)
              : sd_fail(SD_ERR_NOMEM, "out of memory for target image %d (%dx%d)", i, *w, *h);
    sd_sample_free(&smp);
    if (st) {
        free(*rgb);
        *rgb = NULL;
    }
    return st;
}

int sd_train_target_count(const sd_trainer *tr)
{
    const loop_priv *pv = tr->priv;
    return pv->have_tgt ? pv->tgt.ds.n : 0;
}

static void val_free(val_set *v)
{
    if (v->opened)
        sd_dataset_free(&v->ds);
    for (int i = 0; i < v->n_skipped; i++)
        free(v->skipped[i]);
    free(v->skipped);
    free(v->idx);
    memset(v, 0, sizeof *v);
}

/* Why pair i cannot be evaluated ("" when it can): both headers readable,
 * image and label the same size. Only headers are read, so this costs a
 * few kilobytes per pair, not a decode. */
static void val_pair_problem(const sd_sample_entry *e, char *why, size_t cap)
{
    int iw, ih, lw, lh;
    *why = 0;
    if (sd_image_info(e->image_path, &iw, &ih, NULL, NULL))
        snprintf(why, cap, "%s", sd_errmsg());
    else if (!e->label_path)
        snprintf(why, cap, "%s: image has no label", e->image_path);
    else if (sd_image_info(e->label_path, &lw, &lh, NULL, NULL))
        snprintf(why, cap, "%s", sd_errmsg());
    else if (iw != lw || ih != lh)
        snprintf(why, cap, "%s: label is %dx%d, image %s is %dx%d", e->label_path, lw, lh, e->image_path, iw, ih);
}

/* Opens the validation set and checks every pair it will evaluate before
 * the run starts, so a bad file stops the run before iteration 1 (or, with
 * skip_bad, is left out and listed) instead of failing an evaluation. */
static sd_status val_open(val_set *v, const char *spec, const char *split, int limit, int in_w, int in_h,
                          bool skip_bad, bool lane)
{
    memset(v, 0, sizeof *v);
    sd_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.skip_bad = skip_bad;
    o.synthia_lanemarking_as_road = lane;
    sd_status st = sd_dataset_open(&v->ds, spec, split, &o);
    if (st)
        return sd_fail_prefix(st, "validation set");
    v->opened = true;
    if (!v->ds.has_labels) {
        val_free(v);
        return sd_fail(SD_ERR_DATA, "validation set %s: no labels", spec);
    }
    int want = limit > 0 && limit < v->ds.n ? limit : v->ds.n;
    v->idx = malloc(sizeof *v->idx * (size_t)(v->ds.n + 1));
    if (!v->idx)
        return sd_fail(SD_ERR_NOMEM, "validation set %s: out of memory", spec);
    for (int i = 0; i < v->ds.n_problems; i++) {
        char **p = realloc(v->skipped, sizeof *p * (size_t)(v->n_skipped + 1));
        if (!p || !(p[v->n_skipped] = sd_strdup(v->ds.problems[i]))) {
            if (p)
                v->skipped = p;
            return sd_fail(SD_ERR_NOMEM, "validation set %s: out of memory", spec);
        }
        v->skipped = p;
        v->n_skipped++;
    }
    char why[1024];
    for (int i = 0; i < v->ds.n && v->n < want; i++) {
        val_pair_problem(&v->ds.samples[i], why, sizeof why);
        if (!*why) {
            v->idx[v->n++] = i;
            continue;
        }
        if (!skip_bad)
            return sd_fail(SD_ERR_DATA, "validation set %s: %s (fix or remove the pair, or pass --skip-bad to leave "
                           "it out)", spec, why);
        char **p = realloc(v->skipped, sizeof *p * (size_t)(v->n_skipped + 1));
        if (!p || !(p[v->n_skipped] = sd_strdup(why))) {
            if (p)
                v->skipped = p;
            return sd_fail(SD_ERR_NOMEM, "validation set %s: out of memory", spec);
        }
        v->skipped = p;
        v->n_skipped++;
    }
    if (v->n == 0)
        return sd_fail(SD_ERR_DATA, "validation set %s: no readable pair left (%d skipped)", spec, v->n_skipped);
    for (int i = 0; i < v->n_skipped; i++)
        sd_log(0, "train: validation pair skipped (--skip-bad): %s\n", v->skipped[i]);
    v->in_w = in_w;
    v->in_h = in_h;
    return SD_OK;
}

/* mIoU-19 etc. of the current model on the validation set. */
static sd_status evaluate(sd_trainer *tr, sd_eval_result *res)
{
    loop_priv *pv = tr->priv;
    val_set *v = &pv->val;
    sd_confusion cm;
    sd_confusion_init(&cm);
    sd_status st = SD_OK;
    sd_tape_reset(&tr->tape);
    /* rank r scores images r, r+N, ...; the integer counts are summed */
    for (int k = pv->rank; k < v->n && !st; k += pv->ranks) {
        /* the input as `segda eval --model --size` makes it (PIL bicubic, then
         * normalised), scored against the label at its full resolution */
        int i = v->idx[k];
        sd_sample smp;
        if ((st = sd_dataset_read(&v->ds, i, &smp)))
            break;
        int w = v->in_w ? v->in_w : smp.w, h = v->in_h ? v->in_h : smp.h;
        float *img;
        st = sd_infer_input(smp.image, smp.w, smp.h, 3, w, h, tr->norm, &img);
        sd_model_out out;
        if (!st) {
            sd_tape_no_grad_begin(&tr->tape);
            sd_tensor *x = sd_tensor_new4(&tr->tape, 1, 3, h, w);
            if (!x)
                st = tr->tape.status ? tr->tape.status : SD_ERR_NOMEM;
            else {
                st = sd_tensor_from_host(x, img);
                if (tr->method->eval_input)
                    x = tr->method->eval_input(tr, tr->mstate, x);
                st = st ? st : x ? sd_model_forward(tr->model, &tr->tape, x, false, &out)
                       : (tr->tape.status ? tr->tape.status : SD_ERR_SHAPE);
            }
            sd_tape_no_grad_end(&tr->tape);
            free(img);
        }
        float *lg = NULL;
        if (!st && !(st = sd_train_host_view(out.logits, &lg)))
            st = sd_confusion_add_logits(&cm, lg, out.logits->shape[1], out.logits->shape[2],
                                         out.logits->shape[3], smp.label, smp.lw, smp.lh, pv->align_corners,
                                         v->ds.samples[i].image_path);
        if (lg != sd_tensor_host(out.logits))
            free(lg);
        sd_sample_free(&smp);
        sd_tape_reset(&tr->tape);
    }
    if (st)
        st = sd_fail_prefix(st, "evaluation at iteration %lld", (long long)tr->it);
    if ((st = sd_dist_agree(st)))
        return st;
    uint64_t img = (uint64_t)cm.images;
    if ((st = sd_dist_sum_u64(&cm.counts[0][0], sizeof cm.counts / sizeof cm.counts[0][0])) ||
        (st = sd_dist_sum_u64(&cm.ignored, 1)) || (st = sd_dist_sum_u64(&img, 1)))
        return st;
    cm.images = (int64_t)img;
    sd_eval_compute(&cm, res);
    return SD_OK;
}

/* ---- set-up ---- */

static sd_status size_knob(const sd_config *cfg, const char *key, int *w, int *h)
{
    const char *v = sd_config_str(cfg, key);
    *w = *h = 0;
    if (!*v)
        return SD_OK;
    sd_status st = sd_parse_size(v, w, h);
    return st ? sd_fail_prefix(st, "%s: %s", sd_config_origin(cfg, key), key) : SD_OK;
}

/* A crop too small for the network (its strides and pooling leave nothing)
 * would fail at iteration 1 with a convolution's shape message; one
 * forward pass of zeros at the crop size finds it at start instead. Large
 * crops always fit, and are not worth the pass. */
/* One forward pass of a zero w x h image through the model (no tape kept). */
static sd_status probe_forward(sd_trainer *tr, int w, int h)
{
    sd_tape_reset(&tr->tape);
    sd_tape_no_grad_begin(&tr->tape);
    sd_tensor *x = sd_tensor_zeros(&tr->tape, 4, (int[]){1, 3, h, w});
    sd_status st = x ? SD_OK : tr->tape.status ? tr->tape.status : SD_ERR_NOMEM;
    sd_model_out out;
    if (!st)
        st = sd_model_forward(tr->model, &tr->tape, x, false, &out);
    sd_tape_no_grad_end(&tr->tape);
    sd_tape_reset(&tr->tape);
    return st;
}

static sd_status check_crop_fits(sd_trainer *tr, const char *model)
{
    if (tr->crop_w >= 128 && tr->crop_h >= 128)
        return SD_OK;
    sd_status st = probe_forward(tr, tr->crop_w, tr->crop_h);
    if (st == SD_ERR_NOMEM)
        return st;
    if (st) {
        char why[512]; /* (sd_fail writes the buffer sd_errmsg reads) */
        snprintf(why, sizeof why, "%s", sd_errmsg());
        /* the smallest square (a multiple of 8) the network takes, to name */
        int min = 0;
        for (int s = 8; s <= 128 && !min; s += 8)
            if (!probe_forward(tr, s, s))
                min = s;
        sd_error_clear();
        char need[64] = "";
        if (min)
            snprintf(need, sizeof need, " (at least %dx%d)", min, min);
        return sd_fail(SD_ERR_ARG, "%s: crop %dx%d is too small for model %s (%s); use a larger --crop%s",
                       sd_config_origin(tr->cfg, "crop"), tr->crop_w, tr->crop_h, model, why, need);
    }
    return SD_OK;
}

static sd_status setup(sd_trainer *tr, sd_config *cfg, const sd_method *m)
{
    sd_status st;
    tr->cfg = cfg;
    tr->method = m;
    tr->best_miou = -1;
    tr->best_it = -1;
    tr->last_saved_it = -1;
    tr->inject_nan_at = -1;
    const char *inj = getenv("SEGDA_INJECT_NAN_AT");
    if (inj && *inj)
        tr->inject_nan_at = strtoll(inj, NULL, 10);
    loop_priv *pv = calloc(1, sizeof *pv);
    if (!pv)
        return sd_fail(SD_ERR_NOMEM, "train: out of memory");
    pv->lock_fd = -1;
    pv->last_miou = NAN;
    sd_config_init(&pv->resolved);
    pv->rank = sd_dist_rank();
    pv->ranks = sd_dist_size();
    tr->priv = pv;

    const char *out = sd_config_str(cfg, "out");
    if (!*out)
        return sd_fail(SD_ERR_ARG, "no run directory (--out)");
    tr->rundir = sd_strdup(out);
    tr->iters = sd_config_int(cfg, "iters");
    tr->stop_after = sd_config_int(cfg, "stop-after");
    tr->eval_every = sd_config_int(cfg, "eval-every");
    tr->save_every = sd_config_int(cfg, "save-every");
    tr->seed = (uint64_t)sd_config_int(cfg, "seed");
    tr->threads = (int)sd_config_int(cfg, "threads");
    pv->workers = (int)sd_config_int(cfg, "workers");
    pv->skip_bad = sd_config_bool(cfg, "skip-bad");
    pv->align_corners = sd_config_bool(cfg, "align-corners");
    pv->lanemarking = sd_config_bool(cfg, "lanemarking-as-road");
    pv->log_every = (int)sd_config_int(cfg, "log-every");
    /* ranks is what mpirun started, whatever a file or config.txt says */
    if (!strcmp(sd_config_origin(cfg, "ranks"), "--ranks") && sd_config_int(cfg, "ranks") != pv->ranks)
        return sd_fail(SD_ERR_ARG, "--ranks %lld: this run has %d process(es); the number of ranks is set by "
                       "mpirun -np", (long long)sd_config_int(cfg, "ranks"), pv->ranks);
    {
        char nr[16];
        snprintf(nr, sizeof nr, "%d", pv->ranks);
        if ((st = sd_config_set(cfg, "ranks", nr, pv->ranks > 1 ? "mpirun" : "default", true)))
            return st;
    }
    if (tr->iters <= 0)
        return sd_fail(SD_ERR_ARG, "%s: iters = %lld, expected > 0", sd_config_origin(cfg, "iters"),
                       (long long)tr->iters);
    if ((st = sd_parse_pair(sd_config_str(cfg, "batch"), &tr->batch_src, &tr->batch_tgt)))
        return sd_fail_prefix(st, "%s: batch", sd_config_origin(cfg, "batch"));
    if ((st = size_knob(cfg, "crop", &tr->crop_w, &tr->crop_h)) ||
        (st = size_knob(cfg, "source-size", &tr->src_w, &tr->src_h)) ||
        (st = size_knob(cfg, "target-size", &tr->tgt_w, &tr->tgt_h)))
        return st;
    int ev_w, ev_h;
    if ((st = size_knob(cfg, "eval-size", &ev_w, &ev_h)))
        return st;
    if (!ev_w) {
        ev_w = tr->tgt_w;
        ev_h = tr->tgt_h;
    }
    if (tr->threads > 0)
        sd_set_threads(tr->threads);
    sd_dtype prec;
    bool emulate;
    if ((st = sd_dtype_parse(sd_config_str(cfg, "precision"), &prec, &emulate)))
        return sd_fail_prefix(st, "%s", sd_config_origin(cfg, "precision"));
    if (sd_set_precision(prec, emulate) != SD_OK)
        sd_log(1, "%s\n", sd_errmsg()); /* bf16 without CPU support: named, and f32 */
    if ((st = sd_dist_device_select(sd_config_str(cfg, "device"))))   /* (under mpirun: one GPU per rank) */
        return sd_fail_prefix(st, "%s", sd_config_origin(cfg, "device"));
    sd_device dev = sd_device_selected();
    sd_stage_init(&pv->stage, dev);
    if (pv->workers < 0 || pv->workers > 64)
        return sd_fail(SD_ERR_ARG, "%s: workers = %d, expected 0..64", sd_config_origin(cfg, "workers"), pv->workers);
    /* (without a size, images larger than the crop are cut and smaller ones padded, label 255) */
    for (int d = 0; d < 2 && tr->crop_w; d++) {
        int w = d ? tr->tgt_w : tr->src_w, h = d ? tr->tgt_h : tr->src_h;
        if (w && (tr->crop_w > w || tr->crop_h > h))
            return sd_fail(SD_ERR_ARG, "%s: crop %dx%d is larger than %s %dx%d", sd_config_origin(cfg, "crop"),
                           tr->crop_w, tr->crop_h, d ? "target-size" : "source-size", w, h);
    }

    bool resume = sd_config_bool(cfg, "resume");
    char path[4096];
    /* the lock comes before any look at the run's files: a second run into
     * the same directory would interleave log lines, overwrite config.txt
     * and race the checkpoint saves */
    /* (data parallel: rank 0 holds the lock and writes the run's files; every
     * rank makes the directory, which offline pseudo-labelling writes into) */
    if ((st = sd_mkdir_p(tr->rundir)))
        return st;
    snprintf(path, sizeof path, "%s/.lock", tr->rundir);
    if (pv->rank == 0 && (st = io_lock(path, tr->rundir, &pv->lock_fd)))
        return sd_fail_prefix(st, "--out");
    snprintf(path, sizeof path, "%s/last.safetensors", tr->rundir);
    if (!resume && access(path, F_OK) == 0)
        return sd_fail(SD_ERR_ARG, "%s already holds a run (%s); continue it with --resume or choose another --out",
                       tr->rundir, path);

    /* data */
    const char *src = sd_config_str(cfg, "source"), *tgt = sd_config_str(cfg, "target");
    if (m->source_batches) {
        if (!*src)
            return sd_fail(SD_ERR_ARG, "method %s needs a source set (--source)", m->name);
        if (tr->batch_src <= 0)
            return sd_fail(SD_ERR_ARG, "method %s needs source images: batch %s", m->name,
                           sd_config_str(cfg, "batch"));
        pv->have_src = true;
        if ((st = domain_open(&pv->src, src, true, pv->skip_bad, pv->lanemarking, 1)))
            return sd_fail_prefix(st, "source");
        pv->src.batch = tr->batch_src;
    }
    if (m->needs_target || m->target_labels) {
        if (!*tgt)
            return sd_fail(SD_ERR_ARG, "method %s needs a target set (--target)", m->name);
        if (tr->batch_tgt <= 0)
            return sd_fail(SD_ERR_ARG, "method %s needs target images: batch %s", m->name,
                           sd_config_str(cfg, "batch"));
        pv->have_tgt = true;
        if ((st = domain_open(&pv->tgt, tgt, m->target_labels, pv->skip_bad, pv->lanemarking, 2)))
            return sd_fail_prefix(st, "target");
        pv->tgt.batch = tr->batch_tgt;
    }
    const char *val = sd_config_str(cfg, "val");
    if (tr->eval_every > 0) {
        if (*val)
            st = val_open(&pv->val, val, NULL, (int)sd_config_int(cfg, "val-limit"), ev_w, ev_h, pv->skip_bad, pv->lanemarking);
        else if (*tgt)
            st = val_open(&pv->val, tgt, "val", (int)sd_config_int(cfg, "val-limit"), ev_w, ev_h, pv->skip_bad, pv->lanemarking);
        else
            st = sd_fail(SD_ERR_ARG, "--eval-every needs --val or --target");
        pv->have_val = true; /* (val_free releases a half-opened set too) */
        if (st)
            return st;
    }

    /* model */
    sd_model_opts mo = sd_model_opts_default(sd_config_str(cfg, "model"));
    if ((st = sd_bn_mode_parse(sd_config_str(cfg, "bn"), &mo.bn)))   /* resolved from auto by sd_train_resolve */
        return sd_fail_prefix(st, "%s", sd_config_origin(cfg, "bn"));
    mo.classes = (int)sd_config_int(cfg, "classes");
    pv->remap = mo.classes != SD_NUM_CLASSES;
    pv->protocol = sd_class_set_protocol(mo.classes);
    if (!sd_class_set_index_lut(mo.classes, pv->class_lut))
        return sd_fail(SD_ERR_ARG, "%s: classes = %d, expected 19 or 16", sd_config_origin(cfg, "classes"), mo.classes);
    /* From scratch the 10x head made deeplab-mini's loss jump to 15-30 at lr
     * 0.01 (measured, README): the head multiplier follows --init too */
    bool scratch = !*sd_config_str(cfg, "init");
    /* BN normalising with batch statistics (batch-stats, train): SyncBN (the
     * statistics and their backward summed over the ranks), or with
     * --sync-bn false per-rank statistics and the running ones averaged after
     * each iteration, as AdaBN's re-estimation */
    bool batch_bn = mo.bn != SD_BN_FROZEN;
    if (pv->ranks > 1 && batch_bn && sd_config_bool(cfg, "sync-bn") && dev != SD_DEVICE_CPU)
        return sd_fail(SD_ERR_UNSUPPORTED, "--device %s with %d ranks: SyncBN runs on the CPU only; use --freeze-bn "
                       "true or --sync-bn false", sd_config_str(cfg, "device"), pv->ranks);
    if (pv->ranks > 1 && batch_bn && sd_config_bool(cfg, "sync-bn"))
        sd_batch_norm_set_sync(sd_dist_sum_f64);
    pv->sync_buffers = pv->ranks > 1 && ((batch_bn && !sd_config_bool(cfg, "sync-bn")) || m->fixed_weights);
    const char *aux = sd_config_str(cfg, "aux");
    mo.aux = !strcmp(aux, "on") || (!strcmp(aux, "auto") && m->wants_aux && m->wants_aux(cfg));
    if ((st = sd_train_set_resolved(tr, "aux", mo.aux ? "on" : "off")))   /* (bn: resolved in config.c) */
        return st;
    if ((st = sd_model_create(&mo, &tr->model)))
        return sd_fail_prefix(st, "model %s", mo.name);
    sd_model_init_weights(tr->model, tr->seed);
    tr->params = sd_model_params(tr->model);
    float head_mult = (float)sd_config_float(cfg, "head-lr-mult");
    int g_head = sd_model_group(tr->model, "classifier");
    if (head_mult < 0)
        return sd_fail(SD_ERR_ARG, "%s: head-lr-mult = %g, expected >= 0 (0 = auto)",
                       sd_config_origin(cfg, "head-lr-mult"), head_mult);
    if (g_head >= 0) {
        tr->params->groups[g_head].lr_mult = head_mult > 0 ? head_mult : scratch ? 1.0f : 10.0f;
        char hm[32];
        snprintf(hm, sizeof hm, "%g", (double)tr->params->groups[g_head].lr_mult);
        if ((st = sd_train_set_resolved(tr, "head-lr-mult", hm)))
            return st;
    }
    int n_models;
    const sd_model_info *info = sd_model_list(&n_models);
    tr->norm = SD_NORM_CAFFE;
    for (int i = 0; i < n_models; i++)
        if (!strcmp(info[i].name, mo.name))
            tr->norm = info[i].default_norm;
    const char *init = sd_config_str(cfg, "init");
    if (*init && !resume) {
        sd_ckpt c;
        if ((st = sd_ckpt_open(init, &c)))
            return sd_fail_prefix(st, "--init");
        sd_ckpt_report rep;
        st = sd_ckpt_load_weights(&c, tr->params, mo.name, sd_config_bool(cfg, "partial-init"), &rep);
        const char *nm = sd_ckpt_meta(&c, SD_META_NORM);
        if (nm && sd_norm_parse(nm) >= 0)
            tr->norm = (sd_norm)sd_norm_parse(nm);
        sd_ckpt_close(&c);
        if (st)
            return sd_fail_prefix(st, "--init %s", init);
        if (rep.loaded == 0)
            return sd_fail(SD_ERR_DATA, "--init %s: no tensor matches a parameter of %s", init, mo.name);
        sd_log(1, "init: %d tensors from %s (%d missing, %d unexpected, %d mis-shaped)\n", rep.loaded, init,
               rep.missing, rep.unexpected, rep.mismatched);
    }

    /* optimisation */
    tr->sched = sd_lr_poly((float)sd_config_float(cfg, "lr"), tr->iters, (float)sd_config_float(cfg, "power"));
    tr->sched.warmup_iters = sd_config_int(cfg, "warmup");
    tr->sched.warmup_ratio = 1e-6f;
    sd_optim_opts oo;
    if (!strcmp(sd_config_str(cfg, "optimizer"), "adam")) {
        oo = sd_optim_opts_adam(0.9f, 0.999f);
        oo.weight_decay = (float)sd_config_float(cfg, "weight-decay");
    } else {
        oo = sd_optim_opts_sgd((float)sd_config_float(cfg, "momentum"), (float)sd_config_float(cfg, "weight-decay"));
    }
    /* built and initialised on the CPU, then moved (--device) */
    if ((st = sd_params_to_device(tr->params, dev)))
        return st;
    if ((st = sd_optim_init(&tr->opt, tr->params, &oo)))
        return st;
    if ((st = sd_tape_init_on(&tr->tape, tr->seed, dev)))
        return st;
    if (tr->crop_w && (st = check_crop_fits(tr, mo.name)))
        return st;
    bool flip = sd_config_bool(cfg, "flip");
    if (pv->have_src)
        domain_pipeline(&pv->src, tr, tr->src_w, tr->src_h, flip);
    if (pv->have_tgt)
        domain_pipeline(&pv->tgt, tr, tr->tgt_w, tr->tgt_h, flip);
    if (m->init && (st = m->init(tr, &tr->mstate)))
        return sd_fail_prefix(st, "method %s", m->name);
    if (resume && (st = train_resume_from(tr)))
        return st;
    /* the loaders start at the iteration the run continues from */
    if (pv->have_src && (st = domain_start(&pv->src, tr, pv->workers, pv->skip_bad)))
        return sd_fail_prefix(st, "source");
    if (pv->have_tgt && (st = domain_start(&pv->tgt, tr, pv->workers, pv->skip_bad)))
        return sd_fail_prefix(st, "target");
    if ((st = train_write_config(tr)))
        return st;
    if (pv->rank == 0 && (st = train_log_open(tr, resume)))
        return st;
    if (pv->have_val && pv->val.n_skipped)
        train_log_val_skipped(tr);
    if (pv->forced && tr->log) {
        fprintf(tr->log, "{\"it\": %lld, \"resume_force\": ", (long long)tr->it);
        sd_json_str(tr->log, pv->forced);
        fprintf(tr->log, "}\n");
        fflush(tr->log);
    }
    return SD_OK;
}

static void teardown(sd_trainer *tr)
{
    if (tr->method && tr->method->free && tr->mstate)
        tr->method->free(tr->mstate);
    for (int i = 0; i < tr->n_mods; i++)
        if (tr->mods[i].trainable)
            sd_optim_free(&tr->mods[i].opt);
    sd_optim_free(&tr->opt);
    sd_grad_ratio_free(tr);
    sd_tape_free(&tr->tape);
    if (tr->model)
        sd_model_free(tr->model);
    loop_priv *pv = tr->priv;
    int lock_fd = -1;
    if (pv) {
        if (pv->have_src)
            domain_free(&pv->src);
        if (pv->have_tgt)
            domain_free(&pv->tgt);
        if (pv->have_val)
            val_free(&pv->val);
        free(pv->config_text);
        free(pv->forced);
        sd_stage_free(&pv->stage);
        sd_config_free(&pv->resolved);
        lock_fd = pv->lock_fd;
        free(pv);
    }
    sd_tblog_close(tr);
    if (tr->log)
        fclose(tr->log);
    sd_batch_norm_set_sync(NULL);
    /* released last: every file of the run is written and closed */
    io_unlock(lock_fd);
    free(tr->rundir);
    memset(tr, 0, sizeof *tr);
}

/* ---- the loop ---- */

static void zero_grads(sd_trainer *tr)
{
    sd_params_zero_grad(tr->params);
    for (int i = 0; i < tr->n_mods; i++)
        sd_params_zero_grad(tr->mods[i].params);
}

static sd_status run_eval(sd_trainer *tr, sd_train_summary *sum)
{
    sd_eval_result r;
    double t0 = sd_time_now();
    sd_status st = evaluate(tr, &r);
    if (st)
        return st;
    /* the best checkpoint by the class set's protocol (mIoU-16 for SYNTHIA's) */
    double miou = r.miou[((loop_priv *)tr->priv)->protocol];
    ((loop_priv *)tr->priv)->last_miou = miou;
    train_log_eval(tr, &r);
    sd_tblog_eval(tr, &r);
    if (sum) {
        sum->evaluated = true;
        sum->miou_19 = r.miou[SD_PROTOCOL_19];
        memcpy(sum->class_iou, r.class_iou, sizeof sum->class_iou);
    }
    bool best = isfinite(miou) && miou > tr->best_miou;
    if (((loop_priv *)tr->priv)->rank == 0)
        fprintf(stderr, "train %s: eval at it %lld: %s %.2f%s (%.1f s)\n", tr->method->name, (long long)tr->it,
                sd_protocols[((loop_priv *)tr->priv)->protocol].name, 100 * miou, best ? " (best)" : "",
                sd_time_now() - t0);
    if (best) {
        tr->best_miou = miou;
        tr->best_it = tr->it;
        if ((st = train_save_best(tr)))
            return st;
    }
    return SD_OK;
}

/* Labelled pixels of this rank's share of batch b, and of the whole batch. */
static sd_status count_valid(const loop_priv *pv, const sd_batch *b, uint64_t px[2])
{
    px[0] = px[1] = 0;
    if (b && b->label) {
        size_t n = (size_t)b->n * b->h * b->w;
        for (size_t i = 0; i < n; i++)
            px[0] += b->label[i] != 255;
    }
    px[1] = px[0];
    return pv->ranks > 1 ? sd_dist_sum_u64(&px[1], 1) : SD_OK;
}

/* Data parallel: the ranks' gradients of every parameter group (the
 * network's and each trainable module's, in registration order) summed in
 * rank order and divided by N, so every rank steps with the gradient of the
 * mean loss over the whole batch; moving BN statistics averaged the same
 * way; the logged terms are the batch's means. */
static sd_status dp_reduce(sd_trainer *tr)
{
    loop_priv *pv = tr->priv;
    const float nr = (float)pv->ranks;
    sd_status st = SD_OK;
    for (int k = -1; k < tr->n_mods && !st; k++) {
        sd_params *p = k < 0 ? tr->params : tr->mods[k].params;
        if (k >= 0 && !tr->mods[k].trainable && !pv->sync_buffers)
            continue;
        for (int g = 0; g < p->n_groups && !st; g++) {
            sd_param_group *gr = &p->groups[g];
            float *buf = gr->is_buffer ? (pv->sync_buffers ? gr->data : NULL)
                                       : (k < 0 || tr->mods[k].trainable ? gr->grad : NULL);
            if (!buf || !gr->numel)
                continue;
            if (p->device != SD_DEVICE_CPU)   /* (--device cuda: NCCL, or through the host) */
                st = sd_dist_mean_f32_on(buf, gr->numel, p->device);
            else if (!(st = sd_dist_sum_f32(buf, gr->numel)))
                for (size_t i = 0; i < gr->numel; i++)
                    buf[i] /= nr;
        }
    }
    double v[SD_TRAIN_MAX_TERMS];
    for (int i = 0; i < tr->n_terms; i++)
        v[i] = tr->terms[i].value;
    if (!st && !(st = sd_dist_sum_f64(v, (size_t)tr->n_terms)))
        for (int i = 0; i < tr->n_terms; i++)
            tr->terms[i].value = v[i] / pv->ranks;
    return st;
}

static sd_status iterate(sd_trainer *tr)
{
    loop_priv *pv = tr->priv;
    sd_status st;
    tr->n_terms = 0;
    tr->n_pending = 0;
    sd_tape_reset(&tr->tape);
    /* dropout and other stochastic ops: a stream per iteration, so resume
     * replays them exactly */
    tr->tape.rng = sd_rng_fork(tr->seed, 0x7a9e000000ULL + (uint64_t)tr->it);
    tr->tape.training = true;
    zero_grads(tr);
    tr->src = tr->tgt = NULL;
    if (pv->have_src && (st = sd_loader_next(pv->src.loader, &tr->src)))
        return sd_dist_agree(sd_fail_prefix(st, "source"));
    if (pv->have_tgt && (st = sd_loader_next(pv->tgt.loader, &tr->tgt)))
        return sd_dist_agree(sd_fail_prefix(st, "target"));
    /* a 16-class (SYNTHIA) run: trainIds to the model's output indices */
    for (int d = 0; d < 2 && pv->remap; d++) {
        const sd_batch *b = d ? tr->tgt : tr->src;   /* (its label buffer is ours to rewrite) */
        for (size_t i = 0; b && b->label && i < (size_t)b->n * b->h * b->w; i++)
            b->label[i] = pv->class_lut[b->label[i]];
    }
    if (tr->tape.device != SD_DEVICE_CPU &&
        ((st = sd_stage_put(&pv->stage, 0, tr->src, sd_norm_params_of(tr->norm))) ||
         (st = sd_stage_put(&pv->stage, 1, tr->tgt, sd_norm_params_of(tr->norm)))))
        return sd_dist_agree(st);
    if (pv->ranks > 1) {
        /* every rank reaches each collective, or all stop together */
        if ((st = sd_dist_agree(SD_OK)) || (st = count_valid(pv, tr->src, pv->valid_px[0])) ||
            (st = count_valid(pv, tr->tgt, pv->valid_px[1])))
            return st;
    }
    st = tr->method->step(tr, tr->mstate);
    if (!st)
        st = sd_train_backward(tr);
    if (pv->ranks > 1 && (st = sd_dist_agree(st)) == SD_OK)
        st = dp_reduce(tr);
    if (st)
        return st;
    if (tr->method->fixed_weights)
        return SD_OK;
    float lr = sd_lr_at(&tr->sched, tr->it);
    if ((st = sd_optim_step(&tr->opt, lr)))
        return st;
    for (int i = 0; i < tr->n_mods; i++)
        if (tr->mods[i].trainable && (st = sd_optim_step(&tr->mods[i].opt, sd_lr_at(&tr->mods[i].sched, tr->it))))
            return st;
    if (tr->method->after_step && (st = tr->method->after_step(tr, tr->mstate)))
        return st;
    return SD_OK;
}

sd_status sd_train_run(sd_config *cfg) { return sd_train_run_summary(cfg, NULL); }

/* Per thread, so two in-process runs on two threads keep their own hooks. */
static _Thread_local sd_train_progress_fn progress_fn;
static _Thread_local void *progress_ctx;

void sd_train_set_progress(sd_train_progress_fn fn, void *ctx)
{
    progress_fn = fn;
    progress_ctx = ctx;
}

/* ---- the task's callbacks for the driver (driver.h) ---- */

typedef struct seg_task {
    sd_trainer *tr;
    sd_train_summary *sum;
} seg_task;

static sd_status seg_step(void *ctx, int64_t it, float lr)
{
    (void)lr;   /* (iterate steps every module on its own schedule) */
    sd_trainer *tr = ((seg_task *)ctx)->tr;
    tr->it = it;
    return iterate(tr);
}

static void seg_record(void *ctx, int64_t it, float lr, double elapsed, bool failed)
{
    sd_trainer *tr = ((seg_task *)ctx)->tr;
    tr->it = it;
    if (failed) {
        if (tr->n_terms && tr->log)
            train_log_iteration(tr, lr, elapsed);
        return;
    }
    train_log_iteration(tr, lr, elapsed);
    sd_tblog_iteration(tr, lr);
    if (progress_fn && progress_fn(progress_ctx, tr))
        sd_request_stop();
}

static void seg_terms(void *ctx, char *buf, size_t cap)
{
    const sd_trainer *tr = ((seg_task *)ctx)->tr;
    size_t n = 0;
    for (int i = 0; i < tr->n_terms && n + 40 < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "  %s %.4g", tr->terms[i].name, tr->terms[i].value);
}

static sd_status seg_evaluate(void *ctx, int64_t done, bool *resave)
{
    seg_task *k = ctx;
    k->tr->it = done;
    double best = k->tr->best_miou;
    sd_status st = run_eval(k->tr, k->sum);
    /* (last.safetensors records the new best for --resume) */
    *resave = !st && k->tr->best_miou != best;
    return st;
}

static void seg_eval_failed(void *ctx, int64_t done, const char *msg)
{
    sd_trainer *tr = ((seg_task *)ctx)->tr;
    tr->it = done;
    ((loop_priv *)tr->priv)->eval_failures++;
    train_log_eval_error(tr, msg);
}

static sd_status seg_save(void *ctx, int64_t done)
{
    sd_trainer *tr = ((seg_task *)ctx)->tr;
    tr->it = done;
    return train_save_last_file(tr);
}

static void seg_describe(void *ctx, sd_run_summary *s)
{
    seg_task *k = ctx;
    train_describe(k->tr, k->sum, s);
}

sd_status sd_train_run_summary(sd_config *cfg, sd_train_summary *user_sum)
{
    sd_train_summary local, *sum = user_sum ? user_sum : &local; /* (summary.json needs one) */
    {
        memset(sum, 0, sizeof *sum);
        sum->miou_19 = NAN;
        sum->best_miou = NAN;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            sum->class_iou[c] = NAN;
    }
    const sd_method *m;
    sd_status st = sd_train_resolve(cfg, &m);
    if (st)
        return st;
    sd_trainer tr;
    memset(&tr, 0, sizeof tr);
    sd_stop_clear();
    /* (set-up makes no collective call: the ranks agree once it is done;
     * then NCCL for --device cuda, whose set-up agrees by itself) */
    if ((st = sd_dist_agree(setup(&tr, cfg, m))) || (st = sd_dist_device_init(tr.tape.device))) {
        teardown(&tr);
        return st;
    }
    loop_priv *pv = tr.priv;
    sd_tblog_open(&tr, tr.it);
    char name[64], ckpt[4200], summary[4200];
    snprintf(name, sizeof name, "train %s", m->name);
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", tr.rundir);
    snprintf(summary, sizeof summary, "%s/summary.json", tr.rundir);
    seg_task k = {&tr, sum};
    sd_drive_task t = {
        .name = name, .ckpt = ckpt, .summary = summary, .ctx = &k,
        .iters = tr.iters, .start = tr.it, .stop_after = tr.stop_after, .eval_every = tr.eval_every,
        .save_every = tr.save_every, .log_every = pv->log_every, .save_at_zero = true, .sched = &tr.sched,
        .step = seg_step, .record = seg_record, .terms = seg_terms,
        .evaluate = pv->have_val ? seg_evaluate : NULL, .eval_failed = seg_eval_failed,
        .save = seg_save, .describe = seg_describe,
    };
    sd_drive_result r;
    st = sd_drive(&t, &r);
    tr.it = r.iterations;
    sum->best_miou = tr.best_miou;
    sum->best_it = tr.best_it;
    sum->iters = r.iterations;
    sum->seconds = r.seconds;
    sum->eval_failures = r.eval_failures;
    teardown(&tr);
    return st;
}

int sd_trainer_term_list(const sd_trainer *tr, const char **names, double *values)
{
    int n = tr->n_terms < SD_TRAIN_MAX_TERMS ? tr->n_terms : SD_TRAIN_MAX_TERMS;
    for (int i = 0; i < n; i++) {
        names[i] = tr->terms[i].name;
        values[i] = tr->terms[i].value;
    }
    return n;
}
