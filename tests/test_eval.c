/* Tests of src/eval: confusion matrices and metrics checked against values
 * derived by hand (absent classes, ignored ground truth, all-ignored
 * images, predicted ignored ids, categories, the 16/13 protocols), label-id
 * and trainId inputs agreeing, upsample+argmax on hand-made logits, the
 * writers, and prediction matching with its error paths on fixture trees.
 * The numerical comparison with the official formulas on random data is in
 * tests/py/test_eval_cityscapes.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/labels.h"

/* gt trainIds and trainId predictions of one 4x2 image:
 *   gt   0 0 1 1 / 255 255 2 2
 *   pred 0 1 1 1 /   0   5 2 0
 * counts: [0][0]=1 [0][1]=1 [1][1]=2 [2][2]=1 [2][0]=1, 2 ignored.
 * road TP1 FN1 FP1 -> 1/3; sidewalk TP2 FP1 -> 2/3; building TP1 FN1 -> 1/2;
 * pole predicted only on ignored ground truth -> absent. */
static const uint8_t small_gt[8] = {0, 0, 1, 1, 255, 255, 2, 2};
static const uint8_t small_pred[8] = {0, 1, 1, 1, 0, 5, 2, 0};

static void test_hand_matrix(void)
{
    sd_confusion cm;
    sd_confusion_init(&cm);
    CHECK_OK(sd_confusion_add(&cm, small_gt, small_pred, 4, 2, SD_PRED_TRAIN_IDS, "a.png"));
    CHECK(cm.counts[0][0] == 1 && cm.counts[0][1] == 1 && cm.counts[1][1] == 2);
    CHECK(cm.counts[2][2] == 1 && cm.counts[2][0] == 1 && cm.counts[5][5] == 0);
    CHECK(cm.ignored == 2 && cm.images == 1);
    sd_eval_result r;
    sd_eval_compute(&cm, &r);
    CHECK_NEAR(r.class_iou[0], 1.0 / 3, 1e-12);
    CHECK_NEAR(r.class_iou[1], 2.0 / 3, 1e-12);
    CHECK_NEAR(r.class_iou[2], 0.5, 1e-12);
    for (int c = 3; c < SD_NUM_CLASSES; c++)
        CHECK_MSG(isnan(r.class_iou[c]), "class %d should be absent, got %g", c, r.class_iou[c]);
    CHECK_NEAR(r.miou[SD_PROTOCOL_19], 0.5, 1e-12);
    CHECK_NEAR(r.miou[SD_PROTOCOL_16], 0.5, 1e-12);
    CHECK_NEAR(r.miou[SD_PROTOCOL_13], 0.5, 1e-12);
    CHECK_NEAR(r.pixel_accuracy, 4.0 / 6, 1e-12);
    CHECK_NEAR(r.mean_accuracy, (0.5 + 1 + 0.5) / 3, 1e-12);
    CHECK(r.scored_pixels == 6);
    /* flat = {road, sidewalk}: TP 4 (road->sidewalk counts), FN 0, FP 1 (building->road) */
    CHECK_NEAR(r.category_iou[0], 0.8, 1e-12);
    /* construction: TP 1, FN 1 (building->road), FP 0 */
    CHECK_NEAR(r.category_iou[1], 0.5, 1e-12);
    for (int k = 2; k < SD_NUM_CATEGORIES; k++)
        CHECK(isnan(r.category_iou[k]));
}

/* The same image twice and an all-ignored image: counts add, ratios stay;
 * an all-ignored image changes only the image and ignored counts. */
static void test_accumulate_and_all_ignored(void)
{
    sd_confusion cm, one;
    sd_confusion_init(&cm);
    sd_confusion_init(&one);
    uint8_t ign[6];
    memset(ign, 255, sizeof ign);
    uint8_t p[6] = {0, 3, 7, 18, 255, 1};
    CHECK_OK(sd_confusion_add(&cm, ign, p, 3, 2, SD_PRED_TRAIN_IDS, "ign.png"));
    sd_eval_result r;
    sd_eval_compute(&cm, &r);
    CHECK(cm.images == 1 && cm.ignored == 6 && r.scored_pixels == 0);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        CHECK(isnan(r.class_iou[c]) && isnan(r.class_acc[c]));
    for (int k = 0; k < SD_NUM_CATEGORIES; k++)
        CHECK(isnan(r.category_iou[k]));
    CHECK(isnan(r.miou[0]) && isnan(r.miou[1]) && isnan(r.miou[2]));
    CHECK(isnan(r.pixel_accuracy) && isnan(r.mean_accuracy));

    CHECK_OK(sd_confusion_add(&cm, small_gt, small_pred, 4, 2, SD_PRED_TRAIN_IDS, "a.png"));
    CHECK_OK(sd_confusion_add(&one, small_gt, small_pred, 4, 2, SD_PRED_TRAIN_IDS, "a.png"));
    sd_confusion_merge(&cm, &one);
    CHECK(cm.images == 3 && cm.ignored == 10 && cm.counts[1][1] == 4 && cm.counts[2][0] == 2);
    sd_eval_compute(&cm, &r);
    CHECK_NEAR(r.class_iou[0], 1.0 / 3, 1e-12);
    CHECK_NEAR(r.category_iou[0], 0.8, 1e-12);
}

