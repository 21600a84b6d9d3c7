/* Device -> backend table lookup and the completeness check of a table.
 * The tables themselves live with their kernels (src/cpu/backend_cpu.c). */
#include <stddef.h>

#include "core/backend.h"

const sd_backend *sd_backend_for(sd_device dev)
{
    switch (dev) {
    case SD_DEVICE_CPU:
        return &sd_backend_cpu;
    default:
        return NULL;
    }
}

const sd_backend *sd_backend_check(sd_tape *t, const char *op, const sd_tensor *x)
{
    const sd_backend *be = sd_backend_for(x->device);
    if (!be || !be->supports(op, x->dtype)) {
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "%s: input %s: no kernel for device %d, dtype %d", op, sd_shape_str(x),
                     (int)x->device, (int)x->dtype);
        return NULL;
    }
    return be;
}

const char *sd_backend_missing(const sd_backend *b)
{
#define SD_NEED(f)     \
    if (!b->f)         \
        return #f;
    SD_NEED(supports)
    SD_NEED(conv2d_fwd) SD_NEED(conv2d_bwd) SD_NEED(conv_transpose2d_fwd) SD_NEED(conv_transpose2d_bwd)
    SD_NEED(max_pool_fwd) SD_NEED(max_pool_bwd) SD_NEED(avg_pool_fwd) SD_NEED(avg_pool_bwd)
    SD_NEED(adaptive_avg_pool_fwd) SD_NEED(adaptive_avg_pool_bwd)
    SD_NEED(norm_stats) SD_NEED(norm_apply) SD_NEED(norm_bwd)
    SD_NEED(resize_bilinear_fwd) SD_NEED(resize_bilinear_bwd)
    SD_NEED(resize_nearest_fwd) SD_NEED(resize_nearest_bwd)
    SD_NEED(pad2d_fwd) SD_NEED(pad2d_bwd) SD_NEED(flip_w_fwd) SD_NEED(flip_w_bwd)
    /* opsB: element-wise, shape, softmax and loss kernels */
    SD_NEED(relu_fwd) SD_NEED(relu_bwd) SD_NEED(leaky_relu_fwd) SD_NEED(leaky_relu_bwd)
    SD_NEED(tanh_fwd) SD_NEED(tanh_bwd) SD_NEED(sigmoid_fwd) SD_NEED(sigmoid_bwd)
    SD_NEED(scale_fwd) SD_NEED(add_scalar_fwd) SD_NEED(pow_fwd) SD_NEED(pow_bwd)
    SD_NEED(axpy) SD_NEED(add_const) SD_NEED(mul)
    SD_NEED(dropout_mask) SD_NEED(binary_fwd) SD_NEED(binary_bwd) SD_NEED(copy_blocks) SD_NEED(sum)
    SD_NEED(softmax_fwd) SD_NEED(softmax_bwd) SD_NEED(cross_entropy_fwd) SD_NEED(cross_entropy_bwd)
    SD_NEED(bce_fwd) SD_NEED(bce_bwd) SD_NEED(sqdiff_fwd) SD_NEED(sqdiff_bwd)
    SD_NEED(entropy_fwd) SD_NEED(entropy_bwd) SD_NEED(selfinfo_fwd) SD_NEED(selfinfo_bwd)
    SD_NEED(l2dist_fwd) SD_NEED(l2dist_bwd)
    /* end of opsB section */
#undef SD_NEED
    return NULL;
}
