/* CPU kernels for channel softmax / log-softmax and the losses (cross-entropy,
 * BCE-with-logits, squared differences, entropy and self-information maps,
 * L2 feature distance). Element-wise ops are in elementwise.c.
 * Backward kernels accumulate (+=). Pixels are processed in blocks of BS
 * positions of one image so the loops over channels stay contiguous; sums go
 * through N_PARTS fixed parts in double, added in order (deterministic for
 * any thread count). */
#include <math.h>

#include "cpu/kernels.h"

#define BS 256
#define N_PARTS 64
#define PAR_MIN_PIX 2048

typedef struct blk {
    size_t off; /* offset of the image: ni * c * hw */
    size_t pix; /* first pixel index: ni * hw + s0 */
    size_t s0, len;
} blk;

static inline blk blk_at(size_t b, size_t nb_img, int c, size_t hw)
{
    size_t ni = b / nb_img, s0 = (b % nb_img) * BS;
    blk k = {ni * (size_t)c * hw, ni * hw + s0, s0, hw - s0 < BS ? hw - s0 : BS};
    return k;
}

/* m[s] = max_k x, lse[s] = m + log sum_k exp(x - m) over one block */
static void blk_lse(const float *xb, int c, size_t hw, blk k, float *lse)
{
    float m[BS], sum[BS];
    for (size_t s = 0; s < k.len; s++) {
        m[s] = -INFINITY;
        sum[s] = 0.0f;
    }
    for (int ch = 0; ch < c; ch++) {
        const float *r = xb + (size_t)ch * hw + k.s0;
        for (size_t s = 0; s < k.len; s++)
            m[s] = r[s] > m[s] ? r[s] : m[s];
    }
    for (int ch = 0; ch < c; ch++) {
        const float *r = xb + (size_t)ch * hw + k.s0;
        for (size_t s = 0; s < k.len; s++)
            sum[s] += expf(r[s] - m[s]);
    }
    for (size_t s = 0; s < k.len; s++)
        lse[s] = m[s] + logf(sum[s]);
}

#define N_BLOCKS(n, hw) ((size_t)(n) * (((hw) + BS - 1) / BS))
#define NB_IMG(hw) (((hw) + BS - 1) / BS)

void sd_cpu_softmax_fwd(bool log, int n, int c, size_t hw, const float *x, float *y)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        if (log) {
            float lse[BS];
            blk_lse(x + k.off, c, hw, k, lse);
            for (int ch = 0; ch < c; ch++) {
                const float *r = x + k.off + (size_t)ch * hw + k.s0;
                float *o = y + k.off + (size_t)ch * hw + k.s0;
                for (size_t s = 0; s < k.len; s++)
                    o[s] = r[s] - lse[s];
            }
            continue;
        }
        /* one exp per element: exponentials go to y, then are normalised */
        float m[BS], sum[BS];
        for (size_t s = 0; s < k.len; s++) {
            m[s] = -INFINITY;
            sum[s] = 0.0f;
        }
        for (int ch = 0; ch < c; ch++) {
            const float *r = x + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                m[s] = r[s] > m[s] ? r[s] : m[s];
        }
        for (int ch = 0; ch < c; ch++) {
            const float *r = x + k.off + (size_t)ch * hw + k.s0;
            float *o = y + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++) {
                o[s] = expf(r[s] - m[s]);
                sum[s] += o[s];
            }
        }
        for (size_t s = 0; s < k.len; s++)
            sum[s] = 1.0f / sum[s];
        for (int ch = 0; ch < c; ch++) {
            float *o = y + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                o[s] *= sum[s];
        }
    }
}

/* Both backwards are written around the most probable class m of each
 * pixel, using sum_k p_k = 1: 1 - p_m is then the sum of the other
 * probabilities instead of a difference of two numbers near 1, which keeps
 * saturated softmaxes (p_m = 0.99999) accurate to float precision.
 *   softmax:     dx_j = p_j ((g_j - g_m) - sum_k p_k (g_k - g_m))
 *   log-softmax: dx_j = g_j - p_j G,  G = sum_k g_k;
 *                dx_m = -sum_{k!=m} g_k + (sum_{k!=m} p_k) G */
