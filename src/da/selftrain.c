/* Self-training on target pseudo-labels, three ways:
 *  cbst  - offline rounds (Zou et al., ECCV 2018): at the start of each round
 *          the current model labels every target image; class-balanced
 *          thresholds k_c keep the most confident portion p of each class's
 *          pixels (p from 0.2, +0.05 a round, at most 0.5); label =
 *          argmax_c p_c / k_c, ignored where that ratio is below 1. Then
 *          L = L_seg(source) + lambda_pl L_seg(target, pseudo-labels).
 *  stuff - the same with only background classes kept (seed 003: things
 *          come from a detector, so only stuff pseudo-labels are trusted);
 *          pseudo-classes=stuff does the same for any mode (thing pixels,
 *          trainIds 11..18, become 255 in the stored and the online labels;
 *          with portion=1 portion-max=1 every stuff prediction is kept, Saleh et al.'s
 *          background ps-GT).
 *  mean-teacher - online (DACS): an EMA teacher, alpha_t = min(1 - 1/(t+1),
 *          0.999), labels target crops; ClassMix pastes half of the source
 *          classes onto the target crop; the mixed crop is trained on mixed
 *          labels, target pixels weighted by the fraction of teacher
 *          confidences above 0.968.
 * Offline pseudo-labels are kept in RUNDIR/pseudo-round-R.bin, so a resumed
 * run continues with the same ones. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/pseudo.h"
#include "da/train_internal.h"
#include "segda/eval.h"
#include "segda/labels.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"mode", SD_KNOB_STR, "cbst", "cbst|stuff|mean-teacher", "offline class-balanced rounds, stuff-only, or online mean teacher"},
    {"rounds", SD_KNOB_INT, "3", NULL, "offline rounds (the iterations are split evenly)"},
    {"portion", SD_KNOB_FLOAT, "0.2", NULL, "CBST: portion of each class's pixels kept in round 0"},
    {"portion-step", SD_KNOB_FLOAT, "0.05", NULL, "CBST: portion added per round"},
    {"portion-max", SD_KNOB_FLOAT, "0.5", NULL, "CBST: largest portion"},
    {"lambda-pseudo", SD_KNOB_FLOAT, "1", NULL, "weight of the target pseudo-label loss"},
    {"pseudo-classes", SD_KNOB_STR, "all", "all|stuff", "classes pseudo-labels may take: stuff ignores things (trainIds 11-18)"},
    {"threshold", SD_KNOB_FLOAT, "0.968", NULL, "mean teacher: confidence threshold of the quality weight"},
    {"ema", SD_KNOB_FLOAT, "0.999", NULL, "mean teacher: largest EMA coefficient"},
    {"classmix", SD_KNOB_BOOL, "true", NULL, "mean teacher: ClassMix source classes onto target crops"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (when the model has one)"},
    {NULL, 0, NULL, NULL, NULL},
};

#define HIST_BINS 1000
/* trainIds 11-18 (person ... bicycle) are the seed paper's "things" */
#define FIRST_THING 11

typedef struct selftrain {
    int mode;                  /* 0 cbst, 1 stuff, 2 mean-teacher */
    bool stuff_only;           /* mode stuff or pseudo-classes=stuff: thing pixels ignored */
    int64_t round_len;
    int round;                 /* round whose labels are loaded, -1 none */
    sd_pseudo pl;              /* that round's labels (pl.label NULL before round 0) */
    sd_model *teacher;
} selftrain;

static void free_state(void *state)
{
    selftrain *s = state;
    sd_pseudo_free(&s->pl);
    if (s->teacher)
        sd_model_free(s->teacher);
    free(s);
}

