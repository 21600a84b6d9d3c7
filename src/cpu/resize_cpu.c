/* CPU resize, pad and flip kernels, forward and backward. Source indices
 * follow PyTorch's CPU upsample kernels exactly (float arithmetic, scale from
 * the sizes). Backward kernels accumulate (+=); each OpenMP iteration owns
 * one plane, so sums run in a fixed order. */
#include <math.h>
#include <string.h>

#include "cpu/kernels.h"

/* One axis of bilinear interpolation: out index -> (i0, i1, l0, l1). */
static void lin_axis(int in, int out, bool ac, int *i0, int *i1, float *l0, float *l1)
{
    float scale = ac ? (out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f) : (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = ac ? scale * (float)d : scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0)
            src = 0;
        int a = (int)src;
        if (a > in - 1)
            a = in - 1;
        i0[d] = a;
        i1[d] = a + (a < in - 1 ? 1 : 0);
        l1[d] = src - (float)a;
        l0[d] = 1.0f - l1[d];
    }
}

void sd_cpu_resize_bilinear_fwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *x,
                             float *y)
{
    int y0[oh], y1[oh], x0[ow], x1[ow];
    float ly0[oh], ly1[oh], lx0[ow], lx1[ow];
    lin_axis(h, oh, align_corners, y0, y1, ly0, ly1);
    lin_axis(w, ow, align_corners, x0, x1, lx0, lx1);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + p * ip;
        float *yp = y + p * op;
        for (int oy = 0; oy < oh; oy++) {
            const float *r0 = xp + (size_t)y0[oy] * w, *r1 = xp + (size_t)y1[oy] * w;
            for (int ox = 0; ox < ow; ox++)
                yp[(size_t)oy * ow + ox] = ly0[oy] * (lx0[ox] * r0[x0[ox]] + lx1[ox] * r0[x1[ox]]) +
                                           ly1[oy] * (lx0[ox] * r1[x0[ox]] + lx1[ox] * r1[x1[ox]]);
        }
    }
}

void sd_cpu_resize_bilinear_bwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *dy,
                             float *dx)
{
    int y0[oh], y1[oh], x0[ow], x1[ow];
    float ly0[oh], ly1[oh], lx0[ow], lx1[ow];
    lin_axis(h, oh, align_corners, y0, y1, ly0, ly1);
    lin_axis(w, ow, align_corners, x0, x1, lx0, lx1);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++) {
        float *dp = dx + p * ip;
        const float *gp = dy + p * op;
        for (int oy = 0; oy < oh; oy++) {
            float *r0 = dp + (size_t)y0[oy] * w, *r1 = dp + (size_t)y1[oy] * w;
            for (int ox = 0; ox < ow; ox++) {
                float gv = gp[(size_t)oy * ow + ox];
                r0[x0[ox]] += ly0[oy] * lx0[ox] * gv;
                r0[x1[ox]] += ly0[oy] * lx1[ox] * gv;
                r1[x0[ox]] += ly1[oy] * lx0[ox] * gv;
                r1[x1[ox]] += ly1[oy] * lx1[ox] * gv;
            }
        }
    }
}

/* PyTorch 'nearest': same size -> identity, double -> dst>>1, else
 * min(floor(dst * (float)in/out), in-1) in float. */
static void near_axis(int in, int out, int *idx)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        long s = out == in ? d : out == 2 * in ? d >> 1 : (long)floorf((float)d * scale);
        idx[d] = (int)(s < in - 1 ? s : in - 1);
    }
}

void sd_cpu_resize_nearest_fwd(int planes, int h, int w, int oh, int ow, const float *x, float *y)
{
    int iy[oh], ix[ow];
    near_axis(h, oh, iy);
    near_axis(w, ow, ix);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            const float *r = x + p * ip + (size_t)iy[oy] * w;
            float *o = y + p * op + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++)
                o[ox] = r[ix[ox]];
        }
}

void sd_cpu_resize_nearest_bwd(int planes, int h, int w, int oh, int ow, const float *dy, float *dx)
{
    int iy[oh], ix[ow];
    near_axis(h, oh, iy);
    near_axis(w, ow, ix);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            float *r = dx + p * ip + (size_t)iy[oy] * w;
            const float *g = dy + p * op + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++)
                r[ix[ox]] += g[ox];
        }
}

/* Source index of padded position o, or -1 for a zero cell. */
static int pad_src(int o, int before, int n, bool reflect)
{
    int i = o - before;
    if (i >= 0 && i < n)
        return i;
    if (!reflect)
        return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

void sd_cpu_pad2d_fwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                   const float *x, float *y)
{
    const int oh = h + top + bottom, ow = w + left + right;
    int sx[ow];
    for (int o = 0; o < ow; o++)
        sx[o] = pad_src(o, left, w, reflect);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            int sy = pad_src(oy, top, h, reflect);
            float *o = y + p * op + (size_t)oy * ow;
            if (sy < 0) {
                memset(o, 0, (size_t)ow * sizeof *o);
                continue;
            }
            const float *r = x + p * ip + (size_t)sy * w;
            for (int ox = 0; ox < ow; ox++)
                o[ox] = sx[ox] < 0 ? 0.0f : r[sx[ox]];
        }
}

void sd_cpu_pad2d_bwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                   const float *dy, float *dx)
{
    const int oh = h + top + bottom, ow = w + left + right;
    int sx[ow];
    for (int o = 0; o < ow; o++)
        sx[o] = pad_src(o, left, w, reflect);
    const size_t ip = (size_t)h * w, op = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++) {
            int sy = pad_src(oy, top, h, reflect);
            if (sy < 0)
                continue;
            const float *g = dy + p * op + (size_t)oy * ow;
            float *r = dx + p * ip + (size_t)sy * w;
            for (int ox = 0; ox < ow; ox++)
                if (sx[ox] >= 0)
                    r[sx[ox]] += g[ox];
        }
}

void sd_cpu_flip_w_fwd(int planes, int h, int w, const float *x, float *y)
{
    const long rows = (long)planes * h;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < w; j++)
            y[r * w + j] = x[r * w + (w - 1 - j)];
}

void sd_cpu_flip_w_bwd(int planes, int h, int w, const float *dy, float *dx)
{
    const long rows = (long)planes * h;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < w; j++)
            dx[r * w + (w - 1 - j)] += dy[r * w + j];
}
