/* Host emulation of the little of CUDA the project's kernels use, for
 * tests/test_cuda_emulated.c: with SD_CUDA_EMULATE the .cu files compile as
 * plain C++ and each launch runs its blocks one after another with one
 * thread each, so the kernels' index arithmetic runs (and is checked against
 * the CPU) on machines without a GPU or CUDA toolkit. Not cuDNN. */
#ifndef SEGDA_CUDA_EMULATE_H
#define SEGDA_CUDA_EMULATE_H

#include <math.h>
#include <stddef.h>

/* Every sd_cuda_ name is renamed sd_emu_ by a header the Makefile generates
 * from src/core/ops.def (-include), and the runtime calls below get sd_emu_
 * names too, so the emulated kernels link beside the real backend. */
#define sd_cuda_scratch sd_emu_scratch
#define sd_cuda_is_device sd_emu_is_device
#define sd_cuda_in sd_emu_in
#define sd_cuda_ok sd_emu_ok
#define sd_cuda_present sd_emu_present
#define sd_cuda_why sd_emu_why
#define sd_cuda_cc sd_emu_cc
#define sd_cuda_fast_algos sd_emu_fast_algos
#define sd_cuda_set_fast sd_emu_set_fast
#define sd_cuda_describe sd_emu_describe
#define sd_cuda_channel_sum_acc sd_emu_channel_sum_acc
#define sd_cuda_add_bias sd_emu_add_bias
#define cudaMemcpy sd_emu_cudaMemcpy
#define cudaGetLastError sd_emu_cudaGetLastError
#define cudaPeekAtLastError sd_emu_cudaPeekAtLastError

typedef enum cudaError { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 } cudaError_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3
};

#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
#ifdef __cplusplus
}

struct sd_emu_dim {
    unsigned x, y, z;
};
extern thread_local sd_emu_dim blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
/* blocks run one at a time: one static array serves them all */
#define __shared__ static
static inline void __syncthreads(void) {}

/* Blocks and threads run one after another. A kernel with __syncthreads
 * (SD_CALL) gets one thread per block: its strided loops take every element
 * in that thread and its trees have nothing to add. One without (SD_CALL_NOSYNC,
 * the grid-stride kernels) gets the launch's real geometry. */
template <class F>
static void sd_emu_launch(unsigned grid, unsigned block, F f)
{
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; b++)
        for (unsigned t = 0; t < block; t++) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            f();
        }
}
#define SD_CALL(kernel, grid, block, ...) sd_emu_launch((unsigned)(grid), 1u, [&] { kernel(__VA_ARGS__); })
#define SD_CALL_NOSYNC(kernel, grid, block, ...) \
    sd_emu_launch((unsigned)(grid), (unsigned)(block), [&] { kernel(__VA_ARGS__); })
#endif

#endif