/* A prediction of an ignored label id is wrong for its pixel's class and for
 * the class's category, even when the ignored id belongs to that category
 * (parking is "flat" but not an evaluated id of flat): the official
 * getIouScoreForCategory counts it as a false negative. A void prediction
 * on ignored ground truth costs nothing. */
static void test_predicted_ignored_ids(void)
{
    /* gt: road road sidewalk ignored; pred label ids: road(7) parking(9) unlabeled(0) car(26) */
    uint8_t gt[4] = {0, 0, 1, 255}, pred[4] = {7, 9, 0, 26};
    sd_confusion cm;
    sd_confusion_init(&cm);
    CHECK_OK(sd_confusion_add(&cm, gt, pred, 4, 1, SD_PRED_LABEL_IDS, "p.png"));
    CHECK(cm.counts[0][0] == 1 && cm.counts[0][SD_EVAL_VOID] == 1 && cm.counts[1][SD_EVAL_VOID] == 1);
    sd_eval_result r;
    sd_eval_compute(&cm, &r);
    CHECK_NEAR(r.class_iou[0], 0.5, 1e-12);   /* TP 1, FN 1 */
    CHECK_NEAR(r.class_iou[1], 0.0, 1e-12);   /* TP 0, FN 1 */
    CHECK(isnan(r.class_iou[13]));             /* car predicted on ignored only */
    CHECK_NEAR(r.category_iou[0], 1.0 / 3, 1e-12); /* flat: TP 1, FN 2 */
    CHECK(isnan(r.category_iou[6]));
    CHECK_NEAR(r.pixel_accuracy, 1.0 / 3, 1e-12);
    CHECK_NEAR(r.mean_accuracy, 0.25, 1e-12);  /* road 1/2, sidewalk 0 */
    /* the same in trainIds: 255 is "no class" */
    uint8_t tp[4] = {0, 255, 255, 13};
    sd_confusion cm2;
    sd_confusion_init(&cm2);
    CHECK_OK(sd_confusion_add(&cm2, gt, tp, 4, 1, SD_PRED_TRAIN_IDS, "p.png"));
    CHECK(!memcmp(cm.counts, cm2.counts, sizeof cm.counts));
}

/* Random label-id predictions and their trainId translation give the same
 * matrix and the same numbers. */
static void test_labelids_equal_trainids(void)
{
    enum { W = 37, H = 23 };
    uint8_t gt[W * H], pl[W * H], pt[W * H], lut[256];
    sd_labels_id_to_train_lut(lut);
    sd_rng rng;
    sd_rng_seed(&rng, 7);
    for (int i = 0; i < W * H; i++) {
        int g = sd_rng_int(&rng, 22);
        gt[i] = (uint8_t)(g >= SD_NUM_CLASSES ? 255 : g);
        pl[i] = (uint8_t)sd_rng_int(&rng, SD_NUM_LABEL_IDS);
        pt[i] = lut[pl[i]];
    }
    sd_confusion a, b;
    sd_confusion_init(&a);
    sd_confusion_init(&b);
    CHECK_OK(sd_confusion_add(&a, gt, pl, W, H, SD_PRED_LABEL_IDS, "l.png"));
    CHECK_OK(sd_confusion_add(&b, gt, pt, W, H, SD_PRED_TRAIN_IDS, "t.png"));
    CHECK(!memcmp(a.counts, b.counts, sizeof a.counts) && a.ignored == b.ignored);
    sd_eval_result ra, rb;
    sd_eval_compute(&a, &ra);
    sd_eval_compute(&b, &rb);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        CHECK(ra.class_iou[c] == rb.class_iou[c] || (isnan(ra.class_iou[c]) && isnan(rb.class_iou[c])));
    for (int k = 0; k < SD_NUM_CATEGORIES; k++)
        CHECK(ra.category_iou[k] == rb.category_iou[k]);
    CHECK(ra.miou[0] == rb.miou[0] && ra.mean_accuracy == rb.mean_accuracy);
    uint64_t total = a.ignored;
    for (int g = 0; g < SD_NUM_CLASSES; g++)
        for (int p = 0; p < SD_EVAL_COLS; p++)
            total += a.counts[g][p];
    CHECK(total == W * H);
}

