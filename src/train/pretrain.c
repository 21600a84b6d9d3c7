/* Classification pretraining of a segmentation model's backbone on an image
 * folder (pretrain.h): batches with random-resized crops
 * and flips, the pooled linear head, the SGD loop and the checkpoint with the
 * state --resume needs.
 * Not here: the image-folder reader (src/data/image_folder.c), segmentation
 * training (loop.c), the command line (cmd_pretrain.c). */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segda/checkpoint.h"
#include "segda/dist.h"
#include "segda/image.h"
#include "segda/model.h"
#include "segda/norm.h"
#include "segda/ops.h"
#include "segda/optim.h"
#include "segda/pretrain.h"
#include "segda/progress.h"
#include "segda/tensor.h"
#include "segda/train.h"
#include "segda/transform.h"
#include "da/tblog.h"
#include "io/file.h"
#include "train/driver.h"
#include "segda/tfevents.h"

#define PT_HEAD_PREFIX "pretrain:"

/* Streams of the seed: per-epoch shuffles and per-sample augmentation are
 * pure functions of (seed, position), so a run never depends on what came
 * before it in the process. */
#define STREAM_SHUFFLE (1ull << 40)
#define STREAM_AUGMENT (2ull << 40)
#define STREAM_DROPOUT (4ull << 40)

/* ---- batches ---- */

/* One training view: a square of a random area fraction in [scale_min, 1] of
 * the shorter side's square, at a random place, resized to size, flipped
 * with p = 0.5. Evaluation views (rng NULL) take the centred square. */
static sd_status make_view(const sd_image_folder *f, int i, int size, float scale_min, sd_rng *rng,
                           const sd_norm_params *np, uint8_t *crop, uint8_t *view, float *chw)
{
    int w = f->w[i], h = f->h[i], side = w < h ? w : h, x, y;
    if (rng) {
        float a = scale_min + (1.0f - scale_min) * sd_rng_uniform(rng);
        int s = (int)lroundf(sqrtf(a) * (float)side);
        side = s < 1 ? 1 : s > side ? side : s;
        x = sd_rng_int(rng, w - side + 1);
        y = sd_rng_int(rng, h - side + 1);
    } else {
        x = (w - side) / 2;
        y = (h - side) / 2;
    }
    static const uint8_t fill[3] = {0, 0, 0};
    sd_crop_u8(f->rgb[i], w, h, 3, x, y, side, side, fill, crop);
    sd_status st = sd_resize_u8(crop, side, side, 3, view, size, size, SD_INTERP_BILINEAR);
    if (st)
        return sd_fail_prefix(st, "%s", f->paths[i]);
    if (rng && sd_rng_uniform(rng) < 0.5f)
        sd_flip_u8(view, size, size, 3);
    sd_normalize(view, size, size, np, chw);
    return SD_OK;
}

