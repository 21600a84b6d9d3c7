/* The TensorBoard writer's C side (tfevents.h): CRC-32C and its mask
 * against values computed independently (tests/py/test_tfevents.py's
 * bitwise CRC), the TFRecord frames of a file (lengths, CRCs, the record
 * count), a scalar's exact bytes, and the errors. The full decode of a run's
 * file is tests/py/test_tfevents.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "segda/tfevents.h"
#include "util.h"

static char dir[] = "/tmp/segda_tfev_XXXXXX";

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void test_crc32c(void)
{
    CHECK(sd_crc32c(0, "123456789", 9) == 0xe3069283u);
    CHECK(sd_crc32c_mask(0xe3069283u) == 0xc78ab0e5u);
    uint8_t len42[8] = {42};
    CHECK(sd_crc32c_mask(sd_crc32c(0, len42, 8)) == 0xf5918daeu);
    /* continuing a CRC over a split buffer gives the CRC of the whole */
    CHECK(sd_crc32c(sd_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283u);
}

static void test_frames_and_scalar_bytes(void)
{
    sd_tb *tb;
    CHECK_OK(sd_tb_open(&tb, test_path(dir, "a/b")));
    if (!tb)
        return;
    char path[4200];
    snprintf(path, sizeof path, "%s", sd_tb_path(tb));
    CHECK(strstr(path, "/a/b/events.out.tfevents.") != NULL);
    CHECK_OK(sd_tb_scalar(tb, "loss/x", 7, 0.5));
    sd_image img;
    CHECK_OK(sd_image_alloc(&img, 3, 2, 3, 8));
    memset(img.data, 200, 18);
    CHECK_OK(sd_tb_image(tb, "im", 7, &img));
    CHECK_OK(sd_tb_session_start(tb, 8));
    img.depth = 16;
    CHECK(sd_tb_image(tb, "im", 7, &img) != SD_OK);
    CHECK_ERR_HAS("8-bit");
    img.depth = 8;
    sd_image_free(&img);
    CHECK_OK(sd_tb_close(tb));
    size_t n = 0;
    uint8_t *b = test_slurp(path, &n);
    CHECK(b != NULL);
    int records = 0;
    size_t i = 0;
    const uint8_t *scalar = NULL;
    size_t scalar_n = 0;
    while (b && i + 12 <= n) {
        uint64_t len = le32(b + i) | (uint64_t)le32(b + i + 4) << 32;
        CHECK(sd_crc32c_mask(sd_crc32c(0, b + i, 8)) == le32(b + i + 8));
        if (i + 16 + len > n)
            break;
        CHECK(sd_crc32c_mask(sd_crc32c(0, b + i + 12, len)) == le32(b + i + 12 + len));
        if (records == 1)
            scalar = b + i + 12, scalar_n = len;
        records++;
        i += 16 + len;
    }
    CHECK_MSG(records == 4 && i == n, "%d records, %zu of %zu bytes framed", records, i, n);
    /* Event{wall_time (9 bytes: key 0x09 + double), step 7, summary{value{tag "loss/x", simple_value 0.5}}} */
    static const uint8_t tail[] = {0x10, 0x07, 0x2a, 0x0f, 0x0a, 0x0d, 0x0a, 0x06, 'l', 'o', 's',
                                   's',  '/',  'x',  0x15, 0x00, 0x00, 0x00, 0x3f};
    CHECK(scalar && scalar_n == 9 + sizeof tail && scalar[0] == 0x09 && !memcmp(scalar + 9, tail, sizeof tail));
    free(b);
}

static void test_errors(void)
{
    /* a file where the directory should be */
    const char *f = test_path(dir, "file");
    fclose(fopen(f, "w"));
    sd_tb *tb = (sd_tb *)1;
    CHECK(sd_tb_open(&tb, test_path(dir, "file/tb")) != SD_OK && tb == NULL);
    CHECK_ERR_HAS("file/tb");
    CHECK_OK(sd_tb_close(NULL));
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_crc32c);
    RUN(test_frames_and_scalar_bytes);
    RUN(test_errors);
    test_sh("rm -rf %s", dir);
    TESTS_DONE();
}