/* class_iou[c] = c / 100: the 19-, 16- and 13-class means by hand. */
static void test_protocols(void)
{
    /* SYNTHIA's 16-output class set is the mIoU-16 protocol's classes, and
     * its index LUT inverts it (the dropped trainIds ignored) */
    const uint8_t *ids = sd_class_set_train_ids(SD_NUM_CLASSES_SYNTHIA);
    uint8_t lut[256];
    CHECK(ids && sd_class_set_index_lut(SD_NUM_CLASSES_SYNTHIA, lut) && !sd_class_set_train_ids(SD_NUM_CLASSES));
    for (int k = 0; ids && k < SD_NUM_CLASSES_SYNTHIA; k++)
        CHECK(ids[k] == sd_protocols[SD_PROTOCOL_16].classes[k] && lut[ids[k]] == k);
    CHECK(lut[9] == 255 && lut[14] == 255 && lut[16] == 255 && lut[255] == 255);
    CHECK(!sd_class_set_index_lut(17, lut));
    double iou[SD_NUM_CLASSES];
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        iou[c] = c / 100.0;
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_19), 171.0 / 19 / 100, 1e-12);
    /* 16 drops terrain 9, truck 14, train 16: 171 - 39 = 132 */
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_16), 132.0 / 16 / 100, 1e-12);
    /* 13 also drops wall 3, fence 4, pole 5: 132 - 12 = 120 */
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_13), 120.0 / 13 / 100, 1e-12);
    iou[0] = NAN; /* absent classes leave the mean */
    iou[14] = NAN;
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_19), 157.0 / 17 / 100, 1e-12);
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_16), 132.0 / 15 / 100, 1e-12);
    CHECK_NEAR(sd_eval_mean_iou(iou, SD_PROTOCOL_13), 120.0 / 12 / 100, 1e-12);

    /* through a matrix: one correct pixel of every class but terrain
     * (predicted as vegetation) -> 19: 18 ones and a zero; 16 and 13: all ones */
    uint8_t gt[SD_NUM_CLASSES], pred[SD_NUM_CLASSES];
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        gt[c] = pred[c] = (uint8_t)c;
    pred[9] = 8;
    sd_confusion cm;
    sd_confusion_init(&cm);
    CHECK_OK(sd_confusion_add(&cm, gt, pred, SD_NUM_CLASSES, 1, SD_PRED_TRAIN_IDS, "p.png"));
    sd_eval_result r;
    sd_eval_compute(&cm, &r);
    CHECK_NEAR(r.class_iou[8], 0.5, 1e-12);
    CHECK_NEAR(r.miou[SD_PROTOCOL_19], (17 + 0.5) / 19, 1e-12);
    CHECK_NEAR(r.miou[SD_PROTOCOL_16], (15 + 0.5) / 16, 1e-12);
    CHECK_NEAR(r.miou[SD_PROTOCOL_13], (12 + 0.5) / 13, 1e-12);
    CHECK_NEAR(r.category_iou[3], 1.0, 1e-12); /* nature: vegetation/terrain confusion is inside it */
}

static void test_value_errors(void)
{
    sd_confusion cm;
    sd_confusion_init(&cm);
    uint8_t gt[4] = {0, 1, 2, 3}, bad_t[4] = {0, 1, 19, 3}, bad_l[4] = {7, 8, 34, 12};
    CHECK(sd_confusion_add(&cm, gt, bad_t, 2, 2, SD_PRED_TRAIN_IDS, "x/pred_t.png") == SD_ERR_DATA);
    CHECK_ERR_HAS("x/pred_t.png");
    CHECK_ERR_HAS("value 19 at pixel (x 0, y 1)");
    CHECK_ERR_HAS("trainId");
    CHECK(sd_confusion_add(&cm, gt, bad_l, 2, 2, SD_PRED_LABEL_IDS, "pred_l.png") == SD_ERR_DATA);
    CHECK_ERR_HAS("pred_l.png: value 34");
    CHECK_ERR_HAS("label id");
    uint8_t bad_gt[4] = {0, 40, 2, 3}, p[4] = {0, 1, 2, 3};
    CHECK(sd_confusion_add(&cm, bad_gt, p, 2, 2, SD_PRED_TRAIN_IDS, "q.png") == SD_ERR_DATA);
    CHECK_ERR_HAS("ground truth of q.png: value 40");
    sd_confusion zero;
    sd_confusion_init(&zero);
    CHECK(!memcmp(&cm, &zero, sizeof cm)); /* failed adds leave the matrix as it was */
}