/* Fisher-Yates permutation of the training set for one epoch. */
static void epoch_perm(uint64_t seed, int64_t epoch, int n, int *perm)
{
    sd_rng r = sd_rng_fork(seed, STREAM_SHUFFLE ^ (uint64_t)epoch);
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = sd_rng_int(&r, i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

/* ---- the network: model backbone + pooled linear head ---- */

typedef struct pt_net {
    sd_model *model;
    sd_norm norm;
    sd_params head;
    sd_tensor *fc_w, *fc_b;   /* [K, C, 1, 1], [K] */
    int classes, channels;
} pt_net;

static void net_free(pt_net *n)
{
    sd_model_free(n->model);
    sd_params_free(&n->head);
    memset(n, 0, sizeof *n);
}

static sd_status head_init(pt_net *n, int classes)
{
    n->classes = classes;
    n->channels = sd_model_channels(n->model, "feat");
    if (n->channels <= 0)
        return sd_fail(SD_ERR_UNSUPPORTED, "model %s: no backbone feature map to pool",
                       sd_model_options(n->model)->name);
    sd_params_init(&n->head);
    int g = sd_params_add_group(&n->head, "head", 1.0f, 1.0f, false);
    if (g < 0)
        return SD_ERR_NOMEM;
    int ws[4] = {classes, n->channels, 1, 1}, bs[1] = {classes};
    n->fc_w = sd_params_declare(&n->head, g, "fc.weight", 4, ws);
    n->fc_b = sd_params_declare(&n->head, g, "fc.bias", 1, bs);
    if (!n->fc_w || !n->fc_b)
        return SD_ERR_NOMEM;
    return sd_params_alloc(&n->head);
}

/* logits [N, K, 1, 1] of normalised images x. */
static sd_tensor *net_forward(pt_net *n, sd_tape *t, sd_tensor *x, bool training)
{
    sd_model_out out;
    if (sd_model_forward(n->model, t, x, training, &out) || !out.feat)
        return NULL;
    sd_tensor *pooled = sd_adaptive_avg_pool2d(t, out.feat, 1, 1);
    return sd_conv2d(t, pooled, n->fc_w, n->fc_b, sd_conv_opts_default());
}

/* Top-1 accuracy over a folder split, eval mode, no gradient. */
static sd_status net_eval(pt_net *n, sd_tape *t, const sd_image_folder *f, int size, int batch, double *top1)
{
    const sd_norm_params *np = sd_norm_params_of(n->norm);
    size_t plane = (size_t)3 * size * size;
    int max_side = 0;
    for (int i = 0; i < f->n; i++) {
        int s = f->w[i] < f->h[i] ? f->w[i] : f->h[i];
        max_side = s > max_side ? s : max_side;
    }
    uint8_t *crop = sd_malloc((size_t)max_side * max_side * 3), *view = sd_malloc(plane);
    float *xb = sd_malloc(sizeof *xb * plane * (size_t)batch);
    sd_status st = (!crop || !view || !xb) ? SD_ERR_NOMEM : SD_OK;
    long correct = 0;
    sd_tape_no_grad_begin(t);
    for (int i0 = 0; i0 < f->n && !st; i0 += batch) {
        int nb = f->n - i0 < batch ? f->n - i0 : batch;
        for (int j = 0; j < nb && !st; j++)
            st = make_view(f, i0 + j, size, 1.0f, NULL, np, crop, view, xb + plane * (size_t)j);
        if (st)
            break;
        sd_tape_reset(t);
        int xs[4] = {nb, 3, size, size};
        sd_tensor *logits = net_forward(n, t, sd_tensor_wrap(t, 4, xs, xb), false);
        if (!logits) {
            st = t->status ? t->status : SD_ERR_ARG;
            break;
        }
        float *lh = sd_tensor_host(logits), *own = NULL;
        if (!lh) {   /* (a device's logits: --device) */
            if (!(lh = own = malloc(logits->numel * sizeof *lh)) || (st = sd_tensor_to_host(logits, lh))) {
                st = own ? st : SD_ERR_NOMEM;
                free(own);
                break;
            }
        }
        for (int j = 0; j < nb; j++) {
            const float *l = lh + (size_t)j * n->classes;
            int best = 0;
            for (int k = 1; k < n->classes; k++)
                if (l[k] > l[best])
                    best = k;
            correct += best == f->label[i0 + j];
        }
        free(own);
    }
    sd_tape_no_grad_end(t);
    sd_tape_reset(t);
    free(crop);
    free(view);
    free(xb);
    if (!st)
        *top1 = f->n ? (double)correct / f->n : 0.0;
    return st;
}

/* ---- the run ---- */

/* Names of the resumable state in the checkpoint (pretrain.h). */
#define PT_OPT_MODEL "opt:"
#define PT_OPT_HEAD "opt:pretrain."
#define PT_STEPS_MODEL "opt_steps"
#define PT_STEPS_HEAD "opt_steps:pretrain:"
#define PT_LOSS "pretrain_state:loss"

void sd_pretrain_opts_init(sd_pretrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = "deeplab-mini";
    o->iters = 1500;
    o->batch = 32;
    o->lr = 0.05f;
    o->momentum = 0.9f;
    o->weight_decay = 1e-4f;
    o->size = 64;
    o->scale_min = 0.35f;
    o->seed = 1;
    o->val_every = 500;
    o->log_every = 50;
}

static sd_status check_opts(const sd_pretrain_opts *o)
{
    if (!o->data || !*o->data)
        return sd_fail(SD_ERR_ARG, "pretrain: no data folder given (expected DIR with train/ and val/)");
    if (!o->model || !*o->model)
        return sd_fail(SD_ERR_ARG, "pretrain: no model name given");
    if (!o->out || !*o->out)
        return sd_fail(SD_ERR_ARG, "pretrain: no output checkpoint path given");
    if (strchr(o->data, '\n') || strchr(o->model, '\n'))
        return sd_fail(SD_ERR_ARG, "pretrain: data folder or model name contains a newline");
    if (o->iters < 1)
        return sd_fail(SD_ERR_ARG, "pretrain: iters %d (expected >= 1)", o->iters);
    if (o->batch < 1 || o->batch > 4096)
        return sd_fail(SD_ERR_ARG, "pretrain: batch %d (expected 1..4096)", o->batch);
    if (o->size < 8 || o->size > 4096)
        return sd_fail(SD_ERR_ARG, "pretrain: size %d (expected 8..4096)", o->size);
    if (!(o->lr >= 0 && isfinite(o->lr)))
        return sd_fail(SD_ERR_ARG, "pretrain: lr %g (expected a finite number >= 0)", (double)o->lr);
    if (!(o->momentum >= 0 && o->momentum < 1))
        return sd_fail(SD_ERR_ARG, "pretrain: momentum %g (expected 0 <= m < 1)", (double)o->momentum);
    if (!(o->weight_decay >= 0 && isfinite(o->weight_decay)))
        return sd_fail(SD_ERR_ARG, "pretrain: weight decay %g (expected >= 0)", (double)o->weight_decay);
    if (!(o->scale_min > 0 && o->scale_min <= 1))
        return sd_fail(SD_ERR_ARG, "pretrain: scale_min %g (expected 0 < s <= 1)", (double)o->scale_min);
    if (o->val_every < 0 || o->log_every < 0)
        return sd_fail(SD_ERR_ARG, "pretrain: val_every %d / log_every %d (expected >= 0)", o->val_every,
                       o->log_every);
    if (o->save_every < 0 || o->stop_after < 0)
        return sd_fail(SD_ERR_ARG, "pretrain: save_every %d / stop_after %d (expected >= 0)", o->save_every,
                       o->stop_after);
    return SD_OK;
}

/* ---- the run's options in the checkpoint ("config" metadata) ---- */

static char *opts_text(const sd_pretrain_opts *o)
{
    size_t n = strlen(o->data) + strlen(o->model) + 512;
    char *s = sd_malloc(n);
    if (s)
        snprintf(s, n,
                 "data = %s\nmodel = %s\niters = %d\nbatch = %d\nlr = %.9g\nmomentum = %.9g\nweight-decay = %.9g\n"
                 "size = %d\nscale-min = %.9g\nseed = %llu\nval-every = %d\nsave-every = %d\n",
                 o->data, o->model, o->iters, o->batch, (double)o->lr, (double)o->momentum,
                 (double)o->weight_decay, o->size, (double)o->scale_min, (unsigned long long)o->seed, o->val_every,
                 o->save_every);
    return s;
}

/* Fills the run-defining fields of *o from text (opts_text's format, read
 * by the shared configuration parser); data and model point into *store
 * (a configuration whose values stay until sd_config_free). */
static sd_status opts_parse(const char *path, const char *text, sd_pretrain_opts *o, sd_config *store)
{
    sd_config_init(store);
    if (!text)
        return sd_fail(SD_ERR_DATA,
                       "%s: no 'config' metadata: not a resumable segda pretrain checkpoint (written before "
                       "--resume existed?)", path);
    char name[4200];
    snprintf(name, sizeof name, "%s: 'config' metadata", path);
    sd_status st = sd_config_parse(store, text, strlen(text), name);
    static const char *const keys[] = {"data", "model", "iters", "batch", "lr", "momentum", "weight-decay",
                                       "size", "scale-min", "seed", "val-every", "save-every"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !st; i++)
        if (!sd_config_get(store, keys[i]))
            st = sd_fail(SD_ERR_DATA, "%s has no '%s'", name, keys[i]);
    /* (keys of a later version are not needed to continue this run) */
#define WHAT(k) (snprintf(what, sizeof what, "%s: %s", sd_config_origin(store, k), k), what)
    char what[4400];
    if (!st) {
        o->data = sd_config_get(store, "data");
        o->model = sd_config_get(store, "model");
        st = sd_parse_int(sd_config_get(store, "iters"), 1, INT_MAX, WHAT("iters"), &o->iters);
    }
    if (!st)
        st = sd_parse_int(sd_config_get(store, "batch"), 1, 4096, WHAT("batch"), &o->batch);
    if (!st)
        st = sd_parse_float(sd_config_get(store, "lr"), -FLT_MAX, FLT_MAX, WHAT("lr"), &o->lr);
    if (!st)
        st = sd_parse_float(sd_config_get(store, "momentum"), -FLT_MAX, FLT_MAX, WHAT("momentum"), &o->momentum);
    if (!st)
        st = sd_parse_float(sd_config_get(store, "weight-decay"), -FLT_MAX, FLT_MAX, WHAT("weight-decay"),
                            &o->weight_decay);
    if (!st)
        st = sd_parse_int(sd_config_get(store, "size"), 8, 4096, WHAT("size"), &o->size);
    if (!st)
        st = sd_parse_float(sd_config_get(store, "scale-min"), -FLT_MAX, FLT_MAX, WHAT("scale-min"), &o->scale_min);
    if (!st)
        st = sd_parse_u64(sd_config_get(store, "seed"), WHAT("seed"), &o->seed);
    if (!st)
        st = sd_parse_int(sd_config_get(store, "val-every"), 0, INT_MAX, WHAT("val-every"), &o->val_every);
    if (!st)
        st = sd_parse_int(sd_config_get(store, "save-every"), 0, INT_MAX, WHAT("save-every"), &o->save_every);
#undef WHAT
    if (st) {
        st = SD_ERR_DATA; /* (the message stays the parser's) */
        sd_config_free(store);
    }
    return st;
}

static sd_status open_run(const char *path, sd_ckpt *c, sd_pretrain_opts *o, char **store)
{
    sd_config cfg;
    *store = NULL;
    sd_status st = sd_ckpt_open(path, c);
    if (st)
        return st;
    const char *m = sd_ckpt_meta(c, SD_META_METHOD);
    if (!m || strcmp(m, "pretrain"))
        st = sd_fail(SD_ERR_DATA, "%s: saved by method '%s', not by segda pretrain", path, m ? m : "(none)");
    else
        st = opts_parse(path, sd_ckpt_meta(c, SD_META_CONFIG), o, &cfg);
    if (!st) {
        /* data and model into one malloc'd block that the caller frees */
        size_t nd = strlen(o->data) + 1, nm = strlen(o->model) + 1;
        if (!(*store = sd_malloc(nd + nm))) {
            st = SD_ERR_NOMEM;
        } else {
            memcpy(*store, o->data, nd);
            memcpy(*store + nd, o->model, nm);
            o->data = *store, o->model = *store + nd;
        }
        sd_config_free(&cfg);
    }
    if (st)
        sd_ckpt_close(c);
    return st;
}

sd_status sd_pretrain_read_opts(const char *ckpt, sd_pretrain_opts *o, char **store)
{
    sd_ckpt c;
    sd_status st = open_run(ckpt, &c, o, store);
    if (!st)
        sd_ckpt_close(&c);
    return st;
}

/* Same folder: the same string, or the same real path. */
static bool same_folder(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return true;
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    bool same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same;
}

/* The options a resumed run may not change (iters may: train's rule). */
static sd_status check_same_run(const char *path, const sd_pretrain_opts *o, const sd_pretrain_opts *s)
{
    const char *fixed = "the options of a run are fixed when it starts: leave it out, or start a new --out";
    if (!same_folder(o->data, s->data))
        return sd_fail(SD_ERR_ARG, "%s: --resume with --data %s, but the run was started with %s (%s)", path,
                       o->data, s->data, fixed);
    if (strcmp(o->model, s->model))
        return sd_fail(SD_ERR_ARG, "%s: --resume with --model %s, but the run was started with %s (%s)", path,
                       o->model, s->model, fixed);
#define SAME_INT(field, flag)                                                                                    \
    if (o->field != s->field)                                                                                    \
        return sd_fail(SD_ERR_ARG, "%s: --resume with " flag " %lld, but the run was started with %lld (%s)", path, \
                       (long long)o->field, (long long)s->field, fixed);
#define SAME_FLOAT(field, flag)                                                                                  \
    if (o->field != s->field)                                                                                    \
        return sd_fail(SD_ERR_ARG, "%s: --resume with " flag " %.9g, but the run was started with %.9g (%s)", path, \
                       (double)o->field, (double)s->field, fixed);
    SAME_INT(batch, "--batch")
    SAME_INT(size, "--size")
    SAME_INT(seed, "--seed")
    SAME_FLOAT(lr, "--lr")
    SAME_FLOAT(momentum, "momentum")
    SAME_FLOAT(weight_decay, "--weight-decay")
    SAME_FLOAT(scale_min, "--scale-min")
#undef SAME_INT
#undef SAME_FLOAT
    return SD_OK;
}

/* ---- the state in the checkpoint ---- */

/* Mean loss over the last 10% of the run's iterations (of those done so far
 * for an unfinished run), summed in iteration order. */
static double tail_loss(const float *losses, int done, int iters)
{
    int tail = iters / 10 > 1 ? iters / 10 : 1;
    if (tail > done)
        tail = done;
    double s = 0;
    for (int i = done - tail; i < done; i++)
        s += losses[i];
    return tail > 0 ? s / tail : 0.0;
}

/* The run, as the driver's callbacks see it (driver.h). */
typedef struct pt_state {
    const sd_pretrain_opts *o;
    sd_pretrain_result *r;
    pt_net *net;
    sd_params *mp;             /* the model's parameters */
    sd_optim *opt, *hopt;
    sd_tape *tape;
    const sd_image_folder *tr, *va;
    const char *classes;       /* comma-separated */
    float *losses;             /* [done] */
    int done;                  /* iterations the next save holds */
    char *config;              /* opts_text, for summary.json */
    /* the step's buffers and batch order */
    int *perm;
    uint8_t *crop, *view, *labels;
    float *xb;
    int64_t cur_epoch;
    long long inject_nan_at;   /* test hook SEGDA_INJECT_NAN_AT (-1 off), as in segda train */
    struct sd_tb *tb;          /* TensorBoard (tblog.h) */
    double lv;                 /* the iteration's loss */
    double loss_sum;           /* since the last progress line */
    int loss_n;
    double t0;
} pt_state;

static sd_status save_ckpt(const sd_pretrain_opts *o, const pt_state *s)
{
    const sd_pretrain_result *r = s->r;
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    char info[1024], it[32], buf[64];
    snprintf(info, sizeof info,
             "data=%s classes=%d train=%d val=%d iters=%d batch=%d lr=%g momentum=%g weight_decay=%g size=%d "
             "scale_min=%g seed=%llu train_loss=%.4f val_top1=%.4f",
             o->data, s->net->classes, r->n_train, r->n_val, o->iters, o->batch, (double)o->lr,
             (double)o->momentum, (double)o->weight_decay, o->size, (double)o->scale_min,
             (unsigned long long)o->seed, tail_loss(s->losses, s->done, o->iters), r->val_top1);
    snprintf(it, sizeof it, "%d", s->done);
    char *cfg = opts_text(o);
    sd_status st = cfg ? SD_OK : SD_ERR_NOMEM;
    int lshape[1] = {s->done};
    if (!st)
        st = sd_ckpt_writer_add_model(&w, s->net->model, s->net->norm);
    if (!st)
        st = sd_ckpt_writer_add_params(&w, PT_HEAD_PREFIX, &s->net->head);
    if (!st)
        st = sd_ckpt_writer_add_optim(&w, s->opt, PT_OPT_MODEL, PT_STEPS_MODEL);
    if (!st)
        st = sd_ckpt_writer_add_optim(&w, s->hopt, PT_OPT_HEAD, PT_STEPS_HEAD);
    if (!st)
        st = sd_ckpt_writer_add_tensor(&w, PT_LOSS, 1, lshape, s->losses);
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, SD_META_METHOD, "pretrain");
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, SD_META_ITER, it);
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, "pretrain", info);
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, "pretrain_classes", s->classes);
    if (!st)
        st = sd_ckpt_writer_set_meta(&w, SD_META_CONFIG, cfg);
    if (!st) {
        snprintf(buf, sizeof buf, "%d,%d", r->n_train, r->n_val);
        st = sd_ckpt_writer_set_meta(&w, "pretrain_images", buf);
    }
    if (!st) {
        snprintf(buf, sizeof buf, "%.17g", r->val_top1);
        st = sd_ckpt_writer_set_meta(&w, "pretrain_val_top1", buf);
    }
    if (!st) {
        snprintf(buf, sizeof buf, "%.17g", r->best_val_top1);
        st = sd_ckpt_writer_set_meta(&w, "pretrain_best_val_top1", buf);
    }
    if (!st)
        st = sd_ckpt_writer_save(&w, o->out);
    free(cfg);
    sd_ckpt_writer_free(&w);
    return st;
}

