/* CPU kernels for element-wise ops (activations, scalar ops, dropout masks,
 * broadcast add/sub/mul), block copies for concat/slice and the plain sum.
 * Softmax and the losses are in loss.c. Backward kernels accumulate (+=). */
#include <math.h>
#include <string.h>

#include "cpu/kernels.h"
#include "segda/core.h"

/* Below this many elements a parallel region costs more than it saves.
 * The activations' selects are `omp simd` loops: as branches they
 * mispredicted on every other element (bench/bench_dnnl_ops.c measured
 * ReLU 7x slower than oneDNN's before; the same selects, so the same bits). */
#define PAR_MIN 16384
/* Reductions split their range into this many parts (whatever the thread
 * count), sum each in double and add the parts in order: bit-identical
 * results for any number of threads. */
#define N_PARTS 64
#define DROPOUT_CHUNK 4096

void sd_cpu_relu_fwd(size_t n, const float *x, float *y)
{
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* from the output, as PyTorch's threshold_backward */
void sd_cpu_relu_bwd(size_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float g = dy[i]; /* loaded unconditionally, so the select vectorises */
        dx[i] += y[i] > 0.0f ? g : 0.0f;
    }
}

void sd_cpu_leaky_relu_fwd(size_t n, float slope, const float *x, float *y)
{
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

/* from the input: the slope at exactly 0, as PyTorch */
void sd_cpu_leaky_relu_bwd(size_t n, float slope, const float *x, const float *dy, float *dx)
{
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float g = dy[i];
        dx[i] += x[i] > 0.0f ? g : g * slope;
    }
}

void sd_cpu_tanh_fwd(size_t n, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (size_t i = 0; i < n; i++)
        y[i] = tanhf(x[i]);
}

void sd_cpu_tanh_bwd(size_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

void sd_cpu_sigmoid_fwd(size_t n, const float *x, float *y)
{
    /* the two branches keep expf from overflowing */
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (size_t i = 0; i < n; i++) {
        if (x[i] >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        } else {
            float e = expf(x[i]);
            y[i] = e / (1.0f + e);
        }
    }
}

void sd_cpu_sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

void sd_cpu_scale_fwd(size_t n, float s, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = s * x[i];
}

void sd_cpu_add_scalar_fwd(size_t n, float s, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] + s;
}

void sd_cpu_pow_fwd(size_t n, float p, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (size_t i = 0; i < n; i++)
        y[i] = powf(x[i], p);
}

/* from the input: p * x^(p-1) stays finite at small x where p * y / x would not */
void sd_cpu_pow_bwd(size_t n, float p, const float *x, const float *dy, float *dx)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i] * p * powf(x[i], p - 1.0f);
}

void sd_cpu_dropout_mask(uint64_t seed, float p, size_t n, float *mask)
{
    float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    size_t n_chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    /* One forked stream per fixed chunk: the mask depends on the seed only. */
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t ch = 0; ch < n_chunks; ch++) {
        sd_rng r = sd_rng_fork(seed, ch);
        size_t end = (ch + 1) * DROPOUT_CHUNK < n ? (ch + 1) * DROPOUT_CHUNK : n;
        for (size_t i = ch * DROPOUT_CHUNK; i < end; i++)
            mask[i] = sd_rng_uniform(&r) < p ? 0.0f : keep;
    }
}

void sd_cpu_mul(size_t n, const float *a, const float *b, float *y, bool accumulate)
{
    if (accumulate) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            y[i] += a[i] * b[i];
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
    }
}

void sd_cpu_axpy(size_t n, float alpha, const float *x, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

void sd_cpu_add_const(size_t n, float v, float *y)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++)
        y[i] += v;
}

/* ---- broadcast binary ops ---- */

static size_t numel4(const int s[4]) { return (size_t)s[0] * s[1] * s[2] * s[3]; }

/* b's strides with 0 on its broadcast dims */
static void bcast_strides(const int bs[4], size_t st[4])
{
    size_t s = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = bs[d] == 1 ? 0 : s;
        s *= (size_t)bs[d];
    }
}

static inline float binop(char op, float a, float b)
{
    return op == '+' ? a + b : op == '-' ? a - b : a * b;
}