/* Two classes on a 1x2 grid, upsampled to 1x5: class 0 = [0, 1], class 1 =
 * 0.8 everywhere. align_corners=True samples x at 0, .25, .5, .75, 1 ->
 * class 0 only wins at x = 4; align_corners=False samples at 0 (clamped),
 * .1, .5, .9, 1 (clamped) -> class 0 wins at x = 3 and 4. */
static void test_upsample_argmax_hand(void)
{
    float lg[4] = {0, 1, 0.8f, 0.8f};
    uint8_t out[6];
    CHECK_OK(sd_upsample_argmax(lg, 2, 1, 2, 1, 5, true, out));
    const uint8_t want_t[5] = {1, 1, 1, 1, 0}, want_f[5] = {1, 1, 1, 0, 0};
    CHECK(!memcmp(out, want_t, 5));
    CHECK_OK(sd_upsample_argmax(lg, 2, 1, 2, 1, 5, false, out));
    CHECK(!memcmp(out, want_f, 5));
    /* ties go to the lowest class */
    float tie[2] = {1, 1};
    CHECK_OK(sd_upsample_argmax(tie, 2, 1, 1, 2, 3, false, out));
    CHECK(out[0] == 0 && out[5] == 0);
    /* non-finite logits and bad shapes are errors */
    float nanv[2] = {0, NAN};
    CHECK(sd_upsample_argmax(nanv, 2, 1, 1, 1, 1, false, out) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("class 1");
    CHECK(sd_upsample_argmax(lg, 0, 1, 2, 1, 5, false, out) == SD_ERR_ARG);
}

/* Same-size logits: the argmax itself, then accumulation through
 * sd_confusion_add_logits gives the same matrix as the label map. */
static void test_logits_same_size(void)
{
    enum { C = SD_NUM_CLASSES, H = 5, W = 7 };
    float *lg = malloc(sizeof(float) * C * H * W);
    uint8_t gt[H * W], want[H * W];
    sd_rng rng;
    sd_rng_seed(&rng, 3);
    for (int i = 0; i < C * H * W; i++)
        lg[i] = sd_rng_normal(&rng);
    for (int i = 0; i < H * W; i++) {
        int b = 0;
        for (int k = 1; k < C; k++)
            if (lg[k * H * W + i] > lg[b * H * W + i])
                b = k;
        want[i] = (uint8_t)b;
        gt[i] = (uint8_t)(i % 5 == 0 ? 255 : sd_rng_int(&rng, C));
    }
    sd_confusion a, b;
    sd_confusion_init(&a);
    sd_confusion_init(&b);
    for (int ac = 0; ac < 2; ac++) {
        CHECK_OK(sd_confusion_add_logits(&a, lg, C, H, W, gt, W, H, ac, "img"));
        CHECK_OK(sd_confusion_add(&b, gt, want, W, H, SD_PRED_TRAIN_IDS, "img"));
    }
    CHECK(!memcmp(&a, &b, sizeof a));
    /* 19 (trainIds) and 16 (SYNTHIA's class set) are the counts a model may have */
    CHECK(sd_confusion_add_logits(&a, lg, 17, H, W, gt, W, H, true, "m.st") == SD_ERR_SHAPE);
    CHECK_ERR_HAS("m.st: logits have 17 classes, expected 19 (trainIds) or 16 (SYNTHIA's)");
    free(lg);
}


static char tmpdir[256];

static void test_writers(void)
{
    sd_confusion cm;
    sd_confusion_init(&cm);
    CHECK_OK(sd_confusion_add(&cm, small_gt, small_pred, 4, 2, SD_PRED_TRAIN_IDS, "a.png"));
    sd_eval_row rows[2];
    memset(rows, 0, sizeof rows);
    rows[0].name = "model \"A\"";
    rows[1].name = "B,2";
    sd_eval_compute(&cm, &rows[0].r);
    sd_eval_compute(&cm, &rows[1].r);
    rows[1].r.class_iou[0] = 1.0;
    sd_eval_setup s = {SD_PROTOCOL_19, "cityscapes:/d", "val", "predictions (trainIds)", 4, 2, -1, 1, 0};
    char path[512];
    snprintf(path, sizeof path, "%s/r.json", tmpdir);
    CHECK_OK(sd_eval_json_write(path, &s, rows, 2));
    char *j = test_slurp(path, NULL);
    CHECK(j != NULL);
    if (j) {
        CHECK(strstr(j, "\"images\": 1,") != NULL);
        CHECK(strstr(j, "\"name\": \"model \\\"A\\\"\"") != NULL);
        CHECK(strstr(j, "\"road\": 0.333333333333333") != NULL);
        CHECK(strstr(j, "\"road\": 1,") != NULL);
        CHECK(strstr(j, "\"bicycle\": null}") != NULL);
        CHECK(strstr(j, "\"miou_19\": 0.5,") != NULL);
        CHECK(strstr(j, "\"flat\": 0.8,") != NULL);
        CHECK(strstr(j, "\"align_corners\": null") != NULL);
        CHECK(strstr(j, "\"resolution\": [4, 2]") != NULL);
        free(j);
    }
    snprintf(path, sizeof path, "%s/r.csv", tmpdir);
    CHECK_OK(sd_eval_csv_write(path, rows, 2));
    char *c = test_slurp(path, NULL);
    CHECK(c && !strncmp(c, "name,road,sidewalk,building,", 28));
    CHECK(c && strstr(c, "\n\"B,2\",1,0.6666666667,0.5,,") != NULL);
    free(c);
    /* the table: a header with short names and mIoU-19 last; absent as '-' */
    snprintf(path, sizeof path, "%s/t.txt", tmpdir);
    FILE *f = fopen(path, "w");
    sd_eval_setup_write(f, &s);
    sd_eval_table_write(f, SD_PROTOCOL_16, rows, 2);
    fclose(f);
    char *t = test_slurp(path, NULL);
    CHECK(t && strstr(t, "mIoU-19 (19 classes") != NULL);
    CHECK(t && strstr(t, "images:     1") != NULL);
    CHECK(t && strstr(t, " mbike  bike mIoU-16 mIoU-13\n") != NULL);
    CHECK(t && strstr(t, "  33.3  66.7   50.0") != NULL);
    CHECK(t && strstr(t, "terr.") == NULL); /* terrain is not a 16-class column */
    free(t);
    CHECK(sd_eval_json_write("/nonexistent-dir/r.json", &s, rows, 2) == SD_ERR_IO);
    CHECK_ERR_HAS("/nonexistent-dir/r.json");
}

/* ---- prediction matching on fixture trees ---- */
static void touch(const char *rel)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + strlen(tmpdir) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

static void test_match(void)
{
    const char *keys[3] = {"aachen_000000_000019", "aachen_000001_000019", "ulm_000010_000019"};
    touch("pm/a/aachen_000000_000019_leftImg8bit.png");
    touch("pm/b/c/x_aachen_000001_000019.png");
    touch("pm/aachen_000001_0000190.png"); /* a longer frame number: not this stem */
    touch("pm/notes.txt");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pm", tmpdir);
    sd_pred_match m;
    CHECK_OK(sd_pred_match_dir(&m, dir, keys, 3, SD_MATCH_STEM, SD_PRED_TRAIN_IDS));
    CHECK(m.n_files == 3 && m.n_unmatched == 1);
    CHECK(m.paths[0] && strstr(m.paths[0], "/pm/a/aachen_000000_000019_leftImg8bit.png"));
    CHECK(m.paths[1] && strstr(m.paths[1], "/pm/b/c/x_aachen_000001_000019.png"));
    CHECK(m.paths[2] == NULL);
    sd_pred_match_free(&m);

    touch("pm/z/aachen_000000_000019_pred.png");
    CHECK(sd_pred_match_dir(&m, dir, keys, 3, SD_MATCH_STEM, SD_PRED_TRAIN_IDS) == SD_ERR_DATA);
    CHECK_ERR_HAS("two predictions for aachen_000000_000019");
    CHECK_ERR_HAS("aachen_000000_000019_leftImg8bit.png and");
    CHECK_ERR_HAS("z/aachen_000000_000019_pred.png");

    const char *bk[2] = {"00001", "00002"};
    touch("pb/00001.png");
    touch("pb/x/100001.png");
    snprintf(dir, sizeof dir, "%s/pb", tmpdir);
    CHECK_OK(sd_pred_match_dir(&m, dir, bk, 2, SD_MATCH_BASENAME, SD_PRED_TRAIN_IDS));
    CHECK(m.paths[0] && strstr(m.paths[0], "pb/00001.png") && m.paths[1] == NULL);
    CHECK(m.n_unmatched == 1);
    sd_pred_match_free(&m);
    snprintf(dir, sizeof dir, "%s/nope", tmpdir);
    CHECK(sd_pred_match_dir(&m, dir, bk, 2, SD_MATCH_BASENAME, SD_PRED_TRAIN_IDS) == SD_ERR_IO);
    CHECK_ERR_HAS("nope");

    /* segda predict's folder: companions of the other kind are passed over,
     * and in base-name mode the kind's suffix is not part of the name */
    touch("pp/00001_trainIds.png");
    touch("pp/00001_labelIds.png");
    touch("pp/00001_color.png");
    touch("pp/00001_overlay.png");
    touch("pp/c/aachen_000000_000019_trainIds.png");
    touch("pp/c/aachen_000000_000019_labelIds.png");
    snprintf(dir, sizeof dir, "%s/pp", tmpdir);
    CHECK_OK(sd_pred_match_dir(&m, dir, bk, 2, SD_MATCH_BASENAME, SD_PRED_TRAIN_IDS));
    CHECK(m.paths[0] && strstr(m.paths[0], "pp/00001_trainIds.png") && m.paths[1] == NULL);
    sd_pred_match_free(&m);
    CHECK_OK(sd_pred_match_dir(&m, dir, bk, 2, SD_MATCH_BASENAME, SD_PRED_LABEL_IDS));
    CHECK(m.paths[0] && strstr(m.paths[0], "pp/00001_labelIds.png"));
    sd_pred_match_free(&m);
    CHECK_OK(sd_pred_match_dir(&m, dir, keys, 3, SD_MATCH_STEM, SD_PRED_LABEL_IDS));
    CHECK(m.paths[0] && strstr(m.paths[0], "aachen_000000_000019_labelIds.png"));
    sd_pred_match_free(&m);
}

/* ---- scoring prediction folders: a Cityscapes fixture written with sd_png_write ---- */
static void write_gray(const char *rel, int w, int h, const uint8_t *v)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    touch(rel); /* makes the directories */
    sd_image img;
    CHECK_OK(sd_image_alloc(&img, w, h, 1, 8));
    memcpy(img.data, v, (size_t)w * h);
    CHECK_OK(sd_png_write(path, &img));
    sd_image_free(&img);
}

