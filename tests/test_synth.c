/* Tests of the built-in benchmark generator (segda synth): determinism and
 * independence of image count and thread count, file layouts and bit
 * depths, class coverage, valid label ids, the sim/real appearance and
 * layout gap, crops, odd and large sizes, errors, the dataset readers on its
 * output, and the command line. */
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/data.h"
#include "segda/image.h"
#include "segda/labels.h"
#include "segda/synth.h"

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *dir) { nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static char *tmpdir(void)
{
    char *d = strdup("/tmp/segda_test_synth_XXXXXX");
    if (!d || !mkdtemp(d)) {
        fprintf(stderr, "cannot make a temp dir\n");
        exit(1);
    }
    return d;
}


/* Compares file `rel` under two roots byte for byte. */
static int same_file(const char *a, const char *b, const char *rel)
{
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s", a, rel);
    snprintf(pb, sizeof pb, "%s/%s", b, rel);
    size_t la = 0, lb = 0;
    uint8_t *x = test_slurp(pa, &la), *y = test_slurp(pb, &lb);
    int ok = x && y && la == lb && memcmp(x, y, la) == 0;
    if (!ok)
        fprintf(stderr, "  files differ or are missing: %s vs %s\n", pa, pb);
    free(x);
    free(y);
    return ok;
}

static int exists(const char *root, const char *rel)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static sd_synth_opts small_opts(void)
{
    sd_synth_opts o;
    sd_synth_opts_init(&o);
    o.n_sim = 3, o.n_real = 5, o.n_real_val = 2, o.w = 96, o.h = 48, o.seed = 7;
    o.synthia = true, o.crops = 1, o.crop_size = 16, o.quiet = true;
    return o;
}

static void test_defaults(void)
{
    sd_synth_opts o;
    sd_synth_opts_init(&o);
    CHECK(o.n_sim == 400 && o.n_real == 400 && o.n_real_val == 100);
    CHECK(o.w == 256 && o.h == 128 && o.crops == 0 && o.crop_size == 64 && !o.synthia);
    char stem[64];
    sd_synth_real_stem("train", 5, stem, sizeof stem);
    CHECK_MSG(!strcmp(stem, "corvel_000001_000019"), "%s", stem);
    sd_synth_real_stem("val", 3, stem, sizeof stem);
    CHECK_MSG(!strcmp(stem, "grauwald_000001_000019"), "%s", stem);
    CHECK(!strcmp(sd_synth_crop_dir_name(6), "traffic_light"));
    CHECK(sd_synth_crop_dir_name(19) == NULL);
    /* SYNTHIA ids invert the reader's map for every class */
    uint8_t lut[256];
    sd_labels_synthia_lut(lut, false);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        CHECK_MSG(lut[sd_synth_synthia_id(c)] == c, "class %d -> synthia %d -> %d", c, sd_synth_synthia_id(c),
                  lut[sd_synth_synthia_id(c)]);
    CHECK(sd_synth_synthia_id(255) == 0);
}

/* Same options -> same bytes, whatever the thread count; the first images
 * do not depend on how many are written. */
static void test_determinism(void)
{
    char *a = tmpdir(), *b = tmpdir();
    sd_synth_opts o = small_opts();
    o.threads = 2;
    CHECK_OK(sd_synth_write(a, &o));
    sd_synth_opts o2 = o;
    o2.threads = 1, o2.n_sim = 2, o2.n_real = 3;
    CHECK_OK(sd_synth_write(b, &o2));
    const char *rel[] = {"sim/images/00001.png", "sim/labels/00001.png", "sim/images/00002.png",
                         "sim/labels/00002.png", "synthia/RGB/0000001.png", "synthia/GT/LABELS/0000001.png",
                         "real/leftImg8bit/train/brunnstadt/brunnstadt_000000_000019_leftImg8bit.png",
                         "real/gtFine/train/dornhafen/dornhafen_000000_000019_gtFine_labelIds.png",
                         "real/leftImg8bit/val/grauwald/grauwald_000000_000019_leftImg8bit.png",
                         "crops/train/bus/00001.png", "crops/val/sky/00001.png"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        CHECK(same_file(a, b, rel[i]));
    CHECK(exists(a, "sim/images/00003.png") && !exists(b, "sim/images/00003.png"));
    /* different images differ; another seed gives other images */
    char p[1024];
    snprintf(p, sizeof p, "%s/sim/images/00002.png", a);
    size_t l1, l2;
    uint8_t *x = test_slurp(p, &l1);
    snprintf(p, sizeof p, "%s/sim/images/00001.png", a);
    uint8_t *y = test_slurp(p, &l2);
    CHECK(x && y && (l1 != l2 || memcmp(x, y, l1) != 0));
    free(x), free(y);
    size_t n = 64 * 32;
    uint8_t *r1 = malloc(n * 3), *r2 = malloc(n * 3);
    CHECK_OK(sd_synth_render(SD_SYNTH_REAL, 1, 2, 0, 64, 32, r1, NULL));
    CHECK_OK(sd_synth_render(SD_SYNTH_REAL, 1, 2, 0, 64, 32, r2, NULL));
    CHECK(memcmp(r1, r2, n * 3) == 0);
    CHECK_OK(sd_synth_render(SD_SYNTH_REAL, 2, 2, 0, 64, 32, r2, NULL));
    CHECK(memcmp(r1, r2, n * 3) != 0);
    free(r1), free(r2);
    rm_rf(a), rm_rf(b);
    free(a), free(b);
}

static void check_png(const char *root, const char *rel, int w, int h, int c, int depth, bool keep_palette)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    sd_image im;
    sd_status st = sd_image_read(p, &im, keep_palette);
    CHECK_MSG(st == SD_OK, "%s: %s", p, sd_errmsg());
    if (st)
        return;
    CHECK_MSG(im.w == w && im.h == h && im.c == c && im.depth == depth, "%s: %dx%dx%d depth %d, expected %dx%dx%d depth %d",
              rel, im.w, im.h, im.c, im.depth, w, h, c, depth);
    sd_image_free(&im);
}

static void test_layout(void)
{
    char *d = tmpdir();
    sd_synth_opts o = small_opts();
    o.w = 100, o.h = 52;
    CHECK_OK(sd_synth_write(d, &o));
    check_png(d, "sim/images/00001.png", 100, 52, 3, 8, false);
    check_png(d, "sim/labels/00003.png", 100, 52, 1, 8, true); /* palette indices = ids, as GTA5 ships */
    check_png(d, "synthia/RGB/0000002.png", 100, 52, 3, 8, false);
    check_png(d, "synthia/GT/LABELS/0000000.png", 100, 52, 3, 16, false);
    CHECK(!exists(d, "sim/images/00000.png") && !exists(d, "sim/images/00004.png"));
    CHECK(!exists(d, "synthia/RGB/0000003.png"));
    /* Cityscapes: 5 train images over 4 cities, 2 val images over 2 others */
    const char *train[] = {"brunnstadt_000000_000019", "corvel_000000_000019", "dornhafen_000000_000019",
                           "elmsau_000000_000019", "brunnstadt_000001_000019"};
    for (int i = 0; i < 5; i++) {
        char city[32], rel[512];
        snprintf(city, sizeof city, "%.*s", (int)(strchr(train[i], '_') - train[i]), train[i]);
        snprintf(rel, sizeof rel, "real/leftImg8bit/train/%s/%s_leftImg8bit.png", city, train[i]);
        check_png(d, rel, 100, 52, 3, 8, false);
        snprintf(rel, sizeof rel, "real/gtFine/train/%s/%s_gtFine_labelIds.png", city, train[i]);
        check_png(d, rel, 100, 52, 1, 8, false);
    }
    check_png(d, "real/leftImg8bit/val/falkenried/falkenried_000000_000019_leftImg8bit.png", 100, 52, 3, 8, false);
    check_png(d, "real/gtFine/val/grauwald/grauwald_000000_000019_gtFine_labelIds.png", 100, 52, 1, 8, false);
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "crops/train/%s/00001.png", sd_synth_crop_dir_name(c));
        check_png(d, rel, 16, 16, 3, 8, false);
        snprintf(rel, sizeof rel, "crops/val/%s/00001.png", sd_synth_crop_dir_name(c));
        check_png(d, rel, 16, 16, 3, 8, false);
        snprintf(rel, sizeof rel, "crops/train/%s/00002.png", sd_synth_crop_dir_name(c));
        CHECK(!exists(d, rel));
    }
    /* SYNTHIA labels carry the SYNTHIA id of the same pixel's GTA5-layout id */
    char p[1024];
    sd_image gl, sl;
    snprintf(p, sizeof p, "%s/sim/labels/00002.png", d);
    CHECK_OK(sd_image_read(p, &gl, true));
    snprintf(p, sizeof p, "%s/synthia/GT/LABELS/0000001.png", d);
    CHECK_OK(sd_image_read(p, &sl, false));
    if (gl.data && sl.data) {
        uint8_t lut[256];
        sd_labels_id_to_train_lut(lut);
        const uint8_t *g = gl.data;
        const uint16_t *s = sl.data;
        int bad = 0;
        for (int i = 0; i < 100 * 52; i++)
            bad += s[3 * i] != sd_synth_synthia_id(lut[g[i]]) || s[3 * i + 1] != 0 || s[3 * i + 2] != 0;
        CHECK_MSG(bad == 0, "%d SYNTHIA label pixels disagree", bad);
    }
    sd_image_free(&gl), sd_image_free(&sl);
    rm_rf(d);
    free(d);
}

