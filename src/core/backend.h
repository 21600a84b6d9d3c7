/* Backends: the kernels an op calls, as function pointers on raw buffers
 * plus shape parameters, one table per device, all generated from the one
 * list in src/core/ops.def (the kernels' conventions are stated there).
 * Internal to the library: src/core/ops_*.c call it, src/cpu/ (and a CUDA
 * backend, when built) fill it; no BLAS, oneDNN or CUDA header is visible
 * from here. An op asks sd_backend_checkn before its kernels and fails with
 * SD_ERR_UNSUPPORTED when the backend does not take its inputs. */
#ifndef SEGDA_BACKEND_H
#define SEGDA_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/tensor.h"

/* Convolution geometry, in the direction of the forward conv2d: input
 * [n, cin, h, w], weight [cout, cin/groups, kh, kw], output [n, cout, oh, ow].
 * conv_transpose2d uses the same struct for the conv it is the adjoint of:
 * its own input is the `out` side and its output the `in` side. */
typedef struct sd_conv_geom {
    int n, cin, h, w;
    int cout, kh, kw;
    int oh, ow;
    int sh, sw, ph, pw, dh, dw;
    int groups;
    sd_dtype compute;  /* SD_DTYPE_F32, or BF16: x/w (and dy) rounded to bf16, f32 accumulation, f32 results */
} sd_conv_geom;

/* Pooling geometry: input [n*c planes, h, w] -> [oh, ow]. */
typedef struct sd_pool_geom {
    int planes, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    bool count_include_pad;
} sd_pool_geom;

/* Normalisation layout: statistics per channel over `outer` x `inner`
 * elements of x viewed as [outer, ch, inner]; the affine parameters of
 * channel k are weight[k % affine_ch] (batch norm: outer=N, ch=C, inner=HW,
 * affine_ch=C; instance norm: outer=1, ch=N*C, inner=HW, affine_ch=C). */
typedef struct sd_norm_geom {
    int outer, ch, inner, affine_ch;
} sd_norm_geom;

/* RoIAlign geometry (torchvision.ops.roi_align): features [n, c, h, w], k
 * rois of 5 floats (batch index, x1, y1, x2, y2 in image coordinates) ->
 * output [k, c, oh, ow]. sampling <= 0: ceil(roi size / bins) points per bin. */
typedef struct sd_roi_geom {
    int n, c, h, w, k, oh, ow;
    float scale;
    int sampling;
    bool aligned;
} sd_roi_geom;

/* The op ids: SD_OP_conv2d, ... in the order of src/core/ops.def. */
typedef enum sd_op {
#define SD_OP(name) SD_OP_##name,
#include "core/ops.def"
#undef SD_OP
    SD_OP_COUNT
} sd_op;

extern const char *const sd_op_names[SD_OP_COUNT];
/* The id of an op's name; SD_OP_COUNT when the registry has no such op. */
sd_op sd_op_lookup(const char *name);

/* A backend: its name, what it supports, and one function pointer per
 * kernel of src/core/ops.def (documented there). */
typedef struct sd_backend {
    const char *name;
    /* Whether op can run on these inputs (NULL entries are absent optional
     * inputs): sees every input's dtype, device and shape. */
    bool (*supports)(sd_op op, int n_in, const sd_tensor *const *in);
#define SD_KERNEL(name, ret, params) ret(*name) params;
#include "core/ops.def"
#undef SD_KERNEL
} sd_backend;

/* The table for a device, or NULL when this build has none or the device is
 * absent (sd_device_unavailable says which). */
const sd_backend *sd_backend_for(sd_device dev);
/* The table compiled in for dev, present or not (NULL: not built): for the
 * completeness check. */
const sd_backend *sd_backend_compiled(sd_device dev);
/* What every op does before its kernels: the table of the inputs' device if
 * they share one and it supports op (by its ops.def name) on them; otherwise
 * NULL, with the tape failed (SD_ERR_UNSUPPORTED or SD_ERR_ARG, naming the op,
 * the shapes, devices and dtypes). NULL entries of in are absent inputs. */
const sd_backend *sd_backend_checkn(sd_tape *t, const char *op, int n_in, const sd_tensor *const *in);
static inline const sd_backend *sd_backend_check(sd_tape *t, const char *op, const sd_tensor *x)
{
    return sd_backend_checkn(t, op, 1, &x);
}
/* The name of the first kernel a table leaves NULL, or NULL when complete. */
const char *sd_backend_missing(const sd_backend *b);


/* Test hook: makes dev's table b (present, whatever the probe says), or
 * puts the compiled one back (b NULL). tests/test_cuda_emulated.c runs whole
 * training steps on the emulated CUDA kernels this way. */
void sd_backend_override(sd_device dev, const sd_backend *b);

extern const sd_backend sd_backend_cpu;
extern const sd_backend sd_backend_cuda; /* defined only in CUDA builds */

#endif
