/* RoIAlign kernels (the arithmetic is core/roi_math.h's). The sample points
 * and bilinear weights of a roi are the same in every channel, so each roi's
 * are worked out once (roi_table) and then applied to all channels, one
 * thread per channel block; without memory for the table a roi falls back to
 * computing them per channel. Either way every output (forward) and every
 * gradient element (backward: rois in order, then bins and samples) sees the
 * same additions in the same order, so the results do not depend on the
 * path or the thread count. */
#include <stdlib.h>

#include "core/roi_math.h"
#include "cpu/kernels.h"

/* The valid sample points of one roi: per bin, n[bin] points, each four
 * neighbour indices and weights, bins in row-major order. */
typedef struct roi_table {
    int *n;      /* [oh*ow] */
    int *idx;    /* [points][4] */
    float *wt;   /* [points][4] */
    size_t cap;  /* points the buffers hold */
} roi_table;

static void table_free(roi_table *t)
{
    free(t->n);
    free(t->idx);
    free(t->wt);
    *t = (roi_table){0};
}

/* Fills t for frame f; false: out of memory (t is left empty). */
static bool table_fill(const sd_roi_geom *g, roi_frame f, roi_table *t)
{
    size_t bins = (size_t)g->oh * g->ow, need = bins * (size_t)f.gy * (size_t)f.gx;
    if (!t->n && !(t->n = malloc(bins * sizeof *t->n)))
        return false;
    if (need > t->cap) {
        free(t->idx);
        free(t->wt);
        t->idx = malloc(need * 4 * sizeof *t->idx);
        t->wt = malloc(need * 4 * sizeof *t->wt);
        t->cap = t->idx && t->wt ? need : 0;
        if (!t->cap)
            return false;
    }
    size_t p = 0;
    for (int ph = 0; ph < g->oh; ph++)
        for (int pw = 0; pw < g->ow; pw++) {
            size_t p0 = p;
            ROI_BIN_SAMPLES(g, f, ph, pw, {
                for (int q = 0; q < 4; q++) {
                    t->idx[4 * p + q] = idx[q];
                    t->wt[4 * p + q] = wt[q];
                }
                p++;
            })
            t->n[ph * g->ow + pw] = (int)(p - p0);
        }
    return true;
}

/* y of roi k in channel c, directly from the frame (no table). */
static void fwd_direct(const sd_roi_geom *g, roi_frame f, const float *xp, float *yp)
{
    for (int ph = 0; ph < g->oh; ph++)
        for (int pw = 0; pw < g->ow; pw++) {
            float acc = 0;
            ROI_BIN_SAMPLES(g, f, ph, pw, {
                acc += wt[0] * xp[idx[0]] + wt[1] * xp[idx[1]] + wt[2] * xp[idx[2]] + wt[3] * xp[idx[3]];
            })
            yp[ph * g->ow + pw] = acc / f.count;
        }
}

static void bwd_direct(const sd_roi_geom *g, roi_frame f, const float *gp, float *dp)
{
    for (int ph = 0; ph < g->oh; ph++)
        for (int pw = 0; pw < g->ow; pw++) {
            float gv = gp[ph * g->ow + pw] / f.count;
            ROI_BIN_SAMPLES(g, f, ph, pw, {
                for (int q = 0; q < 4; q++)
                    dp[idx[q]] += gv * wt[q];
            })
        }
}

void sd_cpu_roi_align_fwd(const sd_roi_geom *g, const float *x, const float *rois, float *y)
{
    size_t plane = (size_t)g->h * g->w, oplane = (size_t)g->oh * g->ow;
    roi_table t = {0};
    for (int k = 0; k < g->k; k++) {
        roi_frame f = roi_frame_of(g, rois + 5 * (size_t)k);
        const float *xb = x + (size_t)f.b * g->c * plane;
        float *yk = y + (size_t)k * g->c * oplane;
        if (!table_fill(g, f, &t)) {
            table_free(&t);
#pragma omp parallel for schedule(static)
            for (int c = 0; c < g->c; c++)
                fwd_direct(g, f, xb + c * plane, yk + c * oplane);
            continue;
        }
#pragma omp parallel for schedule(static)
        for (int c = 0; c < g->c; c++) {
            const float *xp = xb + c * plane;
            float *yp = yk + c * oplane;
            const int *ix = t.idx;
            const float *wt = t.wt;
            for (size_t b = 0; b < oplane; b++) {
                float acc = 0;
                for (int s = 0; s < t.n[b]; s++, ix += 4, wt += 4)
                    acc += wt[0] * xp[ix[0]] + wt[1] * xp[ix[1]] + wt[2] * xp[ix[2]] + wt[3] * xp[ix[3]];
                yp[b] = acc / f.count;
            }
        }
    }
    table_free(&t);
}

void sd_cpu_roi_align_bwd(const sd_roi_geom *g, const float *rois, const float *dy, float *dx)
{
    size_t plane = (size_t)g->h * g->w, oplane = (size_t)g->oh * g->ow;
    roi_table t = {0};
    for (int k = 0; k < g->k; k++) {
        roi_frame f = roi_frame_of(g, rois + 5 * (size_t)k);
        float *db = dx + (size_t)f.b * g->c * plane;
        const float *gk = dy + (size_t)k * g->c * oplane;
        if (!table_fill(g, f, &t)) {
            table_free(&t);
#pragma omp parallel for schedule(static)
            for (int c = 0; c < g->c; c++)
                bwd_direct(g, f, gk + c * oplane, db + c * plane);
            continue;
        }
#pragma omp parallel for schedule(static)
        for (int c = 0; c < g->c; c++) {
            float *dp = db + c * plane;
            const float *gp = gk + c * oplane;
            const int *ix = t.idx;
            const float *wt = t.wt;
            for (size_t b = 0; b < oplane; b++) {
                float gv = gp[b] / f.count;
                for (int s = 0; s < t.n[b]; s++, ix += 4, wt += 4)
                    for (int q = 0; q < 4; q++)
                        dp[ix[q]] += gv * wt[q];
            }
        }
    }
    table_free(&t);
}
