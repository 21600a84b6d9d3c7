// The host side of the CUDA emulation (src/cuda/emulate.h) for
// tests/test_cuda_emulated.c: "device" memory is host memory kept in a
// registry (so the wrappers' host-or-device detection is exercised), the
// runtime calls the kernels make, and the table of the emulated kernels.
// The convolutions are the CPU's: cuDNN cannot be emulated.
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>

#include "cuda/cuda_internal.h"

extern "C" {
#include "cpu/kernels.h"
}

thread_local sd_emu_dim blockIdx, threadIdx, blockDim, gridDim;
bool sd_cuda_fast_algos = false;

static std::mutex mu;
static std::map<const char *, size_t> device; // start -> bytes

static void *dev_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 64);
    if (p) {
        std::lock_guard<std::mutex> g(mu);
        device[(const char *)p] = bytes ? bytes : 64;
    }
    return p;
}

static void dev_free(void *p)
{
    if (!p)
        return;
    {
        std::lock_guard<std::mutex> g(mu);
        device.erase((const char *)p);
    }
    free(p);
}

extern "C" {

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind)
{
    memmove(dst, src, count);
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }

bool sd_cuda_ok(cudaError_t e, const char *where)
{
    if (e != cudaSuccess)
        sd_fail(SD_ERR_UNSUPPORTED, "cuda (emulated): %s failed", where);
    return e == cudaSuccess;
}

bool sd_cuda_is_device(const void *p)
{
    std::lock_guard<std::mutex> g(mu);
    auto it = device.upper_bound((const char *)p);
    if (it == device.begin())
        return false;
    --it;
    return (const char *)p < it->first + it->second;
}

static thread_local void *scr[SD_CUDA_SCR_COUNT];
static thread_local size_t scr_cap[SD_CUDA_SCR_COUNT];

void *sd_cuda_scratch(int slot, size_t bytes)
{
    if (bytes > scr_cap[slot]) {
        dev_free(scr[slot]);
        scr[slot] = dev_alloc(bytes);
        scr_cap[slot] = scr[slot] ? bytes : 0;
    }
    return scr[slot];
}

const void *sd_cuda_in(int slot, const void *p, size_t bytes)
{
    if (!p || sd_cuda_is_device(p))
        return p;
    void *d = sd_cuda_scratch(slot, bytes);
    if (d)
        memcpy(d, p, bytes);
    return d;
}

void *sd_cuda_buffer_alloc(size_t bytes) { return dev_alloc(bytes); }
void *sd_cuda_buffer_alloc_zero(size_t bytes)
{
    void *p = dev_alloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}
void sd_cuda_buffer_free(void *p) { dev_free(p); }
void sd_cuda_buffer_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
void sd_cuda_copy_to_host(void *host, const void *src, size_t bytes) { memmove(host, src, bytes); }
void sd_cuda_copy_from_host(void *dst, const void *host, size_t bytes) { memmove(dst, host, bytes); }
void sd_cuda_sync(void) {}
void *sd_cuda_host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void sd_cuda_host_free(void *p) { free(p); }
void sd_cuda_copy_from_host_async(int slot, void *dst, const void *host, size_t bytes)
{
    (void)slot;
    memmove(dst, host, bytes);
}
void sd_cuda_wait_copy(int slot) { (void)slot; }
bool sd_cuda_compute_supported(sd_dtype compute) { return compute == SD_DTYPE_F32; }

bool sd_cuda_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    return sd_cpu_conv2d_fwd(g, x, w, b, y);
}
bool sd_cuda_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                        float *db)
{
    return sd_cpu_conv2d_bwd(g, x, w, dy, dx, dw, db);
}
bool sd_cuda_conv_transpose2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    return sd_cpu_conv_transpose2d_fwd(g, x, w, b, y);
}
bool sd_cuda_conv_transpose2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db)
{
    return sd_cpu_conv_transpose2d_bwd(g, x, w, dy, dx, dw, db);
}

static bool emu_supports(sd_op, int, const sd_tensor *const *) { return true; }

const sd_backend *sd_emu_backend(void)
{
    static sd_backend b;
    static std::once_flag once;
    std::call_once(once, [] {
#define SD_KERNEL(name, ret, params) b.name = sd_emu_##name;
#include "core/ops.def"
#undef SD_KERNEL
        b.name = "cuda-emulated";
        b.supports = emu_supports;
    });
    return &b;
}

} // extern "C"
