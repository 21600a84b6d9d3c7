/* Rasterisation of a synthetic scene with a depth buffer (so occlusion and
 * the label map agree pixel for pixel), then the camera model of the real
 * domain: textures, haze, blur, vignetting, exposure and colour cast, sensor
 * noise and JPEG-style 8x8 DCT quantisation. Scene layout is synth_scene.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth_internal.h"

/* The blur asks for `omp simd`; clang cannot honour it at -O1 with the
 * sanitizers on and would fail the -Werror build over a speed hint. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#define SY_MAX_PARTS_PER_SPRITE 64

static float clampf(float x, float a, float b) { return x < a ? a : x > b ? b : x; }

/* ---- value noise for the real domain's textures ---- */

/* A 256x256 table of uniform values, filled once; lattice noise looks it up
 * with the seed as an offset, which costs far less than hashing every corner. */
#define NT 256
static float noise_tab[NT * NT];
static pthread_once_t noise_once = PTHREAD_ONCE_INIT;

static float normal_tab[4096]; /* N(0,1) quantiles for sensor noise */

static void noise_init(void)
{
    uint32_t x = 0x9e3779b9u;
    for (int i = 0; i < NT * NT; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise_tab[i] = (float)(x >> 8) * (1.0f / 16777216.0f);
    }
    for (int i = 0; i < 4096; i++) { /* inverse CDF by bisection: exact enough, once */
        double p = (i + 0.5) / 4096.0, lo = -6, hi = 6;
        for (int it = 0; it < 60; it++) {
            double mid = 0.5 * (lo + hi);
            if (0.5 * erfc(-mid / sqrt(2.0)) < p)
                lo = mid;
            else
                hi = mid;
        }
        normal_tab[i] = (float)(0.5 * (lo + hi));
    }
}

static inline float vnoise(uint32_t seed, float x, float y)
{
    float fx0 = floorf(x), fy0 = floorf(y);
    int ix = (int)fx0 + (int)(seed & 255), iy = (int)fy0 + (int)((seed >> 8) & 255);
    float fx = x - fx0, fy = y - fy0;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    int x0 = ix & (NT - 1), x1 = (ix + 1) & (NT - 1), y0 = (iy & (NT - 1)) * NT, y1 = ((iy + 1) & (NT - 1)) * NT;
    float a = noise_tab[y0 + x0], b = noise_tab[y0 + x1];
    float c = noise_tab[y1 + x0], d = noise_tab[y1 + x1];
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}

static inline float fracf(float x) { return x - floorf(x); }

/* Brightness factor of a textured surface at metric coordinates (u, v). */
static float tex_factor(int tex, uint32_t seed, float u, float v)
{
    switch (tex) {
    case SY_TEX_ASPHALT:
        return 1 + 0.22f * (vnoise(seed, u * 0.35f, v * 0.35f) - 0.5f) + 0.3f * (vnoise(seed + 1u * 0x9e37u, u * 7, v * 7) - 0.5f);
    case SY_TEX_PAVING: {
        float j = (fracf(u * 2.5f) < 0.08f || fracf(v * 2.5f) < 0.08f) ? 0.78f : 1.0f;
        return j * (1 + 0.25f * (vnoise(seed, u * 2.5f, v * 2.5f) - 0.5f));
    }
    case SY_TEX_GRASS:
        return 1 + 0.55f * (vnoise(seed, u * 5, v * 5) - 0.5f) + 0.35f * (vnoise(seed + 2u * 0x9e37u, u * 0.4f, v * 0.4f) - 0.5f);
    case SY_TEX_LEAVES:
        return 1 + 0.9f * (vnoise(seed, u * 3.5f, v * 3.5f) - 0.5f) + 0.4f * (vnoise(seed + 3u * 0x9e37u, u * 9, v * 9) - 0.5f);
    case SY_TEX_MASONRY: {
        float j = fracf(v * 3.3f) < 0.12f ? 0.88f : 1.0f;
        return j * (1 + 0.3f * (vnoise(seed, u * 0.4f, v * 0.4f) - 0.5f) + 0.12f * (vnoise(seed + 4u * 0x9e37u, u * 6, v * 6) - 0.5f));
    }
    case SY_TEX_CONCRETE:
        return 1 + 0.3f * (vnoise(seed, u * 0.8f, v * 0.8f) - 0.5f) + 0.14f * (vnoise(seed + 5u * 0x9e37u, u * 8, v * 8) - 0.5f);
    case SY_TEX_METAL:
        return 0.85f + 0.3f * vnoise(seed, u * 0.6f, v * 2.5f);
    case SY_TEX_CLOTH:
        return 1 + 0.2f * (vnoise(seed, u * 12, v * 12) - 0.5f);
    case SY_TEX_BARK:
        return 1 + 0.35f * (vnoise(seed, u * 25, v * 3) - 0.5f);
    default:
        return 1;
    }
}

