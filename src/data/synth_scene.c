/* Scene layout for the synthetic benchmark: camera, street geometry, the
 * objects along it, and each domain's palette and camera look. Everything is
 * in metres and independent of the image size; rasterisation lives in
 * synth_render.c. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "data/synth_internal.h"

static float U(sd_rng *r, float a, float b) { return a + (b - a) * sd_rng_uniform(r); }
static int chance(sd_rng *r, float p) { return sd_rng_uniform(r) < p; }
static float clampf(float x, float a, float b) { return x < a ? a : x > b ? b : x; }

static void set3(float *d, float r, float g, float b)
{
    d[0] = r;
    d[1] = g;
    d[2] = b;
}
static void cp3(float *d, const float *s) { memcpy(d, s, 3 * sizeof(float)); }
static void scale3(float *d, const float *s, float k)
{
    for (int i = 0; i < 3; i++)
        d[i] = clampf(s[i] * k, 0, 255);
}

/* Per-image palette variation: overall brightness and a little per channel. */
static void jit(sd_rng *r, float *c, float amt)
{
    float b = 1 + amt * U(r, -1, 1);
    for (int i = 0; i < 3; i++)
        c[i] = clampf(c[i] * b * (1 + 0.4f * amt * U(r, -1, 1)), 0, 255);
}

static void hsv(float *d, float hdeg, float s, float v)
{
    float h6 = fmodf(hdeg, 360.f) / 60.f;
    int i = (int)h6;
    float f = h6 - (float)i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r, g, b;
    switch (i) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
    }
    set3(d, r * 255, g * 255, b * 255);
}

/* Vehicle paint and clothes: the game picks vivid colours, the street is
 * mostly grey, black, white and muted tones. */
static void pick_paint(sd_rng *r, const sy_style *st, float *c)
{
    if (!st->real) {
        hsv(c, U(r, 0, 360), U(r, 0.65f, 1), U(r, 0.55f, 1));
    } else if (chance(r, 0.55f)) {
        float g = chance(r, 0.5f) ? U(r, 25, 70) : U(r, 140, 225);
        set3(c, g, g, g * U(r, 0.97f, 1.05f));
    } else {
        hsv(c, U(r, 0, 360), U(r, 0.2f, 0.5f), U(r, 0.3f, 0.7f));
    }
}

static void style_init(sy_style *st, int real, sd_rng *r)
{
    memset(st, 0, sizeof *st);
    st->real = real;
    if (!real) {
        set3(st->road, 104, 86, 124);       /* purple-grey, flat */
        set3(st->mark, 250, 250, 245);
        set3(st->sidewalk, 206, 178, 140);
        set3(st->curb, 235, 230, 215);
        set3(st->terrain, 150, 205, 60);
        set3(st->yard, 196, 188, 170);
        set3(st->sky_top, 30, 105, 245);
        set3(st->sky_hor, 150, 205, 255);
        set3(st->cloud, 250, 250, 255);
        set3(st->haze, 175, 210, 250);
        set3(st->wall, 170, 150, 205);
        set3(st->fence, 215, 160, 80);
        set3(st->fence2, 150, 95, 40);
        set3(st->pole, 95, 110, 140);
        set3(st->tlbox, 35, 35, 40);
        set3(st->veg, 35, 160, 45);
        set3(st->veg2, 20, 120, 40);
        set3(st->trunk, 120, 75, 35);
        set3(st->glass, 70, 170, 225);
        set3(st->tyre, 25, 25, 30);
        set3(st->rail, 60, 60, 70);
        set3(st->trackbed, 120, 100, 80);
        set3(st->hood, 40, 40, 50);
        set3(st->stat, 60, 130, 90);
        st->sat = 1;
        st->haze_dist = 900;
        st->shade_lit = 1.0f, st->shade_dark = 0.8f, st->shade_front = 0.92f;
        st->sun_side = 0;
    } else {
        set3(st->road, 88, 88, 92);         /* grey asphalt, textured */
        set3(st->mark, 205, 205, 200);
        set3(st->sidewalk, 150, 138, 132);
        set3(st->curb, 170, 168, 162);
        set3(st->terrain, 112, 118, 68);
        set3(st->yard, 140, 135, 125);
        set3(st->sky_top, 125, 150, 185);
        set3(st->sky_hor, 205, 212, 222);
        set3(st->cloud, 225, 228, 232);
        set3(st->haze, 190, 196, 205);
        set3(st->wall, 165, 155, 112);
        set3(st->fence, 125, 108, 82);
        set3(st->fence2, 78, 72, 60);
        set3(st->pole, 88, 90, 92);
        set3(st->tlbox, 30, 30, 28);
        set3(st->veg, 62, 84, 40);
        set3(st->veg2, 45, 62, 32);
        set3(st->trunk, 72, 62, 52);
        set3(st->glass, 52, 58, 64);
        set3(st->tyre, 28, 28, 28);
        set3(st->rail, 120, 118, 112);
        set3(st->trackbed, 105, 95, 85);
        set3(st->hood, 38, 40, 44);
        set3(st->stat, 75, 80, 78);
        st->sat = 0.4f;
        st->blur_sigma = U(r, 0.55f, 0.95f);
        st->vignette = U(r, 0.2f, 0.45f);
        st->noise_sigma = U(r, 2.5f, 7.0f);
        st->haze_dist = U(r, 150, 400);
        st->exposure = U(r, 0.8f, 1.15f);
        st->gamma = U(r, 0.85f, 1.2f);
        for (int i = 0; i < 3; i++)
            st->cast[i] = 1 + 0.09f * U(r, -1, 1);
        st->jpeg_quality = (int)U(r, 30, 70);
        st->sun_side = chance(r, 0.4f) ? 0 : (chance(r, 0.5f) ? -1.f : 1.f);
        if (st->sun_side == 0)
            st->shade_lit = 0.9f, st->shade_dark = 0.8f, st->shade_front = 0.85f;
        else
            st->shade_lit = U(r, 1.0f, 1.15f), st->shade_dark = U(r, 0.5f, 0.68f),
            st->shade_front = U(r, 0.7f, 0.95f);
        st->cloud_amt = U(r, 0.1f, 0.8f);
        st->shadow_k = U(r, 0.4f, 1.2f);
    }
    float amt = real ? 0.12f : 0.08f;
    float *all[] = {st->road, st->sidewalk, st->curb, st->terrain, st->yard, st->sky_top, st->sky_hor,
                    st->wall, st->fence, st->fence2, st->pole, st->veg, st->veg2, st->trunk, st->glass};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        jit(r, all[i], amt);
}

/* ---- sprite construction ---- */

static sy_sprite *spr_begin(sy_scene *s, int plane, float x, float z, float len, float vmax)
{
    if (s->nsprites >= SY_MAX_SPRITES || s->nparts > SY_MAX_PARTS - 64 || len <= 0 || z <= 0)
        return NULL;
    sy_sprite *sp = &s->sprites[s->nsprites++];
    memset(sp, 0, sizeof *sp);
    sp->plane = (uint8_t)plane;
    sp->x = x, sp->z = z, sp->len = len, sp->vmin = 0, sp->vmax = vmax;
    if (plane == SY_PLANE_FRONT)
        sp->shade = s->st.shade_front;
    else if (s->st.sun_side == 0)
        sp->shade = s->st.shade_dark;
    else
        sp->shade = ((x < 0) == (s->st.sun_side > 0)) ? s->st.shade_lit : s->st.shade_dark;
    sp->toff = (float)(s->nsprites * 37 % 101) * 3.7f;
    sp->part0 = s->nparts;
    return sp;
}

static sy_part *part(sy_scene *s, sy_sprite *sp, int type, int label, int tex, const float *col)
{
    if (!sp || s->nparts >= SY_MAX_PARTS)
        return &s->sink;
    sy_part *p = &s->parts[s->nparts++];
    sp->nparts++;
    memset(p, 0, sizeof *p);
    p->type = (uint8_t)type, p->label = (uint8_t)label, p->tex = (uint8_t)tex;
    cp3(p->col, col);
    cp3(p->col2, col);
    return p;
}

static sy_part *rect(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, int label, int tex,
                     const float *col)
{
    sy_part *p = part(s, sp, SY_PART_RECT, label, tex, col);
    p->a[0] = fminf(u0, u1), p->a[1] = fminf(v0, v1), p->a[2] = fmaxf(u0, u1), p->a[3] = fmaxf(v0, v1);
    return p;
}

static sy_part *ellipse(sy_scene *s, sy_sprite *sp, float cu, float cv, float ru, float rv, int label, int tex,
                        const float *col)
{
    sy_part *p = part(s, sp, SY_PART_ELLIPSE, label, tex, col);
    p->a[0] = cu, p->a[1] = cv, p->a[2] = ru, p->a[3] = rv;
    return p;
}

static sy_part *ring(sy_scene *s, sy_sprite *sp, float cu, float cv, float ro, float ri, int label,
                     const float *col)
{
    sy_part *p = part(s, sp, SY_PART_RING, label, SY_TEX_NONE, col);
    p->a[0] = cu, p->a[1] = cv, p->a[2] = ro, p->a[3] = ri;
    return p;
}

static sy_part *tri(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, float u2, float v2,
                    int label, int tex, const float *col)
{
    sy_part *p = part(s, sp, SY_PART_TRI, label, tex, col);
    p->a[0] = u0, p->a[1] = v0, p->a[2] = u1, p->a[3] = v1, p->a[4] = u2, p->a[5] = v2;
    return p;
}

