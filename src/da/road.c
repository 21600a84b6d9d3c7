/* ROAD (Chen, Li, Van Gool, CVPR 2018), the seed paper: two modules.
 * Target-guided distillation: the network's features on target images stay
 * close to those of a frozen "pretrained real style model" (the ImageNet-
 * pretrained network), on the last feature map before the classifier
 * (layer4 / fc7: sd_model_out.feat),
 *   L_dist = mean over positions of || F(x_t) - F0(x_t) ||_2      (lambda1 0.1)
 * The teacher is --teacher CKPT, by default the root of the --init chain
 * (the checkpoint the run's --init was itself initialised from, followed
 * back through each run's stored config: the pretrained backbone, not the
 * source-trained model). It normalises as the student's target pass does
 * (same BN mode, batch statistics when the student uses them) without
 * writing its running statistics, and is never updated.
 * Spatial-aware adaptation: the full image is split into a GH x GW grid;
 * region r has its own pixel-level domain classifier D_r behind gradient
 * reversal, trained only on feature positions whose full-image coordinates
 * (through the loader's crop boxes) fall in r,
 *   L_sa = mean_r 1/2 [BCE(D_r(R(F_s))|r, 0) + BCE(D_r(R(F_t))|r, 1)]  (lambda2 0.01)
 * L = L_seg(source) + lambda1 L_dist + lambda2 L_sa. Switches run each module
 * alone and the paper's alternatives: distillation on source images, and
 * frozen lower layers (here the whole backbone) instead of distillation.
 * The paper's batch is 5 source + 5 target 321x321 patches: --batch 5,5
 * --crop 321x321. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/ops.h"

#define ROAD_MAX_REGIONS 64

static const sd_knob knobs[] = {
    {"distill", SD_KNOB_STR, "target", "target|source|off", "target-guided distillation (or on source images, or none)"},
    {"teacher", SD_KNOB_STR, "", NULL, "distillation teacher checkpoint (default: the root of the --init chain, "
                                       "i.e. the pretrained backbone; without --init, the initial weights)"},
    {"spatial", SD_KNOB_BOOL, "true", NULL, "spatial-aware adaptation (grid of region domain classifiers)"},
    {"freeze-backbone", SD_KNOB_BOOL, "false", NULL, "keep the backbone fixed (the frozen-layers alternative)"},
    {"lambda-dist", SD_KNOB_FLOAT, "0.1", NULL, "distillation weight lambda1"},
    {"lambda-spatial", SD_KNOB_FLOAT, "0.01", NULL, "spatial-aware adaptation weight lambda2"},
    {"grid", SD_KNOB_STR, "3x3", NULL, "regions WxH of the spatial-aware adaptation"},
    {"grl", SD_KNOB_FLOAT, "1", NULL, "gradient reversal coefficient"},
    {"disc-width", SD_KNOB_INT, "64", NULL, "hidden width of each region classifier"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (when the model has one)"},
    {NULL, 0, NULL, NULL, NULL},
};

typedef struct road {
    sd_model *teacher;
    int distill;                       /* 0 off, 1 target, 2 source */
    bool spatial;
    int gw, gh;
    sd_adversary d[ROAD_MAX_REGIONS];
    float l_dist, l_sa, grl;
} road;

static void free_state(void *state)
{
    road *r = state;
    if (r->teacher)
        sd_model_free(r->teacher);
    for (int i = 0; i < ROAD_MAX_REGIONS; i++)
        sd_adversary_free(&r->d[i]);
    free(r);
}

/* The `init = X` of a checkpoint's stored run configuration ("" if none). */
static void ckpt_init_of(const sd_ckpt *c, char *out, size_t cap)
{
    *out = 0;
    const char *cfg = sd_ckpt_meta(c, SD_META_CONFIG);
    for (const char *p = cfg; p && *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        if (!strncmp(p, "init = ", 7)) {
            snprintf(out, cap, "%.*s", (int)(end - p - 7), p + 7);
            return;
        }
        p = nl ? nl + 1 : end;
    }
}

