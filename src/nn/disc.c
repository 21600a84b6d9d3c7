/* Adaptation modules: AdaptSegNet's output-space discriminator and the
 * pixel-level domain classifier (1x1 convs) of FCNs-in-the-wild and ROAD.
 * Each owns its parameter set, one group "disc"; losses are the method's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

struct sd_disc {
    sd_disc_kind kind;
    sd_params params;
    nn_builder b;
    int n;
    nn_conv conv[5];
};

sd_status sd_disc_create(sd_disc_kind kind, int in_ch, int width, const char *prefix, sd_disc **out)
{
    *out = NULL;
    if ((unsigned)kind >= SD_DISC_COUNT || in_ch < 1 || width < 1)
        return sd_fail(SD_ERR_ARG, "discriminator: kind %d, %d input channels, width %d: expected a known kind "
                       "and positive sizes", (int)kind, in_ch, width);
    sd_disc *d = calloc(1, sizeof *d);
    if (!d)
        return sd_fail(SD_ERR_NOMEM, "discriminator: out of memory");
    d->kind = kind;
    sd_params_init(&d->params);
    int g = sd_params_add_group(&d->params, "disc", 1, 1, false);
    d->b = (nn_builder){.p = &d->params, .g_backbone = g, .g_classifier = g, .g_norm = g, .g_buffer = g};
    const char *pre = prefix ? prefix : "";
    char nm[128];
    if (kind == SD_DISC_OUTPUT) {
        int ch[6] = {in_ch, width, 2 * width, 4 * width, 8 * width, 1};
        d->n = 5;
        for (int i = 0; i < 5; i++) {
            if (i < 4)
                snprintf(nm, sizeof nm, "%sconv%d", pre, i + 1);
            else
                snprintf(nm, sizeof nm, "%sclassifier", pre);
            nn_conv_decl(&d->b, &d->conv[i], g, nm, ch[i], ch[i + 1], 4, 2, 1, 1, true);
        }
    } else {
        int ch[4] = {in_ch, width, width, 1};
        d->n = 3;
        for (int i = 0; i < 3; i++) {
            if (i < 2)
                snprintf(nm, sizeof nm, "%sconv%d", pre, i + 1);
            else
                snprintf(nm, sizeof nm, "%sclassifier", pre);
            nn_conv_decl(&d->b, &d->conv[i], g, nm, ch[i], ch[i + 1], 1, 1, 0, 1, true);
        }
    }
    sd_status st = d->b.st ? d->b.st : sd_params_alloc(&d->params);
    if (st) {
        sd_disc_free(d);
        return st;
    }
    sd_disc_init_weights(d, 0);
    *out = d;
    return SD_OK;
}

void sd_disc_free(sd_disc *d)
{
    if (!d)
        return;
    sd_params_free(&d->params);
    free(d);
}

void sd_disc_init_weights(sd_disc *d, uint64_t seed)
{
    /* PyTorch's default conv initialisation, which AdaptSegNet keeps. */
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (int i = 0; i < d->n; i++)
        nn_init_uniform_fanin(d->conv[i].w, d->conv[i].b, &r);
}

sd_tensor *sd_disc_forward(sd_disc *d, sd_tape *t, sd_tensor *x)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || x->shape[1] != d->conv[0].cin)
        return sd_tape_fail(t, SD_ERR_SHAPE, "discriminator: input %s, expected [N, %d, H, W]", sd_shape_str(x),
                            d->conv[0].cin);
    nn_ctx c = {.t = t, .training = true, .count = false};
    for (int i = 0; i < d->n; i++) {
        sd_act act = i + 1 == d->n ? SD_ACT_NONE : d->kind == SD_DISC_OUTPUT ? SD_ACT_LEAKY_RELU : SD_ACT_RELU;
        x = nn_conv_post(&c, &d->conv[i], NULL, false, x, NULL, act, 0.2f);
    }
    return x;
}

sd_params *sd_disc_params(sd_disc *d) { return &d->params; }
