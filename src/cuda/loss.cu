/* CUDA kernels for channel softmax / log-softmax and the losses
 * (cross-entropy with ignore and class/pixel weights, BCE-with-logits,
 * squared differences, entropy and self-information maps, L2 feature
 * distance). One thread per pixel loops over the channels in the CPU's order;
 * sums go through the fixed-order reduction of kernels.cuh. */
#include <math.h>

#include "cuda/kernels.cuh"

/* log-sum-exp over the c channels of the pixel at xb[s] (stride hw) */
__device__ static float lse_at(const float *xb, int c, size_t hw)
{
    float m = -INFINITY, sum = 0.0f;
    for (int ch = 0; ch < c; ch++)
        m = xb[ch * hw] > m ? xb[ch * hw] : m;
    for (int ch = 0; ch < c; ch++)
        sum += expf(xb[ch * hw] - m);
    return m + logf(sum);
}

/* pixel q of [n, hw] -> offset of its channel 0 in [n, c, hw] */
__device__ static inline size_t pix_off(size_t q, int c, size_t hw) { return q / hw * (size_t)c * hw + q % hw; }

__global__ static void k_softmax_fwd(bool log, int c, size_t hw, size_t npix, const float *x, float *y)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        const float *xb = x + o;
        float *yb = y + o;
        if (log) {
            float l = lse_at(xb, c, hw);
            for (int ch = 0; ch < c; ch++)
                yb[ch * hw] = xb[ch * hw] - l;
            continue;
        }
        float m = -INFINITY, sum = 0.0f;
        for (int ch = 0; ch < c; ch++)
            m = xb[ch * hw] > m ? xb[ch * hw] : m;
        for (int ch = 0; ch < c; ch++) {
            yb[ch * hw] = expf(xb[ch * hw] - m);
            sum += yb[ch * hw];
        }
        sum = 1.0f / sum;
        for (int ch = 0; ch < c; ch++)
            yb[ch * hw] *= sum;
    }
}

/* the CPU's formulation around the most probable class (see loss.c) */
__global__ static void k_softmax_bwd(bool log, int c, size_t hw, size_t npix, const float *y, const float *gy,
                                     float *gx)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        const float *yb = y + o, *gb = gy + o;
        float *xb = gx + o;
        float ym = -INFINITY, gm = 0.0f, acc = 0.0f, qs = 0.0f;
        int m = 0;
        for (int ch = 0; ch < c; ch++)
            if (yb[ch * hw] > ym) {
                ym = yb[ch * hw];
                m = ch;
                gm = gb[ch * hw];
            }
        for (int ch = 0; ch < c; ch++) {
            if (log) {
                if (ch != m) {
                    acc += gb[ch * hw];
                    qs += expf(yb[ch * hw]);
                }
            } else {
                acc += yb[ch * hw] * (gb[ch * hw] - gm);
            }
        }
        for (int ch = 0; ch < c; ch++) {
            float yv = yb[ch * hw], gv = gb[ch * hw];
            if (log) {
                float gsum = gm + acc;
                xb[ch * hw] += ch == m ? -acc + qs * gsum : gv - expf(yv) * gsum;
            } else {
                xb[ch * hw] += yv * ((gv - gm) - acc);
            }
        }
    }
}

/* ---- cross-entropy ---- */

struct f_ce {
    int c;
    size_t hw;
    const float *x, *cw, *pw;
    const uint8_t *labels;
    int ignore;
    float *lse;
    __device__ void operator()(size_t q, double *acc) const
    {
        size_t o = pix_off(q, c, hw);
        float l = lse_at(x + o, c, hw);
        lse[q] = l;
        int y = labels[q];
        if (y == ignore)
            return;
        double w = cw ? cw[y] : 1.0;
        double nll = (double)l - x[o + (size_t)y * hw];
        acc[0] += w * (pw ? pw[q] : 1.0f) * nll;
        acc[1] += w;
        acc[2] += 1.0;
    }
};

