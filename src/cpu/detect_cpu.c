/* Kernels of the detection ops (gather, smooth-L1). The gather backward
 * runs its indices in order on one thread per block column, so repeated
 * indices add up in a fixed order. */
#include <math.h>

#include "cpu/kernels.h"

void sd_cpu_gather_fwd(int n, int block, const int32_t *idx, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if ((size_t)n * block > 4096)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < block; j++)
            y[(size_t)i * block + j] = x[(size_t)idx[i] * block + j];
}

void sd_cpu_gather_bwd(int n, int block, const int32_t *idx, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if ((size_t)n * block > 4096)
    for (int j = 0; j < block; j++)
        for (int i = 0; i < n; i++)
            dx[(size_t)idx[i] * block + j] += dy[(size_t)i * block + j];
}

double sd_cpu_smooth_l1_fwd(size_t n, float beta, const float *a, const float *b)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        s += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
    }
    return s;
}

void sd_cpu_smooth_l1_bwd(size_t n, float beta, const float *a, const float *b, float scale, float *da)
{
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        da[i] += scale * (fabsf(d) < beta ? d / beta : (d > 0 ? 1.0f : -1.0f));
    }
}