static sy_part *seg(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, float hw, int label,
                    const float *col)
{
    sy_part *p = part(s, sp, SY_PART_SEG, label, SY_TEX_NONE, col);
    p->a[0] = u0, p->a[1] = v0, p->a[2] = u1, p->a[3] = v1, p->a[4] = hw;
    return p;
}

static sy_part *wavy(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, float amp, float freq,
                     float ph, int label, int tex, const float *col)
{
    sy_part *p = part(s, sp, SY_PART_WAVY, label, tex, col);
    p->a[0] = u0, p->a[1] = v0, p->a[2] = u1, p->a[3] = v1, p->a[4] = amp, p->a[5] = freq, p->a[6] = ph;
    return p;
}

static sy_part *grid(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, float cu, float cv,
                     float fu, float fv, int label, int tex, const float *col, const float *col2)
{
    sy_part *p = part(s, sp, SY_PART_GRID, label, tex, col);
    p->a[0] = fminf(u0, u1), p->a[1] = v0, p->a[2] = fmaxf(u0, u1), p->a[3] = v1, p->a[4] = cu, p->a[5] = cv, p->a[6] = fu,
    p->a[7] = fv;
    cp3(p->col2, col2);
    return p;
}

static sy_part *stripes(sy_scene *s, sy_sprite *sp, float u0, float v0, float u1, float v1, float period,
                        float frac, int label, int tex, const float *col, const float *col2)
{
    sy_part *p = part(s, sp, SY_PART_STRIPES, label, tex, col);
    p->a[0] = fminf(u0, u1), p->a[1] = v0, p->a[2] = fmaxf(u0, u1), p->a[3] = v1, p->a[4] = period, p->a[5] = frac;
    cp3(p->col2, col2);
    return p;
}

static void add_shadow(sy_scene *s, float x0, float x1, float z0, float z1, float k)
{
    if (!s->st.real || s->nshadows >= SY_MAX_SHADOWS)
        return;
    sy_shadow *sh = &s->shadows[s->nshadows++];
    sh->x0 = x0, sh->x1 = x1, sh->z0 = z0, sh->z1 = z1, sh->k = k;
}

/* ---- buildings, walls, fences, vegetation ---- */

static void facade_parts(sy_scene *s, sy_sprite *sp, sd_rng *r, float len, float H, const float *wallc)
{
    const sy_style *st = &s->st;
    float glass[3], dark[3], shop[3];
    cp3(glass, st->glass);
    if (!st->real)
        hsv(glass, U(r, 180, 230), U(r, 0.4f, 0.8f), U(r, 0.75f, 0.95f));
    jit(r, glass, 0.1f);
    scale3(dark, wallc, 0.7f);
    scale3(shop, glass, st->real ? 0.8f : 1.1f);
    rect(s, sp, 0, 0, len, H, SY_BUILDING, SY_TEX_MASONRY, wallc);
    float cu = U(r, 2.4f, 4.0f), cv = U(r, 2.9f, 3.4f);
    if (H > 5)
        grid(s, sp, 0.3f, 3.8f, len - 0.3f, H - 1.0f, cu, cv, U(r, 0.35f, 0.6f), U(r, 0.4f, 0.6f), SY_BUILDING,
             SY_TEX_MASONRY, wallc, glass);
    grid(s, sp, 0.5f, 0.35f, len - 0.5f, 3.0f, U(r, 3, 6), 2.65f, U(r, 0.6f, 0.85f), 0.85f, SY_BUILDING,
         SY_TEX_MASONRY, wallc, shop);
    rect(s, sp, 0, H - 0.5f, len, H, SY_BUILDING, SY_TEX_CONCRETE, dark);
    rect(s, sp, 0, 3.2f, len, 3.45f, SY_BUILDING, SY_TEX_CONCRETE, dark);
}

static void building_colour(sd_rng *r, const sy_style *st, float *c)
{
    static const float sim[][3] = {{215, 120, 80}, {232, 210, 150}, {170, 182, 205}, {205, 95, 90},
                                   {242, 240, 228}, {160, 210, 180}};
    static const float real[][3] = {{128, 110, 96}, {165, 156, 142}, {112, 106, 100}, {150, 122, 102},
                                    {186, 180, 170}, {140, 140, 135}};
    int i = sd_rng_int(r, 6);
    cp3(c, st->real ? real[i] : sim[i]);
    jit(r, c, 0.1f);
}

/* A facade along the street (side plane at lateral X) and its end facing the camera. */
static void add_building(sy_scene *s, sd_rng *r, float X, float z0, float z1, float H)
{
    float c[3];
    building_colour(r, &s->st, c);
    sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, z0, z1 - z0, H);
    if (sp)
        facade_parts(s, sp, r, z1 - z0, H, c);
    float depth = 25;
    sp = spr_begin(s, SY_PLANE_FRONT, X > 0 ? X : X - depth, z0, depth, H);
    if (sp)
        facade_parts(s, sp, r, depth, H, c);
}

static void add_tree(sy_scene *s, sd_rng *r, float xc, float z, float scale)
{
    const sy_style *st = &s->st;
    float trunk_h = U(r, 1.8f, 3.2f) * scale, cr = U(r, 1.4f, 2.6f) * scale;
    float wdt = 2.6f * cr;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - wdt / 2, z, wdt, trunk_h + 2.4f * cr);
    if (!sp)
        return;
    float c = wdt / 2, tw = U(r, 0.12f, 0.2f) * scale;
    float v1[3], v2[3];
    cp3(v1, st->veg), cp3(v2, st->veg2);
    jit(r, v1, 0.1f), jit(r, v2, 0.1f);
    rect(s, sp, c - tw, 0, c + tw, trunk_h + cr * 0.5f, SY_VEG, SY_TEX_BARK, st->trunk);
    int n = 3 + sd_rng_int(r, 3);
    for (int i = 0; i < n; i++) {
        float ru = cr * U(r, 0.55f, 0.8f), rv = ru * U(r, 0.8f, 1.1f);
        float cu = c + U(r, -0.55f, 0.55f) * cr, cv = trunk_h + cr * U(r, 0.7f, 1.5f);
        cu = clampf(cu, ru, wdt - ru);
        ellipse(s, sp, cu, cv, ru, rv, SY_VEG, SY_TEX_LEAVES, (i & 1) ? v2 : v1);
    }
    ellipse(s, sp, c, trunk_h + cr, cr * 0.8f, cr * 0.75f, SY_VEG, SY_TEX_LEAVES, v1);
}

/* Low boundary along the sidewalk's outer edge: wall, fence or hedge. */
static void add_boundary(sy_scene *s, sd_rng *r, float X, float z0, float z1, int kind)
{
    const sy_style *st = &s->st;
    float len = z1 - z0;
    if (kind == 0) { /* wall */
        float H = U(r, 1.0f, 2.6f);
        sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, z0, len, H);
        float top[3];
        scale3(top, st->wall, 1.2f);
        rect(s, sp, 0, 0, len, H, SY_WALL, SY_TEX_CONCRETE, st->wall);
        rect(s, sp, 0, H - 0.15f, len, H, SY_WALL, SY_TEX_CONCRETE, top);
        if (chance(r, 0.5f)) {
            float pil[3];
            scale3(pil, st->wall, 0.85f);
            stripes(s, sp, 0, 0, len, H, U(r, 2.5f, 4), 0.12f, SY_WALL, SY_TEX_CONCRETE, st->wall, pil);
        }
        sp = spr_begin(s, SY_PLANE_FRONT, X > 0 ? X : X - 0.3f, z0, 0.3f, H);
        rect(s, sp, 0, 0, 0.3f, H, SY_WALL, SY_TEX_CONCRETE, st->wall);
    } else if (kind == 1) { /* fence */
        float H = U(r, 1.0f, 2.0f);
        sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, z0, len, H);
        float per = U(r, 0.12f, 0.3f);
        stripes(s, sp, 0, 0, len, H, per, U(r, 0.3f, 0.6f), SY_FENCE, SY_TEX_METAL, st->fence, st->fence2);
        rect(s, sp, 0, H - 0.1f, len, H, SY_FENCE, SY_TEX_METAL, st->fence2);
        rect(s, sp, 0, H * 0.3f, len, H * 0.3f + 0.08f, SY_FENCE, SY_TEX_METAL, st->fence2);
        stripes(s, sp, 0, 0, len, H + 0.1f, U(r, 2.0f, 3.0f), 0.05f, SY_FENCE, SY_TEX_METAL, st->fence,
                st->fence2);
    } else { /* hedge */
        float H = U(r, 0.8f, 1.8f);
        sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, z0, len, H + 0.3f);
        wavy(s, sp, 0, 0, len, H, 0.15f, U(r, 1.5f, 3), U(r, 0, 6), SY_VEG, SY_TEX_LEAVES, st->veg2);
    }
}

/* ---- street furniture ---- */

static void add_lamp(sy_scene *s, sd_rng *r, float xc, float z, float toward)
{
    const sy_style *st = &s->st;
    float H = U(r, 6.5f, 9.0f), arm = U(r, 1.0f, 2.0f);
    float x0 = toward > 0 ? xc - 0.3f : xc - arm - 0.5f;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, x0, z, arm + 0.8f, H + 0.4f);
    float c = xc - x0;
    rect(s, sp, c - 0.09f, 0, c + 0.09f, H, SY_POLE, SY_TEX_METAL, st->pole);
    seg(s, sp, c, H - 0.1f, c + toward * arm, H + 0.2f, 0.05f, SY_POLE, st->pole);
    rect(s, sp, c + toward * arm - 0.25f, H + 0.05f, c + toward * arm + 0.25f, H + 0.3f, SY_POLE, SY_TEX_METAL,
         st->pole);
}

