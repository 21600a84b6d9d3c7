/* The CPU backend: its table (every kernel of src/core/ops.def as
 * sd_cpu_<name>), what it supports, and host-memory storage. Kernels live in
 * the other files of src/cpu/. */
#include <stdlib.h>
#include <string.h>

#include "cpu/dnnl.h"
#include "cpu/kernels.h"

/* Tensors are stored as f32; bf16 is a compute dtype of the convolutions
 * (sd_conv_geom.compute), not a storage type, on this backend. */
static bool cpu_supports(sd_op op, int n_in, const sd_tensor *const *in)
{
    (void)op;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->dtype != SD_DTYPE_F32)
            return false;
    return true;
}

void *sd_cpu_buffer_alloc(size_t bytes)
{
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) ? NULL : p;
}

void sd_cpu_buffer_free(void *p) { free(p); }
void sd_cpu_buffer_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
void sd_cpu_copy_to_host(void *host, const void *src, size_t bytes) { memmove(host, src, bytes); }
void sd_cpu_copy_from_host(void *dst, const void *host, size_t bytes) { memmove(dst, host, bytes); }
void sd_cpu_sync(void) {}
void *sd_cpu_host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void sd_cpu_host_free(void *p) { free(p); }
void sd_cpu_copy_from_host_async(int slot, void *dst, const void *host, size_t bytes)
{
    (void)slot;
    memmove(dst, host, bytes);
}
void sd_cpu_wait_copy(int slot) { (void)slot; }

bool sd_cpu_compute_supported(sd_dtype compute)
{
    if (compute == SD_DTYPE_F32)
        return true;
    return compute == SD_DTYPE_BF16 && sd_cpu_bf16_supported();
}

const sd_backend sd_backend_cpu = {
    .name = "cpu",
    .supports = cpu_supports,
#define SD_KERNEL(name, ret, params) .name = sd_cpu_##name,
#include "core/ops.def"
#undef SD_KERNEL
};