/* Label ids the generator may use: the 19 classes plus unlabeled, ego
 * vehicle and static. */
static int allowed_id(int id)
{
    if (id == 0 || id == 1 || id == 4)
        return 1;
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        if (sd_class_label_id[c] == id)
            return 1;
    return 0;
}

static void test_classes_and_ids(void)
{
    const int w = 256, h = 128, n = 30;
    uint8_t *rgb = malloc((size_t)w * h * 3), *ids = malloc((size_t)w * h);
    uint8_t lut[256];
    sd_labels_id_to_train_lut(lut);
    for (int d = 0; d < SD_SYNTH_DOMAIN_COUNT; d++) {
        long count[SD_NUM_CLASSES] = {0}, ignored = 0, bad = 0, total = 0;
        for (int i = 0; i < n; i++) {
            CHECK_OK(sd_synth_render((sd_synth_domain)d, 3, 1, (uint64_t)i, w, h, rgb, ids));
            for (int k = 0; k < w * h; k++) {
                bad += !allowed_id(ids[k]);
                if (lut[ids[k]] < SD_NUM_CLASSES)
                    count[lut[ids[k]]]++;
                else
                    ignored++;
                total++;
            }
        }
        CHECK_MSG(bad == 0, "domain %d: %ld pixels with ids outside the generator's set", d, bad);
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            CHECK_MSG(count[c] >= 50, "domain %d: class %s has only %ld pixels in %d images", d, sd_class_names[c],
                      count[c], n);
        CHECK_MSG(ignored < total / 8, "domain %d: %ld of %ld pixels ignored", d, ignored, total);
        /* the big stuff classes dominate as in street datasets */
        CHECK(count[0] > total / 10 && count[2] > total / 20 && count[10] > total / 50);
    }
    free(rgb), free(ids);
}