static void tl_head(sy_scene *s, sy_sprite *sp, sd_rng *r, float cu, float top)
{
    const sy_style *st = &s->st;
    float lamps[3][3];
    set3(lamps[0], 255, 40, 30), set3(lamps[1], 255, 190, 0), set3(lamps[2], 30, 230, 90);
    int lit = sd_rng_int(r, 3);
    rect(s, sp, cu - 0.2f, top - 1.0f, cu + 0.2f, top, SY_LIGHT, SY_TEX_METAL, st->tlbox);
    if (!st->real) {
        float back[3];
        set3(back, 240, 200, 0);
        rect(s, sp, cu - 0.26f, top - 1.05f, cu - 0.2f, top + 0.05f, SY_LIGHT, SY_TEX_NONE, back);
        rect(s, sp, cu + 0.2f, top - 1.05f, cu + 0.26f, top + 0.05f, SY_LIGHT, SY_TEX_NONE, back);
    }
    for (int i = 0; i < 3; i++) {
        float c[3];
        float k = (i == lit) ? 1.0f : (st->real ? 0.18f : 0.45f);
        scale3(c, lamps[i], k);
        ellipse(s, sp, cu, top - 0.18f - 0.31f * (float)i, 0.11f, 0.11f, SY_LIGHT, SY_TEX_NONE, c);
    }
}

static void add_traffic_light(sy_scene *s, sd_rng *r, float xc, float z, float toward, int mast)
{
    const sy_style *st = &s->st;
    float H = U(r, 2.8f, 3.6f), arm = mast ? U(r, 3.0f, 6.0f) : 0;
    float x0 = toward > 0 ? xc - 0.4f : xc - arm - 0.4f;
    float top = mast ? H + 2.8f : H + 1.0f;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, x0, z, arm + 0.8f, top + 0.1f);
    float c = xc - x0;
    rect(s, sp, c - 0.08f, 0, c + 0.08f, mast ? top : H, SY_POLE, SY_TEX_METAL, st->pole);
    tl_head(s, sp, r, c, H + 1.0f);
    if (mast) {
        rect(s, sp, fminf(c, c + toward * arm), top - 0.15f, fmaxf(c, c + toward * arm), top, SY_POLE,
             SY_TEX_METAL, st->pole);
        tl_head(s, sp, r, c + toward * (arm - 0.2f), top - 0.1f);
    }
}

static void add_sign(sy_scene *s, sd_rng *r, float xc, float z)
{
    const sy_style *st = &s->st;
    float H = U(r, 2.0f, 2.8f), R = U(r, 0.3f, 0.45f);
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - 0.6f, z, 1.2f, H + 2 * R + 0.8f);
    float c = 0.6f;
    float red[3], blue[3], yel[3], white[3];
    if (st->real) {
        set3(red, 165, 50, 45), set3(blue, 45, 70, 140), set3(yel, 190, 168, 60), set3(white, 200, 200, 195);
    } else {
        set3(red, 235, 25, 25), set3(blue, 25, 80, 235), set3(yel, 255, 215, 0), set3(white, 255, 255, 255);
    }
    rect(s, sp, c - 0.05f, 0, c + 0.05f, H + R, SY_POLE, SY_TEX_METAL, st->pole);
    int n = chance(r, 0.3f) ? 2 : 1;
    for (int k = 0; k < n; k++) {
        float cv = H + R - (float)k * (2 * R + 0.1f);
        switch (sd_rng_int(r, 4)) {
        case 0: /* prohibition disc */
            ellipse(s, sp, c, cv, R, R, SY_SIGN, SY_TEX_NONE, red);
            ellipse(s, sp, c, cv, R * 0.72f, R * 0.72f, SY_SIGN, SY_TEX_NONE, white);
            break;
        case 1: /* warning triangle */
            tri(s, sp, c - R * 1.1f, cv - R * 0.8f, c + R * 1.1f, cv - R * 0.8f, c, cv + R * 1.1f, SY_SIGN,
                SY_TEX_NONE, red);
            tri(s, sp, c - R * 0.7f, cv - R * 0.55f, c + R * 0.7f, cv - R * 0.55f, c, cv + R * 0.6f, SY_SIGN,
                SY_TEX_NONE, white);
            break;
        case 2: /* blue mandatory disc with an arrow */
            ellipse(s, sp, c, cv, R, R, SY_SIGN, SY_TEX_NONE, blue);
            seg(s, sp, c, cv - R * 0.55f, c, cv + R * 0.5f, R * 0.1f, SY_SIGN, white);
            break;
        default: /* rectangular information sign */
            rect(s, sp, c - R, cv - R * 0.8f, c + R, cv + R * 0.8f, SY_SIGN, SY_TEX_NONE, chance(r, 0.5f) ? blue : yel);
            rect(s, sp, c - R * 0.8f, cv - R * 0.6f, c + R * 0.8f, cv + R * 0.6f, SY_SIGN, SY_TEX_NONE, white);
            rect(s, sp, c - R * 0.5f, cv - R * 0.1f, c + R * 0.5f, cv + R * 0.1f, SY_SIGN, SY_TEX_NONE,
                 chance(r, 0.5f) ? blue : red);
            break;
        }
    }
}

static void add_static(sy_scene *s, sd_rng *r, float xc, float z)
{
    const sy_style *st = &s->st;
    float c[3];
    cp3(c, st->stat);
    jit(r, c, 0.15f);
    int kind = sd_rng_int(r, 3);
    if (kind == 0) { /* bin */
        sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - 0.3f, z, 0.6f, 1.1f);
        rect(s, sp, 0, 0, 0.6f, 1.0f, SY_STATIC, SY_TEX_METAL, c);
        rect(s, sp, -0.02f, 1.0f, 0.62f, 1.1f, SY_STATIC, SY_TEX_METAL, st->tlbox);
    } else if (kind == 1) { /* advertising column */
        sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - 0.6f, z, 1.2f, 3.3f);
        float paper[3];
        pick_paint(r, st, paper);
        rect(s, sp, 0, 0, 1.2f, 3.0f, SY_STATIC, SY_TEX_CLOTH, paper);
        ellipse(s, sp, 0.6f, 3.0f, 0.65f, 0.3f, SY_STATIC, SY_TEX_METAL, c);
    } else { /* bench */
        sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - 0.9f, z, 1.8f, 0.9f);
        rect(s, sp, 0.1f, 0, 0.2f, 0.45f, SY_STATIC, SY_TEX_METAL, st->tlbox);
        rect(s, sp, 1.6f, 0, 1.7f, 0.45f, SY_STATIC, SY_TEX_METAL, st->tlbox);
        rect(s, sp, 0, 0.4f, 1.8f, 0.5f, SY_STATIC, SY_TEX_BARK, st->fence);
        rect(s, sp, 0, 0.65f, 1.8f, 0.85f, SY_STATIC, SY_TEX_BARK, st->fence);
    }
}

/* ---- people ---- */

static void clothes(sd_rng *r, const sy_style *st, float *top, float *bottom, float *skin, float *hair)
{
    if (!st->real) {
        hsv(top, U(r, 0, 360), U(r, 0.6f, 1), U(r, 0.6f, 1));
        hsv(bottom, U(r, 0, 360), U(r, 0.5f, 1), U(r, 0.3f, 0.8f));
    } else {
        hsv(top, U(r, 0, 360), U(r, 0.05f, 0.5f), U(r, 0.12f, 0.75f));
        hsv(bottom, U(r, 200, 240), U(r, 0.1f, 0.45f), U(r, 0.12f, 0.45f));
    }
    float sk = U(r, 0, 1);
    set3(skin, 235 - 140 * sk, 190 - 120 * sk, 160 - 110 * sk);
    float hr = U(r, 0.1f, 0.5f);
    set3(hair, 255 * hr, 200 * hr, 140 * hr);
}

static void add_person(sy_scene *s, sd_rng *r, float xc, float z, float hp)
{
    const sy_style *st = &s->st;
    float k = hp / 1.75f, wdt = 0.8f * k, c = wdt / 2;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - c, z, wdt, hp + 0.05f);
    if (!sp)
        return;
    sp->obj = ++s->nobj;
    float top[3], bot[3], skin[3], hair[3];
    clothes(r, st, top, bot, skin, hair);
    float stride = U(r, 0, 0.18f) * k, hip = 0.5f * hp;
    seg(s, sp, c - 0.07f * k, hip, c - 0.06f * k - stride, 0.05f * k, 0.065f * k, SY_PERSON, bot);
    seg(s, sp, c + 0.07f * k, hip, c + 0.06f * k + stride, 0.05f * k, 0.065f * k, SY_PERSON, bot);
    float sw = U(r, -0.1f, 0.1f) * k;
    seg(s, sp, c - 0.19f * k, 0.79f * hp, c - 0.23f * k + sw, 0.47f * hp, 0.05f * k, SY_PERSON, top);
    seg(s, sp, c + 0.19f * k, 0.79f * hp, c + 0.23f * k - sw, 0.47f * hp, 0.05f * k, SY_PERSON, top);
    rect(s, sp, c - 0.17f * k, 0.47f * hp, c + 0.17f * k, 0.8f * hp, SY_PERSON, SY_TEX_CLOTH, top);
    ellipse(s, sp, c, 0.8f * hp, 0.19f * k, 0.05f * hp, SY_PERSON, SY_TEX_CLOTH, top);
    rect(s, sp, c - 0.04f * k, 0.8f * hp, c + 0.04f * k, 0.86f * hp, SY_PERSON, SY_TEX_NONE, skin);
    ellipse(s, sp, c, 0.92f * hp, 0.075f * hp * 0.75f, 0.07f * hp, SY_PERSON, SY_TEX_NONE, skin);
    ellipse(s, sp, c, 0.95f * hp, 0.075f * hp * 0.78f, 0.045f * hp, SY_PERSON, SY_TEX_NONE, hair);
    if (chance(r, 0.3f)) {
        float bag[3];
        pick_paint(r, st, bag);
        rect(s, sp, c + 0.17f * k, 0.5f * hp, c + 0.3f * k, 0.66f * hp, SY_PERSON, SY_TEX_CLOTH, bag);
    }
}