/* The default teacher: follow --init back through each checkpoint's own
 * init to the first one (a pretraining, or a run from scratch). */
static sd_status teacher_default(const char *init, char *out, size_t cap)
{
    char path[4096], next[4096];
    snprintf(path, sizeof path, "%s", init);
    for (int hop = 0; hop < 32; hop++) {
        sd_ckpt c;
        sd_status st = sd_ckpt_open(path, &c);
        if (st)
            return hop ? sd_fail_prefix(st, "road: the --init chain leads to %s, which cannot be read (give --teacher)",
                                        path)
                       : st;
        ckpt_init_of(&c, next, sizeof next);
        sd_ckpt_close(&c);
        if (!*next || !strcmp(next, path)) {
            snprintf(out, cap, "%s", path);
            return SD_OK;
        }
        snprintf(path, sizeof path, "%s", next);
    }
    return sd_fail(SD_ERR_DATA, "road: the --init chain from %s is longer than 32 checkpoints (give --teacher)", init);
}

/* The frozen teacher: the run's network built again in the BN mode of the
 * student's target pass (so both see the batch normalised alike), never
 * writing running statistics, weights from --teacher or the --init chain's
 * root; without either, a copy of the initial weights. */
static sd_status make_teacher(sd_trainer *tr, road *r)
{
    const sd_config *c = tr->cfg;
    sd_model_opts o = *sd_model_options(tr->model);
    o.bn_keep_running = true;
    sd_status st = sd_model_create(&o, &r->teacher);
    if (st)
        return sd_fail_prefix(st, "road: teacher");
    sd_params *tp = sd_model_params(r->teacher);
    char path[4096] = "";
    const char *given = sd_config_str(c, "teacher"), *init = sd_config_str(c, "init");
    if (*given)
        snprintf(path, sizeof path, "%s", given);
    else if (*init && (st = teacher_default(init, path, sizeof path)))
        return sd_fail_prefix(st, "road: default teacher from --init %s", init);
    if (*path) {
        const char *where = *given ? sd_config_origin(c, "teacher") : "road: default teacher";
        sd_ckpt ck;
        if ((st = sd_ckpt_open(path, &ck)))
            return sd_fail_prefix(st, "%s", where);
        sd_ckpt_report rep;
        st = sd_ckpt_load_weights(&ck, tp, o.name, false, &rep);
        sd_ckpt_close(&ck);
        if (st)
            return sd_fail_prefix(st, "%s: teacher %s", where, path);
        if (rep.loaded == 0)
            return sd_fail(SD_ERR_DATA, "%s: teacher %s holds no tensor of %s", where, path, o.name);
        sd_log(1, "road: teacher %s (%d tensors, %d missing)\n", path, rep.loaded, rep.missing);
    } else if ((st = sd_params_copy_values(tp, tr->params))) {   /* (the student may be on a device) */
        return st;
    }
    for (int g = 0; g < tp->n_groups; g++)
        sd_params_set_frozen(tp, g, true);
    return sd_train_add_module(tr, "teacher:", tp, NULL, 0);
}