static void write_rgb(const char *rel, int w, int h)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    touch(rel);
    sd_image img;
    CHECK_OK(sd_image_alloc(&img, w, h, 3, 8));
    memset(img.data, 90, (size_t)w * h * 3);
    CHECK_OK(sd_png_write(path, &img));
    sd_image_free(&img);
}

/* Two 4x2 val images. Ground truth label ids:
 *   a: road road sidewalk sidewalk / unlabeled(0) car car building
 *   b: sky sky sky sky / sky parking(9) car car
 * predictions (label ids / trainIds):
 *   a: road sidewalk sidewalk sidewalk / car car road building
 *   b: sky sky sky building / sky road car person
 * By hand (trainIds; unlabeled and parking are ignored ground truth):
 *   road: TP1 FN1 FP1 (car->road) -> 1/3; sidewalk TP2 FP1 -> 2/3;
 *   building TP1 FP1 (sky->building) -> 1/2; sky TP4 FN1 -> 4/5;
 *   car TP2 FN2 (->road, ->person) -> 1/2; person FP1 -> 0; others absent.
 *   flat TP4 FP1 -> 4/5; construction 1/2; sky 4/5; vehicle 2/4 (FN person, road);
 *   human 0 (FP 1); object, nature absent. */
static const uint8_t fx_gt_a[8] = {7, 7, 8, 8, 0, 26, 26, 11};
static const uint8_t fx_gt_b[8] = {23, 23, 23, 23, 23, 9, 26, 26};
static const uint8_t fx_pl_a[8] = {7, 8, 8, 8, 26, 26, 7, 11};
static const uint8_t fx_pl_b[8] = {23, 23, 23, 11, 23, 7, 26, 24};