/* What a resumed run needs before its data is loaded: the iteration, the
 * loss history and the results so far. */
static sd_status read_progress(sd_ckpt *c, const char *path, int iters, float **losses, sd_pretrain_result *r,
                               const char **classes)
{
    const char *it = sd_ckpt_meta(c, SD_META_ITER), *im = sd_ckpt_meta(c, "pretrain_images");
    const char *v = sd_ckpt_meta(c, "pretrain_val_top1"), *b = sd_ckpt_meta(c, "pretrain_best_val_top1");
    *classes = sd_ckpt_meta(c, "pretrain_classes");
    int64_t done;
    char what[4200];
    snprintf(what, sizeof what, "%s: metadata 'iteration'", path);
    if (!it)
        return sd_fail(SD_ERR_DATA, "%s is missing", what);
    if (sd_parse_i64(it, 1, INT_MAX, what, &done))
        return SD_ERR_DATA;
    if (!im || sscanf(im, "%d,%d", &r->n_train, &r->n_val) != 2 || !v || !b || !*classes)
        return sd_fail(SD_ERR_DATA, "%s: pretrain metadata missing (pretrain_images, pretrain_val_top1, "
                       "pretrain_best_val_top1, pretrain_classes)", path);
    r->val_top1 = strtod(v, NULL);
    r->best_val_top1 = strtod(b, NULL);
    r->classes = 1;
    for (const char *p = *classes; *p; p++)
        r->classes += *p == ',';
    r->start_iteration = r->iterations = (int)done;
    size_t cap = (size_t)(iters > done ? iters : done);
    if (!(*losses = sd_malloc(sizeof **losses * cap)))
        return SD_ERR_NOMEM;
    return sd_ckpt_read_tensor(c, PT_LOSS, (size_t)done, *losses);
}