/* Two-wheeler seen from the side (crossing or parked across the curb):
 * bicycle or motorcycle, with or without a rider. */
static void add_twowheeler_side(sy_scene *s, sd_rng *r, float xc, float z, int moto, int rider, float dir)
{
    const sy_style *st = &s->st;
    float L = moto ? 2.1f : 1.75f, Htot = rider ? 1.85f : 1.2f;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - L / 2, z, L, Htot);
    if (!sp)
        return;
    sp->obj = ++s->nobj;
#define UU(u) (dir > 0 ? (u) : L - (u))
    int lab = moto ? SY_MOTO : SY_BICYCLE;
    float frame[3], hub[3];
    pick_paint(r, st, frame);
    set3(hub, 150, 150, 150);
    float rw = moto ? 0.32f : 0.34f, ub = moto ? 0.4f : 0.35f, uf = L - ub;
    if (moto) {
        ellipse(s, sp, UU(ub), rw, rw, rw, lab, SY_TEX_NONE, st->tyre);
        ellipse(s, sp, UU(uf), rw, rw, rw, lab, SY_TEX_NONE, st->tyre);
        ellipse(s, sp, UU(ub), rw, rw * 0.45f, rw * 0.45f, lab, SY_TEX_METAL, hub);
        ellipse(s, sp, UU(uf), rw, rw * 0.45f, rw * 0.45f, lab, SY_TEX_METAL, hub);
        rect(s, sp, UU(0.65f), 0.3f, UU(1.35f), 0.75f, lab, SY_TEX_METAL, st->tlbox);
        ellipse(s, sp, UU(1.25f), 0.85f, 0.35f, 0.17f, lab, SY_TEX_METAL, frame);
        rect(s, sp, UU(0.35f), 0.75f, UU(1.0f), 0.88f, lab, SY_TEX_CLOTH, st->tlbox);
        seg(s, sp, UU(uf), rw, UU(1.6f), 1.1f, 0.05f, lab, hub);
        ellipse(s, sp, UU(1.68f), 0.9f, 0.14f, 0.2f, lab, SY_TEX_METAL, frame);
    } else {
        ring(s, sp, UU(ub), rw, rw, rw - 0.06f, lab, st->tyre);
        ring(s, sp, UU(uf), rw, rw, rw - 0.06f, lab, st->tyre);
        float bb = 0.82f, seat_u = 0.68f, head_u = 1.25f;
        seg(s, sp, UU(ub), rw, UU(bb), 0.3f, 0.03f, lab, frame);
        seg(s, sp, UU(ub), rw, UU(seat_u), 0.85f, 0.03f, lab, frame);
        seg(s, sp, UU(bb), 0.3f, UU(seat_u), 0.85f, 0.035f, lab, frame);
        seg(s, sp, UU(bb), 0.3f, UU(head_u), 0.85f, 0.035f, lab, frame);
        seg(s, sp, UU(seat_u), 0.8f, UU(head_u), 0.85f, 0.035f, lab, frame);
        seg(s, sp, UU(head_u), 0.95f, UU(uf), rw, 0.03f, lab, frame);
        seg(s, sp, UU(seat_u - 0.08f), 0.93f, UU(seat_u + 0.1f), 0.93f, 0.04f, lab, st->tyre);
        seg(s, sp, UU(head_u - 0.05f), 1.02f, UU(head_u + 0.12f), 1.02f, 0.03f, lab, st->tyre);
    }
    if (rider) {
        float top[3], bot[3], skin[3], hair[3], helm[3];
        clothes(r, st, top, bot, skin, hair);
        pick_paint(r, st, helm);
        float hu = moto ? 0.85f : 0.7f, hv = moto ? 0.95f : 0.98f;
        float su = moto ? 1.1f : 1.02f, sv = moto ? 1.5f : 1.45f;
        float ku = moto ? 1.25f : 0.98f, kv = moto ? 0.62f : 0.62f + U(r, -0.08f, 0.08f);
        seg(s, sp, UU(hu), hv, UU(ku), kv, 0.08f, SY_RIDER, bot);
        seg(s, sp, UU(ku), kv, UU(ku - 0.12f), 0.25f, 0.065f, SY_RIDER, bot);
        seg(s, sp, UU(hu), hv, UU(su), sv, 0.15f, SY_RIDER, top);
        seg(s, sp, UU(su), sv - 0.05f, UU(moto ? 1.55f : 1.3f), moto ? 1.12f : 1.05f, 0.05f, SY_RIDER, top);
        ellipse(s, sp, UU(su + 0.06f), sv + 0.19f, 0.11f, 0.125f, SY_RIDER, SY_TEX_NONE, skin);
        if (moto || chance(r, 0.5f))
            ellipse(s, sp, UU(su + 0.05f), sv + 0.24f, 0.135f, 0.1f, SY_RIDER, SY_TEX_NONE, helm);
        else
            ellipse(s, sp, UU(su + 0.05f), sv + 0.25f, 0.11f, 0.07f, SY_RIDER, SY_TEX_NONE, hair);
    }
#undef UU
    add_shadow(s, xc - L / 2, xc + L / 2, z - 0.3f, z + 0.3f, 0.75f);
}

/* Two-wheeler riding away from the camera in a lane (seen from behind). */
static void add_twowheeler_back(sy_scene *s, sd_rng *r, float xc, float z, int moto)
{
    const sy_style *st = &s->st;
    float W = 0.7f;
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - W / 2, z, W, 1.85f);
    if (!sp)
        return;
    sp->obj = ++s->nobj;
    int lab = moto ? SY_MOTO : SY_BICYCLE;
    float c = W / 2, frame[3], top[3], bot[3], skin[3], hair[3], helm[3], red[3];
    pick_paint(r, st, frame);
    clothes(r, st, top, bot, skin, hair);
    pick_paint(r, st, helm);
    set3(red, st->real ? 170 : 255, 20, 20);
    float tw = moto ? 0.08f : 0.03f;
    rect(s, sp, c - tw, 0, c + tw, 0.68f, lab, SY_TEX_NONE, st->tyre);
    if (moto) {
        rect(s, sp, c - 0.2f, 0.45f, c + 0.2f, 0.8f, lab, SY_TEX_METAL, frame);
        rect(s, sp, c - 0.08f, 0.6f, c + 0.08f, 0.68f, lab, SY_TEX_NONE, red);
    } else {
        rect(s, sp, c - 0.04f, 0.62f, c + 0.04f, 0.68f, lab, SY_TEX_NONE, red);
    }
    seg(s, sp, c - 0.3f, 1.05f, c + 0.3f, 1.05f, 0.025f, lab, st->tyre);
    seg(s, sp, c - 0.1f, 0.95f, c - 0.1f, 0.3f, 0.07f, SY_RIDER, bot);
    seg(s, sp, c + 0.1f, 0.95f, c + 0.1f, 0.45f, 0.07f, SY_RIDER, bot);
    rect(s, sp, c - 0.19f, 0.9f, c + 0.19f, 1.5f, SY_RIDER, SY_TEX_CLOTH, top);
    seg(s, sp, c - 0.18f, 1.45f, c - 0.28f, 1.07f, 0.05f, SY_RIDER, top);
    seg(s, sp, c + 0.18f, 1.45f, c + 0.28f, 1.07f, 0.05f, SY_RIDER, top);
    ellipse(s, sp, c, 1.66f, 0.1f, 0.12f, SY_RIDER, SY_TEX_NONE, hair);
    if (moto || chance(r, 0.5f))
        ellipse(s, sp, c, 1.68f, 0.14f, 0.14f, SY_RIDER, SY_TEX_NONE, helm);
    add_shadow(s, xc - 0.3f, xc + 0.3f, z - 0.2f, z + 1.6f, 0.75f);
}

/* ---- vehicles ---- */

enum { VEH_CAR = 0, VEH_TRUCK, VEH_BUS, VEH_TRAM };

typedef struct veh {
    int kind, front;        /* front: the camera sees the front (oncoming) */
    float L, W, H;
    float paint[3], paint2[3];
} veh;

static void veh_init(sy_scene *s, sd_rng *r, veh *v, int kind, int front)
{
    const sy_style *st = &s->st;
    memset(v, 0, sizeof *v);
    v->kind = kind, v->front = front;
    pick_paint(r, st, v->paint);
    pick_paint(r, st, v->paint2);
    switch (kind) {
    case VEH_CAR: v->L = U(r, 3.9f, 4.9f), v->W = U(r, 1.7f, 1.9f), v->H = U(r, 1.4f, 1.65f); break;
    case VEH_TRUCK:
        v->L = U(r, 6.5f, 10), v->W = 2.45f, v->H = U(r, 3.1f, 3.8f);
        if (st->real)
            set3(v->paint2, 195, 195, 190), jit(r, v->paint2, 0.15f);
        else
            set3(v->paint2, 245, 245, 245);
        break;
    case VEH_BUS:
        v->L = U(r, 11, 13), v->W = 2.55f, v->H = U(r, 3.0f, 3.2f);
        if (st->real) {
            static const float pal[][3] = {{205, 205, 198}, {160, 40, 35}, {210, 190, 120}, {60, 90, 140}};
            cp3(v->paint, pal[sd_rng_int(r, 4)]);
        } else {
            static const float pal[][3] = {{255, 205, 20}, {30, 170, 230}, {240, 70, 40}};
            cp3(v->paint, pal[sd_rng_int(r, 3)]);
        }
        jit(r, v->paint, 0.08f);
        break;
    default:
        v->L = U(r, 20, 30), v->W = 2.45f, v->H = 3.45f;
        if (st->real) {
            set3(v->paint, 215, 210, 195), set3(v->paint2, 150, 35, 30);
        } else {
            set3(v->paint, 250, 90, 60), set3(v->paint2, 250, 240, 220);
        }
        jit(r, v->paint, 0.08f);
        break;
    }
}

