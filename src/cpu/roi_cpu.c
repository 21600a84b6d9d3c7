/* RoIAlign kernels (torchvision's roi_align arithmetic: sample points per
 * bin, bilinear weights, points outside [-1, size] count as zero). The
 * backward runs one thread per channel, rois in order, so each gradient
 * element has one writer and a fixed order of additions. */
#include <math.h>

#include "cpu/kernels.h"

/* One roi's frame on the feature map: start, bin size and samples per bin. */
typedef struct roi_frame {
    int b;
    float y0, x0, bin_h, bin_w;
    int gy, gx;
    float count;
} roi_frame;

static roi_frame roi_frame_of(const sd_roi_geom *g, const float *r)
{
    roi_frame f;
    float off = g->aligned ? 0.5f : 0.0f;
    f.b = (int)r[0];
    f.x0 = r[1] * g->scale - off;
    f.y0 = r[2] * g->scale - off;
    float rw = r[3] * g->scale - off - f.x0, rh = r[4] * g->scale - off - f.y0;
    if (!g->aligned) { /* legacy: rois at least one pixel */
        rw = fmaxf(rw, 1.0f);
        rh = fmaxf(rh, 1.0f);
    }
    f.bin_h = rh / g->oh;
    f.bin_w = rw / g->ow;
    f.gy = g->sampling > 0 ? g->sampling : (int)ceilf(rh / g->oh);
    f.gx = g->sampling > 0 ? g->sampling : (int)ceilf(rw / g->ow);
    int count = f.gy * f.gx;
    f.count = (float)(count > 1 ? count : 1);
    return f;
}

/* The four neighbours and weights of point (y, x); false when it lies outside. */
static bool bilinear_at(int h, int w, float y, float x, int idx[4], float wt[4])
{
    if (y < -1.0f || y > (float)h || x < -1.0f || x > (float)w)
        return false;
    if (y <= 0)
        y = 0;
    if (x <= 0)
        x = 0;
    int yl = (int)y, xl = (int)x, yh, xh;
    if (yl >= h - 1) {
        yh = yl = h - 1;
        y = (float)yl;
    } else
        yh = yl + 1;
    if (xl >= w - 1) {
        xh = xl = w - 1;
        x = (float)xl;
    } else
        xh = xl + 1;
    float ly = y - yl, lx = x - xl, hy = 1.0f - ly, hx = 1.0f - lx;
    idx[0] = yl * w + xl;
    idx[1] = yl * w + xh;
    idx[2] = yh * w + xl;
    idx[3] = yh * w + xh;
    wt[0] = hy * hx;
    wt[1] = hy * lx;
    wt[2] = ly * hx;
    wt[3] = ly * lx;
    return true;
}

/* Calls body(idx, wt) for every sample point of bin (ph, pw) of frame f. */
#define ROI_BIN_SAMPLES(g, f, ph, pw, body)                                              \
    for (int iy = 0; iy < (f).gy; iy++) {                                                \
        float yy = (f).y0 + (ph) * (f).bin_h + (iy + 0.5f) * (f).bin_h / (f).gy;         \
        for (int ix = 0; ix < (f).gx; ix++) {                                            \
            float xx = (f).x0 + (pw) * (f).bin_w + (ix + 0.5f) * (f).bin_w / (f).gx;     \
            int idx[4];                                                                  \
            float wt[4];                                                                 \
            if (bilinear_at((g)->h, (g)->w, yy, xx, idx, wt))                            \
                body                                                                     \
        }                                                                                \
    }

void sd_cpu_roi_align_fwd(const sd_roi_geom *g, const float *x, const float *rois, float *y)
{
    size_t plane = (size_t)g->h * g->w, oplane = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (long kc = 0; kc < (long)g->k * g->c; kc++) {
        int k = (int)(kc / g->c), c = (int)(kc % g->c);
        roi_frame f = roi_frame_of(g, rois + 5 * (size_t)k);
        const float *xp = x + ((size_t)f.b * g->c + c) * plane;
        float *yp = y + (size_t)kc * oplane;
        for (int ph = 0; ph < g->oh; ph++)
            for (int pw = 0; pw < g->ow; pw++) {
                float acc = 0;
                ROI_BIN_SAMPLES(g, f, ph, pw, {
                    acc += wt[0] * xp[idx[0]] + wt[1] * xp[idx[1]] + wt[2] * xp[idx[2]] + wt[3] * xp[idx[3]];
                })
                yp[ph * g->ow + pw] = acc / f.count;
            }
    }
}

void sd_cpu_roi_align_bwd(const sd_roi_geom *g, const float *rois, const float *dy, float *dx)
{
    size_t plane = (size_t)g->h * g->w, oplane = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->c; c++)
        for (int k = 0; k < g->k; k++) {
            roi_frame f = roi_frame_of(g, rois + 5 * (size_t)k);
            float *dp = dx + ((size_t)f.b * g->c + c) * plane;
            const float *gp = dy + ((size_t)k * g->c + c) * oplane;
            for (int ph = 0; ph < g->oh; ph++)
                for (int pw = 0; pw < g->ow; pw++) {
                    float gv = gp[ph * g->ow + pw] / f.count;
                    ROI_BIN_SAMPLES(g, f, ph, pw, {
                        for (int q = 0; q < 4; q++)
                            dp[idx[q]] += gv * wt[q];
                    })
                }
        }
}
