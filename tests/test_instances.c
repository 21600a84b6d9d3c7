/* Tests for src/data/instances.c: decoding Cityscapes instanceIds (hand-made
 * maps with known boxes and areas), the round trip through a 16-bit PNG, the
 * label cross-check and the errors for ids that decode to no class. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util.h"
#include "segda/image.h"
#include "segda/instances.h"

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

int main(void)
{
    RUN(test_decode);
    RUN(test_bad_ids);
    RUN(test_png_roundtrip);
    TESTS_DONE();
}
