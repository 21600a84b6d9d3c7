/* Tests for src/data/transform.c with hand-derived values: PIL-convention
 * bilinear/bicubic/nearest resizes, crop boxes in full-image coordinates,
 * padding, flip, both normalisation conventions (norm.c), jitter and blur. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "segda/transform.h"

static void test_resize_values(void)
{
    /* PIL: Image.resize((4,1), BILINEAR) of [0, 100] is [0, 25, 75, 100] */
    uint8_t a[2] = {0, 100}, o[4];
    CHECK_OK(sd_resize_u8(a, 2, 1, 1, o, 4, 1, SD_INTERP_BILINEAR));
    CHECK_MSG(o[0] == 0 && o[1] == 25 && o[2] == 75 && o[3] == 100, "%d %d %d %d", o[0], o[1], o[2], o[3]);
    /* bicubic a=-0.5: 100*0.2265625/1.09375 = 20.71 -> 21; at the ends the
     * renormalised kernel over- and undershoots: -8.8 clips to 0, 108.8 -> 109
     * (PIL 9 gives [0 21 79 109] too) */
    CHECK_OK(sd_resize_u8(a, 2, 1, 1, o, 4, 1, SD_INTERP_BICUBIC));
    CHECK_MSG(o[0] == 0 && o[1] == 21 && o[2] == 79 && o[3] == 109, "%d %d %d %d", o[0], o[1], o[2], o[3]);
    /* shrinking widens the triangle to support 2: (75 + 50) / 1.75 = 71.4, (25 + 150 + 37.5) / 1.75 = 121.4 */
    uint8_t b[4] = {0, 100, 200, 50}, p[2];
    CHECK_OK(sd_resize_u8(b, 4, 1, 1, p, 2, 1, SD_INTERP_BILINEAR));
    CHECK_MSG(p[0] == 71 && p[1] == 121, "%d %d", p[0], p[1]);
    /* the same along y, on 3 channels */
    uint8_t col[4 * 3], q[2 * 3];
    for (int i = 0; i < 4; i++)
        col[3 * i] = col[3 * i + 1] = col[3 * i + 2] = b[i];
    CHECK_OK(sd_resize_u8(col, 1, 4, 3, q, 1, 2, SD_INTERP_BILINEAR));
    CHECK(q[0] == 71 && q[2] == 71 && q[3] == 121 && q[5] == 121);
    /* nearest, PIL's floor((i + 0.5) * in / out): 3 -> 2 keeps 0 and 2 */
    uint8_t c[3] = {5, 6, 7}, r[2];
    CHECK_OK(sd_resize_u8(c, 3, 1, 1, r, 2, 1, SD_INTERP_NEAREST));
    CHECK(r[0] == 5 && r[1] == 7);
    /* a constant image stays constant under every filter and size */
    uint8_t k[35 * 3], big[70 * 21];
    memset(k, 77, sizeof k);
    for (int f = 0; f < SD_INTERP_COUNT; f++) {
        CHECK_OK(sd_resize_u8(k, 35, 3, 1, big, 70, 21, (sd_interp)f));
        int ok = 1;
        for (int i = 0; i < 70 * 21; i++)
            ok &= big[i] == 77;
        CHECK_MSG(ok, "filter %d changed a constant image", f);
    }
    CHECK(sd_resize_u8(a, 2, 1, 1, o, 0, 1, SD_INTERP_BILINEAR) == SD_ERR_ARG);
    CHECK_ERR_HAS("resize: 2x1x1 -> 0x1");
}

