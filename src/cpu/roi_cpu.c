/* RoIAlign kernels (the arithmetic is core/roi_math.h's). The backward
 * runs one thread per channel, rois in order, so each gradient
 * element has one writer and a fixed order of additions. */
#include "core/roi_math.h"
#include "cpu/kernels.h"

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