static void make_cityscapes_fixture(void)
{
    write_rgb("cs/leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png", 4, 2);
    write_rgb("cs/leftImg8bit/val/bonn/bonn_000001_000019_leftImg8bit.png", 4, 2);
    write_gray("cs/gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png", 4, 2, fx_gt_a);
    write_gray("cs/gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png", 4, 2, fx_gt_b);
    uint8_t lut[256], ta[8], tb[8];
    sd_labels_id_to_train_lut(lut);
    for (int i = 0; i < 8; i++)
        ta[i] = lut[fx_pl_a[i]], tb[i] = lut[fx_pl_b[i]];
    write_gray("pl/x/aachen_000000_000019_pred.png", 4, 2, fx_pl_a);
    write_gray("pl/bonn_000001_000019.png", 4, 2, fx_pl_b);
    write_gray("pt/aachen_000000_000019_leftImg8bit.png", 4, 2, ta);
    write_gray("pt/y/z/bonn_000001_000019_leftImg8bit.png", 4, 2, tb);
}

static sd_status score(const char *rel, sd_pred_kind kind, bool skip, sd_confusion *cm, sd_eval_setup *s)
{
    char root[512], dir[512];
    snprintf(root, sizeof root, "cityscapes:%s/cs", tmpdir);
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, rel);
    sd_dataset ds;
    sd_status st = sd_dataset_open(&ds, root, "val", NULL);
    if (st)
        return st;
    const char *dirs[1] = {dir};
    sd_eval_pred_opts o = {dirs, 1, kind, skip, 2, SD_PROGRESS_OFF};
    memset(s, 0, sizeof *s);
    st = sd_eval_pred_dirs(&ds, &o, cm, s);
    sd_dataset_free(&ds);
    return st;
}