static sd_status init(sd_trainer *tr, void **state)
{
    road *r = calloc(1, sizeof *r);
    if (!r)
        return sd_fail(SD_ERR_NOMEM, "road: out of memory");
    *state = r;
    const sd_config *c = tr->cfg;
    const char *dm = sd_config_str(c, "distill");
    r->distill = !strcmp(dm, "target") ? 1 : !strcmp(dm, "source") ? 2 : 0;
    r->spatial = sd_config_bool(c, "spatial");
    r->l_dist = (float)sd_config_float(c, "lambda-dist");
    r->l_sa = (float)sd_config_float(c, "lambda-spatial");
    r->grl = (float)sd_config_float(c, "grl");
    sd_status st = sd_parse_size(sd_config_str(c, "grid"), &r->gw, &r->gh);
    if (st)
        return sd_fail_prefix(st, "%s: grid", sd_config_origin(c, "grid"));
    if (r->gw * r->gh > ROAD_MAX_REGIONS)
        return sd_fail(SD_ERR_ARG, "%s: grid %dx%d has more than %d regions", sd_config_origin(c, "grid"), r->gw, r->gh,
                       ROAD_MAX_REGIONS);
    if (sd_config_bool(c, "freeze-backbone")) {
        int g = sd_model_group(tr->model, "backbone");
        if (g < 0)
            return sd_fail(SD_ERR_ARG, "freeze-backbone: model %s has no 'backbone' group", sd_model_options(tr->model)->name);
        sd_params_set_frozen(tr->params, g, true);
    }
    if (r->distill && (st = make_teacher(tr, r)))
        return st;
    if (r->spatial) {
        sd_tape_no_grad_begin(&tr->tape);
        sd_tensor *x = sd_tensor_zeros(&tr->tape, 4, (int[]){1, 3, 64, 64});
        sd_model_out o;
        st = sd_model_forward(tr->model, &tr->tape, x, false, &o);
        sd_tape_no_grad_end(&tr->tape);
        if (st)
            return st;
        int ch = o.feat->shape[1];
        sd_tape_reset(&tr->tape);
        for (int i = 0; i < r->gw * r->gh && !st; i++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "region%d:", i);
            st = sd_adversary_init(tr, &r->d[i], SD_DISC_PIXEL, ch, (int)sd_config_int(c, "disc-width"), prefix, false);
        }
    }
    return st;
}

/* Region index of every feature position of a batch, from its crop boxes:
 * the grid divides the whole image (as read; the same fractions of it after
 * any resize), so a region means one part of the scene whatever the crop. */
static void region_map(const road *r, const sd_batch *b, int fh, int fw, int *reg)
{
    for (int k = 0; k < b->n; k++) {
        const sd_crop_box *box = &b->box[k];
        for (int i = 0; i < fh; i++)
            for (int j = 0; j < fw; j++) {
                double x, y;
                sd_crop_box_point(box, b->w, b->h, (j + 0.5) * b->w / fw, (i + 0.5) * b->h / fh, &x, &y);
                int gx = (int)floor(x * r->gw / box->full_w), gy = (int)floor(y * r->gh / box->full_h);
                gx = gx < 0 ? 0 : gx >= r->gw ? r->gw - 1 : gx;
                gy = gy < 0 ? 0 : gy >= r->gh ? r->gh - 1 : gy;
                reg[((size_t)k * fh + i) * fw + j] = gy * r->gw + gx;
            }
    }
}

/* BCE of D_r over the positions of region `reg_id` only: positions outside
 * are masked to logit 0 (no gradient), and the mean is corrected for them. */
static sd_tensor *region_loss(sd_trainer *tr, sd_adversary *d, sd_tensor *f, const int *reg, int reg_id, float label,
                              int *count)
{
    sd_tape *t = &tr->tape;
    int n = f->shape[0], fh = f->shape[2], fw = f->shape[3];
    size_t total = (size_t)n * fh * fw;
    sd_tensor *mask = sd_tensor_new4(t, n, 1, fh, fw);
    if (!mask)
        return NULL;
    int c = 0;
    float *md = sd_tensor_host(mask), *own = NULL;
    if (!md && !(md = own = malloc(total * sizeof *md)))   /* (a device's mask: filled here, then copied) */
        return sd_tape_fail(t, SD_ERR_NOMEM, "road: out of memory for a region mask");
    for (size_t i = 0; i < total; i++) {
        md[i] = reg[i] == reg_id ? 1.0f : 0.0f;
        c += reg[i] == reg_id;
    }
    if (own) {
        sd_status st = sd_tensor_from_host(mask, own);
        free(own);
        if (st)
            return sd_tape_fail(t, st, "road: region mask to %s", sd_device_name(mask->device));
    }
    *count = c;
    if (c == 0)
        return NULL;
    sd_tensor *logit = sd_disc_forward(d->d, t, f);
    sd_tensor *bce = sd_bce_logits_const(t, sd_mul(t, logit, mask), label);
    double frac = (double)c / (double)total;
    return sd_scale(t, sd_add_scalar(t, bce, (float)(-log(2.0) * (1.0 - frac))), (float)(1.0 / frac));
}

