/* CPU pooling kernels: max pool (with argmax), avg pool, adaptive avg pool,
 * forward and backward; window rules follow PyTorch's CPU kernels. Not here:
 * output sizes and ceil mode (ops_pool.c). Backward kernels accumulate (+=).
 * Each OpenMP iteration owns one plane, so results never depend on timing. */
#include <math.h>

#include "cpu/kernels.h"

void sd_cpu_max_pool_fwd(const sd_pool_geom *g, const float *x, float *y, int32_t *argmax)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++) {
        const float *xp = x + p * ip;
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = oy * g->sh - g->ph, he = hs + g->kh < g->h ? hs + g->kh : g->h;
            if (hs < 0)
                hs = 0;
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ox * g->sw - g->pw, we = ws + g->kw < g->w ? ws + g->kw : g->w;
                if (ws < 0)
                    ws = 0;
                int best = hs * g->w + ws;
                float m = -INFINITY;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++) {
                        float v = xp[iy * g->w + ix];
                        /* PyTorch's rule: a NaN wins and stays */
                        if (v > m || isnan(v)) {
                            m = v;
                            best = iy * g->w + ix;
                        }
                    }
                y[p * op + (size_t)oy * g->ow + ox] = m;
                argmax[p * op + (size_t)oy * g->ow + ox] = best;
            }
        }
    }
}

void sd_cpu_max_pool_bwd(const sd_pool_geom *g, const float *dy, const int32_t *argmax, float *dx)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++)
        for (size_t k = 0; k < op; k++)
            dx[p * ip + argmax[p * op + k]] += dy[p * op + k];
}

/* PyTorch's avg window: the end may run into the padding but not past it;
 * the divisor counts padding cells only with count_include_pad. */
static void avg_window(const sd_pool_geom *g, int oy, int ox, int *hs, int *he, int *ws, int *we, float *div)
{
    int a = oy * g->sh - g->ph, b = a + g->kh < g->h + g->ph ? a + g->kh : g->h + g->ph;
    int c = ox * g->sw - g->pw, d = c + g->kw < g->w + g->pw ? c + g->kw : g->w + g->pw;
    int pool = (b - a) * (d - c);
    if (a < 0)
        a = 0;
    if (c < 0)
        c = 0;
    if (b > g->h)
        b = g->h;
    if (d > g->w)
        d = g->w;
    *hs = a, *he = b, *ws = c, *we = d;
    *div = (float)(g->count_include_pad ? pool : (b - a) * (d - c));
}

void sd_cpu_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++) {
        const float *xp = x + p * ip;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int hs, he, ws, we;
                float div;
                avg_window(g, oy, ox, &hs, &he, &ws, &we, &div);
                float s = 0;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++)
                        s += xp[iy * g->w + ix];
                y[p * op + (size_t)oy * g->ow + ox] = (hs < he && ws < we) ? s / div : 0.0f;
            }
    }
}

void sd_cpu_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++) {
        float *dp = dx + p * ip;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int hs, he, ws, we;
                float div;
                avg_window(g, oy, ox, &hs, &he, &ws, &we, &div);
                if (hs >= he || ws >= we)
                    continue;
                float v = dy[p * op + (size_t)oy * g->ow + ox] / div;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++)
                        dp[iy * g->w + ix] += v;
            }
    }
}

/* start = floor(i*in/out), end = ceil((i+1)*in/out) */
static int ad_start(int i, int in, int out) { return (int)(((long)i * in) / out); }
static int ad_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

void sd_cpu_adaptive_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++) {
        const float *xp = x + p * ip;
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = ad_start(oy, g->h, g->oh), he = ad_end(oy, g->h, g->oh);
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ad_start(ox, g->w, g->ow), we = ad_end(ox, g->w, g->ow);
                float s = 0;
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++)
                        s += xp[iy * g->w + ix];
                y[p * op + (size_t)oy * g->ow + ox] = s / (float)((he - hs) * (we - ws));
            }
        }
    }
}

void sd_cpu_adaptive_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx)
{
    const size_t ip = (size_t)g->h * g->w, op = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < g->planes; p++) {
        float *dp = dx + p * ip;
        for (int oy = 0; oy < g->oh; oy++) {
            int hs = ad_start(oy, g->h, g->oh), he = ad_end(oy, g->h, g->oh);
            for (int ox = 0; ox < g->ow; ox++) {
                int ws = ad_start(ox, g->w, g->ow), we = ad_end(ox, g->w, g->ow);
                float v = dy[p * op + (size_t)oy * g->ow + ox] / (float)((he - hs) * (we - ws));
                for (int iy = hs; iy < he; iy++)
                    for (int ix = ws; ix < we; ix++)
                        dp[iy * g->w + ix] += v;
            }
        }
    }
}
