/* Tests `segda check-data` end to end ($SEGDA_BIN, else build/segda) on a
 * GTA5-layout fixture with one of each problem: truncated label, 16-bit
 * label, size mismatch, image without label, label without image, unknown
 * id. Each must be reported, the exit status must be 1 (0 with --skip-bad),
 * and the class table must count the good pixels. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "segda/image.h"

static char dir[256];
static const char *bin;

static void put_rgb(const char *rel, int w, int h)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    sd_image im;
    sd_image_alloc(&im, w, h, 3, 8);
    memset(im.data, 90, (size_t)w * h * 3);
    CHECK_OK(sd_png_write(p, &im));
    sd_image_free(&im);
}

static void put_label(const char *rel, int w, int h, int depth, unsigned id, unsigned id2)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    sd_image im;
    sd_image_alloc(&im, w, h, 1, depth);
    for (int i = 0; i < w * h; i++) {
        unsigned v = i == 0 ? id2 : id;
        if (depth == 8)
            ((uint8_t *)im.data)[i] = (uint8_t)v;
        else
            ((uint16_t *)im.data)[i] = (uint16_t)v;
    }
    CHECK_OK(sd_png_write(p, &im));
    sd_image_free(&im);
}

static char out[65536];

static int run(const char *args)
{
    char cmd[1024], log[300];
    snprintf(log, sizeof log, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "%s check-data %s > %s 2>&1", bin, args, log);
    int st = system(cmd);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define HAS(s) CHECK_MSG(strstr(out, (s)) != NULL, "output lacks \"%s\":\n%s", (s), out)

static void test_check_data_broken(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/g", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/g/images", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/g/labels", dir);
    mkdir(p, 0755);
    put_rgb("g/images/00001.png", 4, 3);
    put_label("g/labels/00001.png", 4, 3, 8, 7, 26); /* 11 road + 1 car */
    put_rgb("g/images/00002.png", 4, 3);
    put_label("g/labels/00002.png", 40, 30, 8, 7, 7);
    snprintf(p, sizeof p, "%s/g/labels/00002.png", dir);
    CHECK(truncate(p, 60) == 0);
    put_rgb("g/images/00003.png", 4, 3);
    put_label("g/labels/00003.png", 4, 3, 16, 7, 7);
    put_rgb("g/images/00004.png", 4, 3);
    put_label("g/labels/00004.png", 2, 2, 8, 8, 8); /* 4 sidewalk pixels, wrong size */
    put_rgb("g/images/00005.png", 4, 3);
    put_rgb("g/images/00006.png", 4, 3);
    put_label("g/labels/00006.png", 4, 3, 8, 7, 200);
    put_label("g/labels/00007.png", 4, 3, 8, 7, 7);

    char args[600];
    snprintf(args, sizeof args, "gta5:%s/g --json %s/r.json --threads 2", dir, dir);
    CHECK(run(args) == 1);
    HAS("5 samples listed");
    HAS("ERROR: 2 incomplete pairs");
    HAS("images/00005.png: image has no label");
    HAS("labels/00007.png: label has no image");
    HAS("ERROR: 2 unreadable samples");
    HAS("labels/00002.png: truncated PNG");
    HAS("labels/00003.png: label has bit depth 16");
    HAS("ERROR: 1 label file with ids outside the gta5 table");
    HAS("labels/00006.png: 1 pixels, ids 200");
    HAS("WARNING: 1 image/label size mismatch");
    HAS("00004: image 4x3, label 2x2");
    /* road: 11 (00001) + 11 (00006); car 1; sidewalk 4 */
    HAS("0   road                       22");
    HAS("1   sidewalk                    4");
    HAS("13  car                         1");
    HAS("5 problems found");
    snprintf(p, sizeof p, "%s/r.json", dir);
    FILE *f = fopen(p, "r");
    CHECK(f != NULL);
    if (f) {
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = 0;
        fclose(f);
        HAS("\"samples\": 5");
        HAS("\"counts\": {\"bad\": 2, \"unknown_id_files\": 1, \"size_mismatches\": 1}");
        HAS("\"ids\": [200]");
        HAS("{\"train_id\": 13, \"name\": \"car\", \"pixels\": 1,");
    }
    snprintf(args, sizeof args, "gta5:%s/g --skip-bad", dir);
    CHECK(run(args) == 0);
    HAS("2 incomplete pairs and 3 bad samples are skipped, 2 remain");
    CHECK(run("--bogus") == 2);
    CHECK(run("--help") == 0);
    HAS("usage: segda check-data SPEC");
    CHECK(run("gta5:/nonexistent/segda-x") == 1);
    HAS("/nonexistent/segda-x is not a directory");
}

int main(void)
{
    bin = getenv("SEGDA_BIN");
    if (!bin || !*bin)
        bin = "build/segda";
    if (access(bin, X_OK) != 0) {
        printf("SKIP test_check_data_broken (no %s)\n", bin);
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/segda-test-check-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_check_data_broken);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TESTS_DONE();
}