static void test_pred_dirs(void)
{
    make_cityscapes_fixture();
    sd_confusion cl, ct;
    sd_eval_setup s;
    CHECK_OK(score("pl", SD_PRED_LABEL_IDS, false, &cl, &s));
    CHECK(s.images == 2 && s.skipped == 0 && s.gt_w == 4 && s.gt_h == 2);
    CHECK_OK(score("pt", SD_PRED_TRAIN_IDS, false, &ct, &s));
    CHECK(!memcmp(cl.counts, ct.counts, sizeof cl.counts) && cl.ignored == 2 && ct.ignored == 2);
    sd_eval_result r;
    sd_eval_compute(&cl, &r);
    const double want[SD_NUM_CLASSES] = {1.0 / 3, 2.0 / 3, 0.5, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                                         0.8, 0.0, NAN, 0.5, NAN, NAN, NAN, NAN, NAN};
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        if (isnan(want[c]))
            CHECK_MSG(isnan(r.class_iou[c]), "class %d: %g, expected absent", c, r.class_iou[c]);
        else
            CHECK_NEAR(r.class_iou[c], want[c], 1e-12);
    }
    const double wcat[SD_NUM_CATEGORIES] = {0.8, 0.5, NAN, NAN, 0.8, 0.0, 0.5};
    for (int k = 0; k < SD_NUM_CATEGORIES; k++) {
        if (isnan(wcat[k]))
            CHECK(isnan(r.category_iou[k]));
        else
            CHECK_NEAR(r.category_iou[k], wcat[k], 1e-12);
    }
    CHECK_NEAR(r.miou[SD_PROTOCOL_19], (1.0 / 3 + 2.0 / 3 + 0.5 + 0.8 + 0 + 0.5) / 6, 1e-12);
    CHECK_NEAR(r.pixel_accuracy, 10.0 / 14, 1e-12);
}