static void test_normalize(void)
{
    uint8_t px[6] = {10, 20, 30, 255, 0, 128};
    float o[6];
    sd_normalize(px, 2, 1, &sd_norm_caffe, o);
    /* BGR: channel 0 is blue minus 104.00698793 */
    CHECK_NEAR(o[0], 30 - 104.00698793, 1e-5);
    CHECK_NEAR(o[1], 128 - 104.00698793, 1e-5);
    CHECK_NEAR(o[2], 20 - 116.66876762, 1e-5);
    CHECK_NEAR(o[4], 10 - 122.67891434, 1e-5);
    CHECK_NEAR(o[5], 255 - 122.67891434, 1e-5);
    sd_normalize(px, 2, 1, &sd_norm_torchvision, o);
    CHECK_NEAR(o[0], (10 / 255.0 - 0.485) / 0.229, 1e-5);
    CHECK_NEAR(o[1], (255 / 255.0 - 0.485) / 0.229, 1e-5);
    CHECK_NEAR(o[3], (0 - 0.456) / 0.224, 1e-5);
    CHECK_NEAR(o[4], (30 / 255.0 - 0.406) / 0.225, 1e-5);
    uint8_t f[3];
    sd_norm_fill(&sd_norm_caffe, f);
    CHECK(f[0] == 123 && f[1] == 117 && f[2] == 104);
    sd_norm_fill(&sd_norm_torchvision, f);
    CHECK(f[0] == 124 && f[1] == 116 && f[2] == 104);
    /* the checkpoint names and their parameters */
    CHECK(sd_norm_params_of(SD_NORM_CAFFE) == &sd_norm_caffe);
    CHECK(sd_norm_params_of(SD_NORM_IMAGENET) == &sd_norm_torchvision);
    CHECK(sd_norm_params_of(SD_NORM_COUNT) == NULL);
    CHECK(sd_norm_parse("caffe") == SD_NORM_CAFFE && sd_norm_parse("imagenet") == SD_NORM_IMAGENET);
    CHECK(sd_norm_parse("zscore") == -1 && sd_norm_parse(NULL) == -1);
    CHECK(!strcmp(sd_norm_name(SD_NORM_CAFFE), "caffe") && !strcmp(sd_norm_name(SD_NORM_IMAGENET), "imagenet"));
    /* the f32 batch path gives the u8 path's values bit for bit */
    for (int k = 0; k < SD_NORM_COUNT; k++) {
        const sd_norm_params *np = sd_norm_params_of((sd_norm)k);
        float in[2][3][2], a[2][3][2], b[2][3][2];
        for (int im = 0; im < 2; im++)
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 2; i++)
                    in[im][c][i] = px[3 * i + c] ^ (im * 0x55);
        sd_normalize_f32(&in[0][0][0], 2, 2, 1, np, &a[0][0][0]);
        for (int im = 0; im < 2; im++) {
            uint8_t q[6];
            for (int i = 0; i < 6; i++)
                q[i] = (uint8_t)(px[i] ^ (im * 0x55));
            sd_normalize(q, 2, 1, np, &b[im][0][0]);
        }
        CHECK(!memcmp(a, b, sizeof a));
        CHECK_NEAR(a[1][0][0], np->bgr ? (30 ^ 0x55) - 104.00698793 : ((10 ^ 0x55) / 255.0 - 0.485) / 0.229, 1e-5);
    }
}

