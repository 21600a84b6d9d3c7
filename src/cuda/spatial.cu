/* CUDA kernels for pooling (max with argmax, avg, adaptive avg), batch and
 * instance normalisation, bilinear/nearest resize, pad and flip, forward and
 * backward. Backward passes gather (one thread per input element, adding its
 * contributions in the CPU's order) instead of scattering with atomics, so
 * results are deterministic. Resize and pad index tables are built on the
 * host with the CPU's arithmetic (src/cpu/resize_cpu.c) and copied over. */
#include <math.h>
#include <stdlib.h>

#include "cuda/kernels.cuh"
#define SD_ROI_FN __device__ static inline
#include "core/roi_math.h"

/* ---- pooling ---- */

__global__ static void k_max_pool_fwd(sd_pool_geom g, size_t n, const float *x, float *y, int32_t *argmax)
{
    SD_GRID_LOOP(k, n)
    {
        int ox = (int)(k % (size_t)g.ow), oy = (int)(k / (size_t)g.ow % (size_t)g.oh);
        size_t p = k / ((size_t)g.ow * g.oh);
        const float *xp = x + p * (size_t)g.h * g.w;
        int hs = oy * g.sh - g.ph, he = hs + g.kh < g.h ? hs + g.kh : g.h;
        int ws = ox * g.sw - g.pw, we = ws + g.kw < g.w ? ws + g.kw : g.w;
        if (hs < 0)
            hs = 0;
        if (ws < 0)
            ws = 0;
        int best = hs * g.w + ws;
        float m = -INFINITY;
        for (int iy = hs; iy < he; iy++)
            for (int ix = ws; ix < we; ix++) {
                float v = xp[iy * g.w + ix];
                if (v > m || isnan(v)) { /* PyTorch's rule: a NaN wins and stays */
                    m = v;
                    best = iy * g.w + ix;
                }
            }
        y[k] = m;
        argmax[k] = best;
    }
}

/* Output rows whose window [o*s - p, o*s - p + k) can hold input row i,
 * a superset; callers test each candidate exactly. */
__device__ static void window_candidates(int i, int k, int s, int p, int out, int *lo, int *hi)
{
    int a = i + p - k;
    *lo = a >= 0 ? a / s + 1 : 0;
    *hi = (i + p) / s;
    if (*hi > out - 1)
        *hi = out - 1;
}

/* dx[i] gets dy of every output whose argmax is i, in output order (the
 * CPU's order of += on that element) */