/* ---- parts ---- */

static void part_bbox(const sy_part *p, float bb[4])
{
    const float *a = p->a;
    switch (p->type) {
    case SY_PART_ELLIPSE: bb[0] = a[0] - a[2], bb[1] = a[1] - a[3], bb[2] = a[0] + a[2], bb[3] = a[1] + a[3]; break;
    case SY_PART_RING: bb[0] = a[0] - a[2], bb[1] = a[1] - a[2], bb[2] = a[0] + a[2], bb[3] = a[1] + a[2]; break;
    case SY_PART_TRI:
        bb[0] = fminf(a[0], fminf(a[2], a[4])), bb[2] = fmaxf(a[0], fmaxf(a[2], a[4]));
        bb[1] = fminf(a[1], fminf(a[3], a[5])), bb[3] = fmaxf(a[1], fmaxf(a[3], a[5]));
        break;
    case SY_PART_SEG:
        bb[0] = fminf(a[0], a[2]) - a[4], bb[2] = fmaxf(a[0], a[2]) + a[4];
        bb[1] = fminf(a[1], a[3]) - a[4], bb[3] = fmaxf(a[1], a[3]) + a[4];
        break;
    case SY_PART_WAVY: bb[0] = a[0], bb[1] = a[1], bb[2] = a[2], bb[3] = a[3] + fabsf(a[4]); break;
    default: bb[0] = a[0], bb[1] = a[1], bb[2] = a[2], bb[3] = a[3]; break;
    }
}

/* 0 outside, 1 inside with the main colour, 2 inside with the second colour. */
static int part_hit(const sy_part *p, float u, float v)
{
    const float *a = p->a;
    switch (p->type) {
    case SY_PART_RECT: return 1;
    case SY_PART_ELLIPSE: {
        float du = (u - a[0]) / a[2], dv = (v - a[1]) / a[3];
        return du * du + dv * dv <= 1;
    }
    case SY_PART_RING: {
        float du = u - a[0], dv = v - a[1], r2 = du * du + dv * dv;
        return r2 <= a[2] * a[2] && r2 >= a[3] * a[3];
    }
    case SY_PART_TRI: {
        float e0 = (a[2] - a[0]) * (v - a[1]) - (a[3] - a[1]) * (u - a[0]);
        float e1 = (a[4] - a[2]) * (v - a[3]) - (a[5] - a[3]) * (u - a[2]);
        float e2 = (a[0] - a[4]) * (v - a[5]) - (a[1] - a[5]) * (u - a[4]);
        return (e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0);
    }
    case SY_PART_SEG: {
        float dx = a[2] - a[0], dy = a[3] - a[1], px = u - a[0], py = v - a[1];
        float l2 = dx * dx + dy * dy, t = l2 > 0 ? clampf((px * dx + py * dy) / l2, 0, 1) : 0;
        float ex = px - t * dx, ey = py - t * dy;
        return ex * ex + ey * ey <= a[4] * a[4];
    }
    case SY_PART_WAVY: return v < a[3] + a[4] * sinf(a[5] * u + a[6]);
    case SY_PART_GRID: {
        float fu = fracf((u - a[0]) / a[4]), fv = fracf((v - a[1]) / a[5]);
        float mu = (1 - a[6]) / 2, mv = (1 - a[7]) / 2;
        return (fu >= mu && fu < 1 - mu && fv >= mv && fv < 1 - mv) ? 2 : 1;
    }
    case SY_PART_STRIPES: return fracf((u - a[0]) / a[4]) < a[5] ? 2 : 1;
    default: return 0;
    }
}

typedef struct rast {
    const sy_scene *s;
    float *col, *zb;
    uint8_t *lab;
    int real;
    uint16_t *obj;          /* [h][w] thing object of the pixel (0 none); NULL when not asked for */
    int cur_obj;            /* object of the sprite being drawn */
} rast;