void sd_cpu_binary_fwd(char op, const int as[4], const int bs[4], const float *a,
                       const float *b, float *y)
{
    size_t n = numel4(as);
    if (numel4(bs) == n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t i = 0; i < n; i++)
            y[i] = binop(op, a[i], b[i]);
        return;
    }
    size_t st[4];
    bcast_strides(bs, st);
    size_t rows = (size_t)as[0] * as[1] * as[2], w = (size_t)as[3];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
        size_t i2 = r % (size_t)as[2], i1 = r / (size_t)as[2] % (size_t)as[1],
               i0 = r / ((size_t)as[2] * as[1]);
        const float *br = b + i0 * st[0] + i1 * st[1] + i2 * st[2];
        const float *ar = a + r * w;
        float *yr = y + r * w;
        if (st[3]) {
            for (size_t j = 0; j < w; j++)
                yr[j] = binop(op, ar[j], br[j]);
        } else {
            float bv = br[0];
            for (size_t j = 0; j < w; j++)
                yr[j] = binop(op, ar[j], bv);
        }
    }
}

void sd_cpu_binary_bwd(char op, const int as[4], const int bs[4], const float *a,
                       const float *b, const float *gy, float *ga, float *gb)
{
    size_t n = numel4(as), nb = numel4(bs);
    if (nb == n) {
        if (ga) {
            if (op == '*')
                sd_cpu_mul(n, gy, b, ga, true);
            else
                sd_cpu_axpy(n, 1.0f, gy, ga);
        }
        if (gb) {
            if (op == '*')
                sd_cpu_mul(n, gy, a, gb, true);
            else
                sd_cpu_axpy(n, op == '-' ? -1.0f : 1.0f, gy, gb);
        }
        return;
    }
    size_t st[4];
    bcast_strides(bs, st);
    if (ga) {
        size_t rows = (size_t)as[0] * as[1] * as[2], w = (size_t)as[3];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (size_t r = 0; r < rows; r++) {
            const float *gr = gy + r * w;
            float *gar = ga + r * w;
            if (op != '*') {
                for (size_t j = 0; j < w; j++)
                    gar[j] += gr[j];
                continue;
            }
            size_t i2 = r % (size_t)as[2], i1 = r / (size_t)as[2] % (size_t)as[1],
                   i0 = r / ((size_t)as[2] * as[1]);
            const float *br = b + i0 * st[0] + i1 * st[1] + i2 * st[2];
            for (size_t j = 0; j < w; j++)
                gar[j] += gr[j] * br[j * st[3]];
        }
    }
    if (gb) {
        /* Each element of b sums its broadcast positions in index order:
         * the result does not depend on how the elements are shared out. */
        size_t ast[4] = {(size_t)as[1] * as[2] * as[3], (size_t)as[2] * as[3], (size_t)as[3], 1};
        float sign = op == '-' ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN && nb > 1)
        for (size_t j = 0; j < nb; j++) {
            size_t idx[4], rem = j;
            int lo[4], hi[4];
            for (int d = 3; d >= 0; d--) {
                idx[d] = rem % (size_t)bs[d];
                rem /= (size_t)bs[d];
                lo[d] = bs[d] == 1 ? 0 : (int)idx[d];
                hi[d] = bs[d] == 1 ? as[d] : (int)idx[d] + 1;
            }
            double acc = 0.0;
            for (int i0 = lo[0]; i0 < hi[0]; i0++)
                for (int i1 = lo[1]; i1 < hi[1]; i1++)
                    for (int i2 = lo[2]; i2 < hi[2]; i2++) {
                        size_t base = i0 * ast[0] + i1 * ast[1] + i2 * ast[2];
                        if (op == '*')
                            for (int i3 = lo[3]; i3 < hi[3]; i3++)
                                acc += (double)gy[base + i3] * a[base + i3];
                        else
                            for (int i3 = lo[3]; i3 < hi[3]; i3++)
                                acc += gy[base + i3];
                    }
            gb[j] += sign * (float)acc;
        }
    }
}

/* ---- copies and sums ---- */

void sd_cpu_copy_blocks(size_t outer, size_t len, const float *src, size_t src_stride, float *dst,
                        size_t dst_stride, bool accumulate)
{
#pragma omp parallel for schedule(static) if (outer * len > PAR_MIN && outer > 1)
    for (size_t o = 0; o < outer; o++) {
        const float *s = src + o * src_stride;
        float *d = dst + o * dst_stride;
        if (accumulate)
            for (size_t i = 0; i < len; i++)
                d[i] += s[i];
        else
            memcpy(d, s, len * sizeof(float));
    }
}

double sd_cpu_sum(size_t n, const float *x)
{
    double part[N_PARTS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int p = 0; p < N_PARTS; p++) {
        size_t lo = n * (size_t)p / N_PARTS, hi = n * (size_t)(p + 1) / N_PARTS;
        double acc = 0.0;
        for (size_t i = lo; i < hi; i++)
            acc += x[i];
        part[p] = acc;
    }
    double s = 0.0;
    for (int p = 0; p < N_PARTS; p++)
        s += part[p];
    return s;
}
