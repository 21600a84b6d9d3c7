/* Tests for src/eval/fuse.c: painting detector masks over a segmentation map
 * (sorted by score, thresholded, overlapping masks suppressed, free pixels
 * only) on hand-made 8x4 masks, the knobs, order independence, and bad
 * options. The file-level path is tested in test_eval_inst.c (--fuse-out). */
#include <stdint.h>
#include <string.h>

#include "check.h"
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

int main(void)
{
    RUN(test_paint);
    RUN(test_ties_and_bad);
    TESTS_DONE();
}