/* Writes a pixel: colour c scaled by k, then mixed with the haze colour by
 * t (aerial perspective, computed once per row, column or sprite). */
static inline void put(rast *R, size_t i, float z, int label, const float *c, float k, float t)
{
    const float *hz = R->s->st.haze;
    R->zb[i] = z;
    R->lab[i] = (uint8_t)label;
    if (R->obj)
        R->obj[i] = (uint16_t)R->cur_obj;
    for (int j = 0; j < 3; j++) {
        float v = c[j] * k;
        R->col[3 * i + j] = v + (hz[j] - v) * t;
    }
}

static inline float haze_t(const sy_scene *s, float z) { return z / (z + s->st.haze_dist) * 0.8f; }

/* Evaluates the sprite's parts at (u, v), topmost (last) first. */
static inline void shade_px(rast *R, const sy_sprite *sp, const sy_part *parts, float (*bb)[4], int n, size_t i,
                            float z, float t, float u, float v)
{
    for (int k = n - 1; k >= 0; k--) {
        const float *b = bb[k];
        if (u < b[0] || u >= b[2] || v < b[1] || v >= b[3])
            continue;
        const sy_part *p = &parts[k];
        int hit = part_hit(p, u, v);
        if (!hit)
            continue;
        float f = sp->shade;
        if (R->real && p->tex)
            f *= tex_factor(p->tex, R->s->tex_seed + (uint32_t)p->tex * 7919u, u + sp->toff, v);
        put(R, i, z, p->label, hit == 2 ? p->col2 : p->col, f, t);
        return;
    }
}

static void draw_sprite(rast *R, const sy_sprite *sp)
{
    const sy_scene *s = R->s;
    int w = s->w, h = s->h, n = sp->nparts < SY_MAX_PARTS_PER_SPRITE ? sp->nparts : SY_MAX_PARTS_PER_SPRITE;
    if (n <= 0)
        return;
    const sy_part *parts = &s->parts[sp->part0];
    R->cur_obj = sp->obj;
    float bb[SY_MAX_PARTS_PER_SPRITE][4];
    for (int k = 0; k < n; k++)
        part_bbox(&parts[k], bb[k]);
    const float f = s->f, cx = s->cx, yh = s->yh, camh = s->camh, znear = 0.3f;
    if (sp->plane == SY_PLANE_FRONT) {
        float z = sp->z;
        if (z < znear)
            return;
        float xa = cx + f * sp->x / z, xb = cx + f * (sp->x + sp->len) / z;
        float ya = yh + f * (camh - sp->vmax) / z, yb = yh + f * (camh - sp->vmin) / z;
        int x0 = (int)fmaxf(0, ceilf(xa - 0.5f)), x1 = (int)fminf((float)w - 1, floorf(xb - 0.5f));
        int y0 = (int)fmaxf(0, ceilf(ya - 0.5f)), y1 = (int)fminf((float)h - 1, floorf(yb - 0.5f));
        float zf = z / f, t = haze_t(s, z);
        for (int y = y0; y <= y1; y++) {
            float v = camh - ((float)y + 0.5f - yh) * zf;
            size_t row = (size_t)y * (size_t)w;
            for (int x = x0; x <= x1; x++) {
                size_t i = row + (size_t)x;
                if (z >= R->zb[i])
                    continue;
                float u = ((float)x + 0.5f - cx) * zf - sp->x;
                shade_px(R, sp, parts, bb, n, i, z, t, u, v);
            }
        }
        return;
    }
    /* side plane X = sp->x, z from sp->z to sp->z + len */
    float X = sp->x, za = fmaxf(sp->z, znear), zb = sp->z + sp->len;
    if (zb <= za || X == 0)
        return;
    float xa = cx + f * X / za, xb = cx + f * X / zb;
    int x0 = (int)fmaxf(0, ceilf(fminf(xa, xb) - 0.5f)), x1 = (int)fminf((float)w - 1, floorf(fmaxf(xa, xb) - 0.5f));
    for (int x = x0; x <= x1; x++) {
        float dx = (float)x + 0.5f - cx;
        if (dx * X <= 0)
            continue;
        float z = f * X / dx;
        if (z < za || z > zb)
            continue;
        float u = z - sp->z, zf = z / f, t = haze_t(s, z);
        float ya = yh + (camh - sp->vmax) / zf, yb = yh + (camh - sp->vmin) / zf;
        int y0 = (int)fmaxf(0, ceilf(ya - 0.5f)), y1 = (int)fminf((float)h - 1, floorf(yb - 0.5f));
        for (int y = y0; y <= y1; y++) {
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            if (z >= R->zb[i])
                continue;
            float v = camh - ((float)y + 0.5f - yh) * zf;
            shade_px(R, sp, parts, bb, n, i, z, t, u, v);
        }
    }
}

