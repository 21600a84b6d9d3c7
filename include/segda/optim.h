/* Optimisers (SGD with momentum, Adam) and learning-rate schedules (poly
 * decay with linear warm-up). An optimiser acts on one sd_params set, group
 * by group, with the group's lr_mult / wd_mult; its state lives in flat
 * buffers parallel to the groups' data buffers, so a checkpoint writes it in
 * one go. Not here: the training loop (train.h), gradient computation.
 *
 * Semantics follow torch.optim (1.13) exactly, so recipes port unchanged:
 *   SGD:  g' = g + wd*w;  buf = m*buf + g';  w -= lr*buf          (dampening 0,
 *         nesterov off; the first step gives buf = g' as PyTorch's clone does)
 *   Adam: g' = g + wd*w (L2 in the gradient, not AdamW);
 *         m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
 *         w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 * with lr = schedule lr * group.lr_mult and wd = weight_decay * group.wd_mult.
 * Frozen groups and buffer groups are skipped entirely (no state change, no
 * step count), as PyTorch skips parameters whose .grad is None. */
#ifndef SEGDA_OPTIM_H
#define SEGDA_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/tensor.h"

typedef enum sd_optim_kind { SD_OPTIM_SGD = 0, SD_OPTIM_ADAM, SD_OPTIM_KIND_COUNT } sd_optim_kind;
const char *sd_optim_kind_name(sd_optim_kind k);   /* "sgd", "adam" */
int sd_optim_kind_parse(const char *s);            /* -1 if unknown */

typedef struct sd_optim_opts {
    sd_optim_kind kind;
    float momentum;        /* SGD; 0 = plain SGD (no state kept) */
    float weight_decay;    /* both; multiplied by each group's wd_mult */
    float beta1, beta2;    /* Adam */
    float eps;             /* Adam */
} sd_optim_opts;
/* DeepLab's SGD: momentum 0.9, weight decay 5e-4. */
sd_optim_opts sd_optim_opts_sgd(float momentum, float weight_decay);
/* Adam with the given betas, eps 1e-8, no weight decay (AdaptSegNet's D:
 * betas 0.9, 0.99). */
sd_optim_opts sd_optim_opts_adam(float beta1, float beta2);

#define SD_OPTIM_MAX_GROUPS 8

typedef struct sd_optim {
    sd_optim_opts o;
    sd_params *params;                         /* not owned; must outlive the optimiser */
    /* Per group (same indices as params->groups). SGD uses state[g][0] as the
     * momentum buffer; Adam state[g][0] = exp_avg, state[g][1] = exp_avg_sq.
     * NULL where a group has none (buffers, plain SGD). [groups[g].numel]
     * on state_device (the parameters' device at init): host code copies. */
    float *state[SD_OPTIM_MAX_GROUPS][2];
    sd_device state_device;
    int64_t steps[SD_OPTIM_MAX_GROUPS];        /* updates applied to group g (Adam's t) */
} sd_optim;

/* params must be allocated (sd_params_alloc). State starts at zero. */
sd_status sd_optim_init(sd_optim *opt, sd_params *params, const sd_optim_opts *o);
void sd_optim_free(sd_optim *opt);
/* One update of every trainable group with base learning rate lr (the
 * schedule's value; each group multiplies it by its lr_mult). Gradients are
 * read, not cleared: call sd_params_zero_grad before the next backward. */
sd_status sd_optim_step(sd_optim *opt, float lr);
/* Zeroes state and step counts (e.g. a new self-training round). */
void sd_optim_reset(sd_optim *opt);

/* The state as named flat buffers, for checkpoints: i in [0, count).
 * Names are "<prefix><group>.<slot>" with slot "momentum", "exp_avg" or
 * "exp_avg_sq" (prefix e.g. "optim." or "optim_d."). The step counts go
 * with them via sd_optim_steps below. */
int sd_optim_state_count(const sd_optim *opt);
/* Writes the i-th buffer's name (into name[cap]), data pointer and length. */
sd_status sd_optim_state_at(sd_optim *opt, int i, const char *prefix, char *name, size_t cap,
                            float **data, size_t *numel);

/* ---- learning-rate schedules ---- */
typedef struct sd_lr_schedule {
    float base_lr;
    int64_t max_iters;     /* poly decays to 0 at max_iters */
    float power;           /* 0.9 in DeepLab; 0 = constant */
    int64_t warmup_iters;  /* 0 = none */
    float warmup_ratio;    /* lr factor at iteration 0 of the warm-up (e.g. 1e-6) */
    int64_t hold_iters;    /* 0 = none; else base lr until here, then the decay over the rest
                            * (CycleGAN's constant-then-linear with power 1) */
} sd_lr_schedule;
sd_lr_schedule sd_lr_poly(float base_lr, int64_t max_iters, float power);
/* lr at iteration it (0-based):
 *   base * (1 - it/max)^power (with hold_iters h: base before h, then
 *   base * (1 - (it-h)/(max-h))^power), times, during warm-up (it < warmup_iters),
 *   ratio + (1 - ratio) * it / warmup_iters (mmsegmentation's linear warm-up).
 * Iterations at or beyond max give 0. */
float sd_lr_at(const sd_lr_schedule *s, int64_t it);

#endif
