/* The detector's C API (include/segda/detect.h): inference on a random
 * network (output shapes, sorting, train ids, masks inside their boxes),
 * save/load, the errors for a segmentation file given as a detector and the
 * reverse and for bad targets, a tiny training run on `segda synth`
 * simple scenes whose loss falls and which resumes to the same numbers, and
 * the two BN modes of training (what moves, the file's det_bn, resume).
 * torchvision parity: tests/py/test_maskrcnn_torch.py and
 * test_maskrcnn_loss_torch.py; box arithmetic: test_detect_boxes.py. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/detect.h"
#include "segda/checkpoint.h"
#include "segda/model.h"
#include "util.h"

static char dir[256];

static uint8_t *test_image(int w, int h)
{
    uint8_t *im = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                im[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(x > w / 4 && x < w / 2 && y > h / 3 ? 200 - 60 * c : (x * 7 + y * 13 + c * 50) % 256);
    return im;
}

static sd_detector *small_detector(void)
{
    sd_detector_opts o = sd_detector_opts_default(9);
    o.min_size = 64;
    o.max_size = 96;
    o.score_thresh = 0.0f; /* random weights: scores near 1/9 */
    o.detections = 10;
    sd_detector *d = NULL;
    CHECK_OK(sd_detector_create(&o, 3, &d));
    return d;
}

static void test_predict_shapes(void)
{
    sd_detector *d = small_detector();
    if (!d)
        return;
    int w = 90, h = 60;
    uint8_t *im = test_image(w, h);
    sd_detections r;
    CHECK_OK(sd_detector_predict(d, im, w, h, &r));
    CHECK(r.w == w && r.h == h);
    CHECK_MSG(r.n > 0 && r.n <= 10, "%d detections", r.n);
    for (int i = 0; i < r.n; i++) {
        const sd_detection *e = &r.d[i];
        CHECK(e->label >= 1 && e->label <= 8 && e->train_id == 10 + e->label);
        CHECK(i == 0 || e->score <= r.d[i - 1].score);
        CHECK(e->box[0] >= 0 && e->box[2] <= w && e->box[1] >= 0 && e->box[3] <= h && e->box[0] <= e->box[2]);
        /* pasted masks never leave their (padding-expanded) box */
        float pw = (e->box[2] - e->box[0]) / 28.0f + 2, ph = (e->box[3] - e->box[1]) / 28.0f + 2;
        bool inside = true;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (e->mask[y * w + x] && (x < e->box[0] - pw || x > e->box[2] + pw || y < e->box[1] - ph ||
                                           y > e->box[3] + ph))
                    inside = false;
        CHECK(inside);
    }
    sd_detections_free(&r);
    CHECK(r.n == 0 && r.d == NULL);
    CHECK(sd_detector_predict(d, NULL, w, h, &r) == SD_ERR_ARG);
    CHECK_ERR_HAS("image");
    free(im);
    sd_detector_free(d);
}

