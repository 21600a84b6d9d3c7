/* Speed of the built-in benchmark generator on one core: scenes rendered per
 * second in each domain at 256x128 (and one larger size), with and without
 * the PNG writes that `segda synth` does. Prints images/s; asserts nothing. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "segda/image.h"
#include "segda/synth.h"

static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int run(sd_synth_domain dom, int w, int h, int n, int write, const char *dir)
{
    uint8_t *rgb = malloc((size_t)w * h * 3), *ids = malloc((size_t)w * h);
    if (!rgb || !ids)
        return 1;
    char img[512], lab[512];
    snprintf(img, sizeof img, "%s/img.png", dir);
    snprintf(lab, sizeof lab, "%s/lab.png", dir);
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n; i++) {
        if (sd_synth_render(dom, 1, 1, (uint64_t)i, w, h, rgb, ids)) {
            fprintf(stderr, "bench_synth: %s\n", sd_errmsg());
            return 1;
        }
        if (write) {
            sd_image a = {w, h, 3, 8, rgb}, b = {w, h, 1, 8, ids};
            if (sd_png_write(img, &a) || sd_png_write(lab, &b)) {
                fprintf(stderr, "bench_synth: %s\n", sd_errmsg());
                return 1;
            }
        }
    }
    double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    /* CPU time is what one core costs; wall time also counts waiting for a
     * busy machine */
    printf("synth %-4s %5dx%-5d %-13s %8.1f images/s per core (CPU time), %8.1f by wall clock  (%d images)\n",
           dom == SD_SYNTH_SIM ? "sim" : "real", w, h, write ? "render+write" : "render", n / dc, n / dt, n);
    free(rgb);
    free(ids);
    return 0;
}

int main(void)
{
    omp_set_num_threads(1);
    char dir[] = "/tmp/bench_synth_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    int rc = 0;
    for (int d = 0; d < 2 && !rc; d++) {
        rc |= run((sd_synth_domain)d, 256, 128, 400, 0, dir);
        rc |= run((sd_synth_domain)d, 256, 128, 400, 1, dir);
        rc |= run((sd_synth_domain)d, 2048, 1024, 4, 1, dir);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/img.png", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lab.png", dir);
    unlink(p);
    rmdir(dir);
    return rc;
}
