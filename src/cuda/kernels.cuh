/* Device-side helpers shared by the .cu files: launch geometry for
 * grid-stride loops, the fixed-order reductions (deterministic: every
 * partial sum covers a fixed range and is added in a fixed order), and a
 * check after each launch. Every launch goes through SD_CALL, so that
 * SD_CUDA_EMULATE (cuda/emulate.h) can run the kernels on the host. */
#ifndef SEGDA_CUDA_KERNELS_CUH
#define SEGDA_CUDA_KERNELS_CUH

#ifndef SD_CUDA_EMULATE
#include <cuda_runtime.h>
#endif

#include "cuda/cuda_internal.h"

/* SD_CALL launches any kernel; SD_CALL_NOSYNC one without __syncthreads
 * (which the emulation may then run with all its threads, one by one) */
#ifndef SD_CUDA_EMULATE
#define SD_CALL(kernel, grid, block, ...) kernel<<<(grid), (block)>>>(__VA_ARGS__)
#define SD_CALL_NOSYNC SD_CALL
#endif

#define SD_THREADS 256
/* Partial sums of a reduction: a constant, so the summation order (and the
 * result) does not depend on the device's size. */
#define SD_PARTS 256

/* blocks for n elements with one thread each; grid-stride loops cover the rest */
static inline unsigned sd_blocks(size_t n)
{
    size_t b = (n + SD_THREADS - 1) / SD_THREADS;
    if (b < 1)
        b = 1;
    return b > 65535u * 16u ? 65535u * 16u : (unsigned)b;
}

#define SD_GRID_LOOP(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)blockDim.x * gridDim.x)

#define SD_LAUNCH(kernel, n, ...)                                          \
    do {                                                                   \
        if ((n) > 0) {                                                     \
            SD_CALL_NOSYNC(kernel, sd_blocks(n), SD_THREADS, __VA_ARGS__); \
            sd_cuda_ok(cudaGetLastError(), #kernel);                       \
        }                                                                  \
    } while (0)

/* Block b of SD_PARTS sums elements [n*b/P, n*(b+1)/P) in double: each thread
 * a strided subset, then a shared-memory tree in a fixed order (blockDim a
 * power of two). F adds
 * element i's K terms to acc (and may write per-element outputs). */
template <int K, class F>
__global__ void sd_k_partial(size_t n, F f, double *parts)
{
    __shared__ double sh[K][SD_THREADS];
    size_t lo = n * blockIdx.x / gridDim.x, hi = n * (blockIdx.x + 1) / gridDim.x;
    double acc[K];
    for (int k = 0; k < K; k++)
        acc[k] = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
        f(i, acc);
    for (int k = 0; k < K; k++)
        sh[k][threadIdx.x] = acc[k];
    __syncthreads();
    for (int s = (int)blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s)
            for (int k = 0; k < K; k++)
                sh[k][threadIdx.x] += sh[k][threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        for (int k = 0; k < K; k++)
            parts[(size_t)blockIdx.x * K + k] = sh[k][0];
}

/* out[k] = the K sums over n elements; the parts are added on the host in
 * order. Zeros (with the message recorded) when the scratch is missing. */
template <int K, class F>
static void sd_fixed_sum(size_t n, F f, double out[K])
{
    for (int k = 0; k < K; k++)
        out[k] = 0.0;
    double *parts = (double *)sd_cuda_scratch(SD_CUDA_SCR_PARTS, sizeof(double) * K * SD_PARTS);
    if (!parts)
        return;
    void (*kernel)(size_t, F, double *) = sd_k_partial<K, F>;
    SD_CALL(kernel, SD_PARTS, SD_THREADS, n, f, parts);
    if (!sd_cuda_ok(cudaGetLastError(), "reduction"))
        return;
    double h[K * SD_PARTS];
    if (!sd_cuda_ok(cudaMemcpy(h, parts, sizeof h, cudaMemcpyDeviceToHost), "reduction result"))
        return;
    for (int p = 0; p < SD_PARTS; p++)
        for (int k = 0; k < K; k++)
            out[k] += h[p * K + k];
}

/* the CPU's numerically safe sigmoid */
__device__ static inline float sd_sigmoid(float v)
{
    if (v >= 0.0f)
        return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

#endif
