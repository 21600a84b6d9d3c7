/* Tests for src/eval/instance_eval.c and instance_run.c: iIoU and AP/AP50
 * against values computed by hand from cityscapesScripts' definitions
 * (evalPixelLevelSemanticLabeling's weighting, evalInstanceLevelSemantic-
 * Labeling's matching, ignore rules and precision-recall integration) on
 * small hand-made images, and `segda eval` on a fixture tree in Cityscapes'
 * layout. tests/py/test_eval_inst_official.py checks the same fixture
 * against cityscapesScripts itself where it is installed. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util.h"
#include "segda/eval_inst.h"
#include "segda/image.h"

enum { W = 30, H = 20 };

static void fill(uint16_t *a, int x0, int y0, int x1, int y1, uint16_t v)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            a[y * W + x] = v;
}

static void fill8(uint8_t *a, int x0, int y0, int x1, int y1, uint8_t v)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            a[y * W + x] = v;
}

/* Image 1: cars A (x 0-9, y 0-9, 100 px), B (x 0-9, y 10-19, 100 px), a
 * small car C (x 15-19, y 0-4, 25 px: under 100, not evaluated), a truck
 * (x 20-29, y 0-11, 120 px), road elsewhere. */
static void image1(uint16_t *g)
{
    fill(g, 0, 0, W, H, 7);
    fill(g, 0, 0, 10, 10, 26000);
    fill(g, 0, 10, 10, 20, 26001);
    fill(g, 15, 0, 20, 5, 26002);
    fill(g, 20, 0, 30, 12, 27000);
}

/* Image 2: car D (x 0-19, y 0-9, 200 px), a car crowd region (plain id 26,
 * x 0-19, y 10-14, 100 px), void (id 0, x 0-9, y 15-19), road elsewhere. */
static void image2(uint16_t *g)
{
    fill(g, 0, 0, W, H, 7);
    fill(g, 0, 0, 20, 10, 26000);
    fill(g, 0, 10, 20, 15, 26);
    fill(g, 0, 15, 10, 20, 0);
}

typedef struct preds { uint8_t m[8][W * H]; sd_inst_pred p[8]; int n; } preds;

static uint8_t *add(preds *P, int train_id, float score)
{
    memset(P->m[P->n], 0, W * H);
    P->p[P->n] = (sd_inst_pred){train_id, score, P->m[P->n]};
    return P->m[P->n++];
}

static void preds1(preds *P)
{
    P->n = 0;
    fill8(add(P, 13, 0.9f), 0, 0, 10, 10, 1);    /* p1 = A: IoU 1 */
    fill8(add(P, 13, 0.8f), 0, 10, 10, 16, 1);   /* p2: top 60 px of B: IoU 0.6 */
    fill8(add(P, 13, 0.7f), 15, 0, 20, 5, 1);    /* p3 = C (too small): matched, so never a false positive */
    fill8(add(P, 13, 0.6f), 12, 12, 20, 20, 1);  /* p4 on road: a false positive at every overlap */
    fill8(add(P, 11, 0.5f), 25, 15, 30, 20, 1);  /* a person where no person is: the class stays absent */
    add(P, 13, 0.99f);                           /* an empty mask: passed over */
}

static void preds2(preds *P)
{
    P->n = 0;
    fill8(add(P, 13, 0.95f), 0, 0, 20, 10, 1);   /* q3 = D */
    uint8_t *q1 = add(P, 13, 0.97f);             /* crowd (100) + 10 road px: IoU 100/110 with the crowd */
    fill8(q1, 0, 10, 20, 15, 1);
    fill8(q1, 10, 15, 20, 16, 1);
    uint8_t *q2 = add(P, 13, 0.96f);             /* void (50) + 10 road px: 50/60 ignored */
    fill8(q2, 0, 15, 10, 20, 1);
    fill8(q2, 10, 15, 12, 20, 1);
}

