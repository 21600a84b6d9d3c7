/* CPU normalisation kernels shared by batch norm and instance norm:
 * per-channel statistics, the affine normalisation and its backward (with
 * or without the terms through batch statistics). Not here: running-stat
 * updates and mode choice (ops_norm.c). Backward kernels accumulate (+=).
 * Sums are taken in double, channel by channel in a fixed order. */
#include <math.h>
#include <stdlib.h>

#include "cpu/kernels.h"

static const float *chan(const sd_norm_geom *g, const float *x, int o, int k)
{
    return x + ((size_t)o * g->ch + k) * g->inner;
}

void sd_cpu_norm_stats(const sd_norm_geom *g, const float *x, float eps, float *mean, float *invstd,
                    float *var_unbiased)
{
    const double cnt = (double)g->outer * g->inner;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < g->ch; k++) {
        double s = 0;
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan(g, x, o, k);
            for (int i = 0; i < g->inner; i++)
                s += p[i];
        }
        double m = s / cnt, v = 0;
        for (int o = 0; o < g->outer; o++) {
            const float *p = chan(g, x, o, k);
            for (int i = 0; i < g->inner; i++) {
                double d = p[i] - m;
                v += d * d;
            }
        }
        mean[k] = (float)m;
        invstd[k] = (float)(1.0 / sqrt(v / cnt + eps));
        if (var_unbiased)
            var_unbiased[k] = (float)(cnt > 1 ? v / (cnt - 1) : NAN);
    }
}

void sd_cpu_norm_apply(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                    const float *weight, const float *bias, float *y)
{
#pragma omp parallel for schedule(static)
    for (int q = 0; q < g->outer * g->ch; q++) {
        int k = q % g->ch, a = k % g->affine_ch;
        float sc = invstd[k] * (weight ? weight[a] : 1.0f);
        float sh = (bias ? bias[a] : 0.0f) - mean[k] * sc;
        const float *p = x + (size_t)q * g->inner;
        float *r = y + (size_t)q * g->inner;
        for (int i = 0; i < g->inner; i++)
            r[i] = p[i] * sc + sh;
    }
}

/* sum(dy) and sum(dy * xhat) of channel k */
static void chan_sums(const sd_norm_geom *g, const float *x, const float *dy, float mean, float invstd, int k,
                      double *sdy, double *sdyx)
{
    double a = 0, b = 0;
    for (int o = 0; o < g->outer; o++) {
        const float *p = chan(g, x, o, k), *d = chan(g, dy, o, k);
        for (int i = 0; i < g->inner; i++) {
            a += d[i];
            b += (double)d[i] * (p[i] - mean);
        }
    }
    *sdy = a;
    *sdyx = b * invstd;
}

void sd_cpu_norm_bwd(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                  const float *weight, const float *dy, bool batch_stats, float *dx, float *dweight,
                  float *dbias)
{
    double *sums = malloc(2 * (size_t)g->ch * sizeof *sums);
    const double cnt = (double)g->outer * g->inner;
    if (sums) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < g->ch; k++)
            chan_sums(g, x, dy, mean[k], invstd[k], k, &sums[2 * k], &sums[2 * k + 1]);
    }
    /* The affine grads of instance norm gather several channels into one
     * entry: summed serially in channel order. */
    for (int k = 0; k < g->ch && (dweight || dbias); k++) {
        double a, b;
        if (sums)
            a = sums[2 * k], b = sums[2 * k + 1];
        else
            chan_sums(g, x, dy, mean[k], invstd[k], k, &a, &b);
        if (dbias)
            dbias[k % g->affine_ch] += (float)a;
        if (dweight)
            dweight[k % g->affine_ch] += (float)b;
    }
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < g->ch; k++) {
            double a = 0, b = 0;
            if (batch_stats) {
                if (sums)
                    a = sums[2 * k], b = sums[2 * k + 1];
                else
                    chan_sums(g, x, dy, mean[k], invstd[k], k, &a, &b);
            }
            float sc = invstd[k] * (weight ? weight[k % g->affine_ch] : 1.0f);
            float mdy = (float)(a / cnt), mdyx = (float)(b / cnt), m = mean[k], is = invstd[k];
            for (int o = 0; o < g->outer; o++) {
                const float *p = chan(g, x, o, k), *d = chan(g, dy, o, k);
                float *r = (float *)chan(g, dx, o, k);
                if (batch_stats)
                    for (int i = 0; i < g->inner; i++)
                        r[i] += sc * (d[i] - mdy - (p[i] - m) * is * mdyx);
                else
                    for (int i = 0; i < g->inner; i++)
                        r[i] += sc * d[i];
            }
        }
    }
    free(sums);
}

void sd_cpu_norm_update_running(int ch, float momentum, const float *mean, const float *var, float *rmean, float *rvar)
{
    for (int c = 0; c < ch; c++) {
        if (rmean)
            rmean[c] = (1.0f - momentum) * rmean[c] + momentum * mean[c];
        if (rvar)
            rvar[c] = (1.0f - momentum) * rvar[c] + momentum * var[c];
    }
}

void sd_cpu_norm_running_stats(int ch, float eps, const float *rmean, const float *rvar, float *mean, float *invstd)
{
    for (int c = 0; c < ch; c++) {
        mean[c] = rmean[c];
        invstd[c] = 1.0f / sqrtf(rvar[c] + eps);
    }
}