__global__ static void k_ce_bwd(int c, size_t hw, size_t n, const float *x, const uint8_t *labels, const float *cw,
                                const float *pw, int ignore, const float *lse, float scale, float *gx)
{
    SD_GRID_LOOP(i, n)
    {
        size_t s = i % hw, ch = i / hw % (size_t)c, q = i / ((size_t)c * hw) * hw + s;
        int y = labels[q];
        float w = y == ignore ? 0.0f : scale * (cw ? cw[y] : 1.0f) * (pw ? pw[q] : 1.0f);
        if (w == 0.0f)
            continue;
        float p = expf(x[i] - lse[q]);
        gx[i] += w * (p - (y == (int)ch ? 1.0f : 0.0f));
    }
}

/* ---- BCE-with-logits and squared differences ---- */

struct f_bce {
    const float *x, *t;
    float tc;
    __device__ void operator()(size_t i, double *acc) const
    {
        float v = x[i], tv = t ? t[i] : tc;
        acc[0] += (double)(v > 0.0f ? v : 0.0f) - (double)v * tv + log1pf(expf(-fabsf(v)));
    }
};

__global__ static void k_bce_bwd(size_t n, const float *x, const float *t, float tc, float scale, float *gx)
{
    SD_GRID_LOOP(i, n) gx[i] += scale * (sd_sigmoid(x[i]) - (t ? t[i] : tc));
}

struct f_sqdiff {
    const float *a, *b;
    float bc;
    __device__ void operator()(size_t i, double *acc) const
    {
        double d = (double)a[i] - (b ? b[i] : bc);
        acc[0] += d * d;
    }
};

__global__ static void k_sqdiff_bwd(size_t n, const float *a, const float *b, float bc, float scale, float *ga,
                                    float *gb)
{
    SD_GRID_LOOP(i, n)
    {
        float g = 2.0f * scale * (a[i] - (b ? b[i] : bc));
        if (ga)
            ga[i] += g;
        if (gb)
            gb[i] -= g;
    }
}

/* ---- entropy and self-information ---- */

/* writes logp of the pixel; returns its entropy -sum p log p */
__device__ static float logp_at(const float *xb, float *lb, int c, size_t hw)
{
    float l = lse_at(xb, c, hw), h = 0.0f;
    for (int ch = 0; ch < c; ch++) {
        float lp = xb[ch * hw] - l;
        lb[ch * hw] = lp;
        h -= expf(lp) * lp;
    }
    return h;
}

__global__ static void k_entropy_fwd(int c, size_t hw, size_t npix, const float *x, float inv_logc, float *logp,
                                     float *e)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        e[q] = logp_at(x + o, logp + o, c, hw) * inv_logc;
    }
}

/* dH/dx_k = -p_k (log p_k + H) */
__global__ static void k_entropy_bwd(int c, size_t hw, size_t npix, const float *logp, float inv_logc,
                                     const float *ge, float *gx)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        const float *lb = logp + o;
        float h = 0.0f;
        for (int ch = 0; ch < c; ch++)
            h -= expf(lb[ch * hw]) * lb[ch * hw];
        for (int ch = 0; ch < c; ch++) {
            float lp = lb[ch * hw];
            gx[o + ch * hw] -= ge[q] * inv_logc * expf(lp) * (lp + h);
        }
    }
}

__global__ static void k_selfinfo_fwd(int c, size_t hw, size_t npix, const float *x, float inv_logc, float *logp,
                                      float *si)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        logp_at(x + o, logp + o, c, hw);
        for (int ch = 0; ch < c; ch++) {
            float lp = logp[o + ch * hw];
            si[o + ch * hw] = -expf(lp) * lp * inv_logc;
        }
    }
}

/* d s_k / d x_j = -(log p_k + 1) p_k (delta_kj - p_j) / log C */
__global__ static void k_selfinfo_bwd(int c, size_t hw, size_t npix, const float *logp, float inv_logc,
                                      const float *gs, float *gx)
{
    SD_GRID_LOOP(q, npix)
    {
        size_t o = pix_off(q, c, hw);
        float dot = 0.0f;
        for (int ch = 0; ch < c; ch++) {
            size_t i = o + ch * hw;
            dot += gs[i] * expf(logp[i]) * (logp[i] + 1.0f);
        }
        for (int ch = 0; ch < c; ch++) {
            size_t i = o + ch * hw;
            float lp = logp[i];
            gx[i] -= inv_logc * expf(lp) * (gs[i] * (lp + 1.0f) - dot);
        }
    }
}