static void test_ap_by_hand(void)
{
    static uint16_t g1[W * H], g2[W * H];
    image1(g1);
    image2(g2);
    static preds P;
    sd_ap ap;
    sd_ap_init(&ap);
    preds1(&P);
    CHECK_OK(sd_ap_add(&ap, g1, W, H, P.p, P.n, "image1"));
    /* image 1 alone. car, overlaps 0.5 and 0.55: TP .9 (A), TP .8 (B), FP .6;
     * sorted .6F .8T .9T: (p, r) = (2/3, 1), (1, 1), (1, 1/2), then (1, 0):
     * AP = 1/2 (1 - 1/2) + 1/2 (1 - 0) + 1/2 (1/2 - 0) = 1. From 0.6 on B
     * is missed (IoU 0.6 is not > 0.6): TP .9, FP .8, FP .6, one hard FN:
     * (1/3, 1/2), (1/2, 1/2), (1, 1/2), (1, 0): AP = 1/2 (1/2) + 1/2 (1/2) = 1/2. */
    sd_ap_result r;
    sd_ap_compute(&ap, &r);
    CHECK_NEAR(r.ap[2][0], 1.0, 1e-12);
    CHECK_NEAR(r.ap[2][1], 1.0, 1e-12);
    for (int o = 2; o < SD_AP_OVERLAPS; o++)
        CHECK_NEAR(r.ap[2][o], 0.5, 1e-12);
    CHECK_NEAR(r.class_ap[2], 0.6, 1e-12);
    CHECK_NEAR(r.class_ap50[2], 1.0, 1e-12);
    CHECK(r.class_ap[3] == 0 && r.class_ap50[3] == 0); /* truck: ground truth, no prediction */
    CHECK(isnan(r.class_ap[0]));                        /* person: predictions only */
    CHECK(isnan(r.class_ap[1]));                        /* rider: nothing */
    CHECK_NEAR(r.ap_mean, 0.3, 1e-12);
    CHECK_NEAR(r.ap50_mean, 0.5, 1e-12);
    CHECK(ap.gt_instances[2] == 2 && ap.predictions[2] == 4 && ap.gt_instances[3] == 1);

    /* with image 2: q3 a TP at .95; q1 (.97) covers the crowd at IoU 0.909:
     * ignored up to 0.9, at 0.95 a FP (100/110 ignored pixels <= 0.95); q2
     * (.96) is 50/60 = 0.833 void: ignored up to 0.8, a FP from 0.85.
     * 0.5, 0.55: .6F .8T .9T .95T -> 1. 0.6..0.8: .6F .8F .9T .95T + 1 FN -> 2/3.
     * 0.85, 0.9: + .96F on top -> (.4,2/3) (.5,2/3) (2/3,2/3) (1/2,1/3) (0,0) (1,0):
     *   2/3 * 1/2 (2/3 - 1/3) + 1/2 * 1/2 (2/3 - 0) = 1/9 + 1/6 = 5/18.
     * 0.95: + .97F -> (1/3,2/3) (.4,2/3) (1/2,2/3) (1/3,1/3) (0,0) (0,0) (1,0):
     *   1/2 * 1/2 (2/3 - 1/3) + 1/3 * 1/2 (2/3 - 0) = 1/12 + 1/9 = 7/36.
     * AP = (2 + 5 * 2/3 + 2 * 5/18 + 7/36) / 10 = 219/360. */
    preds2(&P);
    CHECK_OK(sd_ap_add(&ap, g2, W, H, P.p, P.n, "image2"));
    sd_ap_compute(&ap, &r);
    const double want[SD_AP_OVERLAPS] = {1, 1, 2. / 3, 2. / 3, 2. / 3, 2. / 3, 2. / 3, 5. / 18, 5. / 18, 7. / 36};
    for (int o = 0; o < SD_AP_OVERLAPS; o++)
        CHECK_NEAR(r.ap[2][o], want[o], 1e-12);
    CHECK_NEAR(r.class_ap[2], 219.0 / 360.0, 1e-12);
    CHECK_NEAR(r.ap_mean, 219.0 / 720.0, 1e-12);
    CHECK_NEAR(r.ap50_mean, 0.5, 1e-12);
    sd_ap_free(&ap);

    /* an id that decodes to no label */
    g1[5] = 40000;
    sd_ap_init(&ap);
    CHECK(sd_ap_add(&ap, g1, W, H, P.p, 0, "bad.png") == SD_ERR_DATA);
    CHECK_ERR_HAS("bad.png");
    CHECK_ERR_HAS("40000");
    sd_ap_free(&ap);
    CHECK_NEAR(sd_ap_overlap(9), 0.95, 1e-15);
}

