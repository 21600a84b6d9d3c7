/* Tests for src/data/instances.c: decoding Cityscapes instanceIds (hand-made
 * maps with known boxes and areas), the round trip through a 16-bit PNG, the
 * label cross-check and the errors for ids that decode to no class; the
 * dataset-level reader and checker on hand-made Cityscapes and GTA5-layout
 * fixture trees (good, disagreeing, wrong size, undecodable, missing,
 * empty); the instance ids segda synth renders and writes (sim, real, simple
 * scenes) and `segda check-data` on them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "check.h"
#include "util.h"
#include "segda/data.h"
#include "segda/image.h"
#include "segda/instances.h"
#include "segda/labels.h"

enum { W = 6, H = 4 };
/* road(7) everywhere; two cars (26000, 26001), a person (24000), a car
 * group without instances (26), a trailer instance (30000, not listed). */
static const uint16_t ids[H * W] = {
    7, 26000, 26000, 7, 24000, 24000,
    7, 26000, 26000, 7, 24000, 7,
    26, 26, 7, 26001, 7, 30000,
    7, 7, 7, 26001, 7, 30000,
};

static void test_decode(void)
{
    sd_instances in;
    CHECK(sd_instances_from_ids(ids, W, H, "t", &in) == SD_OK);
    CHECK(in.n == 3);
    if (in.n != 3)
        return;
    CHECK(in.inst[0].id == 24000 && in.inst[0].train_id == 11 && in.inst[0].area == 3);
    CHECK(in.inst[0].x0 == 4 && in.inst[0].y0 == 0 && in.inst[0].x1 == 6 && in.inst[0].y1 == 2);
    CHECK(in.inst[1].id == 26000 && in.inst[1].train_id == 13 && in.inst[1].area == 4);
    CHECK(in.inst[1].x0 == 1 && in.inst[1].x1 == 3 && in.inst[1].y0 == 0 && in.inst[1].y1 == 2);
    CHECK(in.inst[2].id == 26001 && in.inst[2].area == 2 && in.inst[2].y0 == 2 && in.inst[2].y1 == 4);
    CHECK(in.map[0] == -1 && in.map[1] == 1 && in.map[4] == 0 && in.map[12] == -1 && in.map[17] == -1);
    uint8_t bg[H * W];
    for (int p = 0; p < H * W; p++)
        bg[p] = ids[p] < 1000 ? (uint8_t)ids[p] : (uint8_t)(ids[p] / 1000);
    CHECK(sd_instances_check_labels(&in, bg, "t") == SD_OK);
    uint16_t back[H * W];
    sd_instances_to_ids(&in, bg, back);
    for (int p = 0; p < H * W; p++)
        CHECK(back[p] == (ids[p] == 30000 ? 30 : ids[p]));
    bg[1] = 24; /* the label file says person where the instance is a car */
    CHECK(sd_instances_check_labels(&in, bg, "lbl.png") == SD_ERR_DATA);
    CHECK(strstr(sd_errmsg(), "lbl.png") && strstr(sd_errmsg(), "x=1"));
    CHECK(sd_train_id_is_thing(11) && sd_train_id_is_thing(18) && !sd_train_id_is_thing(10) &&
          !sd_train_id_is_thing(255));
    sd_instances_free(&in);
}

static void test_bad_ids(void)
{
    uint16_t bad[4] = {7, 7, 7000, 7}; /* road * 1000: no instances for road */
    sd_instances in;
    CHECK(sd_instances_from_ids(bad, 2, 2, "bad.png", &in) == SD_ERR_DATA);
    CHECK(strstr(sd_errmsg(), "bad.png") && strstr(sd_errmsg(), "7000") && strstr(sd_errmsg(), "x=0, y=1"));
    bad[2] = 40000; /* label id 40: no such label */
    CHECK(sd_instances_from_ids(bad, 2, 2, "bad.png", &in) == SD_ERR_DATA);
    uint16_t none[4] = {7, 11, 23, 26};
    CHECK(sd_instances_from_ids(none, 2, 2, "empty", &in) == SD_OK && in.n == 0);
    sd_instances_free(&in);
}

