/* FDA (Yang & Soatto, CVPR 2020): Fourier domain adaptation. Each source
 * image takes the low-frequency amplitude of a target image (a square
 * window of half-size floor(min(H, W) * beta) at each corner of the
 * unshifted spectrum) and keeps its own phase; then
 *   L = L_seg(FDA(x_s)) + lambda_ent * mean_pixels( (E(x_t)^2 + 1e-8)^eta )
 * with E the normalised entropy of the target prediction (the "robust
 * entropy", eta 2, weight 0.005), computed as the published code does: on
 * the logits at the network's output resolution, before any upsampling, and
 * only once the iteration index exceeds switch2entropy (50000 published;
 * before that the weight is 0). The DFT is our own: radix-2 where a side
 * is a power of two, a direct transform otherwise.
 * The self-supervised stage (FDA-MBT + SSL): with --pseudo-from A,B,C (FDA
 * models trained with different beta), their mean softmax labels every
 * target training image once, at the start; per class, pixels below
 * min(cap, the class's percentile confidence) are ignored (getSudoLabels),
 * and L gains lambda_pseudo * CE(target crop, its crop of those labels).
 * The labels are kept in RUNDIR/pseudo-fda.bin for --resume. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/pseudo.h"
#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"beta", SD_KNOB_FLOAT, "0.01", NULL, "low-frequency window: half-size floor(min(H,W) * beta) (0.01-0.09)"},
    {"lambda-ent", SD_KNOB_FLOAT, "0.005", NULL, "robust entropy weight on target predictions"},
    {"eta", SD_KNOB_FLOAT, "2", NULL, "robust entropy exponent (a positive real: 2 published, 1.5-2.5 swept)"},
    {"switch2entropy", SD_KNOB_INT, "50000", NULL, "the entropy term is on only from iteration index > N "
                                                   "(0-based, as FDA's train.py; 50000 published)"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (when the model has one)"},
    {"pseudo-from", SD_KNOB_STR, "", NULL, "self-supervised stage: checkpoints CKPT[,CKPT...] of the run's model whose "
                                           "mean softmax pseudo-labels the target set (empty = off)"},
    {"pseudo-percentile", SD_KNOB_FLOAT, "0.66", NULL, "per-class threshold: this quantile of the class's "
                                                       "confidences (0.66 in the published code; 0.5 = median)"},
    {"pseudo-cap", SD_KNOB_FLOAT, "0.9", NULL, "per-class thresholds are at most this"},
    {"lambda-pseudo", SD_KNOB_FLOAT, "1", NULL, "weight of the target pseudo-label loss"},
    {NULL, 0, NULL, NULL, NULL},
};

/* the published ensemble has three members; a few more cost nothing */
#define MAX_ENSEMBLE 8

typedef struct fda_state {
    bool pseudo;               /* the self-supervised stage is on */
    sd_pseudo pl;
} fda_state;

static void free_state(void *state)
{
    fda_state *f = state;
    sd_pseudo_free(&f->pl);
    free(f);
}

/* In-place 1-D DFT of n complex values with stride (sign -1 forward, +1
 * inverse, unnormalised); tmp holds 2n doubles. */
static void dft1(double *re, double *im, int n, size_t stride, int sign, double *tmp)
{
    double *tr = tmp, *ti = tmp + n;
    for (int i = 0; i < n; i++) {
        tr[i] = re[(size_t)i * stride];
        ti[i] = im[(size_t)i * stride];
    }
    if ((n & (n - 1)) == 0) {
        for (int i = 1, j = 0; i < n; i++) {   /* bit reversal */
            int bit = n >> 1;
            for (; j & bit; bit >>= 1)
                j ^= bit;
            j ^= bit;
            if (i < j) {
                double a = tr[i], b = ti[i];
                tr[i] = tr[j];
                ti[i] = ti[j];
                tr[j] = a;
                ti[j] = b;
            }
        }
        for (int len = 2; len <= n; len <<= 1) {
            double ang = sign * 2 * M_PI / len;
            for (int i = 0; i < n; i += len)
                for (int k = 0; k < len / 2; k++) {
                    double wr = cos(ang * k), wi = sin(ang * k);
                    double ur = tr[i + k], ui = ti[i + k];
                    double vr = tr[i + k + len / 2] * wr - ti[i + k + len / 2] * wi;
                    double vi = tr[i + k + len / 2] * wi + ti[i + k + len / 2] * wr;
                    tr[i + k] = ur + vr;
                    ti[i + k] = ui + vi;
                    tr[i + k + len / 2] = ur - vr;
                    ti[i + k + len / 2] = ui - vi;
                }
        }
        for (int i = 0; i < n; i++) {
            re[(size_t)i * stride] = tr[i];
            im[(size_t)i * stride] = ti[i];
        }
        return;
    }
    for (int k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int i = 0; i < n; i++) {
            double a = sign * 2 * M_PI * (double)((int64_t)k * i % n) / n;
            sr += tr[i] * cos(a) - ti[i] * sin(a);
            si += tr[i] * sin(a) + ti[i] * cos(a);
        }
        re[(size_t)k * stride] = sr;
        im[(size_t)k * stride] = si;
    }
}

