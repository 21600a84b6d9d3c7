/* The CPU backend's oneDNN convolution path (src/cpu/conv_dnnl.c), called
 * from conv_cpu.c ahead of its im2col path, plus the bf16 availability query
 * the CLI uses. Internal to src/cpu/ (and the conv benchmark and tests). */
#ifndef SEGDA_CPU_DNNL_H
#define SEGDA_CPU_DNNL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/backend.h"

/* True when oneDNN has native bf16 convolutions on this CPU (AVX512-BF16 or
 * AMX). Without them a BF16 conv still honours its semantics: inputs are
 * rounded to bf16 values in f32 and the f32 kernel runs (same numbers up to
 * summation order, no speed-up); the first such conv logs it once. */
bool sd_cpu_bf16_supported(void);

/* Which conv implementation conv_cpu.c uses; AUTO is the measured dispatch
 * rule: oneDNN where sd_cpu_dnnl_conv_wanted says so, then Winograd
 * F(2x2, 3x3) for the 3x3 stride-1 convs it applies to (conv.h), im2col for
 * the rest. The others exist for bench_conv, tests and SEGDA_CONV. */
typedef enum sd_cpu_conv_impl {
    SD_CPU_CONV_AUTO = 0,
    /* SEGDA_CONV=im2col: every conv on im2col + OpenBLAS (the default before
     * Winograd; other last bits on the convs Winograd takes). */
    SD_CPU_CONV_IM2COL,
    SD_CPU_CONV_DNNL,
    /* opt-in (SEGDA_CONV=hybrid): oneDNN for the convs where its AVX2
     * kernels measured faster, im2col for the rest; changes the last bits
     * of results against the default (sd_cpu_dnnl_conv_wanted). */
    SD_CPU_CONV_HYBRID,
    /* SEGDA_CONV=winograd: Winograd where it applies, im2col for the rest,
     * never oneDNN (on an AVX2 CPU the same as AUTO). */
    SD_CPU_CONV_WINOGRAD,
} sd_cpu_conv_impl;
void sd_cpu_conv_impl_set(sd_cpu_conv_impl impl);
sd_cpu_conv_impl sd_cpu_conv_impl_get(void);
/* false: oneDNN primitives on plain NCHW/OIHW memory; true (default): its
 * preferred blocked layouts, with cached reorders into and out of them. */
void sd_cpu_dnnl_set_blocked(bool blocked);

/* Whether conv g (conv2d geometry; transposed convs pass the geometry of the
 * conv they are the adjoint of) goes to oneDNN under the current impl, for
 * its forward or backward kernel. */
bool sd_cpu_dnnl_conv_wanted(const sd_conv_geom *g, bool backward, bool transposed);

/* The conv2d kernels with sd_backend's semantics (backward accumulates,
 * NULL gradients skipped; db is left to the caller). Return false when
 * nothing was written (unsupported case or no memory): the caller falls back. */
bool sd_cpu_dnnl_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y);
bool sd_cpu_dnnl_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw);
/* conv_transpose2d as the adjoint conv: y += conv2d_bwd_data(x), dx +=
 * conv2d(dy), dw += conv2d_bwd_weights(dy, x). Bias is the caller's. */
bool sd_cpu_dnnl_convt_fwd(const sd_conv_geom *g, const float *x, const float *w, float *y);
bool sd_cpu_dnnl_convt_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                           float *dw);

/* dst[i] = src[i] rounded to the nearest bf16 (ties to even), kept in f32. */
void sd_cpu_bf16_round(const float *src, float *dst, size_t n);

#endif
