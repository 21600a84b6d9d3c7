/* CUDA kernels for element-wise ops (activations, scalar ops, dropout
 * masks, broadcast add/sub/mul), block copies, the plain sum, per-channel
 * bias helpers and the optimiser steps. One thread per output element in
 * grid-stride loops; every sum has a fixed order (no float atomics).
 * Softmax and the losses are in loss.cu. Backward kernels accumulate. */
#include "cuda/kernels.cuh"
#include "segda/ops.h"

/* ---- activations and scalar ops ---- */

__global__ static void k_relu_fwd(size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ static void k_relu_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    SD_GRID_LOOP(i, n) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}
__global__ static void k_leaky_fwd(size_t n, float s, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : x[i] * s;
}
__global__ static void k_leaky_bwd(size_t n, float s, const float *x, const float *dy, float *dx)
{
    SD_GRID_LOOP(i, n) dx[i] += x[i] > 0.0f ? dy[i] : dy[i] * s;
}
__global__ static void k_tanh_fwd(size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = tanhf(x[i]);
}
__global__ static void k_tanh_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    SD_GRID_LOOP(i, n) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}
__global__ static void k_sigmoid_fwd(size_t n, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = sd_sigmoid(x[i]);
}
__global__ static void k_sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    SD_GRID_LOOP(i, n) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}
__global__ static void k_scale(size_t n, float s, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = s * x[i];
}
__global__ static void k_add_scalar(size_t n, float s, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = x[i] + s;
}
__global__ static void k_pow_fwd(size_t n, float p, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = powf(x[i], p);
}
__global__ static void k_pow_bwd(size_t n, float p, const float *x, const float *dy, float *dx)
{
    SD_GRID_LOOP(i, n) dx[i] += dy[i] * p * powf(x[i], p - 1.0f);
}
__global__ static void k_axpy(size_t n, float a, const float *x, float *y)
{
    SD_GRID_LOOP(i, n) y[i] += a * x[i];
}
__global__ static void k_add_const(size_t n, float v, float *y)
{
    SD_GRID_LOOP(i, n) y[i] += v;
}
__global__ static void k_mul(size_t n, const float *a, const float *b, float *y, bool acc)
{
    SD_GRID_LOOP(i, n)
    {
        if (acc)
            y[i] += a[i] * b[i];
        else
            y[i] = a[i] * b[i];
    }
}

extern "C" {

void sd_cuda_relu_fwd(size_t n, const float *x, float *y) { SD_LAUNCH(k_relu_fwd, n, n, x, y); }
void sd_cuda_relu_bwd(size_t n, const float *y, const float *dy, float *dx) { SD_LAUNCH(k_relu_bwd, n, n, y, dy, dx); }
void sd_cuda_leaky_relu_fwd(size_t n, float s, const float *x, float *y) { SD_LAUNCH(k_leaky_fwd, n, n, s, x, y); }
void sd_cuda_leaky_relu_bwd(size_t n, float s, const float *x, const float *dy, float *dx)
{
    SD_LAUNCH(k_leaky_bwd, n, n, s, x, dy, dx);
}
void sd_cuda_tanh_fwd(size_t n, const float *x, float *y) { SD_LAUNCH(k_tanh_fwd, n, n, x, y); }
void sd_cuda_tanh_bwd(size_t n, const float *y, const float *dy, float *dx) { SD_LAUNCH(k_tanh_bwd, n, n, y, dy, dx); }
void sd_cuda_sigmoid_fwd(size_t n, const float *x, float *y) { SD_LAUNCH(k_sigmoid_fwd, n, n, x, y); }
void sd_cuda_sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    SD_LAUNCH(k_sigmoid_bwd, n, n, y, dy, dx);
}
void sd_cuda_scale_fwd(size_t n, float s, const float *x, float *y) { SD_LAUNCH(k_scale, n, n, s, x, y); }
void sd_cuda_add_scalar_fwd(size_t n, float s, const float *x, float *y) { SD_LAUNCH(k_add_scalar, n, n, s, x, y); }
void sd_cuda_pow_fwd(size_t n, float p, const float *x, float *y) { SD_LAUNCH(k_pow_fwd, n, n, p, x, y); }
void sd_cuda_pow_bwd(size_t n, float p, const float *x, const float *dy, float *dx)
{
    SD_LAUNCH(k_pow_bwd, n, n, p, x, dy, dx);
}
void sd_cuda_axpy(size_t n, float a, const float *x, float *y) { SD_LAUNCH(k_axpy, n, n, a, x, y); }
void sd_cuda_add_const(size_t n, float v, float *y) { SD_LAUNCH(k_add_const, n, n, v, y); }

