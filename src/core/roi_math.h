/* RoIAlign's per-roi arithmetic (torchvision's roi_align: sample points per
 * bin, bilinear weights, points outside [-1, size] count as zero), shared by
 * the CPU kernels (src/cpu/roi_cpu.c) and the CUDA ones (src/cuda/spatial.cu,
 * where SD_ROI_FN makes them device functions) so both compute alike. */
#ifndef SEGDA_ROI_MATH_H
#define SEGDA_ROI_MATH_H

#include <math.h>
#include <stdbool.h>

#include "core/backend.h"

#ifndef SD_ROI_FN
#define SD_ROI_FN static inline
#endif

/* One roi's frame on the feature map: start, bin size and samples per bin. */
typedef struct roi_frame {
    int b;
    float y0, x0, bin_h, bin_w;
    int gy, gx;
    float count;
} roi_frame;

SD_ROI_FN roi_frame roi_frame_of(const sd_roi_geom *g, const float *r)
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
SD_ROI_FN bool bilinear_at(int h, int w, float y, float x, int idx[4], float wt[4])
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

#endif
