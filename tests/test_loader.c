/* Tests for src/data/loader.c: bit-identical batches for 0, 1 and 3 workers,
 * resume by start_iter and by seek, each epoch a permutation, skip_bad with
 * its count and list, rare-class sampling frequencies against
 * p(c) ∝ exp((1 - f_c) / T), and the subset / images-only options. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "segda/image.h"
#include "segda/labels.h"
#include "segda/loader.h"

static char dir[256];
#define NS 10
#define B 3
#define ITERS 9

static void make_tree(const char *name, int bad_index)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/images", dir, name);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/labels", dir, name);
    mkdir(p, 0755);
    for (int i = 0; i < NS; i++) {
        int w = 24 + (i % 3) * 4, h = 16 + (i % 2) * 2; /* sizes vary, as in GTA5 */
        sd_image im, lb;
        sd_image_alloc(&im, w, h, 3, 8);
        sd_image_alloc(&lb, w, h, 1, 8);
        uint8_t *q = im.data, *l = lb.data;
        for (int k = 0; k < w * h; k++) {
            q[3 * k] = (uint8_t)(k * 7 + i * 31);
            q[3 * k + 1] = (uint8_t)(k * 3 + i);
            q[3 * k + 2] = (uint8_t)(i * 20);
            l[k] = (uint8_t)sd_class_label_id[(k / 5 + i) % SD_NUM_CLASSES];
        }
        snprintf(p, sizeof p, "%s/%s/images/%05d.png", dir, name, i + 1);
        sd_png_write(p, &im);
        snprintf(p, sizeof p, "%s/%s/labels/%05d.png", dir, name, i + 1);
        sd_png_write(p, &lb);
        if (i == bad_index)
            CHECK(truncate(p, 50) == 0);
        sd_image_free(&im);
        sd_image_free(&lb);
    }
}

static sd_loader_opts base_opts(int workers)
{
    sd_loader_opts o = {.batch = B, .workers = workers, .seed = 1234, .shuffle = true};
    o.aug = (sd_augment){.base_w = 20, .base_h = 12, .image_interp = SD_INTERP_BICUBIC, .scale_min = 0.8f,
                         .scale_max = 1.6f, .crop_w = 12, .crop_h = 8, .flip = true, .brightness = 0.3f,
                         .contrast = 0.3f, .saturation = 0.3f, .blur_p = 0.5f, .blur_sigma_min = 0.3f,
                         .blur_sigma_max = 1.0f, .norm = sd_norm_caffe};
    return o;
}

typedef struct run {
    float img[ITERS][B * 3 * 12 * 8];
    uint8_t lab[ITERS][B * 12 * 8];
    sd_crop_box box[ITERS][B];
    int idx[ITERS][B];
} run;

static void collect(const sd_dataset *ds, sd_loader_opts o, run *r, int from)
{
    sd_loader *l;
    o.start_iter = from;
    CHECK_OK(sd_loader_init(&l, ds, &o));
    if (!l)
        return;
    for (int k = from; k < ITERS; k++) {
        const sd_batch *b;
        CHECK_OK(sd_loader_next(l, &b));
        if (!b)
            continue;
        CHECK(b->iter == k && b->n == B && b->w == 12 && b->h == 8);
        memcpy(r->img[k], b->image, sizeof r->img[k]);
        memcpy(r->lab[k], b->label, sizeof r->lab[k]);
        memcpy(r->box[k], b->box, sizeof r->box[k]);
        memcpy(r->idx[k], b->index, sizeof r->idx[k]);
    }
    sd_loader_free(l);
}