__global__ static void k_max_pool_bwd(sd_pool_geom g, size_t n, const float *dy, const int32_t *argmax, float *dx)
{
    SD_GRID_LOOP(k, n)
    {
        int ix = (int)(k % (size_t)g.w), iy = (int)(k / (size_t)g.w % (size_t)g.h);
        size_t p = k / ((size_t)g.w * g.h), op = (size_t)g.oh * g.ow;
        int y0, y1, x0, x1;
        window_candidates(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
        window_candidates(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
        int target = iy * g.w + ix;
        float v = dx[k];
        for (int oy = y0; oy <= y1; oy++)
            for (int ox = x0; ox <= x1; ox++) {
                size_t o = p * op + (size_t)oy * g.ow + ox;
                if (argmax[o] == target)
                    v += dy[o];
            }
        dx[k] = v;
    }
}

/* PyTorch's avg window (as the CPU's avg_window) */
__device__ static void avg_window(const sd_pool_geom &g, int oy, int ox, int *hs, int *he, int *ws, int *we, float *div)
{
    int a = oy * g.sh - g.ph, b = a + g.kh < g.h + g.ph ? a + g.kh : g.h + g.ph;
    int c = ox * g.sw - g.pw, d = c + g.kw < g.w + g.pw ? c + g.kw : g.w + g.pw;
    int pool = (b - a) * (d - c);
    if (a < 0)
        a = 0;
    if (c < 0)
        c = 0;
    if (b > g.h)
        b = g.h;
    if (d > g.w)
        d = g.w;
    *hs = a, *he = b, *ws = c, *we = d;
    *div = (float)(g.count_include_pad ? pool : (b - a) * (d - c));
}

__global__ static void k_avg_pool_fwd(sd_pool_geom g, size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(k, n)
    {
        int ox = (int)(k % (size_t)g.ow), oy = (int)(k / (size_t)g.ow % (size_t)g.oh);
        const float *xp = x + k / ((size_t)g.ow * g.oh) * (size_t)g.h * g.w;
        int hs, he, ws, we;
        float div;
        avg_window(g, oy, ox, &hs, &he, &ws, &we, &div);
        float s = 0;
        for (int iy = hs; iy < he; iy++)
            for (int ix = ws; ix < we; ix++)
                s += xp[iy * g.w + ix];
        y[k] = (hs < he && ws < we) ? s / div : 0.0f;
    }
}

__global__ static void k_avg_pool_bwd(sd_pool_geom g, size_t n, const float *dy, float *dx)
{
    SD_GRID_LOOP(k, n)
    {
        int ix = (int)(k % (size_t)g.w), iy = (int)(k / (size_t)g.w % (size_t)g.h);
        size_t p = k / ((size_t)g.w * g.h), op = (size_t)g.oh * g.ow;
        int y0, y1, x0, x1;
        window_candidates(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
        window_candidates(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
        float v = dx[k];
        for (int oy = y0; oy <= y1; oy++)
            for (int ox = x0; ox <= x1; ox++) {
                int hs, he, ws, we;
                float div;
                avg_window(g, oy, ox, &hs, &he, &ws, &we, &div);
                if (iy >= hs && iy < he && ix >= ws && ix < we)
                    v += dy[p * op + (size_t)oy * g.ow + ox] / div;
            }
        dx[k] = v;
    }
}

/* start = floor(i*in/out), end = ceil((i+1)*in/out) */
__device__ static int ad_start(int i, int in, int out) { return (int)(((long long)i * in) / out); }
__device__ static int ad_end(int i, int in, int out) { return (int)(((long long)(i + 1) * in + out - 1) / out); }

__global__ static void k_adaptive_fwd(sd_pool_geom g, size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(k, n)
    {
        int ox = (int)(k % (size_t)g.ow), oy = (int)(k / (size_t)g.ow % (size_t)g.oh);
        const float *xp = x + k / ((size_t)g.ow * g.oh) * (size_t)g.h * g.w;
        int hs = ad_start(oy, g.h, g.oh), he = ad_end(oy, g.h, g.oh);
        int ws = ad_start(ox, g.w, g.ow), we = ad_end(ox, g.w, g.ow);
        float s = 0;
        for (int iy = hs; iy < he; iy++)
            for (int ix = ws; ix < we; ix++)
                s += xp[iy * g.w + ix];
        y[k] = s / (float)((he - hs) * (we - ws));
    }
}

/* outputs whose adaptive window can hold input index i (a superset) */
__device__ static void ad_candidates(int i, int in, int out, int *lo, int *hi)
{
    *lo = (int)((long long)i * out / in) - 1;
    *hi = (int)((long long)(i + 1) * out / in);
    if (*lo < 0)
        *lo = 0;
    if (*hi > out - 1)
        *hi = out - 1;
}

__global__ static void k_adaptive_bwd(sd_pool_geom g, size_t n, const float *dy, float *dx)
{
    SD_GRID_LOOP(k, n)
    {
        int ix = (int)(k % (size_t)g.w), iy = (int)(k / (size_t)g.w % (size_t)g.h);
        size_t p = k / ((size_t)g.w * g.h), op = (size_t)g.oh * g.ow;
        int y0, y1, x0, x1;
        ad_candidates(iy, g.h, g.oh, &y0, &y1);
        ad_candidates(ix, g.w, g.ow, &x0, &x1);
        float v = dx[k];
        for (int oy = y0; oy <= y1; oy++) {
            int hs = ad_start(oy, g.h, g.oh), he = ad_end(oy, g.h, g.oh);
            if (iy < hs || iy >= he)
                continue;
            for (int ox = x0; ox <= x1; ox++) {
                int ws = ad_start(ox, g.w, g.ow), we = ad_end(ox, g.w, g.ow);
                if (ix >= ws && ix < we)
                    v += dy[p * op + (size_t)oy * g.ow + ox] / (float)((he - hs) * (we - ws));
            }
        }
        dx[k] = v;
    }
}

/* ---- normalisation ---- */

__device__ static inline size_t chan_idx(const sd_norm_geom &g, int k, size_t j)
{
    size_t o = j / (size_t)g.inner, i = j % (size_t)g.inner;
    return ((size_t)o * g.ch + k) * g.inner + i;
}

/* a block's fixed-order tree sum of one double per thread */
__device__ static double block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = (int)blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* one block per channel: mean, then the variance around it (two passes, in
 * double, as the CPU) */
__global__ static void k_norm_stats(sd_norm_geom g, float eps, const float *x, float *mean, float *invstd,
                                    float *var_unbiased)
{
    __shared__ double sh[SD_THREADS];
    int k = blockIdx.x;
    size_t cnt = (size_t)g.outer * g.inner;
    double s = 0;
    for (size_t j = threadIdx.x; j < cnt; j += blockDim.x)
        s += x[chan_idx(g, k, j)];
    double m = block_sum(s, sh) / (double)cnt, v = 0;
    for (size_t j = threadIdx.x; j < cnt; j += blockDim.x) {
        double d = x[chan_idx(g, k, j)] - m;
        v += d * d;
    }
    v = block_sum(v, sh);
    if (threadIdx.x == 0) {
        mean[k] = (float)m;
        invstd[k] = (float)(1.0 / sqrt(v / (double)cnt + eps));
        if (var_unbiased)
            var_unbiased[k] = (float)(cnt > 1 ? v / (double)(cnt - 1) : NAN);
    }
}

__global__ static void k_norm_apply(sd_norm_geom g, size_t n, const float *x, const float *mean, const float *invstd,
                                    const float *weight, const float *bias, float *y)
{
    SD_GRID_LOOP(i, n)
    {
        int k = (int)(i / (size_t)g.inner % (size_t)g.ch), a = k % g.affine_ch;
        float sc = invstd[k] * (weight ? weight[a] : 1.0f);
        float sh = (bias ? bias[a] : 0.0f) - mean[k] * sc;
        y[i] = x[i] * sc + sh;
    }
}

/* sums[2k] = sum(dy), sums[2k+1] = sum(dy * (x - mean)) * invstd of channel k */
__global__ static void k_norm_sums(sd_norm_geom g, const float *x, const float *dy, const float *mean,
                                   const float *invstd, double *sums)
{
    __shared__ double sh[SD_THREADS];
    int k = blockIdx.x;
    size_t cnt = (size_t)g.outer * g.inner;
    float m = mean[k];
    double a = 0, b = 0;
    for (size_t j = threadIdx.x; j < cnt; j += blockDim.x) {
        size_t q = chan_idx(g, k, j);
        a += dy[q];
        b += (double)dy[q] * (x[q] - m);
    }
    a = block_sum(a, sh);
    b = block_sum(b, sh);
    if (threadIdx.x == 0) {
        sums[2 * k] = a;
        sums[2 * k + 1] = b * invstd[k];
    }
}

/* the affine grads of instance norm gather channels k = a, a + affine_ch, ...
 * in channel order, as the CPU's serial loop */
__global__ static void k_norm_affine(sd_norm_geom g, const double *sums, float *dweight, float *dbias)
{
    SD_GRID_LOOP(a, (size_t)g.affine_ch)
    {
        for (int k = (int)a; k < g.ch; k += g.affine_ch) {
            if (dbias)
                dbias[a] += (float)sums[2 * k];
            if (dweight)
                dweight[a] += (float)sums[2 * k + 1];
        }
    }
}

__global__ static void k_norm_dx(sd_norm_geom g, size_t n, const float *x, const float *mean, const float *invstd,
                                 const float *weight, const float *dy, bool batch_stats, const double *sums, float *dx)
{
    const double cnt = (double)g.outer * g.inner;
    SD_GRID_LOOP(i, n)
    {
        int k = (int)(i / (size_t)g.inner % (size_t)g.ch);
        float sc = invstd[k] * (weight ? weight[k % g.affine_ch] : 1.0f);
        if (batch_stats) {
            float mdy = (float)(sums[2 * k] / cnt), mdyx = (float)(sums[2 * k + 1] / cnt);
            dx[i] += sc * (dy[i] - mdy - (x[i] - mean[k]) * invstd[k] * mdyx);
        } else {
            dx[i] += sc * dy[i];
        }
    }
}

__global__ static void k_norm_running(int ch, float mom, const float *mean, const float *var, float *rmean, float *rvar)
{
    SD_GRID_LOOP(c, (size_t)ch)
    {
        if (rmean)
            rmean[c] = (1.0f - mom) * rmean[c] + mom * mean[c];
        if (rvar)
            rvar[c] = (1.0f - mom) * rvar[c] + mom * var[c];
    }
}

__global__ static void k_norm_running_stats(int ch, float eps, const float *rmean, const float *rvar, float *mean,
                                            float *invstd)
{
    SD_GRID_LOOP(c, (size_t)ch)
    {
        mean[c] = rmean[c];
        invstd[c] = 1.0f / sqrtf(rvar[c] + eps);
    }
}

/* ---- resize, pad, flip: separable index tables ---- */

/* One axis, out -> in: i0/i1 the two taps and l0/l1 their weights (nearest
 * and pad: i1 = -1; pad: i0 = -1 for a zero cell). The inverse, in -> the
 * (out, weight) pairs that read it, in CSR form ordered by out then tap:
 * start[in + 1] entries, eo/ew. */
struct axis_tab {
    int *i0, *i1;
    float *l0, *l1;
    int *start, *eo;
    float *ew;
};

struct axis_host {
    int in, out;
    int *i0, *i1, *start, *eo;
    float *l0, *l1, *ew;
    size_t n_ent;
};

/* the CPU's lin_axis, in the same float arithmetic */
static void lin_axis(axis_host *a, bool ac)
{
    int in = a->in, out = a->out;
    float scale = ac ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = ac ? scale * (float)d : scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0)
            src = 0;
        int i = (int)src;
        if (i > in - 1)
            i = in - 1;
        a->i0[d] = i;
        a->i1[d] = i + (i < in - 1 ? 1 : 0);
        a->l1[d] = src - (float)i;
        a->l0[d] = 1.0f - a->l1[d];
    }
}

/* the CPU's near_axis */
static void near_axis(axis_host *a)
{
    int in = a->in, out = a->out;
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        long s = out == in ? d : out == 2 * in ? d >> 1 : (long)floorf((float)d * scale);
        a->i0[d] = (int)(s < in - 1 ? s : in - 1);
        a->i1[d] = -1;
        a->l0[d] = 1.0f, a->l1[d] = 0.0f;
    }
}

/* the CPU's pad_src */
static void pad_axis(axis_host *a, int before, bool reflect)
{
    for (int o = 0; o < a->out; o++) {
        int i = o - before, n = a->in;
        int s = i >= 0 && i < n ? i : !reflect ? -1 : i < 0 ? -i : 2 * (n - 1) - i;
        a->i0[o] = s;
        a->i1[o] = -1;
        a->l0[o] = 1.0f, a->l1[o] = 0.0f;
    }
}

static void invert_axis(axis_host *a)
{
    for (int i = 0; i <= a->in; i++)
        a->start[i] = 0;
    for (int o = 0; o < a->out; o++) {
        if (a->i0[o] >= 0)
            a->start[a->i0[o] + 1]++;
        if (a->i1[o] >= 0)
            a->start[a->i1[o] + 1]++;
    }
    for (int i = 0; i < a->in; i++)
        a->start[i + 1] += a->start[i];
    int *fill = (int *)malloc(((size_t)a->in + 1) * sizeof(int));
    for (int i = 0; i <= a->in; i++)
        fill[i] = a->start[i];
    for (int o = 0; o < a->out; o++) {
        if (a->i0[o] >= 0) {
            int e = fill[a->i0[o]]++;
            a->eo[e] = o, a->ew[e] = a->l0[o];
        }
        if (a->i1[o] >= 0) {
            int e = fill[a->i1[o]]++;
            a->eo[e] = o, a->ew[e] = a->l1[o];
        }
    }
    a->n_ent = (size_t)a->start[a->in];
    free(fill);
}

enum { AX_LIN, AX_NEAR, AX_PAD };

/* Builds both axes' tables on the host and copies them to the device in one
 * block of scratch; false (message recorded) when memory runs out. */
static bool make_tables(int kind, int h, int w, int oh, int ow, bool ac, int top, int left, bool reflect,
                        axis_tab *ty, axis_tab *tx)
{
    int ins[2] = {h, w}, outs[2] = {oh, ow}, before[2] = {top, left};
    size_t words = 0;
    for (int a = 0; a < 2; a++)
        words += 4 * (size_t)outs[a] + (size_t)ins[a] + 1 + 2 * 2 * (size_t)outs[a];
    /* ints and floats are both 4 bytes: one array of words */
    uint32_t *host = (uint32_t *)calloc(words, 4);
    if (!host) {
        sd_fail(SD_ERR_NOMEM, "cuda: resize/pad tables: out of memory");
        return false;
    }
    axis_host ax[2];
    size_t off[2][7], at = 0;
    for (int a = 0; a < 2; a++) {
        axis_host *x = &ax[a];
        x->in = ins[a], x->out = outs[a];
        size_t o = (size_t)outs[a];
        size_t sizes[7] = {o, o, o, o, (size_t)ins[a] + 1, 2 * o, 2 * o};
        for (int f = 0; f < 7; f++) {
            off[a][f] = at;
            at += sizes[f];
        }
        x->i0 = (int *)(host + off[a][0]);
        x->i1 = (int *)(host + off[a][1]);
        x->l0 = (float *)(host + off[a][2]);
        x->l1 = (float *)(host + off[a][3]);
        x->start = (int *)(host + off[a][4]);
        x->eo = (int *)(host + off[a][5]);
        x->ew = (float *)(host + off[a][6]);
        if (kind == AX_LIN)
            lin_axis(x, ac);
        else if (kind == AX_NEAR)
            near_axis(x);
        else
            pad_axis(x, before[a], reflect);
        invert_axis(x);
    }
    uint32_t *dev = (uint32_t *)sd_cuda_scratch(SD_CUDA_SCR_TABLES, words * 4);
    bool ok = dev && sd_cuda_ok(cudaMemcpy(dev, host, words * 4, cudaMemcpyHostToDevice), "resize/pad tables");
    free(host);
    if (!ok)
        return false;
    axis_tab *t[2] = {ty, tx};
    for (int a = 0; a < 2; a++) {
        t[a]->i0 = (int *)(dev + off[a][0]);
        t[a]->i1 = (int *)(dev + off[a][1]);
        t[a]->l0 = (float *)(dev + off[a][2]);
        t[a]->l1 = (float *)(dev + off[a][3]);
        t[a]->start = (int *)(dev + off[a][4]);
        t[a]->eo = (int *)(dev + off[a][5]);
        t[a]->ew = (float *)(dev + off[a][6]);
    }
    return true;
}

__global__ static void k_bilinear_fwd(int h, int w, int oh, int ow, size_t n, axis_tab ty, axis_tab tx, const float *x,
                                      float *y)
{
    SD_GRID_LOOP(k, n)
    {
        int ox = (int)(k % (size_t)ow), oy = (int)(k / (size_t)ow % (size_t)oh);
        const float *xp = x + k / ((size_t)ow * oh) * (size_t)h * w;
        const float *r0 = xp + (size_t)ty.i0[oy] * w, *r1 = xp + (size_t)ty.i1[oy] * w;
        int x0 = tx.i0[ox], x1 = tx.i1[ox];
        y[k] = ty.l0[oy] * (tx.l0[ox] * r0[x0] + tx.l1[ox] * r0[x1]) +
               ty.l1[oy] * (tx.l0[ox] * r1[x0] + tx.l1[ox] * r1[x1]);
    }
}

/* nearest and pad: one source cell per output, or zero (i0 < 0) */
__global__ static void k_pick_fwd(int h, int w, int oh, int ow, size_t n, axis_tab ty, axis_tab tx, const float *x,
                                  float *y)
{
    SD_GRID_LOOP(k, n)
    {
        int ox = (int)(k % (size_t)ow), oy = (int)(k / (size_t)ow % (size_t)oh);
        size_t p = k / ((size_t)ow * oh);
        int sy = ty.i0[oy], sx = tx.i0[ox];
        y[k] = sy < 0 || sx < 0 ? 0.0f : x[p * (size_t)h * w + (size_t)sy * w + sx];
    }
}

/* dx[p, iy, ix] += sum over the (oy, wy) reading iy and (ox, wx) reading ix
 * of wy * wx * dy[p, oy, ox] */
__global__ static void k_gather_bwd(int h, int w, int oh, int ow, size_t n, axis_tab ty, axis_tab tx, const float *dy,
                                    float *dx)
{
    SD_GRID_LOOP(k, n)
    {
        int ix = (int)(k % (size_t)w), iy = (int)(k / (size_t)w % (size_t)h);
        const float *gp = dy + k / ((size_t)w * h) * (size_t)oh * ow;
        float v = dx[k];
        for (int ey = ty.start[iy]; ey < ty.start[iy + 1]; ey++)
            for (int ex = tx.start[ix]; ex < tx.start[ix + 1]; ex++)
                v += ty.ew[ey] * tx.ew[ex] * gp[(size_t)ty.eo[ey] * ow + tx.eo[ex]];
        dx[k] = v;
    }
}

__global__ static void k_flip_fwd(int w, size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(k, n)
    {
        size_t r = k / (size_t)w, j = k % (size_t)w;
        y[k] = x[r * w + (w - 1 - j)];
    }
}

__global__ static void k_flip_bwd(int w, size_t n, const float *dy, float *dx)
{
    SD_GRID_LOOP(k, n)
    {
        size_t r = k / (size_t)w, j = k % (size_t)w;
        dx[r * w + (w - 1 - j)] += dy[k];
    }
}

extern "C" {

/* argmax may be host memory (max_pool2d allocates it from the tape's host
 * arena): computed on the device and copied back */
void sd_cuda_max_pool_fwd(const sd_pool_geom *g, const float *x, float *y, int32_t *argmax)
{
    size_t n = (size_t)g->planes * g->oh * g->ow;
    bool on_dev = sd_cuda_is_device(argmax);
    int32_t *am = on_dev ? argmax : (int32_t *)sd_cuda_scratch(SD_CUDA_SCR_OUT, n * sizeof(int32_t));
    if (!am)
        return;
    SD_LAUNCH(k_max_pool_fwd, n, *g, n, x, y, am);
    if (!on_dev && n)
        sd_cuda_ok(cudaMemcpy(argmax, am, n * sizeof(int32_t), cudaMemcpyDeviceToHost), "argmax to host");
}

void sd_cuda_max_pool_bwd(const sd_pool_geom *g, const float *dy, const int32_t *argmax, float *dx)
{
    size_t n = (size_t)g->planes * g->h * g->w, no = (size_t)g->planes * g->oh * g->ow;
    const int32_t *am = (const int32_t *)sd_cuda_in(SD_CUDA_SCR_IN0, argmax, no * sizeof(int32_t));
    if (am)
        SD_LAUNCH(k_max_pool_bwd, n, *g, n, dy, am, dx);
}

void sd_cuda_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y)
{
    size_t n = (size_t)g->planes * g->oh * g->ow;
    SD_LAUNCH(k_avg_pool_fwd, n, *g, n, x, y);
}

void sd_cuda_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx)
{
    size_t n = (size_t)g->planes * g->h * g->w;
    SD_LAUNCH(k_avg_pool_bwd, n, *g, n, dy, dx);
}

