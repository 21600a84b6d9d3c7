/* `segda eval --model` and `segda gap --model` end to end on a tiny built-in
 * benchmark with random-weight deeplab-mini checkpoints (nothing trained):
 * eval --model must give exactly the numbers of eval --pred on the same
 * model's `segda predict` PNGs (trainIds and label ids), and gap --model
 * must write every JSON key with values in range. Needs $SEGDA_BIN. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "segda/image.h"
#include "util.h"
#include "segda/checkpoint.h"
#include "segda/labels.h"
#include "segda/model.h"

static char tmpdir[256];
static const char *bin;

/* Runs a shell command built from fmt (every segda call on one thread: the
 * shared test machine); returns its exit status. */


static bool file_has(const char *path, const char *needle)
{
    char *s = test_slurp(path, NULL);
    bool r = s && strstr(s, needle);
    free(s);
    return r;
}

/* The number after "KEY": in a JSON text (NAN when missing or null). */
static double json_num(const char *js, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = js ? strstr(js, pat) : NULL;
    if (!p)
        return NAN;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

static bool save_random(const char *path, uint64_t seed, int classes, sd_norm norm)
{
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    o.classes = classes;
    sd_model *m = NULL;
    if (sd_model_create(&o, &m))
        return false;
    sd_model_init_weights(m, seed);
    sd_status st = sd_model_save(m, norm, path);
    sd_model_free(m);
    return st == SD_OK;
}

/* Row `row` (1-based after the header) of a CSV as 19 class IoUs; counts the
 * classes with a value above zero. */
static int csv_nonzero(const char *csv, int row, double iou[SD_NUM_CLASSES])
{
    const char *p = csv;
    for (int r = 0; r < row && p; r++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !(p = strchr(p, ',')))
        return -1;
    int nz = 0;
    for (int k = 0; k < SD_NUM_CLASSES; k++) {
        p++;
        char *end;
        iou[k] = strtod(p, &end);
        if (end == p)
            iou[k] = NAN;
        else if (iou[k] > 0)
            nz++;
        p = strchr(p, ',');
        if (!p)
            return -1;
    }
    return nz;
}

static void setup_fixture(void)
{
    CHECK(test_sh("'%s' synth --out '%s/bench' --n-sim 6 --n-real 2 --n-real-val 6 --size 64x32 --threads 1 --quiet",
             bin, tmpdir) == 0);
    char p[512];
    snprintf(p, sizeof p, "%s/r1.safetensors", tmpdir);
    CHECK(save_random(p, 1, 19, SD_NORM_IMAGENET));
    snprintf(p, sizeof p, "%s/r2.safetensors", tmpdir);
    CHECK(save_random(p, 2, 19, SD_NORM_CAFFE));
    snprintf(p, sizeof p, "%s/c5.safetensors", tmpdir);
    CHECK(save_random(p, 3, 5, SD_NORM_IMAGENET));
}

/* predict's PNGs of checkpoint rK into pK (trainIds) and lK (label ids). */
static void predict_dirs(int k, const char *extra)
{
    const char *t = tmpdir;
    CHECK(test_sh("'%s' predict --model '%s/r%d.safetensors' --input '%s/bench/real/leftImg8bit/val' --out '%s/p%d' "
             "--labelids --threads 1 --quiet %s && mkdir -p '%s/l%d' && "
             "find '%s/p%d' -name '*_labelIds.png' -exec mv {} '%s/l%d/' ';'",
             bin, t, k, t, t, k, extra, t, k, t, k, t, k) == 0);
}

void TEST_eval_model_equals_pred(void);
void TEST_eval_model_equals_pred(void)
{
    const char *t = tmpdir;
    const char *data = "--threads 1 --quiet --name a --name b";
    /* one default across predict and eval (align_corners True, as the
     * published evaluation code): a predict folder written with the
     * defaults scores as eval --model does; the flag's =B form too */
    predict_dirs(1, "");
    predict_dirs(2, "--align-corners=true");
    CHECK(test_sh("'%s' eval --model '%s/r1.safetensors' --model '%s/r2.safetensors' --data 'cityscapes:%s/bench/real' %s "
             "--csv '%s/m.csv' --json '%s/m.json' > '%s/m.txt'", bin, t, t, t, data, t, t, t) == 0);
    CHECK(test_sh("'%s' eval --pred '%s/p1' --pred '%s/p2' --data 'cityscapes:%s/bench/real' %s --csv '%s/p.csv' "
             "> /dev/null", bin, t, t, t, data, t) == 0);
    CHECK(test_sh("'%s' eval --pred '%s/l1' --pred '%s/l2' --labelids --data 'cityscapes:%s/bench/real' %s "
             "--csv '%s/l.csv' > /dev/null", bin, t, t, t, data, t) == 0);
    CHECK(test_sh("cmp -s '%s/m.csv' '%s/p.csv' && cmp -s '%s/m.csv' '%s/l.csv'", t, t, t, t) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/m.csv", t);
    char *csv = test_slurp(path, NULL);
    double a[SD_NUM_CLASSES], b[SD_NUM_CLASSES];
    int na = csv ? csv_nonzero(csv, 1, a) : -1, nb = csv ? csv_nonzero(csv, 2, b) : -1;
    /* not a degenerate comparison: several classes scored, models differ */
    CHECK_MSG(na >= 0 && nb >= 0 && na + nb >= 3, "nonzero IoUs %d + %d", na, nb);
    CHECK(na >= 0 && memcmp(a, b, sizeof a) != 0);
    free(csv);
    snprintf(path, sizeof path, "%s/m.json", t);
    CHECK(file_has(path, "\"align_corners\": true"));
    CHECK(file_has(path, "\"source\": \"network logits (input: the image at its own size; one pass)\""));
    CHECK(file_has(path, "\"images\": 6"));
    snprintf(path, sizeof path, "%s/m.txt", t);
    CHECK(file_has(path, "upsampling: bilinear, align_corners=True"));

    /* a network size (PIL bicubic input) and align_corners False */
    CHECK(test_sh("rm -rf '%s/p1' '%s/l1'", t, t) == 0);
    predict_dirs(1, "--size 96x48 --align-corners=false");
    CHECK(test_sh("'%s' eval --model '%s/r1.safetensors' --size 96x48 --align-corners=false --data "
             "'cityscapes:%s/bench/real' --threads 1 --quiet --name a --csv '%s/m2.csv' --json '%s/m2.json' "
             "> /dev/null", bin, t, t, t, t) == 0);
    CHECK(test_sh("'%s' eval --pred '%s/p1' --data 'cityscapes:%s/bench/real' --threads 1 --quiet --name a "
             "--csv '%s/p2.csv' > /dev/null", bin, t, t, t) == 0);
    CHECK(test_sh("cmp -s '%s/m2.csv' '%s/p2.csv' && ! cmp -s '%s/m2.csv' '%s/m.csv'", t, t, t, t) == 0);
    snprintf(path, sizeof path, "%s/m2.json", t);
    CHECK(file_has(path, "\"align_corners\": false"));
    CHECK(file_has(path, "image resized to 96x48, PIL bicubic"));

    /* flip and scales run and are stated */
    CHECK(test_sh("'%s' eval --model '%s/r1.safetensors' --flip --scales 0.75,1 --data 'cityscapes:%s/bench/real' "
             "--threads 1 --quiet --json '%s/m3.json' > /dev/null", bin, t, t, t) == 0);
    snprintf(path, sizeof path, "%s/m3.json", t);
    CHECK(file_has(path, "mean of raw logits over flip x scales 0.75,1 on the scale-1 output grid"));
}

void TEST_eval_model_errors(void);
void TEST_eval_model_errors(void)
{
    const char *t = tmpdir;
    char path[512];
    snprintf(path, sizeof path, "%s/err.txt", t);
    CHECK(test_sh("'%s' eval --model '%s/none.safetensors' --data 'cityscapes:%s/bench/real' --quiet 2> '%s'", bin, t, t,
             path) == 1);
    CHECK(file_has(path, "none.safetensors"));
    CHECK(test_sh("'%s' eval --model '%s/c5.safetensors' --data 'cityscapes:%s/bench/real' --quiet 2> '%s'", bin, t, t,
             path) == 1);
    CHECK(file_has(path, "5 classes, expected 19"));
    CHECK(test_sh("'%s' eval --model '%s/r1.safetensors' --pred '%s/p2' --data 'cityscapes:%s/bench/real' 2> '%s'", bin,
             t, t, t, path) == 2);
    CHECK(file_has(path, "not both"));
    CHECK(test_sh("'%s' eval --model '%s/r1.safetensors' --size 4x4 --data 'cityscapes:%s/bench/real' 2> '%s'", bin, t,
             t, path) == 2);
    CHECK(file_has(path, "--size '4x4'"));
}

void TEST_gap_model(void);
void TEST_gap_model(void)
{
    const char *t = tmpdir;
    char path[512];
    CHECK(test_sh("'%s' gap --model '%s/r1.safetensors' --layer layer4 --a 'gta5:%s/bench/sim' "
             "--b 'cityscapes:%s/bench/real:val' --folds 2 --perm 20 --threads 1 --json '%s/g.json' --out '%s/gout' "
             "> '%s/g.txt' 2>&1", bin, t, t, t, t, t, t) == 0);
    snprintf(path, sizeof path, "%s/g.json", t);
    char *js = test_slurp(path, NULL);
    CHECK(js != NULL);
    double lin = json_num(js, "svm_linear_accuracy"), poly = json_num(js, "svm_poly_accuracy");
    double mmd = json_num(js, "mmd"), p = json_num(js, "mmd_p"), ret = json_num(js, "retrieval_other_domain");
    CHECK_MSG(lin >= 0 && lin <= 1 && poly >= 0 && poly <= 1, "accuracies %g %g", lin, poly);
    CHECK_MSG(isfinite(mmd) && mmd > -1 && p > 0 && p <= 1, "mmd %g p %g", mmd, p);
    CHECK_MSG(ret >= 0 && ret <= 1, "retrieval %g", ret);
    CHECK(js && strstr(js, "\"class_kl\": {"));
    for (int k = 0; k < SD_NUM_CLASSES; k++) {
        double v = json_num(js, sd_class_names[k]);
        CHECK_MSG(v >= 0 && isfinite(v), "class_kl %s = %g", sd_class_names[k], v);
    }
    free(js);
    snprintf(path, sizeof path, "%s/g.txt", t);
    CHECK(file_has(path, "features: 6 rows of A, 6 of B, 128 dims")); /* deeplab-mini layer4: 128 channels */
    CHECK(test_sh("test -s '%s/gout/pca.svg' && test -s '%s/gout/retrieval.png' && test -s '%s/gout/gap.json'", t, t,
             t) == 0);
    /* softmax per pixel at a network size: 19 dims, K rows per image */
    CHECK(test_sh("'%s' gap --model '%s/r2.safetensors' --layer softmax --size 96x48 --pixels 3 --a 'gta5:%s/bench/sim' "
             "--b 'cityscapes:%s/bench/real:val' --folds 2 --perm 20 --threads 1 > '%s/g2.txt' 2>&1", bin, t, t, t,
             t) == 0);
    snprintf(path, sizeof path, "%s/g2.txt", t);
    CHECK(file_has(path, "features: 18 rows of A, 18 of B, 19 dims"));
    /* errors */
    snprintf(path, sizeof path, "%s/err.txt", t);
    CHECK(test_sh("'%s' gap --model '%s/r1.safetensors' --layer bogus --a 'gta5:%s/bench/sim' "
             "--b 'cityscapes:%s/bench/real:val' 2> '%s' > /dev/null", bin, t, t, t, path) == 1);
    CHECK(file_has(path, "--layer bogus"));
    CHECK(test_sh("'%s' gap --rgb --size 96x48 --a 'gta5:%s/bench/sim' --b 'cityscapes:%s/bench/real:val' 2> '%s'", bin,
             t, t, path) == 2);
    CHECK(file_has(path, "--size works with --model only"));
}

/* predict mirrors the input's subfolders (a/x.png and b/x.png keep both
 * predictions) and refuses inputs that would write one output (x.png
 * beside x.jpg), naming both, before writing anything. */
void TEST_predict_no_collisions(void);
void TEST_predict_no_collisions(void)
{
    const char *t = tmpdir;
    CHECK(test_sh("mkdir -p '%s/pin/a' '%s/pin/b/deep' '%s/pin2/c'", t, t, t) == 0);
    uint8_t px[16 * 8 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(i * 29);
    sd_image img = {.w = 16, .h = 8, .c = 3, .depth = 8, .data = px};
    const char *names[] = {"pin/a/x.png", "pin/b/x.png", "pin/b/deep/x.png", "pin2/c/y.png", "pin2/c/y.jpg"};
    for (int i = 0; i < 5; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", t, names[i]);
        CHECK_OK(sd_png_write(p, &img));
    }
    CHECK(test_sh("'%s' predict --model '%s/r1.safetensors' --input '%s/pin/' --out '%s/pout' --color --threads 1 "
             "--quiet", bin, t, t, t) == 0);
    CHECK(test_sh("test -f '%s/pout/a/x_trainIds.png' && test -f '%s/pout/b/x_trainIds.png' && "
             "test -f '%s/pout/b/deep/x_trainIds.png' && test -f '%s/pout/b/deep/x_color.png' && "
             "test ! -e '%s/pout/x_trainIds.png'", t, t, t, t, t) == 0);
    char err[512];
    snprintf(err, sizeof err, "%s/collide.txt", t);
    CHECK(test_sh("'%s' predict --model '%s/r1.safetensors' --input '%s/pin2' --out '%s/pout2' --threads 1 --quiet "
             "2> '%s'", bin, t, t, t, err) == 1);
    CHECK(file_has(err, "pin2/c/y.jpg and ") && file_has(err, "pin2/c/y.png would both write"));
    CHECK(test_sh("test ! -e '%s/pout2'", t) == 0);
}

/* SYNTHIA's 16 classes end to end: a 16-class run (lane markings read as
 * road) evaluates and keeps its best checkpoint by mIoU-16; eval scores the
 * 16-class model with mIoU-16 and mIoU-13 beside it; predict writes
 * trainIds (never terrain, truck or train), in the Cityscapes colours, and
 * eval --pred of that folder equals eval --model. */
void TEST_synthia16(void);
void TEST_synthia16(void)
{
    const char *t = tmpdir;
    CHECK(test_sh("'%s' synth --out '%s/syn' --n-sim 6 --n-real 2 --n-real-val 3 --size 64x32 --synthia --threads 1 "
             "--quiet", bin, t) == 0);
    CHECK(test_sh("'%s' train --method source-only --source 'synthia:%s/syn/synthia' --target 'cityscapes:%s/syn/real' "
             "--classes 16 --lanemarking-as-road --iters 4 --eval-every 4 --lr 0.01 --out '%s/s16' --threads 1 "
             "--log-every 100 2> '%s/s16.err'", bin, t, t, t, t) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/s16.err", t);
    CHECK(file_has(path, "mIoU-16"));
    snprintf(path, sizeof path, "%s/s16/log.jsonl", t);
    CHECK(file_has(path, "\"miou_16\": "));
    snprintf(path, sizeof path, "%s/s16/best.safetensors", t);
    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    CHECK(sd_ckpt_meta(&c, "miou_16") != NULL && sd_ckpt_meta(&c, "miou_19") == NULL);
    CHECK(!strcmp(sd_ckpt_meta(&c, SD_META_CLASSES), "16"));
    sd_ckpt_close(&c);
    CHECK(test_sh("'%s' eval --model '%s/s16/best.safetensors' --data 'cityscapes:%s/syn/real' --threads 1 --quiet "
             "--name m --csv '%s/s16m.csv' > '%s/s16.txt'", bin, t, t, t, t) == 0);
    snprintf(path, sizeof path, "%s/s16.txt", t);
    CHECK(file_has(path, "mIoU-16") && file_has(path, "mIoU-13"));
    CHECK(test_sh("'%s' predict --model '%s/s16/best.safetensors' --input '%s/syn/real/leftImg8bit/val' --out '%s/p16' "
             "--color --labelids --threads 1 --quiet", bin, t, t, t) == 0);
    CHECK(test_sh("'%s' eval --pred '%s/p16' --data 'cityscapes:%s/syn/real' --protocol 16 --threads 1 --quiet "
             "--name m --csv '%s/s16p.csv' > /dev/null", bin, t, t, t) == 0);
    CHECK(test_sh("cmp -s '%s/s16m.csv' '%s/s16p.csv'", t, t) == 0);
    /* every predicted trainId is one of the 16 */
    CHECK(test_sh("find '%s/p16' -name '*_trainIds.png' > '%s/p16.list'", t, t) == 0);
    snprintf(path, sizeof path, "%s/p16.list", t);
    FILE *f = fopen(path, "r");
    char line[600];
    int files = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        sd_image im;
        if (sd_image_read(line, &im, false) != SD_OK)
            continue;
        files++;
        for (size_t i = 0; i < (size_t)im.w * im.h; i++) {
            int v = ((const uint8_t *)im.data)[i * im.c];
            bad += v >= SD_NUM_CLASSES || v == 9 || v == 14 || v == 16;
        }
        sd_image_free(&im);
    }
    if (f)
        fclose(f);
    CHECK_MSG(files == 3 && bad == 0, "%d prediction files, %d pixels outside the 16 classes", files, bad);
    /* a 16-class run refuses another class count */
    CHECK(test_sh("'%s' train --method source-only --source 'synthia:%s/syn/synthia' --classes 17 --iters 1 "
             "--out '%s/s17' 2> '%s/s17.err'", bin, t, t, t) != 0);
    snprintf(path, sizeof path, "%s/s17.err", t);
    CHECK(file_has(path, "classes = '17': expected one of 19|16"));
}

int main(void)
{
    bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP TEST_eval_model_equals_pred (no SEGDA_BIN)\n");
        return 0;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda-test-model-cli-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    setenv("OMP_NUM_THREADS", "1", 1);
    setup_fixture();
    RUN(TEST_eval_model_equals_pred);
    RUN(TEST_eval_model_errors);
    RUN(TEST_gap_model);
    RUN(TEST_predict_no_collisions);
    RUN(TEST_synthia16);
    test_sh("rm -rf '%s'", tmpdir);
    TESTS_DONE();
}