typedef struct dom_stats {
    double mean[SD_NUM_CLASSES][3];
    double flat[SD_NUM_CLASSES]; /* fraction of neighbour pairs inside the class with equal colour */
    long n[SD_NUM_CLASSES], nhf[SD_NUM_CLASSES];
    double ground;                /* fraction of road + sidewalk pixels */
    double cars, persons;         /* pixels per image */
} dom_stats;

static void domain_stats(sd_synth_domain d, int n, dom_stats *s)
{
    const int w = 192, h = 96;
    memset(s, 0, sizeof *s);
    uint8_t *rgb = malloc((size_t)w * h * 3), *ids = malloc((size_t)w * h), lut[256];
    sd_labels_id_to_train_lut(lut);
    for (int i = 0; i < n; i++) {
        CHECK_OK(sd_synth_render(d, 11, 1, (uint64_t)i, w, h, rgb, ids));
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int k = y * w + x, t = lut[ids[k]];
                if (t >= SD_NUM_CLASSES)
                    continue;
                for (int c = 0; c < 3; c++)
                    s->mean[t][c] += rgb[3 * k + c];
                s->n[t]++;
                if (x + 2 < w && lut[ids[k + 1]] == t && lut[ids[k + 2]] == t && (x == 0 || lut[ids[k - 1]] == t)) {
                    int diff = 0;
                    for (int c = 0; c < 3; c++)
                        diff += abs((int)rgb[3 * k + 3 + c] - (int)rgb[3 * k + c]);
                    s->flat[t] += diff <= 1;
                    s->nhf[t]++;
                }
                s->ground += t <= 1;
                s->cars += t == 13;
                s->persons += t == 11;
            }
    }
    for (int t = 0; t < SD_NUM_CLASSES; t++) {
        for (int c = 0; c < 3; c++)
            s->mean[t][c] /= s->n[t] ? (double)s->n[t] : 1;
        s->flat[t] /= s->nhf[t] ? (double)s->nhf[t] : 1;
    }
    s->ground /= (double)n * w * h;
    s->cars /= n, s->persons /= n;
    free(rgb), free(ids);
}