/* ---- sky and ground ---- */

static const sy_segment *seg_at(const sy_scene *s, int side, float z)
{
    for (int i = 0; i < s->nseg[side]; i++)
        if (z >= s->seg[side][i].z0 && z < s->seg[side][i].z1)
            return &s->seg[side][i];
    return NULL;
}

static void draw_background(rast *R)
{
    const sy_scene *s = R->s;
    const sy_style *st = &s->st;
    int w = s->w, h = s->h;
    const float f = s->f, cx = s->cx, yh = s->yh;
    const int has_cross = s->cross_z1 > s->cross_z0;
    uint32_t ts = s->tex_seed;
    for (int y = 0; y < h; y++) {
        float yc = (float)y + 0.5f;
        size_t row = (size_t)y * (size_t)w;
        if (yc <= yh) {
            float elev = (yh - yc) / f;
            float t = clampf(elev / 0.45f, 0, 1);
            t = sqrtf(t);
            float base[3];
            for (int c = 0; c < 3; c++)
                base[c] = st->sky_hor[c] + (st->sky_top[c] - st->sky_hor[c]) * t;
            for (int x = 0; x < w; x++) {
                size_t i = row + (size_t)x;
                if (R->zb[i] < INFINITY)
                    continue;
                const float *c = base;
                float m = 0, az = ((float)x + 0.5f - cx) / f;
                if (R->real) {
                    float nn = vnoise(ts + 11u * 0x9e37u, az * 3.0f, elev * 9.0f) * 0.65f + vnoise(ts + 12u * 0x9e37u, az * 9, elev * 27) * 0.35f;
                    m = clampf((nn - (1 - st->cloud_amt) * 0.7f - 0.2f) * 2.5f, 0, 1) * 0.85f;
                } else if (vnoise(ts + 11u * 0x9e37u, az * 2.5f, elev * 10.0f) > 0.78f && elev > 0.03f) {
                    m = 1;
                }
                float out[3];
                for (int k = 0; k < 3; k++)
                    out[k] = c[k] + (st->cloud[k] - c[k]) * m;
                put(R, i, INFINITY, SY_SKY, out, 1, 0);
            }
            continue;
        }
        float z = f * s->camh / (yc - yh), zf = z / f, ht = haze_t(s, z);
        const sy_segment *sg[2] = {seg_at(s, 0, z), seg_at(s, 1, z)};
        int cross = has_cross && z >= s->cross_z0 && z < s->cross_z1;
        int zebra = has_cross && z >= s->cross_z0 - 4.5f && z < s->cross_z0 - 1.0f;
        int dash = fracf(z / 9.0f) < 0.4f;
        /* building shadows on the sun side */
        float shadow_from = INFINITY;
        if (R->real && st->sun_side != 0) {
            int sd = st->sun_side > 0;
            const sy_segment *g = sg[sd];
            if (g && (g->kind == SY_SEG_BUILDING || g->kind == SY_SEG_GARDEN)) {
                float xo = sd ? s->xr + s->verge[1] + s->sw[1] : -(s->xl - s->verge[0] - s->sw[0]);
                shadow_from = xo + g->xf - g->height * st->shadow_k; /* in |X| on the sun side */
            }
        }
        int act[SY_MAX_SHADOWS], nact = 0;
        for (int k = 0; k < s->nshadows; k++)
            if (z >= s->shadows[k].z0 && z <= s->shadows[k].z1)
                act[nact++] = k;
        for (int x = 0; x < w; x++) {
            size_t i = row + (size_t)x;
            if (z >= R->zb[i])
                continue;
            float X = ((float)x + 0.5f - cx) * zf;
            int label, tex = SY_TEX_NONE;
            const float *c;
            float k = 1;
            if ((X >= s->xl && X <= s->xr) || cross) {
                label = SY_ROAD, c = st->road, tex = SY_TEX_ASPHALT;
                if (X >= s->xl && X <= s->xr) {
                    float li = (X - s->xl_lanes) / s->lane_w;
                    float ri = floorf(li + 0.5f);
                    int nl = (int)ri;
                    if (nl >= 0 && nl <= s->lanes && fabsf(X - (s->xl_lanes + ri * s->lane_w)) < 0.075f) {
                        int centre = nl == s->lanes_left && s->lanes_left > 0;
                        int edge = nl == 0 || nl == s->lanes;
                        if (edge || centre || dash)
                            c = st->mark, tex = SY_TEX_CONCRETE;
                    }
                    if (zebra && X > s->xl_lanes && X < s->xr_lanes && fracf(X * 0.9f) < 0.5f)
                        c = st->mark, tex = SY_TEX_CONCRETE;
                    if (s->tram && (fabsf(X - s->tram_x - 0.72f) < 0.05f || fabsf(X - s->tram_x + 0.72f) < 0.05f))
                        c = st->rail, tex = SY_TEX_METAL;
                }
            } else {
                int sd = X > s->xr;
                float d = sd ? X - s->xr : s->xl - X;
                if (d < s->verge[sd]) {
                    label = SY_TERRAIN, c = st->terrain, tex = SY_TEX_GRASS;
                } else if (d < s->verge[sd] + s->sw[sd]) {
                    label = SY_SIDEWALK, tex = SY_TEX_PAVING;
                    c = d - s->verge[sd] < 0.25f ? st->curb : st->sidewalk;
                } else if (sg[sd] && sg[sd]->yard_tex) {
                    label = SY_TERRAIN, c = st->terrain, tex = SY_TEX_GRASS;
                } else {
                    label = SY_SIDEWALK, c = st->yard, tex = SY_TEX_PAVING;
                }
            }
            if (shadow_from < INFINITY && (st->sun_side > 0 ? X : -X) > shadow_from)
                k *= 0.62f;
            for (int a = 0; a < nact; a++) {
                const sy_shadow *sh = &s->shadows[act[a]];
                if (X >= sh->x0 && X <= sh->x1)
                    k *= sh->k;
            }
            if (R->real && tex)
                k *= tex_factor(tex, ts + (uint32_t)tex * 7919u, X, z);
            put(R, i, z, label, c, k, ht);
        }
    }
}

