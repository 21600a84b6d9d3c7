/* Mask R-CNN's box arithmetic on the host (see detect_boxes.h); each
 * function follows the torchvision 0.14 function of the same role. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/detect_boxes.h"

void sd_box_anchors(int gh, int gw, int stride_h, int stride_w, float size, int n_ratios, const float *ratios,
                    float *out)
{
    float base[16][4];
    for (int r = 0; r < n_ratios && r < 16; r++) {
        float hr = sqrtf(ratios[r]), wr = 1.0f / hr;
        float ws = wr * size, hs = hr * size;
        base[r][0] = roundf(-ws / 2);
        base[r][1] = roundf(-hs / 2);
        base[r][2] = roundf(ws / 2);
        base[r][3] = roundf(hs / 2);
    }
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++)
            for (int r = 0; r < n_ratios; r++) {
                float *o = out + (((size_t)y * gw + x) * n_ratios + r) * 4;
                float sx = (float)(x * stride_w), sy = (float)(y * stride_h);
                o[0] = sx + base[r][0];
                o[1] = sy + base[r][1];
                o[2] = sx + base[r][2];
                o[3] = sy + base[r][3];
            }
}

static const float clip_log = 4.135166556742356f; /* log(1000 / 16) */

void sd_box_decode(int n, const float *deltas, const float *ref, const float w[4], float *out)
{
    for (int i = 0; i < n; i++) {
        const float *d = deltas + 4 * i, *r = ref + 4 * i;
        float rw = r[2] - r[0], rh = r[3] - r[1];
        float cx = r[0] + 0.5f * rw, cy = r[1] + 0.5f * rh;
        float dx = d[0] / w[0], dy = d[1] / w[1], dw = fminf(d[2] / w[2], clip_log), dh = fminf(d[3] / w[3], clip_log);
        float px = dx * rw + cx, py = dy * rh + cy, pw = expf(dw) * rw, ph = expf(dh) * rh;
        float *o = out + 4 * i;
        o[0] = px - 0.5f * pw;
        o[1] = py - 0.5f * ph;
        o[2] = px + 0.5f * pw;
        o[3] = py + 0.5f * ph;
    }
}

void sd_box_encode(int n, const float *gt, const float *ref, const float w[4], float *out)
{
    for (int i = 0; i < n; i++) {
        const float *g = gt + 4 * i, *r = ref + 4 * i;
        float rw = r[2] - r[0], rh = r[3] - r[1], rx = r[0] + 0.5f * rw, ry = r[1] + 0.5f * rh;
        float gw = g[2] - g[0], gh = g[3] - g[1], gx = g[0] + 0.5f * gw, gy = g[1] + 0.5f * gh;
        float *o = out + 4 * i;
        o[0] = w[0] * (gx - rx) / rw;
        o[1] = w[1] * (gy - ry) / rh;
        o[2] = w[2] * logf(gw / rw);
        o[3] = w[3] * logf(gh / rh);
    }
}

void sd_box_clip(int n, float *b, int img_h, int img_w)
{
    for (int i = 0; i < 4 * n; i += 4) {
        b[i] = fminf(fmaxf(b[i], 0), (float)img_w);
        b[i + 2] = fminf(fmaxf(b[i + 2], 0), (float)img_w);
        b[i + 1] = fminf(fmaxf(b[i + 1], 0), (float)img_h);
        b[i + 3] = fminf(fmaxf(b[i + 3], 0), (float)img_h);
    }
}

static float area(const float *b) { return (b[2] - b[0]) * (b[3] - b[1]); }

static float iou1(const float *a, const float *b)
{
    float w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    float inter = (w > 0 ? w : 0) * (h > 0 ? h : 0);
    return inter / (area(a) + area(b) - inter);
}

void sd_box_iou(int na, const float *a, int nb, const float *b, float *out)
{
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            out[(size_t)i * nb + j] = iou1(a + 4 * i, b + 4 * j);
}