static void test_determinism(void)
{
    make_tree("good", -1);
    char spec[400];
    snprintf(spec, sizeof spec, "gta5:%s/good", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    run *r0 = calloc(1, sizeof(run)), *r1 = calloc(1, sizeof(run)), *r3 = calloc(1, sizeof(run));
    collect(&ds, base_opts(0), r0, 0);
    collect(&ds, base_opts(1), r1, 0);
    collect(&ds, base_opts(3), r3, 0);
    CHECK_MSG(!memcmp(r0, r1, sizeof(run)), "1 worker differs from 0");
    CHECK_MSG(!memcmp(r0, r3, sizeof(run)), "3 workers differ from 0");
    /* the batches are not all alike: augmentation and order vary */
    CHECK(memcmp(r0->img[0], r0->img[1], sizeof r0->img[0]) != 0);
    int flips = 0;
    for (int k = 0; k < ITERS; k++)
        for (int j = 0; j < B; j++)
            flips += r0->box[k][j].flipped;
    CHECK(flips > 2 && flips < ITERS * B - 2);

    /* each epoch visits every sample once: positions 0..9 and 10..19 */
    int seen[2][NS] = {{0}};
    for (int p = 0; p < 2 * NS; p++)
        seen[p / NS][r0->idx[p / B][p % B]]++;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < NS; i++)
            CHECK_MSG(seen[e][i] == 1, "epoch %d sample %d seen %d times", e, i, seen[e][i]);
    int same_order = 1;
    for (int p = 0; p < NS; p++)
        same_order &= r0->idx[p / B][p % B] == r0->idx[(p + NS) / B][(p + NS) % B];
    CHECK_MSG(!same_order, "the second epoch repeats the first one's order");

    /* resume at iteration 5 with 3 workers, and seek back to 2 */
    run *rr = calloc(1, sizeof(run));
    collect(&ds, base_opts(3), rr, 5);
    CHECK(!memcmp(rr->img[5], r0->img[5], sizeof(r0->img[0]) * (ITERS - 5)));
    CHECK(!memcmp(rr->idx[5], r0->idx[5], sizeof(r0->idx[0]) * (ITERS - 5)));
    sd_loader *l;
    sd_loader_opts o = base_opts(2);
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        const sd_batch *b;
        for (int k = 0; k < 4; k++)
            CHECK_OK(sd_loader_next(l, &b));
        CHECK(sd_loader_position(l) == 4);
        CHECK_OK(sd_loader_seek(l, 2));
        CHECK_OK(sd_loader_next(l, &b));
        CHECK(b && b->iter == 2 && !memcmp(b->image, r0->img[2], sizeof r0->img[2]));
        CHECK(b && !memcmp(b->box, r0->box[2], sizeof r0->box[2]));
        sd_loader_free(l);
    }
    /* another seed gives another order */
    run *rs = calloc(1, sizeof(run));
    o = base_opts(0);
    o.seed = 1235;
    collect(&ds, o, rs, 0);
    CHECK(memcmp(rs->idx, r0->idx, sizeof rs->idx) != 0);
    free(r0), free(r1), free(r3), free(rr), free(rs);
    sd_dataset_free(&ds);
}

static void test_skip_bad(void)
{
    make_tree("bad", 4); /* labels/00005.png truncated */
    char spec[400];
    snprintf(spec, sizeof spec, "gta5:%s/bad", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    sd_loader *l;
    sd_loader_opts o = base_opts(2);
    o.shuffle = false;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        const sd_batch *b;
        CHECK_OK(sd_loader_next(l, &b)); /* samples 0 1 2 */
        CHECK(sd_loader_next(l, &b) != SD_OK); /* 3 4 5 */
        CHECK_ERR_HAS("batch 1: ");
        CHECK_ERR_HAS("labels/00005.png: truncated PNG");
        CHECK_OK(sd_loader_next(l, &b)); /* 6 7 8: the loader goes on */
        CHECK(b && b->iter == 2 && b->index[0] == 6);
        sd_loader_free(l);
    }
    o.skip_bad = true;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        const sd_batch *b;
        for (int k = 0; k < 7; k++) { /* two epochs */
            CHECK_OK(sd_loader_next(l, &b));
            for (int j = 0; b && j < B; j++)
                CHECK(b->index[j] != 4);
            if (b && k == 1)
                CHECK(b->index[0] == 3 && b->index[1] == 5 && b->index[2] == 5); /* 4 replaced by 5 */
        }
        CHECK(sd_loader_n_skipped(l) == 1);
        CHECK(sd_loader_skipped(l, 0) && strstr(sd_loader_skipped(l, 0), "00005.png: truncated PNG"));
        sd_loader_free(l);
    }
    sd_dataset_free(&ds);
}

