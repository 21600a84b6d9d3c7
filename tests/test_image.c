/* Tests for src/io/image.c: round trips for every PNG layout the datasets
 * use, a PNG assembled byte by byte here (independent of libpng) to pin the
 * 16-bit byte order and palette handling, JPEG, and the error messages for
 * missing, truncated, corrupt and non-image files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/image.h"

static char dir[256];

static const char *tpath(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) & 3;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(b, 1, n, f);
    fclose(f);
}


/* ---- a minimal PNG encoder: stored (uncompressed) deflate blocks ---- */

static uint32_t crc_table[256];
static uint32_t crc32_of(const uint8_t *b, size_t n, uint32_t crc)
{
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static size_t put32(uint8_t *o, uint32_t v)
{
    o[0] = v >> 24, o[1] = v >> 16, o[2] = v >> 8, o[3] = v;
    return 4;
}

static size_t put_chunk(uint8_t *o, const char *type, const uint8_t *data, uint32_t n)
{
    size_t k = put32(o, n);
    memcpy(o + k, type, 4);
    if (n)
        memcpy(o + k + 4, data, n);
    k += 4 + n;
    k += put32(o + k, crc32_of(o + 4, 4 + n, 0));
    return k;
}

/* raw: filtered scanlines (filter byte 0 + row), n < 65536. */
static size_t hand_png(uint8_t *o, int w, int h, int depth, int color, const uint8_t *raw, size_t n,
                       const uint8_t *plte, int n_plte)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t k = 0;
    memcpy(o, sig, 8);
    k = 8;
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth, ihdr[9] = (uint8_t)color, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
    k += put_chunk(o + k, "IHDR", ihdr, 13);
    if (plte)
        k += put_chunk(o + k, "PLTE", plte, (uint32_t)n_plte * 3);
    uint8_t z[70000];
    size_t m = 0;
    z[m++] = 0x78, z[m++] = 0x01;
    z[m++] = 1; /* final stored block */
    z[m++] = n & 0xff, z[m++] = n >> 8, z[m++] = ~n & 0xff, z[m++] = (~n >> 8) & 0xff;
    memcpy(z + m, raw, n);
    m += n;
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++)
        a = (a + raw[i]) % 65521, b = (b + a) % 65521;
    m += put32(z + m, (b << 16) | a);
    k += put_chunk(o + k, "IDAT", z, (uint32_t)m);
    k += put_chunk(o + k, "IEND", NULL, 0);
    return k;
}

static void test_hand_png_16bit_rgb(void)
{
    /* 2x1 RGB 16-bit: big-endian samples in the file, host order after decode */
    uint8_t raw[] = {0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xff, 0xfe, 0x00, 0x16, 0x80, 0x00};
    uint8_t png[256];
    size_t n = hand_png(png, 2, 1, 16, 2, raw, sizeof raw, NULL, 0);
    sd_image img;
    CHECK_OK(sd_image_decode(png, n, "hand.png", &img, false));
    CHECK(img.w == 2 && img.h == 1 && img.c == 3 && img.depth == 16);
    if (img.data) {
        const uint16_t *p = img.data;
        CHECK(p[0] == 0x0102 && p[1] == 0x0304 && p[2] == 0x0506);
        CHECK(p[3] == 0xfffe && p[4] == 0x0016 && p[5] == 0x8000);
    }
    sd_image_free(&img);
}

static void test_hand_png_palette(void)
{
    /* 3x2 palette image, 8-bit indices 0..2 */
    uint8_t plte[9] = {10, 20, 30, 128, 64, 128, 255, 0, 0};
    uint8_t raw[] = {0, 0, 1, 2, 0, 2, 2, 1};
    uint8_t png[256];
    size_t n = hand_png(png, 3, 2, 8, 3, raw, sizeof raw, plte, 3);
    sd_image img;
    CHECK_OK(sd_image_decode(png, n, "pal.png", &img, true));
    CHECK(img.c == 1 && img.depth == 8 && img.w == 3 && img.h == 2);
    if (img.data) {
        const uint8_t *p = img.data;
        CHECK(p[0] == 0 && p[1] == 1 && p[2] == 2 && p[3] == 2 && p[4] == 2 && p[5] == 1);
    }
    sd_image_free(&img);
    CHECK_OK(sd_image_decode(png, n, "pal.png", &img, false));
    CHECK(img.c == 3 && img.depth == 8);
    if (img.data) {
        const uint8_t *p = img.data;
        CHECK(p[0] == 10 && p[1] == 20 && p[2] == 30);     /* index 0 */
        CHECK(p[3] == 128 && p[4] == 64 && p[5] == 128);   /* index 1 */
        CHECK(p[15] == 128 && p[16] == 64 && p[17] == 128); /* (2,1) = index 1 */
    }
    sd_image_free(&img);
}

