/* SGD with momentum and Adam over the flat per-group buffers of an sd_params
 * set, with torch.optim 1.13 semantics (see optim.h). Not here: schedules
 * (schedule.c), the training loop. */
#include "segda/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "segda/core.h"

const char *sd_optim_kind_name(sd_optim_kind k)
{
    switch (k) {
    case SD_OPTIM_SGD: return "sgd";
    case SD_OPTIM_ADAM: return "adam";
    default: return "?";
    }
}

int sd_optim_kind_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "sgd"))
        return SD_OPTIM_SGD;
    if (!strcmp(s, "adam"))
        return SD_OPTIM_ADAM;
    return -1;
}

sd_optim_opts sd_optim_opts_sgd(float momentum, float weight_decay)
{
    sd_optim_opts o = {0};
    o.kind = SD_OPTIM_SGD;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    return o;
}

sd_optim_opts sd_optim_opts_adam(float beta1, float beta2)
{
    sd_optim_opts o = {0};
    o.kind = SD_OPTIM_ADAM;
    o.beta1 = beta1;
    o.beta2 = beta2;
    o.eps = 1e-8f;
    return o;
}

static int slots_of(const sd_optim_opts *o)
{
    if (o->kind == SD_OPTIM_ADAM)
        return 2;
    return o->momentum != 0.0f ? 1 : 0;
}

static const char *slot_name(sd_optim_kind k, int s)
{
    if (k == SD_OPTIM_ADAM)
        return s == 0 ? "exp_avg" : "exp_avg_sq";
    return "momentum";
}

sd_status sd_optim_init(sd_optim *opt, sd_params *params, const sd_optim_opts *o)
{
    memset(opt, 0, sizeof *opt);
    if (!params || !params->allocated)
        return sd_fail(SD_ERR_ARG, "optim: parameters not allocated");
    if (params->n_groups > SD_OPTIM_MAX_GROUPS)
        return sd_fail(SD_ERR_ARG, "optim: %d parameter groups, at most %d", params->n_groups,
                       SD_OPTIM_MAX_GROUPS);
    if (o->kind < 0 || o->kind >= SD_OPTIM_KIND_COUNT)
        return sd_fail(SD_ERR_ARG, "optim: unknown kind %d", (int)o->kind);
    if (!(o->momentum >= 0.0f && o->momentum < 1.0f))
        return sd_fail(SD_ERR_ARG, "optim: momentum %g, expected [0, 1)", o->momentum);
    if (!(o->weight_decay >= 0.0f))
        return sd_fail(SD_ERR_ARG, "optim: weight decay %g, expected >= 0", o->weight_decay);
    if (o->kind == SD_OPTIM_ADAM &&
        !(o->beta1 >= 0.0f && o->beta1 < 1.0f && o->beta2 >= 0.0f && o->beta2 < 1.0f && o->eps > 0.0f))
        return sd_fail(SD_ERR_ARG, "optim: adam betas (%g, %g) eps %g, expected betas in [0, 1) and eps > 0",
                       o->beta1, o->beta2, o->eps);
    opt->o = *o;
    opt->params = params;
    opt->state_device = params->device;
    int slots = slots_of(o);
    for (int g = 0; g < params->n_groups; g++) {
        const sd_param_group *gr = &params->groups[g];
        if (gr->is_buffer)
            continue;
        for (int s = 0; s < slots; s++) {
            /* on the parameters' device, zeroed */
            const sd_backend *be = sd_backend_for(params->device);
            size_t bytes = (gr->numel ? gr->numel : 1) * sizeof(float);
            opt->state[g][s] = be ? be->buffer_alloc(bytes) : NULL;
            if (opt->state[g][s])
                be->buffer_zero(opt->state[g][s], bytes);
            if (!opt->state[g][s]) {
                sd_optim_free(opt);
                return sd_fail(SD_ERR_NOMEM, "optim: out of memory for state of group '%s' (%zu floats)",
                               gr->name, gr->numel);
            }
        }
    }
    return SD_OK;
}

void sd_optim_free(sd_optim *opt)
{
    const sd_backend *be = opt->params ? sd_backend_for(opt->state_device) : NULL;
    for (int g = 0; g < SD_OPTIM_MAX_GROUPS; g++)
        for (int s = 0; s < 2; s++)
            if (opt->state[g][s])
                be->buffer_free(opt->state[g][s]);
    memset(opt, 0, sizeof *opt);
}

void sd_optim_reset(sd_optim *opt)
{
    if (!opt->params)
        return;
    for (int g = 0; g < opt->params->n_groups; g++) {
        for (int s = 0; s < 2; s++)
            if (opt->state[g][s])
                sd_backend_for(opt->state_device)->buffer_zero(opt->state[g][s],
                                                               opt->params->groups[g].numel * sizeof(float));
        opt->steps[g] = 0;
    }
}

sd_status sd_optim_step(sd_optim *opt, float lr)
{
    sd_params *p = opt->params;
    if (!p)
        return sd_fail(SD_ERR_ARG, "optim: step on an uninitialised optimiser");
    if (!isfinite(lr) || lr < 0.0f)
        return sd_fail(SD_ERR_NUMERIC, "optim: learning rate %g, expected finite and >= 0", lr);
    const sd_backend *be = sd_backend_for(p->device);
    for (int g = 0; g < p->n_groups; g++) {
        sd_param_group *gr = &p->groups[g];
        if (gr->is_buffer || gr->frozen || !gr->grad || gr->numel == 0)
            continue;
        float glr = lr * gr->lr_mult;
        float wd = opt->o.weight_decay * gr->wd_mult;
        opt->steps[g]++;
        if (opt->o.kind == SD_OPTIM_SGD) {
            be->sgd_step(gr->numel, glr, wd, opt->o.momentum, gr->data, gr->grad, opt->state[g][0]);
        } else {
            /* scalars in double as PyTorch's Python code computes them, used as f32 */
            double t = (double)opt->steps[g];
            double bc1 = 1.0 - pow((double)opt->o.beta1, t), bc2 = 1.0 - pow((double)opt->o.beta2, t);
            be->adam_step(gr->numel, (float)((double)lr * (double)gr->lr_mult / bc1), (float)sqrt(bc2), wd,
                          opt->o.beta1, opt->o.beta2, opt->o.eps, gr->data, gr->grad, opt->state[g][0],
                          opt->state[g][1]);
        }
    }
    return SD_OK;
}

int sd_optim_state_count(const sd_optim *opt)
{
    int n = 0;
    if (!opt->params)
        return 0;
    for (int g = 0; g < opt->params->n_groups; g++)
        for (int s = 0; s < 2; s++)
            n += opt->state[g][s] != NULL;
    return n;
}

sd_status sd_optim_state_at(sd_optim *opt, int i, const char *prefix, char *name, size_t cap,
                            float **data, size_t *numel)
{
    int k = 0;
    if (opt->params)
        for (int g = 0; g < opt->params->n_groups; g++)
            for (int s = 0; s < 2; s++) {
                if (!opt->state[g][s])
                    continue;
                if (k++ != i)
                    continue;
                snprintf(name, cap, "%s%s.%s", prefix ? prefix : "", opt->params->groups[g].name,
                         slot_name(opt->o.kind, s));
                *data = opt->state[g][s];
                *numel = opt->params->groups[g].numel;
                return SD_OK;
            }
    return sd_fail(SD_ERR_ARG, "optim: state index %d out of range (%d buffers)", i, k);
}
