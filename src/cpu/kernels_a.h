/* Prototypes of opsA's CPU kernels (convolution, pooling, normalisation,
 * resize/pad/flip) for the table in backend_cpu.c. Semantics are documented
 * on the fields of sd_backend (src/core/backend.h). */
#ifndef SEGDA_CPU_KERNELS_A_H
#define SEGDA_CPU_KERNELS_A_H

#include "core/backend.h"

bool sd_cpu_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y);
bool sd_cpu_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                    float *dw, float *db);
bool sd_cpu_conv_transpose2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b,
                              float *y);
bool sd_cpu_conv_transpose2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy,
                              float *dx, float *dw, float *db);

void sd_cpu_max_pool_fwd(const sd_pool_geom *g, const float *x, float *y, int32_t *argmax);
void sd_cpu_max_pool_bwd(const sd_pool_geom *g, const float *dy, const int32_t *argmax, float *dx);
void sd_cpu_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y);
void sd_cpu_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx);
void sd_cpu_adaptive_avg_pool_fwd(const sd_pool_geom *g, const float *x, float *y);
void sd_cpu_adaptive_avg_pool_bwd(const sd_pool_geom *g, const float *dy, float *dx);

void sd_cpu_norm_stats(const sd_norm_geom *g, const float *x, float eps, float *mean, float *invstd,
                    float *var_unbiased);
void sd_cpu_norm_apply(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                    const float *weight, const float *bias, float *y);
void sd_cpu_norm_bwd(const sd_norm_geom *g, const float *x, const float *mean, const float *invstd,
                  const float *weight, const float *dy, bool batch_stats, float *dx, float *dweight,
                  float *dbias);

void sd_cpu_resize_bilinear_fwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *x,
                             float *y);
void sd_cpu_resize_bilinear_bwd(int planes, int h, int w, int oh, int ow, bool align_corners, const float *dy,
                             float *dx);
void sd_cpu_resize_nearest_fwd(int planes, int h, int w, int oh, int ow, const float *x, float *y);
void sd_cpu_resize_nearest_bwd(int planes, int h, int w, int oh, int ow, const float *dy, float *dx);
void sd_cpu_pad2d_fwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                   const float *x, float *y);
void sd_cpu_pad2d_bwd(int planes, int h, int w, int top, int bottom, int left, int right, bool reflect,
                   const float *dy, float *dx);
void sd_cpu_flip_w_fwd(int planes, int h, int w, const float *x, float *y);
void sd_cpu_flip_w_bwd(int planes, int h, int w, const float *dy, float *dx);

#endif