static char *join_classes(const sd_image_folder *f)
{
    size_t cap = 1;
    for (int c = 0; c < f->n_classes; c++)
        cap += strlen(f->classes[c]) + 1;
    char *names = sd_malloc(cap);
    if (names) {
        names[0] = 0;
        for (int c = 0; c < f->n_classes; c++) {
            if (c)
                strcat(names, ",");
            strcat(names, f->classes[c]);
        }
    }
    return names;
}

static sd_status pretrain_locked(const sd_pretrain_opts *o, sd_pretrain_result *res, sd_drive_result *dr);

/* ---- data parallel (mpirun -np N segda pretrain), as segda train: rank r
 * reads its share of a global batch of N * --batch, the gradients are
 * averaged over the ranks in a fixed order before each step, BN is SyncBN,
 * and rank 0 alone writes the checkpoint. Every rank evaluates the whole
 * val split (the same numbers). ---- */

static sd_status pt_dist_setup(sd_params *model, sd_params *head)
{
    if (sd_dist_size() > 1)
        sd_batch_norm_set_sync(sd_dist_sum_f64);   /* BN always trains here */
    sd_device dev = sd_device_selected();
    sd_status st = sd_params_to_device(model, dev);
    if (!st)
        st = sd_params_to_device(head, dev);
    if (!st)
        st = sd_dist_device_init(dev);
    return sd_dist_agree(st);
}

