/* AdaBN's statistics pass (sd_model_reestimate_bn): batch 0 replaces the
 * running statistics with that batch's, batch k joins a cumulative average
 * with weight 1/(k+1); the stem's statistics are the mean and unbiased
 * variance of its convolution's output computed here independently; frozen
 * BN is re-estimated too; dropout stays off (the pass is deterministic);
 * no weight changes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/model.h"
#include "segda/ops.h"
#include "segda/core.h"

enum { N = 2, H = 40, W = 48 };

static void fill(sd_tensor *x, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = sd_rng_normal(&r);
}

/* One statistics pass over the batch drawn from `seed`, as batch k. */
static void pass(sd_model *m, uint64_t seed, int64_t k)
{
    sd_tape t;
    CHECK_OK(sd_tape_init(&t, 1));
    sd_tensor *x = sd_tensor_new4(&t, N, 3, H, W);
    fill(x, seed);
    CHECK_OK(sd_model_reestimate_bn(m, &t, x, k));
    sd_tape_free(&t);
}

static float *copy_group(const sd_param_group *g)
{
    float *c = malloc(g->numel * sizeof *c);
    memcpy(c, g->data, g->numel * sizeof *c);
    return c;
}

void TEST_cumulative_batch_statistics(void);
void TEST_cumulative_batch_statistics(void)
{
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    o.bn = SD_BN_FROZEN;   /* frozen BN is re-estimated as well */
    sd_model *m = NULL;
    CHECK_OK(sd_model_create(&o, &m));
    if (!m)
        return;
    sd_model_init_weights(m, 3);
    sd_params *p = sd_model_params(m);
    int gb = sd_model_group(m, "bn");
    CHECK(gb >= 0);
    if (gb < 0)
        return;
    const sd_param_group *bn = &p->groups[gb];
    float *weights[8] = {0};
    for (int g = 0; g < p->n_groups; g++)
        weights[g] = g == gb ? NULL : copy_group(&p->groups[g]);

    pass(m, 11, 0);
    float *sa = copy_group(bn);
    pass(m, 11, 0);   /* deterministic: no dropout, nothing carried over */
    CHECK(!memcmp(sa, bn->data, bn->numel * sizeof(float)));
    pass(m, 22, 0);
    float *sb = copy_group(bn);
    pass(m, 11, 0);
    pass(m, 22, 1);
    double worst = 0;
    for (size_t i = 0; i < bn->numel; i++) {
        double want = 0.5 * ((double)sa[i] + sb[i]);
        double err = fabs(F32(bn->data)[i] - want) / (1e-3 + fabs(want));
        worst = err > worst ? err : worst;
    }
    CHECK_MSG(worst < 1e-5, "two batches: running stats off their mean by %g (relative)", worst);
    for (int g = 0; g < p->n_groups; g++)
        if (weights[g])
            CHECK_MSG(!memcmp(weights[g], p->groups[g].data, p->groups[g].numel * sizeof(float)),
                      "group %s changed", p->groups[g].name);

    /* the stem BN's statistics of batch 11, from its convolution directly */
    sd_tensor *w = p->tensors[0];
    char name[128];
    snprintf(name, sizeof name, "%s", w->name);
    char *dot = strstr(name, "conv1.weight");
    CHECK(w->ndim == 4 && dot != NULL);
    if (dot) {
        strcpy(dot, "bn1.running_mean");
        sd_tensor *rm = sd_params_find(p, name);
        strcpy(dot, "bn1.running_var");
        sd_tensor *rv = sd_params_find(p, name);
        CHECK(rm && rv);
        pass(m, 11, 0);
        sd_tape t;
        CHECK_OK(sd_tape_init(&t, 1));
        sd_tensor *x = sd_tensor_new4(&t, N, 3, H, W);
        fill(x, 11);
        sd_tensor *y = sd_conv2d(&t, x, w, NULL, sd_conv_opts_make(2, 3, 1));
        CHECK(y != NULL);
        int c = y ? y->shape[1] : 0;
        size_t hw = y ? (size_t)y->shape[2] * y->shape[3] : 0, cnt = N * hw;
        double worst_m = 0, worst_v = 0;
        for (int ch = 0; rm && rv && ch < c; ch++) {
            double s = 0, s2 = 0;
            for (int n = 0; n < N; n++)
                for (size_t i = 0; i < hw; i++) {
                    double v = F32(y->data)[((size_t)n * c + ch) * hw + i];
                    s += v;
                    s2 += v * v;
                }
            double mean = s / cnt, var = (s2 - cnt * mean * mean) / (cnt - 1);
            worst_m = fmax(worst_m, fabs(F32(rm->data)[ch] - mean) / (1e-3 + fabs(mean)));
            worst_v = fmax(worst_v, fabs(F32(rv->data)[ch] - var) / (1e-3 + var));
        }
        CHECK_MSG(worst_m < 1e-4 && worst_v < 1e-4, "stem BN: mean off by %g, variance by %g (relative)", worst_m,
                  worst_v);
        sd_tape_free(&t);
    }
    CHECK(sd_model_reestimate_bn(m, NULL, NULL, -1) == SD_ERR_ARG);
    for (int g = 0; g < p->n_groups; g++)
        free(weights[g]);
    free(sa);
    free(sb);
    sd_model_free(m);
}

int main(void)
{
    RUN(TEST_cumulative_batch_statistics);
    return check_total_failed_ ? 1 : 0;
}
