/* CPU convolution kernels: conv2d and conv_transpose2d, forward and backward,
 * as im2col/col2im + OpenBLAS sgemm, or Winograd. Not here: shape checks
 * (ops_conv.c).
 * Backward kernels accumulate (+=) into the gradients they are given.
 * Each kernel first offers the conv to oneDNN (conv_dnnl.c) where that
 * measured faster (the rule and its numbers: sd_cpu_dnnl_conv_wanted); the
 * im2col path keeps groups > 1, 1x1 convs and whatever oneDNN declines.
 * The wide 3x3 stride-1 convs that oneDNN does not take go to
 * conv_winograd.c (sd_cpu_winograd_applies) unless SEGDA_CONV=im2col.
 * BF16 compute on this path runs the f32 kernels on bf16-rounded copies.
 *
 * Speed: one large GEMM per (image, group, block of output rows); 1x1
 * stride-1 unpadded convs skip im2col and multiply the input directly.
 * Determinism: im2col/col2im write disjoint memory per OpenMP iteration (static
 * schedule), the weight gradient is summed image after image with beta=1, and
 * each product is split into column blocks over OpenMP threads (never along
 * K), so results depend only on the thread count.
 * One thread pool: OpenBLAS runs single-threaded and OpenMP splits the
 * product. Two pools (OpenBLAS's pthreads and OpenMP's) spin against each
 * other on every conv; on 2 cores that cost up to 5x in training speed. */
#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/conv.h"
#include "cpu/dnnl.h"
#include "cpu/kernels.h"

/* The im2col buffer: per thread, grown on demand and kept (a step reuses it
 * for every conv, so it costs nothing after the first one). */
static _Thread_local float *scratch;
static _Thread_local size_t scratch_cap;

static float *scratch_get(size_t n)
{
    if (n > scratch_cap) {
        free(scratch);
        scratch = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        scratch_cap = scratch ? n : 0;
    }
    return scratch;
}

/* Caps the im2col block at 8M floats (32 MiB) by splitting the output rows;
 * 1 MiB and 4 MiB blocks measured slower (smaller GEMMs). */
#ifndef COL_CAP
#define COL_CAP ((size_t)8 << 20)
#endif

static int ceil_div(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static bool is_pointwise(const sd_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

static int rows_per_block(const sd_conv_geom *g)
{
    size_t per_row = (size_t)g->cin * g->kh * g->kw * g->ow;
    size_t rb = per_row ? COL_CAP / per_row : (size_t)g->oh;
    if (rb < 1)
        rb = 1;
    return rb > (size_t)g->oh ? g->oh : (int)rb;
}

/* Valid output columns [lo, hi) for kernel column j: those whose input
 * column lies inside [0, w). */
static void col_range(const sd_conv_geom *g, int j, int *lo, int *hi)
{
    int off = j * g->dw - g->pw;
    int a = ceil_div(-off, g->sw), b = ceil_div(g->w - off, g->sw);
    if (a < 0)
        a = 0;
    if (b > g->ow)
        b = g->ow;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

/* col[(c*kh+i)*kw+j][r*ow + ox] for output rows [r0, r1) of one image. */
static void im2col(const sd_conv_geom *g, const float *x, int r0, int r1, float *col)
{
    const int K = g->cin * g->kh * g->kw, ow = g->ow, nr = r1 - r0;
    const size_t plane = (size_t)g->h * g->w, ld = (size_t)nr * ow;
#pragma omp parallel for schedule(static) if (ld * K > 32768)
    for (int k = 0; k < K; k++) {
        int c = k / (g->kh * g->kw), i = k / g->kw % g->kh, j = k % g->kw;
        const float *src = x + c * plane;
        float *dst = col + k * ld;
        int lo, hi;
        col_range(g, j, &lo, &hi);
        int off = j * g->dw - g->pw;
        for (int r = r0; r < r1; r++) {
            float *d = dst + (size_t)(r - r0) * ow;
            int ih = r * g->sh - g->ph + i * g->dh;
            if (ih < 0 || ih >= g->h || lo >= hi) {
                memset(d, 0, (size_t)ow * sizeof *d);
                continue;
            }
            const float *s = src + (size_t)ih * g->w;
            if (lo > 0)
                memset(d, 0, (size_t)lo * sizeof *d);
            if (g->sw == 1) {
                memcpy(d + lo, s + lo + off, (size_t)(hi - lo) * sizeof *d);
            } else {
                for (int o = lo; o < hi; o++)
                    d[o] = s[o * g->sw + off];
            }
            if (hi < ow)
                memset(d + hi, 0, (size_t)(ow - hi) * sizeof *d);
        }
    }
}

/* dx[c] += the columns of channel c, for output rows [r0, r1). */
static void col2im(const sd_conv_geom *g, const float *col, int r0, int r1, float *dx)
{
    const int ow = g->ow, nr = r1 - r0;
    const size_t plane = (size_t)g->h * g->w, ld = (size_t)nr * ow;
#pragma omp parallel for schedule(static) if (ld * g->cin * g->kh * g->kw > 32768)
    for (int c = 0; c < g->cin; c++) {
        float *dst = dx + c * plane;
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++) {
                const float *src = col + ((size_t)(c * g->kh + i) * g->kw + j) * ld;
                int lo, hi;
                col_range(g, j, &lo, &hi);
                int off = j * g->dw - g->pw;
                for (int r = r0; r < r1; r++) {
                    int ih = r * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= g->h)
                        continue;
                    const float *s = src + (size_t)(r - r0) * ow;
                    float *d = dst + (size_t)ih * g->w + off;
                    if (g->sw == 1) {
#pragma omp simd
                        for (int o = lo; o < hi; o++)
                            d[o] += s[o]; /* element-wise: vector adds give the same bits */
                    } else {
                        for (int o = lo; o < hi; o++)
                            d[o * g->sw] += s[o];
                    }
                }
            }
    }
}

extern void openblas_set_num_threads(int);

void sd_cpu_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    static atomic_int blas_single;
    if (!atomic_exchange(&blas_single, 1))
        openblas_set_num_threads(1);
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    int chunk = (N + nt - 1) / nt;
    chunk = (chunk + 15) / 16 * 16; /* whole SIMD tiles per thread */
    if (nt == 1 || N < 128) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int n0 = t * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
        if (n0 >= n1)
            continue;
        const float *Bt = tb == CblasNoTrans ? B + n0 : B + (size_t)n0 * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, M, n1 - n0, K, alpha, A, lda, Bt, ldb, beta, C + n0, ldc);
    }
}

