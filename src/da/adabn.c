/* AdaBN (Li, Wang, Shi, Liu, Hou: "Revisiting Batch Normalization for
 * Practical Domain Adaptation", ICLR-W 2017 / Pattern Recognition 2018): the
 * weights of a trained network stay as they are and every BN layer's running
 * mean and variance are replaced by the target domain's. Each iteration
 * passes one target batch (no labels, no loss, no optimiser step) and folds
 * its statistics into a cumulative average (iteration i weighs 1/(i+1)), so
 * after N iterations the statistics are the mean over N target batches (for
 * the variance: the mean of the batches' unbiased variances, as PyTorch's
 * momentum=None gives; the population variance would add the spread of the
 * batch means, small at whole-image batches);
 * `--iters` chooses N (one pass over the target train set is
 * ceil(images / batch)). It is a method of its own and the last step of any
 * other: `--init` names the checkpoint, source-only or adapted. */
#include "da/train_internal.h"

static const sd_knob knobs[] = {
    {NULL, 0, NULL, NULL, NULL},
};

static sd_status init(sd_trainer *tr, void **state)
{
    *state = NULL;
    if (!*sd_config_str(tr->cfg, "init") && !sd_config_bool(tr->cfg, "resume"))
        return sd_fail(SD_ERR_ARG, "adabn re-estimates the statistics of a trained network: give --init CKPT");
    return SD_OK;
}

static sd_status step(sd_trainer *tr, void *state)
{
    (void)state;
    sd_tensor *x = sd_train_input(tr, tr->tgt);
    if (!x)
        return tr->tape.status ? tr->tape.status : SD_ERR_NOMEM;
    sd_status st = sd_model_reestimate_bn(tr->model, &tr->tape, x, tr->it);
    if (st)
        return sd_fail_prefix(st, "adabn, iteration %lld", (long long)tr->it + 1);
    sd_train_log_value(tr, "images", (double)(tr->it + 1) * tr->tgt->n);
    return SD_OK;
}

const sd_method sd_method_adabn = {
    .name = "adabn",
    .summary = "AdaBN: a trained network's BN statistics re-estimated on target images (weights untouched)",
    .knobs = knobs,
    .needs_target = true,
    .fixed_weights = true,
    .init = init,
    .step = step,
};