void sd_cpu_softmax_bwd(bool log, int n, int c, size_t hw, const float *y, const float *gy, float *gx)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        float ym[BS], gm[BS], acc[BS], q[BS];
        int m[BS];
        for (size_t s = 0; s < k.len; s++) {
            ym[s] = -INFINITY;
            m[s] = 0;
            acc[s] = q[s] = 0.0f;
        }
        for (int ch = 0; ch < c; ch++) {
            const float *yr = y + k.off + (size_t)ch * hw + k.s0, *gr = gy + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                if (yr[s] > ym[s]) {
                    ym[s] = yr[s];
                    m[s] = ch;
                    gm[s] = gr[s];
                }
        }
        for (int ch = 0; ch < c; ch++) {
            const float *yr = y + k.off + (size_t)ch * hw + k.s0, *gr = gy + k.off + (size_t)ch * hw + k.s0;
            if (log) {
                for (size_t s = 0; s < k.len; s++)
                    if (ch != m[s]) {
                        acc[s] += gr[s];      /* sum of the other g */
                        q[s] += expf(yr[s]);  /* sum of the other p */
                    }
            } else {
                for (size_t s = 0; s < k.len; s++)
                    acc[s] += yr[s] * (gr[s] - gm[s]);
            }
        }
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            const float *yr = y + o, *gr = gy + o;
            float *g = gx + o;
            if (log) {
                for (size_t s = 0; s < k.len; s++) {
                    float gsum = gm[s] + acc[s];
                    g[s] += ch == m[s] ? -acc[s] + q[s] * gsum : gr[s] - expf(yr[s]) * gsum;
                }
            } else {
                for (size_t s = 0; s < k.len; s++)
                    g[s] += yr[s] * ((gr[s] - gm[s]) - acc[s]);
            }
        }
    }
}

/* ---- cross-entropy ---- */

void sd_cpu_cross_entropy_fwd(int n, int c, size_t hw, const float *x, const uint8_t *labels,
                              const float *cw, const float *pw, int ignore, float *lse,
                              double *num, double *wsum, double *count)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
    double pn[N_PARTS], pws[N_PARTS], pc[N_PARTS];
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (int p = 0; p < N_PARTS; p++) {
        double an = 0.0, aw = 0.0, ac = 0.0;
        for (size_t b = nb * p / N_PARTS; b < nb * (p + 1) / N_PARTS; b++) {
            blk k = blk_at(b, nbi, c, hw);
            float *l = lse + k.pix;
            blk_lse(x + k.off, c, hw, k, l);
            for (size_t s = 0; s < k.len; s++) {
                int y = labels[k.pix + s];
                if (y == ignore)
                    continue;
                double w = cw ? cw[y] : 1.0;
                double nll = (double)l[s] - x[k.off + (size_t)y * hw + k.s0 + s];
                an += w * (pw ? pw[k.pix + s] : 1.0f) * nll;
                aw += w;
                ac += 1.0;
            }
        }
        pn[p] = an;
        pws[p] = aw;
        pc[p] = ac;
    }
    double sn = 0.0, sw = 0.0, sc = 0.0;
    for (int p = 0; p < N_PARTS; p++) {
        sn += pn[p];
        sw += pws[p];
        sc += pc[p];
    }
    *num = sn;
    *wsum = sw;
    *count = sc;
}

void sd_cpu_cross_entropy_bwd(int n, int c, size_t hw, const float *x, const uint8_t *labels,
                              const float *cw, const float *pw, int ignore, const float *lse,
                              float scale, float *gx)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        float w[BS];
        int lab[BS];
        for (size_t s = 0; s < k.len; s++) {
            int y = labels[k.pix + s];
            lab[s] = y;
            w[s] = y == ignore ? 0.0f : scale * (cw ? cw[y] : 1.0f) * (pw ? pw[k.pix + s] : 1.0f);
        }
        const float *l = lse + k.pix;
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++) {
                if (w[s] == 0.0f)
                    continue;
                float p = expf(x[o + s] - l[s]);
                gx[o + s] += w[s] * (p - (lab[s] == ch ? 1.0f : 0.0f));
            }
        }
    }
}

/* ---- BCE-with-logits and squared differences ---- */

double sd_cpu_bce_fwd(size_t n, const float *x, const float *t, float tc)
{
    double part[N_PARTS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PIX)
    for (int p = 0; p < N_PARTS; p++) {
        double acc = 0.0;
        for (size_t i = n * p / N_PARTS; i < n * (p + 1) / N_PARTS; i++) {
            float v = x[i], tv = t ? t[i] : tc;
            acc += (double)(v > 0.0f ? v : 0.0f) - (double)v * tv + log1pf(expf(-fabsf(v)));
        }
        part[p] = acc;
    }
    double s = 0.0;
    for (int p = 0; p < N_PARTS; p++)
        s += part[p];
    return s;
}

void sd_cpu_bce_bwd(size_t n, const float *x, const float *t, float tc, float scale, float *gx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PIX)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], sig;
        if (v >= 0.0f) {
            sig = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            sig = e / (1.0f + e);
        }
        gx[i] += scale * (sig - (t ? t[i] : tc));
    }
}

double sd_cpu_sqdiff_fwd(size_t n, const float *a, const float *b, float bc)
{
    double part[N_PARTS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PIX)
    for (int p = 0; p < N_PARTS; p++) {
        double acc = 0.0;
        for (size_t i = n * p / N_PARTS; i < n * (p + 1) / N_PARTS; i++) {
            double d = (double)a[i] - (b ? b[i] : bc);
            acc += d * d;
        }
        part[p] = acc;
    }
    double s = 0.0;
    for (int p = 0; p < N_PARTS; p++)
        s += part[p];
    return s;
}

