/* The CUDA backend: its table (every kernel of src/core/ops.def as
 * sd_cuda_<name>, so a missing one fails to link), what it supports, device
 * storage, the device probe and the per-thread device scratch. The kernels
 * live in the .cu files of src/cuda/. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "segda/core.h"

bool sd_cuda_fast_algos = false;

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int n_devices, device_cc;
static char why[256];

/* libcudart loads without a GPU; cudaGetDeviceCount then reports
 * cudaErrorNoDevice (or a driver error), which is what we tell the user. */
static void probe(void)
{
    cudaError_t e = cudaGetDeviceCount(&n_devices);
    if (e != cudaSuccess || n_devices < 1) {
        n_devices = 0;
        snprintf(why, sizeof why, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "the driver lists none");
        (void)cudaGetLastError();
        return;
    }
    int dev = 0, major = 0, minor = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    device_cc = major * 10 + minor;
}

bool sd_cuda_present(void)
{
    pthread_once(&probe_once, probe);
    return n_devices > 0;
}

const char *sd_cuda_why(void)
{
    pthread_once(&probe_once, probe);
    return n_devices > 0 ? "" : why;
}

int sd_cuda_count(void)
{
    pthread_once(&probe_once, probe);
    return n_devices;
}

/* --device cuda:N. The probe's compute capability was device 0's: asked again. */
bool sd_cuda_select(int index)
{
    if (!sd_cuda_present() || index < 0 || index >= n_devices)
        return false;
    if (!sd_cuda_ok(cudaSetDevice(index), "cudaSetDevice"))
        return false;
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, index);
    device_cc = major * 10 + minor;
    return true;
}

int sd_cuda_cc(void)
{
    pthread_once(&probe_once, probe);
    return device_cc;
}

bool sd_cuda_ok(cudaError_t e, const char *where)
{
    if (e == cudaSuccess)
        return true;
    fprintf(stderr, "segda: cuda: %s: %s\n", where, cudaGetErrorString(e));
    sd_fail(SD_ERR_UNSUPPORTED, "cuda: %s: %s", where, cudaGetErrorString(e));
    return false;
}

/* ---- per-thread scratch ---- */

static _Thread_local void *scr[SD_CUDA_SCR_COUNT];
static _Thread_local size_t scr_cap[SD_CUDA_SCR_COUNT];

void *sd_cuda_scratch(int slot, size_t bytes)
{
    if (bytes > scr_cap[slot]) {
        /* the old buffer may still be read by queued kernels */
        cudaDeviceSynchronize();
        cudaFree(scr[slot]);
        scr[slot] = NULL;
        scr_cap[slot] = 0;
        size_t cap = bytes < 4096 ? 4096 : bytes + bytes / 4;
        if (!sd_cuda_ok(cudaMalloc(&scr[slot], cap), "scratch"))
            return NULL;
        scr_cap[slot] = cap;
    }
    return scr[slot];
}