/* out (+)= w * im2col(in), the conv2d product; beta 0 overwrites, 1 accumulates. */
static bool conv_gemm_fwd(const sd_conv_geom *g, const float *in, const float *w, float *out, float beta)
{
    const int G = g->groups, cin_g = g->cin / G, cout_g = g->cout / G;
    const int Kg = cin_g * g->kh * g->kw;
    const size_t P = (size_t)g->oh * g->ow, in_img = (size_t)g->cin * g->h * g->w;
    for (int n = 0; n < g->n; n++) {
        const float *xn = in + n * in_img;
        float *yn = out + (size_t)n * g->cout * P;
        if (is_pointwise(g)) {
            for (int gr = 0; gr < G; gr++)
                sd_cpu_sgemm(CblasNoTrans, CblasNoTrans, cout_g, (int)P, Kg, 1.0f,
                            w + (size_t)gr * cout_g * Kg, Kg, xn + (size_t)gr * cin_g * P, (int)P, beta,
                            yn + (size_t)gr * cout_g * P, (int)P);
            continue;
        }
        int rb = rows_per_block(g);
        for (int r0 = 0; r0 < g->oh; r0 += rb) {
            int r1 = r0 + rb < g->oh ? r0 + rb : g->oh;
            size_t ld = (size_t)(r1 - r0) * g->ow;
            float *col = scratch_get((size_t)G * Kg * ld);
            if (!col)
                return false;
            im2col(g, xn, r0, r1, col);
            for (int gr = 0; gr < G; gr++)
                sd_cpu_sgemm(CblasNoTrans, CblasNoTrans, cout_g, (int)ld, Kg, 1.0f,
                            w + (size_t)gr * cout_g * Kg, Kg, col + (size_t)gr * Kg * ld, (int)ld, beta,
                            yn + (size_t)gr * cout_g * P + (size_t)r0 * g->ow, (int)P);
        }
    }
    return true;
}

/* din += col2im(w^T * dout) (when din) and dw += dout * im2col(in)^T (when dw),
 * image after image so the weight gradient sums in a fixed order. */
