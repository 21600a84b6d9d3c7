/* conv2d forward and backward speed at DeepLab-like sizes, in ms and
 * GFLOP/s, for each CPU implementation: im2col + OpenBLAS, oneDNN f32 on its
 * blocked layouts and on plain NCHW, Winograd F(2x2, 3x3) (im2col where it
 * does not apply), and oneDNN bf16 (emulated by rounding
 * when the CPU lacks native bf16); bench/bench_conv_torch.py measures PyTorch
 * on the same cases. Usage: bench_conv [threads [name-substring]] (default:
 * all cores, every case). Speed is reported, never asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/dnnl.h"
#include "segda/ops.h"

typedef struct conv_case {
    const char *name;
    int n, cin, h, w, cout, k, stride, pad, dil;
    bool transposed; /* conv_transpose2d: x [n, cin, h, w], weight [cin, cout, k, k] */
} conv_case;

static const conv_case cases[] = {
    {"1x1 256->64 128x256", 1, 256, 128, 256, 64, 1, 1, 0, 1, false},
    {"1x1 1024->256 65x129", 1, 1024, 65, 129, 256, 1, 1, 0, 1, false},
    {"3x3 64->64 128x256", 1, 64, 128, 256, 64, 3, 1, 1, 1, false},
    {"3x3 64->64 128x256 dil2", 1, 64, 128, 256, 64, 3, 1, 2, 2, false},
    {"3x3 256->256 65x129 dil2", 1, 256, 65, 129, 256, 3, 1, 2, 2, false},
    {"3x3 256->256 65x129 dil4", 1, 256, 65, 129, 256, 3, 1, 4, 4, false},
    {"3x3 256->256 65x129 dil6", 1, 256, 65, 129, 256, 3, 1, 6, 6, false},
    {"3x3 256->256 65x129 dil12", 1, 256, 65, 129, 256, 3, 1, 12, 12, false},
    {"3x3 256->256 65x129 dil24", 1, 256, 65, 129, 256, 3, 1, 24, 24, false},
    {"aspp 3x3 2048->19 65x129 dil6", 1, 2048, 65, 129, 19, 3, 1, 6, 6, false},
    {"aspp 3x3 2048->19 65x129 dil12", 1, 2048, 65, 129, 19, 3, 1, 12, 12, false},
    {"aspp 3x3 2048->19 65x129 dil18", 1, 2048, 65, 129, 19, 3, 1, 18, 18, false},
    {"aspp 3x3 2048->19 65x129 dil24", 1, 2048, 65, 129, 19, 3, 1, 24, 24, false},
    {"vgg 3x3 64->64 321x321", 1, 64, 321, 321, 64, 3, 1, 1, 1, false},
    {"vgg 3x3 128->128 161x161", 1, 128, 161, 161, 128, 3, 1, 1, 1, false},
    {"vgg 3x3 256->256 81x81", 1, 256, 81, 81, 256, 3, 1, 1, 1, false},
    {"vgg 3x3 512->512 41x41 dil2", 1, 512, 41, 41, 512, 3, 1, 2, 2, false},
    {"r101@512 3x3 64->64 64x128", 1, 64, 64, 128, 64, 3, 1, 1, 1, false},
    {"r101@512 3x3 256->256 32x64 dil2", 1, 256, 32, 64, 256, 3, 1, 2, 2, false},
    {"r101@512 3x3 512->512 32x64 dil4", 1, 512, 32, 64, 512, 3, 1, 4, 4, false},
    {"mini 3x3 64->64 32x16 dil2", 1, 64, 16, 32, 64, 3, 1, 2, 2, false},
    {"mini 3x3 128->128 32x16 dil4", 1, 128, 16, 32, 128, 3, 1, 4, 4, false},
    {"vgg 3x3 3->64 321x321", 1, 3, 321, 321, 64, 3, 1, 1, 1, false},
    {"stem 7x7/2 3->64 512x1024", 1, 3, 512, 1024, 64, 7, 2, 3, 1, false},
    {"3x3/2 64->128 65x129 batch2", 2, 64, 65, 129, 128, 3, 2, 1, 1, false},
    {"T 16x16/8 19->19 41x65 (FCN up)", 1, 19, 41, 65, 19, 16, 8, 4, 1, true},
    {"T 4x4/2 128->64 64x64 (generator)", 1, 128, 64, 64, 64, 4, 2, 1, 1, true},
    {"T 3x3 64->32 129x129", 1, 64, 129, 129, 32, 3, 1, 1, 1, true},
};

typedef struct impl_col {
    const char *name;
    sd_cpu_conv_impl impl;
    bool blocked;
    sd_dtype compute;
} impl_col;