static void test_save_load_and_wrong_files(void)
{
    sd_detector *d = small_detector();
    if (!d)
        return;
    const char *det_path = test_path(dir, "det.safetensors"), *seg_path = test_path(dir, "seg.safetensors");
    sd_detector_options(d)->anchor_size = 8; /* the input and anchor sizes travel with the file */
    CHECK_OK(sd_detector_save(d, det_path));
    sd_detector *e = NULL;
    CHECK_OK(sd_detector_load(det_path, &e));
    if (e) {
        const sd_detector_opts *eo = sd_detector_options(e);
        CHECK(eo->classes == 9);
        CHECK_MSG(eo->min_size == 64 && eo->max_size == 96 && eo->anchor_size == 8, "loaded sizes %d %d %d",
                  eo->min_size, eo->max_size, eo->anchor_size);
        sd_params *a = sd_detector_params(d), *b = sd_detector_params(e);
        bool same = a->n == b->n;
        for (int g = 0; same && g < a->n_groups; g++)
            same = a->groups[g].numel == b->groups[g].numel &&
                   !memcmp(a->groups[g].data, b->groups[g].data, a->groups[g].numel * sizeof(float));
        CHECK_MSG(same, "weights differ after save and load");
        sd_detector_free(e);
    }
    /* a detector where a segmentation network is expected */
    sd_model *m = NULL;
    sd_norm norm;
    CHECK(sd_model_load(det_path, true, &m, &norm) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("det.safetensors");
    CHECK_ERR_HAS("a detector checkpoint");
    /* and the reverse */
    sd_model_opts mo = sd_model_opts_default("deeplab-mini");
    CHECK_OK(sd_model_create(&mo, &m));
    if (m) {
        CHECK_OK(sd_model_save(m, SD_NORM_IMAGENET, seg_path));
        sd_model_free(m);
        CHECK(sd_detector_load(seg_path, &e) == SD_ERR_FORMAT && e == NULL);
        CHECK_ERR_HAS("seg.safetensors");
        CHECK_ERR_HAS("expected a detector");
    }
    /* bad targets */
    uint8_t *im = test_image(40, 30), mask[40 * 30] = {0};
    float box[4] = {5, 5, 20, 20}, l[SD_DET_LOSSES];
    int label = 9; /* background + 8: 9 is one past the last class */
    sd_detector_target t = {1, box, &label, mask};
    CHECK(sd_detector_backward(d, im, 40, 30, &t, NULL, 1.0f, l) == SD_ERR_DATA);
    CHECK_ERR_HAS("label 9");
    free(im);
    sd_detector_free(d);
}

/* An image without instances (a training target with none, a blank image at
 * inference): the background-only losses, no box or mask loss, no crash. */
static void test_empty_image(void)
{
    sd_detector *d = small_detector();
    if (!d)
        return;
    int w = 48, h = 32;
    uint8_t *im = test_image(w, h), *blank = calloc((size_t)w * h * 3, 1);
    sd_detector_target t = {0, NULL, NULL, NULL};
    sd_rng r = sd_rng_fork(5, 0);
    float l[SD_DET_LOSSES];
    CHECK_OK(sd_detector_backward(d, im, w, h, &t, &r, 1.0f, l));
    CHECK_MSG(isfinite(l[SD_DET_LOSS_OBJECTNESS]) && l[SD_DET_LOSS_OBJECTNESS] > 0 &&
              isfinite(l[SD_DET_LOSS_CLASSIFIER]) && l[SD_DET_LOSS_CLASSIFIER] > 0,
              "objectness %g classifier %g", l[SD_DET_LOSS_OBJECTNESS], l[SD_DET_LOSS_CLASSIFIER]);
    CHECK_MSG(l[SD_DET_LOSS_RPN_BOX] == 0 && l[SD_DET_LOSS_BOX] == 0 && l[SD_DET_LOSS_MASK] == 0,
              "rpn_box %g box %g mask %g", l[SD_DET_LOSS_RPN_BOX], l[SD_DET_LOSS_BOX], l[SD_DET_LOSS_MASK]);
    sd_detections res;
    CHECK_OK(sd_detector_predict(d, blank, w, h, &res));
    CHECK(res.w == w && res.h == h && res.n >= 0 && res.n <= 10);
    sd_detections_free(&res);
    free(im);
    free(blank);
    sd_detector_free(d);
}

static int read_last_row(const char *path, char *row, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        snprintf(row, cap, "%s", line);
        n++;
    }
    fclose(f);
    return n;
}

/* A few steps on the tiny synth images: small input, few proposals. */
static sd_detect_train_opts tiny_train_opts(const char *spec, int iters)
{
    sd_detect_train_opts o = sd_detect_train_opts_default();
    o.data = spec;
    o.iters = iters;
    o.lr = 0.005f;
    o.warmup_iters = 0;
    o.det.min_size = 48;
    o.det.max_size = 96;
    o.det.rpn_pre_nms_train = 200;
    o.det.rpn_post_nms_train = 64;
    o.det.box_batch = 64;
    o.save_every = 0;
    return o;
}

static void test_train_loss_falls_and_resumes(void)
{
    char data[280], run1[280], run2[280], p1[320], p2[320];
    snprintf(data, sizeof data, "%s/syn", dir);
    snprintf(run1, sizeof run1, "%s/run1", dir);
    snprintf(run2, sizeof run2, "%s/run2", dir);
    CHECK(test_sh("build/segda synth --out %s --n-sim 1 --n-real 1 --n-real-val 1 --simple-scenes 2 "
                  "--size 96x48 --quiet --threads 1",
                  data) == 0);
    char spec[320];
    snprintf(spec, sizeof spec, "gta5:%s/simple", data);
    sd_detect_train_opts o = tiny_train_opts(spec, 4);
    o.batch = 2; /* both images every step: the loss follows the weights, not the sample */
    CHECK(test_sh("mkdir -p %s %s", run1, run2) == 0);
    o.out_dir = run1;
    float first = 0, last = 0;
    CHECK_OK(sd_detect_train(&o, &first, &last));
    CHECK_MSG(last < first, "loss %g -> %g did not fall", first, last);
    /* 2 steps, then a resumed run to 4: the same last row as 4 straight */
    o.out_dir = run2;
    o.iters = 2;
    CHECK_OK(sd_detect_train(&o, NULL, NULL));
    o.iters = 4;
    o.resume = true;
    CHECK_OK(sd_detect_train(&o, NULL, NULL));
    char a[512] = "", b[512] = "";
    snprintf(p1, sizeof p1, "%s/log.csv", run1);
    snprintf(p2, sizeof p2, "%s/log.csv", run2);
    CHECK(read_last_row(p1, a, sizeof a) == 5);
    CHECK(read_last_row(p2, b, sizeof b) == 5);
    CHECK_MSG(!strcmp(a, b), "straight: %s resumed: %s", a, b);
    sd_detector *d = NULL;
    snprintf(p1, sizeof p1, "%s/detector.safetensors", run1);
    CHECK_OK(sd_detector_load(p1, &d));
    sd_detector_free(d);
    /* a dataset without instance files */
    char nospec[320];
    snprintf(nospec, sizeof nospec, "folder:%s/nothing", data);
    CHECK(test_sh("mkdir -p %s/nothing/images %s/nothing/labels && cp %s/simple/images/00001.png %s/nothing/images/ "
                  "&& cp %s/simple/labels/00001.png %s/nothing/labels/",
                  data, data, data, data, data, data) == 0);
    o.data = nospec;
    o.resume = false;
    CHECK(sd_detect_train(&o, NULL, NULL) != SD_OK);
    CHECK_ERR_HAS("instance");
}