static bool conv_gemm_bwd(const sd_conv_geom *g, const float *in, const float *w, const float *dout,
                          float *din, float *dw)
{
    const int G = g->groups, cin_g = g->cin / G, cout_g = g->cout / G;
    const int Kg = cin_g * g->kh * g->kw;
    const size_t P = (size_t)g->oh * g->ow, in_img = (size_t)g->cin * g->h * g->w;
    for (int n = 0; n < g->n; n++) {
        const float *dyn = dout + (size_t)n * g->cout * P;
        if (is_pointwise(g)) {
            for (int gr = 0; gr < G; gr++) {
                const float *wg = w ? w + (size_t)gr * cout_g * Kg : NULL;
                const float *dyg = dyn + (size_t)gr * cout_g * P;
                if (dw)
                    sd_cpu_sgemm(CblasNoTrans, CblasTrans, cout_g, Kg, (int)P, 1.0f, dyg,
                                (int)P, in + n * in_img + (size_t)gr * cin_g * P, (int)P, 1.0f,
                                dw + (size_t)gr * cout_g * Kg, Kg);
                if (din)
                    sd_cpu_sgemm(CblasTrans, CblasNoTrans, Kg, (int)P, cout_g, 1.0f, wg, Kg,
                                dyg, (int)P, 1.0f, din + n * in_img + (size_t)gr * cin_g * P, (int)P);
            }
            continue;
        }
        int rb = rows_per_block(g);
        for (int r0 = 0; r0 < g->oh; r0 += rb) {
            int r1 = r0 + rb < g->oh ? r0 + rb : g->oh;
            size_t ld = (size_t)(r1 - r0) * g->ow;
            float *col = scratch_get((size_t)G * Kg * ld);
            if (!col)
                return false;
            if (dw) {
                im2col(g, in + n * in_img, r0, r1, col);
                for (int gr = 0; gr < G; gr++)
                    sd_cpu_sgemm(CblasNoTrans, CblasTrans, cout_g, Kg, (int)ld, 1.0f,
                                dyn + (size_t)gr * cout_g * P + (size_t)r0 * g->ow, (int)P,
                                col + (size_t)gr * Kg * ld, (int)ld, 1.0f, dw + (size_t)gr * cout_g * Kg, Kg);
            }
            if (din) {
                for (int gr = 0; gr < G; gr++)
                    sd_cpu_sgemm(CblasTrans, CblasNoTrans, Kg, (int)ld, cout_g, 1.0f,
                                w + (size_t)gr * cout_g * Kg, Kg,
                                dyn + (size_t)gr * cout_g * P + (size_t)r0 * g->ow, (int)P, 0.0f,
                                col + (size_t)gr * Kg * ld, (int)ld);
                col2im(g, col, r0, r1, din + n * in_img);
            }
        }
    }
    return true;
}

/* y[n, c, :] += b[c] (or = b[c] when `set`) */
static void bias_add(int n, int c, size_t plane, const float *b, float *y, bool set)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * plane > 32768)
    for (int k = 0; k < n * c; k++) {
        float v = b ? b[k % c] : 0.0f, *p = y + (size_t)k * plane;
        if (set)
            for (size_t i = 0; i < plane; i++)
                p[i] = v;
        else
            for (size_t i = 0; i < plane; i++)
                p[i] += v;
    }
}

/* db[c] += sum over n and the plane of dy[n, c, :] */
static void bias_grad(int n, int c, size_t plane, const float *dy, float *db)
{
#pragma omp parallel for schedule(static)
    for (int k = 0; k < c; k++) {
        double s = 0;
        for (int i = 0; i < n; i++) {
            const float *p = dy + ((size_t)i * c + k) * plane;
            float part = 0;
            for (size_t q = 0; q < plane; q++)
                part += p[q];
            s += part;
        }
        db[k] += (float)s;
    }
}

/* BF16 requested on the im2col path (groups > 1, or oneDNN not wanted):
 * bf16-rounded copies of the inputs through the f32 kernels, the same
 * numbers a bf16 GEMM with f32 accumulation gives. Sets *g32 to g in f32;
 * the copies are freed by the caller. false: out of memory. */
static bool bf16_inputs(const sd_conv_geom *g, sd_conv_geom *g32, int n, const float **p, const size_t *len,
                        float **copy)
{
    *g32 = *g;
    g32->compute = SD_DTYPE_F32;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        copy[i] = NULL;
        if (!p[i] || !ok)
            continue;
        if (!(copy[i] = malloc(len[i] * sizeof(float)))) {
            ok = false;
            continue;
        }
        sd_cpu_bf16_round(p[i], copy[i], len[i]);
        p[i] = copy[i];
    }
    if (!ok)
        for (int i = 0; i < n; i++)
            free(copy[i]);
    return ok;
}

/* The default rule (or SEGDA_CONV=winograd) and a conv Winograd applies
 * to; SEGDA_CONV=im2col keeps every conv on im2col. */
static bool winograd_wanted(const sd_conv_geom *g)
{
    sd_cpu_conv_impl impl = sd_cpu_conv_impl_get();
    return (impl == SD_CPU_CONV_AUTO || impl == SD_CPU_CONV_WINOGRAD) && sd_cpu_winograd_applies(g);
}