/* every trainable group's gradient := its mean over the ranks */
static sd_status pt_dist_reduce(sd_params *p)
{
    sd_status st = SD_OK;
    for (int g = 0; g < p->n_groups && !st && sd_dist_size() > 1; g++)
        if (p->groups[g].grad && !p->groups[g].frozen && p->groups[g].numel)
            st = sd_dist_mean_f32_on(p->groups[g].grad, p->groups[g].numel, p->device);
    return st;
}

static sd_status pt_dist_mean(double *v)
{
    if (sd_dist_size() == 1)
        return SD_OK;
    sd_status st = sd_dist_sum_f64(v, 1);
    *v /= sd_dist_size();
    return st;
}


/* OUT.lock keeps a second pretraining from writing the same checkpoint
 * (and racing its saves); a lock file that cannot be made (no such folder)
 * is left to the run's own checks, which name the real problem. */
/* ---- the driver's callbacks (driver.h) ---- */

/* One iteration: rank r of N takes slots r*b .. r*b+b-1 of a global batch
 * of N*b, random-resized crops, forward, cross-entropy, backward, the
 * ranks' mean gradient, SGD. */
static sd_status pt_step(void *ctx, int64_t it64, float lr)
{
    pt_state *p = ctx;
    const sd_pretrain_opts *o = p->o;
    const sd_image_folder *tr = p->tr;
    int it = (int)it64;
    size_t plane = (size_t)3 * o->size * o->size;
    sd_status st;
    const sd_norm_params *np = sd_norm_params_of(p->net->norm);
    for (int j = 0; j < o->batch; j++) {
        int64_t pos = ((int64_t)it * sd_dist_size() + sd_dist_rank()) * o->batch + j, epoch = pos / tr->n;
        if (epoch != p->cur_epoch) {
            epoch_perm(o->seed, epoch, tr->n, p->perm);
            p->cur_epoch = epoch;
        }
        int i = p->perm[pos % tr->n];
        sd_rng ar = sd_rng_fork(o->seed, STREAM_AUGMENT ^ (uint64_t)pos);
        if ((st = make_view(tr, i, o->size, o->scale_min, &ar, np, p->crop, p->view, p->xb + plane * (size_t)j)))
            return st;
        p->labels[j] = (uint8_t)tr->label[i];
    }
    sd_tape *tape = p->tape;
    sd_tape_reset(tape);
    /* dropout and other stochastic ops: a stream per iteration, so a
     * resumed run draws what the uninterrupted one did */
    tape->rng = sd_rng_fork(o->seed, STREAM_DROPOUT ^ (uint64_t)it);
    sd_params_zero_grad(p->mp);
    sd_params_zero_grad(&p->net->head);
    int xs[4] = {o->batch, 3, o->size, o->size};
    sd_tensor *logits = net_forward(p->net, tape, sd_tensor_wrap(tape, 4, xs, p->xb), true);
    sd_tensor *loss = logits ? sd_cross_entropy(tape, logits, p->labels, NULL, 255) : NULL;
    if ((st = sd_dist_agree(loss ? SD_OK : sd_fail_prefix(tape->status ? tape->status : SD_ERR_ARG,
                                                          "pretrain: iteration %d", it + 1))))
        return st;
    if (p->inject_nan_at == it + 1)
        sd_tensor_from_host(loss, (const float[]){NAN}); /* as if the loss had diverged */
    double lv = sd_tensor_item(loss);
    if ((st = pt_dist_mean(&lv)))   /* (the whole batch's mean: every rank decides alike) */
        return st;
    if (!isfinite(lv))
        return sd_fail(SD_ERR_NUMERIC, "pretrain: iteration %d: loss is %s (lr %g too high?)", it + 1,
                       isnan(lv) ? "NaN" : "infinite", (double)o->lr);
    if ((st = sd_dist_agree(sd_backward1(tape, loss))) || (st = pt_dist_reduce(p->mp)) ||
        (st = pt_dist_reduce(&p->net->head)))
        return st;
    if ((st = sd_optim_step(p->opt, lr)) || (st = sd_optim_step(p->hopt, lr)))
        return st;
    p->losses[it] = (float)lv;
    p->lv = lv;
    return SD_OK;
}

