/* The adversarial pieces several methods share: a discriminator or domain
 * classifier registered with the run (Adam, its own poly schedule, saved
 * for resume), freezing it for the generator's step, and the GAN loss
 * against a constant domain label. The recipes themselves are in the
 * method files. */
#include <stdlib.h>
#include <string.h>

#include "da/train_internal.h"
#include "segda/ops.h"

sd_status sd_adversary_init(sd_trainer *tr, sd_adversary *a, sd_disc_kind kind, int in_ch, int width,
                            const char *prefix, bool least_squares)
{
    memset(a, 0, sizeof *a);
    a->least_squares = least_squares;
    char name[40];
    snprintf(name, sizeof name, "%.*s", (int)strlen(prefix) - 1, prefix);   /* "disc:" -> "disc" */
    sd_status st = sd_disc_create(kind, in_ch, width, name, &a->d);
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