void sd_cuda_adaptive_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y)
{
    size_t n = (size_t)g->planes * g->oh * g->ow;
    SD_LAUNCH(k_adaptive_fwd, n, *g, n, x, y);
}

void sd_cuda_adaptive_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx)
{
    size_t n = (size_t)g->planes * g->h * g->w;
    SD_LAUNCH(k_adaptive_bwd, n, *g, n, dy, dx);
}

void sd_cuda_norm_stats(const sd_norm_geom *g, const float *x, float eps, float *mean, float *invstd,
                        float *var_unbiased)
{
    if (g->ch <= 0)
        return;
    SD_CALL(k_norm_stats, g->ch, SD_THREADS, *g, eps, x, mean, invstd, var_unbiased);
    sd_cuda_ok(cudaGetLastError(), "k_norm_stats");
}

void sd_cuda_norm_apply(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                        const float *weight, const float *bias, float *y)
{
    size_t n = (size_t)g->outer * g->ch * g->inner;
    SD_LAUNCH(k_norm_apply, n, *g, n, x, mean, invstd, weight, bias, y);
}

void sd_cuda_norm_bwd(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                      const float *weight, const float *dy, bool batch_stats, float *dx, float *dweight, float *dbias)
{
    size_t n = (size_t)g->outer * g->ch * g->inner;
    bool need = dweight || dbias || (dx && batch_stats);
    double *sums = NULL;
    if (need && g->ch > 0) {
        sums = (double *)sd_cuda_scratch(SD_CUDA_SCR_SUMS, 2 * (size_t)g->ch * sizeof(double));
        if (!sums)
            return;
        SD_CALL(k_norm_sums, g->ch, SD_THREADS, *g, x, dy, mean, invstd, sums);
        sd_cuda_ok(cudaGetLastError(), "k_norm_sums");
    }
    if ((dweight || dbias) && sums)
        SD_LAUNCH(k_norm_affine, (size_t)g->affine_ch, *g, sums, dweight, dbias);
    if (dx)
        SD_LAUNCH(k_norm_dx, n, *g, n, x, mean, invstd, weight, dy, batch_stats, sums, dx);
}