static void test_png_roundtrip(void)
{
    char dir[] = "/tmp/segda_instances_XXXXXX";
    if (!mkdtemp(dir))
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/x_gtFine_instanceIds.png", dir);
    sd_image img;
    CHECK(sd_image_alloc(&img, W, H, 1, 16) == SD_OK);
    memcpy(img.data, ids, sizeof ids);
    CHECK(sd_png_write(path, &img) == SD_OK);
    sd_image_free(&img);
    sd_instances in;
    CHECK(sd_instances_read(path, &in) == SD_OK && in.n == 3);
    sd_instances_free(&in);
    snprintf(path, sizeof path, "%s/none.png", dir);
    CHECK(sd_instances_read(path, &in) == SD_ERR_IO);
    test_sh("rm -rf '%s'", dir);
}

/* ---- fixture trees ---- */

static void put_grey(const char *path, const uint16_t *v, int w, int h, int depth)
{
    sd_image im;
    CHECK_OK(sd_image_alloc(&im, w, h, depth == 8 ? 1 : 1, depth));
    for (int i = 0; i < w * h; i++) {
        if (depth == 8)
            ((uint8_t *)im.data)[i] = (uint8_t)v[i];
        else
            ((uint16_t *)im.data)[i] = v[i];
    }
    CHECK_OK(sd_png_write(path, &im));
    sd_image_free(&im);
}

static void put_rgb(const char *path, int w, int h)
{
    sd_image im;
    CHECK_OK(sd_image_alloc(&im, w, h, 3, 8));
    memset(im.data, 90, (size_t)w * h * 3);
    CHECK_OK(sd_png_write(path, &im));
    sd_image_free(&im);
}

/* The label ids under `ids`: the instances' labelIds, the rest as stored. */
static void label_of(const uint16_t *v, int n, uint16_t *lab)
{
    for (int i = 0; i < n; i++)
        lab[i] = v[i] >= 1000 ? v[i] / 1000 : v[i];
}

/* One Cityscapes frame: image, labelIds (8-bit) and instanceIds (16-bit). */
static void put_cs_frame(const char *root, const char *stem, const uint16_t *inst, const uint16_t *lab, int w, int h,
                         int lw, int lh)
{
    char p[600];
    snprintf(p, sizeof p, "%s/leftImg8bit/val/c/%s_leftImg8bit.png", root, stem);
    put_rgb(p, lw, lh);
    snprintf(p, sizeof p, "%s/gtFine/val/c/%s_gtFine_labelIds.png", root, stem);
    put_grey(p, lab, lw, lh, 8);
    if (inst) {
        snprintf(p, sizeof p, "%s/gtFine/val/c/%s_gtFine_instanceIds.png", root, stem);
        put_grey(p, inst, w, h, 16);
    }
}