static void draw_hood(rast *R)
{
    const sy_scene *s = R->s;
    int w = s->w, h = s->h;
    for (int x = 0; x < w; x++) {
        float t = ((float)x + 0.5f - 0.5f * (float)w) / (0.5f * (float)w);
        float top = (float)h * (s->ego_top + 0.05f * t * t);
        int y0 = (int)ceilf(top - 0.5f);
        for (int y = y0 < 0 ? 0 : y0; y < h; y++) {
            float d = ((float)y + 0.5f - top) / (0.04f * (float)h);
            float k = 0.8f + 0.9f * expf(-d) * (0.6f + 0.4f * (1 - t * t));
            put(R, (size_t)y * (size_t)w + (size_t)x, 0, SY_EGO, s->st.hood, k, 0);
        }
    }
}

/* ---- the camera of the real domain ---- */

static sd_status blur(float *img, int w, int h, float sigma)
{
    if (sigma < 0.2f)
        return SD_OK;
    int r = (int)ceilf(2.5f * sigma);
    if (r > 32)
        r = 32;
    float kern[65], sum = 0;
    for (int i = -r; i <= r; i++)
        sum += kern[i + r] = expf(-(float)(i * i) / (2 * sigma * sigma));
    for (int i = 0; i < 2 * r + 1; i++)
        kern[i] /= sum;
    size_t row3 = (size_t)w * 3;
    float *tmp = sd_malloc((row3 * (size_t)h + (size_t)(w + 2 * r) * 3) * sizeof(float));
    if (!tmp)
        return SD_ERR_NOMEM;
    float *pad = tmp + row3 * (size_t)h;
    /* rows: replicate the border into a padded copy so the taps need no clamping */
    for (int y = 0; y < h; y++) {
        const float *src = img + (size_t)y * row3;
        for (int x = -r; x < w + r; x++) {
            int xx = x < 0 ? 0 : x >= w ? w - 1 : x;
            memcpy(pad + (size_t)(x + r) * 3, src + (size_t)xx * 3, 3 * sizeof(float));
        }
        float *restrict dst = tmp + (size_t)y * row3;
        for (size_t i = 0; i < row3; i++)
            dst[i] = 0;
        for (int k = 0; k <= 2 * r; k++) {
            const float kk = kern[k], *restrict p = pad + (size_t)k * 3;
#pragma omp simd
            for (size_t i = 0; i < row3; i++)
                dst[i] += kk * p[i];
        }
    }
    for (int y = 0; y < h; y++) {
        float *restrict dst = img + (size_t)y * row3;
        for (size_t i = 0; i < row3; i++)
            dst[i] = 0;
        for (int k = -r; k <= r; k++) {
            int yy = y + k < 0 ? 0 : y + k >= h ? h - 1 : y + k;
            const float kk = kern[k + r], *restrict p = tmp + (size_t)yy * row3;
#pragma omp simd
            for (size_t i = 0; i < row3; i++)
                dst[i] += kk * p[i];
        }
    }
    free(tmp);
    return SD_OK;
}