static void test_iiou_by_hand(void)
{
    static uint16_t g[W * H];
    image1(g);
    sd_instances in;
    CHECK_OK(sd_instances_from_ids(g, W, H, "image1", &in));
    static uint8_t gt[W * H], pred[W * H];
    for (int p = 0; p < W * H; p++)
        gt[p] = g[p] == 7 ? 0 : g[p] / 1000 == 26 ? 13 : 14;
    memcpy(pred, gt, sizeof pred);
    fill8(pred, 0, 15, 10, 20, 0);   /* half of B predicted road: 50 FN */
    fill8(pred, 15, 0, 20, 5, 0);    /* C missed: 25 FN */
    fill8(pred, 12, 14, 18, 19, 13); /* 30 road pixels predicted car: FP */
    fill8(pred, 20, 6, 30, 12, 13);  /* 60 truck pixels predicted car: truck FN, car FP */
    sd_confusion cm;
    sd_confusion_init(&cm);
    CHECK_OK(sd_confusion_add(&cm, gt, pred, W, H, SD_PRED_TRAIN_IDS, "pred"));
    sd_iiou s;
    sd_iiou_init(&s, 2048, 1024); /* the official sizes unscaled */
    CHECK_OK(sd_iiou_add(&s, &in, pred, "pred"));
    double v[SD_NUM_THING_CLASSES], mean;
    sd_iiou_compute(&s, &cm, v, &mean);
    /* car: weights a/100, a/100, a/25; TP 100 + 50 + 0, FN 0 + 50 + 25:
     * tp_w = 1.5 a, fn_w = 1.5 a, FP = 30 + 60 -> 1.5 a / (3 a + 90) */
    double a = 12794.0202738185, car = 1.5 * a / (3 * a + 90);
    CHECK_NEAR(v[2], car, 1e-12);
    CHECK_NEAR(v[3], 0.5, 1e-12); /* truck: one instance, half right, no FP */
    CHECK(isnan(v[0]) && isnan(v[7]));
    CHECK_NEAR(mean, (car + 0.5) / 2, 1e-12);
    CHECK(s.tp[2] == 150 && s.fn[2] == 75 && s.instances[2] == 3);
    /* scaled sizes: the weights scale together, FP does not */
    sd_iiou_init(&s, 1024, 512);
    CHECK_NEAR(s.avg_size[2], a / 4, 1e-9);
    CHECK_OK(sd_iiou_add(&s, &in, pred, "pred"));
    sd_iiou_compute(&s, &cm, v, &mean);
    CHECK_NEAR(v[2], 1.5 * a / 4 / (3 * a / 4 + 90), 1e-12);
    sd_instances_free(&in);
}

/* The fixture tree: Cityscapes layout, the two images above as val frames,
 * semantic predictions and instance predictions in the official format. */
static void put(const char *path, const void *data, int c, int depth)
{
    sd_image im;
    CHECK_OK(sd_image_alloc(&im, W, H, c, depth));
    memcpy(im.data, data, (size_t)W * H * c * (depth / 8));
    CHECK_OK(sd_png_write(path, &im));
    sd_image_free(&im);
}

static void write_tree(const char *root)
{
    test_sh("mkdir -p '%s/cs/leftImg8bit/val/aa' '%s/cs/gtFine/val/aa' '%s/sem' '%s/inst'", root, root, root, root);
    static uint16_t g[2][W * H];
    image1(g[0]);
    image2(g[1]);
    static uint8_t rgb[W * H * 3], lab[W * H], pred[W * H];
    static preds P;
    for (int k = 0; k < 2; k++) {
        char p[600], stem[64];
        snprintf(stem, sizeof stem, "aa_000000_%06d", k + 1);
        snprintf(p, sizeof p, "%s/cs/leftImg8bit/val/aa/%s_leftImg8bit.png", root, stem);
        put(p, rgb, 3, 8);
        for (int i = 0; i < W * H; i++)
            lab[i] = (uint8_t)(g[k][i] >= 1000 ? g[k][i] / 1000 : g[k][i]);
        snprintf(p, sizeof p, "%s/cs/gtFine/val/aa/%s_gtFine_labelIds.png", root, stem);
        put(p, lab, 1, 8);
        snprintf(p, sizeof p, "%s/cs/gtFine/val/aa/%s_gtFine_instanceIds.png", root, stem);
        put(p, g[k], 1, 16);
        /* semantic prediction: the label, with image 1's mistakes of test_iiou_by_hand */
        for (int i = 0; i < W * H; i++)
            pred[i] = lab[i] == 26 ? 13 : lab[i] == 27 ? 14 : lab[i] == 7 ? 0 : 255;
        if (k == 0) {
            fill8(pred, 0, 15, 10, 20, 0);
            fill8(pred, 15, 0, 20, 5, 0);
            fill8(pred, 12, 14, 18, 19, 13);
            fill8(pred, 20, 6, 30, 12, 13);
        }
        snprintf(p, sizeof p, "%s/sem/%s_trainIds.png", root, stem);
        put(p, pred, 1, 8);
        if (k == 0)
            preds1(&P);
        else
            preds2(&P);
        snprintf(p, sizeof p, "%s/inst/%s.txt", root, stem);
        FILE *f = fopen(p, "w");
        for (int i = 0; f && i < P.n; i++) {
            snprintf(p, sizeof p, "%s/inst/%s_%d.png", root, stem, i);
            put(p, P.m[i], 1, 8);
            fprintf(f, "%s_%d.png %d %.2f\n", stem, i, P.p[i].train_id == 11 ? 24 : 26, P.p[i].score);
        }
        if (f)
            fclose(f);
    }
}