static sd_status step(sd_trainer *tr, void *state)
{
    road *r = state;
    sd_tape *t = &tr->tape;
    sd_status st;
    sd_model_out os, ot;
    if ((st = sd_model_forward(tr->model, t, sd_train_input(tr, tr->src), true, &os)))
        return st;
    if ((st = sd_train_loss(tr, "seg", sd_train_seg_loss(tr, os.logits, tr->src->label, tr->src->h, tr->src->w), 1.0f)))
        return st;
    if (os.aux_logits &&
        (st = sd_train_loss(tr, "seg_aux", sd_train_seg_loss(tr, os.aux_logits, tr->src->label, tr->src->h, tr->src->w),
                            (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    bool need_tgt = r->spatial || r->distill == 1;
    if (need_tgt && (st = sd_model_forward(tr->model, t, sd_train_input(tr, tr->tgt), true, &ot)))
        return st;
    if (r->distill) {
        const sd_batch *b = r->distill == 1 ? tr->tgt : tr->src;
        sd_model_out o0;
        sd_tape_no_grad_begin(t);
        /* training pass: the student's BN mode (bn_keep_running keeps the
         * teacher's statistics as loaded) */
        st = sd_model_forward(r->teacher, t, sd_train_input(tr, b), true, &o0);
        sd_tape_no_grad_end(t);
        if (st)
            return st;
        sd_tensor *f = r->distill == 1 ? ot.feat : os.feat;
        if ((st = sd_train_loss(tr, "dist", sd_l2_feature_distance(t, f, o0.feat), r->l_dist)))
            return st;
    }
    if (r->spatial) {
        sd_tensor *fs = sd_grad_reverse(t, os.feat, r->grl), *ft = sd_grad_reverse(t, ot.feat, r->grl);
        if (!fs || !ft)
            return t->status;
        size_t ns = (size_t)fs->shape[0] * fs->shape[2] * fs->shape[3], nt = (size_t)ft->shape[0] * ft->shape[2] * ft->shape[3];
        int *rs = sd_arena_alloc(&t->arena, ns * sizeof(int)), *rt = sd_arena_alloc(&t->arena, nt * sizeof(int));
        if (!rs || !rt)
            return SD_ERR_NOMEM;
        region_map(r, tr->src, fs->shape[2], fs->shape[3], rs);
        region_map(r, tr->tgt, ft->shape[2], ft->shape[3], rt);
        sd_tensor *sum = NULL;
        int used = 0;
        for (int i = 0; i < r->gw * r->gh; i++) {
            int cs, ct;
            sd_tensor *ls = region_loss(tr, &r->d[i], fs, rs, i, 0.0f, &cs);
            sd_tensor *lt = region_loss(tr, &r->d[i], ft, rt, i, 1.0f, &ct);
            if (cs && !ls)
                return t->status;
            if (ct && !lt)
                return t->status;
            sd_tensor *li = ls && lt ? sd_scale(t, sd_add(t, ls, lt), 0.5f) : ls ? ls : lt;
            if (!li)
                continue;
            sum = sum ? sd_add(t, sum, li) : li;
            used++;
        }
        if (sum && (st = sd_train_loss(tr, "spatial", sd_scale(t, sum, 1.0f / (float)used), r->l_sa)))
            return st;
    }
    return SD_OK;
}

const sd_method sd_method_road = {
    .name = "road",
    .summary = "ROAD: target-guided distillation + spatial-aware adaptation (grid of region domain classifiers)",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .init = init,
    .step = step,
    .free = free_state,
};