/* The vehicle's side in (u along its length, v up); dir > 0: front at u = L. */
static void veh_profile(sy_scene *s, sy_sprite *sp, sd_rng *r, const veh *v, float dir)
{
    const sy_style *st = &s->st;
    float L = v->L, H = v->H;
#define UU(u) (dir > 0 ? (u) : L - (u))
    float hub[3], dark[3], light[3], red[3];
    set3(hub, 160, 160, 165);
    scale3(dark, v->paint, 0.6f);
    set3(light, 250, 245, 220);
    set3(red, st->real ? 160 : 255, 20, 20);
    switch (v->kind) {
    case VEH_CAR: {
        float belt = 0.85f;
        rect(s, sp, 0, 0.28f, L, belt, SY_CAR, SY_TEX_METAL, v->paint);
        float r0 = UU(0.12f * L), r1 = UU(0.3f * L), f1 = UU(0.62f * L), f0 = UU(0.8f * L);
        tri(s, sp, r0, belt, r1, belt, r1, H, SY_CAR, SY_TEX_METAL, v->paint);
        rect(s, sp, r1, belt, f1, H, SY_CAR, SY_TEX_METAL, v->paint);
        tri(s, sp, f1, belt, f0, belt, f1, H, SY_CAR, SY_TEX_METAL, v->paint);
        float gb = belt + 0.05f, gt = H - 0.07f;
        tri(s, sp, UU(0.16f * L), gb, UU(0.31f * L), gb, UU(0.31f * L), gt, SY_CAR, SY_TEX_NONE, st->glass);
        rect(s, sp, UU(0.32f * L), gb, UU(0.46f * L), gt, SY_CAR, SY_TEX_NONE, st->glass);
        rect(s, sp, UU(0.48f * L), gb, UU(0.61f * L), gt, SY_CAR, SY_TEX_NONE, st->glass);
        tri(s, sp, UU(0.61f * L), gb, UU(0.76f * L), gb, UU(0.61f * L), gt, SY_CAR, SY_TEX_NONE, st->glass);
        rect(s, sp, UU(0), 0.28f, UU(0.05f * L), 0.45f, SY_CAR, SY_TEX_NONE, dark);
        rect(s, sp, UU(0.95f * L), 0.28f, UU(L), 0.45f, SY_CAR, SY_TEX_NONE, dark);
        rect(s, sp, UU(0.97f * L), 0.6f, UU(L), 0.72f, SY_CAR, SY_TEX_NONE, light);
        rect(s, sp, UU(0), 0.62f, UU(0.03f * L), 0.74f, SY_CAR, SY_TEX_NONE, red);
        float wr = 0.31f;
        for (int i = 0; i < 2; i++) {
            float wu = UU(i ? 0.82f * L : 0.18f * L);
            ellipse(s, sp, wu, wr, wr, wr, SY_CAR, SY_TEX_NONE, st->tyre);
            ellipse(s, sp, wu, wr, wr * 0.55f, wr * 0.55f, SY_CAR, SY_TEX_METAL, hub);
        }
        break;
    }
    case VEH_TRUCK: {
        float cab = 2.3f;
        rect(s, sp, 0, 0.5f, L, 0.95f, SY_TRUCK, SY_TEX_METAL, st->tlbox);
        float seam[3];
        scale3(seam, v->paint2, 0.8f);
        stripes(s, sp, UU(0), 0.95f, UU(L - cab - 0.2f), H, 1.2f, 0.04f, SY_TRUCK, SY_TEX_METAL, v->paint2, seam);
        rect(s, sp, UU(L - cab), 0.5f, UU(L), 2.9f, SY_TRUCK, SY_TEX_METAL, v->paint);
        rect(s, sp, UU(L - cab + 0.3f), 1.7f, UU(L - 0.25f), 2.6f, SY_TRUCK, SY_TEX_NONE, st->glass);
        float wr = 0.5f;
        float wus[3] = {0.6f, 1.7f, L - 1.4f};
        for (int i = 0; i < 3; i++) {
            ellipse(s, sp, UU(wus[i]), wr, wr, wr, SY_TRUCK, SY_TEX_NONE, st->tyre);
            ellipse(s, sp, UU(wus[i]), wr, wr * 0.5f, wr * 0.5f, SY_TRUCK, SY_TEX_METAL, hub);
        }
        break;
    }
    case VEH_BUS: {
        rect(s, sp, 0, 0.35f, L, H, SY_BUS, SY_TEX_METAL, v->paint);
        grid(s, sp, 0.4f, 1.15f, L - 0.4f, 2.65f, 1.7f, 2.0f, 0.9f, 0.78f, SY_BUS, SY_TEX_METAL, v->paint,
             st->glass);
        rect(s, sp, UU(L - 0.25f), 1.0f, UU(L), 2.75f, SY_BUS, SY_TEX_NONE, st->glass);
        rect(s, sp, UU(L - 2.6f), 0.4f, UU(L - 1.4f), 2.6f, SY_BUS, SY_TEX_NONE, st->glass);
        rect(s, sp, UU(L * 0.5f), 0.4f, UU(L * 0.5f + 1.2f), 2.6f, SY_BUS, SY_TEX_NONE, st->glass);
        rect(s, sp, 0, 0.35f, L, 0.7f, SY_BUS, SY_TEX_METAL, dark);
        float wr = 0.5f;
        for (int i = 0; i < 2; i++) {
            float wu = UU(i ? L - 2.9f : 2.6f);
            ellipse(s, sp, wu, wr, wr, wr, SY_BUS, SY_TEX_NONE, st->tyre);
            ellipse(s, sp, wu, wr, wr * 0.5f, wr * 0.5f, SY_BUS, SY_TEX_METAL, hub);
        }
        break;
    }
    default: { /* tram */
        rect(s, sp, 0, 0.3f, L, H - 0.2f, SY_TRAIN, SY_TEX_METAL, v->paint);
        rect(s, sp, 0.3f, H - 0.2f, L - 0.3f, H, SY_TRAIN, SY_TEX_METAL, v->paint);
        grid(s, sp, 0.8f, 1.3f, L - 0.8f, 2.55f, 2.1f, 2.0f, 0.82f, 0.62f, SY_TRAIN, SY_TEX_METAL, v->paint,
             st->glass);
        rect(s, sp, 0, 0.3f, L, 0.9f, SY_TRAIN, SY_TEX_METAL, v->paint2);
        for (float du = 4.0f; du < L - 3; du += 6.5f)
            rect(s, sp, du, 0.35f, du + 1.3f, 2.5f, SY_TRAIN, SY_TEX_NONE, st->glass);
        rect(s, sp, 0.35f * L, H, 0.55f * L, H + 0.35f, SY_TRAIN, SY_TEX_METAL, st->tlbox);
        float pu = 0.45f * L;
        seg(s, sp, pu, H + 0.35f, pu + 0.7f, H + 0.9f, 0.03f, SY_TRAIN, st->tlbox);
        seg(s, sp, pu + 0.7f, H + 0.9f, pu + 0.1f, H + 1.4f, 0.03f, SY_TRAIN, st->tlbox);
        seg(s, sp, pu - 0.3f, H + 1.4f, pu + 0.5f, H + 1.4f, 0.035f, SY_TRAIN, st->tlbox);
        break;
    }
    }
#undef UU
    (void)r;
}