static void dft2(double *re, double *im, int h, int w, int sign, double *tmp)
{
    for (int y = 0; y < h; y++)
        dft1(re + (size_t)y * w, im + (size_t)y * w, w, 1, sign, tmp);
    for (int x = 0; x < w; x++)
        dft1(re + x, im + x, h, (size_t)w, sign, tmp);
}

sd_status sd_fda_swap_channel(float *src, const float *trg, int h, int w, float beta)
{
    int b = (int)floor((h < w ? h : w) * (double)beta);
    if (b <= 0)
        return SD_OK;
    size_t n = (size_t)h * w;
    double *sr = malloc(n * sizeof(double)), *si = calloc(n, sizeof(double));
    double *tr = malloc(n * sizeof(double)), *ti = calloc(n, sizeof(double));
    double *tmp = malloc(2 * (size_t)(h > w ? h : w) * sizeof(double));
    if (!sr || !si || !tr || !ti || !tmp) {
        free(sr);
        free(si);
        free(tr);
        free(ti);
        free(tmp);
        return sd_fail(SD_ERR_NOMEM, "fda: out of memory for a %dx%d transform", w, h);
    }
    for (size_t i = 0; i < n; i++) {
        sr[i] = src[i];
        tr[i] = trg[i];
    }
    dft2(sr, si, h, w, -1, tmp);
    dft2(tr, ti, h, w, -1, tmp);
    if (b > h / 2)
        b = h / 2;
    if (b > w / 2)
        b = w / 2;
    for (int y = 0; y < h; y++) {
        bool ly = y < b || y >= h - b;
        for (int x = 0; x < w && ly; x++) {
            if (!(x < b || x >= w - b))
                continue;
            size_t i = (size_t)y * w + x;
            double amp = hypot(tr[i], ti[i]), ph = atan2(si[i], sr[i]);
            sr[i] = amp * cos(ph);
            si[i] = amp * sin(ph);
        }
    }
    dft2(sr, si, h, w, +1, tmp);
    for (size_t i = 0; i < n; i++)
        src[i] = (float)(sr[i] / (double)n);
    free(sr);
    free(si);
    free(tr);
    free(ti);
    free(tmp);
    return SD_OK;
}

sd_tensor *sd_fda_robust_entropy(sd_tape *t, sd_tensor *logits, float eta)
{
    sd_tensor *e = sd_entropy_map(t, logits);
    /* the 1e-8 keeps the base positive for a real exponent */
    return sd_mean(t, sd_pow_scalar(t, sd_add_scalar(t, sd_mul(t, e, e), 1e-8f), eta));
}

/* Loads the ensemble named by pseudo-from, each checked against the run's model. */
static sd_status load_ensemble(sd_trainer *tr, sd_model **models, int *n)
{
    const char *list = sd_config_str(tr->cfg, "pseudo-from"), *origin = sd_config_origin(tr->cfg, "pseudo-from");
    char where[300];   /* "--pseudo-from" or "run.cfg:3: pseudo-from" */
    snprintf(where, sizeof where, "%s%s", origin, origin[0] == '-' ? "" : ": pseudo-from");
    const sd_model_opts *run = sd_model_options(tr->model);
    *n = 0;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char path[4096];
        if (len == 0 || len >= sizeof path)
            return sd_fail(SD_ERR_ARG, "%s: '%s': expected CKPT[,CKPT...]", where, list);
        if (*n == MAX_ENSEMBLE)
            return sd_fail(SD_ERR_ARG, "%s: more than %d checkpoints", where, MAX_ENSEMBLE);
        memcpy(path, p, len);
        path[len] = 0;
        sd_norm norm;
        sd_model *m;
        sd_status st = sd_model_load(path, true, &m, &norm);
        if (st)
            return sd_fail_prefix(st, "%s", where);
        models[(*n)++] = m;
        const sd_model_opts *o = sd_model_options(m);
        if (strcmp(o->name, run->name) || o->classes != run->classes)
            return sd_fail(SD_ERR_ARG, "%s: %s holds a %s with %d classes; the run trains a %s with %d", where, path,
                           o->name, o->classes, run->name, run->classes);
        if (norm != tr->norm)
            return sd_fail(SD_ERR_ARG, "%s: %s expects %s-normalised inputs; the run uses %s", where, path,
                           sd_norm_name(norm), sd_norm_name(tr->norm));
        p += len;
        if (*p == ',')
            p++;
    }
    return SD_OK;
}

/* The ensemble's labels of every target training image, thresholded per
 * class; made once per run (a resumed run reads them back). */