static sd_status init(sd_trainer *tr, void **state)
{
    selftrain *s = calloc(1, sizeof *s);
    if (!s)
        return sd_fail(SD_ERR_NOMEM, "selftrain: out of memory");
    *state = s;
    const char *m = sd_config_str(tr->cfg, "mode");
    s->mode = !strcmp(m, "cbst") ? 0 : !strcmp(m, "stuff") ? 1 : 2;
    s->stuff_only = s->mode == 1 || !strcmp(sd_config_str(tr->cfg, "pseudo-classes"), "stuff");
    s->round = -1;
    if (s->mode == 2) {
        sd_status st = sd_model_create(sd_model_options(tr->model), &s->teacher);
        if (st)
            return st;
        sd_params *tp = sd_model_params(s->teacher);
        for (int g = 0; g < tp->n_groups; g++) {
            memcpy(tp->groups[g].data, tr->params->groups[g].data, tp->groups[g].numel * sizeof(float));
            sd_params_set_frozen(tp, g, true);
        }
        return sd_train_add_module(tr, "teacher:", tp, NULL, 0);
    }
    int64_t rounds = sd_config_int(tr->cfg, "rounds");
    if (rounds < 1)
        return sd_fail(SD_ERR_ARG, "%s: rounds = %lld, expected >= 1", sd_config_origin(tr->cfg, "rounds"), (long long)rounds);
    s->round_len = (tr->iters + rounds - 1) / rounds;
    return SD_OK;
}

static sd_status make_pseudo(sd_trainer *tr, selftrain *s, int round)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/pseudo-round-%d.bin", tr->rundir, round);
    sd_status st;
    float *prob;
    int w, h, c;
    if (!s->pl.label && (st = sd_pseudo_init(&s->pl, tr)))
        return st;
    int n = s->pl.n;
    size_t img = (size_t)s->pl.w * s->pl.h;
    if (sd_pseudo_load(&s->pl, path)) {   /* a resumed run: the labels this round was trained with */
        s->round = round;
        return SD_OK;
    }
    double portion = sd_config_float(tr->cfg, "portion") + round * sd_config_float(tr->cfg, "portion-step");
    double pmax = sd_config_float(tr->cfg, "portion-max");
    if (portion > pmax)
        portion = pmax;
    uint64_t *hist = calloc((size_t)SD_NUM_CLASSES * HIST_BINS, sizeof *hist);
    if (!hist)
        return sd_fail(SD_ERR_NOMEM, "selftrain: out of memory");
    /* pass 1: confidence histograms of each predicted class */
    for (int i = 0; i < n; i++) {
        if ((st = sd_pseudo_predict(tr, &tr->model, 1, i, &prob, &w, &h, &c)))
            break;
        if (w != s->pl.w || h != s->pl.h || c > SD_NUM_CLASSES) {
            st = sd_fail(SD_ERR_DATA, "selftrain: target images differ in size (%dx%d vs %dx%d); give --target-size", w, h,
                         s->pl.w, s->pl.h);
            break;
        }
        for (size_t p = 0; p < img; p++) {
            int best = 0;
            for (int k = 1; k < c; k++)
                if (prob[k * img + p] > prob[best * img + p])
                    best = k;
            int bin = (int)(prob[best * img + p] * HIST_BINS);
            hist[best * HIST_BINS + (bin >= HIST_BINS ? HIST_BINS - 1 : bin)]++;
        }
    }
    /* k_c: the confidence above which the top `portion` of class c lies */
    float kc[SD_NUM_CLASSES];
    for (int k = 0; k < SD_NUM_CLASSES && !st; k++) {
        uint64_t total = 0, acc = 0;
        for (int b = 0; b < HIST_BINS; b++)
            total += hist[k * HIST_BINS + b];
        kc[k] = 1.0f;
        for (int b = HIST_BINS - 1; b >= 0 && total; b--) {
            acc += hist[k * HIST_BINS + b];
            if ((double)acc >= portion * (double)total) {
                kc[k] = (float)b / HIST_BINS;
                break;
            }
        }
        if (kc[k] <= 0)
            kc[k] = 1e-6f;
    }
    free(hist);
    /* pass 2: labels */
    uint64_t kept = 0;
    for (int i = 0; i < n && !st; i++) {
        if ((st = sd_pseudo_predict(tr, &tr->model, 1, i, &prob, &w, &h, &c)))
            break;
        uint8_t *lab = s->pl.label + (size_t)i * img;
        for (size_t p = 0; p < img; p++) {
            int best = 0;
            float br = prob[p] / kc[0];
            for (int k = 1; k < c; k++)
                if (prob[k * img + p] / kc[k] > br) {
                    br = prob[k * img + p] / kc[k];
                    best = k;
                }
            bool keep = br >= 1.0f && !(s->stuff_only && best >= FIRST_THING);
            lab[p] = keep ? (uint8_t)best : 255;
            kept += keep;
        }
    }
    sd_tape_reset(&tr->tape);
    if (st)
        return st;
    sd_log(1, "selftrain: round %d pseudo-labels, portion %.2f, %.1f%% of target pixels kept\n", round, portion,
           100.0 * (double)kept / ((double)img * n));
    if ((st = sd_pseudo_save(&s->pl, path)))
        return st;
    s->round = round;
    return SD_OK;
}