static void pt_record(void *ctx, int64_t it, float lr, double elapsed, bool failed)
{
    (void)elapsed;
    pt_state *p = ctx;
    if (failed)
        return;
    sd_tblog_scalar(&p->tb, "loss/ce", it + 1, p->lv, "pretrain");
    sd_tblog_scalar(&p->tb, "train/lr", it + 1, lr, "pretrain");
    p->loss_sum += p->lv, p->loss_n++;
}

/* The mean loss since the last progress line. */
static void pt_terms(void *ctx, char *buf, size_t cap)
{
    pt_state *p = ctx;
    snprintf(buf, cap, "  loss %.4f", p->loss_n ? p->loss_sum / p->loss_n : 0.0);
    p->loss_sum = 0, p->loss_n = 0;
}

static sd_status pt_evaluate(void *ctx, int64_t done, bool *resave)
{
    pt_state *p = ctx;
    sd_pretrain_result *r = p->r;
    sd_status st = net_eval(p->net, p->tape, p->va, p->o->size, p->o->batch, &r->val_top1);
    if (st)
        return st;
    if (r->val_top1 > r->best_val_top1)
        r->best_val_top1 = r->val_top1;
    sd_tblog_scalar(&p->tb, "val/top1", done, 100 * r->val_top1, "pretrain");
    sd_log(1, "pretrain: it %lld/%d val top-1 %.4f (%d images, chance %.4f) %.0f s\n", (long long)done, p->o->iters,
           r->val_top1, p->va->n, 1.0 / p->tr->n_classes, sd_time_now() - p->t0);
    *resave = true;   /* (the checkpoint records the val top-1) */
    return SD_OK;
}

static sd_status pt_save(void *ctx, int64_t done)
{
    pt_state *p = ctx;
    p->done = (int)done;
    return save_ckpt(p->o, p);
}

/* OUT.summary.json (train.h: sd_run_summary): the pretraining's part. */
static void pt_describe(void *ctx, sd_run_summary *s)
{
    const pt_state *p = ctx;
    s->task = "pretrain";
    s->method = "pretrain";
    s->metric = "val_top1";
    s->final_value = s->iterations > 0 ? p->r->val_top1 : NAN;
    s->best_value = s->iterations > 0 ? p->r->best_val_top1 : NAN;
    s->config = p->config;
}

/* The run as a task of the driver; summary: a buffer for OUT.summary.json. */
static sd_drive_task pt_task(pt_state *p, char *summary, size_t cap)
{
    const sd_pretrain_opts *o = p->o;
    snprintf(summary, cap, "%s.summary.json", o->out);
    return (sd_drive_task){
        .name = "pretrain", .ckpt = o->out, .summary = summary, .ctx = p,
        .iters = o->iters, .eval_every = o->val_every, .save_every = o->save_every, .stop_after = o->stop_after,
        .log_every = o->log_every > 0 ? o->log_every : o->iters,
        .step = pt_step, .record = pt_record, .terms = pt_terms, .evaluate = pt_evaluate, .save = pt_save,
        .describe = pt_describe,
    };
}

sd_status sd_pretrain_run(const sd_pretrain_opts *o, sd_pretrain_result *res)
{
    int fd = -1;
    /* (data parallel: rank 0 holds the lock and writes the checkpoint) */
    if (o && o->out && *o->out && sd_dist_rank() == 0) {
        char lp[4200];
        snprintf(lp, sizeof lp, "%s.lock", o->out);
        sd_status st = io_lock(lp, o->out, &fd);
        if (st == SD_ERR_ARG && sd_dist_size() == 1)
            return sd_fail_prefix(st, "pretrain --out");
        if (st == SD_ERR_ARG)   /* (the other ranks learn it below) */
            fd = -2;
    }
    if (sd_dist_size() > 1 && sd_dist_agree(fd == -2 ? sd_fail_prefix(SD_ERR_ARG, "pretrain --out") : SD_OK))
        return SD_ERR_ARG;
    if (sd_dist_rank() > 0 && sd_log_level() >= 1)
        sd_log_set_level(0);   /* one rank's progress lines are the run's */
    sd_pretrain_result local, *r = res ? res : &local;
    memset(r, 0, sizeof *r);
    sd_drive_result dr = {0};
    sd_status st = pretrain_locked(o, r, &dr);
    /* the driver wrote OUT.summary.json of a run that reached its loop; here
     * that of one that failed or was finished before it (a refused start
     * leaves OUT's record alone) */
    if (fd >= 0 && !dr.ran && !(st == SD_ERR_ARG && r->iterations == 0)) {
        pt_state ps = {.o = o, .r = r, .config = opts_text(o)};
        char summary[4200];
        sd_drive_task t = pt_task(&ps, summary, sizeof summary);
        dr.iterations = r->iterations, dr.seconds = r->seconds;
        sd_drive_write_summary(&t, st, &dr);
        free(ps.config);
    }
    io_unlock(fd);
    return st;
}

