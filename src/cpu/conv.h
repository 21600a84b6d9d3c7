/* Internal to src/cpu/: the GEMM every CPU convolution path shares
 * (conv_cpu.c) and the Winograd convolution (conv_winograd.c). */
#ifndef SEGDA_CPU_CONV_H
#define SEGDA_CPU_CONV_H

#include <cblas.h>
#include <stdbool.h>

#include "core/backend.h"

/* C[M x N] = alpha * op(A) op(B) + beta * C (row-major): column blocks of C
 * on OpenMP threads, each a single-threaded OpenBLAS sgemm, so results
 * depend on the thread count only. */
void sd_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

/* Whether conv g (conv2d geometry) takes the Winograd F(2x2, 3x3) path
 * (by default; not under SEGDA_CONV=im2col or onednn): 3x3, stride 1, padding up to twice the
 * dilation, groups 1, f32 compute, and where it measured faster: at least
 * 128 channels in and out and 1024 output pixels. */
bool sd_cpu_winograd_applies(const sd_conv_geom *g);
/* y = conv(x, w) (acc: y += conv(x, w)), no bias. false: out of memory,
 * nothing written. */
bool sd_cpu_winograd_fwd(const sd_conv_geom *g, const float *x, const float *w, float *y, bool acc);
/* dx += conv's gradient in x, dw += its gradient in w (either NULL to
 * skip). false: out of memory, nothing written. */
bool sd_cpu_winograd_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                         float *dw);
/* The block cap in floats of V and M (0: the default, 4M); tests lower it
 * to run the blocking on small planes. */
void sd_cpu_winograd_set_cap(size_t floats);

#endif
