/* Data-parallel communication between the processes of one run (MPI, when
 * segda is built with it): start and stop, rank and size, sums of buffers
 * in a fixed order, broadcast, barrier, and agreement on failures so that
 * no rank waits forever on one that gave up. src/dist/dist.c is the only
 * file that includes mpi.h. Without MPI (or outside mpirun) the run is one
 * process: rank 0 of 1, and every call here is a no-op that returns SD_OK.
 * Not here: what is reduced and when (the trainer, src/train/loop.c). */
#ifndef SEGDA_DIST_H
#define SEGDA_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"
#include "segda/tensor.h"

/* Whether this build holds the MPI code path. */
bool sd_dist_compiled(void);
/* "Open MPI v4.1.4" or "built without MPI", for --version. */
const char *sd_dist_describe(void);

/* Starts MPI when the process was launched by mpirun/mpiexec (the launcher's
 * environment says so); otherwise, or without MPI, the process runs alone.
 * Errors come back from MPI calls (MPI_ERRORS_RETURN), named by call. */
sd_status sd_dist_init(int *argc, char ***argv);
void sd_dist_finalize(void);
/* Stops every process of the job (after a failure that cannot be agreed on). */
void sd_dist_abort(int code);

int sd_dist_rank(void);   /* 0 when alone */
int sd_dist_size(void);   /* 1 when alone */

/* In-place sum over the ranks of buf[n] on every rank. The order is fixed,
 * ((b0 + b1) + b2 ...): with up to 4 ranks (or a small buffer) every rank
 * receives the others' buffers and adds them in rank order itself (one
 * round trip); otherwise rank 0 gathers and adds them, then broadcasts the
 * result. Either way the bits depend only on the inputs and the number of
 * ranks, never on timing, the path or the network. */
sd_status sd_dist_sum_f32(float *buf, size_t n);
sd_status sd_dist_sum_f64(double *buf, size_t n);
/* Integer sums (exact in any order): confusion matrices, pixel counts. */
sd_status sd_dist_sum_u64(uint64_t *buf, size_t n);
/* --device SPEC for this rank: sd_device_parse + sd_device_select, except
 * that a plain "cuda" under mpirun gives the rank of local rank L (its index
 * among the ranks on its machine) cuda:(L mod devices), one GPU per rank;
 * "cuda:N" pins every rank to N. */
sd_status sd_dist_device_select(const char *spec);
int sd_dist_local_rank(void);   /* 0 when alone */
/* Data parallel on a device (--device cuda): once after sd_dist_init, sets
 * up NCCL when this build has it (rank 0's unique id broadcast over MPI,
 * ncclCommInitRank) unless SEGDA_NCCL=0; a no-op for the CPU or a single
 * process. */
sd_status sd_dist_device_init(sd_device dev);
/* buf[n] on dev := its mean over the ranks, the sum in the fixed order of
 * sd_dist_sum_f32: NCCL for CUDA when set up (then scaled by 1/N, which is the
 * division's bits when N is a power of two), else copied to the host, summed
 * over MPI, divided by N and copied back. */
sd_status sd_dist_mean_f32_on(float *buf, size_t n, sd_device dev);
/* "MPI", "NCCL" or "MPI through host copies": how dev's buffers are summed. */
const char *sd_dist_device_path(sd_device dev);
/* Copies root's buf[bytes] to every rank. */
sd_status sd_dist_bcast(void *buf, size_t bytes, int root);
sd_status sd_dist_barrier(void);

/* Collective agreement on a status: every rank passes its own (with its
 * message in the error context); all return the lowest failing rank's
 * status, and the others' messages become "rank R: MESSAGE". Call it at the
 * same points on every rank. */
sd_status sd_dist_agree(sd_status st);
/* True on every rank when flag is true on any (a stop request seen by one). */
bool sd_dist_any(bool flag);

#endif
