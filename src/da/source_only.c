/* Supervised baselines and bounds: source-only (train on labelled synthetic
 * images), oracle (train on labelled target images: the upper bound) and
 * finetune (a labelled target budget of N images chosen by seed, from a
 * checkpoint). Each is one cross-entropy term (plus 0.1 x the auxiliary
 * classifier's when the model has one, as DeepLab-v2 practice). */
#include <stdlib.h>

#include "da/train_internal.h"

static const sd_knob supervised_knobs[] = {
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary classifier's segmentation loss"},
    {NULL, 0, NULL, NULL, NULL},
};

static sd_status source_step(sd_trainer *tr, void *state)
{
    (void)state;
    return sd_train_supervised(tr, tr->src, "seg", (float)sd_config_float(tr->cfg, "lambda-aux"));
}

static sd_status target_step(sd_trainer *tr, void *state)
{
    (void)state;
    return sd_train_supervised(tr, tr->tgt, "seg", (float)sd_config_float(tr->cfg, "lambda-aux"));
}

const sd_method sd_method_source_only = {
    .name = "source-only",
    .summary = "supervised on the labelled source domain only (the baseline)",
    .knobs = supervised_knobs,
    .source_batches = true,
    .step = source_step,
};

const sd_method sd_method_oracle = {
    .name = "oracle",
    .summary = "supervised on labelled target images (the upper bound)",
    .knobs = supervised_knobs,
    .target_labels = true,
    .step = target_step,
};

static const sd_knob finetune_knobs[] = {
    {"lambda-aux", SD_KNOB_FLOAT, "0.1", NULL, "weight of the auxiliary classifier's segmentation loss"},
    {"target-labels", SD_KNOB_INT, "75", NULL, "labelled target images (seed budgets 75/450/1000/2500), chosen by seed"},
    {NULL, 0, NULL, NULL, NULL},
};

static sd_status finetune_init(sd_trainer *tr, void **state)
{
    *state = NULL;
    if (!*sd_config_str(tr->cfg, "init") && !sd_config_bool(tr->cfg, "resume"))
        return sd_fail(SD_ERR_ARG, "finetune starts from a checkpoint: give --init CKPT");
    int64_t n = sd_config_int(tr->cfg, "target-labels");
    if (n <= 0)
        return sd_fail(SD_ERR_ARG, "%s: target-labels = %lld, expected > 0", sd_config_origin(tr->cfg, "target-labels"),
                       (long long)n);
    return sd_train_target_subset(tr, (int)n);
}

const sd_method sd_method_finetune = {
    .name = "finetune",
    .summary = "fine-tune a checkpoint on N labelled target images (chosen by seed)",
    .knobs = finetune_knobs,
    .target_labels = true,
    .init = finetune_init,
    .step = target_step,
};
