/* CPU kernels of conv2d_fused's epilogue (src/core/ops.def): a frozen batch
 * norm's per-channel scale and shift, a residual and ReLU / LeakyReLU
 * applied to a convolution's output in place, in one pass, and the backward
 * of that pass. The convolution itself is conv_cpu.c's. */
#include <math.h>

#include "cpu/kernels.h"
#include "segda/ops.h"

#define PAR_MIN 16384

/* The selects below vectorise only when a comparison may be evaluated for
 * every lane, i.e. without trapping-math (segda never unmasks FP traps;
 * results are unchanged). Scalar, with a branch per element on the sign,
 * this epilogue cost 5 ns per element. */
#pragma GCC optimize("no-trapping-math")

void sd_cpu_conv_post_fwd(int n, int c, size_t plane, const float *scale, const float *shift, const float *res,
                          int act, float slope, float *y)
{
    const float lo = act == SD_ACT_NONE ? 1.0f : act == SD_ACT_RELU ? 0.0f : slope;
#pragma omp parallel for schedule(static) if ((size_t)n * c * plane > PAR_MIN)
    for (int k = 0; k < n * c; k++) {
        const float s = scale ? scale[k % c] : 1.0f, h = shift ? shift[k % c] : 0.0f;
        float *p = y + (size_t)k * plane;
        const float *r = res ? res + (size_t)k * plane : NULL;
        if (r) {
#pragma omp simd
            for (size_t i = 0; i < plane; i++) {
                float v = p[i] * s + h + r[i], m = v * lo;
                p[i] = v > 0.0f ? v : m;
            }
        } else {
#pragma omp simd
            for (size_t i = 0; i < plane; i++) {
                float v = p[i] * s + h, m = v * lo;
                p[i] = v > 0.0f ? v : m;
            }
        }
    }
}

/* y > 0 exactly where the pre-activation is (slope >= 0); at 0 the slope,
 * as relu_bwd and leaky_relu_bwd */
void sd_cpu_conv_post_bwd(int n, int c, size_t plane, const float *scale, int act, float slope, const float *y,
                          const float *dy, float *dres, float *dpre)
{
    const float lo = act == SD_ACT_NONE ? 1.0f : act == SD_ACT_RELU ? 0.0f : slope;
#pragma omp parallel for schedule(static) if ((size_t)n * c * plane > PAR_MIN)
    for (int k = 0; k < n * c; k++) {
        const float s = scale ? scale[k % c] : 1.0f;
        const size_t o = (size_t)k * plane;
        const float *yp = y + o, *d = dy + o;
        float *dp = dpre + o, *dr = dres ? dres + o : NULL;
#pragma omp simd
        for (size_t i = 0; i < plane; i++) {
            float m = d[i] * lo, g = yp[i] > 0.0f ? d[i] : m;
            dp[i] = g * s;
        }
        if (dr) {
#pragma omp simd
            for (size_t i = 0; i < plane; i++)
            {
                float m = d[i] * lo;
                dr[i] += yp[i] > 0.0f ? d[i] : m;
            }
        }
    }
}

void sd_cpu_conv_post_fold(int c, float eps, const float *bias, const float *w, const float *b, const float *rmean,
                           const float *rvar, float *scale, float *shift)
{
    for (int k = 0; k < c; k++) {
        float s = (w ? w[k] : 1.0f) / sqrtf(rvar[k] + eps);
        scale[k] = s;
        shift[k] = (b ? b[k] : 0.0f) + ((bias ? bias[k] : 0.0f) - rmean[k]) * s;
    }
}