void sd_cuda_norm_update_running(int ch, float momentum, const float *mean, const float *var, float *rmean, float *rvar)
{
    SD_LAUNCH(k_norm_running, (size_t)ch, ch, momentum, mean, var, rmean, rvar);
}

void sd_cuda_norm_running_stats(int ch, float eps, const float *rmean, const float *rvar, float *mean, float *invstd)
{
    SD_LAUNCH(k_norm_running_stats, (size_t)ch, ch, eps, rmean, rvar, mean, invstd);
}

void sd_cuda_resize_bilinear_fwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *x,
                                 float *y)
{
    axis_tab ty, tx;
    size_t n = (size_t)planes * oh * ow;
    if (n && make_tables(AX_LIN, h, w, oh, ow, align_corners, 0, 0, false, &ty, &tx))
        SD_LAUNCH(k_bilinear_fwd, n, h, w, oh, ow, n, ty, tx, x, y);
}

void sd_cuda_resize_bilinear_bwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *dy,
                                 float *dx)
{
    axis_tab ty, tx;
    size_t n = (size_t)planes * h * w;
    if (n && make_tables(AX_LIN, h, w, oh, ow, align_corners, 0, 0, false, &ty, &tx))
        SD_LAUNCH(k_gather_bwd, n, h, w, oh, ow, n, ty, tx, dy, dx);
}