static const float dct_c[8][8] = {
#define C0 0.35355339f
    {C0, C0, C0, C0, C0, C0, C0, C0},
    {0.49039264f, 0.41573481f, 0.27778512f, 0.09754516f, -0.09754516f, -0.27778512f, -0.41573481f, -0.49039264f},
    {0.46193977f, 0.19134172f, -0.19134172f, -0.46193977f, -0.46193977f, -0.19134172f, 0.19134172f, 0.46193977f},
    {0.41573481f, -0.09754516f, -0.49039264f, -0.27778512f, 0.27778512f, 0.49039264f, 0.09754516f, -0.41573481f},
    {C0, -C0, -C0, C0, C0, -C0, -C0, C0},
    {0.27778512f, -0.49039264f, 0.09754516f, 0.41573481f, -0.41573481f, -0.09754516f, 0.49039264f, -0.27778512f},
    {0.19134172f, -0.46193977f, 0.46193977f, -0.19134172f, -0.19134172f, 0.46193977f, -0.46193977f, 0.19134172f},
    {0.09754516f, -0.27778512f, 0.41573481f, -0.49039264f, 0.49039264f, -0.41573481f, 0.27778512f, -0.09754516f},
#undef C0
};

static const uint8_t q_luma[64] = {16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                                   14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                                   18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                                   49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
static const uint8_t q_chroma[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                                     24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                                     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                                     99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

/* Quantises a plane in 8x8 blocks as a JPEG encoder would (orthonormal DCT,
 * the IJG tables scaled to `quality`); edge blocks are padded by repetition. */
static void dct_quantise(float *pl, int pw, int ph, const uint8_t *table, int quality)
{
    float q[64];
    int sc = quality < 50 ? 5000 / quality : 200 - 2 * quality;
    for (int i = 0; i < 64; i++) {
        int v = ((int)table[i] * sc + 50) / 100;
        q[i] = (float)(v < 1 ? 1 : v > 255 ? 255 : v);
    }
    float blk[8][8], t[8][8];
    for (int by = 0; by < ph; by += 8)
        for (int bx = 0; bx < pw; bx += 8) {
            for (int y = 0; y < 8; y++) {
                int yy = by + y < ph ? by + y : ph - 1;
                for (int x = 0; x < 8; x++) {
                    int xx = bx + x < pw ? bx + x : pw - 1;
                    blk[y][x] = pl[(size_t)yy * pw + xx] - 128;
                }
            }
            for (int u = 0; u < 8; u++) /* t = C * blk */
                for (int x = 0; x < 8; x++) {
                    float a = 0;
                    for (int y = 0; y < 8; y++)
                        a += dct_c[u][y] * blk[y][x];
                    t[u][x] = a;
                }
            for (int u = 0; u < 8; u++) /* F = t * C^T, quantised */
                for (int v = 0; v < 8; v++) {
                    float a = 0;
                    for (int x = 0; x < 8; x++)
                        a += t[u][x] * dct_c[v][x];
                    float qq = q[u * 8 + v];
                    float t2 = a / qq;
                    blk[u][v] = (float)(int)(t2 + (t2 >= 0 ? 0.5f : -0.5f)) * qq;
                }
            for (int u = 0; u < 8; u++) /* t = F * C */
                for (int x = 0; x < 8; x++) {
                    float a = 0;
                    for (int v = 0; v < 8; v++)
                        a += blk[u][v] * dct_c[v][x];
                    t[u][x] = a;
                }
            for (int y = 0; y < 8 && by + y < ph; y++) /* X = C^T * t */
                for (int x = 0; x < 8 && bx + x < pw; x++) {
                    float a = 0;
                    for (int u = 0; u < 8; u++)
                        a += dct_c[u][y] * t[u][x];
                    pl[(size_t)(by + y) * pw + bx + x] = a + 128;
                }
        }
}

static sd_status jpeg_artefacts(uint8_t *rgb, int w, int h, int quality)
{
    int w2 = (w + 1) / 2, h2 = (h + 1) / 2;
    size_t n = (size_t)w * h, n2 = (size_t)w2 * h2;
    float *Y = sd_malloc((n + 2 * n2) * sizeof(float));
    if (!Y)
        return SD_ERR_NOMEM;
    float *Cb = Y + n, *Cr = Cb + n2;
    memset(Cb, 0, 2 * n2 * sizeof(float));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x, j = (size_t)(y / 2) * w2 + x / 2;
            float r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
            Y[i] = 0.299f * r + 0.587f * g + 0.114f * b;
            Cb[j] += 0.25f * (128 - 0.168736f * r - 0.331264f * g + 0.5f * b);
            Cr[j] += 0.25f * (128 + 0.5f * r - 0.418688f * g - 0.081312f * b);
        }
    /* odd sizes: the last chroma row/column averaged fewer pixels */
    if (w & 1)
        for (int y = 0; y < h2; y++)
            Cb[(size_t)y * w2 + w2 - 1] *= 2, Cr[(size_t)y * w2 + w2 - 1] *= 2;
    if (h & 1)
        for (int x = 0; x < w2; x++)
            Cb[(size_t)(h2 - 1) * w2 + x] *= 2, Cr[(size_t)(h2 - 1) * w2 + x] *= 2;
    dct_quantise(Y, w, h, q_luma, quality);
    dct_quantise(Cb, w2, h2, q_chroma, quality);
    dct_quantise(Cr, w2, h2, q_chroma, quality);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x, j = (size_t)(y / 2) * w2 + x / 2;
            float yy = Y[i], cb = Cb[j] - 128, cr = Cr[j] - 128;
            float v[3] = {yy + 1.402f * cr, yy - 0.344136f * cb - 0.714136f * cr, yy + 1.772f * cb};
            for (int c = 0; c < 3; c++)
                rgb[3 * i + c] = (uint8_t)clampf(v[c] + 0.5f, 0, 255);
        }
    free(Y);
    return SD_OK;
}

