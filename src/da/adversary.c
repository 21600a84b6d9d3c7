/* The adversarial pieces several methods share: a discriminator or domain
 * classifier registered with the run (Adam, its own poly schedule, saved
 * for resume), freezing it for the generator's step, and the GAN loss
 * against a constant domain label. The recipes themselves are in the
 * method files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/checkpoint.h"
#include "segda/ops.h"

sd_status sd_adversary_init(sd_trainer *tr, sd_adversary *a, sd_disc_kind kind, int in_ch, int width,
                            const char *prefix, bool least_squares)
{
    memset(a, 0, sizeof *a);
    a->least_squares = least_squares;
    /* tensors under FCDiscriminator's own names (conv1..conv4, classifier);
     * the checkpoint namespace `prefix` tells the discriminators apart */
    sd_status st = sd_disc_create(kind, in_ch, width, NULL, &a->d);
    if (st)
        return st;
    /* a stream of its own per discriminator, so adding one does not shift others */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = prefix; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ULL;
    sd_disc_init_weights(a->d, tr->seed ^ h);
    /* AdaptSegNet / ADVENT: Adam lr 1e-4, betas (0.9, 0.99), same poly decay */
    sd_optim_opts o = sd_optim_opts_adam(0.9f, 0.99f);
    return sd_train_add_module(tr, prefix, sd_disc_params(a->d), &o, (float)sd_config_float(tr->cfg, "lr-d"));
}

/* ADVENT's get_fc_discriminator is an nn.Sequential: its convs are 0, 2, 4,
 * 6, 8 (LeakyReLUs between), the same five layers as FCDiscriminator's
 * conv1..conv4, classifier. */
static sd_status load_sequential(sd_ckpt *c, sd_params *p)
{
    static const char *const ours[5] = {"conv1", "conv2", "conv3", "conv4", "classifier"};
    for (int i = 0; i < 5; i++)
        for (int b = 0; b < 2; b++) {
            char mine[64], theirs[64];
            snprintf(mine, sizeof mine, "%s.%s", ours[i], b ? "bias" : "weight");
            snprintf(theirs, sizeof theirs, "%d.%s", 2 * i, b ? "bias" : "weight");
            sd_tensor *x = sd_params_find(p, mine);
            float *h = x ? malloc(x->numel * sizeof *h) : NULL;
            if (!h)
                return sd_fail(SD_ERR_NOMEM, "%s: out of memory reading '%s'", c->st.path, theirs);
            sd_status st = sd_ckpt_read_tensor(c, theirs, x->numel, h);
            if (!st)
                st = sd_tensor_from_host(x, h);
            free(h);
            if (st)
                return st;
        }
    return SD_OK;
}

sd_status sd_adversary_load(sd_trainer *tr, sd_adversary *a, const char *key)
{
    const char *path = sd_config_str(tr->cfg, key);
    if (!*path)
        return SD_OK;
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return sd_fail_prefix(st, "%s", sd_config_origin(tr->cfg, key));
    sd_ckpt_report rep;
    if (sd_st_find(&c.st, "conv1.weight") < 0 && sd_st_find(&c.st, "0.weight") >= 0)
        st = load_sequential(&c, sd_disc_params(a->d));
    else
        st = sd_ckpt_load_params(&c, "", sd_disc_params(a->d), true, &rep);
    sd_ckpt_close(&c);
    if (st)
        return sd_fail_prefix(st, "%s: %s (expected FCDiscriminator tensors conv1..conv4, classifier)",
                              sd_config_origin(tr->cfg, key), path);
    return SD_OK;
}

sd_status sd_adversary_weight(sd_trainer *tr, const char *key, const char *published, float *out)
{
    const char *v = sd_config_str(tr->cfg, key);
    char origin[300];
    if (!strcmp(v, "auto")) {
        snprintf(origin, sizeof origin, "method %s (published)", tr->method->name);
        if (sd_config_set(tr->cfg, key, published, origin, true))
            return SD_ERR_NOMEM;
        v = published;
    }
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !isfinite(d) || d < 0)
        return sd_fail(SD_ERR_ARG, "%s: %s = '%s': expected auto or a number >= 0", sd_config_origin(tr->cfg, key),
                       key, v);
    *out = (float)d;
    return SD_OK;
}

void sd_adversary_free(sd_adversary *a)
{
    if (a->d)
        sd_disc_free(a->d);
    a->d = NULL;
}

void sd_adversary_freeze(sd_adversary *a, bool frozen)
{
    sd_params *p = sd_disc_params(a->d);
    for (int g = 0; g < p->n_groups; g++)
        if (!p->groups[g].is_buffer)
            sd_params_set_frozen(p, g, frozen);
}

sd_tensor *sd_adversary_loss(sd_trainer *tr, sd_adversary *a, sd_tensor *x, float label)
{
    sd_tensor *out = sd_disc_forward(a->d, &tr->tape, x);
    if (!out)
        return NULL;
    return a->least_squares ? sd_mse_const(&tr->tape, out, label) : sd_bce_logits_const(&tr->tape, out, label);
}