/* ---- L2 feature distance ---- */

struct f_l2 {
    int c;
    size_t hw;
    const float *a, *b;
    float *dist;
    __device__ void operator()(size_t q, double *acc) const
    {
        size_t o = pix_off(q, c, hw);
        double sq = 0.0;
        for (int ch = 0; ch < c; ch++) {
            double d = (double)a[o + ch * hw] - b[o + ch * hw];
            sq += d * d;
        }
        dist[q] = (float)sqrt(sq);
        acc[0] += sqrt(sq);
    }
};

__global__ static void k_l2_bwd(int c, size_t hw, size_t n, const float *a, const float *b, const float *dist,
                                float scale, float *ga, float *gb)
{
    SD_GRID_LOOP(i, n)
    {
        size_t q = i / ((size_t)c * hw) * hw + i % hw;
        float f = dist[q] > 0.0f ? scale / dist[q] : 0.0f;
        float g = f * (a[i] - b[i]);
        if (ga)
            ga[i] += g;
        if (gb)
            gb[i] -= g;
    }
}

extern "C" {

void sd_cuda_softmax_fwd(bool log, int n, int c, size_t hw, const float *x, float *y)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_softmax_fwd, npix, log, c, hw, npix, x, y);
}

void sd_cuda_softmax_bwd(bool log, int n, int c, size_t hw, const float *y, const float *dy, float *dx)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_softmax_bwd, npix, log, c, hw, npix, y, dy, dx);
}

/* labels, cw and pw come from host memory today (the op's caller and its
 * host arena): copied to device scratch here when they are not on the
 * device (sd_cuda_in) */
void sd_cuda_cross_entropy_fwd(int n, int c, size_t hw, const float *x, const uint8_t *labels, const float *cw,
                               const float *pw, int ignore, float *lse, double *num, double *wsum, double *count)
{
    size_t npix = (size_t)n * hw;
    double s[3] = {0, 0, 0};
    const uint8_t *dl = (const uint8_t *)sd_cuda_in(SD_CUDA_SCR_IN0, labels, npix ? npix : 1);
    const float *dcw = (const float *)sd_cuda_in(SD_CUDA_SCR_IN1, cw, (size_t)c * sizeof(float));
    const float *dpw = (const float *)sd_cuda_in(SD_CUDA_SCR_IN2, pw, (npix ? npix : 1) * sizeof(float));
    if (dl && (!cw || dcw) && (!pw || dpw))
        sd_fixed_sum<3>(npix, f_ce{c, hw, x, dcw, dpw, dl, ignore, lse}, s);
    *num = s[0];
    *wsum = s[1];
    *count = s[2];
}

void sd_cuda_cross_entropy_bwd(int n, int c, size_t hw, const float *x, const uint8_t *labels, const float *cw,
                               const float *pw, int ignore, const float *lse, float scale, float *dx)
{
    size_t npix = (size_t)n * hw, nel = npix * (size_t)c;
    const uint8_t *dl = (const uint8_t *)sd_cuda_in(SD_CUDA_SCR_IN0, labels, npix ? npix : 1);
    const float *dcw = (const float *)sd_cuda_in(SD_CUDA_SCR_IN1, cw, (size_t)c * sizeof(float));
    const float *dpw = (const float *)sd_cuda_in(SD_CUDA_SCR_IN2, pw, (npix ? npix : 1) * sizeof(float));
    if (dl && (!cw || dcw) && (!pw || dpw))
        SD_LAUNCH(k_ce_bwd, nel, c, hw, nel, x, dl, dcw, dpw, ignore, lse, scale, dx);
}

double sd_cuda_bce_fwd(size_t n, const float *x, const float *t, float tc)
{
    double s[1];
    sd_fixed_sum<1>(n, f_bce{x, t, tc}, s);
    return s[0];
}

void sd_cuda_bce_bwd(size_t n, const float *x, const float *t, float tc, float scale, float *dx)
{
    SD_LAUNCH(k_bce_bwd, n, n, x, t, tc, scale, dx);
}