void sd_cpu_sqdiff_bwd(size_t n, const float *a, const float *b, float bc, float scale, float *ga,
                       float *gb)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN_PIX)
    for (size_t i = 0; i < n; i++) {
        float g = 2.0f * scale * (a[i] - (b ? b[i] : bc));
        if (ga)
            ga[i] += g;
        if (gb)
            gb[i] -= g;
    }
}

/* ---- entropy and self-information ---- */

/* logp = log-softmax of one block; also returns p = exp(logp) through the caller */
static void blk_logp(const float *x, float *logp, int c, size_t hw, blk k)
{
    float lse[BS];
    blk_lse(x + k.off, c, hw, k, lse);
    for (int ch = 0; ch < c; ch++) {
        size_t o = k.off + (size_t)ch * hw + k.s0;
        for (size_t s = 0; s < k.len; s++)
            logp[o + s] = x[o + s] - lse[s];
    }
}

void sd_cpu_entropy_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *e)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        blk_logp(x, logp, c, hw, k);
        float h[BS] = {0};
        for (int ch = 0; ch < c; ch++) {
            const float *lp = logp + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                h[s] -= expf(lp[s]) * lp[s];
        }
        for (size_t s = 0; s < k.len; s++)
            e[k.pix + s] = h[s] * inv_logc;
    }
}

void sd_cpu_entropy_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *ge,
                        float *gx)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
    /* dH/dx_k = -p_k (log p_k + H) */
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        float h[BS] = {0};
        for (int ch = 0; ch < c; ch++) {
            const float *lp = logp + k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                h[s] -= expf(lp[s]) * lp[s];
        }
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++) {
                float lp = logp[o + s];
                gx[o + s] -= ge[k.pix + s] * inv_logc * expf(lp) * (lp + h[s]);
            }
        }
    }
}

void sd_cpu_selfinfo_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *si)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        blk_logp(x, logp, c, hw, k);
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                si[o + s] = -expf(logp[o + s]) * logp[o + s] * inv_logc;
        }
    }
}

void sd_cpu_selfinfo_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *gs,
                         float *gx)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
    /* d s_k / d x_j = -(log p_k + 1) p_k (delta_kj - p_j) / log C */
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t b = 0; b < nb; b++) {
        blk k = blk_at(b, nbi, c, hw);
        float dot[BS] = {0};
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++)
                dot[s] += gs[o + s] * expf(logp[o + s]) * (logp[o + s] + 1.0f);
        }
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++) {
                float lp = logp[o + s];
                gx[o + s] -= inv_logc * expf(lp) * (gs[o + s] * (lp + 1.0f) - dot[s]);
            }
        }
    }
}

/* ---- L2 feature distance ---- */

double sd_cpu_l2dist_fwd(int n, int c, size_t hw, const float *a, const float *b, float *dist)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
    double part[N_PARTS];
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (int p = 0; p < N_PARTS; p++) {
        double acc = 0.0;
        for (size_t bi = nb * p / N_PARTS; bi < nb * (p + 1) / N_PARTS; bi++) {
            blk k = blk_at(bi, nbi, c, hw);
            double sq[BS] = {0};
            for (int ch = 0; ch < c; ch++) {
                size_t o = k.off + (size_t)ch * hw + k.s0;
                for (size_t s = 0; s < k.len; s++) {
                    double d = (double)a[o + s] - b[o + s];
                    sq[s] += d * d;
                }
            }
            for (size_t s = 0; s < k.len; s++) {
                dist[k.pix + s] = (float)sqrt(sq[s]);
                acc += sqrt(sq[s]);
            }
        }
        part[p] = acc;
    }
    double s = 0.0;
    for (int p = 0; p < N_PARTS; p++)
        s += part[p];
    return s;
}

void sd_cpu_l2dist_bwd(int n, int c, size_t hw, const float *a, const float *b, const float *dist,
                       float scale, float *ga, float *gb)
{
    size_t nb = N_BLOCKS(n, hw), nbi = NB_IMG(hw);
#pragma omp parallel for schedule(static) if ((size_t)n * hw > PAR_MIN_PIX)
    for (size_t bi = 0; bi < nb; bi++) {
        blk k = blk_at(bi, nbi, c, hw);
        float f[BS];
        for (size_t s = 0; s < k.len; s++)
            f[s] = dist[k.pix + s] > 0.0f ? scale / dist[k.pix + s] : 0.0f;
        for (int ch = 0; ch < c; ch++) {
            size_t o = k.off + (size_t)ch * hw + k.s0;
            for (size_t s = 0; s < k.len; s++) {
                float g = f[s] * (a[o + s] - b[o + s]);
                if (ga)
                    ga[o + s] += g;
                if (gb)
                    gb[o + s] -= g;
            }
        }
    }
}
