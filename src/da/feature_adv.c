/* Pixel-level feature alignment (FCNs in the wild, Hoffman et al. 2016;
 * DANN's gradient reversal): a domain classifier on every position of the
 * last backbone block's features, behind a gradient reversal layer, so one
 * backward trains the classifier to tell the domains apart and the features
 * to make that impossible.
 *   L = L_seg(source) + lambda_adv * 1/2 [BCE(D(R(F_s)), 0) + BCE(D(R(F_t)), 1)]
 * with R the identity forward and -grl * gradient backward. */
#include <stdlib.h>

#include "da/train_internal.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"lambda-adv", SD_KNOB_FLOAT, "0.01", NULL, "weight of the domain classification loss"},
    {"grl", SD_KNOB_FLOAT, "1", NULL, "gradient reversal coefficient"},
    {"disc-width", SD_KNOB_INT, "256", NULL, "hidden width of the pixel-level domain classifier (1x1 convs)"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (when the model has one)"},
    {NULL, 0, NULL, NULL, NULL},
};

typedef struct feature_adv {
    sd_adversary d;
    float lambda, grl;
} feature_adv;

static void free_state(void *state)
{
    feature_adv *a = state;
    sd_adversary_free(&a->d);
    free(a);
}

static sd_status init(sd_trainer *tr, void **state)
{
    feature_adv *a = calloc(1, sizeof *a);
    if (!a)
        return sd_fail(SD_ERR_NOMEM, "feature-adv: out of memory");
    *state = a;
    a->lambda = (float)sd_config_float(tr->cfg, "lambda-adv");
    a->grl = (float)sd_config_float(tr->cfg, "grl");
    /* the feature width is known only from a forward pass: one tiny no-grad pass */
    sd_tape_no_grad_begin(&tr->tape);
    sd_tensor *x = sd_tensor_zeros(&tr->tape, 4, (int[]){1, 3, 64, 64});
    sd_model_out o;
    sd_status st = sd_model_forward(tr->model, &tr->tape, x, false, &o);
    sd_tape_no_grad_end(&tr->tape);
    if (st)
        return st;
    int ch = o.feat->shape[1];
    sd_tape_reset(&tr->tape);
    return sd_adversary_init(tr, &a->d, SD_DISC_PIXEL, ch, (int)sd_config_int(tr->cfg, "disc-width"), "disc:", false);
}

static sd_status step(sd_trainer *tr, void *state)
{
    feature_adv *a = state;
    sd_status st;
    sd_model_out os, ot;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->src), true, &os)))
        return st;
    if ((st = sd_train_loss(tr, "seg", sd_train_seg_loss(tr, os.logits, tr->src->label, tr->src->h, tr->src->w), 1.0f)))
        return st;
    if (os.aux_logits &&
        (st = sd_train_loss(tr, "seg_aux", sd_train_seg_loss(tr, os.aux_logits, tr->src->label, tr->src->h, tr->src->w),
                            (float)sd_config_float(tr->cfg, "lambda-aux"))))
        return st;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->tgt), true, &ot)))
        return st;
    sd_tensor *fs = sd_grad_reverse(&tr->tape, os.feat, a->grl), *ft = sd_grad_reverse(&tr->tape, ot.feat, a->grl);
    if ((st = sd_train_loss(tr, "dom_src", sd_adversary_loss(tr, &a->d, fs, 0.0f), 0.5f * a->lambda)))
        return st;
    return sd_train_loss(tr, "dom_tgt", sd_adversary_loss(tr, &a->d, ft, 1.0f), 0.5f * a->lambda);
}

const sd_method sd_method_feature_adv = {
    .name = "feature-adv",
    .summary = "pixel-level feature alignment: domain classifier behind gradient reversal (FCNs in the wild / DANN)",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .init = init,
    .step = step,
    .free = free_state,
};