double sd_cuda_sqdiff_fwd(size_t n, const float *a, const float *b, float bc)
{
    double s[1];
    sd_fixed_sum<1>(n, f_sqdiff{a, b, bc}, s);
    return s[0];
}

void sd_cuda_sqdiff_bwd(size_t n, const float *a, const float *b, float bc, float scale, float *da, float *db)
{
    SD_LAUNCH(k_sqdiff_bwd, n, n, a, b, bc, scale, da, db);
}

void sd_cuda_entropy_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *e)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_entropy_fwd, npix, c, hw, npix, x, inv_logc, logp, e);
}

void sd_cuda_entropy_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *de, float *dx)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_entropy_bwd, npix, c, hw, npix, logp, inv_logc, de, dx);
}

void sd_cuda_selfinfo_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *s)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_selfinfo_fwd, npix, c, hw, npix, x, inv_logc, logp, s);
}

void sd_cuda_selfinfo_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *ds, float *dx)
{
    size_t npix = (size_t)n * hw;
    SD_LAUNCH(k_selfinfo_bwd, npix, c, hw, npix, logp, inv_logc, ds, dx);
}

double sd_cuda_l2dist_fwd(int n, int c, size_t hw, const float *a, const float *b, float *dist)
{
    double s[1];
    sd_fixed_sum<1>((size_t)n * hw, f_l2{c, hw, a, b, dist}, s);
    return s[0];
}

void sd_cuda_l2dist_bwd(int n, int c, size_t hw, const float *a, const float *b, const float *dist, float scale,
                        float *da, float *db)
{
    size_t nel = (size_t)n * c * hw;
    SD_LAUNCH(k_l2_bwd, nel, c, hw, nel, a, b, dist, scale, da, db);
}

} /* extern "C" */

/* ---- detection: gather rows, smooth-L1 (the CPU's arithmetic and order) ---- */

__global__ static void k_gather_fwd(size_t total, int block, const int32_t *idx, const float *x, float *y)
{
    SD_GRID_LOOP(k, total)
    {
        size_t i = k / (size_t)block, j = k % (size_t)block;
        y[k] = x[(size_t)idx[i] * block + j];
    }
}

/* one thread per column j, indices in order (deterministic with repeats) */
__global__ static void k_gather_bwd(int n, int block, const int32_t *idx, const float *dy, float *dx)
{
    SD_GRID_LOOP(j, (size_t)block)
    {
        for (int i = 0; i < n; i++)
            dx[(size_t)idx[i] * block + j] += dy[(size_t)i * block + j];
    }
}

void sd_cuda_gather_fwd(int n, int block, const int32_t *idx, const float *x, float *y)
{
    size_t total = (size_t)n * block;
    SD_LAUNCH(k_gather_fwd, total, total, block, idx, x, y);
}

void sd_cuda_gather_bwd(int n, int block, const int32_t *idx, const float *dy, float *dx)
{
    SD_LAUNCH(k_gather_bwd, (size_t)block, n, block, idx, dy, dx);
}

struct f_smooth_l1 {
    const float *a, *b;
    float beta;
    __device__ void operator()(size_t i, double *acc) const
    {
        double d = fabs((double)a[i] - b[i]);
        acc[0] += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
    }
};

__global__ static void k_smooth_l1_bwd(size_t n, float beta, const float *a, const float *b, float scale, float *da)
{
    SD_GRID_LOOP(i, n)
    {
        float d = a[i] - b[i];
        da[i] += scale * (fabsf(d) < beta ? d / beta : (d > 0 ? 1.0f : -1.0f));
    }
}

double sd_cuda_smooth_l1_fwd(size_t n, float beta, const float *a, const float *b)
{
    double s[1];
    sd_fixed_sum<1>(n, f_smooth_l1{a, b, beta}, s);
    return s[0];
}

void sd_cuda_smooth_l1_bwd(size_t n, float beta, const float *a, const float *b, float scale, float *da)
{
    SD_LAUNCH(k_smooth_l1_bwd, n, n, beta, a, b, scale, da);
}
