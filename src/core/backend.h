/* The backend table: the kernels an op calls, as function pointers on raw
 * float buffers plus shape parameters, one table per device. Internal to the
 * library (src/core/ops_*.c call it, src/cpu/ and later src/cuda/ fill it);
 * no BLAS, oneDNN or CUDA header is visible from here.
 *
 * Conventions for every kernel: buffers are contiguous NCHW f32 on the
 * table's device; a backward kernel ACCUMULATES (+=) into each gradient it is
 * given and skips a NULL one; results depend only on the inputs and the
 * thread count (static schedules, fixed reduction orders, no float atomics).
 *
 * Tie to the ops: every field below is used by exactly one op file, named in
 * the section comment; an op asks `supports(op name, dtype)` before calling
 * and fails with SD_ERR_UNSUPPORTED otherwise. A table must fill every field
 * (tests/test_ops_grad_a.c checks the CPU table for NULLs via
 * sd_backend_missing). */
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

typedef struct sd_backend {
    const char *name;
    bool (*supports)(const char *op, sd_dtype dtype);

    /* ---- opsA: convolution, pooling, normalisation, resize/pad/flip
     * (src/core/ops_conv.c, ops_pool.c, ops_norm.c, ops_resize.c) ---- */
    /* y = conv(x, w) + b (b may be NULL). The conv kernels return false when
     * their scratch memory cannot be allocated. */
    bool (*conv2d_fwd)(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y);
    /* dx, dw, db may each be NULL */
    bool (*conv2d_bwd)(const sd_conv_geom *g, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db);
    /* transposed: x is [n, cout, oh, ow] (the conv's output side), w [cout, cin/groups, kh, kw]
     * in the conv's layout read as conv_transpose's [Cin_t, Cout_t/groups, kh, kw],
     * y [n, cin, h, w]; b has cin entries */
    bool (*conv_transpose2d_fwd)(const sd_conv_geom *g, const float *x, const float *w, const float *b,
                                 float *y);
    bool (*conv_transpose2d_bwd)(const sd_conv_geom *g, const float *x, const float *w, const float *dy,
                                 float *dx, float *dw, float *db);
    /* argmax: flat index into the plane (h*w) of each output's maximum */
    void (*max_pool_fwd)(const sd_pool_geom *g, const float *x, float *y, int32_t *argmax);
    void (*max_pool_bwd)(const sd_pool_geom *g, const float *dy, const int32_t *argmax, float *dx);
    void (*avg_pool_fwd)(const sd_pool_geom *g, const float *x, float *y);
    void (*avg_pool_bwd)(const sd_pool_geom *g, const float *dy, float *dx);
    /* kh..pw and count_include_pad of g are unused */
    void (*adaptive_avg_pool_fwd)(const sd_pool_geom *g, const float *x, float *y);
    void (*adaptive_avg_pool_bwd)(const sd_pool_geom *g, const float *dy, float *dx);
    /* Batch statistics: writes mean[ch], invstd[ch] = 1/sqrt(biased var + eps)
     * and, when var_unbiased != NULL, the unbiased variance (running stats). */
    void (*norm_stats)(const sd_norm_geom *g, const float *x, float eps, float *mean, float *invstd,
                       float *var_unbiased);
    /* y = (x - mean) * invstd * weight + bias (weight/bias NULL: 1/0) */
    void (*norm_apply)(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                       const float *weight, const float *bias, float *y);
    /* Backward through norm_apply. batch_stats: mean/invstd came from x
     * (training), so dx includes the terms through the statistics; else they
     * are constants (eval / frozen BN). dweight/dbias have affine_ch entries. */
    void (*norm_bwd)(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                     const float *weight, const float *dy, bool batch_stats, float *dx, float *dweight,
                     float *dbias);
    void (*resize_bilinear_fwd)(int planes, int h, int w, int oh, int ow, bool align_corners,
                                const float *x, float *y);
    void (*resize_bilinear_bwd)(int planes, int h, int w, int oh, int ow, bool align_corners,
                                const float *dy, float *dx);
    void (*resize_nearest_fwd)(int planes, int h, int w, int oh, int ow, const float *x, float *y);
    void (*resize_nearest_bwd)(int planes, int h, int w, int oh, int ow, const float *dy, float *dx);
    /* pad: output [planes, h+top+bottom, w+left+right]; reflect or zeros */
    void (*pad2d_fwd)(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                      const float *x, float *y);
    void (*pad2d_bwd)(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                      const float *dy, float *dx);
    /* y[.., j] = x[.., w-1-j]; the backward is the same map, accumulated */
    void (*flip_w_fwd)(int planes, int h, int w, const float *x, float *y);
    void (*flip_w_bwd)(int planes, int h, int w, const float *dy, float *dx);

    /* opsB: element-wise, shape, softmax and loss kernels */
    /* (src/core/ops_elementwise.c, ops_concat.c, ops_loss.c). n counts
     * elements; "x [n, c, hw]" is a tensor viewed with channels in the middle.
     * Sums are returned in double and must not depend on the thread count. */
    void (*relu_fwd)(size_t n, const float *x, float *y);
    void (*relu_bwd)(size_t n, const float *y, const float *dy, float *dx);   /* from the output */
    void (*leaky_relu_fwd)(size_t n, float slope, const float *x, float *y);
    void (*leaky_relu_bwd)(size_t n, float slope, const float *x, const float *dy, float *dx);
    void (*tanh_fwd)(size_t n, const float *x, float *y);
    void (*tanh_bwd)(size_t n, const float *y, const float *dy, float *dx);
    void (*sigmoid_fwd)(size_t n, const float *x, float *y);
    void (*sigmoid_bwd)(size_t n, const float *y, const float *dy, float *dx);
    void (*scale_fwd)(size_t n, float s, const float *x, float *y);           /* y = s*x */
    void (*add_scalar_fwd)(size_t n, float s, const float *x, float *y);      /* y = x + s */
    void (*pow_fwd)(size_t n, float p, const float *x, float *y);             /* y = x^p */
    void (*pow_bwd)(size_t n, float p, const float *x, const float *dy, float *dx); /* dx += dy*p*x^(p-1) */
    void (*axpy)(size_t n, float alpha, const float *x, float *y);            /* y += alpha*x */
    void (*add_const)(size_t n, float v, float *y);                           /* y += v */
    void (*mul)(size_t n, const float *a, const float *b, float *y, bool accumulate); /* y (+)= a*b */
    /* mask[i] in {0, 1/(1-p)}, a function of (seed, i) only */
    void (*dropout_mask)(uint64_t seed, float p, size_t n, float *mask);
    /* y = a op b, op '+', '-' or '*'; b's shape bs[d] is as[d] or 1 (broadcast).
     * bwd reduces over b's broadcast dims in a fixed order. */
    void (*binary_fwd)(char op, const int as[4], const int bs[4], const float *a, const float *b, float *y);
    void (*binary_bwd)(char op, const int as[4], const int bs[4], const float *a, const float *b,
                       const float *dy, float *da, float *db);
    /* dst[o*dst_stride + i] (+)= src[o*src_stride + i], o < outer, i < len */
    void (*copy_blocks)(size_t outer, size_t len, const float *src, size_t src_stride, float *dst,
                        size_t dst_stride, bool accumulate);
    double (*sum)(size_t n, const float *x);
    /* softmax (log: log-softmax) over c of x [n, c, hw]; bwd from the output */
    void (*softmax_fwd)(bool log, int n, int c, size_t hw, const float *x, float *y);
    void (*softmax_bwd)(bool log, int n, int c, size_t hw, const float *y, const float *dy, float *dx);
    /* labels [n*hw]; pixel weight = cw[label] (cw NULL: 1) * pw[i] (pw NULL: 1),
     * 0 where label == ignore. fwd: *num = sum(weight*nll), *wsum = sum of cw
     * over valid pixels, *count = valid pixels; lse [n*hw] saved for bwd.
     * bwd: dx += scale * weight * (softmax - onehot). */
    void (*cross_entropy_fwd)(int n, int c, size_t hw, const float *x, const uint8_t *labels, const float *cw,
                              const float *pw, int ignore, float *lse, double *num, double *wsum, double *count);
    void (*cross_entropy_bwd)(int n, int c, size_t hw, const float *x, const uint8_t *labels, const float *cw,
                              const float *pw, int ignore, const float *lse, float scale, float *dx);
    /* sum of BCE-with-logits (stable form) against t (NULL: the constant tc);
     * bwd: dx += scale * (sigmoid(x) - t) */
    double (*bce_fwd)(size_t n, const float *x, const float *t, float tc);
    void (*bce_bwd)(size_t n, const float *x, const float *t, float tc, float scale, float *dx);
    /* sum of (a - b)^2 (b NULL: the constant bc); bwd: da += 2*scale*(a-b), db -= the same */
    double (*sqdiff_fwd)(size_t n, const float *a, const float *b, float bc);
    void (*sqdiff_bwd)(size_t n, const float *a, const float *b, float bc, float scale, float *da, float *db);
    /* e [n*hw] = -sum_c p log p * inv_logc; logp [n, c, hw] saved for bwd */
    void (*entropy_fwd)(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *e);
    void (*entropy_bwd)(int n, int c, size_t hw, const float *logp, float inv_logc, const float *de, float *dx);
    /* s [n, c, hw] = -p log p * inv_logc */
    void (*selfinfo_fwd)(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *s);
    void (*selfinfo_bwd)(int n, int c, size_t hw, const float *logp, float inv_logc, const float *ds, float *dx);
    /* dist [n*hw] = ||a - b||_2 over c; returns sum(dist). bwd: da += scale*(a-b)/dist,
     * db -= the same, 0 where dist == 0 */
    double (*l2dist_fwd)(int n, int c, size_t hw, const float *a, const float *b, float *dist);
    void (*l2dist_bwd)(int n, int c, size_t hw, const float *a, const float *b, const float *dist, float scale,
                       float *da, float *db);
    /* end of opsB section */
} sd_backend;

/* The table for a device, or NULL when this build has none (CUDA today). */
const sd_backend *sd_backend_for(sd_device dev);
/* What every op does before its kernels: the table for x's device if it
 * supports op at x's dtype; otherwise NULL, with the tape failed
 * (SD_ERR_UNSUPPORTED, naming op, x's shape, device and dtype). */
const sd_backend *sd_backend_check(sd_tape *t, const char *op, const sd_tensor *x);
/* The name of the first opsA kernel a table leaves NULL, or NULL when complete. */
const char *sd_backend_missing(const sd_backend *b);

extern const sd_backend sd_backend_cpu;

#endif
