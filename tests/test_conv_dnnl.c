/* The oneDNN convolution path of the CPU backend (src/cpu/conv_dnnl.c)
 * against the im2col path on the same kernels: conv2d and conv_transpose2d,
 * forward and accumulating backward, blocked and plain layouts; bit-identical
 * reruns at a fixed thread count; bf16 compute against f32 on bf16-rounded
 * inputs (native kernels where the CPU has them, else the emulation). The
 * Winograd path (src/cpu/conv_winograd.c) against im2col the same way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu/conv.h"
#include "cpu/dnnl.h"
#include "cpu/kernels.h"
#include "segda/ops.h"

typedef struct geo {
    int n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups;
} geo;

static const geo geos[] = {
    {1, 3, 9, 11, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},     /* 3x3 padded */
    {2, 5, 13, 10, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1},    /* stride 2, odd sizes, batch 2 */
    {2, 8, 17, 15, 7, 3, 3, 1, 1, 6, 6, 6, 6, 1},    /* dilation 6 */
    {1, 4, 7, 9, 3, 3, 3, 1, 1, 0, 0, 2, 2, 1},      /* dilation without padding */
    {2, 16, 7, 5, 24, 1, 1, 1, 1, 0, 0, 1, 1, 1},    /* 1x1 */
    {1, 3, 23, 19, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1},    /* ResNet stem */
    {1, 3, 11, 13, 4, 3, 5, 1, 2, 1, 2, 2, 1, 1},    /* asymmetric kernel, stride, dilation */
    {1, 32, 21, 19, 40, 3, 3, 1, 1, 2, 2, 2, 2, 1},  /* enough channels for oneDNN's blocked kernels */
};

static sd_conv_geom geom(const geo *q, sd_dtype compute)
{
    sd_conv_geom g = {.n = q->n, .cin = q->cin, .h = q->h, .w = q->w, .cout = q->cout, .kh = q->kh, .kw = q->kw,
                      .sh = q->sh, .sw = q->sw, .ph = q->ph, .pw = q->pw, .dh = q->dh, .dw = q->dw,
                      .groups = q->groups, .compute = compute};
    g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    return g;
}

enum { NB = 256 }; /* bias entries: at least every geometry's cin and cout */

typedef struct bufs {
    size_t nx, nw, ny;
    float *x, *w, *b, *dy;               /* inputs */
    float *y, *dx, *dw, *db;             /* conv2d results */
    float *ty, *tdx, *tdw, *tdb;         /* conv_transpose2d results (x <-> y sides swapped) */
} bufs;

static float *rnd(sd_rng *r, size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = scale * sd_rng_normal(r);
    return p;
}

static void bufs_init(bufs *B, const sd_conv_geom *g, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    B->nx = (size_t)g->n * g->cin * g->h * g->w;
    B->nw = (size_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
    B->ny = (size_t)g->n * g->cout * g->oh * g->ow;
    B->x = rnd(&r, B->nx, 1);
    B->w = rnd(&r, B->nw, 0.3f);
    B->b = rnd(&r, NB, 1); /* biases: NB entries, more than any channel count here */
    B->dy = rnd(&r, B->ny, 1);
    /* gradients start non-zero: the kernels must add to them */
    B->y = rnd(&r, B->ny, 1);
    B->dx = rnd(&r, B->nx, 1);
    B->dw = rnd(&r, B->nw, 1);
    B->db = rnd(&r, NB, 1);
    B->ty = rnd(&r, B->nx, 1);
    B->tdx = rnd(&r, B->ny, 1);
    B->tdw = rnd(&r, B->nw, 1);
    B->tdb = rnd(&r, NB, 1);
}

static bufs bufs_copy(const bufs *s)
{
    bufs d = *s;
    float **src[] = {(float **)&s->y, (float **)&s->dx, (float **)&s->dw, (float **)&s->db,
                     (float **)&s->ty, (float **)&s->tdx, (float **)&s->tdw, (float **)&s->tdb};
    float **dst[] = {&d.y, &d.dx, &d.dw, &d.db, &d.ty, &d.tdx, &d.tdw, &d.tdb};
    size_t len[] = {s->ny, s->nx, s->nw, 0, s->nx, s->ny, s->nw, 0};
    for (int i = 0; i < 8; i++) {
        size_t n = len[i] ? len[i] : NB;
        *dst[i] = malloc(n * sizeof(float));
        memcpy(*dst[i], *src[i], n * sizeof(float));
    }
    return d;
}

static void bufs_free_out(bufs *B)
{
    free(B->y), free(B->dx), free(B->dw), free(B->db);
    free(B->ty), free(B->tdx), free(B->tdw), free(B->tdb);
}

static void bufs_free(bufs *B)
{
    bufs_free_out(B);
    free(B->x), free(B->w), free(B->b), free(B->dy);
}

/* Every kernel once on B's inputs, results into B's outputs. */
static bool run_all(const sd_conv_geom *g, bufs *B)
{
    bool ok = sd_cpu_conv2d_fwd(g, B->x, B->w, B->b, B->y) &&
              sd_cpu_conv2d_bwd(g, B->x, B->w, B->dy, B->dx, B->dw, B->db) &&
              sd_cpu_conv_transpose2d_fwd(g, B->dy, B->w, B->b, B->ty) &&
              sd_cpu_conv_transpose2d_bwd(g, B->dy, B->w, B->x, B->tdx, B->tdw, B->tdb);
    /* only dx, or only dw: the single-gradient paths */
    ok = ok && sd_cpu_conv2d_bwd(g, B->x, B->w, B->dy, B->dx, NULL, NULL) &&
         sd_cpu_conv2d_bwd(g, B->x, B->w, B->dy, NULL, B->dw, NULL);
    return ok;
}

static double rel(const float *a, const float *b, size_t n)
{
    double m = 1e-12, e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), s = fabs((double)b[i]);
        if (!(d <= e))
            e = d; /* NaN propagates */
        if (s > m)
            m = s;
    }
    return e / m;
}