static sd_status camera_real(const sy_scene *s, sd_rng *rng, float *col, uint8_t *rgb)
{
    const sy_style *st = &s->st;
    int w = s->w, h = s->h;
    if (blur(col, w, h, st->blur_sigma * (float)w / 256.0f))
        return SD_ERR_NOMEM;
    uint8_t lut[3][1024];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 1024; i++) {
            float v = clampf((float)i / (4.0f * 255.0f) * st->exposure * st->cast[c], 0, 1);
            lut[c][i] = (uint8_t)(255.0f * powf(v, st->gamma) + 0.5f);
        }
    uint64_t ns = sd_rng_u64(rng) | 1;
    float sig = st->noise_sigma;
    for (int y = 0; y < h; y++) {
        float dy = ((float)y + 0.5f - 0.5f * (float)h) / (0.5f * (float)h);
        for (int x = 0; x < w; x++) {
            float dx = ((float)x + 0.5f - 0.5f * (float)w) / (0.5f * (float)w);
            float vig = 1 - st->vignette * 0.5f * (dx * dx + dy * dy);
            size_t i = (size_t)y * w + x;
            ns ^= ns >> 12, ns ^= ns << 25, ns ^= ns >> 27;
            uint64_t bits = ns * 0x2545f4914f6cdd1dULL;
            float gl = normal_tab[bits >> 52];
            for (int c = 0; c < 3; c++) {
                int li = (int)(col[3 * i + c] * vig * 4.0f + 0.5f);
                li = li < 0 ? 0 : li > 1023 ? 1023 : li;
                float v = (float)lut[c][li] + sig * (0.7f * gl + 0.5f * normal_tab[(bits >> (12 * c)) & 4095]);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                rgb[3 * i + c] = (uint8_t)(v + 0.5f);
            }
        }
    }
    return jpeg_artefacts(rgb, w, h, st->jpeg_quality);
}

static float sprite_key(const sy_sprite *sp) { return sp->plane == SY_PLANE_FRONT ? sp->z : fmaxf(sp->z, 0.3f); }