static sd_status offline_step(sd_trainer *tr, selftrain *s)
{
    sd_status st;
    int round = (int)(tr->it / s->round_len);
    if (round != s->round && (st = make_pseudo(tr, s, round)))
        return st;
    sd_tape_reset(&tr->tape);
    float la = (float)sd_config_float(tr->cfg, "lambda-aux");
    if ((st = sd_train_supervised(tr, tr->src, "seg", la)))
        return st;
    uint8_t *pl = sd_pseudo_crop(tr, &s->pl, tr->tgt);
    if (!pl)
        return SD_ERR_NOMEM;
    sd_model_out ot;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->tgt), true, &ot)))
        return st;
    return sd_train_loss(tr, "pseudo", sd_train_seg_loss(tr, ot.logits, pl, tr->tgt->h, tr->tgt->w),
                         (float)sd_config_float(tr->cfg, "lambda-pseudo"));
}

static sd_status mean_teacher_step(sd_trainer *tr, selftrain *s)
{
    sd_tape *t = &tr->tape;
    const sd_batch *src = tr->src, *tgt = tr->tgt;
    sd_status st;
    if (src->h != tgt->h || src->w != tgt->w)
        return sd_fail(SD_ERR_ARG, "mean teacher: source crops %dx%d and target crops %dx%d must have one size (give --crop)",
                       src->w, src->h, tgt->w, tgt->h);
    if ((st = sd_train_supervised(tr, src, "seg", (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    /* the teacher's labels of the target crops */
    sd_model_out o;
    sd_tape_no_grad_begin(t);
    st = sd_model_forward(s->teacher, t, sd_train_input(tr, tgt), false, &o);
    sd_tensor *p = st ? NULL : sd_softmax(t, sd_train_upsample(tr, o.logits, tgt->h, tgt->w));
    sd_tape_no_grad_end(t);
    if (st || !p)
        return st ? st : t->status;
    int c = p->shape[1], n = tgt->n;
    size_t hw = (size_t)tgt->h * tgt->w;
    uint8_t *lab = sd_arena_alloc(&t->arena, (size_t)n * hw);
    float *wt = sd_arena_alloc(&t->arena, (size_t)n * hw * sizeof(float));
    sd_batch mix = *tgt;
    mix.image = sd_arena_alloc(&t->arena, (size_t)n * 3 * hw * sizeof(float));
    if (!lab || !wt || !mix.image)
        return SD_ERR_NOMEM;
    memcpy(mix.image, tgt->image, (size_t)n * 3 * hw * sizeof(float));
    float tau = (float)sd_config_float(tr->cfg, "threshold");
    bool classmix = sd_config_bool(tr->cfg, "classmix");
    sd_rng rng = sd_rng_fork(tr->seed, 0xC1A55000000ULL + (uint64_t)tr->it);
    double qsum = 0;
    for (int k = 0; k < n; k++) {
        const float *pk = (const float *)sd_tensor_host(p) + (size_t)k * c * hw;
        size_t confident = 0;
        for (size_t i = 0; i < hw; i++) {
            int best = 0;
            for (int j = 1; j < c; j++)
                if (pk[j * hw + i] > pk[best * hw + i])
                    best = j;
            lab[k * hw + i] = s->stuff_only && best >= FIRST_THING ? 255 : (uint8_t)best;
            confident += pk[best * hw + i] > tau;
        }
        float q = (float)confident / (float)hw;
        qsum += q;
        bool pick[256] = {false};
        if (classmix) {
            /* half of the classes present in the source crop (rounded up) */
            const uint8_t *sl = src->label + (size_t)(k % src->n) * hw;
            int present[SD_NUM_CLASSES], np = 0;
            bool seen[256] = {false};
            for (size_t i = 0; i < hw; i++)
                if (sl[i] < SD_NUM_CLASSES && !seen[sl[i]]) {
                    seen[sl[i]] = true;
                    present[np++] = sl[i];
                }
            for (int i = 0; i < np; i++) {
                int j = i + sd_rng_int(&rng, np - i), tmp = present[i];
                present[i] = present[j];
                present[j] = tmp;
            }
            for (int i = 0; i < (np + 1) / 2; i++)
                pick[present[i]] = true;
        }
        const uint8_t *sl = src->label + (size_t)(k % src->n) * hw;
        const float *srgb = src->image + (size_t)(k % src->n) * 3 * hw;
        for (size_t i = 0; i < hw; i++) {
            if (pick[sl[i]]) {
                lab[k * hw + i] = sl[i];
                wt[k * hw + i] = 1.0f;
                for (int ch = 0; ch < 3; ch++)
                    mix.image[((size_t)k * 3 + ch) * hw + i] = srgb[ch * hw + i];
            } else {
                wt[k * hw + i] = q;
            }
        }
    }
    sd_train_log_value(tr, "confident", qsum / n);
    sd_model_out om;
    if ((st = sd_model_forward(tr->model, t, sd_train_input(tr, &mix), true, &om)))
        return st;
    sd_tensor *up = sd_train_upsample(tr, om.logits, tgt->h, tgt->w);
    return sd_train_loss(tr, "pseudo", sd_cross_entropy_pixel_weighted(t, up, lab, wt, 255),
                         (float)sd_config_float(tr->cfg, "lambda-pseudo"));
}

static sd_status step(sd_trainer *tr, void *state)
{
    selftrain *s = state;
    return s->mode == 2 ? mean_teacher_step(tr, s) : offline_step(tr, s);
}

/* teacher = alpha * teacher + (1 - alpha) * student, alpha_t = min(1 - 1/(t+1), ema) */
static sd_status after_step(sd_trainer *tr, void *state)
{
    selftrain *s = state;
    if (s->mode != 2)
        return SD_OK;
    double a = 1.0 - 1.0 / (double)(tr->it + 1), cap = sd_config_float(tr->cfg, "ema");
    float alpha = (float)(a < cap ? a : cap);
    sd_params *tp = sd_model_params(s->teacher);
    for (int g = 0; g < tp->n_groups; g++) {
        float *d = tp->groups[g].data;
        const float *w = tr->params->groups[g].data;
        for (size_t i = 0; i < tp->groups[g].numel; i++)
            d[i] = alpha * d[i] + (1.0f - alpha) * w[i];
    }
    return SD_OK;
}

const sd_method sd_method_selftrain = {
    .name = "selftrain",
    .summary = "self-training on target pseudo-labels: CBST rounds, stuff-only (seed 003), or online mean teacher",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .init = init,
    .step = step,
    .after_step = after_step,
    .free = free_state,
};