static void test_dataset_cityscapes(void)
{
    char root[] = "/tmp/segda_inst_cs_XXXXXX";
    if (!mkdtemp(root))
        return;
    test_sh("mkdir -p '%s/leftImg8bit/val/c' '%s/gtFine/val/c'", root, root);
    uint16_t lab[W * H];
    label_of(ids, W * H, lab);
    put_cs_frame(root, "c_000000_000001", ids, lab, W, H, W, H);          /* good: 2 cars, 1 person */
    uint16_t empty[W * H], elab[W * H];
    for (int i = 0; i < W * H; i++)
        empty[i] = elab[i] = i < W ? 23 : 7;                                /* sky and road only */
    put_cs_frame(root, "c_000000_000002", empty, elab, W, H, W, H);
    uint16_t dis[W * H];
    memcpy(dis, lab, sizeof dis);
    dis[W + 4] = 26;                                                      /* label says car under the person */
    put_cs_frame(root, "c_000000_000003", ids, dis, W, H, W, H);
    put_cs_frame(root, "c_000000_000004", ids, lab, W - 1, H, W, H);      /* instance file one column short */
    uint16_t bad[W * H];
    memcpy(bad, ids, sizeof bad);
    bad[0] = 7000;                                                        /* road * 1000: no such instance class */
    put_cs_frame(root, "c_000000_000005", bad, lab, W, H, W, H);
    put_cs_frame(root, "c_000000_000006", NULL, lab, W, H, W, H);         /* no instance file */

    char spec[300];
    snprintf(spec, sizeof spec, "cityscapes:%s:val", root);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 6);
    CHECK(sd_dataset_has_instances(&ds));
    char path[4200];
    CHECK_OK(sd_dataset_instances_path(&ds, 0, path, sizeof path));
    CHECK(strstr(path, "/gtFine/val/c/c_000000_000001_gtFine_instanceIds.png") != NULL);
    sd_instances in;
    CHECK_OK(sd_dataset_read_instances(&ds, 0, &in));
    CHECK(in.n == 3 && in.w == W && in.h == H);
    sd_instances_free(&in);
    int per[SD_NUM_THING_CLASSES] = {0};
    CHECK_OK(sd_dataset_check_instances(&ds, 0, per));
    CHECK(per[0] == 1 && per[2] == 2 && per[1] == 0 && per[7] == 0);
    /* an image without instances: fine, nothing counted */
    CHECK_OK(sd_dataset_read_instances(&ds, 1, &in));
    CHECK(in.n == 0);
    sd_instances_free(&in);
    CHECK_OK(sd_dataset_check_instances(&ds, 1, per));
    CHECK(per[0] == 1 && per[2] == 2);
    CHECK(sd_dataset_check_instances(&ds, 2, NULL) == SD_ERR_DATA);
    CHECK_ERR_HAS("x=4, y=1");
    CHECK_ERR_HAS("c_000000_000003_gtFine_instanceIds.png");
    CHECK(sd_dataset_check_instances(&ds, 3, NULL) == SD_ERR_DATA);
    CHECK_ERR_HAS("5x4 but the label");
    CHECK(sd_dataset_check_instances(&ds, 4, NULL) == SD_ERR_DATA);
    CHECK_ERR_HAS("7000");
    CHECK(sd_dataset_read_instances(&ds, 5, &in) == SD_ERR_IO);
    CHECK_ERR_HAS("c_000000_000006_gtFine_instanceIds.png");
    sd_dataset_free(&ds);

    /* the CLI: every bad file listed, exit 1, instances counted */
    const char *bin = getenv("SEGDA_BIN") ? getenv("SEGDA_BIN") : "build/segda";
    char log[400];
    snprintf(log, sizeof log, "%s/out.txt", root);
    int rc = test_sh("%s check-data '%s' > '%s' 2>&1", bin, spec, log);
    char *out = test_slurp(log, NULL);
    CHECK(rc == 1);
    CHECK(out && strstr(out, "ERROR: 4 bad instance files"));
    CHECK(out && strstr(out, "person 1, rider 0, car 2,"));
    CHECK(out && strstr(out, "images without instances: 1"));
    free(out);
    test_sh("rm -rf '%s'", root);
}

static void test_dataset_gta5_and_folder(void)
{
    char root[] = "/tmp/segda_inst_gta_XXXXXX";
    if (!mkdtemp(root))
        return;
    test_sh("mkdir -p '%s/images' '%s/labels' '%s/instances' '%s/f/images' '%s/f/labels'", root, root, root, root,
            root);
    uint16_t lab[W * H];
    label_of(ids, W * H, lab);
    char p[600];
    snprintf(p, sizeof p, "%s/images/00001.png", root);
    put_rgb(p, W, H);
    snprintf(p, sizeof p, "%s/labels/00001.png", root);
    put_grey(p, lab, W, H, 8);
    snprintf(p, sizeof p, "%s/instances/00001.png", root);
    put_grey(p, ids, W, H, 16);
    char spec[300];
    snprintf(spec, sizeof spec, "gta5:%s", root);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(sd_dataset_has_instances(&ds));
    int per[SD_NUM_THING_CLASSES] = {0};
    CHECK_OK(sd_dataset_check_instances(&ds, 0, per));
    CHECK(per[0] == 1 && per[2] == 2);
    sd_dataset_free(&ds);
    /* a folder dataset has no instance files: has_instances false, read refused */
    snprintf(p, sizeof p, "%s/f/images/a.png", root);
    put_rgb(p, W, H);
    snprintf(p, sizeof p, "%s/f/labels/a.png", root);
    uint16_t zeros[W * H] = {0};
    put_grey(p, zeros, W, H, 8);
    snprintf(spec, sizeof spec, "folder:%s/f", root);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(!sd_dataset_has_instances(&ds));
    sd_instances in;
    CHECK(sd_dataset_read_instances(&ds, 0, &in) == SD_ERR_ARG);
    CHECK_ERR_HAS("folder");
    sd_dataset_free(&ds);
    test_sh("rm -rf '%s'", root);
}

/* ---- what segda synth renders and writes ---- */