void sd_cuda_resize_nearest_fwd(int planes, int h, int w, int oh, int ow, const float *x, float *y)
{
    axis_tab ty, tx;
    size_t n = (size_t)planes * oh * ow;
    if (n && make_tables(AX_NEAR, h, w, oh, ow, false, 0, 0, false, &ty, &tx))
        SD_LAUNCH(k_pick_fwd, n, h, w, oh, ow, n, ty, tx, x, y);
}

void sd_cuda_resize_nearest_bwd(int planes, int h, int w, int oh, int ow, const float *dy, float *dx)
{
    axis_tab ty, tx;
    size_t n = (size_t)planes * h * w;
    if (n && make_tables(AX_NEAR, h, w, oh, ow, false, 0, 0, false, &ty, &tx))
        SD_LAUNCH(k_gather_bwd, n, h, w, oh, ow, n, ty, tx, dy, dx);
}

void sd_cuda_pad2d_fwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                       const float *x, float *y)
{
    axis_tab ty, tx;
    int oh = h + top + bottom, ow = w + left + right;
    size_t n = (size_t)planes * oh * ow;
    if (n && make_tables(AX_PAD, h, w, oh, ow, false, top, left, reflect, &ty, &tx))
        SD_LAUNCH(k_pick_fwd, n, h, w, oh, ow, n, ty, tx, x, y);
}