static void test_hand_png_grey_1bit(void)
{
    /* 8x1 1-bit grey 0b10110001 expands to 0/255 */
    uint8_t raw[] = {0, 0xb1};
    uint8_t png[256];
    size_t n = hand_png(png, 8, 1, 1, 0, raw, sizeof raw, NULL, 0);
    sd_image img;
    CHECK_OK(sd_image_decode(png, n, "bits.png", &img, false));
    CHECK(img.c == 1 && img.depth == 8 && img.w == 8);
    if (img.data) {
        const uint8_t *p = img.data;
        const uint8_t want[8] = {255, 0, 255, 255, 0, 0, 0, 255};
        CHECK(!memcmp(p, want, 8));
    }
    sd_image_free(&img);
}

static void roundtrip(int w, int h, int c, int depth)
{
    sd_image a, b;
    CHECK_OK(sd_image_alloc(&a, w, h, c, depth));
    size_t n = (size_t)w * h * c;
    for (size_t i = 0; i < n; i++) {
        if (depth == 8)
            ((uint8_t *)a.data)[i] = (uint8_t)(i * 37 + 11);
        else
            ((uint16_t *)a.data)[i] = (uint16_t)(i * 2654435761u >> 7);
    }
    const char *p = tpath("rt.png");
    CHECK_OK(sd_png_write(p, &a));
    char tname[64];
    snprintf(tname, sizeof tname, "rt.png.tmp.%d", (int)getpid());
    CHECK(access(tpath(tname), F_OK) != 0); /* renamed into place */
    int iw, ih, ic, id;
    CHECK_OK(sd_image_info(p, &iw, &ih, &ic, &id));
    CHECK(iw == w && ih == h && ic == c && id == depth);
    CHECK_OK(sd_image_read(p, &b, false));
    CHECK_MSG(b.w == w && b.h == h && b.c == c && b.depth == depth, "%dx%dx%d/%d", b.w, b.h, b.c, b.depth);
    if (b.data && a.data)
        CHECK_MSG(!memcmp(a.data, b.data, n * (depth / 8)), "pixels differ for c=%d depth=%d", c, depth);
    sd_image_free(&a);
    sd_image_free(&b);
}

static void test_png_roundtrip(void)
{
    for (int c = 1; c <= 4; c++) {
        roundtrip(17, 5, c, 8);
        roundtrip(3, 11, c, 16);
    }
    roundtrip(1, 1, 3, 8);
}

static void test_png_palette_write(void)
{
    uint8_t pal[3][3] = {{0, 0, 0}, {128, 64, 128}, {70, 130, 180}};
    uint8_t idx[6] = {0, 1, 2, 2, 1, 0};
    const char *p = tpath("pal.png");
    CHECK_OK(sd_png_write_palette(p, idx, 3, 2, (const uint8_t(*)[3])pal, 3));
    sd_image img;
    CHECK_OK(sd_image_read(p, &img, true));
    CHECK(img.c == 1 && img.data && !memcmp(img.data, idx, 6));
    sd_image_free(&img);
    CHECK_OK(sd_image_read(p, &img, false));
    CHECK(img.c == 3);
    if (img.data) {
        const uint8_t *q = img.data;
        CHECK(q[3] == 128 && q[4] == 64 && q[5] == 128 && q[6] == 70 && q[7] == 130 && q[8] == 180);
    }
    sd_image_free(&img);
    idx[2] = 7;
    CHECK(sd_png_write_palette(p, idx, 3, 2, (const uint8_t(*)[3])pal, 3) == SD_ERR_ARG);
    CHECK_ERR_HAS("index 7 outside the 3-colour palette");
}

