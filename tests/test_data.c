/* Tests for the dataset readers (src/data/dataset.c): tiny fixture trees in
 * each dataset's exact layout, written here with the PNG writer; the id ->
 * trainId maps spot-checked against the official table (FIELD.md); broken
 * fixtures (missing pair, truncated PNG, wrong bit depth, colour label,
 * unknown id) each give an error naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "segda/data.h"
#include "segda/image.h"
#include "segda/labels.h"

static char dir[256];

static const char *tp(const char *fmt, const char *a)
{
    static char p[8][512];
    static int k;
    k = (k + 1) & 7;
    char rel[256];
    snprintf(rel, sizeof rel, fmt, a);
    snprintf(p[k], sizeof p[k], "%s/%s", dir, rel);
    return p[k];
}

static void mkdirs(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

/* An RGB image whose pixel (x, y) is (x*10+seed, y*10, seed) */
static void write_rgb(const char *path, int w, int h, int seed)
{
    sd_image im;
    sd_image_alloc(&im, w, h, 3, 8);
    uint8_t *p = im.data;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3] = (uint8_t)(x * 10 + seed);
            p[(y * w + x) * 3 + 1] = (uint8_t)(y * 10);
            p[(y * w + x) * 3 + 2] = (uint8_t)seed;
        }
    CHECK_OK(sd_png_write(path, &im));
    sd_image_free(&im);
}

static void write_ids(const char *path, int w, int h, const uint8_t *ids)
{
    sd_image im = {.w = w, .h = h, .c = 1, .depth = 8, .data = (void *)ids};
    CHECK_OK(sd_png_write(path, &im));
}

static void write_ids_palette(const char *path, int w, int h, const uint8_t *ids)
{
    uint8_t pal[SD_NUM_LABEL_IDS][3];
    for (int i = 0; i < SD_NUM_LABEL_IDS; i++)
        memcpy(pal[i], sd_labels[i].color, 3);
    CHECK_OK(sd_png_write_palette(path, ids, w, h, (const uint8_t(*)[3])pal, SD_NUM_LABEL_IDS));
}

static void truncate_file(const char *path, long keep)
{
    CHECK(truncate(path, keep) == 0);
}

/* ---- GTA5 ---- */

static const uint8_t gta_ids[12] = {7, 8, 26, 33, 0, 9, 23, 11, 24, 31, 14, 21};
static const uint8_t gta_train[12] = {0, 1, 13, 18, 255, 255, 10, 2, 11, 16, 255, 8};

static void make_gta(void)
{
    mkdirs(tp("gta/images", ""));
    mkdirs(tp("gta/labels", ""));
    write_rgb(tp("gta/images/00002.png", ""), 4, 3, 2);
    write_ids_palette(tp("gta/labels/00002.png", ""), 4, 3, gta_ids); /* palette label as GTA5 ships */
    write_rgb(tp("gta/images/00001.png", ""), 4, 3, 1);
    write_ids(tp("gta/labels/00001.png", ""), 4, 3, gta_ids);
    write_rgb(tp("gta/images/00003.png", ""), 6, 4, 3);
    write_ids(tp("gta/labels/00003.png", ""), 3, 2, gta_ids); /* label smaller than image */
    write_rgb(tp("gta/images/00004.png", ""), 4, 3, 4);       /* no label */
    write_ids(tp("gta/labels/00005.png", ""), 4, 3, gta_ids); /* no image */
}

