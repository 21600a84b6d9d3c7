/* Tests for src/gap/objects.c and `segda gap --objects`: object rows from
 * instance files (shape: silhouettes, texture: masked colours), checked on
 * hand-made GTA5-layout trees where the answer is known (two domains whose
 * objects have the same shapes but different colours: texture separates
 * them, shape cannot), on a tiny synth benchmark, and the errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util.h"
#include "segda/data.h"
#include "segda/gap.h"
#include "segda/image.h"

enum { W = 40, H = 30, N = 20 };

/* Image i of a domain: road, one car rectangle of a size that depends on i
 * only (so both domains share the shapes), painted in the domain's colour. */
static void write_domain(const char *root, int dom)
{
    test_sh("mkdir -p '%s/images' '%s/labels' '%s/instances'", root, root, root);
    static uint8_t rgb[W * H * 3], lab[W * H];
    static uint16_t inst[W * H];
    for (int i = 0; i < N; i++) {
        int w = 8 + (i * 7) % 17, h = 6 + (i * 5) % 13, x0 = (i * 3) % (W - w), y0 = (i * 2) % (H - h);
        for (int p = 0; p < W * H; p++) {
            int x = p % W, y = p / W;
            bool in = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h && !(x == x0 && y == y0);
            lab[p] = in ? 26 : 7;
            inst[p] = in ? 26000 : 7;
            uint8_t noise = (uint8_t)((p * 31 + i * 7) % 23);
            rgb[3 * p] = in ? (dom ? 40 : 200) + noise : 90;
            rgb[3 * p + 1] = in ? 60 + noise : 90;
            rgb[3 * p + 2] = in ? (dom ? 200 : 40) + noise : 90;
        }
        char p[600];
        sd_image im = {W, H, 3, 8, rgb};
        snprintf(p, sizeof p, "%s/images/%05d.png", root, i + 1);
        CHECK_OK(sd_png_write(p, &im));
        sd_image l = {W, H, 1, 8, lab};
        snprintf(p, sizeof p, "%s/labels/%05d.png", root, i + 1);
        CHECK_OK(sd_png_write(p, &l));
        sd_image s = {W, H, 1, 16, inst};
        snprintf(p, sizeof p, "%s/instances/%05d.png", root, i + 1);
        CHECK_OK(sd_png_write(p, &s));
    }
}

static void test_known_answer(void)
{
    char root[] = "/tmp/segda_gapobj_XXXXXX";
    if (!mkdtemp(root))
        return;
    char a[400], b[400];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    write_domain(a, 0);
    write_domain(b, 1);
    char spec[420];
    snprintf(spec, sizeof spec, "gta5:%s", a);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    float *xs = NULL, *xt = NULL;
    int ns = 0, nt = 0, ds_ = 0, dt = 0;
    CHECK_OK(sd_gap_object_features(&ds, SD_GAP_OBJECT_SHAPE, 8, 20, &xs, &ns, &ds_));
    CHECK_OK(sd_gap_object_features(&ds, SD_GAP_OBJECT_TEXTURE, 8, 20, &xt, &nt, &dt));
    CHECK(ns == N && nt == N && ds_ == 64 && dt == 192);
    /* silhouettes are 0/1 with both values (the notched corner); texture is
     * 0 exactly where the silhouette is */
    int ones = 0, zeros = 0, bad = 0;
    for (int i = 0; xs && xt && i < ns * 64; i++) {
        ones += xs[i] == 1.0f, zeros += xs[i] == 0.0f;
        bool tex0 = xt[3 * i] == 0 && xt[3 * i + 1] == 0 && xt[3 * i + 2] == 0;
        bad += (xs[i] == 0.0f) != tex0;
    }
    CHECK(ones + zeros == ns * 64 && ones > zeros && zeros > 0 && bad == 0);
    free(xs), free(xt);
    sd_dataset_free(&ds);

    const char *bin = getenv("SEGDA_BIN") ? getenv("SEGDA_BIN") : "build/segda";
    char json[450];
    snprintf(json, sizeof json, "%s/o.json", root);
    int rc = test_sh("%s gap --objects both --crop 8 --a gta5:%s --b gta5:%s --json '%s' > /dev/null 2>&1", bin, a,
                     b, json);
    CHECK(rc == 0);
    char *j = test_slurp(json, NULL);
    double sl = -1, sp = -1, tl = -1, tp = -1;
    const char *s = j ? strstr(j, "\"shape\"") : NULL, *t = j ? strstr(j, "\"texture\"") : NULL;
    if (s)
        sscanf(strstr(s, "linear_accuracy") + 18, "%lf", &sl), sscanf(strstr(s, "poly_accuracy") + 16, "%lf", &sp);
    if (t)
        sscanf(strstr(t, "linear_accuracy") + 18, "%lf", &tl), sscanf(strstr(t, "poly_accuracy") + 16, "%lf", &tp);
    /* same shapes in both domains: no better than chance by much; colours: perfect */
    CHECK_MSG(sl >= 0 && sl <= 0.7 && sp >= 0 && sp <= 0.7, "shape accuracies %g %g", sl, sp);
    CHECK_MSG(tl >= 0.95 && tp >= 0.95, "texture accuracies %g %g", tl, tp);
    free(j);
    test_sh("rm -rf '%s'", root);
}

static void test_synth_and_errors(void)
{
    char bench[256], src[300], tgt[300];
    test_tiny_bench("gapobj", 8, 0, bench, src, tgt);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, tgt, NULL, NULL));
    float *x = NULL;
    int n = 0, d = 0;
    CHECK_OK(sd_gap_object_features(&ds, SD_GAP_OBJECT_TEXTURE, 16, 16, &x, &n, &d));
    CHECK(n > 0 && d == 768);
    free(x);
    CHECK(sd_gap_object_features(&ds, SD_GAP_OBJECT_SHAPE, 1, 16, &x, &n, &d) == SD_ERR_ARG);
    sd_dataset_free(&ds);
    /* a dataset without instance files */
    test_sh("rm -rf '%s/sim/instances'", bench);
    CHECK_OK(sd_dataset_open(&ds, src, NULL, NULL));
    CHECK(sd_gap_object_features(&ds, SD_GAP_OBJECT_SHAPE, 16, 16, &x, &n, &d) == SD_ERR_DATA);
    CHECK_ERR_HAS("no instance files");
    sd_dataset_free(&ds);
    const char *bin = getenv("SEGDA_BIN") ? getenv("SEGDA_BIN") : "build/segda";
    CHECK(test_sh("%s gap --objects round --a %s --b %s > /dev/null 2>&1", bin, src, tgt) == 2);
    CHECK(test_sh("%s gap --objects shape --a %s --b %s > /dev/null 2>&1", bin, src, tgt) == 1);
    test_sh("rm -rf '%s'", bench);
}

int main(void)
{
    RUN(test_known_answer);
    RUN(test_synth_and_errors);
    TESTS_DONE();
}