static void test_jitter_blur(void)
{
    uint8_t px[6] = {100, 50, 200, 0, 150, 250};
    uint8_t a[6];
    memcpy(a, px, 6);
    sd_color_jitter(a, 2, 1, 2.0f, 1, 1);
    CHECK(a[0] == 200 && a[1] == 100 && a[2] == 255 && a[3] == 0);
    memcpy(a, px, 6);
    sd_color_jitter(a, 2, 1, 1, 0.0f, 1); /* contrast 0: mean grey everywhere */
    double g = (0.299 * 100 + 0.587 * 50 + 0.114 * 200 + 0.299 * 0 + 0.587 * 150 + 0.114 * 250) / 2;
    for (int i = 0; i < 6; i++)
        CHECK_MSG(abs(a[i] - (int)(g + 0.5)) <= 1, "%d vs %.2f", a[i], g);
    memcpy(a, px, 6);
    sd_color_jitter(a, 2, 1, 1, 1, 0.0f); /* saturation 0: per-pixel grey */
    double g0 = 0.299 * 100 + 0.587 * 50 + 0.114 * 200;
    CHECK(abs(a[0] - (int)(g0 + 0.5)) <= 1 && a[0] == a[1] && a[1] == a[2]);

    /* blur: constant stays, an impulse spreads symmetrically and keeps its mass */
    uint8_t im[9 * 9];
    memset(im, 40, sizeof im);
    CHECK_OK(sd_gaussian_blur(im, 9, 9, 1, 1.0f));
    CHECK(im[0] == 40 && im[40] == 40 && im[80] == 40);
    memset(im, 0, sizeof im);
    im[4 * 9 + 4] = 255;
    CHECK_OK(sd_gaussian_blur(im, 9, 9, 1, 1.0f));
    int sum = 0;
    for (int i = 0; i < 81; i++)
        sum += im[i];
    CHECK_MSG(abs(sum - 255) <= 12, "mass %d", sum);
    CHECK(im[4 * 9 + 3] == im[4 * 9 + 5] && im[3 * 9 + 4] == im[5 * 9 + 4] && im[4 * 9 + 4] < 255);
    /* centre weight of a unit-sigma 7-tap 2D Gaussian: (1/2.5066)^2 ≈ 0.159 -> 40.6 */
    CHECK_MSG(abs(im[40] - 41) <= 1, "centre %d", im[40]);
    CHECK(sd_gaussian_blur(im, 9, 9, 1, 0) == SD_ERR_ARG);
}

/* A 40x20 sample whose label holds x (or y) and image R holds x*6. */
static void make_sample(sd_sample *s, uint8_t *img, uint8_t *lab, bool by_y)
{
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 40; x++) {
            img[(y * 40 + x) * 3] = (uint8_t)(x * 6);
            img[(y * 40 + x) * 3 + 1] = (uint8_t)(y * 12);
            img[(y * 40 + x) * 3 + 2] = 9;
            lab[y * 40 + x] = (uint8_t)(by_y ? y : x);
        }
    *s = (sd_sample){.index = 0, .stem = "s", .w = 40, .h = 20, .image = img, .lw = 40, .lh = 20, .label = lab};
}