/* The vehicle's back or front face, u across its width. */
static void veh_face(sy_scene *s, sy_sprite *sp, const veh *v)
{
    const sy_style *st = &s->st;
    float W = v->W, H = v->H;
    float dark[3], light[3], red[3], plate[3], amber[3];
    scale3(dark, v->paint, 0.55f);
    set3(light, 250, 245, 220);
    set3(red, st->real ? 165 : 255, 25, 20);
    set3(plate, 230, 230, 225);
    set3(amber, 250, 150, 20);
    int lab = v->kind == VEH_CAR ? SY_CAR : v->kind == VEH_TRUCK ? SY_TRUCK : v->kind == VEH_BUS ? SY_BUS : SY_TRAIN;
    switch (v->kind) {
    case VEH_CAR: {
        float belt = 0.88f;
        rect(s, sp, 0.02f * W, 0.25f, 0.98f * W, belt, lab, SY_TEX_METAL, v->paint);
        tri(s, sp, 0.1f * W, belt, 0.22f * W, belt, 0.22f * W, H, lab, SY_TEX_METAL, v->paint);
        rect(s, sp, 0.22f * W, belt, 0.78f * W, H, lab, SY_TEX_METAL, v->paint);
        tri(s, sp, 0.78f * W, belt, 0.9f * W, belt, 0.78f * W, H, lab, SY_TEX_METAL, v->paint);
        if (v->front) {
            rect(s, sp, 0.2f * W, belt + 0.04f, 0.8f * W, H - 0.06f, lab, SY_TEX_NONE, st->glass);
            ellipse(s, sp, 0.15f * W, 0.68f, 0.1f * W, 0.07f, lab, SY_TEX_NONE, light);
            ellipse(s, sp, 0.85f * W, 0.68f, 0.1f * W, 0.07f, lab, SY_TEX_NONE, light);
            rect(s, sp, 0.32f * W, 0.45f, 0.68f * W, 0.65f, lab, SY_TEX_NONE, dark);
        } else {
            rect(s, sp, 0.24f * W, belt + 0.08f, 0.76f * W, H - 0.08f, lab, SY_TEX_NONE, st->glass);
            rect(s, sp, 0.05f * W, 0.62f, 0.22f * W, 0.78f, lab, SY_TEX_NONE, red);
            rect(s, sp, 0.78f * W, 0.62f, 0.95f * W, 0.78f, lab, SY_TEX_NONE, red);
        }
        rect(s, sp, 0, 0.25f, W, 0.42f, lab, SY_TEX_NONE, dark);
        rect(s, sp, 0.4f * W, 0.45f, 0.6f * W, 0.57f, lab, SY_TEX_NONE, plate);
        rect(s, sp, 0.06f * W, 0, 0.22f * W, 0.3f, lab, SY_TEX_NONE, st->tyre);
        rect(s, sp, 0.78f * W, 0, 0.94f * W, 0.3f, lab, SY_TEX_NONE, st->tyre);
        break;
    }
    case VEH_TRUCK:
        if (v->front) {
            rect(s, sp, 0, 2.9f, W, H, lab, SY_TEX_METAL, v->paint2);
            rect(s, sp, 0.03f * W, 0.5f, 0.97f * W, 2.9f, lab, SY_TEX_METAL, v->paint);
            rect(s, sp, 0.08f * W, 1.7f, 0.92f * W, 2.6f, lab, SY_TEX_NONE, st->glass);
            stripes(s, sp, 0.25f * W, 0.7f, 0.75f * W, 1.4f, 0.12f, 0.5f, lab, SY_TEX_NONE, dark, st->tyre);
            rect(s, sp, 0.06f * W, 0.8f, 0.18f * W, 0.95f, lab, SY_TEX_NONE, light);
            rect(s, sp, 0.82f * W, 0.8f, 0.94f * W, 0.95f, lab, SY_TEX_NONE, light);
        } else {
            rect(s, sp, 0, 0.95f, W, H, lab, SY_TEX_METAL, v->paint2);
            float seam[3];
            scale3(seam, v->paint2, 0.7f);
            rect(s, sp, 0.49f * W, 1.0f, 0.51f * W, H - 0.05f, lab, SY_TEX_NONE, seam);
            stripes(s, sp, 0.1f * W, 1.0f, 0.9f * W, H - 0.1f, 0.4f * W, 0.03f, lab, SY_TEX_NONE, v->paint2, seam);
            rect(s, sp, 0.05f * W, 0.45f, 0.95f * W, 0.6f, lab, SY_TEX_NONE, st->tlbox);
            rect(s, sp, 0.04f * W, 0.7f, 0.16f * W, 0.85f, lab, SY_TEX_NONE, red);
            rect(s, sp, 0.84f * W, 0.7f, 0.96f * W, 0.85f, lab, SY_TEX_NONE, red);
        }
        rect(s, sp, 0.05f * W, 0, 0.3f * W, 0.95f, lab, SY_TEX_NONE, st->tyre);
        rect(s, sp, 0.7f * W, 0, 0.95f * W, 0.95f, lab, SY_TEX_NONE, st->tyre);
        rect(s, sp, 0.05f * W, 0.45f, 0.95f * W, 0.6f, lab, SY_TEX_NONE, st->tlbox);
        break;
    case VEH_BUS:
        rect(s, sp, 0, 0.3f, W, H, lab, SY_TEX_METAL, v->paint);
        if (v->front) {
            rect(s, sp, 0.05f * W, 1.0f, 0.95f * W, 2.65f, lab, SY_TEX_NONE, st->glass);
            rect(s, sp, 0.15f * W, 2.72f, 0.85f * W, 2.95f, lab, SY_TEX_NONE, st->tlbox);
            rect(s, sp, 0.2f * W, 2.76f, 0.8f * W, 2.91f, lab, SY_TEX_NONE, amber);
            ellipse(s, sp, 0.12f * W, 0.65f, 0.07f * W, 0.08f, lab, SY_TEX_NONE, light);
            ellipse(s, sp, 0.88f * W, 0.65f, 0.07f * W, 0.08f, lab, SY_TEX_NONE, light);
        } else {
            rect(s, sp, 0.1f * W, 2.0f, 0.9f * W, 2.8f, lab, SY_TEX_NONE, st->glass);
            stripes(s, sp, 0.2f * W, 0.6f, 0.8f * W, 1.35f, 0.1f, 0.45f, lab, SY_TEX_NONE, v->paint, dark);
            rect(s, sp, 0.04f * W, 0.6f, 0.14f * W, 1.1f, lab, SY_TEX_NONE, red);
            rect(s, sp, 0.86f * W, 0.6f, 0.96f * W, 1.1f, lab, SY_TEX_NONE, red);
        }
        rect(s, sp, 0, 0.3f, W, 0.5f, lab, SY_TEX_NONE, dark);
        rect(s, sp, 0.08f * W, 0, 0.25f * W, 0.4f, lab, SY_TEX_NONE, st->tyre);
        rect(s, sp, 0.75f * W, 0, 0.92f * W, 0.4f, lab, SY_TEX_NONE, st->tyre);
        break;
    default: /* tram */
        rect(s, sp, 0, 0.3f, W, H - 0.25f, lab, SY_TEX_METAL, v->paint);
        rect(s, sp, 0.1f * W, H - 0.25f, 0.9f * W, H, lab, SY_TEX_METAL, v->paint);
        rect(s, sp, 0.07f * W, 1.3f, 0.93f * W, 2.7f, lab, SY_TEX_NONE, st->glass);
        rect(s, sp, 0.2f * W, 2.8f, 0.8f * W, 3.0f, lab, SY_TEX_NONE, amber);
        rect(s, sp, 0, 0.3f, W, 0.9f, lab, SY_TEX_METAL, v->paint2);
        ellipse(s, sp, 0.15f * W, 1.05f, 0.07f * W, 0.07f, lab, SY_TEX_NONE, v->front ? light : red);
        ellipse(s, sp, 0.85f * W, 1.05f, 0.07f * W, 0.07f, lab, SY_TEX_NONE, v->front ? light : red);
        seg(s, sp, 0.5f * W, H, 0.3f * W, H + 0.7f, 0.03f, lab, st->tlbox);
        seg(s, sp, 0.3f * W, H + 0.7f, 0.55f * W, H + 1.3f, 0.03f, lab, st->tlbox);
        seg(s, sp, 0.25f * W, H + 1.3f, 0.75f * W, H + 1.3f, 0.035f, lab, st->tlbox);
        break;
    }
}

/* A vehicle driving along the street (or parked along it), nearest face at
 * depth z, centred at lateral xc: its face plus the visible flank. */
static void add_vehicle(sy_scene *s, sd_rng *r, const veh *v, float xc, float z)
{
    float hw = v->W / 2;
    float extra = v->kind == VEH_TRAM ? 1.5f : 0.1f;
    int obj = ++s->nobj; /* flank and face: one object */
    if (xc > hw + 0.05f || xc < -hw - 0.05f) {
        float X = xc > 0 ? xc - hw : xc + hw;
        sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, z, v->L, v->H + extra);
        if (sp)
            sp->obj = obj, veh_profile(s, sp, r, v, v->front ? -1.f : 1.f);
    }
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - hw, z, v->W, v->H + extra);
    if (sp)
        sp->obj = obj, veh_face(s, sp, v);
    add_shadow(s, xc - hw - 0.1f, xc + hw + 0.1f, z - 0.2f, z + v->L, 0.6f);
}

/* A vehicle crossing the street at depth z (its side faces the camera). */
static void add_vehicle_crossing(sy_scene *s, sd_rng *r, const veh *v, float xc, float z, float dir)
{
    sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, xc - v->L / 2, z, v->L, v->H + (v->kind == VEH_TRAM ? 1.5f : 0.1f));
    if (sp)
        sp->obj = ++s->nobj, veh_profile(s, sp, r, v, dir);
    add_shadow(s, xc - v->L / 2, xc + v->L / 2, z - 0.1f, z + v->W, 0.6f);
}

/* ---- the street ---- */

static float side_out(const sy_scene *s, int side)
{
    return side ? s->xr + s->verge[1] + s->sw[1] : s->xl - s->verge[0] - s->sw[0];
}

/* Lanes are numbered from the left road edge; occupancy avoids overlaps. */
typedef struct lane_occ { float z0[16], z1[16]; int n; } lane_occ;

static int lane_free(lane_occ *o, float z0, float z1)
{
    for (int i = 0; i < o->n; i++)
        if (z0 < o->z1[i] + 3 && z1 > o->z0[i] - 3)
            return 0;
    if (o->n < 16)
        o->z0[o->n] = z0, o->z1[o->n] = z1, o->n++;
    return 1;
}