/* dropout multiplies by a mask the op keeps in host memory (see
 * sd_cuda_in): either factor may be a host buffer */
void sd_cuda_mul(size_t n, const float *a, const float *b, float *y, bool accumulate)
{
    a = (const float *)sd_cuda_in(SD_CUDA_SCR_IN0, a, n * sizeof(float));
    b = (const float *)sd_cuda_in(SD_CUDA_SCR_IN1, b, n * sizeof(float));
    if (a && b)
        SD_LAUNCH(k_mul, n, n, a, b, y, accumulate);
}

} /* extern "C" */

/* ---- dropout: the CPU's generator (src/core/rng.c), one stream per chunk ---- */

#define DROPOUT_CHUNK 4096

__device__ static uint64_t d_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__device__ static inline uint64_t d_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

__device__ static uint64_t d_xoshiro(uint64_t *s)
{
    uint64_t result = d_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = d_rotl(s[3], 45);
    return result;
}

/* one thread per chunk runs the chunk's stream in order, as the CPU does:
 * the mask is the same bits on both backends */
__global__ static void k_dropout(uint64_t seed, float p, float keep, size_t n, size_t n_chunks, float *mask)
{
    SD_GRID_LOOP(ch, n_chunks)
    {
        uint64_t x = seed ^ (ch * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL);
        uint64_t s0 = d_splitmix64(&x) ^ ch, s[4];
        for (int i = 0; i < 4; i++)
            s[i] = d_splitmix64(&s0);
        size_t end = (ch + 1) * DROPOUT_CHUNK < n ? (ch + 1) * DROPOUT_CHUNK : n;
        for (size_t i = ch * DROPOUT_CHUNK; i < end; i++) {
            float u = (float)(d_xoshiro(s) >> 40) * (1.0f / 16777216.0f);
            mask[i] = u < p ? 0.0f : keep;
        }
    }
}

/* ---- broadcast binary ops ---- */

struct shape4 {
    int as[4], bs[4];
};

/* b's offset of a's element i: b's index with its broadcast dims at 0 */
__device__ static size_t bcast_off(const shape4 &s, size_t i)
{
    size_t off = 0, stride = 1;
    for (int d = 3; d >= 0; d--) {
        size_t id = i % (size_t)s.as[d];
        i /= (size_t)s.as[d];
        if (s.bs[d] != 1)
            off += id * stride;
        stride *= (size_t)s.bs[d];
    }
    return off;
}

__device__ static inline float binop(char op, float a, float b) { return op == '+' ? a + b : op == '-' ? a - b : a * b; }

__global__ static void k_binary_fwd(char op, shape4 s, size_t n, const float *a, const float *b, float *y)
{
    SD_GRID_LOOP(i, n) y[i] = binop(op, a[i], b[bcast_off(s, i)]);
}

__global__ static void k_binary_bwd_a(char op, shape4 s, size_t n, const float *b, const float *gy, float *ga)
{
    SD_GRID_LOOP(i, n) ga[i] += op == '*' ? gy[i] * b[bcast_off(s, i)] : gy[i];
}

/* Each element of b sums its broadcast positions in index order (double),
 * as the CPU does: no atomics, the same order on every run. */
__global__ static void k_binary_bwd_b(char op, shape4 s, size_t nb, const float *a, const float *gy, float *gb)
{
    SD_GRID_LOOP(j, nb)
    {
        int lo[4], hi[4];
        size_t rem = j;
        for (int d = 3; d >= 0; d--) {
            int id = (int)(rem % (size_t)s.bs[d]);
            rem /= (size_t)s.bs[d];
            lo[d] = s.bs[d] == 1 ? 0 : id;
            hi[d] = s.bs[d] == 1 ? s.as[d] : id + 1;
        }
        size_t ast0 = (size_t)s.as[1] * s.as[2] * s.as[3], ast1 = (size_t)s.as[2] * s.as[3], ast2 = (size_t)s.as[3];
        double acc = 0.0;
        for (int i0 = lo[0]; i0 < hi[0]; i0++)
            for (int i1 = lo[1]; i1 < hi[1]; i1++)
                for (int i2 = lo[2]; i2 < hi[2]; i2++) {
                    size_t base = i0 * ast0 + i1 * ast1 + i2 * ast2;
                    for (int i3 = lo[3]; i3 < hi[3]; i3++)
                        acc += op == '*' ? (double)gy[base + i3] * a[base + i3] : (double)gy[base + i3];
                }
        gb[j] += (op == '-' ? -1.0f : 1.0f) * (float)acc;
    }
}