static void test_crop_box(void)
{
    static uint8_t img[40 * 20 * 3], lab[40 * 20];
    sd_sample s;
    sd_augment a = {.base_w = 20, .base_h = 10, .crop_w = 10, .crop_h = 5, .norm = sd_norm_caffe};
    float out[3 * 50];
    uint8_t ol[50];
    int seen_x = 0;
    for (int by_y = 0; by_y < 2; by_y++) {
        make_sample(&s, img, lab, by_y);
        for (uint64_t seed = 0; seed < 20; seed++) {
            sd_rng r = sd_rng_fork(99, seed);
            sd_crop_box b;
            CHECK_OK(sd_augment_sample(&a, &r, &s, out, ol, &b));
            CHECK(b.w == 20 && b.h == 10 && b.scale_x == 0.5f && b.scale_y == 0.5f && b.full_w == 40 &&
                  b.full_h == 20 && !b.flipped);
            CHECK(b.x >= 0 && b.x <= 20 && b.y >= 0 && b.y <= 10 && (int)b.x % 2 == 0 && (int)b.y % 2 == 0);
            /* nearest halving reads source pixel 2i+1: the crop's first label is box origin + 1 */
            if (!by_y) {
                CHECK_MSG(ol[0] == (int)b.x + 1 && ol[9] == (int)b.x + 19, "x=%g label %d..%d", b.x, ol[0], ol[9]);
                seen_x |= 1 << ((int)b.x / 2);
            } else {
                CHECK_MSG(ol[0] == (int)b.y + 1 && ol[40] == (int)b.y + 9, "y=%g label %d/%d", b.y, ol[0], ol[40]);
            }
        }
    }
    CHECK_MSG(__builtin_popcount(seen_x) >= 5, "crop positions hardly vary: %x", seen_x);

    /* crop larger than the image: padding is 255 in the label and ~0 after normalisation */
    make_sample(&s, img, lab, false);
    sd_augment big = {.crop_w = 44, .crop_h = 22, .norm = sd_norm_caffe};
    float *bo = malloc(sizeof(float) * 3 * 44 * 22);
    uint8_t bl[44 * 22];
    sd_rng r = sd_rng_fork(1, 1);
    sd_crop_box b;
    CHECK_OK(sd_augment_sample(&big, &r, &s, bo, bl, &b));
    CHECK(b.x == 0 && b.y == 0 && b.w == 44 && b.h == 22 && b.scale_x == 1);
    CHECK(bl[0] == 0 && bl[39] == 39 && bl[40] == 255 && bl[43] == 255 && bl[21 * 44] == 255);
    CHECK(fabsf(bo[40]) < 1 && fabsf(bo[44 * 22 + 40]) < 1 && fabsf(bo[2 * 44 * 22 + 21 * 44]) < 1);
    CHECK_NEAR(bo[1], 9 - 104.00698793, 1e-4);         /* B of pixel (1,0) */
    CHECK_NEAR(bo[2 * 44 * 22 + 1], 6 - 122.67891434, 1e-4); /* R */
    free(bo);

    /* random scale: box size in full-image pixels is crop / scale */
    sd_augment sc = {.scale_min = 0.5f, .scale_max = 2.0f, .crop_w = 16, .crop_h = 8, .norm = sd_norm_torchvision};
    float so[3 * 128];
    uint8_t sl[128];
    for (int i = 0; i < 10; i++) {
        sd_rng rr = sd_rng_fork(5, (uint64_t)i);
        CHECK_OK(sd_augment_sample(&sc, &rr, &s, so, sl, &b));
        CHECK(b.scale_x >= 0.49f && b.scale_x <= 2.01f);
        CHECK_NEAR(b.w, 16 / b.scale_x, 1e-5);
        CHECK_NEAR(b.h, 8 / b.scale_y, 1e-5);
        /* the label at the crop's centre comes from near the box centre in full coordinates */
        float cx = b.x + b.w * (8.5f / 16);
        if (b.x + b.w <= 40)
            CHECK_MSG(fabsf(sl[4 * 16 + 8] - cx) <= 1.5f / b.scale_x + 0.5f, "scale %g: label %d vs x %g", b.scale_x,
                      sl[4 * 16 + 8], cx);
    }
}

static void test_flip(void)
{
    static uint8_t img[40 * 20 * 3], lab[40 * 20];
    sd_sample s;
    make_sample(&s, img, lab, false);
    sd_augment a = {.flip = true, .norm = sd_norm_caffe};
    float *o = malloc(sizeof(float) * 3 * 800);
    uint8_t ol[800];
    int flips = 0;
    for (uint64_t i = 0; i < 40; i++) {
        sd_rng r = sd_rng_fork(3, i);
        sd_crop_box b;
        CHECK_OK(sd_augment_sample(&a, &r, &s, o, ol, &b));
        if (b.flipped) {
            flips++;
            CHECK(ol[0] == 39 && ol[39] == 0 && ol[40 * 5 + 10] == 29);
            CHECK_NEAR(o[2 * 800], 39 * 6 - 122.67891434, 1e-4); /* R of the left pixel came from x=39 */
        } else {
            CHECK(ol[0] == 0 && ol[39] == 39);
        }
    }
    CHECK_MSG(flips > 8 && flips < 32, "%d flips of 40", flips);
    sd_flip_u8(lab, 40, 20, 1);
    CHECK(lab[0] == 39 && lab[799] == 0);
    sd_augment bad = {0};
    sd_rng r = sd_rng_fork(3, 0);
    CHECK(sd_augment_sample(&bad, &r, &s, o, ol, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("normalisation not set");
    free(o);
}

int main(void)
{
    RUN(test_resize_values);
    RUN(test_normalize);
    RUN(test_jitter_blur);
    RUN(test_crop_box);
    RUN(test_flip);
    TESTS_DONE();
}