void sd_cuda_pad2d_bwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                       const float *dy, float *dx)
{
    axis_tab ty, tx;
    int oh = h + top + bottom, ow = w + left + right;
    size_t n = (size_t)planes * h * w;
    if (n && make_tables(AX_PAD, h, w, oh, ow, false, top, left, reflect, &ty, &tx))
        SD_LAUNCH(k_gather_bwd, n, h, w, oh, ow, n, ty, tx, dy, dx);
}

void sd_cuda_flip_w_fwd(int planes, int h, int w, const float *x, float *y)
{
    size_t n = (size_t)planes * h * w;
    SD_LAUNCH(k_flip_fwd, n, w, n, x, y);
}

void sd_cuda_flip_w_bwd(int planes, int h, int w, const float *dy, float *dx)
{
    size_t n = (size_t)planes * h * w;
    SD_LAUNCH(k_flip_bwd, n, w, n, dy, dx);
}

} /* extern "C" */

/* ---- RoIAlign: core/roi_math.h's arithmetic, as the CPU's; the backward is
 * one thread per channel walking the rois in order, as the CPU's ---- */

__global__ static void k_roi_fwd(sd_roi_geom g, size_t n, const float *x, const float *rois, float *y)
{
    SD_GRID_LOOP(e, n)
    {
        int pw = (int)(e % (size_t)g.ow), ph = (int)(e / (size_t)g.ow % (size_t)g.oh);
        size_t kc = e / ((size_t)g.ow * g.oh);
        int k = (int)(kc / (size_t)g.c), c = (int)(kc % (size_t)g.c);
        roi_frame f = roi_frame_of(&g, rois + 5 * (size_t)k);
        const float *xp = x + ((size_t)f.b * g.c + c) * (size_t)g.h * g.w;
        float acc = 0;
        ROI_BIN_SAMPLES(&g, f, ph, pw, {
            acc += wt[0] * xp[idx[0]] + wt[1] * xp[idx[1]] + wt[2] * xp[idx[2]] + wt[3] * xp[idx[3]];
        })
        y[e] = acc / f.count;
    }
}

