/* conv2d forward and backward speed at DeepLab-like sizes, in GFLOP/s
 * (bench/bench_conv_torch.py measures PyTorch on the same cases). Usage:
 * bench_conv [threads] (default: all cores). Speed is reported, never asserted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "segda/ops.h"

typedef struct conv_case {
    const char *name;
    int n, cin, h, w, cout, k, stride, pad, dil;
} conv_case;

static const conv_case cases[] = {
    {"layer1 3x3 64->64 128x256", 1, 64, 128, 256, 64, 3, 1, 1, 1},
    {"layer1 3x3 64->64 128x256 dil2", 1, 64, 128, 256, 64, 3, 1, 2, 2},
    {"layer3 3x3 256->256 65x129 dil2", 1, 256, 65, 129, 256, 3, 1, 2, 2},
    {"1x1 256->64 128x256", 1, 256, 128, 256, 64, 1, 1, 0, 1},
    {"stem 7x7/2 3->64 512x1024", 1, 3, 512, 1024, 64, 7, 2, 3, 1},
    {"aspp 3x3 2048->19 65x129 dil12", 1, 2048, 65, 129, 19, 3, 1, 12, 12},
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
        y->grad[i] += n->out->grad[0];
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    sd_set_threads(threads);
    printf("conv2d f32, %d threads (GFLOP/s; backward = input + weight gradients)\n", sd_threads());
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_rng rng;
    sd_rng_seed(&rng, 3);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const conv_case *k = &cases[c];
        int xs[4] = {k->n, k->cin, k->h, k->w}, ws[4] = {k->cout, k->cin, k->k, k->k};
        size_t nx = (size_t)xs[0] * xs[1] * xs[2] * xs[3], nw = (size_t)ws[0] * ws[1] * ws[2] * ws[3];
        float *xd = malloc(nx * sizeof(float)), *wd = malloc(nw * sizeof(float));
        if (!xd || !wd) {
            fprintf(stderr, "bench_conv: out of memory\n");
            return 1;
        }
        for (size_t i = 0; i < nx; i++)
            xd[i] = sd_rng_normal(&rng);
        for (size_t i = 0; i < nw; i++)
            wd[i] = 0.05f * sd_rng_normal(&rng);
        double best_f = 1e9, best_b = 1e9, flops = 0;
        for (int rep = 0; rep < 4; rep++) {
            sd_tape_reset(&t);
            sd_tensor *x = sd_tensor_wrap(&t, 4, xs, xd), *w = sd_tensor_wrap(&t, 4, ws, wd);
            if (!x || !w) {
                fprintf(stderr, "bench_conv: %s\n", sd_errmsg());
                return 1;
            }
            x->requires_grad = w->requires_grad = true;
            double t0 = now();
            sd_tensor *y = sd_conv2d(&t, x, w, NULL, sd_conv_opts_make(k->stride, k->pad, k->dil));
            double t1 = now();
            if (!y) {
                fprintf(stderr, "bench_conv: %s\n", sd_errmsg());
                return 1;
            }
            sd_tensor *l = sd_tensor_zeros(&t, 1, (int[]){1});
            sd_tape_record(&t, "ones", ones_backward, l, 1, &y);
            double t2 = now();
            if (sd_backward1(&t, l) != SD_OK) {
                fprintf(stderr, "bench_conv: %s\n", sd_errmsg());
                return 1;
            }
            double t3 = now();
            flops = 2.0 * k->n * k->cout * k->cin * k->k * k->k * (double)y->shape[2] * y->shape[3];
            if (rep > 0) { /* the first run grows the arena and the im2col buffer */
                best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
                best_b = t3 - t2 < best_b ? t3 - t2 : best_b;
            }
        }
        printf("%-34s fwd %7.2f ms %6.1f GFLOP/s   bwd %7.2f ms %6.1f GFLOP/s\n", k->name, best_f * 1e3,
               flops / best_f * 1e-9, best_b * 1e3, 2 * flops / best_b * 1e-9);
        free(xd);
        free(wd);
    }
    sd_tape_free(&t);
    return 0;
}