bool sd_cuda_is_device(const void *p)
{
    struct cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

const void *sd_cuda_in(int slot, const void *p, size_t bytes)
{
    if (!p || sd_cuda_is_device(p))
        return p;
    void *d = sd_cuda_scratch(slot, bytes);
    if (d && !sd_cuda_ok(cudaMemcpy(d, p, bytes, cudaMemcpyHostToDevice), "copy of a host input"))
        return NULL;
    return d;
}

/* ---- the table ---- */

/* Tensors are f32 on the device; bf16 is a compute dtype of the convolutions.
 * Without a device nothing is supported, with the reason recorded. */
static bool cuda_supports(sd_op op, int n_in, const sd_tensor *const *in)
{
    (void)op;
    if (!sd_cuda_present()) {
        sd_fail(SD_ERR_UNSUPPORTED, "%s", sd_cuda_why());
        return false;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->dtype != SD_DTYPE_F32)
            return false;
    return true;
}

void *sd_cuda_buffer_alloc(size_t bytes)
{
    void *p = NULL;
    /* cudaMalloc aligns to 256 bytes, beyond the 64 the registry asks */
    if (cudaMalloc(&p, bytes ? bytes : 64) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

void *sd_cuda_buffer_alloc_zero(size_t bytes)
{
    void *p = sd_cuda_buffer_alloc(bytes);
    if (p)
        sd_cuda_buffer_zero(p, bytes ? bytes : 64);
    return p;
}

void sd_cuda_buffer_free(void *p)
{
    if (p)
        sd_cuda_ok(cudaFree(p), "buffer_free");
}

void sd_cuda_buffer_zero(void *p, size_t bytes) { sd_cuda_ok(cudaMemset(p, 0, bytes), "buffer_zero"); }

void sd_cuda_copy_to_host(void *host, const void *src, size_t bytes)
{
    if (bytes)
        sd_cuda_ok(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost), "copy_to_host");
}

void sd_cuda_copy_from_host(void *dst, const void *host, size_t bytes)
{
    if (bytes)
        sd_cuda_ok(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice), "copy_from_host");
}

void sd_cuda_sync(void) { sd_cuda_ok(cudaDeviceSynchronize(), "sync"); }

/* ---- pinned host memory and the copy stream ---- */

void *sd_cuda_host_alloc(size_t bytes)
{
    void *p = NULL;
    /* portable: pinned for every device; loader threads allocate it */
    if (cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocPortable) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

void sd_cuda_host_free(void *p)
{
    if (p)
        sd_cuda_ok(cudaFreeHost(p), "host_free");
}

/* One non-blocking stream per host thread for host->device copies (a
 * blocking one would serialise with the legacy default stream the kernels
 * run on) and an event per slot: its last copy. */
#define COPY_SLOTS 4
static _Thread_local cudaStream_t copy_stream;
static _Thread_local cudaEvent_t copy_done[COPY_SLOTS];
static _Thread_local bool copy_started[COPY_SLOTS];

static bool copy_stream_ready(void)
{
    if (copy_stream)
        return true;
    if (!sd_cuda_ok(cudaStreamCreateWithFlags(&copy_stream, cudaStreamNonBlocking), "copy stream"))
        return false;
    for (int i = 0; i < COPY_SLOTS; i++)
        if (!sd_cuda_ok(cudaEventCreateWithFlags(&copy_done[i], cudaEventDisableTiming), "copy event")) {
            cudaStreamDestroy(copy_stream);
            copy_stream = NULL;
            return false;
        }
    return true;
}

void sd_cuda_copy_from_host_async(int slot, void *dst, const void *host, size_t bytes)
{
    if (slot < 0 || slot >= COPY_SLOTS || !copy_stream_ready()) {
        sd_cuda_copy_from_host(dst, host, bytes);   /* no stream: a plain copy */
        return;
    }
    if (bytes && sd_cuda_ok(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, copy_stream), "async copy"))
        copy_started[slot] = sd_cuda_ok(cudaEventRecord(copy_done[slot], copy_stream), "copy event");
}

void sd_cuda_wait_copy(int slot)
{
    if (slot >= 0 && slot < COPY_SLOTS && copy_started[slot])
        sd_cuda_ok(cudaStreamWaitEvent(0, copy_done[slot], 0), "wait for a copy");
}

/* bf16 tensor-core convolutions need compute capability 8.0 (Ampere) */
bool sd_cuda_compute_supported(sd_dtype compute)
{
    if (!sd_cuda_present())
        return false;
    return compute == SD_DTYPE_F32 || (compute == SD_DTYPE_BF16 && sd_cuda_cc() >= 80);
}

const sd_backend sd_backend_cuda = {
    .name = "cuda",
    .supports = cuda_supports,
#define SD_KERNEL(name, ret, params) .name = sd_cuda_##name,
#include "core/ops.def"
#undef SD_KERNEL
};

/* ---- what segda devices prints ---- */

size_t sd_cuda_describe(char *buf, size_t cap)
{
    size_t k = 0;
    if (!sd_cuda_present())
        return (size_t)snprintf(buf, cap, "cuda: %s\n", sd_cuda_why());
    for (int d = 0; d < n_devices && k < cap; d++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess)
            continue;
        k += (size_t)snprintf(buf + k, cap - k, "cuda:%d: %s, %.1f GiB, compute capability %d.%d\n", d, p.name,
                              (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor);
    }
    return k;
}

void sd_cuda_set_fast(bool on) { sd_cuda_fast_algos = on; }