/* ---- copies, sums, per-channel helpers ---- */

__global__ static void k_copy_blocks(size_t outer, size_t len, const float *src, size_t ss, float *dst, size_t ds,
                                     bool acc)
{
    SD_GRID_LOOP(k, outer * len)
    {
        size_t o = k / len, i = k % len;
        if (acc)
            dst[o * ds + i] += src[o * ss + i];
        else
            dst[o * ds + i] = src[o * ss + i];
    }
}

struct f_sum {
    const float *x;
    __device__ void operator()(size_t i, double *acc) const { acc[0] += x[i]; }
};

/* one block per channel: a strided double sum per thread, then a fixed tree */
__global__ static void k_channel_sum(int outer, int ch, int inner, const float *x, float *dst)
{
    __shared__ double sh[SD_THREADS];
    int k = blockIdx.x;
    size_t cnt = (size_t)outer * inner;
    double acc = 0.0;
    for (size_t j = threadIdx.x; j < cnt; j += blockDim.x) {
        size_t o = j / (size_t)inner, i = j % (size_t)inner;
        acc += x[(o * ch + k) * inner + i];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = (int)blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        dst[k] += (float)sh[0];
}

__global__ static void k_add_bias(int ch, size_t inner, size_t n, const float *b, float *y)
{
    SD_GRID_LOOP(i, n) y[i] += b[(i / inner) % (size_t)ch];
}

/* ---- conv2d_fused's epilogue (src/cpu/conv_post.c is the reference) ---- */

__device__ static inline float post_lo(int act, float slope)
{
    return act == SD_ACT_NONE ? 1.0f : act == SD_ACT_RELU ? 0.0f : slope;
}

__global__ static void k_conv_post_fwd(int c, size_t plane, size_t n, const float *scale, const float *shift,
                                       const float *res, int act, float slope, float *y)
{
    const float lo = post_lo(act, slope);
    SD_GRID_LOOP(i, n)
    {
        int k = (int)((i / plane) % (size_t)c);
        float v = y[i] * (scale ? scale[k] : 1.0f) + (shift ? shift[k] : 0.0f) + (res ? res[i] : 0.0f);
        y[i] = v > 0.0f ? v : v * lo;
    }
}

__global__ static void k_conv_post_bwd(int c, size_t plane, size_t n, const float *scale, int act, float slope,
                                       const float *y, const float *dy, float *dres, float *dpre)
{
    const float lo = post_lo(act, slope);
    SD_GRID_LOOP(i, n)
    {
        float g = y[i] > 0.0f ? dy[i] : dy[i] * lo;
        if (dres)
            dres[i] += g;
        dpre[i] = g * (scale ? scale[(i / plane) % (size_t)c] : 1.0f);
    }
}

__global__ static void k_conv_post_fold(int c, float eps, const float *bias, const float *w, const float *b,
                                        const float *rmean, const float *rvar, float *scale, float *shift)
{
    SD_GRID_LOOP(k, (size_t)c)
    {
        float s = (w ? w[k] : 1.0f) / sqrtf(rvar[k] + eps);
        scale[k] = s;
        shift[k] = (b ? b[k] : 0.0f) + ((bias ? bias[k] : 0.0f) - rmean[k]) * s;
    }
}

/* ---- optimiser steps ---- */

__global__ static void k_sgd(size_t n, float lr, float wd, float m, float *w, const float *g, float *buf)
{
    SD_GRID_LOOP(i, n)
    {
        if (buf) {
            float d = g[i] + wd * w[i];
            buf[i] = m * buf[i] + d;
            w[i] -= lr * buf[i];
        } else {
            w[i] -= lr * (g[i] + wd * w[i]);
        }
    }
}

__global__ static void k_adam(size_t n, float step_size, float bc2_sqrt, float wd, float b1, float b2, float eps,
                              float *w, const float *g, float *m, float *v)
{
    SD_GRID_LOOP(i, n)
    {
        float gi = g[i] + wd * w[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        w[i] -= step_size * (m[i] / denom);
    }
}

extern "C" {

/* the mask may be host memory (the op allocates it from its host arena) */
void sd_cuda_dropout_mask(uint64_t seed, float p, size_t n, float *mask)
{
    float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    size_t n_chunks = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
    bool on_dev = sd_cuda_is_device(mask);
    float *d = on_dev ? mask : (float *)sd_cuda_scratch(SD_CUDA_SCR_OUT, n * sizeof(float));
    if (!d)
        return;
    SD_LAUNCH(k_dropout, n_chunks, seed, p, keep, n, n_chunks, d);
    if (!on_dev && n)
        sd_cuda_ok(cudaMemcpy(mask, d, n * sizeof(float), cudaMemcpyDeviceToHost), "dropout mask to host");
}

void sd_cuda_binary_fwd(char op, const int as[4], const int bs[4], const float *a, const float *b, float *y)
{
    shape4 s;
    for (int d = 0; d < 4; d++)
        s.as[d] = as[d], s.bs[d] = bs[d];
    size_t n = (size_t)as[0] * as[1] * as[2] * as[3];
    SD_LAUNCH(k_binary_fwd, n, op, s, n, a, b, y);
}

void sd_cuda_binary_bwd(char op, const int as[4], const int bs[4], const float *a, const float *b, const float *dy,
                        float *da, float *db)
{
    shape4 s;
    for (int d = 0; d < 4; d++)
        s.as[d] = as[d], s.bs[d] = bs[d];
    size_t n = (size_t)as[0] * as[1] * as[2] * as[3], nb = (size_t)bs[0] * bs[1] * bs[2] * bs[3];
    if (da)
        SD_LAUNCH(k_binary_bwd_a, n, op, s, n, b, dy, da);
    if (db)
        SD_LAUNCH(k_binary_bwd_b, nb, op, s, nb, a, dy, db);
}

void sd_cuda_copy_blocks(size_t outer, size_t len, const float *src, size_t src_stride, float *dst,
                         size_t dst_stride, bool accumulate)
{
    SD_LAUNCH(k_copy_blocks, outer * len, outer, len, src, src_stride, dst, dst_stride, accumulate);
}

double sd_cuda_sum(size_t n, const float *x)
{
    double s[1];
    sd_fixed_sum<1>(n, f_sum{x}, s);
    return s[0];
}

void sd_cuda_channel_sum_acc(int outer, int ch, int inner, const float *x, float *dst)
{
    if (ch <= 0)
        return;
    SD_CALL(k_channel_sum, ch, SD_THREADS, outer, ch, inner, x, dst);
    sd_cuda_ok(cudaGetLastError(), "k_channel_sum");
}

void sd_cuda_conv_post_fwd(int n, int c, size_t plane, const float *scale, const float *shift, const float *res,
                           int act, float slope, float *y)
{
    size_t total = (size_t)n * c * plane;
    SD_LAUNCH(k_conv_post_fwd, total, c, plane, total, scale, shift, res, act, slope, y);
}

void sd_cuda_conv_post_bwd(int n, int c, size_t plane, const float *scale, int act, float slope, const float *y,
                           const float *dy, float *dres, float *dpre)
{
    size_t total = (size_t)n * c * plane;
    SD_LAUNCH(k_conv_post_bwd, total, c, plane, total, scale, act, slope, y, dy, dres, dpre);
}

void sd_cuda_conv_post_fold(int c, float eps, const float *bias, const float *w, const float *b, const float *rmean,
                            const float *rvar, float *scale, float *shift)
{
    SD_LAUNCH(k_conv_post_fold, (size_t)c, c, eps, bias, w, b, rmean, rvar, scale, shift);
}

void sd_cuda_add_bias(int outer, int ch, int inner, const float *b, float *y)
{
    size_t n = (size_t)outer * ch * inner;
    SD_LAUNCH(k_add_bias, n, ch, (size_t)inner, n, b, y);
}

void sd_cuda_sgd_step(size_t n, float lr, float wd, float m, float *w, const float *g, float *buf)
{
    SD_LAUNCH(k_sgd, n, n, lr, wd, m, w, g, buf);
}

void sd_cuda_adam_step(size_t n, float step_size, float bc2_sqrt, float wd, float b1, float b2, float eps, float *w,
                       const float *g, float *m, float *v)
{
    SD_LAUNCH(k_adam, n, n, step_size, bc2_sqrt, wd, b1, b2, eps, w, g, m, v);
}

} /* extern "C" */