static sd_status pretrain_locked(const sd_pretrain_opts *o, sd_pretrain_result *res, sd_drive_result *dr)
{
    sd_status st = check_opts(o);
    if (st)
        return st;
    sd_stop_clear();
    sd_pretrain_result r;
    memset(&r, 0, sizeof r);
    r.best_val_top1 = -1;
    sd_image_folder tr = {0}, va = {0};
    pt_net net = {0};
    sd_tape tape;
    bool have_tape = false, have_opt = false, have_hopt = false, have_ck = false;
    sd_optim opt, hopt;
    sd_ckpt ck;
    pt_state ps = {.o = o, .r = &r, .net = &net, .opt = &opt, .hopt = &hopt, .tape = &tape, .tr = &tr, .va = &va,
                   .cur_epoch = -1};
    float *losses = NULL;
    char *store = NULL, *names = NULL;
    const char *saved_classes = NULL;
    int start = 0;
    if (!o->resume) {
        if (access(o->out, F_OK) == 0)
            return sd_fail(SD_ERR_ARG, "%s already exists: continue its run with --resume, or choose another --out",
                           o->out);
    } else {
        sd_pretrain_opts s = *o;
        if ((st = open_run(o->out, &ck, &s, &store)))
            return sd_fail_prefix(st, "--resume");
        have_ck = true;
        if ((st = check_same_run(o->out, o, &s)))
            goto done;
        if (s.iters != o->iters)
            sd_log(1, "pretrain: resuming with iters %d (the run was started with %d): the poly schedule follows "
                      "%d\n", o->iters, s.iters, o->iters);
        if ((st = read_progress(&ck, o->out, o->iters, &losses, &r, &saved_classes)))
            goto done;
        start = r.iterations;
        if (start >= o->iters) {
            r.finished = true;
            r.train_loss = tail_loss(losses, start, o->iters);
            sd_log(1, "pretrain: %s is finished (iteration %d of %d); nothing to do\n", o->out, start, o->iters);
            goto done;
        }
    }
    /* Keep at most twice the input side in memory: random crops never need more. */
    int max_side = 2 * o->size;
    if ((st = sd_image_folder_load(&tr, o->data, "train", NULL, 0, max_side)))
        goto done;
    if ((st = sd_image_folder_load(&va, o->data, "val", tr.classes, tr.n_classes, max_side)))
        goto done;
    if (!(names = join_classes(&tr))) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    /* Batches are functions of (seed, position, image count): a changed folder
     * would continue another run. */
    if (o->resume && (strcmp(names, saved_classes) || tr.n != r.n_train || va.n != r.n_val)) {
        st = sd_fail(SD_ERR_DATA, "%s: --resume: %s now has %d classes and %d/%d train/val images, the run was "
                     "started with %d classes and %d/%d", o->out, o->data, tr.n_classes, tr.n, va.n, r.classes,
                     r.n_train, r.n_val);
        goto done;
    }
    r.classes = tr.n_classes, r.n_train = tr.n, r.n_val = va.n;
    sd_log(1, "pretrain: %d classes, %d train / %d val images from %s\n", tr.n_classes, tr.n, va.n, o->data);

    sd_model_opts mo = sd_model_opts_default(o->model);
    mo.bn = SD_BN_TRAIN; /* batch statistics are what pretraining learns for BN */
    mo.aux = false;
    if ((st = sd_model_create(&mo, &net.model))) {
        st = sd_fail_prefix(st, "pretrain: model %s", o->model);
        goto done;
    }
    sd_model_init_weights(net.model, o->seed);
    net.norm = sd_model_default_norm(o->model);
    if ((st = head_init(&net, tr.n_classes)))
        goto done;
    {
        /* N(0, 0.01) weights, zero bias, from their own stream of the seed. */
        sd_rng hr = sd_rng_fork(o->seed, 3ull << 40);
        float *w = malloc(net.fc_w->numel * sizeof *w);
        for (size_t i = 0; w && i < net.fc_w->numel; i++)
            w[i] = 0.01f * sd_rng_normal(&hr);
        st = w ? sd_tensor_from_host(net.fc_w, w) : sd_fail(SD_ERR_NOMEM, "pretrain: out of memory");
        free(w);
        if (st)
            goto done;
    }
    /* The segmentation head is not in the loss; freezing it keeps weight decay
     * and momentum from moving it, so it leaves as it was initialised. */
    sd_params *mp = sd_model_params(net.model);
    int gcls = sd_model_group(net.model, "classifier");
    if (gcls >= 0)
        sd_params_set_frozen(mp, gcls, true);
    for (int g = 0; g < mp->n_groups; g++)
        mp->groups[g].lr_mult = 1.0f; /* one rate for the whole backbone while pretraining */

    /* data parallel (pt_dist_* below): SyncBN, and the parameters on the
     * device of --device before the optimiser puts its state beside them */
    if ((st = pt_dist_setup(mp, &net.head)))
        goto done;
    sd_optim_opts oo = sd_optim_opts_sgd(o->momentum, o->weight_decay);
    if ((st = sd_optim_init(&opt, mp, &oo)))
        goto done;
    have_opt = true;
    if ((st = sd_optim_init(&hopt, &net.head, &oo)))
        goto done;
    have_hopt = true;
    if (have_ck) {
        st = sd_ckpt_load_params(&ck, "", mp, true, NULL);
        if (!st)
            st = sd_ckpt_load_params(&ck, PT_HEAD_PREFIX, &net.head, true, NULL);
        if (!st)
            st = sd_ckpt_read_optim(&ck, &opt, PT_OPT_MODEL, PT_STEPS_MODEL);
        if (!st)
            st = sd_ckpt_read_optim(&ck, &hopt, PT_OPT_HEAD, PT_STEPS_HEAD);
        if (st) {
            st = sd_fail_prefix(st, "--resume");
            goto done;
        }
        sd_ckpt_close(&ck);
        have_ck = false;
    } else if (!(losses = sd_malloc(sizeof *losses * (size_t)o->iters))) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    if ((st = sd_dist_agree(sd_tape_init_on(&tape, o->seed, sd_device_selected()))))
        goto done;
    have_tape = true;

    size_t plane = (size_t)3 * o->size * o->size;
    ps.mp = mp;
    ps.classes = names;
    ps.losses = losses;
    ps.perm = sd_malloc(sizeof *ps.perm * (size_t)tr.n);
    ps.crop = sd_malloc((size_t)max_side * max_side * 3);
    ps.view = sd_malloc(plane);
    ps.labels = sd_malloc((size_t)o->batch);
    ps.xb = sd_malloc(sizeof *ps.xb * plane * (size_t)o->batch);
    ps.config = opts_text(o);
    if (!ps.perm || !ps.crop || !ps.view || !ps.labels || !ps.xb || !ps.config) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    const char *inj = getenv("SEGDA_INJECT_NAN_AT"); /* test hook, as in segda train */
    ps.inject_nan_at = inj && *inj ? strtoll(inj, NULL, 10) : -1;
    sd_lr_schedule sched = sd_lr_poly(o->lr, o->iters, 0.9f);
    if (o->tb && *o->tb)
        ps.tb = sd_tblog_open_dir(o->tb, start, "pretrain");
    char summary[4200];
    sd_drive_task t = pt_task(&ps, summary, sizeof summary);
    t.start = start;
    t.sched = &sched;
    ps.t0 = sd_time_now();
    st = sd_drive(&t, dr);
    r.iterations = (int)dr->iterations;
    r.finished = !st && !dr->stopped;
    if (r.finished)
        sd_log(1, "pretrain: wrote %s (val top-1 %.4f, %.0f s)\n", o->out, r.val_top1, sd_time_now() - ps.t0);
    r.seconds = dr->seconds;
    r.train_loss = tail_loss(losses, r.iterations, o->iters);
done:
    if (res && (!st || st == SD_ERR_INTERRUPTED))
        *res = r;
    sd_tb_close(ps.tb);
    if (have_ck)
        sd_ckpt_close(&ck);
    if (have_tape)
        sd_tape_free(&tape);
    if (have_opt)
        sd_optim_free(&opt);
    if (have_hopt)
        sd_optim_free(&hopt);
    net_free(&net);
    sd_image_folder_free(&tr);
    sd_image_folder_free(&va);
    free(ps.perm);
    free(ps.crop);
    free(ps.view);
    free(ps.labels);
    free(ps.xb);
    free(ps.config);
    free(losses);
    free(store);
    free(names);
    return st;
}

