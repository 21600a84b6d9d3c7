/* The optimisers' element-wise updates over flat parameter buffers
 * (SD_KERNEL sgd_step, adam_step); schedules, state and groups are
 * src/optim's. */
#include <math.h>
#include <stddef.h>

#include "cpu/kernels.h"

void sd_cpu_sgd_step(size_t n, float lr, float wd, float m, float *w, const float *g, float *buf)
{
    ptrdiff_t nn = (ptrdiff_t)n;
    if (buf) {
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (ptrdiff_t i = 0; i < nn; i++) {
            float d = g[i] + wd * w[i];
            buf[i] = m * buf[i] + d;
            w[i] -= lr * buf[i];
        }
    } else {
#pragma omp parallel for schedule(static) if (nn > 65536)
        for (ptrdiff_t i = 0; i < nn; i++)
            w[i] -= lr * (g[i] + wd * w[i]);
    }
}

void sd_cpu_adam_step(size_t n, float step_size, float bc2_sqrt, float wd, float b1, float b2, float eps, float *w,
                      const float *g, float *m, float *v)
{
    ptrdiff_t nn = (ptrdiff_t)n;
#pragma omp parallel for schedule(static) if (nn > 65536)
    for (ptrdiff_t i = 0; i < nn; i++) {
        float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] -= step_size * (m[i] / denom);
    }
}
