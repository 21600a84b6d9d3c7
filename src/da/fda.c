/* FDA (Yang & Soatto, CVPR 2020): Fourier domain adaptation. Each source
 * image takes the low-frequency amplitude of a target image (a square
 * window of half-size floor(min(H, W) * beta) at each corner of the
 * unshifted spectrum) and keeps its own phase; then
 *   L = L_seg(FDA(x_s)) + lambda_ent * mean_pixels( (E(x_t)^2 + 1e-8)^eta )
 * with E the normalised entropy of the target prediction (the "robust
 * entropy", eta 2, weight 0.005), computed as the published code does: on
 * the logits at the network's output resolution, before any upsampling, and
 * only once the iteration index exceeds switch2entropy (50000 published;
 * before that the weight is 0). The 2-D DFTs are FFTW's (any size in
 * O(n log n); the hand-written transform it replaced fell back to a direct
 * O(n^2) DFT on sides that are not a power of two, such as 720).
 * The self-supervised stage (FDA-MBT + SSL): with --pseudo-from A,B,C (FDA
 * models trained with different beta), their mean softmax labels every
 * target training image once, at the start; per class, pixels below
 * min(cap, the class's percentile confidence) are ignored (getSudoLabels),
 * and L gains lambda_pseudo * CE(target crop, its crop of those labels).
 * The labels are kept in RUNDIR/pseudo-fda.bin for --resume. */
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
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

/* FFTW plans of one image size: real-to-complex forward, complex-to-real
 * inverse, both double precision and FFTW_ESTIMATE (a plan made by
 * heuristics, not by timing: the same plan, so the same bits, every run).
 * Made once per size under a lock (FFTW's planner is not thread-safe; its
 * execute functions are) and kept for the process; every buffer comes from
 * fftw_malloc, so the new-array execute functions may use the plans on any
 * of them. */
typedef struct fda_plan {
    int h, w;
    fftw_plan fwd, inv;
    struct fda_plan *next;
} fda_plan;

static fda_plan *plans;
static pthread_mutex_t plans_lock = PTHREAD_MUTEX_INITIALIZER;

static fda_plan *get_plan(int h, int w, double *real, fftw_complex *spec)
{
    pthread_mutex_lock(&plans_lock);
    fda_plan *p = plans;
    while (p && (p->h != h || p->w != w))
        p = p->next;
    if (!p && (p = calloc(1, sizeof *p))) {
        /* FFTW_ESTIMATE leaves the arrays untouched while planning */
        p->h = h;
        p->w = w;
        p->fwd = fftw_plan_dft_r2c_2d(h, w, real, spec, FFTW_ESTIMATE);
        p->inv = fftw_plan_dft_c2r_2d(h, w, spec, real, FFTW_ESTIMATE);
        if (p->fwd && p->inv) {
            p->next = plans;
            plans = p;
        } else {
            if (p->fwd)
                fftw_destroy_plan(p->fwd);
            if (p->inv)
                fftw_destroy_plan(p->inv);
            free(p);
            p = NULL;
        }
    }
    pthread_mutex_unlock(&plans_lock);
    return p;
}

/* index i of a side of length n lies in a window of half-size b at its ends */
static bool in_window(int i, int n, int b)
{
    return i < b || i >= n - b;
}

sd_status sd_fda_swap_channel(float *src, const float *trg, int h, int w, float beta)
{
    int b = (int)floor((h < w ? h : w) * (double)beta);
    if (b <= 0)
        return SD_OK;
    /* A real image's spectrum is Hermitian: FFTW keeps columns 0..w/2 of
     * each row. The corner windows are not closed under k -> -k (x = b-1
     * is in, x = -(b-1) = w-b+1 is in, but x = w-b is in and -(w-b) = b is
     * not), so the swapped full spectrum S' is not Hermitian, and the
     * published method keeps the real part of its inverse: the inverse of
     * S''s Hermitian part (S'(k) + conj S'(-k)) / 2, which is what the
     * kept half gets below. */
    int wc = w / 2 + 1;
    size_t n = (size_t)h * w, nc = (size_t)h * wc;
    double *real = fftw_malloc(n * sizeof *real);
    fftw_complex *sf = fftw_malloc(nc * sizeof *sf), *tf = fftw_malloc(nc * sizeof *tf);
    fda_plan *p = real && sf && tf ? get_plan(h, w, real, sf) : NULL;
    if (!p) {
        fftw_free(real);
        fftw_free(sf);
        fftw_free(tf);
        return sd_fail(SD_ERR_NOMEM, "fda: out of memory for a %dx%d transform", w, h);
    }
    for (size_t i = 0; i < n; i++)
        real[i] = trg[i];
    fftw_execute_dft_r2c(p->fwd, real, tf);
    for (size_t i = 0; i < n; i++)
        real[i] = src[i];
    fftw_execute_dft_r2c(p->fwd, real, sf);
    if (b > h / 2)
        b = h / 2;
    if (b > w / 2)
        b = w / 2;
    for (int y = 0; y < h; y++) {
        int ny = (h - y) % h;
        if (!(in_window(y, h, b) || in_window(ny, h, b)))
            continue;
        for (int x = 0; x < wc; x++) {
            /* conj S'(-k) is S(k) where -k is outside the window, else the
             * swapped value at k (both spectra are Hermitian) */
            bool in_k = in_window(y, h, b) && in_window(x, w, b);
            bool in_nk = in_window(ny, h, b) && in_window((w - x) % w, w, b);
            if (!in_k && !in_nk)
                continue;
            size_t i = (size_t)y * wc + x;
            double amp = hypot(tf[i][0], tf[i][1]), ph = atan2(sf[i][1], sf[i][0]);
            double re = amp * cos(ph), im = amp * sin(ph);
            sf[i][0] = ((in_k ? re : sf[i][0]) + (in_nk ? re : sf[i][0])) / 2;
            sf[i][1] = ((in_k ? im : sf[i][1]) + (in_nk ? im : sf[i][1])) / 2;
        }
    }
    fftw_execute_dft_c2r(p->inv, sf, real);   /* (overwrites sf) */
    for (size_t i = 0; i < n; i++)
        src[i] = (float)(real[i] / (double)n);
    fftw_free(real);
    fftw_free(sf);
    fftw_free(tf);
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