static void test_jpeg_roundtrip(void)
{
    int w = 120, h = 72;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *q = rgb + ((size_t)y * w + x) * 3;
            q[0] = (uint8_t)(60 + x), q[1] = (uint8_t)(40 + 2 * y), q[2] = 100;
        }
    const char *p = tpath("a.jpg");
    CHECK_OK(sd_jpeg_write(p, rgb, w, h, 95));
    sd_image img;
    CHECK_OK(sd_image_read(p, &img, false));
    CHECK(img.w == w && img.h == h && img.c == 3 && img.depth == 8);
    if (img.data) {
        int maxerr = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) {
            int d = abs((int)((uint8_t *)img.data)[i] - rgb[i]);
            maxerr = d > maxerr ? d : maxerr;
        }
        CHECK_MSG(maxerr <= 8, "max JPEG error %d", maxerr);
    }
    sd_image_free(&img);
    /* truncated JPEG must fail rather than come back half grey */
    size_t n;
    uint8_t *b = test_slurp(p, &n);
    CHECK(b != NULL);
    if (b) {
        /* in the headers and in the entropy-coded scan */
        size_t cuts[2] = {200, n - 40};
        for (int i = 0; i < 2; i++) {
            write_bytes(tpath("cut.jpg"), b, cuts[i]);
            CHECK(sd_image_read(tpath("cut.jpg"), &img, false) == SD_ERR_FORMAT);
            CHECK_ERR_HAS("cut.jpg: truncated JPEG");
        }
        free(b);
    }
    free(rgb);
}

static void test_errors(void)
{
    sd_image img;
    CHECK(sd_image_read(tpath("nope.png"), &img, false) == SD_ERR_IO);
    CHECK_ERR_HAS("nope.png: cannot open");
    CHECK(img.data == NULL);

    write_bytes(tpath("text.png"), (const uint8_t *)"hello, world\n", 13);
    CHECK(sd_image_read(tpath("text.png"), &img, false) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("text.png: not an image");

    write_bytes(tpath("empty.png"), (const uint8_t *)"", 0);
    CHECK(sd_image_read(tpath("empty.png"), &img, false) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("empty.png: empty file");

    sd_image a;
    CHECK_OK(sd_image_alloc(&a, 64, 32, 3, 8));
    for (size_t i = 0; i < 64 * 32 * 3; i++)
        ((uint8_t *)a.data)[i] = (uint8_t)(i * 7919 >> 3);
    CHECK_OK(sd_png_write(tpath("ok.png"), &a));
    sd_image_free(&a);
    size_t n;
    uint8_t *b = test_slurp(tpath("ok.png"), &n);
    CHECK(b != NULL && n > 100);
    if (!b)
        return;
    /* cut in the middle of IDAT, just before IEND, and inside the signature */
    size_t cuts[3] = {n / 2, n - 6, 5};
    for (int i = 0; i < 3; i++) {
        write_bytes(tpath("cut.png"), b, cuts[i]);
        CHECK(sd_image_read(tpath("cut.png"), &img, false) == SD_ERR_FORMAT);
        CHECK_ERR_HAS("cut.png: truncated PNG");
        CHECK(img.data == NULL);
    }
    /* a flipped byte inside IDAT: CRC mismatch */
    b[60] ^= 0x5a;
    write_bytes(tpath("bad.png"), b, n);
    CHECK(sd_image_read(tpath("bad.png"), &img, false) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("bad.png: corrupt PNG");
    b[60] ^= 0x5a;
    /* IHDR claims a huge image: refused before allocating */
    b[16] = 0x00, b[17] = 0x01, b[18] = 0x00, b[19] = 0x00; /* width 65536 */
    uint32_t crc = crc32_of(b + 12, 17, 0);
    put32(b + 29, crc);
    CHECK(sd_image_decode(b, n, "huge.png", &img, false) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("huge.png: corrupt PNG");
    free(b);

    int w;
    CHECK(sd_image_info(tpath("text.png"), &w, NULL, NULL, NULL) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("not an image");
    CHECK(sd_png_write(tpath("x/y/z.png"), &(sd_image){.w = 1, .h = 1, .c = 3, .depth = 8, .data = "abc"}) ==
          SD_ERR_IO);
    CHECK_ERR_HAS("cannot create");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/segda-test-image-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_hand_png_16bit_rgb);
    RUN(test_hand_png_palette);
    RUN(test_hand_png_grey_1bit);
    RUN(test_png_roundtrip);
    RUN(test_png_palette_write);
    RUN(test_jpeg_roundtrip);
    RUN(test_errors);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TESTS_DONE();
}
