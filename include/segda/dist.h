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

/* In-place sum over the ranks of buf[n] on every rank. The order is fixed:
 * rank 0 gathers the ranks' buffers and adds them in rank order
 * ((b0 + b1) + b2 ...), then broadcasts the result, so the bits depend only
 * on the inputs and the number of ranks, never on timing or the network. */
sd_status sd_dist_sum_f32(float *buf, size_t n);
sd_status sd_dist_sum_f64(double *buf, size_t n);
/* Integer sums (exact in any order): confusion matrices, pixel counts. */
sd_status sd_dist_sum_u64(uint64_t *buf, size_t n);
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