void sy_scene_build(sy_scene *s, sd_synth_domain dom, sd_rng *r, int w, int h, int want)
{
    memset(s, 0, offsetof(sy_scene, sprites));
    s->nsprites = s->nparts = s->nshadows = 0;
    int real = dom == SD_SYNTH_REAL;
    s->dom = dom, s->w = w, s->h = h;
    style_init(&s->st, real, r);
    s->tex_seed = (uint32_t)sd_rng_u64(r);

    /* camera: the game's chase camera sits higher and is pitched further down
     * (horizon higher in the frame); the real car camera has a longer lens */
    s->f = (float)w * (real ? U(r, 0.86f, 0.96f) : U(r, 0.66f, 0.76f));
    s->cx = (float)w * (0.5f + clampf(0.04f * sd_rng_normal(r), -0.09f, 0.09f));
    s->yh = (float)h * (real ? U(r, 0.45f, 0.54f) : U(r, 0.36f, 0.45f));
    s->camh = real ? U(r, 1.25f, 1.5f) : U(r, 1.7f, 2.4f);

    /* road */
    float pl = U(r, 0, 1);
    s->lanes = pl < 0.45f ? 2 : pl < 0.75f ? 3 : 4;
    s->lane_w = U(r, 3.0f, 3.6f);
    int right = (s->lanes + 1) / 2;
    s->lanes_left = s->lanes - right;
    int k = chance(r, 0.7f) ? 0 : sd_rng_int(r, right);
    s->xr = s->lane_w * ((float)k + 0.5f);
    s->split_x = s->xr - (float)right * s->lane_w;
    s->xl = s->xr - (float)s->lanes * s->lane_w;
    int park[2];
    for (int sd = 0; sd < 2; sd++) {
        park[sd] = chance(r, real ? 0.75f : 0.5f);
        s->verge[sd] = chance(r, 0.35f) ? U(r, 0.8f, 2.5f) : 0;
        s->sw[sd] = real ? U(r, 2.0f, 4.5f) : U(r, 2.5f, 6.0f);
    }
    if (want == 9 && s->verge[1] == 0)
        s->verge[1] = U(r, 1.5f, 3.0f);
    float park_w = 2.2f;
    if (park[1])
        s->xr += park_w;
    if (park[0])
        s->xl -= park_w;

    /* crossing street and the end of the street */
    s->cross_z0 = s->cross_z1 = 0;
    if (chance(r, 0.45f)) {
        s->cross_z0 = U(r, 16, 55);
        s->cross_z1 = s->cross_z0 + U(r, 10, 16);
    }
    s->z_end = U(r, 80, 190);
    s->tram = chance(r, 0.3f) || want == 16;
    s->tram_x = s->split_x + (chance(r, 0.5f) ? 0.5f : -0.5f) * s->lane_w;

    /* blocks on each side */
    for (int sd = 0; sd < 2; sd++) {
        float sg = sd ? 1.f : -1.f, xo = side_out(s, sd);
        float z = 0;
        int n = 0, prev = -1;
        while (z < s->z_end && n < SY_MAX_SEG) {
            sy_segment *g = &s->seg[sd][n];
            memset(g, 0, sizeof *g);
            if (s->cross_z1 > s->cross_z0 && z >= s->cross_z0 - 0.01f && z < s->cross_z1) {
                g->kind = SY_SEG_CROSS, g->z0 = z, g->z1 = s->cross_z1;
            } else {
                float len = U(r, 8, 35);
                g->z0 = z, g->z1 = z + len;
                if (s->cross_z1 > s->cross_z0 && z < s->cross_z0 && g->z1 > s->cross_z0)
                    g->z1 = s->cross_z0;
                if (g->z1 > s->z_end)
                    g->z1 = s->z_end;
                float p = U(r, 0, 1);
                float pb = real ? 0.5f : 0.62f, pg = real ? 0.78f : 0.82f;
                if (n == 0 && sd == 1 && (want == 3 || want == 4))
                    p = 0.7f, pg = 0.9f;
                g->kind = p < pb ? SY_SEG_BUILDING : p < pg ? SY_SEG_GARDEN : SY_SEG_PARK;
                if (g->kind == prev && g->kind == SY_SEG_PARK)
                    g->kind = SY_SEG_BUILDING;
                switch (g->kind) {
                case SY_SEG_BUILDING:
                    g->xf = chance(r, 0.6f) ? 0 : U(r, 0.5f, 3);
                    g->height = real ? U(r, 9, 24) : U(r, 12, 42);
                    break;
                case SY_SEG_GARDEN:
                    g->xf = U(r, 3, 10);
                    g->height = real ? U(r, 6, 16) : U(r, 7, 20);
                    g->yard_tex = 1;
                    break;
                default:
                    g->xf = U(r, 15, 40);
                    g->height = U(r, 6, 14);
                    g->yard_tex = 1;
                    break;
                }
            }
            /* sprites of the segment */
            float X = xo + sg * g->xf;
            if (g->kind == SY_SEG_BUILDING || g->kind == SY_SEG_GARDEN)
                add_building(s, r, X, fmaxf(g->z0, 0.5f), g->z1, g->height);
            if (g->kind == SY_SEG_GARDEN || (g->kind == SY_SEG_PARK && chance(r, 0.6f))) {
                int bk = sd_rng_int(r, 3);
                if (n == 0 && sd == 1 && (want == 3 || want == 4))
                    bk = want == 3 ? 0 : 1;
                add_boundary(s, r, xo, fmaxf(g->z0, 0.5f), g->z1, bk);
                int nt = sd_rng_int(r, 3);
                for (int t = 0; t < nt; t++)
                    add_tree(s, r, xo + sg * U(r, 1.5f, fmaxf(g->xf - 1, 1.6f)), U(r, g->z0, g->z1), 1);
            }
            if (g->kind == SY_SEG_PARK) {
                sy_sprite *sp = spr_begin(s, SY_PLANE_SIDE, X, fmaxf(g->z0, 0.5f), g->z1 - fmaxf(g->z0, 0.5f),
                                          g->height + 3);
                wavy(s, sp, 0, 0, g->z1 - g->z0, g->height, 1.5f, U(r, 0.3f, 0.6f), U(r, 0, 6), SY_VEG,
                     SY_TEX_LEAVES, s->st.veg2);
                int nt = 1 + sd_rng_int(r, 4);
                for (int t = 0; t < nt; t++)
                    add_tree(s, r, xo + sg * U(r, 2, g->xf - 2), U(r, g->z0 + 1, g->z1), U(r, 0.9f, 1.4f));
            }
            if (g->kind == SY_SEG_CROSS) {
                /* the corner building beyond the crossing faces the camera */
                float H = real ? U(r, 9, 24) : U(r, 12, 40), c[3];
                building_colour(r, &s->st, c);
                sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, sd ? xo : xo - 40, g->z1, 40, H);
                if (sp)
                    facade_parts(s, sp, r, 40, H, c);
                float xf = xo + sg * U(r, 13, 20);
                sp = spr_begin(s, SY_PLANE_FRONT, sd ? xf : xf - 40, g->z0 - 0.01f, 40, H * 0.8f);
                if (sp)
                    facade_parts(s, sp, r, 40, H * 0.8f, c);
            }
            prev = g->kind;
            z = g->z1;
            n++;
        }
        s->nseg[sd] = n;
    }
    /* the end of the street */
    for (float x = -90; x < 90;) {
        float wd = U(r, 8, 25);
        if (chance(r, 0.8f)) {
            float H = real ? U(r, 10, 30) : U(r, 12, 45), c[3];
            building_colour(r, &s->st, c);
            sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, x, s->z_end, wd, H);
            if (sp)
                facade_parts(s, sp, r, wd, H, c);
        } else {
            sy_sprite *sp = spr_begin(s, SY_PLANE_FRONT, x, s->z_end, wd, 16);
            wavy(s, sp, 0, 0, wd, U(r, 6, 12), 1.5f, 0.7f, U(r, 0, 6), SY_VEG, SY_TEX_LEAVES, s->st.veg2);
        }
        x += wd;
    }

    /* street furniture along the curbs */
    for (int sd = 0; sd < 2; sd++) {
        float sg = sd ? 1.f : -1.f;
        float xcurb = (sd ? s->xr + s->verge[1] : s->xl - s->verge[0]) + sg * 0.5f;
        float xin = sd ? s->xr + s->verge[1] + s->sw[1] - 0.5f : s->xl - s->verge[0] - s->sw[0] + 0.5f;
        for (float z = U(r, 3, 20); z < s->z_end - 5; z += U(r, 18, 32))
            if (chance(r, 0.8f))
                add_lamp(s, r, xcurb, z, -sg);
        int ns = sd_rng_int(r, 3) + (want == 7 && sd == 1);
        for (int i = 0; i < ns; i++)
            add_sign(s, r, xcurb + sg * 0.2f, (want == 7 && i == 0) ? U(r, 9, 14) : U(r, 5, 70));
        if (s->cross_z1 > s->cross_z0)
            add_traffic_light(s, r, xcurb, s->cross_z0 - U(r, 0.5f, 2.5f), -sg, chance(r, 0.5f));
        if ((want == 6 || want == 5) && sd == 1)
            add_traffic_light(s, r, xcurb, U(r, 12, 18), -sg, want == 6 && chance(r, 0.5f));
        if (chance(r, real ? 0.5f : 0.35f)) { /* a row of street trees */
            float xt = s->verge[sd] > 0 ? (sd ? s->xr : s->xl) + sg * s->verge[sd] * 0.5f : xcurb + sg * 0.4f;
            float step = U(r, 7, 12);
            for (float z = U(r, 3, 10); z < s->z_end - 5; z += step) {
                if (s->cross_z1 > s->cross_z0 && z > s->cross_z0 - 3 && z < s->cross_z1 + 3)
                    continue;
                add_tree(s, r, xt, z, U(r, 0.8f, 1.2f));
            }
        }
        int nst = sd_rng_int(r, 3);
        for (int i = 0; i < nst; i++)
            add_static(s, r, xin - sg * U(r, 0, 1), U(r, 5, 50));
        if (chance(r, 0.3f) || want == 18) { /* parked bicycles across the sidewalk */
            float z0 = want == 18 ? U(r, 5, 9) : U(r, 6, 40);
            int nb = 1 + sd_rng_int(r, 4);
            for (int i = 0; i < nb; i++)
                add_twowheeler_side(s, r, xin - sg * 1.0f, z0 + 0.8f * (float)i, 0, 0, chance(r, 0.5f) ? 1.f : -1.f);
        }
    }

    /* traffic */
    lane_occ occ[6];
    memset(occ, 0, sizeof occ);
    for (int sd = 0; sd < 2; sd++) { /* parked cars */
        if (!park[sd])
            continue;
        float xc = sd ? s->xr - park_w / 2 : s->xl + park_w / 2;
        for (float z = U(r, 2, 10); z < s->z_end;) {
            veh v;
            veh_init(s, r, &v, chance(r, 0.06f) ? VEH_TRUCK : VEH_CAR, chance(r, 0.5f));
            if (s->cross_z1 > s->cross_z0 && z + v.L > s->cross_z0 - 4 && z < s->cross_z1 + 2) {
                z = s->cross_z1 + 3;
                continue;
            }
            if (chance(r, real ? 0.7f : 0.45f))
                add_vehicle(s, r, &v, xc + U(r, -0.1f, 0.1f), z);
            z += v.L + U(r, 0.8f, 3.0f);
        }
    }
    float xl_drive = s->xl + (park[0] ? park_w : 0);
    s->xl_lanes = xl_drive;
    s->xr_lanes = s->xr - (park[1] ? park_w : 0);
    int nveh = real ? 3 + sd_rng_int(r, 8) : 1 + sd_rng_int(r, 6);
    if (s->tram && chance(r, 0.9f)) {
        veh v;
        int oncoming = s->tram_x < s->split_x;
        veh_init(s, r, &v, VEH_TRAM, oncoming);
        float z = want == 16 ? U(r, 8, 16) : U(r, 8, 60);
        int li = (int)floorf((s->tram_x - xl_drive) / s->lane_w);
        if (li >= 0 && li < 6)
            lane_free(&occ[li], z, z + v.L);
        add_vehicle(s, r, &v, s->tram_x, z);
    }
    for (int i = 0; i < nveh + (want == 13 || want == 14 || want == 15); i++) {
        int li = sd_rng_int(r, s->lanes);
        float xc = xl_drive + ((float)li + 0.5f) * s->lane_w + U(r, -0.3f, 0.3f);
        int oncoming = xc < s->split_x;
        float p = U(r, 0, 1);
        int kind = p < 0.74f ? VEH_CAR : p < 0.87f ? VEH_TRUCK : VEH_BUS;
        int forced = i == nveh;
        if (forced)
            kind = want == 14 ? VEH_TRUCK : want == 15 ? VEH_BUS : VEH_CAR;
        veh v;
        veh_init(s, r, &v, kind, oncoming);
        float z = forced ? U(r, 7, 14) : U(r, 5, s->z_end * 0.7f);
        if (fabsf(xc) < 1.5f && z < 9)
            z += 9;
        if (li < 6 && !lane_free(&occ[li], z, z + v.L))
            continue;
        add_vehicle(s, r, &v, xc, z);
    }
    /* cross traffic in the side street */
    if (s->cross_z1 > s->cross_z0) {
        int nc = sd_rng_int(r, 3);
        for (int i = 0; i < nc; i++) {
            veh v;
            float p = U(r, 0, 1);
            veh_init(s, r, &v, p < 0.75f ? VEH_CAR : p < 0.88f ? VEH_TRUCK : VEH_BUS, 0);
            add_vehicle_crossing(s, r, &v, U(r, -25, 25), U(r, s->cross_z0 + 1, s->cross_z1 - v.W - 1),
                                 chance(r, 0.5f) ? 1.f : -1.f);
        }
    }
    /* riders */
    int nr = real ? sd_rng_int(r, 4) : sd_rng_int(r, 3);
    if (want == 12 || want == 17 || want == 18)
        nr++;
    for (int i = 0; i < nr; i++) {
        int forced = (want == 12 || want == 17 || want == 18) && i == nr - 1;
        int moto = forced ? want == 17 : chance(r, 0.4f);
        if (chance(r, 0.55f) || forced) {
            float z = forced ? U(r, 6, 11) : U(r, 6, 45);
            add_twowheeler_side(s, r, U(r, s->xl + 1, s->xr - 1), z, moto, 1, chance(r, 0.5f) ? 1.f : -1.f);
        } else {
            float xc = s->xr - (park[1] ? park_w : 0) - 0.8f;
            add_twowheeler_back(s, r, xc, U(r, 7, 40), moto);
        }
    }
    /* pedestrians */
    int np = real ? 2 + sd_rng_int(r, 11) : sd_rng_int(r, 6);
    if (want == 11)
        np++;
    for (int i = 0; i < np; i++) {
        int sd = sd_rng_int(r, 2);
        float x0 = sd ? s->xr + s->verge[1] : s->xl - s->verge[0], x1 = side_out(s, sd);
        float xc = U(r, fminf(x0, x1) + 0.4f, fmaxf(x0, x1) - 0.4f);
        int forced = want == 11 && i == np - 1;
        float z = forced ? U(r, 6, 11) : U(r, 4, 60);
        if (chance(r, 0.12f) || forced) /* crossing the road */
            xc = U(r, s->xl, s->xr);
        int group = chance(r, 0.25f) ? 2 + sd_rng_int(r, 2) : 1;
        for (int g = 0; g < group; g++)
            add_person(s, r, xc + 0.6f * (float)g, z + U(r, -0.5f, 0.5f), U(r, 1.55f, 1.9f));
    }
    s->ego = real && chance(r, 0.8f);
    s->ego_top = U(r, 0.88f, 0.93f);
}

