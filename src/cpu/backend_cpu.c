/* The CPU backend table: every op's kernel for f32 tensors in host memory.
 * Kernels live in src/cpu/ (opsA: conv, pool, norm, resize) and opsB's files, whose entries
 * arrive through SD_CPU_KERNELS_B (src/cpu/kernels_b.h). */
#include <stddef.h>

#include "cpu/kernels_a.h"
#include "cpu/kernels_b.h"

static bool cpu_supports(const char *op, sd_dtype dtype)
{
    (void)op;
    return dtype == SD_DTYPE_F32;
}

const sd_backend sd_backend_cpu = {
    .name = "cpu",
    .supports = cpu_supports,
    .conv2d_fwd = sd_cpu_conv2d_fwd,
    .conv2d_bwd = sd_cpu_conv2d_bwd,
    .conv_transpose2d_fwd = sd_cpu_conv_transpose2d_fwd,
    .conv_transpose2d_bwd = sd_cpu_conv_transpose2d_bwd,
    .max_pool_fwd = sd_cpu_max_pool_fwd,
    .max_pool_bwd = sd_cpu_max_pool_bwd,
    .avg_pool_fwd = sd_cpu_avg_pool_fwd,
    .avg_pool_bwd = sd_cpu_avg_pool_bwd,
    .adaptive_avg_pool_fwd = sd_cpu_adaptive_avg_pool_fwd,
    .adaptive_avg_pool_bwd = sd_cpu_adaptive_avg_pool_bwd,
    .norm_stats = sd_cpu_norm_stats,
    .norm_apply = sd_cpu_norm_apply,
    .norm_bwd = sd_cpu_norm_bwd,
    .resize_bilinear_fwd = sd_cpu_resize_bilinear_fwd,
    .resize_bilinear_bwd = sd_cpu_resize_bilinear_bwd,
    .resize_nearest_fwd = sd_cpu_resize_nearest_fwd,
    .resize_nearest_bwd = sd_cpu_resize_nearest_bwd,
    .pad2d_fwd = sd_cpu_pad2d_fwd,
    .pad2d_bwd = sd_cpu_pad2d_bwd,
    .flip_w_fwd = sd_cpu_flip_w_fwd,
    .flip_w_bwd = sd_cpu_flip_w_bwd,
    SD_CPU_KERNELS_B
};
