/* NCCL for data-parallel runs on CUDA devices (nccl_glue.h): the
 * communicator and the fixed-order mean of a device buffer. Point-to-point
 * sends to rank 0 rather than ncclAllReduce, whose ring/tree order (and so
 * its bits) depends on the topology: the sum is the same as the MPI path's
 * for the same buffers. Compiled to stubs without SD_HAVE_NCCL. */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/nccl_glue.h"

#ifdef SD_HAVE_NCCL
#include <nccl.h>

_Static_assert(sizeof(ncclUniqueId) == SD_NCCL_ID_BYTES, "SD_NCCL_ID_BYTES differs from NCCL_UNIQUE_ID_BYTES");

static ncclComm_t comm;
static int g_rank, g_size;
static float *recv_buf;
static size_t recv_cap;

/* chunks of at most this many floats go through rank 0's receive buffer */
#define CHUNK ((size_t)1 << 22)

static sd_status nccl_fail(ncclResult_t r, const char *what)
{
    return sd_fail(SD_ERR_IO, "rank %d: %s failed: %s (did another rank of the job die?)", g_rank, what,
                   ncclGetErrorString(r));
}

sd_status sd_nccl_unique_id(void *id)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return nccl_fail(r, "ncclGetUniqueId");
    memcpy(id, &u, sizeof u);
    return SD_OK;
}

sd_status sd_nccl_init(const void *id, int rank, int size)
{
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    g_rank = rank;
    g_size = size;
    ncclResult_t r = ncclCommInitRank(&comm, size, u, rank);
    if (r != ncclSuccess) {
        comm = NULL;
        return nccl_fail(r, "ncclCommInitRank");
    }
    return SD_OK;
}

sd_status sd_nccl_mean(float *buf, size_t n)
{
    if (!comm)
        return sd_fail(SD_ERR_ARG, "nccl: mean before sd_nccl_init");
    if (g_size == 1 || n == 0)
        return SD_OK;
    size_t cn = n < CHUNK ? n : CHUNK;
    if (g_rank == 0 && cn > recv_cap) {
        cudaFree(recv_buf);
        recv_buf = NULL;
        recv_cap = 0;
        if (!sd_cuda_ok(cudaMalloc((void **)&recv_buf, cn * sizeof(float)), "nccl receive buffer"))
            return SD_ERR_NOMEM;
        recv_cap = cn;
    }
    ncclResult_t r = ncclSuccess;
    for (size_t off = 0; off < n && r == ncclSuccess; off += cn) {
        size_t m = n - off < cn ? n - off : cn;
        float *b = buf + off;
        if (g_rank == 0) {
            /* one rank at a time, in rank order; the adds queue behind each receive on the same stream */
            for (int k = 1; k < g_size && r == ncclSuccess; k++) {
                r = ncclRecv(recv_buf, m, ncclFloat, k, comm, 0);
                if (r == ncclSuccess)
                    sd_cuda_axpy(m, 1.0f, recv_buf, b);
            }
        } else {
            r = ncclSend(b, m, ncclFloat, 0, comm, 0);
        }
        if (r == ncclSuccess)
            r = ncclBroadcast(b, b, m, ncclFloat, 0, comm, 0);
    }
    if (r != ncclSuccess)
        return nccl_fail(r, "nccl sum");
    sd_cuda_scale_fwd(n, 1.0f / (float)g_size, buf, buf);
    return sd_cuda_ok(cudaStreamSynchronize(0), "nccl sum") ? SD_OK : SD_ERR_IO;
}

void sd_nccl_free(void)
{
    if (comm)
        ncclCommDestroy(comm);
    comm = NULL;
    cudaFree(recv_buf);
    recv_buf = NULL;
    recv_cap = 0;
}

const char *sd_nccl_version(void)
{
    static char v[32];
    int code = 0;
    ncclGetVersion(&code);
    snprintf(v, sizeof v, "NCCL %d.%d.%d", code / 10000, code / 100 % 100, code % 100);
    return v;
}

#else /* built without NCCL: dist.c never calls these */

sd_status sd_nccl_unique_id(void *id)
{
    (void)id;
    return sd_fail(SD_ERR_UNSUPPORTED, "this build has no NCCL");
}
sd_status sd_nccl_init(const void *id, int rank, int size)
{
    (void)id;
    (void)rank;
    (void)size;
    return sd_fail(SD_ERR_UNSUPPORTED, "this build has no NCCL");
}
sd_status sd_nccl_mean(float *buf, size_t n)
{
    (void)buf;
    (void)n;
    return sd_fail(SD_ERR_UNSUPPORTED, "this build has no NCCL");
}
void sd_nccl_free(void) {}
const char *sd_nccl_version(void) { return "built without NCCL"; }

#endif