sd_status sd_pretrain_eval(const char *ckpt, const char *data, int size, int batch, double *top1)
{
    if (size < 8 || batch < 1)
        return sd_fail(SD_ERR_ARG, "pretrain eval: size %d, batch %d (expected >= 8, >= 1)", size, batch);
    pt_net net = {0};
    sd_image_folder va = {0};
    sd_tape tape;
    bool have_tape = false;
    sd_ckpt c;
    sd_status st = sd_model_load(ckpt, true, &net.model, &net.norm);
    if (st)
        return st;
    if ((st = sd_ckpt_open(ckpt, &c)))
        goto done;
    const char *names = sd_ckpt_meta(&c, "pretrain_classes");
    if (!names) {
        sd_ckpt_close(&c);
        st = sd_fail(SD_ERR_DATA, "%s: no 'pretrain_classes' metadata (not written by segda pretrain)", ckpt);
        goto done;
    }
    int k = 1;
    for (const char *p = names; *p; p++)
        k += *p == ',';
    if ((st = head_init(&net, k)) || (st = sd_ckpt_load_params(&c, PT_HEAD_PREFIX, &net.head, true, NULL))) {
        sd_ckpt_close(&c);
        goto done;
    }
    /* The class list lives in the checkpoint: val folders must match it. */
    char *copy = sd_strdup(names), **cls = sd_malloc(sizeof *cls * (size_t)k);
    if (!copy || !cls) {
        free(copy);
        free(cls);
        sd_ckpt_close(&c);
        st = SD_ERR_NOMEM;
        goto done;
    }
    int n = 0;
    for (char *s = copy, *e; s; s = e) {
        e = strchr(s, ',');
        if (e)
            *e++ = 0;
        cls[n++] = s;
    }
    sd_ckpt_close(&c);
    st = sd_image_folder_load(&va, data, "val", cls, n, 2 * size);
    free(cls);
    free(copy);
    if (st)
        goto done;
    if ((st = sd_tape_init(&tape, 0)))
        goto done;
    have_tape = true;
    st = net_eval(&net, &tape, &va, size, batch, top1);
done:
    if (have_tape)
        sd_tape_free(&tape);
    net_free(&net);
    sd_image_folder_free(&va);
    return st;
}