__global__ static void k_roi_bwd(sd_roi_geom g, size_t n, const float *rois, const float *dy, float *dx)
{
    SD_GRID_LOOP(c, n)
    {
        for (int k = 0; k < g.k; k++) {
            roi_frame f = roi_frame_of(&g, rois + 5 * (size_t)k);
            float *dp = dx + ((size_t)f.b * g.c + c) * (size_t)g.h * g.w;
            const float *gp = dy + ((size_t)k * g.c + c) * (size_t)g.oh * g.ow;
            for (int ph = 0; ph < g.oh; ph++)
                for (int pw = 0; pw < g.ow; pw++) {
                    float gv = gp[ph * g.ow + pw] / f.count;
                    ROI_BIN_SAMPLES(&g, f, ph, pw, {
                        for (int q = 0; q < 4; q++)
                            dp[idx[q]] += gv * wt[q];
                    })
                }
        }
    }
}

void sd_cuda_roi_align_fwd(const sd_roi_geom *g, const float *x, const float *rois, float *y)
{
    size_t n = (size_t)g->k * g->c * g->oh * g->ow;
    SD_LAUNCH(k_roi_fwd, n, *g, n, x, rois, y);
}

void sd_cuda_roi_align_bwd(const sd_roi_geom *g, const float *rois, const float *dy, float *dx)
{
    size_t n = (size_t)g->c;
    SD_LAUNCH(k_roi_bwd, n, *g, n, rois, dy, dx);
}
