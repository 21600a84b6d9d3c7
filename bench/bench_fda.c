/* FDA's amplitude swap (src/da/fda.c, one channel: two forward 2-D DFTs
 * and one inverse) at a given size, in ms per call. Usage:
 * bench_fda [H W [reps]] (default 720 1280 3: GTA5's frames halved). The
 * first call is timed apart (it makes the size's FFTW plans). Speed is
 * reported, never asserted. */
#include <stdio.h>
#include <stdlib.h>

#include "da/train_internal.h"
#include "segda/progress.h"

int main(int argc, char **argv)
{
    int h = argc > 2 ? atoi(argv[1]) : 720, w = argc > 2 ? atoi(argv[2]) : 1280, reps = argc > 3 ? atoi(argv[3]) : 3;
    size_t n = (size_t)h * w;
    float *src = malloc(n * sizeof *src), *trg = malloc(n * sizeof *trg);
    if (!src || !trg || h < 1 || w < 1 || reps < 1)
        return fprintf(stderr, "usage: bench_fda [H W [reps]]\n"), 2;
    unsigned s = 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        src[i] = (float)(s >> 24);
        trg[i] = (float)((s >> 8) & 255);
    }
    double t0 = 1e3 * sd_time_now();
    if (sd_fda_swap_channel(src, trg, h, w, 0.01f))
        return fprintf(stderr, "bench_fda: %s\n", sd_errmsg()), 1;
    double first = 1e3 * sd_time_now() - t0;
    t0 = 1e3 * sd_time_now();
    for (int r = 1; r < reps; r++)
        sd_fda_swap_channel(src, trg, h, w, 0.01f);
    printf("fda swap %dx%d (one channel): first call %.1f ms", w, h, first);
    if (reps > 1)
        printf(", then %.1f ms per call (%d calls)", (1e3 * sd_time_now() - t0) / (reps - 1), reps - 1);
    printf("\n");
    free(src);
    free(trg);
    return 0;
}