static const impl_col cols[] = {
    {"im2col", SD_CPU_CONV_IM2COL, true, SD_DTYPE_F32},
    {"winograd", SD_CPU_CONV_WINOGRAD, true, SD_DTYPE_F32},
    {"dnnl", SD_CPU_CONV_DNNL, true, SD_DTYPE_F32},
    {"dnnl-plain", SD_CPU_CONV_DNNL, false, SD_DTYPE_F32},
    {"dnnl-bf16", SD_CPU_CONV_DNNL, true, SD_DTYPE_BF16},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* loss = sum(y): seeds dy = 1 without depending on the reduction ops */
static void ones_backward(sd_node *n)
{
    sd_tensor *y = n->in[0];
    for (size_t i = 0; i < y->numel; i++)
        ((float *)y->grad)[i] += ((const float *)n->out->grad)[0];
}

/* Best-of-5 forward and backward seconds of case k under column c. */
static int time_case(sd_tape *t, const conv_case *k, const impl_col *c, float *xd, float *wd, double *bf,
                     double *bb, double *flops)
{
    int xs[4] = {k->n, k->cin, k->h, k->w}, ws[4] = {k->cout, k->cin, k->k, k->k};
    if (k->transposed)
        ws[0] = k->cin, ws[1] = k->cout;
    sd_cpu_conv_impl_set(c->impl);
    sd_cpu_dnnl_set_blocked(c->blocked);
    *bf = *bb = 1e9;
    for (int rep = 0; rep < 6; rep++) {
        sd_tape_reset(t);
        t->compute = c->compute;
        sd_tensor *x = sd_tensor_wrap(t, 4, xs, xd), *w = sd_tensor_wrap(t, 4, ws, wd);
        if (!x || !w)
            return 1;
        x->requires_grad = w->requires_grad = true;
        double t0 = now();
        sd_conv_opts o = sd_conv_opts_make(k->stride, k->pad, k->dil);
        sd_tensor *y = k->transposed ? sd_conv_transpose2d(t, x, w, NULL, o) : sd_conv2d(t, x, w, NULL, o);
        double t1 = now();
        if (!y)
            return 1;
        sd_tensor *l = sd_tensor_zeros(t, 1, (int[]){1});
        sd_tape_record(t, "ones", ones_backward, l, 1, &y);
        double t2 = now();
        if (sd_backward1(t, l) != SD_OK)
            return 1;
        double t3 = now();
        /* per output pixel of the conv (for a transposed conv: per input pixel) */
        double pix = k->transposed ? (double)k->h * k->w : (double)y->shape[2] * y->shape[3];
        *flops = 2.0 * k->n * k->cout * k->cin * k->k * k->k * pix;
        if (rep > 0) { /* the first run grows the arena, the scratch and builds primitives */
            *bf = t1 - t0 < *bf ? t1 - t0 : *bf;
            *bb = t3 - t2 < *bb ? t3 - t2 : *bb;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *filter = argc > 2 ? argv[2] : NULL;
    sd_set_threads(threads);
    printf("conv2d, %d threads, native bf16: %s (ms, best of 5; backward = input + weight gradients)\n",
           sd_threads(), sd_cpu_bf16_supported() ? "yes" : "no (bf16 column is rounding + f32)");
    printf("%-32s", "case");
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        printf(" %10s fwd/bwd     ", cols[c].name);
    printf("\n");
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_rng rng;
    sd_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *k = &cases[i];
        if (filter && !strstr(k->name, filter))
            continue;
        size_t nx = (size_t)k->n * k->cin * k->h * k->w, nw = (size_t)k->cout * k->cin * k->k * k->k;
        float *xd = malloc(nx * sizeof(float)), *wd = malloc(nw * sizeof(float));
        if (!xd || !wd) {
            fprintf(stderr, "bench_conv: out of memory\n");
            return 1;
        }
        for (size_t j = 0; j < nx; j++)
            xd[j] = sd_rng_normal(&rng);
        for (size_t j = 0; j < nw; j++)
            wd[j] = 0.05f * sd_rng_normal(&rng);
        printf("%-32s", k->name);
        double flops = 0;
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            double bf, bb;
            if (time_case(&t, k, &cols[c], xd, wd, &bf, &bb, &flops)) {
                fprintf(stderr, "bench_conv: %s: %s\n", k->name, sd_errmsg());
                return 1;
            }
            printf(" %8.2f / %8.2f    ", bf * 1e3, bb * 1e3);
            fflush(stdout);
        }
        printf(" (%.2f GFLOP fwd)\n", flops * 1e-9);
        free(xd);
        free(wd);
    }
    sd_cpu_conv_impl_set(SD_CPU_CONV_AUTO);
    sd_tape_free(&t);
    return 0;
}