/* The domains share the scene but not the look: real surfaces carry texture
 * and noise, palettes differ, and the layout shifts (horizon, class mix). */
static void test_domain_gap(void)
{
    dom_stats sim, real;
    domain_stats(SD_SYNTH_SIM, 24, &sim);
    domain_stats(SD_SYNTH_REAL, 24, &real);
    const int classes[] = {0, 1, 2, 8, 9, 10};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        int t = classes[i];
        /* flat shading: most neighbours inside a sim region share their colour;
         * texture and sensor noise make that rare in real images */
        CHECK_MSG(sim.flat[t] > 0.6 && real.flat[t] < sim.flat[t] - 0.4, "%s: equal-colour neighbours sim %.2f real %.2f",
                  sd_class_names[t], sim.flat[t], real.flat[t]);
        double dist = 0;
        for (int c = 0; c < 3; c++)
            dist += (real.mean[t][c] - sim.mean[t][c]) * (real.mean[t][c] - sim.mean[t][c]);
        CHECK_MSG(sqrt(dist) > 20, "%s: mean colour real (%.0f %.0f %.0f) vs sim (%.0f %.0f %.0f) too close",
                  sd_class_names[t], real.mean[t][0], real.mean[t][1], real.mean[t][2], sim.mean[t][0],
                  sim.mean[t][1], sim.mean[t][2]);
    }
    /* sim: saturated; real: muted. Saturation of the vegetation mean colour. */
    double sat_sim = sim.mean[8][1] - (sim.mean[8][0] + sim.mean[8][2]) / 2;
    double sat_real = real.mean[8][1] - (real.mean[8][0] + real.mean[8][2]) / 2;
    CHECK_MSG(sat_sim > 2 * sat_real, "vegetation greenness sim %.1f real %.1f", sat_sim, sat_real);
    /* the game camera sits higher and is pitched down: more ground in view */
    CHECK_MSG(sim.ground > real.ground + 0.03, "road+sidewalk fraction sim %.3f real %.3f", sim.ground, real.ground);
    /* more traffic and pedestrians in the camera domain */
    CHECK_MSG(real.persons > sim.persons, "person pixels/image real %.0f sim %.0f", real.persons, sim.persons);
    /* yet every class keeps a distinct look within each domain: class means differ pairwise */
    for (int d = 0; d < 2; d++) {
        const dom_stats *s = d ? &real : &sim;
        const int stuff[] = {0, 1, 2, 3, 4, 8, 9, 10};
        for (int i = 0; i < 8; i++)
            for (int j = i + 1; j < 8; j++) {
                int a = stuff[i], b = stuff[j];
                double dist = 0;
                for (int c = 0; c < 3; c++)
                    dist += (s->mean[a][c] - s->mean[b][c]) * (s->mean[a][c] - s->mean[b][c]);
                CHECK_MSG(sqrt(dist) > 10, "domain %d: %s and %s have mean colours %.0f %.0f %.0f and %.0f %.0f %.0f", d,
                          sd_class_names[a], sd_class_names[b], s->mean[a][0], s->mean[a][1], s->mean[a][2],
                          s->mean[b][0], s->mean[b][1], s->mean[b][2]);
            }
    }
}