static void test_gta5(void)
{
    make_gta();
    sd_dataset ds;
    char spec[600];
    snprintf(spec, sizeof spec, "gta5:%s/gta", dir);
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_DATA);
    CHECK_ERR_HAS("2 incomplete pairs");
    CHECK_ERR_HAS("images/00004.png: image has no label");

    sd_dataset_opts o = {.skip_bad = true};
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, &o));
    CHECK(ds.n == 3 && ds.n_problems == 2 && ds.has_labels);
    if (ds.n != 3) {
        sd_dataset_free(&ds);
        return;
    }
    CHECK(!strcmp(ds.samples[0].stem, "00001") && !strcmp(ds.samples[1].stem, "00002") &&
          !strcmp(ds.samples[2].stem, "00003"));
    CHECK(ds.n_problems == 2 && strstr(ds.problems[0], "00004.png: image has no label") &&
          strstr(ds.problems[1], "labels/00005.png: label has no image"));
    for (int i = 0; i < 2; i++) {
        sd_sample s;
        CHECK_OK(sd_dataset_read(&ds, i, &s));
        CHECK(s.w == 4 && s.h == 3 && s.lw == 4 && s.lh == 3);
        if (s.label)
            CHECK_MSG(!memcmp(s.label, gta_train, 12), "sample %d trainIds differ", i);
        if (s.image) /* pixel (2,1) of seed i+1 */
            CHECK(s.image[(1 * 4 + 2) * 3] == 20 + i + 1 && s.image[(1 * 4 + 2) * 3 + 1] == 10 &&
                  s.image[(1 * 4 + 2) * 3 + 2] == i + 1);
        sd_sample_free(&s);
    }
    sd_sample s;
    CHECK_OK(sd_dataset_read(&ds, 2, &s));
    CHECK(s.w == 6 && s.h == 4 && s.lw == 3 && s.lh == 2); /* sizes as stored */
    sd_sample_free(&s);
    uint16_t *ids;
    int w, h;
    CHECK_OK(sd_dataset_read_ids(&ds, 1, &ids, &w, &h));
    CHECK(w == 4 && h == 3 && ids && ids[2] == 26 && ids[3] == 33);
    free(ids);

    uint64_t counts[3 * SD_NUM_CLASSES];
    int bad = -1;
    CHECK_OK(sd_dataset_class_pixels(&ds, 2, false, counts, &bad));
    CHECK(bad == 0);
    /* sample 2's label is the first 6 ids: 7 8 26 33 0 9 -> road sidewalk car bicycle */
    CHECK(counts[0 * 19 + 0] == 1 && counts[0 * 19 + 13] == 1 && counts[0 * 19 + 10] == 1);
    CHECK(counts[2 * 19 + 0] == 1 && counts[2 * 19 + 18] == 1 && counts[2 * 19 + 10] == 0);
    sd_dataset_free(&ds);
}