/* qsort with ties broken by index, so orders do not depend on the libc */
static const float *sort_vals;
static int by_value_desc(const void *pa, const void *pb)
{
    int a = *(const int *)pa, b = *(const int *)pb;
    if (sort_vals[a] != sort_vals[b])
        return sort_vals[a] > sort_vals[b] ? -1 : 1;
    return (a > b) - (a < b);
}

static void sort_desc(int n, const float *v, int *idx)
{
    for (int i = 0; i < n; i++)
        idx[i] = i;
    sort_vals = v;
    qsort(idx, (size_t)n, sizeof *idx, by_value_desc);
}

int sd_box_topk(int n, const float *v, int k, int *idx)
{
    int *all = malloc((size_t)(n > 0 ? n : 1) * sizeof *all);
    if (!all)
        return 0;
    sort_desc(n, v, all);
    int m = k < n ? k : n;
    memcpy(idx, all, (size_t)m * sizeof *idx);
    free(all);
    return m;
}

int sd_box_nms(int n, const float *boxes, const float *scores, const int *groups, float iou_thresh, int *keep)
{
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    uint8_t *dead = calloc((size_t)(n > 0 ? n : 1), 1);
    int m = 0;
    if (!order || !dead)
        goto done;
    sort_desc(n, scores, order);
    for (int a = 0; a < n; a++) {
        int i = order[a];
        if (dead[i])
            continue;
        keep[m++] = i;
        for (int b = a + 1; b < n; b++) {
            int j = order[b];
            if (!dead[j] && (!groups || groups[i] == groups[j]) && iou1(boxes + 4 * i, boxes + 4 * j) > iou_thresh)
                dead[j] = 1;
        }
    }
done:
    free(order);
    free(dead);
    return m;
}

void sd_box_match(int n_gt, int n_pred, const float *iou, float high, float low, bool allow_low_quality,
                  int *matches)
{
    for (int p = 0; p < n_pred; p++) {
        int best = 0;
        float v = -INFINITY;
        for (int g = 0; g < n_gt; g++)
            if (iou[(size_t)g * n_pred + p] > v) {
                v = iou[(size_t)g * n_pred + p];
                best = g;
            }
        matches[p] = n_gt == 0 || v < low ? -1 : v < high ? -2 : best;
    }
    if (!allow_low_quality)
        return;
    for (int g = 0; g < n_gt; g++) {
        const float *row = iou + (size_t)g * n_pred;
        float m = -INFINITY;
        for (int p = 0; p < n_pred; p++)
            m = fmaxf(m, row[p]);
        for (int p = 0; p < n_pred; p++)
            if (row[p] == m && matches[p] < 0) { /* its original best match, as torchvision restores */
                int best = 0;
                float v = -INFINITY;
                for (int h = 0; h < n_gt; h++)
                    if (iou[(size_t)h * n_pred + p] > v) {
                        v = iou[(size_t)h * n_pred + p];
                        best = h;
                    }
                matches[p] = best;
            }
    }
}

/* Marks `want` of the listed indices: a random subset (partial
 * Fisher-Yates) or the first ones. */
static void pick(int *list, int n, int want, sd_rng *rng, uint8_t *mark)
{
    for (int i = 0; i < want; i++) {
        if (rng) {
            int j = i + sd_rng_int(rng, n - i);
            int t = list[i];
            list[i] = list[j];
            list[j] = t;
        }
        mark[list[i]] = 1;
    }
}

void sd_box_sample(int n, const int *labels, int batch, float pos_frac, sd_rng *rng, uint8_t *pos, uint8_t *neg)
{
    int *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p), *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
    int np = 0, nq = 0;
    if (n <= 0)
        goto done;
    memset(pos, 0, (size_t)n);
    memset(neg, 0, (size_t)n);
    if (!p || !q)
        goto done;
    for (int i = 0; i < n; i++) {
        if (labels[i] >= 1)
            p[np++] = i;
        else if (labels[i] == 0)
            q[nq++] = i;
    }
    int want_p = (int)(batch * pos_frac);
    want_p = np < want_p ? np : want_p;
    int want_q = batch - want_p < nq ? batch - want_p : nq;
    pick(p, np, want_p, rng, pos);
    pick(q, nq, want_q, rng, neg);
done:
    free(p);
    free(q);
}
