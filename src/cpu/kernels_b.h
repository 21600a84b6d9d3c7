/* opsB's CPU kernels (src/cpu/elementwise.c, src/cpu/loss.c) and their
 * entries for the backend table: src/cpu/backend_cpu.c expands
 * SD_CPU_KERNELS_B at the end of sd_backend_cpu's initializer. The fields and
 * what each kernel computes are documented in src/core/backend.h (opsB
 * section). Owned by opsB. */
#ifndef SEGDA_CPU_KERNELS_B_H
#define SEGDA_CPU_KERNELS_B_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void sd_cpu_relu_fwd(size_t n, const float *x, float *y);
void sd_cpu_relu_bwd(size_t n, const float *y, const float *dy, float *dx);
void sd_cpu_leaky_relu_fwd(size_t n, float slope, const float *x, float *y);
void sd_cpu_leaky_relu_bwd(size_t n, float slope, const float *x, const float *dy, float *dx);
void sd_cpu_tanh_fwd(size_t n, const float *x, float *y);
void sd_cpu_tanh_bwd(size_t n, const float *y, const float *dy, float *dx);
void sd_cpu_sigmoid_fwd(size_t n, const float *x, float *y);
void sd_cpu_sigmoid_bwd(size_t n, const float *y, const float *dy, float *dx);
void sd_cpu_scale_fwd(size_t n, float s, const float *x, float *y);
void sd_cpu_add_scalar_fwd(size_t n, float s, const float *x, float *y);
void sd_cpu_pow_fwd(size_t n, float p, const float *x, float *y);
void sd_cpu_pow_bwd(size_t n, float p, const float *x, const float *dy, float *dx);
void sd_cpu_axpy(size_t n, float alpha, const float *x, float *y);
void sd_cpu_add_const(size_t n, float v, float *y);
void sd_cpu_mul(size_t n, const float *a, const float *b, float *y, bool accumulate);
void sd_cpu_dropout_mask(uint64_t seed, float p, size_t n, float *mask);
void sd_cpu_binary_fwd(char op, const int as[4], const int bs[4], const float *a, const float *b, float *y);
void sd_cpu_binary_bwd(char op, const int as[4], const int bs[4], const float *a, const float *b,
                       const float *gy, float *ga, float *gb);
void sd_cpu_copy_blocks(size_t outer, size_t len, const float *src, size_t src_stride, float *dst,
                        size_t dst_stride, bool accumulate);
double sd_cpu_sum(size_t n, const float *x);

void sd_cpu_softmax_fwd(bool log, int n, int c, size_t hw, const float *x, float *y);
void sd_cpu_softmax_bwd(bool log, int n, int c, size_t hw, const float *y, const float *gy, float *gx);
void sd_cpu_cross_entropy_fwd(int n, int c, size_t hw, const float *x, const uint8_t *labels,
                              const float *cw, const float *pw, int ignore, float *lse, double *num,
                              double *wsum, double *count);
void sd_cpu_cross_entropy_bwd(int n, int c, size_t hw, const float *x, const uint8_t *labels,
                              const float *cw, const float *pw, int ignore, const float *lse, float scale,
                              float *gx);
double sd_cpu_bce_fwd(size_t n, const float *x, const float *t, float tc);
void sd_cpu_bce_bwd(size_t n, const float *x, const float *t, float tc, float scale, float *gx);
double sd_cpu_sqdiff_fwd(size_t n, const float *a, const float *b, float bc);
void sd_cpu_sqdiff_bwd(size_t n, const float *a, const float *b, float bc, float scale, float *ga, float *gb);
void sd_cpu_entropy_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *e);
void sd_cpu_entropy_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *ge, float *gx);
void sd_cpu_selfinfo_fwd(int n, int c, size_t hw, const float *x, float inv_logc, float *logp, float *s);
void sd_cpu_selfinfo_bwd(int n, int c, size_t hw, const float *logp, float inv_logc, const float *gs, float *gx);
double sd_cpu_l2dist_fwd(int n, int c, size_t hw, const float *a, const float *b, float *dist);
void sd_cpu_l2dist_bwd(int n, int c, size_t hw, const float *a, const float *b, const float *dist, float scale,
                       float *ga, float *gb);

#define SD_CPU_KERNELS_B                                                                                  \
    .relu_fwd = sd_cpu_relu_fwd, .relu_bwd = sd_cpu_relu_bwd, .leaky_relu_fwd = sd_cpu_leaky_relu_fwd,    \
    .leaky_relu_bwd = sd_cpu_leaky_relu_bwd, .tanh_fwd = sd_cpu_tanh_fwd, .tanh_bwd = sd_cpu_tanh_bwd,    \
    .sigmoid_fwd = sd_cpu_sigmoid_fwd, .sigmoid_bwd = sd_cpu_sigmoid_bwd, .scale_fwd = sd_cpu_scale_fwd, \
    .add_scalar_fwd = sd_cpu_add_scalar_fwd, .pow_fwd = sd_cpu_pow_fwd, .pow_bwd = sd_cpu_pow_bwd,       \
    .axpy = sd_cpu_axpy, .add_const = sd_cpu_add_const,                                                  \
    .mul = sd_cpu_mul, .dropout_mask = sd_cpu_dropout_mask, .binary_fwd = sd_cpu_binary_fwd,             \
    .binary_bwd = sd_cpu_binary_bwd, .copy_blocks = sd_cpu_copy_blocks, .sum = sd_cpu_sum,               \
    .softmax_fwd = sd_cpu_softmax_fwd, .softmax_bwd = sd_cpu_softmax_bwd,                                \
    .cross_entropy_fwd = sd_cpu_cross_entropy_fwd, .cross_entropy_bwd = sd_cpu_cross_entropy_bwd,        \
    .bce_fwd = sd_cpu_bce_fwd, .bce_bwd = sd_cpu_bce_bwd, .sqdiff_fwd = sd_cpu_sqdiff_fwd,               \
    .sqdiff_bwd = sd_cpu_sqdiff_bwd, .entropy_fwd = sd_cpu_entropy_fwd, .entropy_bwd = sd_cpu_entropy_bwd, \
    .selfinfo_fwd = sd_cpu_selfinfo_fwd, .selfinfo_bwd = sd_cpu_selfinfo_bwd,                            \
    .l2dist_fwd = sd_cpu_l2dist_fwd, .l2dist_bwd = sd_cpu_l2dist_bwd,

#endif