/* A VEIS-like "simple scene" (Saleh et al. 2018): one thing class (trainId
 * cls, 11..18) on a plain background of road, sidewalk, facades and sky: no
 * parked cars, furniture, trees or crossing street. A rider always comes
 * with the two-wheeler it rides (a bicycle or a motorcycle instance too). */
void sy_scene_build_simple(sy_scene *s, sd_synth_domain dom, sd_rng *r, int w, int h, int cls)
{
    memset(s, 0, offsetof(sy_scene, sprites));
    int real = dom == SD_SYNTH_REAL;
    s->dom = dom, s->w = w, s->h = h;
    style_init(&s->st, real, r);
    s->tex_seed = (uint32_t)sd_rng_u64(r);
    s->f = (float)w * (real ? U(r, 0.86f, 0.96f) : U(r, 0.66f, 0.76f));
    s->cx = (float)w * 0.5f;
    s->yh = (float)h * (real ? U(r, 0.45f, 0.54f) : U(r, 0.36f, 0.45f));
    s->camh = real ? U(r, 1.25f, 1.5f) : U(r, 1.7f, 2.4f);
    s->lanes = 2, s->lanes_left = 1;
    s->lane_w = U(r, 3.0f, 3.6f);
    s->xr = s->lane_w * 1.5f, s->split_x = s->xr - s->lane_w, s->xl = s->xr - 2 * s->lane_w;
    s->xl_lanes = s->xl, s->xr_lanes = s->xr;
    s->z_end = U(r, 60, 120);
    for (int sd = 0; sd < 2; sd++) {
        s->sw[sd] = U(r, 3.0f, 5.0f);
        sy_segment *g = &s->seg[sd][0];
        g->kind = SY_SEG_BUILDING, g->z0 = 0, g->z1 = s->z_end, g->height = U(r, 12, 30);
        s->nseg[sd] = 1;
        add_building(s, r, side_out(s, sd), 0.5f, s->z_end, g->height);
    }
    float H = U(r, 12, 30), c[3];
    building_colour(r, &s->st, c);
    sy_sprite *end = spr_begin(s, SY_PLANE_FRONT, -90, s->z_end, 180, H);
    if (end)
        facade_parts(s, end, r, 180, H, c);
    int n = 1 + sd_rng_int(r, 3);
    for (int i = 0; i < n; i++) {
        float z = U(r, 6, 30);
        int li = sd_rng_int(r, 2);
        float xlane = s->xl + ((float)li + 0.5f) * s->lane_w, dir = chance(r, 0.5f) ? 1.f : -1.f;
        veh v;
        switch (cls) {
        case 11: { /* on a sidewalk or crossing the road */
            int sd = sd_rng_int(r, 2);
            float x = chance(r, 0.3f) ? U(r, s->xl, s->xr) : sd ? U(r, s->xr + 0.4f, s->xr + s->sw[1] - 0.4f)
                                                               : U(r, s->xl - s->sw[0] + 0.4f, s->xl - 0.4f);
            add_person(s, r, x, z, U(r, 1.55f, 1.9f));
            break;
        }
        case 12: add_twowheeler_side(s, r, U(r, s->xl + 1, s->xr - 1), z, chance(r, 0.4f), 1, dir); break;
        case 17: case 18: add_twowheeler_side(s, r, U(r, s->xl + 1, s->xr - 1), z, cls == 17, 0, dir); break;
        default: {
            int kind = cls == 13 ? VEH_CAR : cls == 14 ? VEH_TRUCK : cls == 15 ? VEH_BUS : VEH_TRAM;
            veh_init(s, r, &v, kind, li == 0);
            add_vehicle(s, r, &v, xlane + U(r, -0.3f, 0.3f), z + 12.0f * (float)i);
            break;
        }
        }
    }
}
