/* The CPU backend: its table (every kernel of src/core/ops.def as
 * sd_cpu_<name>), what it supports, and host-memory storage. Kernels live in
 * the other files of src/cpu/. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Large buffers are anonymous mappings of their own: their pages read as
 * zero and take no memory until written, so a zero-filled allocation needs
 * no memset (a model's gradient buffers cost nothing at inference), and
 * freeing one returns it to the system at once. The mappings are listed so
 * that buffer_free knows them from malloc's blocks. */
#define MAP_MIN ((size_t)1 << 20)

typedef struct mapped {
    void *p;
    size_t bytes;
} mapped;

static pthread_mutex_t map_mu = PTHREAD_MUTEX_INITIALIZER;
static mapped *maps;
static int n_maps, cap_maps;

static void *map_new(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    pthread_mutex_lock(&map_mu);
    if (n_maps == cap_maps) {
        int cap = cap_maps ? 2 * cap_maps : 64;
        mapped *nm = realloc(maps, (size_t)cap * sizeof *nm);
        if (!nm) {
            pthread_mutex_unlock(&map_mu);
            munmap(p, bytes);
            return NULL;
        }
        maps = nm;
        cap_maps = cap;
    }
    maps[n_maps++] = (mapped){p, bytes};
    pthread_mutex_unlock(&map_mu);
    return p;
}

/* Unmaps p if it is one of the mappings; false when it is not. */
static bool map_free(void *p)
{
    size_t bytes = 0;
    pthread_mutex_lock(&map_mu);
    for (int i = 0; i < n_maps; i++)
        if (maps[i].p == p) {
            bytes = maps[i].bytes;
            maps[i] = maps[--n_maps];
            break;
        }
    pthread_mutex_unlock(&map_mu);
    if (bytes)
        munmap(p, bytes);
    return bytes != 0;
}

void *sd_cpu_buffer_alloc(size_t bytes)
{
    if (bytes >= MAP_MIN)
        return map_new(bytes);
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) ? NULL : p;
}

void *sd_cpu_buffer_alloc_zero(size_t bytes)
{
    void *p = sd_cpu_buffer_alloc(bytes);
    if (p && bytes < MAP_MIN)
        memset(p, 0, bytes ? bytes : 64);
    return p;
}

void sd_cpu_buffer_free(void *p)
{
    if (p && !map_free(p))
        free(p);
}
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