/* Insertion sort by nearest depth, ties by index: deterministic everywhere
 * and fast on the few hundred sprites, which come out of the builder partly
 * ordered. */
static void sort_sprites(const sy_scene *s, int *order)
{
    for (int i = 0; i < s->nsprites; i++) {
        int j = i;
        float k = sprite_key(&s->sprites[i]);
        while (j > 0 && sprite_key(&s->sprites[order[j - 1]]) > k) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

/* Instance ids from the label and object maps: (object, thing label) pairs
 * that are visible get k = 0, 1, ... per label in object order (as
 * cityscapesScripts numbers the polygons of a frame); a thing pixel of no
 * object (none are drawn so) would keep its plain label id, like a crowd. */
static sd_status encode_instances(const sy_scene *s, const uint8_t *lab, const uint16_t *obj, uint16_t *inst)
{
    enum { NL = SY_BICYCLE - SY_PERSON + 1 };
    size_t n = (size_t)s->w * s->h, nk = (size_t)(s->nobj + 1) * NL;
    int *k = sd_malloc(nk * sizeof *k);
    if (!k)
        return sd_fail(SD_ERR_NOMEM, "synth: cannot allocate instance buffers");
    for (size_t j = 0; j < nk; j++)
        k[j] = -1;
    for (size_t i = 0; i < n; i++)
        if (obj[i] && lab[i] >= SY_PERSON && lab[i] <= SY_BICYCLE)
            k[(size_t)obj[i] * NL + (lab[i] - SY_PERSON)] = 0;
    int next[NL] = {0};
    for (size_t j = 0; j < nk; j++)
        if (k[j] == 0)
            k[j] = next[j % NL]++;
    for (size_t i = 0; i < n; i++) {
        int kk = obj[i] && lab[i] >= SY_PERSON && lab[i] <= SY_BICYCLE ? k[(size_t)obj[i] * NL + (lab[i] - SY_PERSON)] : -1;
        inst[i] = kk >= 0 ? (uint16_t)(lab[i] * 1000 + kk) : lab[i];
    }
    free(k);
    return SD_OK;
}

sd_status sy_scene_render(const sy_scene *s, sd_rng *rng, uint8_t *rgb, uint8_t *ids, uint16_t *inst)
{
    int w = s->w, h = s->h;
    size_t n = (size_t)w * h;
    pthread_once(&noise_once, noise_init);
    rast R = {s, sd_malloc(n * 3 * sizeof(float)), sd_malloc(n * sizeof(float)), sd_malloc(n), s->st.real,
              inst ? sd_malloc(n * sizeof(uint16_t)) : NULL, 0};
    if (!R.col || !R.zb || !R.lab || (inst && !R.obj)) {
        free(R.col), free(R.zb), free(R.lab), free(R.obj);
        return sd_fail(SD_ERR_NOMEM, "synth: cannot allocate buffers for a %dx%d image", w, h);
    }
    if (R.obj)
        memset(R.obj, 0, n * sizeof(uint16_t));
    /* Near to far, background last: the depth test then rejects hidden
     * pixels before their parts and textures are evaluated. */
    for (size_t i = 0; i < n; i++)
        R.zb[i] = INFINITY;
    if (s->ego)
        draw_hood(&R);
    int *order = sd_malloc((size_t)(s->nsprites + 1) * sizeof(int));
    if (!order) {
        free(R.col), free(R.zb), free(R.lab), free(R.obj);
        return sd_fail(SD_ERR_NOMEM, "synth: cannot allocate buffers for a %dx%d image", w, h);
    }
    sort_sprites(s, order);
    for (int i = 0; i < s->nsprites; i++)
        draw_sprite(&R, &s->sprites[order[i]]);
    free(order);
    R.cur_obj = 0;
    draw_background(&R);
    sd_status st = SD_OK;
    if (rgb) {
        if (s->st.real) {
            st = camera_real(s, rng, R.col, rgb);
        } else {
            for (size_t i = 0; i < 3 * n; i++)
                rgb[i] = (uint8_t)clampf(R.col[i] + 0.5f, 0, 255);
        }
    }
    if (ids)
        memcpy(ids, R.lab, n);
    if (inst && st == SD_OK)
        st = encode_instances(s, R.lab, R.obj, inst);
    free(R.col), free(R.zb), free(R.lab), free(R.obj);
    if (st != SD_OK)
        return sd_fail(st, "synth: cannot allocate buffers for a %dx%d image", w, h);
    return SD_OK;
}
