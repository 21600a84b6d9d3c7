/* Internal to the CUDA backend (src/cuda/ is the only place that includes
 * CUDA headers): the sd_cuda_<kernel> prototypes generated from
 * src/core/ops.def, device probing, per-thread device scratch, and the
 * helpers the .cu files share. Readable from C (backend_cuda.c) and C++. */
#ifndef SEGDA_CUDA_INTERNAL_H
#define SEGDA_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef SD_CUDA_EMULATE
#include "cuda/emulate.h"
#else
#include <cuda_runtime_api.h>
#endif

/* segda's headers have no extern "C" guards of their own */
#ifdef __cplusplus
extern "C" {
#endif

#include "core/backend.h"
#include "segda/core.h"

#define SD_KERNEL(name, ret, params) ret sd_cuda_##name params;
#include "core/ops.def"
#undef SD_KERNEL

/* Scratch slots: one grow-only device buffer per slot and host thread, so
 * the buffers one kernel call uses at once never alias. */
enum {
    SD_CUDA_SCR_PARTS,   /* partial sums of the fixed-order reductions */
    SD_CUDA_SCR_IN0,     /* host inputs copied to the device */
    SD_CUDA_SCR_IN1,
    SD_CUDA_SCR_IN2,
    SD_CUDA_SCR_OUT,     /* device side of an output the caller holds on the host */
    SD_CUDA_SCR_TABLES,  /* index/weight tables of resize and pad */
    SD_CUDA_SCR_SUMS,    /* per-channel sums of norm_bwd */
    SD_CUDA_SCR_WS,      /* cuDNN workspace */
    SD_CUDA_SCR_BF0,     /* bf16 copies for the convolutions */
    SD_CUDA_SCR_BF1,
    SD_CUDA_SCR_BF2,
    SD_CUDA_SCR_BF3,
    SD_CUDA_SCR_COUNT
};

/* A device buffer of at least `bytes` for this thread's slot; NULL when out
 * of memory (the message is recorded). */
void *sd_cuda_scratch(int slot, size_t bytes);
/* Whether p points into device memory (cudaMalloc or managed). */
bool sd_cuda_is_device(const void *p);
/* p itself when it is on the device, else a copy of its bytes in the
 * slot's scratch (NULL stays NULL). Some ops hand host buffers to their
 * kernels (cross-entropy's labels and weights, max pool's argmax, the
 * dropout mask): the wrappers take either. */
const void *sd_cuda_in(int slot, const void *p, size_t bytes);
/* Records a failed CUDA call (sd_fail and one line on stderr); false then. */
bool sd_cuda_ok(cudaError_t e, const char *where);
/* Whether a CUDA device is present; the reason in sd_cuda_why when not. */
bool sd_cuda_present(void);
const char *sd_cuda_why(void);
/* compute capability major*10+minor of the current device (0 without one) */
int sd_cuda_cc(void);
/* cuDNN may use non-deterministic (faster) algorithms */
extern bool sd_cuda_fast_algos;
void sd_cuda_set_fast(bool on);
/* one line per device (name, memory, compute capability), or the reason there is none */
size_t sd_cuda_describe(char *buf, size_t cap);

/* launch helpers of the .cu files (defined in elementwise.cu) */
/* dst[k] += sum of x[o, k, i] over o < outer, i < inner, in a fixed order */
void sd_cuda_channel_sum_acc(int outer, int ch, int inner, const float *x, float *dst);
/* y[o, k, i] += b[k] */
void sd_cuda_add_bias(int outer, int ch, int inner, const float *b, float *y);

#ifdef __cplusplus
}
#endif

#endif