static void test_sizes(void)
{
    const int sizes[][2] = {{8, 8}, {257, 131}, {2048, 1024}};
    for (int k = 0; k < 3; k++) {
        int w = sizes[k][0], h = sizes[k][1];
        uint8_t *rgb = malloc((size_t)w * h * 3), *ids = malloc((size_t)w * h);
        for (int d = 0; d < 2; d++) {
            memset(ids, 200, (size_t)w * h);
            CHECK_OK(sd_synth_render((sd_synth_domain)d, 5, 1, 3, w, h, rgb, ids));
            int bad = 0;
            for (size_t i = 0; i < (size_t)w * h; i++)
                bad += !allowed_id(ids[i]);
            CHECK_MSG(bad == 0, "%dx%d domain %d: %d bad ids", w, h, d, bad);
        }
        if (k == 2) {
            /* the scene does not depend on the size: the label at 2048x1024
             * downsampled by 8 mostly matches the 256x128 render */
            uint8_t *small = malloc(256 * 128);
            CHECK_OK(sd_synth_render(SD_SYNTH_SIM, 5, 1, 3, 256, 128, NULL, small));
            CHECK_OK(sd_synth_render(SD_SYNTH_SIM, 5, 1, 3, w, h, NULL, ids));
            int same = 0;
            for (int y = 0; y < 128; y++)
                for (int x = 0; x < 256; x++)
                    same += small[y * 256 + x] == ids[(size_t)(8 * y + 4) * w + 8 * x + 4];
            CHECK_MSG(same > 256 * 128 * 9 / 10, "only %d of %d labels agree across sizes", same, 256 * 128);
            free(small);
        }
        free(rgb), free(ids);
    }
}