static void test_pred_dir_errors(void)
{
    sd_confusion cm;
    sd_eval_setup s;
    /* missing prediction, then --skip-missing */
    uint8_t ok[8] = {0, 0, 1, 1, 2, 2, 10, 10};
    write_gray("miss/aachen_000000_000019.png", 4, 2, ok);
    CHECK(score("miss", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("no prediction for bonn_000001_000019");
    CHECK_ERR_HAS("bonn_000001_000019_gtFine_labelIds.png");
    CHECK_ERR_HAS("1 of 2 samples");
    CHECK_OK(score("miss", SD_PRED_TRAIN_IDS, true, &cm, &s));
    CHECK(s.images == 1 && s.skipped == 1 && cm.images == 1);
    /* duplicate stem */
    write_gray("dup/bonn_000001_000019.png", 4, 2, ok);
    write_gray("dup/aachen_000000_000019.png", 4, 2, ok);
    write_gray("dup/sub/aachen_000000_000019_v2.png", 4, 2, ok);
    CHECK(score("dup", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("two predictions for aachen_000000_000019");
    CHECK_ERR_HAS("dup/sub/aachen_000000_000019_v2.png");
    /* size mismatch */
    uint8_t big[12] = {0};
    write_gray("size/aachen_000000_000019.png", 4, 2, ok);
    write_gray("size/bonn_000001_000019.png", 4, 3, big);
    CHECK(score("size", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("size/bonn_000001_000019.png: prediction is 4x3");
    CHECK_ERR_HAS("is 4x2");
    /* a value outside the label space: 19 as a trainId, 34 as a label id */
    uint8_t bad[8] = {0, 0, 1, 1, 2, 19, 10, 10};
    write_gray("val/aachen_000000_000019.png", 4, 2, ok);
    write_gray("val/bonn_000001_000019.png", 4, 2, bad);
    CHECK(score("val", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("val/bonn_000001_000019.png: value 19 at pixel (x 1, y 1)");
    bad[5] = 34;
    write_gray("lval/aachen_000000_000019.png", 4, 2, fx_pl_a);
    write_gray("lval/bonn_000001_000019.png", 4, 2, bad);
    CHECK(score("lval", SD_PRED_LABEL_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("lval/bonn_000001_000019.png: value 34");
    /* a colour (3-channel) prediction */
    write_gray("rgb/aachen_000000_000019.png", 4, 2, ok);
    write_rgb("rgb/bonn_000001_000019.png", 4, 2);
    CHECK(score("rgb", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("rgb/bonn_000001_000019.png: prediction has 3 channels");
    /* no such folder */
    CHECK(score("none", SD_PRED_TRAIN_IDS, false, &cm, &s) == SD_ERR_IO);
    CHECK_ERR_HAS("none");
}

/* Logits through sd_eval_logits: one-hot logits of the label at half
 * resolution (nearest) upsampled back are a perfect prediction on a
 * fixture whose classes come in 2x2 blocks; constant logits favouring car
 * give car everywhere. */
static sd_status oracle_logits(void *ctx, const sd_sample *s, float **lg, int *c, int *h, int *w)
{
    int mode = *(int *)ctx;
    *c = SD_NUM_CLASSES, *h = s->lh / 2, *w = s->lw / 2;
    size_t plane = (size_t)*h * *w;
    *lg = calloc(SD_NUM_CLASSES * plane, sizeof(float));
    for (int y = 0; y < *h; y++)
        for (int x = 0; x < *w; x++) {
            int t = s->label[(size_t)(2 * y) * s->lw + 2 * x];
            int k = mode == 0 ? t : 13;
            if (k != 255) /* ignored cells get no vote */
                (*lg)[k * plane + (size_t)y * *w + x] = 5.0f;
        }
    return mode == 2 ? sd_fail(SD_ERR_NUMERIC, "model diverged") : SD_OK;
}

static void test_eval_logits(void)
{
    /* 4x4 label ids in 2x2 blocks: road, car / sky, unlabeled */
    uint8_t ids[16] = {7, 7, 26, 26, 7, 7, 26, 26, 23, 23, 0, 0, 23, 23, 0, 0};
    write_rgb("lc/leftImg8bit/val/jena/jena_000000_000019_leftImg8bit.png", 4, 4);
    write_gray("lc/gtFine/val/jena/jena_000000_000019_gtFine_labelIds.png", 4, 4, ids);
    char spec[512];
    snprintf(spec, sizeof spec, "cityscapes:%s/lc", tmpdir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, "val", NULL));
    sd_confusion cm;
    sd_eval_setup s;
    memset(&s, 0, sizeof s);
    int mode = 0;
    for (int ac = 0; ac < 2; ac++) {
        CHECK_OK(sd_eval_logits(&ds, oracle_logits, &mode, ac, SD_PROGRESS_OFF, &cm, &s));
        sd_eval_result r;
        sd_eval_compute(&cm, &r);
        CHECK(s.images == 1 && s.gt_w == 4 && s.align_corners == ac && cm.ignored == 4);
        CHECK_NEAR(r.class_iou[0], 1.0, 1e-12);
        CHECK_NEAR(r.class_iou[13], 1.0, 1e-12);
        CHECK_NEAR(r.class_iou[10], 1.0, 1e-12);
        CHECK_NEAR(r.miou[SD_PROTOCOL_19], 1.0, 1e-12);
    }
    mode = 1;
    CHECK_OK(sd_eval_logits(&ds, oracle_logits, &mode, true, SD_PROGRESS_OFF, &cm, &s));
    CHECK(cm.counts[0][13] == 4 && cm.counts[13][13] == 4 && cm.counts[10][13] == 4);
    mode = 2;
    CHECK(sd_eval_logits(&ds, oracle_logits, &mode, true, SD_PROGRESS_OFF, &cm, &s) == SD_ERR_NUMERIC);
    CHECK_ERR_HAS("jena_000000_000019_leftImg8bit.png: model diverged");
    sd_dataset_free(&ds);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda_test_eval_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    RUN(test_hand_matrix);
    RUN(test_accumulate_and_all_ignored);
    RUN(test_predicted_ignored_ids);
    RUN(test_labelids_equal_trainids);
    RUN(test_protocols);
    RUN(test_value_errors);
    RUN(test_upsample_argmax_hand);
    RUN(test_logits_same_size);
    RUN(test_writers);
    RUN(test_match);
    RUN(test_pred_dirs);
    RUN(test_pred_dir_errors);
    RUN(test_eval_logits);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    TESTS_DONE();
}