static void test_gta5_broken(void)
{
    mkdirs(tp("gtab/images", ""));
    mkdirs(tp("gtab/labels", ""));
    write_rgb(tp("gtab/images/00001.png", ""), 4, 3, 1);
    write_ids(tp("gtab/labels/00001.png", ""), 4, 3, gta_ids);
    truncate_file(tp("gtab/labels/00001.png", ""), 40);
    /* 16-bit label */
    write_rgb(tp("gtab/images/00002.png", ""), 4, 3, 1);
    uint16_t ids16[12];
    for (int i = 0; i < 12; i++)
        ids16[i] = gta_ids[i];
    sd_image l16 = {.w = 4, .h = 3, .c = 1, .depth = 16, .data = ids16};
    CHECK_OK(sd_png_write(tp("gtab/labels/00002.png", ""), &l16));
    /* colour label */
    write_rgb(tp("gtab/images/00003.png", ""), 4, 3, 1);
    write_rgb(tp("gtab/labels/00003.png", ""), 4, 3, 1);
    /* unknown id 40 at x=1 y=2 */
    write_rgb(tp("gtab/images/00004.png", ""), 4, 3, 1);
    uint8_t ids[12];
    memcpy(ids, gta_ids, 12);
    ids[9] = 40;
    write_ids(tp("gtab/labels/00004.png", ""), 4, 3, ids);
    /* corrupt (not an image) image */
    FILE *f = fopen(tp("gtab/images/00005.png", ""), "w");
    if (f) {
        fputs("<html>404</html>", f);
        fclose(f);
    }
    write_ids(tp("gtab/labels/00005.png", ""), 4, 3, gta_ids);

    sd_dataset ds;
    char spec[600];
    snprintf(spec, sizeof spec, "gta5:%s/gtab", dir);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 5);
    sd_sample s;
    if (ds.n == 5) {
        CHECK(sd_dataset_read(&ds, 0, &s) == SD_ERR_FORMAT);
        CHECK_ERR_HAS("labels/00001.png: truncated PNG");
        CHECK(s.image == NULL && s.label == NULL);
        CHECK(sd_dataset_read(&ds, 1, &s) == SD_ERR_DATA);
        CHECK_ERR_HAS("labels/00002.png: label has bit depth 16; expected 8-bit");
        CHECK(sd_dataset_read(&ds, 2, &s) == SD_ERR_DATA);
        CHECK_ERR_HAS("labels/00003.png: label has 3 channels");
        CHECK(sd_dataset_read(&ds, 3, &s) == SD_ERR_DATA);
        CHECK_ERR_HAS("labels/00004.png: unknown label id 40 at x=1 y=2");
        CHECK(sd_dataset_read(&ds, 4, &s) == SD_ERR_FORMAT);
        CHECK_ERR_HAS("images/00005.png: not an image");
        uint64_t counts[5 * 19];
        int bad = 0;
        CHECK(sd_dataset_class_pixels(&ds, 1, false, counts, &bad) != SD_OK);
        CHECK_ERR_HAS("00001.png: truncated PNG"); /* the first bad sample, whatever the thread order */
        CHECK(bad == 4);                             /* 00005's label is fine */
        CHECK_OK(sd_dataset_class_pixels(&ds, 2, true, counts, &bad));
        CHECK(bad == 4);
    }
    sd_dataset_free(&ds);
    sd_dataset_opts o = {.allow_unknown_ids = true};
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, &o));
    if (ds.n == 5) {
        CHECK_OK(sd_dataset_read(&ds, 3, &s));
        CHECK(s.label && s.label[9] == 255 && s.label[0] == 0);
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);
}

/* ---- SYNTHIA ---- */

static void test_synthia(void)
{
    mkdirs(tp("syn/RGB", ""));
    mkdirs(tp("syn/GT/LABELS", ""));
    /* class ids in R (channel 0); G holds instance ids > 255, B junk */
    static const uint16_t cls[10] = {3, 4, 2, 21, 22, 15, 12, 11, 0, 1};
    static const uint8_t want[10] = {0, 1, 2, 3, 255, 6, 17, 18, 255, 10};
    uint16_t lab[10 * 3];
    for (int i = 0; i < 10; i++) {
        lab[i * 3] = cls[i];
        lab[i * 3 + 1] = (uint16_t)(1000 + i * 77);
        lab[i * 3 + 2] = 7;
    }
    sd_image l = {.w = 5, .h = 2, .c = 3, .depth = 16, .data = lab};
    CHECK_OK(sd_png_write(tp("syn/GT/LABELS/0000000.png", ""), &l));
    write_rgb(tp("syn/RGB/0000000.png", ""), 5, 2, 9);
    lab[3 * 3] = 40; /* unknown SYNTHIA id */
    CHECK_OK(sd_png_write(tp("syn/GT/LABELS/0000001.png", ""), &l));
    write_rgb(tp("syn/RGB/0000001.png", ""), 5, 2, 9);

    char spec[600];
    snprintf(spec, sizeof spec, "synthia:%s/syn", dir);
    for (int lm = 0; lm < 2; lm++) {
        sd_dataset ds;
        sd_dataset_opts o = {.synthia_lanemarking_as_road = lm};
        CHECK_OK(sd_dataset_open(&ds, spec, NULL, &o));
        CHECK(ds.n == 2);
        sd_sample s;
        CHECK_OK(sd_dataset_read(&ds, 0, &s));
        CHECK(s.lw == 5 && s.lh == 2 && !strcmp(s.stem, "0000000"));
        if (s.label) {
            for (int i = 0; i < 10; i++) {
                int expect = (i == 4 && lm) ? 0 : want[i];
                CHECK_MSG(s.label[i] == expect, "lanemarking=%d pixel %d: %d, expected %d", lm, i, s.label[i], expect);
            }
        }
        sd_sample_free(&s);
        if (ds.n == 2) {
            CHECK(sd_dataset_read(&ds, 1, &s) == SD_ERR_DATA);
            CHECK_ERR_HAS("LABELS/0000001.png: unknown label id 40 at x=3 y=0");
        }
        sd_dataset_free(&ds);
    }
}