static void test_errors(void)
{
    uint8_t buf[64 * 64 * 3];
    CHECK(sd_synth_render(SD_SYNTH_SIM, 1, 1, 0, 4, 64, buf, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("4x64");
    CHECK(sd_synth_render((sd_synth_domain)7, 1, 1, 0, 64, 64, buf, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("domain 7");
    sd_synth_opts o = small_opts();
    o.w = 20000;
    CHECK(sd_synth_write("/tmp/never", &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("20000x48");
    o = small_opts();
    o.n_real = -1;
    CHECK(sd_synth_write("/tmp/never", &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("negative");
    o = small_opts();
    o.crop_size = 3;
    CHECK(sd_synth_write("/tmp/never", &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("crop size 3");
    /* the output path runs through a regular file */
    char *d = tmpdir();
    char f[1024];
    snprintf(f, sizeof f, "%s/file", d);
    FILE *fp = fopen(f, "w");
    if (fp)
        fclose(fp);
    o = small_opts();
    CHECK(sd_synth_write(f, &o) == SD_ERR_IO);
    CHECK_ERR_HAS("/file");
    rm_rf(d);
    free(d);
}

/* The data engineer's readers open every layout and give the labels back. */
static void test_readers(void)
{
    char *d = tmpdir();
    sd_synth_opts o = small_opts();
    o.crops = 0;
    CHECK_OK(sd_synth_write(d, &o));
    uint8_t lut[256];
    sd_labels_id_to_train_lut(lut);
    size_t npx = (size_t)o.w * o.h;
    uint8_t *rgb = malloc(npx * 3), *ids = malloc(npx);
    struct {
        const char *fmt, *split;
        int n;
        sd_synth_domain dom;
        uint32_t stream;
    } cases[] = {{"gta5:%s/sim", NULL, 3, SD_SYNTH_SIM, 1},
                 {"synthia:%s/synthia", NULL, 3, SD_SYNTH_SIM, 1},
                 {"cityscapes:%s/real", "train", 5, SD_SYNTH_REAL, 2},
                 {"cityscapes:%s/real", "val", 2, SD_SYNTH_REAL, 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char spec[1024];
        snprintf(spec, sizeof spec, cases[k].fmt, d);
        sd_dataset ds;
        sd_status st = sd_dataset_open(&ds, spec, cases[k].split, NULL);
        CHECK_MSG(st == SD_OK, "%s: %s", spec, sd_errmsg());
        if (st)
            continue;
        CHECK_MSG(ds.n == cases[k].n && ds.has_labels, "%s: %d samples, expected %d", spec, ds.n, cases[k].n);
        for (int i = 0; i < ds.n; i++) {
            sd_sample s;
            st = sd_dataset_read(&ds, i, &s);
            CHECK_MSG(st == SD_OK, "%s sample %d: %s", spec, i, sd_errmsg());
            if (st)
                continue;
            CHECK(s.w == o.w && s.h == o.h && s.lw == o.w && s.lh == o.h && s.label);
            /* which generator image is this? Cityscapes sorts by city, so
             * find the index whose stem matches */
            int idx = i;
            if (cases[k].dom == SD_SYNTH_REAL) {
                for (int j = 0; j < cases[k].n; j++) {
                    char stem[64];
                    sd_synth_real_stem(cases[k].split, j, stem, sizeof stem);
                    if (strstr(s.stem, stem))
                        idx = j;
                }
            }
            CHECK_OK(sd_synth_render(cases[k].dom, o.seed, cases[k].stream, (uint64_t)idx, o.w, o.h, rgb, ids));
            int bad_img = memcmp(rgb, s.image, npx * 3) != 0, bad_lab = 0;
            for (size_t p = 0; p < npx; p++)
                bad_lab += s.label[p] != lut[ids[p]];
            CHECK_MSG(!bad_img && bad_lab == 0, "%s sample %d (%s): image %s, %d label pixels differ", spec, i,
                      s.stem, bad_img ? "differs" : "same", bad_lab);
            sd_sample_free(&s);
        }
        sd_dataset_free(&ds);
    }
    free(rgb), free(ids);
    rm_rf(d);
    free(d);
}

static int run_cli(const char *args)
{
    const char *bin = getenv("SEGDA_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s synth %s >/dev/null 2>&1", bin, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void)
{
    const char *bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP test_cli (no segda binary; run through tests/run.sh)\n");
        return;
    }
    char *d = tmpdir(), args[2300];
    CHECK(run_cli("--help") == 0);
    CHECK(run_cli("") == 2);
    snprintf(args, sizeof args, "--out %s --size 64 --quiet", d);
    CHECK(run_cli(args) == 2);
    snprintf(args, sizeof args, "--out %s --n-sim x", d);
    CHECK(run_cli(args) == 2);
    snprintf(args, sizeof args, "--out %s --bogus", d);
    CHECK(run_cli(args) == 2);
    snprintf(args, sizeof args, "--out %s --size 64x32 --n-sim 2 --n-real 1 --n-real-val 1 --seed 3 --quiet", d);
    CHECK(run_cli(args) == 0);
    CHECK(exists(d, "sim/images/00002.png") && exists(d, "sim/labels/00002.png"));
    CHECK(exists(d, "real/gtFine/val/falkenried/falkenried_000000_000019_gtFine_labelIds.png"));
    char f[1024];
    snprintf(f, sizeof f, "%s/sim/images/00001.png", d);
    snprintf(args, sizeof args, "--out %s/sub --n-sim 1 --quiet", f);
    CHECK(run_cli(args) == 1);
    rm_rf(d);
    free(d);
}

/* The completion marker is written last and records the options; a
 * non-empty folder is refused without force; force removes only what a
 * write leaves (a user's file stays); sd_synth_ensure keeps a finished
 * benchmark and rewrites one without its marker (an interrupted write). */
static void test_marker_force_ensure(void)
{
    char *d = tmpdir();
    char p[512];
    sd_synth_opts o = small_opts();
    o.crops = 0;
    CHECK_OK(sd_synth_write(d, &o));
    sd_synth_opts got;
    CHECK_OK(sd_synth_read_marker(d, &got));
    CHECK(got.n_sim == o.n_sim && got.n_real == o.n_real && got.n_real_val == o.n_real_val && got.w == o.w &&
          got.h == o.h && got.seed == o.seed && got.crops == 0 && got.synthia == o.synthia);
    CHECK(sd_synth_write(d, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("is not empty");
    CHECK_ERR_HAS("--force");

    snprintf(p, sizeof p, "%s/notes.txt", d);
    FILE *f = fopen(p, "w");
    if (f)
        fclose(f);
    snprintf(p, sizeof p, "%s/sim/images/99999.png", d);
    f = fopen(p, "w");
    if (f)
        fclose(f);
    sd_synth_opts o2 = o;
    o2.n_sim = 1;
    o2.synthia = false;
    o2.force = true;
    CHECK_OK(sd_synth_write(d, &o2));
    CHECK(access(p, F_OK) != 0);                              /* the earlier write's leftovers are gone */
    CHECK(access(test_path(d, "sim/images/00002.png"), F_OK) != 0);
    CHECK(access(test_path(d, "synthia"), F_OK) != 0);
    CHECK(access(test_path(d, "sim/images/00001.png"), F_OK) == 0);
    CHECK(access(test_path(d, "notes.txt"), F_OK) == 0);       /* not ours: kept */
    CHECK_OK(sd_synth_read_marker(d, &got));
    CHECK(got.n_sim == 1);

    bool regen = true;
    CHECK_OK(sd_synth_ensure(d, &o2, &regen));
    CHECK(!regen);
    /* killed while writing: no marker; a stray half-written file */
    CHECK(remove(test_path(d, SD_SYNTH_MARKER)) == 0);
    CHECK(sd_synth_read_marker(d, &got) == SD_ERR_IO);
    CHECK_ERR_HAS("no completion marker");
    f = fopen(test_path(d, "real/leftImg8bit/val/half.png"), "w");
    if (f)
        fclose(f);
    CHECK_OK(sd_synth_ensure(d, &o2, &regen));
    CHECK(regen);
    CHECK(access(test_path(d, "real/leftImg8bit/val/half.png"), F_OK) != 0);
    CHECK_OK(sd_synth_read_marker(d, &got));
    rm_rf(d);
    free(d);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_determinism);
    RUN(test_layout);
    RUN(test_classes_and_ids);
    RUN(test_domain_gap);
    RUN(test_sizes);
    RUN(test_errors);
    RUN(test_readers);
    RUN(test_cli);
    RUN(test_marker_force_ensure);
    TESTS_DONE();
}
