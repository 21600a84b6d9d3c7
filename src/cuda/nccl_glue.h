/* The NCCL side of data-parallel sums (src/cuda/nccl.c), for src/dist/dist.c:
 * plain C prototypes, no CUDA or NCCL header. Built when nccl.h and libnccl
 * are found beside CUDA (SD_HAVE_NCCL); dist.c broadcasts the unique id over
 * MPI and calls these only then. */
#ifndef SEGDA_CUDA_NCCL_GLUE_H
#define SEGDA_CUDA_NCCL_GLUE_H

#include <stddef.h>

#include "segda/core.h"

#define SD_NCCL_ID_BYTES 128   /* NCCL_UNIQUE_ID_BYTES (checked in nccl.c) */

/* Rank 0: a fresh unique id (id[SD_NCCL_ID_BYTES]) to broadcast. */
sd_status sd_nccl_unique_id(void *id);
/* Every rank, with rank 0's id: ncclCommInitRank on the current device. */
sd_status sd_nccl_init(const void *id, int rank, int size);
/* buf[n] on the device := the mean over the ranks, in a fixed order: rank 0
 * receives the ranks' buffers one by one and adds them in rank order
 * ((b0 + b1) + b2 ...) with the backend's axpy, broadcasts the sum, and every
 * rank multiplies by 1/size (= the CPU path's division when size is a
 * power of two). */
sd_status sd_nccl_mean(float *buf, size_t n);
void sd_nccl_free(void);
/* "NCCL 2.28.x" */
const char *sd_nccl_version(void);

#endif
