/* The synthetic benchmark's style factors (segda synth --sim-as-real,
 * sd_synth_render_as): a sim image taking one factor from the real domain
 * changes that aspect only. Appearance factors leave the labels byte for
 * byte and touch only the pixels their aspect covers (the sky factor the
 * sky alone; haze, textures and lighting everything but the sky, whose
 * aerial-perspective weight is 0 and which carries no texture or shading);
 * camera-stage factors act as their operation does (noise zero-mean, blur
 * smoothing, vignetting darkening corners and not the centre); camera,
 * traffic and ego change the scene as named. The default (no factor) and
 * the real domain stay what sd_synth_render makes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/synth.h"

enum { W = 128, H = 64, N = 6, SKY = 23, EGO = 1 };

typedef struct img {
    uint8_t rgb[W * H * 3], ids[W * H];
} img;

static img def[N];   /* default sim images 0..N-1 */

static void render(uint32_t as_real, int dom, int i, img *out)
{
    CHECK_OK(sd_synth_render_as((sd_synth_domain)dom, as_real, 7, 1, (uint64_t)i, W, H, out->rgb, out->ids));
}

static uint32_t bit(sd_synth_factor f) { return 1u << f; }

static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* FNV-1a over images 0..N-1 (rgb then ids) of a domain's stream */
static uint64_t domain_hash(int dom, uint32_t stream)
{
    static img a;
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < N; i++) {
        CHECK_OK(sd_synth_render((sd_synth_domain)dom, 7, stream, (uint64_t)i, W, H, a.rgb, a.ids));
        h = fnv(a.ids, sizeof a.ids, fnv(a.rgb, sizeof a.rgb, h));
    }
    return h;
}

static void test_default_unchanged(void)
{
    /* the images as the generator wrote them before the factors existed:
     * FNV-1a of the decoded PNGs of that build's `segda synth --seed 7
     * --size 128x64 --n-sim 6 --n-real 6` (sim stream 1, real train 2) */
    CHECK_MSG(domain_hash(SD_SYNTH_SIM, 1) == 0x71dbdb6008bc44ccULL, "sim images changed: %016llx",
              (unsigned long long)domain_hash(SD_SYNTH_SIM, 1));
    CHECK_MSG(domain_hash(SD_SYNTH_REAL, 2) == 0x3db938a3679169a8ULL, "real images changed: %016llx",
              (unsigned long long)domain_hash(SD_SYNTH_REAL, 2));
    static img a, b;
    for (int i = 0; i < N; i++) {
        CHECK_OK(sd_synth_render(SD_SYNTH_SIM, 7, 1, (uint64_t)i, W, H, a.rgb, a.ids));
        render(0, SD_SYNTH_SIM, i, &def[i]);
        CHECK(!memcmp(a.rgb, def[i].rgb, sizeof a.rgb) && !memcmp(a.ids, def[i].ids, sizeof a.ids));
        /* the real domain ignores the mask */
        CHECK_OK(sd_synth_render(SD_SYNTH_REAL, 7, 1, (uint64_t)i, W, H, a.rgb, a.ids));
        render(~0u, SD_SYNTH_REAL, i, &b);
        CHECK(!memcmp(a.rgb, b.rgb, sizeof a.rgb) && !memcmp(a.ids, b.ids, sizeof a.ids));
    }
}

/* Appearance factors: labels identical; pixels change only where the
 * aspect lives (sky pixels: sky_only 1 -> only they, 0 -> never they, -1 ->
 * no constraint). */
static void appearance(sd_synth_factor f, int sky_only)
{
    static img v;
    long changed = 0, changed_sky = 0, changed_other = 0;
    for (int i = 0; i < N; i++) {
        render(bit(f), SD_SYNTH_SIM, i, &v);
        CHECK_MSG(!memcmp(v.ids, def[i].ids, sizeof v.ids), "%s changes the labels of image %d",
                  sd_synth_factor_name(f), i);
        for (int p = 0; p < W * H; p++) {
            bool d = memcmp(v.rgb + 3 * p, def[i].rgb + 3 * p, 3) != 0;
            changed += d;
            if (def[i].ids[p] == SKY)
                changed_sky += d;
            else
                changed_other += d;
        }
    }
    CHECK_MSG(changed > W * H / 50, "%s changes %ld pixels in %d images", sd_synth_factor_name(f), changed, N);
    if (sky_only == 1)
        CHECK_MSG(changed_other == 0 && changed_sky > 0, "%s: %ld non-sky pixels changed", sd_synth_factor_name(f),
                  changed_other);
    if (sky_only == 0)
        CHECK_MSG(changed_sky == 0 && changed_other > 0, "%s: %ld sky pixels changed", sd_synth_factor_name(f),
                  changed_sky);
}

static void test_appearance(void)
{
    appearance(SD_SYNTH_F_SKY, 1);
    appearance(SD_SYNTH_F_HAZE, 0);
    appearance(SD_SYNTH_F_TEXTURES, 0);
    appearance(SD_SYNTH_F_LIGHTING, 0);
    appearance(SD_SYNTH_F_COLORS, -1);
    appearance(SD_SYNTH_F_CAST, -1);
    appearance(SD_SYNTH_F_JPEG, -1);
    appearance(SD_SYNTH_F_NOISE, -1);
    appearance(SD_SYNTH_F_BLUR, -1);
    appearance(SD_SYNTH_F_VIGNETTE, -1);
}