static sd_status make_pseudo(sd_trainer *tr, fda_state *f)
{
    sd_status st;
    if ((st = sd_pseudo_init(&f->pl, tr)))
        return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/pseudo-fda.bin", tr->rundir);
    if (sd_config_bool(tr->cfg, "resume") && sd_pseudo_load(&f->pl, path))
        return SD_OK;
    sd_model *models[MAX_ENSEMBLE];
    int nm = 0;
    size_t img = (size_t)f->pl.w * f->pl.h, total = img * (size_t)f->pl.n;
    uint16_t *conf = NULL;
    int c = 0;
    if (!(st = load_ensemble(tr, models, &nm)) && !(conf = malloc(total * sizeof *conf)))
        st = sd_fail(SD_ERR_NOMEM, "fda: out of memory for the confidences of %d target images", f->pl.n);
    for (int i = 0; i < f->pl.n && !st; i++) {
        float *prob;
        int w, h;
        if ((st = sd_pseudo_predict(tr, models, nm, i, &prob, &w, &h, &c)))
            break;
        if (w != f->pl.w || h != f->pl.h)
            st = sd_fail(SD_ERR_DATA, "fda: target images differ in size (%dx%d vs %dx%d); give --target-size", w, h,
                         f->pl.w, f->pl.h);
        else
            sd_pseudo_argmax(prob, c, img, f->pl.label + i * img, conf + i * img);
    }
    sd_tape_reset(&tr->tape);
    for (int k = 0; k < nm; k++)
        sd_model_free(models[k]);
    float thr[256];
    if (!st)
        st = sd_pseudo_threshold_percentile(f->pl.label, conf, total, c, sd_config_float(tr->cfg, "pseudo-percentile"),
                                            sd_config_float(tr->cfg, "pseudo-cap"), thr);
    free(conf);
    if (st)
        return st;
    size_t kept = 0;
    for (size_t i = 0; i < total; i++)
        kept += f->pl.label[i] != 255;
    char line[256 * 8] = "";
    for (int k = 0, len = 0; k < c && len < (int)sizeof line - 8; k++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %.3f", thr[k]);
    sd_log(1, "fda: pseudo-labels from %d model(s), %.1f%% of target pixels kept; class thresholds%s\n", nm,
           100.0 * (double)kept / (double)total, line);
    return sd_pseudo_save(&f->pl, path);
}

static sd_status init(sd_trainer *tr, void **state)
{
    fda_state *f = calloc(1, sizeof *f);
    if (!f)
        return sd_fail(SD_ERR_NOMEM, "fda: out of memory");
    *state = f;
    double eta = sd_config_float(tr->cfg, "eta");
    if (!(eta > 0 && eta < 1e3))
        return sd_fail(SD_ERR_ARG, "%s: eta = %g, expected a positive number", sd_config_origin(tr->cfg, "eta"), eta);
    f->pseudo = *sd_config_str(tr->cfg, "pseudo-from") != 0;
    return f->pseudo ? make_pseudo(tr, f) : SD_OK;
}

static sd_status step(sd_trainer *tr, void *state)
{
    fda_state *f = state;
    sd_tape *t = &tr->tape;
    const sd_batch *s = tr->src, *g = tr->tgt;
    if (s->h != g->h || s->w != g->w)
        return sd_fail(SD_ERR_ARG, "fda: source crops %dx%d and target crops %dx%d must have one size (give --crop)",
                       s->w, s->h, g->w, g->h);
    float beta = (float)sd_config_float(tr->cfg, "beta");
    size_t hw = (size_t)s->h * s->w;
    sd_status st;
    for (int k = 0; k < s->n; k++)
        for (int c = 0; c < 3; c++)
            if ((st = sd_fda_swap_channel(s->image + ((size_t)k * 3 + c) * hw, g->image + ((size_t)(k % g->n) * 3 + c) * hw,
                                          s->h, s->w, beta)))
                return st;
    if ((st = sd_train_supervised(tr, s, "seg", (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    sd_model_out ot;
    if ((st = sd_model_forward(tr->model, t, sd_train_input(tr, g), true, &ot)))
        return st;
    /* (the term is recorded, and logged, before the switch as well: weight 0) */
    bool on = tr->it > sd_config_int(tr->cfg, "switch2entropy");
    if ((st = sd_train_loss(tr, "ent", sd_fda_robust_entropy(t, ot.logits, (float)sd_config_float(tr->cfg, "eta")),
                            on ? (float)sd_config_float(tr->cfg, "lambda-ent") : 0.0f)) ||
        !f->pseudo)
        return st;
    sd_tensor *up = sd_train_upsample(tr, ot.logits, g->h, g->w);
    uint8_t *pl = sd_pseudo_crop(tr, &f->pl, g);
    if (!pl)
        return sd_fail(SD_ERR_NOMEM, "fda: out of memory for the batch's pseudo-labels");
    return sd_train_loss(tr, "pseudo", sd_cross_entropy(t, up, pl, NULL, 255),
                         (float)sd_config_float(tr->cfg, "lambda-pseudo"));
}

const sd_method sd_method_fda = {
    .name = "fda",
    .summary = "FDA: low-frequency amplitude swap of source images to the target's, plus robust entropy",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .bn_default = "batch-stats",   /* model.train(), BN affine requires_grad False */
    .init = init,
    .step = step,
    .free = free_state,
};
