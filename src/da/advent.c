/* ADVENT (Vu et al., CVPR 2019): entropy minimisation on target predictions.
 *   MinEnt: L = L_seg(source) + lambda_ent * mean_pixels( -sum_c p log p / log C )
 *   AdvEnt: L = L_seg(source) + lambda_adv L_adv(D(I_target), source label),
 *           L_D = 1/2 L(D(I_source), 0) + 1/2 L(D(I_target), 1),
 *   with I = -p log p / log C the self-information map of the upsampled
 *   prediction. Auxiliary (layer3) terms with the multi-level option. */
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"mode", SD_KNOB_STR, "advent", "minent|advent", "direct entropy minimisation or adversarial on self-information"},
    {"levels", SD_KNOB_STR, "multi", "single|multi", "main output only, or main + auxiliary (layer3); multi as "
                                                      "ADVENT's official config (MULTI_LEVEL True)"},
    {"lambda-ent", SD_KNOB_FLOAT, "0.001", NULL, "MinEnt weight (main)"},
    {"lambda-ent-aux", SD_KNOB_FLOAT, "0.0002", NULL, "MinEnt weight (auxiliary)"},
    {"lambda-adv", SD_KNOB_FLOAT, "0.001", NULL, "AdvEnt adversarial weight (main)"},
    {"lambda-adv-aux", SD_KNOB_FLOAT, "0.0002", NULL, "AdvEnt adversarial weight (auxiliary)"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (multi-level)"},
    {"disc-width", SD_KNOB_INT, "64", NULL, "discriminator base width ndf"},
    {"disc-init", SD_KNOB_STR, "", NULL, "checkpoint of d_main, FCDiscriminator names (conv1..conv4, classifier)"},
    {"disc-aux-init", SD_KNOB_STR, "", NULL, "checkpoint of d_aux, FCDiscriminator names (multi-level)"},
    {NULL, 0, NULL, NULL, NULL},
};

typedef struct advent {
    bool adv, multi;
    sd_adversary d, d_aux;
} advent;

static bool wants_aux(const sd_config *cfg) { return !strcmp(sd_config_str(cfg, "levels"), "multi"); }

static void free_state(void *state)
{
    advent *a = state;
    sd_adversary_free(&a->d);
    sd_adversary_free(&a->d_aux);
    free(a);
}

static sd_status init(sd_trainer *tr, void **state)
{
    advent *a = calloc(1, sizeof *a);
    if (!a)
        return sd_fail(SD_ERR_NOMEM, "advent: out of memory");
    *state = a;
    a->adv = !strcmp(sd_config_str(tr->cfg, "mode"), "advent");
    a->multi = wants_aux(tr->cfg);
    if (!a->adv)
        return SD_OK;
    int classes = sd_model_options(tr->model)->classes, width = (int)sd_config_int(tr->cfg, "disc-width");
    sd_status st = sd_adversary_init(tr, &a->d, SD_DISC_OUTPUT, classes, width, "disc:", false);
    if (!st)
        st = sd_adversary_load(tr, &a->d, "disc-init");
    if (!st && a->multi && !(st = sd_adversary_init(tr, &a->d_aux, SD_DISC_OUTPUT, classes, width, "disc_aux:", false)))
        st = sd_adversary_load(tr, &a->d_aux, "disc-aux-init");
    return st;
}

static sd_tensor *self_info(sd_trainer *tr, sd_tensor *logits, const sd_batch *b, bool detach)
{
    if (detach)
        logits = sd_detach(&tr->tape, logits);
    return sd_self_information(&tr->tape, sd_train_upsample(tr, logits, b->h, b->w));
}

static sd_status level(sd_trainer *tr, advent *a, sd_adversary *d, sd_tensor *src_logits, sd_tensor *tgt_logits,
                       bool aux)
{
    const sd_config *c = tr->cfg;
    sd_status st;
    if (!a->adv) {
        sd_tensor *ent = sd_mean(&tr->tape, sd_entropy_map(&tr->tape, sd_train_upsample(tr, tgt_logits, tr->tgt->h, tr->tgt->w)));
        return sd_train_loss(tr, aux ? "ent_aux" : "ent", ent,
                             (float)sd_config_float(c, aux ? "lambda-ent-aux" : "lambda-ent"));
    }
    sd_adversary_freeze(d, true);
    sd_tensor *it = self_info(tr, tgt_logits, tr->tgt, false);
    if ((st = sd_train_loss(tr, aux ? "adv_aux" : "adv", sd_adversary_loss(tr, d, it, 0.0f),
                            (float)sd_config_float(c, aux ? "lambda-adv-aux" : "lambda-adv"))))
        return st;
    if ((st = sd_train_backward(tr)))
        return st;
    sd_adversary_freeze(d, false);
    if ((st = sd_train_loss(tr, aux ? "d_src_aux" : "d_src",
                            sd_adversary_loss(tr, d, self_info(tr, src_logits, tr->src, true), 0.0f), 0.5f)))
        return st;
    return sd_train_loss(tr, aux ? "d_tgt_aux" : "d_tgt", sd_adversary_loss(tr, d, sd_detach(&tr->tape, it), 1.0f),
                         0.5f);
}

static sd_status step(sd_trainer *tr, void *state)
{
    advent *a = state;
    sd_status st;
    sd_model_out os, ot;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->src), true, &os)))
        return st;
    if ((st = sd_train_loss(tr, "seg", sd_train_seg_loss(tr, os.logits, tr->src->label, tr->src->h, tr->src->w), 1.0f)))
        return st;
    if (a->multi && (st = sd_train_loss(tr, "seg_aux",
                                        sd_train_seg_loss(tr, os.aux_logits, tr->src->label, tr->src->h, tr->src->w),
                                        (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->tgt), true, &ot)))
        return st;
    /* The generator's terms of both levels go into one backward before any
     * D update: freeze both Ds first. */
    if (a->adv && a->multi)
        sd_adversary_freeze(&a->d_aux, true);
    if ((st = level(tr, a, &a->d, os.logits, ot.logits, false)))
        return st;
    if (a->multi && (st = level(tr, a, &a->d_aux, os.aux_logits, ot.aux_logits, true)))
        return st;
    return SD_OK;
}

const sd_method sd_method_advent = {
    .name = "advent",
    .summary = "ADVENT: entropy minimisation, direct (MinEnt) or adversarial on self-information (AdvEnt)",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .bn_default = "batch-stats",   /* model.train(), BN affine requires_grad False */
    .wants_aux = wants_aux,
    .init = init,
    .step = step,
    .free = free_state,
};