/* sum of |horizontal neighbour differences| */
static double variation(const uint8_t *rgb)
{
    double s = 0;
    for (int y = 0; y < H; y++)
        for (int x = 1; x < W; x++)
            for (int c = 0; c < 3; c++)
                s += abs((int)rgb[(y * W + x) * 3 + c] - (int)rgb[(y * W + x - 1) * 3 + c]);
    return s;
}

static double region_mean(const uint8_t *rgb, int x0, int y0, int n)
{
    double s = 0;
    for (int y = y0; y < y0 + n; y++)
        for (int x = x0; x < x0 + n; x++)
            for (int c = 0; c < 3; c++)
                s += rgb[(y * W + x) * 3 + c];
    return s / (3.0 * n * n);
}

static void test_camera_stage(void)
{
    static img v;
    double mean_d = 0, abs_d = 0;
    for (int i = 0; i < N; i++) {
        render(bit(SD_SYNTH_F_NOISE), SD_SYNTH_SIM, i, &v);
        for (int p = 0; p < W * H * 3; p++) {
            int d = (int)v.rgb[p] - (int)def[i].rgb[p];
            mean_d += d;
            abs_d += abs(d);
        }
        render(bit(SD_SYNTH_F_BLUR), SD_SYNTH_SIM, i, &v);
        CHECK_MSG(variation(v.rgb) < 0.999 * variation(def[i].rgb), "blur: variation %g vs %g", variation(v.rgb),
                  variation(def[i].rgb));
        render(bit(SD_SYNTH_F_VIGNETTE), SD_SYNTH_SIM, i, &v);
        double dc = region_mean(v.rgb, W / 2 - 2, H / 2 - 2, 4) - region_mean(def[i].rgb, W / 2 - 2, H / 2 - 2, 4);
        double dk = region_mean(v.rgb, 0, 0, 6) - region_mean(def[i].rgb, 0, 0, 6);
        CHECK_MSG(fabs(dc) < 1.5 && dk < -3, "vignette: centre %+.2f, corner %+.2f", dc, dk);
    }
    mean_d /= (double)N * W * H * 3;
    abs_d /= (double)N * W * H * 3;
    CHECK_MSG(fabs(mean_d) < 0.5 && abs_d > 1.0, "noise: mean change %+.3f, mean |change| %.3f", mean_d, abs_d);
}

static void test_scene_factors(void)
{
    static img v;
    int cam_changed = 0, ego = 0;
    long veh_def = 0, veh_real = 0;
    for (int i = 0; i < N; i++) {
        render(bit(SD_SYNTH_F_CAMERA), SD_SYNTH_SIM, i, &v);
        cam_changed += memcmp(v.ids, def[i].ids, sizeof v.ids) != 0;
        render(bit(SD_SYNTH_F_EGO), SD_SYNTH_SIM, i, &v);
        int has = 0;
        for (int p = 0; p < W * H; p++) {
            has |= v.ids[p] == EGO;
            CHECK(def[i].ids[p] != EGO);
        }
        ego += has;
    }
    CHECK_MSG(cam_changed == N, "camera changed the labels of %d of %d images", cam_changed, N);
    CHECK_MSG(ego > 0, "ego: no bonnet in %d images", N);
    /* traffic: the real domain's counts (3..10 vehicles vs 1..6, 2..12 pedestrians vs 0..5) */
    for (int i = 0; i < 60; i++) {
        static img d;
        render(0, SD_SYNTH_SIM, 100 + i, &d);
        render(bit(SD_SYNTH_F_TRAFFIC), SD_SYNTH_SIM, 100 + i, &v);
        for (int p = 0; p < W * H; p++) {
            veh_def += d.ids[p] >= 24 && d.ids[p] <= 33;
            veh_real += v.ids[p] >= 24 && v.ids[p] <= 33;
        }
    }
    CHECK_MSG(veh_real > 1.1 * veh_def, "traffic: %ld vehicle and person pixels vs %ld by default", veh_real,
              veh_def);
}

static void test_parse(void)
{
    uint32_t m;
    CHECK_OK(sd_synth_factors_parse("haze,blur", &m));
    CHECK(m == (bit(SD_SYNTH_F_HAZE) | bit(SD_SYNTH_F_BLUR)));
    CHECK_OK(sd_synth_factors_parse("all,-haze", &m));
    CHECK(m == (((1u << SD_SYNTH_FACTOR_COUNT) - 1u) & ~bit(SD_SYNTH_F_HAZE)));
    CHECK_OK(sd_synth_factors_parse("none", &m));
    CHECK(m == 0);
    char buf[256];
    sd_synth_factors_format(bit(SD_SYNTH_F_TEXTURES) | bit(SD_SYNTH_F_EGO), buf, sizeof buf);
    CHECK(!strcmp(buf, "textures,ego"));
    CHECK(sd_synth_factors_parse("hazy", &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("'hazy' unknown");
    CHECK_ERR_HAS("textures, lighting, sky");
}

int main(void)
{
    RUN(test_default_unchanged);
    RUN(test_appearance);
    RUN(test_camera_stage);
    RUN(test_scene_factors);
    RUN(test_parse);
    TESTS_DONE();
}
