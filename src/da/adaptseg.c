/* AdaptSegNet (Tsai et al., CVPR 2018): output-space adversarial adaptation.
 *   L = L_seg(source) + lambda_aux L_seg_aux(source)
 *     + lambda_adv L_adv(D(softmax(P_target)), source label)  [+ aux level]
 *   L_D = 1/2 L(D(softmax(P_source)), 0) + 1/2 L(D(softmax(P_target)), 1)
 * Per iteration: (1) D frozen, source segmentation; (2) target adversarial
 * loss through the frozen D; (3) D unfrozen, trained on detached outputs;
 * (4) the loop steps both optimisers. Vanilla (BCE) or least-squares GAN,
 * single level (main classifier) or multi-level (plus layer3's). */
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/ops.h"

static const sd_knob knobs[] = {
    {"levels", SD_KNOB_STR, "single", "single|multi", "adversarial levels: main output, or main + auxiliary (layer3)"},
    {"gan", SD_KNOB_STR, "vanilla", "vanilla|ls", "GAN objective: BCE-with-logits or least squares"},
    {"lambda-adv", SD_KNOB_FLOAT, "0", NULL, "main adversarial weight (0: published, 0.001 vanilla, 0.01 LS-GAN)"},
    {"lambda-adv-aux", SD_KNOB_FLOAT, "0.0002", NULL, "auxiliary adversarial weight (multi-level)"},
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary segmentation loss (multi-level)"},
    {"disc-width", SD_KNOB_INT, "64", NULL, "discriminator base width ndf (64 -> 128 -> 256 -> 512)"},
    {NULL, 0, NULL, NULL, NULL},
};

typedef struct adaptseg {
    sd_adversary d, d_aux;
    bool multi;
    float l_adv, l_adv_aux, l_aux;
} adaptseg;

static bool wants_aux(const sd_config *cfg) { return !strcmp(sd_config_str(cfg, "levels"), "multi"); }

static void free_state(void *state)
{
    adaptseg *a = state;
    sd_adversary_free(&a->d);
    sd_adversary_free(&a->d_aux);
    free(a);
}

static sd_status init(sd_trainer *tr, void **state)
{
    adaptseg *a = calloc(1, sizeof *a);
    if (!a)
        return sd_fail(SD_ERR_NOMEM, "adaptseg: out of memory");
    *state = a;
    bool ls = !strcmp(sd_config_str(tr->cfg, "gan"), "ls");
    a->multi = wants_aux(tr->cfg);
    a->l_adv = (float)sd_config_float(tr->cfg, "lambda-adv");
    if (a->l_adv == 0.0f) {
        a->l_adv = ls ? 0.01f : 0.001f;
        sd_status st = sd_train_set_resolved(tr, "lambda-adv", ls ? "0.01" : "0.001");
        if (st)
            return st;
    }
    a->l_adv_aux = (float)sd_config_float(tr->cfg, "lambda-adv-aux");
    a->l_aux = (float)sd_config_float(tr->cfg, "lambda-aux");
    int classes = sd_model_options(tr->model)->classes, width = (int)sd_config_int(tr->cfg, "disc-width");
    sd_status st = sd_adversary_init(tr, &a->d, SD_DISC_OUTPUT, classes, width, "disc:", ls);
    if (!st && a->multi)
        st = sd_adversary_init(tr, &a->d_aux, SD_DISC_OUTPUT, classes, width, "disc_aux:", ls);
    return st;
}

/* softmax of logits upsampled to the input size, optionally detached first */
static sd_tensor *prob(sd_trainer *tr, sd_tensor *logits, const sd_batch *b, bool detach)
{
    if (detach)
        logits = sd_detach(&tr->tape, logits);
    return sd_softmax(&tr->tape, sd_train_upsample(tr, logits, b->h, b->w));
}

static sd_status step(sd_trainer *tr, void *state)
{
    adaptseg *a = state;
    sd_status st;
    /* (1) source segmentation, D frozen */
    sd_adversary_freeze(&a->d, true);
    if (a->multi)
        sd_adversary_freeze(&a->d_aux, true);
    sd_model_out os, ot;
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->src), true, &os)))
        return st;
    if ((st = sd_train_loss(tr, "seg", sd_train_seg_loss(tr, os.logits, tr->src->label, tr->src->h, tr->src->w), 1.0f)))
        return st;
    if (a->multi && (st = sd_train_loss(tr, "seg_aux",
                                        sd_train_seg_loss(tr, os.aux_logits, tr->src->label, tr->src->h, tr->src->w),
                                        a->l_aux)))
        return st;
    /* (2) target predictions should fool D: labelled as source (0) */
    if ((st = sd_model_forward(tr->model, &tr->tape, sd_train_input(tr, tr->tgt), true, &ot)))
        return st;
    sd_tensor *pt = prob(tr, ot.logits, tr->tgt, false);
    if ((st = sd_train_loss(tr, "adv", sd_adversary_loss(tr, &a->d, pt, 0.0f), a->l_adv)))
        return st;
    sd_tensor *pt_aux = NULL;
    if (a->multi) {
        pt_aux = prob(tr, ot.aux_logits, tr->tgt, false);
        if ((st = sd_train_loss(tr, "adv_aux", sd_adversary_loss(tr, &a->d_aux, pt_aux, 0.0f), a->l_adv_aux)))
            return st;
    }
    if ((st = sd_train_backward(tr)))
        return st;
    /* (3) D learns source 0 / target 1 on detached outputs, each half */
    sd_adversary_freeze(&a->d, false);
    if ((st = sd_train_loss(tr, "d_src", sd_adversary_loss(tr, &a->d, prob(tr, os.logits, tr->src, true), 0.0f), 0.5f)) ||
        (st = sd_train_loss(tr, "d_tgt", sd_adversary_loss(tr, &a->d, sd_detach(&tr->tape, pt), 1.0f), 0.5f)))
        return st;
    if (a->multi) {
        sd_adversary_freeze(&a->d_aux, false);
        if ((st = sd_train_loss(tr, "d_src_aux",
                                sd_adversary_loss(tr, &a->d_aux, prob(tr, os.aux_logits, tr->src, true), 0.0f), 0.5f)) ||
            (st = sd_train_loss(tr, "d_tgt_aux", sd_adversary_loss(tr, &a->d_aux, sd_detach(&tr->tape, pt_aux), 1.0f),
                                0.5f)))
            return st;
    }
    return SD_OK;   /* (4) the loop runs this backward and steps both optimisers */
}

const sd_method sd_method_adaptseg = {
    .name = "adaptseg",
    .summary = "AdaptSegNet: output-space adversarial adaptation (single/multi-level, vanilla/LS-GAN)",
    .knobs = knobs,
    .needs_target = true,
    .source_batches = true,
    .wants_aux = wants_aux,
    .init = init,
    .step = step,
    .free = free_state,
};
