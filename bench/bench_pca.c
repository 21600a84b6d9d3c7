/* The gap tool's PCA (sd_gap_pca, two components as `segda gap` asks) on
 * random features with decaying variances, in ms per call. Usage:
 * bench_pca [N D [reps]] (default 500 2048 3: 250 images per domain of
 * ResNet-101 pooled features). Speed is reported, never asserted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "segda/gap.h"
#include "segda/progress.h"

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[1]) : 500, d = argc > 2 ? atoi(argv[2]) : 2048, reps = argc > 3 ? atoi(argv[3]) : 3;
    float *x = malloc(sizeof(float) * (size_t)n * d), *comp = malloc(sizeof(float) * 2 * (size_t)d);
    float *proj = malloc(sizeof(float) * 2 * (size_t)n);
    if (!x || !comp || !proj || n < 2 || d < 2 || reps < 1)
        return fprintf(stderr, "usage: bench_pca [N D [reps]]\n"), 2;
    unsigned s = 7;
    for (size_t i = 0; i < (size_t)n * d; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 16777216.0 - 0.5) * (float)(8.0 / sqrt(1.0 + (double)(i % (size_t)d)));
    }
    double t0 = 1e3 * sd_time_now();
    for (int r = 0; r < reps; r++)
        if (sd_gap_pca(x, n, d, 2, 1, comp, proj, NULL))
            return fprintf(stderr, "bench_pca: %s\n", sd_errmsg()), 1;
    printf("pca %d rows x %d features, 2 components: %.1f ms per call (%d calls); pc1[0..2] %.5f %.5f %.5f\n", n, d,
           (1e3 * sd_time_now() - t0) / reps, reps, comp[0], comp[1], comp[2]);
    free(x);
    free(comp);
    free(proj);
    return 0;
}