/* The first n values of a parameter of d (host copy). */
static void param_head(sd_detector *d, const char *name, float *v, int n)
{
    sd_tensor *t = sd_params_find(sd_detector_params(d), name);
    CHECK_MSG(t != NULL, "%s missing", name);
    float *all = t ? malloc(t->numel * sizeof *all) : NULL;
    if (all && !sd_tensor_to_host(t, all))
        memcpy(v, all, (size_t)n * sizeof *v);
    free(all);
}

/* --bn frozen keeps conv1, layer1 and every BN tensor at their initial
 * values (torchvision with pretrained weights); train (auto without --init)
 * moves them, the running statistics included (torchvision without); each
 * file says its mode, a resume keeps it and refuses another. */
static void test_train_bn_modes(void)
{
    static const char *const names[4] = {"backbone.body.conv1.weight", "backbone.body.bn1.running_mean",
                                         "backbone.body.layer1.0.bn2.weight", "backbone.body.layer3.0.bn1.bias"};
    char spec[320], run[2][280], p[600];
    snprintf(spec, sizeof spec, "gta5:%s/syn/simple", dir);   /* written by the test above */
    sd_detect_train_opts o = tiny_train_opts(spec, 2);
    sd_detector_opts fresh_o = o.det;
    fresh_o.classes = 9;
    sd_detector *fresh = NULL;
    CHECK_OK(sd_detector_create(&fresh_o, o.seed, &fresh));
    for (int m = 0; m < 2; m++) {
        snprintf(run[m], sizeof run[m], "%s/bn%d", dir, m);
        CHECK(test_sh("mkdir -p %s", run[m]) == 0);
        o.out_dir = run[m];
        o.bn = m == 0 ? SD_DET_BN_FROZEN : SD_DET_BN_AUTO;
        CHECK_OK(sd_detect_train(&o, NULL, NULL));
        snprintf(p, sizeof p, "%s/detector.safetensors", run[m]);
        sd_detector *d = NULL;
        CHECK_OK(sd_detector_load(p, &d));
        if (!d)
            continue;
        CHECK(sd_detector_options(d)->bn_train == (m == 1));
        for (int k = 0; k < 4; k++) {
            float a[8], b[8];
            param_head(d, names[k], a, 8);
            param_head(fresh, names[k], b, 8);
            bool same = !memcmp(a, b, sizeof a);
            CHECK_MSG(same == (m == 0), "bn %s: %s %s", m ? "train" : "frozen", names[k],
                      same ? "did not move" : "moved");
        }
        sd_detector_free(d);
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(p, &c));
        const char *v = sd_ckpt_meta(&c, SD_META_DET_BN);
        CHECK(v && !strcmp(v, m ? "train" : "frozen"));
        sd_ckpt_close(&c);
    }
    sd_detector_free(fresh);
    /* the trained-BN run resumed with --bn frozen: refused, naming the field */
    o.out_dir = run[1];
    o.iters = 3;
    o.resume = true;
    o.bn = SD_DET_BN_FROZEN;
    CHECK(sd_detect_train(&o, NULL, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("det_bn");
    o.bn = SD_DET_BN_AUTO;   /* auto keeps the file's */
    CHECK_OK(sd_detect_train(&o, NULL, NULL));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/segda_test_detect_%d", (int)getpid());
    test_sh("rm -rf %s && mkdir -p %s", dir, dir);
    RUN(test_predict_shapes);
    RUN(test_save_load_and_wrong_files);
    RUN(test_empty_image);
    RUN(test_train_loss_falls_and_resumes);
    RUN(test_train_bn_modes);
    test_sh("rm -rf %s", dir);
    TESTS_DONE();
}
