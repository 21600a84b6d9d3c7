/* The one implementation of input normalisation (norm.h): the two
 * conventions' constants, their checkpoint names, and the u8 and f32
 * normalisers. Resampling and augmentation are in transform.c. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "segda/norm.h"

const sd_norm_params sd_norm_torchvision = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 1.0f / 255.0f, false};
const sd_norm_params sd_norm_caffe = {{104.00698793f, 116.66876762f, 122.67891434f}, {1, 1, 1}, 1.0f, true};

const char *sd_norm_name(sd_norm n)
{
    return n == SD_NORM_CAFFE ? "caffe" : n == SD_NORM_IMAGENET ? "imagenet" : "?";
}

int sd_norm_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "caffe"))
        return SD_NORM_CAFFE;
    if (!strcmp(s, "imagenet"))
        return SD_NORM_IMAGENET;
    return -1;
}

const sd_norm_params *sd_norm_params_of(sd_norm kind)
{
    return kind == SD_NORM_CAFFE ? &sd_norm_caffe : kind == SD_NORM_IMAGENET ? &sd_norm_torchvision : NULL;
}

/* Both normalisers use out = in * a + b with these per-output-channel
 * coefficients, so the u8 and f32 paths give bit-identical results. */
static void coeffs(const sd_norm_params *n, int oc, int *src_ch, float *a, float *b)
{
    *src_ch = n->bgr ? 2 - oc : oc;
    *a = n->scale / n->std[oc];
    *b = -n->mean[oc] / n->std[oc];
}

void sd_normalize(const uint8_t *hwc, int w, int h, const sd_norm_params *n, float *chw)
{
    size_t hw = (size_t)w * h;
    for (int oc = 0; oc < 3; oc++) {
        int sc;
        float a, b;
        coeffs(n, oc, &sc, &a, &b);
        float *o = chw + oc * hw;
        const uint8_t *p = hwc + sc;
        for (size_t i = 0; i < hw; i++)
            o[i] = p[3 * i] * a + b;
    }
}

void sd_normalize_f32(const float *rgb, int n, int w, int h, const sd_norm_params *p, float *dst)
{
    size_t hw = (size_t)w * h;
    for (int k = 0; k < n; k++)
        for (int oc = 0; oc < 3; oc++) {
            int sc;
            float a, b;
            coeffs(p, oc, &sc, &a, &b);
            const float *in = rgb + ((size_t)k * 3 + sc) * hw;
            float *o = dst + ((size_t)k * 3 + oc) * hw;
            for (size_t i = 0; i < hw; i++)
                o[i] = in[i] * a + b;
        }
}

void sd_norm_fill(const sd_norm_params *n, uint8_t rgb[3])
{
    for (int oc = 0; oc < 3; oc++) {
        int sc = n->bgr ? 2 - oc : oc;
        float v = n->mean[oc] / n->scale;
        rgb[sc] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)lrintf(v);
    }
}