static size_t in_len(const sd_conv_geom *g) { return (size_t)g->n * g->cin * g->h * g->w; }
static size_t w_len(const sd_conv_geom *g) { return (size_t)g->cout * (g->cin / g->groups) * g->kh * g->kw; }
static size_t out_len(const sd_conv_geom *g) { return (size_t)g->n * g->cout * g->oh * g->ow; }

bool sd_cpu_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    if (sd_cpu_dnnl_conv_wanted(g, false, false) && sd_cpu_dnnl_conv2d_fwd(g, x, w, b, y))
        return true;
    if (g->compute == SD_DTYPE_BF16) {
        sd_conv_geom g32;
        const float *p[2] = {x, w};
        float *c[2];
        if (!bf16_inputs(g, &g32, 2, p, (size_t[]){in_len(g), w_len(g)}, c))
            return false;
        bool ok = sd_cpu_conv2d_fwd(&g32, p[0], p[1], b, y);
        free(c[0]);
        free(c[1]);
        return ok;
    }
    if (winograd_wanted(g) && sd_cpu_winograd_fwd(g, x, w, y, false)) {
        if (b)
            bias_add(g->n, g->cout, (size_t)g->oh * g->ow, b, y, false);
        return true;
    }
    if (!conv_gemm_fwd(g, x, w, y, 0.0f))
        return false;
    if (b)
        bias_add(g->n, g->cout, (size_t)g->oh * g->ow, b, y, false);
    return true;
}

bool sd_cpu_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                    float *dw, float *db)
{
    if (db)
        bias_grad(g->n, g->cout, (size_t)g->oh * g->ow, dy, db);
    if (!dx && !dw)
        return true;
    if (sd_cpu_dnnl_conv_wanted(g, true, false) && sd_cpu_dnnl_conv2d_bwd(g, x, w, dy, dx, dw))
        return true;
    if (g->compute == SD_DTYPE_BF16) {
        sd_conv_geom g32;
        const float *p[3] = {dw ? x : NULL, dx ? w : NULL, dy};
        float *c[3];
        if (!bf16_inputs(g, &g32, 3, p, (size_t[]){in_len(g), w_len(g), out_len(g)}, c))
            return false;
        bool ok = conv_gemm_bwd(&g32, p[0], p[1], p[2], dx, dw);
        for (int i = 0; i < 3; i++)
            free(c[i]);
        return ok;
    }
    if (winograd_wanted(g) && sd_cpu_winograd_bwd(g, x, w, dy, dx, dw))
        return true;
    return conv_gemm_bwd(g, x, w, dy, dx, dw);
}

bool sd_cpu_conv_transpose2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b,
                              float *y)
{
    bias_add(g->n, g->cin, (size_t)g->h * g->w, b, y, true);
    if (sd_cpu_dnnl_conv_wanted(g, false, true) && sd_cpu_dnnl_convt_fwd(g, x, w, y))
        return true;
    if (g->compute == SD_DTYPE_BF16) {
        sd_conv_geom g32;
        const float *p[2] = {x, w};
        float *c[2];
        if (!bf16_inputs(g, &g32, 2, p, (size_t[]){out_len(g), w_len(g)}, c))
            return false;
        bool ok = conv_gemm_bwd(&g32, NULL, p[1], p[0], y, NULL);
        free(c[0]);
        free(c[1]);
        return ok;
    }
    return conv_gemm_bwd(g, NULL, w, x, y, NULL);
}

bool sd_cpu_conv_transpose2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy,
                              float *dx, float *dw, float *db)
{
    if (db)
        bias_grad(g->n, g->cin, (size_t)g->h * g->w, dy, db);
    if (!dx && !dw)
        return true;
    if (sd_cpu_dnnl_conv_wanted(g, true, true) && sd_cpu_dnnl_convt_bwd(g, x, w, dy, dx, dw))
        return true;
    sd_conv_geom g32 = *g;
    float *c[3] = {NULL, NULL, NULL};
    if (g->compute == SD_DTYPE_BF16) {
        const float *p[3] = {dw ? x : NULL, dx ? w : NULL, dy};
        if (!bf16_inputs(g, &g32, 3, p, (size_t[]){out_len(g), w_len(g), in_len(g)}, c))
            return false;
        x = p[0];
        w = p[1];
        dy = p[2];
    }
    bool ok = (!dx || conv_gemm_fwd(&g32, dy, w, dx, 1.0f)) && (!dw || conv_gemm_bwd(&g32, dy, NULL, x, NULL, dw));
    for (int i = 0; i < 3; i++)
        free(c[i]);
    return ok;
}