/* Largest relative error over every result of a against b. */
static double max_rel(const bufs *a, const bufs *b)
{
    double e[] = {rel(a->y, b->y, a->ny), rel(a->dx, b->dx, a->nx), rel(a->dw, b->dw, a->nw),
                  rel(a->ty, b->ty, a->nx), rel(a->tdx, b->tdx, a->ny), rel(a->tdw, b->tdw, a->nw)};
    double m = 0;
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        if (!(e[i] <= m))
            m = e[i];
    return m;
}

static bool bits_equal(const bufs *a, const bufs *b)
{
    return !memcmp(a->y, b->y, a->ny * 4) && !memcmp(a->dx, b->dx, a->nx * 4) &&
           !memcmp(a->dw, b->dw, a->nw * 4) && !memcmp(a->ty, b->ty, a->nx * 4) &&
           !memcmp(a->tdx, b->tdx, a->ny * 4) && !memcmp(a->tdw, b->tdw, a->nw * 4);
}

static void test_dnnl_matches_im2col(void)
{
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++) {
        sd_conv_geom g = geom(&geos[i], SD_DTYPE_F32);
        bufs ref;
        bufs_init(&ref, &g, 10 + i);
        bufs d1 = bufs_copy(&ref), d2 = bufs_copy(&ref);
        float *y = malloc(ref.ny * sizeof *y);
        CHECK_MSG(sd_cpu_dnnl_conv2d_fwd(&g, ref.x, ref.w, ref.b, y), "oneDNN declined geometry %zu", i);
        free(y);
        sd_cpu_conv_impl_set(SD_CPU_CONV_IM2COL);
        CHECK(run_all(&g, &ref));
        sd_cpu_conv_impl_set(SD_CPU_CONV_DNNL);
        sd_cpu_dnnl_set_blocked(true);
        CHECK(run_all(&g, &d1));
        sd_cpu_dnnl_set_blocked(false);
        CHECK(run_all(&g, &d2));
        double e1 = max_rel(&d1, &ref), e2 = max_rel(&d2, &ref);
        CHECK_MSG(e1 < 1e-5 && e2 < 1e-5, "geometry %zu: oneDNN blocked err %.3g, plain err %.3g", i, e1, e2);
        bufs_free_out(&d1);
        bufs_free_out(&d2);
        bufs_free(&ref);
    }
    sd_cpu_dnnl_set_blocked(true);
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
}