static void test_cli(void)
{
    char root[] = "/tmp/segda_evalinst_XXXXXX";
    if (!mkdtemp(root))
        return;
    write_tree(root);
    const char *bin = getenv("SEGDA_BIN") ? getenv("SEGDA_BIN") : "build/segda";
    char log[400];
    snprintf(log, sizeof log, "%s/out.txt", root);
    int rc = test_sh("%s eval --instances '%s/inst' --pred '%s/sem' --data 'cityscapes:%s/cs:val' --quiet > '%s' 2>&1",
                     bin, root, root, root, log);
    char *out = test_slurp(log, NULL);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, out ? out : "");
    /* AP table: car 219/360 = 0.608, AP50 1; average 219/720 = 0.304, 0.5 */
    CHECK(out && strstr(out, "car             0.608    1.000        3        7"));
    CHECK(out && strstr(out, "average         0.304    0.500"));
    /* iIoU: car over both images; image 2's car D and no crowd-weighting (crowds have no instance) */
    CHECK(out && strstr(out, "iIoU (instance-weighted IoU"));
    free(out);
    /* the same iIoU in --json and --csv: the printed car value, the mean */
    rc = test_sh("%s eval --pred '%s/sem' --data 'cityscapes:%s/cs:val' --json '%s/r.json' --csv '%s/r.csv' --quiet "
                 "> '%s' 2>&1", bin, root, root, root, root, log);
    out = test_slurp(log, NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/r.json", root);
    char *js = test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/r.csv", root);
    char *cv = test_slurp(path, NULL);
    /* the iIoU table's row: name, person, rider, car, ... */
    const char *row = out ? strstr(out, "bike  iIoU\n") : NULL;
    double car_iiou = -1;
    if (row)
        sscanf(row + 11, "%*s %*s %*s %lf", &car_iiou);
    const char *jc = js ? strstr(js, "\"class_iiou\": {\"person\": ") : NULL;
    const char *jcar = jc ? strstr(jc, "\"car\": ") : NULL;
    double j_car = jcar ? atof(jcar + 7) : -2;
    CHECK_MSG(rc == 0 && car_iiou >= 0 && fabs(100 * j_car - car_iiou) < 0.051 && js && strstr(js, "\"iiou\": 0."),
              "printed car iIoU %g, json %g: %s", car_iiou, j_car, out ? out : "");
    CHECK(cv && strstr(cv, ",iiou_car,") && strstr(cv, ",iiou\n"));
    free(out), free(js), free(cv);
    /* fused: image 1's prediction with the instance masks painted over it */
    rc = test_sh("%s eval --instances '%s/inst' --pred '%s/sem' --fuse-out '%s/fused' --data 'cityscapes:%s/cs:val' "
                 "--quiet > '%s' 2>&1", bin, root, root, root, root, log);
    out = test_slurp(log, NULL);
    CHECK_MSG(rc == 0 && out && strstr(out, "fused:"), "exit %d: %s", rc, out ? out : "");
    free(out);
    sd_image f;
    CHECK_OK(sd_image_read(test_path(root, "fused/aa_000000_000001_trainIds.png"), &f, true));
    if (f.data) {
        const uint8_t *v = f.data;
        CHECK(v[17 * W + 5] == 0);   /* B's lower half: no mask, the prediction's road stays */
        CHECK(v[12 * W + 5] == 13);  /* B's upper part: p2 paints car */
        CHECK(v[16 * W + 15] == 13); /* p4 paints car on road */
        CHECK(v[17 * W + 27] == 11); /* the person mask (score 0.5 >= 0.5) */
        CHECK(v[2 * W + 17] == 13);  /* C: p3 paints the car the prediction missed */
        sd_image_free(&f);
    }
    /* a missing list is an error naming the sample */
    test_sh("rm '%s/inst/aa_000000_000002.txt'", root);
    rc = test_sh("%s eval --instances '%s/inst' --data 'cityscapes:%s/cs:val' > '%s' 2>&1", bin, root, root, log);
    out = test_slurp(log, NULL);
    CHECK(rc != 0 && out && strstr(out, "aa_000000_000002"));
    free(out);
    test_sh("rm -rf '%s'", root);
}

int main(void)
{
    RUN(test_ap_by_hand);
    RUN(test_iiou_by_hand);
    RUN(test_cli);
    TESTS_DONE();
}