static void test_rcs(void)
{
    make_tree("rcs", -1);
    char spec[400];
    snprintf(spec, sizeof spec, "gta5:%s/rcs", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    /* fabricated stats: road everywhere, car in samples 0..4, bicycle only in 7 */
    uint64_t cp[NS * SD_NUM_CLASSES] = {0};
    for (int i = 0; i < NS; i++) {
        cp[i * 19 + 0] = 1000;
        if (i < 5)
            cp[i * 19 + 13] = 200;
    }
    cp[7 * 19 + 18] = 50;
    cp[3 * 19 + 11] = 5; /* below min_pixels: does not count */
    sd_loader_opts o = base_opts(0);
    o.rcs_temperature = 0.1f;
    o.rcs_min_pixels = 10;
    o.class_pixels = cp;
    sd_loader *l;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        double tot = 10000 + 1000 + 50 + 5, f0 = 10000 / tot, f13 = 1000 / tot, f18 = 50 / tot;
        double e0 = exp((1 - f0) / 0.1), e13 = exp((1 - f13) / 0.1), e18 = exp((1 - f18) / 0.1), z = e0 + e13 + e18;
        /* P(sample 7) = p18 + p0/10; P(sample 0) = p0/10 + p13/5 */
        double want7 = e18 / z + e0 / z / 10, want0 = e0 / z / 10 + e13 / z / 5;
        int n = 20000, c7 = 0, c0 = 0;
        for (int p = 0; p < n; p++) {
            int i = sd_loader_pick(l, p);
            c7 += i == 7;
            c0 += i == 0;
        }
        CHECK_MSG(fabs(c7 / (double)n - want7) < 0.015, "P(7) %.4f, expected %.4f", c7 / (double)n, want7);
        CHECK_MSG(fabs(c0 / (double)n - want0) < 0.015, "P(0) %.4f, expected %.4f", c0 / (double)n, want0);
        const sd_batch *b;
        CHECK_OK(sd_loader_next(l, &b));
        CHECK(b && b->index[0] == sd_loader_pick(l, 0) && b->index[2] == sd_loader_pick(l, 2));
        sd_loader_free(l);
    }
    o.class_pixels = NULL;
    CHECK(sd_loader_init(&l, &ds, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("needs class_pixels");
    sd_dataset_free(&ds);
}

static void test_subset_images_only(void)
{
    make_tree("sub", -1);
    char spec[400];
    snprintf(spec, sizeof spec, "gta5:%s/sub", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    static const int subset[4] = {7, 2, 9, 5};
    sd_loader_opts o = base_opts(0);
    o.subset = subset;
    o.n_subset = 4;
    run *r0 = calloc(1, sizeof(run)), *r3 = calloc(1, sizeof(run));
    collect(&ds, o, r0, 0);
    o.workers = 3;
    collect(&ds, o, r3, 0);
    CHECK_MSG(!memcmp(r0, r3, sizeof(run)), "3 workers differ from 0 on a subset");
    /* each run of 4 slots visits the 4 subset samples once */
    for (int e = 0; e < 2; e++) {
        int seen[NS] = {0};
        for (int p = e * 4; p < e * 4 + 4; p++)
            seen[r0->idx[p / B][p % B]]++;
        for (int i = 0; i < NS; i++)
            CHECK_MSG(seen[i] == (i == 7 || i == 2 || i == 9 || i == 5), "epoch %d: sample %d seen %d times", e, i,
                      seen[i]);
    }
    int bad[1] = {NS};
    o.subset = bad;
    o.n_subset = 1;
    sd_loader *l;
    CHECK(sd_loader_init(&l, &ds, &o) == SD_ERR_ARG);
    CHECK_ERR_HAS("subset entry 0 is sample 10, expected 0..9");
    /* images only: no label buffer, the same images as with labels */
    o = base_opts(2);
    o.images_only = true;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    collect(&ds, base_opts(0), r0, 0);
    if (l) {
        for (int k = 0; k < 4; k++) {
            const sd_batch *b;
            CHECK_OK(sd_loader_next(l, &b));
            CHECK(b && b->label == NULL && !memcmp(b->image, r0->img[k], sizeof r0->img[k]));
        }
        sd_loader_free(l);
    }
    free(r0), free(r3);
    sd_dataset_free(&ds);

    /* images only never opens a label: a truncated one does not matter */
    make_tree("subbad", 3);
    snprintf(spec, sizeof spec, "gta5:%s/subbad", dir);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    o = base_opts(1);
    o.images_only = true;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        for (int k = 0; k < 2 * NS / B; k++) {
            const sd_batch *b;
            CHECK_OK(sd_loader_next(l, &b));
        }
        sd_loader_free(l);
    }
    o.images_only = false;
    CHECK_OK(sd_loader_init(&l, &ds, &o));
    if (l) {
        sd_status st = SD_OK;
        for (int k = 0; k < 2 * NS / B && !st; k++) {
            const sd_batch *b;
            st = sd_loader_next(l, &b);
        }
        CHECK(st != SD_OK); /* with labels, the truncated one is an error */
        sd_loader_free(l);
    }
    sd_dataset_free(&ds);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/segda-test-loader-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sd_log_set_level(0);
    RUN(test_determinism);
    RUN(test_skip_bad);
    RUN(test_rcs);
    RUN(test_subset_images_only);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TESTS_DONE();
}