static void test_synth_render_instances(void)
{
    enum { SW = 128, SH = 64 };
    static uint8_t rgb[SW * SH * 3], rgb2[SW * SH * 3], lab[SW * SH], lab2[SW * SH];
    static uint16_t inst[SW * SH];
    int total = 0;
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) {
            CHECK_OK(sd_synth_render((sd_synth_domain)d, 7, 1, (uint64_t)i, SW, SH, rgb, lab));
            CHECK_OK(sd_synth_render_instances((sd_synth_domain)d, 7, 1, (uint64_t)i, SW, SH, rgb2, lab2, inst));
            CHECK(!memcmp(rgb, rgb2, sizeof rgb) && !memcmp(lab, lab2, sizeof lab));
            /* every pixel: a thing label carries an instance of that label,
             * anything else its plain label id */
            int bad = 0;
            for (int p = 0; p < SW * SH; p++) {
                int thing = lab[p] >= 24 && lab[p] <= 33;
                bad += thing ? inst[p] / 1000 != lab[p] : inst[p] != lab[p];
            }
            CHECK_MSG(bad == 0, "domain %d scene %d: %d pixels whose instance id disagrees with the label", d, i, bad);
            sd_instances in;
            CHECK_OK(sd_instances_from_ids(inst, SW, SH, "synth", &in));
            /* numbered 0..n-1 per label: the largest k of a label is its count - 1 */
            int cnt[40] = {0}, maxk[40];
            for (int l = 0; l < 40; l++)
                maxk[l] = -1;
            for (int k = 0; k < in.n; k++) {
                cnt[in.inst[k].label_id]++;
                if (in.inst[k].id % 1000 > maxk[in.inst[k].label_id])
                    maxk[in.inst[k].label_id] = in.inst[k].id % 1000;
            }
            for (int l = 24; l <= 33; l++)
                CHECK(maxk[l] == cnt[l] - 1);
            total += in.n;
            sd_instances_free(&in);
        }
    CHECK(total > 16); /* street scenes hold several objects each */
}

static void test_synth_write_instances(void)
{
    char bench[256];
    snprintf(bench, sizeof bench, "/tmp/segda-test-inst-%d", (int)getpid());
    sd_synth_opts o;
    sd_synth_opts_init(&o);
    o.n_sim = 4, o.n_real = 2, o.n_real_val = 2, o.n_simple = 16, o.w = 96, o.h = 48, o.quiet = true, o.threads = 1;
    CHECK_OK(sd_synth_write(bench, &o));
    sd_synth_opts back;
    CHECK_OK(sd_synth_read_marker(bench, &back));
    CHECK(back.instances && back.n_simple == 16);
    const char *sets[] = {"gta5:%s/sim", "gta5:%s/simple", "cityscapes:%s/real:train", "cityscapes:%s/real:val"};
    for (int k = 0; k < 4; k++) {
        char spec[400];
        snprintf(spec, sizeof spec, sets[k], bench);
        sd_dataset ds;
        CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
        CHECK(sd_dataset_has_instances(&ds));
        for (int i = 0; i < ds.n; i++) {
            int per[SD_NUM_THING_CLASSES] = {0};
            CHECK_OK(sd_dataset_check_instances(&ds, i, per));
            if (k != 1)
                continue;
            /* a simple scene: its class, nothing else (a rider's two-wheeler aside) */
            int cls = sd_synth_simple_class(i) - SD_FIRST_THING_TRAIN_ID, others = 0;
            for (int c = 0; c < SD_NUM_THING_CLASSES; c++)
                if (c != cls && !(cls == 1 && (c == 6 || c == 7)))
                    others += per[c];
            CHECK_MSG(per[cls] >= 1 && others == 0, "simple scene %d: %d of class %d, %d others", i, per[cls], cls,
                      others);
        }
        sd_dataset_free(&ds);
    }
    /* sim images and labels do not depend on the simple scenes or on instances */
    static uint8_t rgb[96 * 48 * 3];
    sd_image im;
    CHECK_OK(sd_image_read(test_path(bench, "sim/images/00002.png"), &im, false));
    CHECK_OK(sd_synth_render(SD_SYNTH_SIM, o.seed, 1, 1, 96, 48, rgb, NULL));
    CHECK(im.w == 96 && !memcmp(im.data, rgb, sizeof rgb));
    sd_image_free(&im);
    test_sh("rm -rf '%s'", bench);
}

int main(void)
{
    RUN(test_decode);
    RUN(test_bad_ids);
    RUN(test_png_roundtrip);
    RUN(test_dataset_cityscapes);
    RUN(test_dataset_gta5_and_folder);
    RUN(test_synth_render_instances);
    RUN(test_synth_write_instances);
    TESTS_DONE();
}
