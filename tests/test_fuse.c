/* Tests for src/eval/fuse.c: painting detector masks over a segmentation map
 * (sorted by score, thresholded, overlapping masks suppressed, free pixels
 * only) on hand-made 8x4 masks, the knobs, order independence, and bad
 * options. The file-level path is tested in test_eval_inst.c (--fuse-out). */
#include <stdint.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "segda/detect.h"
#include "segda/fuse.h"

enum { W = 8, H = 4 };

static void cols(uint8_t *m, int x0, int x1)
{
    memset(m, 0, W * H);
    for (int y = 0; y < H; y++)
        for (int x = x0; x <= x1; x++)
            m[y * W + x] = 1;
}

static uint8_t mk[6][W * H];
static sd_inst_pred dets[6];

static void setup(void)
{
    cols(mk[0], 0, 3);            /* A car .9 */
    cols(mk[1], 2, 5);            /* B person .8: half on A */
    cols(mk[2], 0, 2);            /* C bicycle .7: all on A */
    cols(mk[3], 6, 7);            /* D truck .3: under the threshold */
    cols(mk[4], 6, 7);            /* E road .95: not a thing */
    memset(mk[5], 0, W * H);      /* F car .99: empty */
    const int cls[6] = {13, 11, 18, 14, 0, 13};
    const float sc[6] = {0.9f, 0.8f, 0.7f, 0.3f, 0.95f, 0.99f};
    for (int i = 0; i < 6; i++)
        dets[i] = (sd_inst_pred){cls[i], sc[i], mk[i]};
}

static void expect_row(const uint8_t *seg, const uint8_t *want)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            CHECK_MSG(seg[y * W + x] == want[x], "(%d,%d) = %d, expected %d", x, y, seg[y * W + x], want[x]);
}

static void test_paint(void)
{
    setup();
    sd_fuse_opts o;
    sd_fuse_opts_init(&o);
    CHECK(o.score_thresh == 0.5f && o.overlap_thresh == 0.5f);
    uint8_t seg[W * H];
    memset(seg, 2, sizeof seg); /* building everywhere */
    int n = -1;
    CHECK_OK(sd_fuse_detections(seg, W, H, dets, 6, &o, &n));
    /* A paints 0-3; B has 2 of 4 pixels painted (0.5, not above 0.5): its
     * free columns 4-5; C is all painted: dropped; D under 0.5; E, F skipped */
    const uint8_t want[W] = {13, 13, 13, 13, 11, 11, 2, 2};
    expect_row(seg, want);
    CHECK(n == 2);

    /* the same detections in reverse order: the same map */
    sd_inst_pred rev[6];
    for (int i = 0; i < 6; i++)
        rev[i] = dets[5 - i];
    memset(seg, 2, sizeof seg);
    CHECK_OK(sd_fuse_detections(seg, W, H, rev, 6, &o, &n));
    expect_row(seg, want);

    /* a stricter overlap drops B; a lower score threshold lets D in */
    o.overlap_thresh = 0.4f;
    o.score_thresh = 0.25f;
    memset(seg, 2, sizeof seg);
    CHECK_OK(sd_fuse_detections(seg, W, H, dets, 6, &o, &n));
    const uint8_t want2[W] = {13, 13, 13, 13, 2, 2, 14, 14};
    expect_row(seg, want2);
    CHECK(n == 2);

    /* clear_things: a thing label of the map outside every painted mask goes */
    sd_fuse_opts_init(&o);
    o.clear_things = true;
    memset(seg, 2, sizeof seg);
    seg[7] = 17;          /* a motorcycle the detector did not find: cleared */
    seg[W + 1] = 15;      /* under A's mask: painted car anyway */
    CHECK_OK(sd_fuse_detections(seg, W, H, dets, 6, &o, &n));
    CHECK(seg[7] == 255 && seg[W + 1] == 13 && seg[6] == 2 && seg[4] == 11);
    memset(seg, 12, sizeof seg);
    CHECK_OK(sd_fuse_detections(seg, W, H, NULL, 0, &o, &n));
    CHECK(seg[0] == 255 && seg[W * H - 1] == 255);
}

static void test_ties_and_bad(void)
{
    setup();
    sd_fuse_opts o;
    sd_fuse_opts_init(&o);
    /* equal scores: the earlier detection paints first */
    sd_inst_pred two[2] = {{12, 0.6f, mk[1]}, {13, 0.6f, mk[0]}};
    uint8_t seg[W * H];
    memset(seg, 0, sizeof seg);
    CHECK_OK(sd_fuse_detections(seg, W, H, two, 2, &o, NULL));
    const uint8_t want[W] = {13, 13, 12, 12, 12, 12, 0, 0};
    expect_row(seg, want);
    /* no detections: the map untouched */
    CHECK_OK(sd_fuse_detections(seg, W, H, NULL, 0, &o, NULL));
    expect_row(seg, want);
    o.score_thresh = 1.5f;
    CHECK(sd_fuse_detections(seg, W, H, two, 2, &o, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("expected both in [0, 1]");
}

/* A randomly initialised detector at a small input size: whatever it
 * detects, the fused map differs from the segmentation only by thing
 * classes inside its masks, and the instance files list what it found. */
static void test_detector_path(void)
{
    sd_detector_opts o = sd_detector_opts_default(9);
    o.min_size = 64, o.max_size = 128, o.score_thresh = 0.0f;
    sd_detector *det = NULL;
    CHECK_OK(sd_detector_create(&o, 7, &det));
    if (!det)
        return;
    enum { IW = 96, IH = 48 };
    static uint8_t rgb[IW * IH * 3], seg[IW * IH], before[IW * IH];
    for (int i = 0; i < IW * IH * 3; i++)
        rgb[i] = (uint8_t)(i * 37 % 251);
    for (int i = 0; i < IW * IH; i++)
        seg[i] = before[i] = (uint8_t)(i % 3);
    char dir[] = "/tmp/segda_fuse_XXXXXX";
    if (!mkdtemp(dir))
        return;
    sd_fuse_opts fo;
    sd_fuse_opts_init(&fo);
    fo.score_thresh = 0.0f;
    int n_det = -1, n_painted = -1;
    CHECK_OK(sd_fuse_detect(det, rgb, IW, IH, seg, &fo, dir, "img", &n_det, &n_painted));
    CHECK(n_det >= 0 && n_painted >= 0 && n_painted <= n_det);
    int changed_bad = 0;
    for (int i = 0; i < IW * IH; i++)
        changed_bad += seg[i] != before[i] && !sd_train_id_is_thing(seg[i]);
    CHECK(changed_bad == 0);
    /* the list has one line per detection of a thing class */
    char *txt = test_slurp(test_path(dir, "img.txt"), NULL);
    int lines = 0;
    for (char *p = txt; p && *p; p++)
        lines += *p == '\n';
    CHECK(txt != NULL && lines == n_det);
    free(txt);
    test_sh("rm -rf '%s'", dir);
    sd_detector_free(det);
}

int main(void)
{
    RUN(test_paint);
    RUN(test_ties_and_bad);
    RUN(test_detector_path);
    TESTS_DONE();
}