static void test_dnnl_bit_identical_reruns(void)
{
    sd_set_threads(2);
    geo q = {2, 48, 33, 29, 56, 3, 3, 1, 1, 2, 2, 2, 2, 1};
    for (int mode = 0; mode < 3; mode++) {
        sd_conv_geom g = geom(&q, mode == 2 ? SD_DTYPE_BF16 : SD_DTYPE_F32);
        sd_cpu_conv_impl_set(SD_CPU_CONV_DNNL);
        sd_cpu_dnnl_set_blocked(mode != 1);
        bufs a;
        bufs_init(&a, &g, 7);
        bufs b = bufs_copy(&a), c = bufs_copy(&a);
        CHECK(run_all(&g, &a));
        CHECK(run_all(&g, &b));
        CHECK(run_all(&g, &c));
        CHECK_MSG(bits_equal(&a, &b) && bits_equal(&a, &c), "mode %d: reruns differ (max err %.3g)", mode,
                  max_rel(&a, &b));
        bufs_free_out(&b);
        bufs_free_out(&c);
        bufs_free(&a);
    }
    sd_cpu_dnnl_set_blocked(true);
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
}

/* Ops may run on several OpenMP threads at once (same geometry, so the
 * same cached primitive): each call must match a lone call's result. */
static void test_dnnl_concurrent_calls(void)
{
    geo q = {1, 24, 19, 17, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    sd_conv_geom g = geom(&q, SD_DTYPE_F32);
    sd_cpu_conv_impl_set(SD_CPU_CONV_DNNL);
    enum { JOBS = 8 };
    bufs in[JOBS], solo[JOBS];
    for (int j = 0; j < JOBS; j++) {
        bufs_init(&in[j], &g, 300 + j);
        solo[j] = bufs_copy(&in[j]);
        CHECK(run_all(&g, &solo[j]));
    }
    int ok[JOBS];
#pragma omp parallel for schedule(static, 1) num_threads(2)
    for (int j = 0; j < JOBS; j++)
        ok[j] = run_all(&g, &in[j]);
    for (int j = 0; j < JOBS; j++) {
        CHECK(ok[j]);
        double e = max_rel(&in[j], &solo[j]);
        CHECK_MSG(e < 1e-5, "job %d: concurrent result err %.3g", j, e);
        bufs_free_out(&solo[j]);
        bufs_free(&in[j]);
    }
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
}

/* Winograd F(2x2, 3x3) against im2col: padding 0 to 2d, dilations 1 to 6
 * with partial tiles, asymmetric padding and dilation, batch 2, blocks of
 * one and two tile rows (the cap lowered) and the default cap; the default
 * rule gives its bits. */
static void test_winograd_matches_im2col(void)
{
    static const geo wg[] = {
        {2, 128, 33, 35, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* padded, odd sizes, batch 2 */
        {1, 128, 37, 33, 128, 3, 3, 1, 1, 6, 6, 6, 6, 1}, /* dilation 6 */
        {1, 128, 38, 36, 136, 3, 3, 1, 1, 0, 0, 2, 2, 1}, /* dilation 2, no padding */
        {1, 128, 35, 33, 129, 3, 3, 1, 1, 3, 1, 2, 1, 1}, /* ph 3 dh 2, pw 1 dw 1 */
        {1, 130, 30, 32, 128, 3, 3, 1, 1, 2, 2, 1, 1, 1}, /* padding 2d: output larger than input */
    };
    for (size_t i = 0; i < sizeof wg / sizeof wg[0]; i++)
        for (int cap = 0; cap < 3; cap++) {
            sd_conv_geom g = geom(&wg[i], SD_DTYPE_F32);
            CHECK_MSG(sd_cpu_winograd_applies(&g), "geometry %zu: Winograd declined", i);
            int wide = g.cin > g.cout ? g.cin : g.cout, ntx = g.dw * (g.ow / (2 * g.dw)) + (g.ow % (2 * g.dw) < g.dw ? g.ow % (2 * g.dw) : g.dw);
            /* one tile row per block, two, the default cap */
            sd_cpu_winograd_set_cap(cap == 2 ? 0 : (size_t)16 * wide * ntx * (cap + 1));
            bufs ref;
            bufs_init(&ref, &g, 40 + i);
            bufs a = bufs_copy(&ref), b = bufs_copy(&ref), d = bufs_copy(&ref);
            sd_cpu_conv_impl_set(SD_CPU_CONV_IM2COL);
            CHECK(run_all(&g, &ref));
            sd_cpu_conv_impl_set(SD_CPU_CONV_WINOGRAD);
            CHECK(run_all(&g, &a));
            CHECK(run_all(&g, &b));
            /* the default rule: Winograd, unless native bf16 hands f32
             * convs to oneDNN (sd_cpu_dnnl_conv_wanted) */
            sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
            CHECK(run_all(&g, &d));
            double e = max_rel(&a, &ref);
            CHECK_MSG(e < 1e-5, "geometry %zu cap %d: Winograd err %.3g", i, cap, e);
            CHECK_MSG(e > 0, "geometry %zu cap %d: Winograd gave im2col's bits (not run?)", i, cap);
            CHECK_MSG(bits_equal(&a, &b), "geometry %zu cap %d: Winograd reruns differ", i, cap);
            CHECK_MSG(sd_cpu_bf16_supported() || bits_equal(&a, &d), "geometry %zu cap %d: the default is not Winograd",
                      i, cap);
            bufs_free_out(&a);
            bufs_free_out(&b);
            bufs_free_out(&d);
            bufs_free(&ref);
        }
    sd_cpu_winograd_set_cap(0);
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
    /* what it takes: 3x3 stride 1, padding <= 2d, >= 128 channels in and
     * out, >= 1024 output pixels, f32 */
    const geo no[] = {
        {1, 128, 64, 64, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1}, /* stride 2 */
        {1, 128, 32, 32, 128, 3, 3, 1, 1, 3, 3, 1, 1, 1}, /* padding > 2d */
        {1, 64, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* 64 channels in */
        {1, 128, 32, 32, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* a classifier head */
        {1, 128, 16, 32, 128, 3, 3, 1, 1, 2, 2, 2, 2, 1}, /* 512 output pixels */
        {1, 128, 32, 32, 128, 1, 1, 1, 1, 0, 0, 1, 1, 1}, /* 1x1 */
        {1, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1, 1, 2}, /* groups */
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        sd_conv_geom g = geom(&no[i], SD_DTYPE_F32);
        CHECK_MSG(!sd_cpu_winograd_applies(&g), "case %zu: Winograd should decline", i);
    }
    sd_conv_geom g = geom(&wg[0], SD_DTYPE_BF16);
    CHECK(!sd_cpu_winograd_applies(&g));
}

static void test_bf16_round(void)
{
    const uint32_t in[] = {0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f80c000u, 0x3f807fffu,
                           0xbf808001u, 0x7f800000u, 0x7f7fffffu, 0x00000001u};
    const uint32_t want[] = {0x3f800000u, 0x3f800000u, 0x3f820000u, 0x3f810000u, 0x3f800000u,
                             0xbf810000u, 0x7f800000u, 0x7f800000u, 0x00000000u};
    float f[9], r[9];
    memcpy(f, in, sizeof f);
    sd_cpu_bf16_round(f, r, 9);
    for (int i = 0; i < 9; i++) {
        uint32_t u;
        memcpy(&u, &r[i], 4);
        CHECK_MSG(u == want[i], "round(0x%08x) = 0x%08x, expected 0x%08x", in[i], u, want[i]);
    }
    float nan = NAN, rn;
    sd_cpu_bf16_round(&nan, &rn, 1);
    CHECK(isnan(rn));
}

/* bf16 compute = f32 compute on rounded x, w, dy (bias stays f32), for the
 * oneDNN path and the im2col path (groups > 1 takes it). */
static void test_bf16_is_f32_on_rounded_inputs(void)
{
    printf("native bf16 convolutions: %s\n", sd_cpu_bf16_supported() ? "yes" : "no (emulated)");
    geo extra[] = {{2, 4, 9, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2}, {1, 6, 8, 8, 9, 3, 3, 2, 2, 1, 1, 1, 1, 3}};
    for (size_t i = 0; i < sizeof geos / sizeof geos[0] + 2; i++) {
        const geo *q = i < sizeof geos / sizeof geos[0] ? &geos[i] : &extra[i - sizeof geos / sizeof geos[0]];
        for (int impl = 0; impl < 2; impl++) {
            sd_conv_geom g16 = geom(q, SD_DTYPE_BF16), g32 = geom(q, SD_DTYPE_F32);
            bufs b16;
            bufs_init(&b16, &g16, 100 + i);
            bufs f32 = bufs_copy(&b16), rnd32 = bufs_copy(&b16);
            float *xr = malloc(b16.nx * 4), *wr = malloc(b16.nw * 4), *dyr = malloc(b16.ny * 4);
            sd_cpu_bf16_round(b16.x, xr, b16.nx);
            sd_cpu_bf16_round(b16.w, wr, b16.nw);
            sd_cpu_bf16_round(b16.dy, dyr, b16.ny);
            sd_cpu_conv_impl_set(impl ? SD_CPU_CONV_DNNL : SD_CPU_CONV_IM2COL);
            CHECK(run_all(&g16, &b16));
            sd_cpu_conv_impl_set(SD_CPU_CONV_IM2COL);
            CHECK(run_all(&g32, &f32));
            float *keep[3] = {rnd32.x, rnd32.w, rnd32.dy};
            rnd32.x = xr, rnd32.w = wr, rnd32.dy = dyr;
            CHECK(run_all(&g32, &rnd32));
            double e_r = max_rel(&b16, &rnd32), e_f = max_rel(&b16, &f32);
            /* rounded-input reference: only the f32 summation order differs;
             * the f32 reference differs by bf16's 2^-9 input rounding */
            CHECK_MSG(e_r < 1e-5, "geometry %zu impl %d: err vs f32 on rounded inputs %.3g", i, impl, e_r);
            CHECK_MSG(e_f < 2e-2 && e_f > 1e-5, "geometry %zu impl %d: err vs f32 %.3g (bf16 not applied?)", i,
                      impl, e_f);
            free(xr), free(wr), free(dyr);
            rnd32.x = keep[0], rnd32.w = keep[1], rnd32.dy = keep[2];
            bufs_free_out(&f32);
            bufs_free_out(&rnd32);
            bufs_free(&b16);
        }
    }
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
}

/* SEGDA_CONV=hybrid's rule (conv_dnnl.c): oneDNN for the classifier heads
 * and the narrow 3x3 layers, im2col for 1x1, wide, transposed convs and
 * tiny-Cin backward; the default (AUTO) is untouched by it on a CPU without
 * native bf16. Shapes are DeepLab's at 512x256 and the discriminator's. */
static void test_hybrid_rule(void)
{
    const struct {
        geo q;
        bool bwd, transposed, want;
    } cases[] = {
        {{1, 2048, 33, 65, 19, 3, 3, 1, 1, 6, 6, 6, 6, 1}, true, false, true},      /* ASPP branch */
        {{1, 64, 128, 256, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}, false, false, true},     /* layer1 3x3 */
        {{1, 19, 256, 512, 64, 4, 4, 2, 2, 1, 1, 1, 1, 1}, true, false, true},      /* discriminator conv1 */
        {{1, 256, 33, 65, 256, 3, 3, 1, 1, 2, 2, 2, 2, 1}, false, false, false},    /* wide dilated layer3 */
        {{1, 256, 33, 65, 1024, 1, 1, 1, 1, 0, 0, 1, 1, 1}, false, false, false},   /* 1x1 */
        {{1, 3, 321, 321, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}, true, false, false},      /* tiny Cin backward */
        {{1, 3, 321, 321, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}, false, false, true},      /* ... its forward */
        {{1, 64, 64, 64, 32, 4, 4, 2, 2, 1, 1, 1, 1, 1}, false, true, false},       /* transposed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sd_conv_geom g = geom(&cases[i].q, SD_DTYPE_F32);
        sd_cpu_conv_impl_set(SD_CPU_CONV_HYBRID);
        bool got = sd_cpu_dnnl_conv_wanted(&g, cases[i].bwd, cases[i].transposed);
        CHECK_MSG(got == cases[i].want, "case %zu: hybrid wants oneDNN = %d, expected %d", i, got, cases[i].want);
        sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
        if (!sd_cpu_bf16_supported())
            CHECK_MSG(!sd_cpu_dnnl_conv_wanted(&g, cases[i].bwd, cases[i].transposed),
                      "case %zu: the default path left im2col", i);
    }
}

int main(void)
{
    sd_log_set_level(0);
    RUN(test_dnnl_matches_im2col);
    RUN(test_dnnl_bit_identical_reruns);
    RUN(test_dnnl_concurrent_calls);
    RUN(test_winograd_matches_im2col);
    RUN(test_bf16_round);
    RUN(test_bf16_is_f32_on_rounded_inputs);
    RUN(test_hybrid_rule);
    TESTS_DONE();
}