/* ---- Cityscapes ---- */

static void cs_pair(const char *split, const char *city, const char *stem, bool label)
{
    char d[512], p[700];
    snprintf(d, sizeof d, "%s/cs/leftImg8bit/%s/%s", dir, split, city);
    mkdirs(d);
    snprintf(p, sizeof p, "%s/%s_leftImg8bit.png", d, stem);
    write_rgb(p, 4, 3, 5);
    snprintf(d, sizeof d, "%s/cs/gtFine/%s/%s", dir, split, city);
    mkdirs(d);
    if (label) {
        snprintf(p, sizeof p, "%s/%s_gtFine_labelIds.png", d, stem);
        write_ids(p, 4, 3, gta_ids);
        /* decoys the reader must ignore */
        snprintf(p, sizeof p, "%s/%s_gtFine_color.png", d, stem);
        write_rgb(p, 4, 3, 1);
        snprintf(p, sizeof p, "%s/%s_gtFine_instanceIds.png", d, stem);
        write_ids(p, 4, 3, gta_ids);
    }
}

static void test_cityscapes(void)
{
    cs_pair("train", "bochum", "bochum_000000_000313", true);
    cs_pair("train", "aachen", "aachen_000001_000019", true);
    cs_pair("train", "aachen", "aachen_000000_000019", true);
    cs_pair("val", "frankfurt", "frankfurt_000000_000294", true);
    cs_pair("test", "berlin", "berlin_000000_000019", false);
    cs_pair("test", "berlin", "berlin_000001_000019", false);

    char spec[600];
    snprintf(spec, sizeof spec, "cityscapes:%s/cs", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 3 && !strcmp(ds.split, "train"));
    if (ds.n == 3) {
        CHECK(!strcmp(ds.samples[0].stem, "aachen_000000_000019"));
        CHECK(!strcmp(ds.samples[1].stem, "aachen_000001_000019"));
        CHECK(!strcmp(ds.samples[2].stem, "bochum_000000_000313"));
        CHECK(strstr(ds.samples[2].label_path, "gtFine/train/bochum/bochum_000000_000313_gtFine_labelIds.png") != NULL);
        sd_sample s;
        CHECK_OK(sd_dataset_read(&ds, 1, &s));
        CHECK(s.label && !memcmp(s.label, gta_train, 12));
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);

    snprintf(spec, sizeof spec, "cityscapes:%s/cs:val", dir);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 1 && !strcmp(ds.split, "val"));
    sd_dataset_free(&ds);

    /* root from the environment, split as an argument; test has no labels */
    setenv("CITYSCAPES_DATASET", tp("cs", ""), 1);
    CHECK_OK(sd_dataset_open(&ds, "cityscapes:", "test", NULL));
    CHECK(ds.n == 2 && !ds.has_labels && ds.n_problems == 0);
    if (ds.n == 2) {
        sd_sample s;
        CHECK_OK(sd_dataset_read(&ds, 1, &s));
        CHECK(s.image && !s.label && !strcmp(s.stem, "berlin_000001_000019"));
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);
    unsetenv("CITYSCAPES_DATASET");
    CHECK(sd_dataset_open(&ds, "cityscapes", NULL, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("CITYSCAPES_DATASET is not set");
    CHECK(sd_dataset_open(&ds, spec, "extra", NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("split \"extra\" (expected train, val or test)");
    CHECK(sd_dataset_open(&ds, "kitti:/x", NULL, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("unknown kind \"kitti\"");
    CHECK(sd_dataset_open(&ds, "gta5:/nonexistent/segda", NULL, NULL) == SD_ERR_IO);
    CHECK_ERR_HAS("/nonexistent/segda is not a directory");
}

/* ---- folder ---- */

static void test_folder(void)
{
    mkdirs(tp("fold/images", ""));
    mkdirs(tp("fold/labels", ""));
    uint8_t rgb[4 * 3 * 3];
    for (int i = 0; i < 36; i++)
        rgb[i] = (uint8_t)(i * 7);
    CHECK_OK(sd_jpeg_write(tp("fold/images/b.jpg", ""), rgb, 4, 3, 90));
    write_rgb(tp("fold/images/a.png", ""), 4, 3, 1);
    static const uint8_t lab[12] = {1, 2, 5, 1, 2, 5, 1, 2, 5, 1, 2, 3};
    write_ids(tp("fold/labels/a.png", ""), 4, 3, lab);
    write_ids(tp("fold/labels/b.png", ""), 4, 3, lab);
    FILE *f = fopen(tp("fold/mapping.txt", ""), "w");
    if (f) {
        fputs("# Mapillary-like ids\n1 0\n2 13   # car\n\n5 255\n", f);
        fclose(f);
    }
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s/fold", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 2);
    if (ds.n == 2) {
        CHECK(!strcmp(ds.samples[0].stem, "a") && !strcmp(ds.samples[1].stem, "b"));
        sd_sample s;
        CHECK(sd_dataset_read(&ds, 1, &s) == SD_ERR_DATA);
        CHECK_ERR_HAS("labels/b.png: unknown label id 3 at x=3 y=2");
        ds.allow_unknown_ids = true;
        CHECK_OK(sd_dataset_read(&ds, 1, &s));
        CHECK(s.w == 4 && s.h == 3);
        if (s.label)
            CHECK(s.label[0] == 0 && s.label[1] == 13 && s.label[2] == 255 && s.label[11] == 255);
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);
    f = fopen(tp("fold/mapping.txt", ""), "w");
    if (f) {
        fputs("1 0\n2 40\n", f);
        fclose(f);
    }
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("mapping.txt:2: train id 40 is neither 0..18 nor 255");
}

/* ---- CamVid: SegNet's 11-class layout and the 32-class colour original ---- */
static void test_camvid(void)
{
    /* SegNet: train/ + trainannot/ (indices 0..11), val/ + valannot/ */
    static const char *const splits[2] = {"train", "val"};
    static const uint8_t idx[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    for (int k = 0; k < 2; k++) {
        char sub[64];
        snprintf(sub, sizeof sub, "cv11/%s", splits[k]);
        mkdirs(tp("%s", sub));
        snprintf(sub, sizeof sub, "cv11/%sannot", splits[k]);
        mkdirs(tp("%s", sub));
        snprintf(sub, sizeof sub, "cv11/%s/0001TP_00%d.png", splits[k], k);
        write_rgb(tp("%s", sub), 4, 3, k);
        snprintf(sub, sizeof sub, "cv11/%sannot/0001TP_00%d.png", splits[k], k);
        write_ids(tp("%s", sub), 4, 3, idx);
    }
    char spec[600];
    snprintf(spec, sizeof spec, "camvid:%s/cv11:val", dir);
    sd_dataset ds;
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 1 && !strcmp(ds.split, "val") && !ds.camvid_color);
    sd_sample s;
    if (ds.n == 1) {
        CHECK_OK(sd_dataset_read(&ds, 0, &s));
        /* Sky Building Pole Road Sidewalk Tree Sign Fence Car Pedestrian Bicyclist Unlabelled */
        static const uint8_t want[12] = {10, 2, 5, 0, 1, 8, 7, 4, 13, 11, 255, 255};
        CHECK(s.label && !memcmp(s.label, want, 12));
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);
    snprintf(spec, sizeof spec, "camvid:%s/cv11", dir);   /* default split: train */
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 1 && !strcmp(ds.split, "train"));
    sd_dataset_free(&ds);
    CHECK(sd_dataset_open(&ds, spec, "test", NULL) == SD_ERR_IO);
    CHECK_ERR_HAS("cv11/test: no such directory");
    /* an index outside SegNet's 0..11 names file and pixel */
    static const uint8_t bad[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12};
    write_ids(tp("cv11/trainannot/0001TP_000.png", ""), 4, 3, bad);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(sd_dataset_read(&ds, 0, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("trainannot/0001TP_000.png: unknown label id 12 at x=3 y=2");
    sd_dataset_free(&ds);

    /* the 32-class original: test/ + test_labels/NAME_L.png in label_colors.txt colours */
    mkdirs(tp("cv32/test", ""));
    mkdirs(tp("cv32/test_labels", ""));
    write_rgb(tp("cv32/test/Seq05VD_f00000.png", ""), 4, 3, 3);
    sd_image im;
    sd_image_alloc(&im, 4, 3, 3, 8);
    static const char *const names[12] = {"Road", "LaneMkgsDriv", "Sidewalk", "Building", "Wall", "Column_Pole",
                                          "TrafficLight", "VegetationMisc", "Truck_Bus", "Bicyclist", "Void",
                                          "Sky"};
    static const uint8_t want32[12] = {0, 0, 1, 2, 3, 5, 6, 9, 15, 255, 255, 10};
    for (int i = 0; i < 12; i++)
        for (int k = 0; k < SD_CAMVID32_N; k++)
            if (!strcmp(sd_camvid32[k].name, names[i]))
                memcpy((uint8_t *)im.data + 3 * i, sd_camvid32[k].color, 3);
    CHECK_OK(sd_png_write(tp("cv32/test_labels/Seq05VD_f00000_L.png", ""), &im));
    snprintf(spec, sizeof spec, "camvid:%s/cv32:test", dir);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.n == 1 && ds.camvid_color);
    if (ds.n == 1) {
        CHECK_OK(sd_dataset_read(&ds, 0, &s));
        CHECK(s.label && !memcmp(s.label, want32, 12));
        sd_sample_free(&s);
        /* a colour outside the table names file and pixel; --allow-unknown-ids ignores it */
        ((uint8_t *)im.data)[3 * 5] = 1;
        CHECK_OK(sd_png_write(tp("cv32/test_labels/Seq05VD_f00000_L.png", ""), &im));
        CHECK(sd_dataset_read(&ds, 0, &s) == SD_ERR_DATA);
        CHECK_ERR_HAS("Seq05VD_f00000_L.png: colour (1, 192, 128) at x=1 y=1 is not in CamVid's 32-class table");
        ds.allow_unknown_ids = true;
        CHECK_OK(sd_dataset_read(&ds, 0, &s));
        CHECK(s.label && s.label[5] == 255 && s.label[4] == 3);
        sd_sample_free(&s);
    }
    sd_dataset_free(&ds);
    sd_image_free(&im);
    /* a gray label where colours are expected */
    write_ids(tp("cv32/test_labels/Seq05VD_f00000_L.png", ""), 4, 3, idx);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(sd_dataset_read(&ds, 0, &s) == SD_ERR_DATA);
    CHECK_ERR_HAS("expected CamVid's 8-bit RGB label colours");
    sd_dataset_free(&ds);
    /* the CamVid protocol: its 10 shared classes */
    CHECK(sd_protocol_parse("camvid") == SD_PROTOCOL_CAMVID && sd_protocols[SD_PROTOCOL_CAMVID].n == 10);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/segda-test-data-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    sd_log_set_level(0);
    RUN(test_gta5);
    RUN(test_gta5_broken);
    RUN(test_synthia);
    RUN(test_cityscapes);
    RUN(test_folder);
    RUN(test_camvid);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TESTS_DONE();
}
