/* Winograd F(2x2, 3x3) convolution for the CPU backend: 3x3 stride-1 convs
 * (any padding up to twice the dilation, any dilation) forward,
 * backward-data and backward-weights, f32, groups == 1. The default for the
 * convs it applies to (SEGDA_CONV=im2col turns it off): it does 2.25x fewer
 * multiplications than im2col + sgemm and rounds differently (relative
 * differences below 1e-5). conv_cpu.c calls it ahead of im2col.
 *
 * The transforms (Lavin & Gray, "Fast algorithms for convolutional neural
 * networks", 2016), for one 4x4 input tile d and a 3x3 kernel g:
 *   y (2x2) = A^T [ (G g G^T) (.) (B^T d B) ] A
 * where (.) is the element-wise product over the tile's 16 positions xi.
 * Summed over input channels, each position is one GEMM:
 *   M[xi] (cout x tiles) = U[xi] (cout x cin) . V[xi] (cin x tiles).
 * With dilation d a tile's 2x2 outputs (and its 4x4 inputs) are d apart, so
 * the output plane is tiled per dimension as bases 2d*(t/d) + t%d: each base
 * covers outputs base and base + d.
 * Backward-data is the forward conv of dy with the flipped, transposed
 * kernel (padding 2d - p); backward-weights is the adjoint of the forward:
 *   dg += G^T [ sum over tiles (A e A^T) (.) (B^T d B) ] G
 * for each 2x2 block e of dy, one GEMM per position summed over the tiles.
 *
 * Memory: the plane is processed in blocks of tile rows so V and M stay
 * under 4M floats (16 MB) each; with the transformed weights and their
 * flipped copy the per-thread scratch is kept between calls, like im2col's
 * (about 60 MB more peak RSS on ResNet-101).
 * Determinism: transforms write disjoint memory per OpenMP iteration, each
 * of the 16 GEMMs runs whole on one thread, the weight gradient is summed
 * block after block, image after image: results depend on the thread count
 * only. */
#include <omp.h>
#include <stdlib.h>

#include "cpu/conv.h"

static size_t wino_cap = (size_t)4 << 20;
void sd_cpu_winograd_set_cap(size_t floats) { wino_cap = floats ? floats : (size_t)4 << 20; }

enum { SCR_U, SCR_V, SCR_M, SCR_W, SCR_ROW, SCR_N };
static _Thread_local float *scr[SCR_N];
static _Thread_local size_t scr_cap[SCR_N];

static float *scratch(int slot, size_t n)
{
    if (n > scr_cap[slot]) {
        free(scr[slot]);
        scr[slot] = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
        scr_cap[slot] = scr[slot] ? n : 0;
    }
    return scr[slot];
}

/* Where it is used (bench_conv, 2 threads, the 2-core AVX2 machine, ms
 * forward / backward, im2col against Winograd): 128 channels and more at
 * DeepLab's sizes (VGG 128->128 161x161 54 / 115 vs 37 / 81, 256->256 81x81
 * 52 / 119 vs 33 / 64, ResNet-101 layer3 256->256 32x64 dilation 2 16 / 35
 * vs 13 / 26, layer4 512->512 dilation 4 68 / 143 vs 43 / 86); 64-channel
 * layers were even (VGG 64->64 321x321, ResNet layer1), small planes
 * slower (deeplab-mini's 64->64 32x16 0.47 / 1.33 vs 0.64 / 1.17) and
 * 19-class heads much slower (their GEMMs have 19 rows, the transforms of
 * 2048 input channels dominate). */
bool sd_cpu_winograd_applies(const sd_conv_geom *g)
{
    return g->groups == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph >= 0 &&
           g->pw >= 0 && g->ph <= 2 * g->dh && g->pw <= 2 * g->dw && g->oh == g->h + 2 * g->ph - 2 * g->dh &&
           g->ow == g->w + 2 * g->pw - 2 * g->dw && g->oh > 0 && g->ow > 0 && g->compute == SD_DTYPE_F32 &&
           g->cin >= 128 && g->cout >= 128 && (size_t)g->oh * g->ow >= 1024;
}

/* Tiles along one output dimension of size o with dilation d (whole runs
 * of 2d outputs hold d tiles; a partial run of r outputs, min(r, d)), and
 * the first output of tile t. */
static int tiles(int o, int d)
{
    int r = o % (2 * d);
    return d * (o / (2 * d)) + (r < d ? r : d);
}
static int tile_base(int t, int d) { return 2 * d * (t / d) + t % d; }

/* U[xi][k][c] = (G g G^T)[xi] for w [cout][cin][3][3]. */
static void weight_transform(int cout, int cin, const float *w, float *U)
{
    const size_t KC = (size_t)cout * cin;
#pragma omp parallel for schedule(static) if (KC > 4096)
    for (size_t kc = 0; kc < KC; kc++) {
        const float *g = w + kc * 9;
        float t[4][3];
        for (int j = 0; j < 3; j++) {
            t[0][j] = g[j];
            t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            t[3][j] = g[6 + j];
        }
        for (int r = 0; r < 4; r++) {
            float *u = U + (size_t)r * 4 * KC + kc;
            u[0] = t[r][0];
            u[KC] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
            u[2 * KC] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
            u[3 * KC] = t[r][2];
        }
    }
}

/* The transforms run on whole tile rows with vector instructions: an AVX2
 * clone where the CPU has it (the build itself targets plain x86-64). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIMD_CLONES
#endif

/* e[t] = row[base(t) - pad], o[t] = row[base(t) + d - pad] for t in [0, n),
 * 0 outside [0, w) or where row is NULL: the points of a tile row at offsets
 * 0 and d from each tile's base (offsets 2d and 3d are e[t + d], o[t + d]). */
static void split_row(const float *row, int w, int pad, int d, int n, float *e, float *o)
{
    for (int t = 0, q = 0; t < n; q++)
        for (int f = 0; f < d && t < n; f++, t++) {
            int x = 2 * d * q + f - pad;
            e[t] = row && x >= 0 && x < w ? row[x] : 0.0f;
            o[t] = row && x + d >= 0 && x + d < w ? row[x + d] : 0.0f;
        }
}

/* The inverse: row[base(t)] (+)= e[t], row[base(t) + d] (+)= o[t] where
 * inside [0, w). */
static void merge_row(float *row, int w, int d, int n, const float *e, const float *o, bool acc)
{
    for (int t = 0, q = 0; t < n; q++)
        for (int f = 0; f < d && t < n; f++, t++) {
            int x = 2 * d * q + f;
            if (x < w)
                row[x] = acc ? row[x] + e[t] : e[t];
            if (x + d < w)
                row[x + d] = acc ? row[x + d] + o[t] : o[t];
        }
}

/* One row r of a 4x4 tile's column transform: v[4r + j] for the row
 * (q0, q1, q2, q3) times B, stored at tile t. */
#define COLS_B(v, r, q0, q1, q2, q3)                                                                      \
    do {                                                                                                   \
        (v)[(4 * (r) + 0) * ld + t] = (q0) - (q2);                                                         \
        (v)[(4 * (r) + 1) * ld + t] = (q1) + (q2);                                                         \
        (v)[(4 * (r) + 2) * ld + t] = (q2) - (q1);                                                         \
        (v)[(4 * (r) + 3) * ld + t] = (q1) - (q3);                                                         \
    } while (0)

/* v[xi * ld + t] = (B^T a B)[xi] for the n tiles of one tile row, a[i][k]
 * the input at row i, offset k*d: E[i][t], O[i][t], E[i][t + d], O[i][t + d].
 * Written out in scalars so the compiler vectorises over t. */
SIMD_CLONES static void input_tiles(float *const E[4], float *const O[4], int n, int d, float *restrict v, size_t ld)
{
    const float *restrict e0 = E[0], *restrict e1 = E[1], *restrict e2 = E[2], *restrict e3 = E[3];
    const float *restrict o0 = O[0], *restrict o1 = O[1], *restrict o2 = O[2], *restrict o3 = O[3];
#pragma omp simd
    for (int t = 0; t < n; t++) {
        /* B^T a, column by column: rows a0 - a2, a1 + a2, a2 - a1, a1 - a3 */
        float a0, a1, a2, a3, c00, c10, c20, c30, c01, c11, c21, c31, c02, c12, c22, c32, c03, c13, c23, c33;
        a0 = e0[t], a1 = e1[t], a2 = e2[t], a3 = e3[t];
        c00 = a0 - a2, c10 = a1 + a2, c20 = a2 - a1, c30 = a1 - a3;
        a0 = o0[t], a1 = o1[t], a2 = o2[t], a3 = o3[t];
        c01 = a0 - a2, c11 = a1 + a2, c21 = a2 - a1, c31 = a1 - a3;
        a0 = e0[t + d], a1 = e1[t + d], a2 = e2[t + d], a3 = e3[t + d];
        c02 = a0 - a2, c12 = a1 + a2, c22 = a2 - a1, c32 = a1 - a3;
        a0 = o0[t + d], a1 = o1[t + d], a2 = o2[t + d], a3 = o3[t + d];
        c03 = a0 - a2, c13 = a1 + a2, c23 = a2 - a1, c33 = a1 - a3;
        COLS_B(v, 0, c00, c01, c02, c03);
        COLS_B(v, 1, c10, c11, c12, c13);
        COLS_B(v, 2, c20, c21, c22, c23);
        COLS_B(v, 3, c30, c31, c32, c33);
    }
}

/* y[a][b][t] = (A^T m A)[a][b] for the n tiles of one tile row, m[xi] at
 * m[xi * ld + t]. */
SIMD_CLONES static void output_tiles(const float *restrict m, size_t ld, int n, float *const y[4])
{
    float *restrict y00 = y[0], *restrict y01 = y[1], *restrict y10 = y[2], *restrict y11 = y[3];
#pragma omp simd
    for (int t = 0; t < n; t++) {
        /* A^T m: rows m0 + m1 + m2 and m1 - m2 - m3, column by column */
        float s00, s01, s02, s03, s10, s11, s12, s13, m0, m1, m2, m3;
        m0 = m[0 * ld + t], m1 = m[4 * ld + t], m2 = m[8 * ld + t], m3 = m[12 * ld + t];
        s00 = m0 + m1 + m2, s10 = m1 - m2 - m3;
        m0 = m[1 * ld + t], m1 = m[5 * ld + t], m2 = m[9 * ld + t], m3 = m[13 * ld + t];
        s01 = m0 + m1 + m2, s11 = m1 - m2 - m3;
        m0 = m[2 * ld + t], m1 = m[6 * ld + t], m2 = m[10 * ld + t], m3 = m[14 * ld + t];
        s02 = m0 + m1 + m2, s12 = m1 - m2 - m3;
        m0 = m[3 * ld + t], m1 = m[7 * ld + t], m2 = m[11 * ld + t], m3 = m[15 * ld + t];
        s03 = m0 + m1 + m2, s13 = m1 - m2 - m3;
        y00[t] = s00 + s01 + s02;
        y01[t] = s01 - s02 - s03;
        y10[t] = s10 + s11 + s12;
        y11[t] = s11 - s12 - s13;
    }
}

/* One row r of the 4x4 gradient tile: (q0, q1) times A^T, stored at t. */
#define COLS_AT(v, r, q0, q1)                                                                              \
    do {                                                                                                   \
        (v)[(4 * (r) + 0) * ld + t] = (q0);                                                                \
        (v)[(4 * (r) + 1) * ld + t] = (q0) + (q1);                                                         \
        (v)[(4 * (r) + 2) * ld + t] = (q0) - (q1);                                                         \
        (v)[(4 * (r) + 3) * ld + t] = -(q1);                                                               \
    } while (0)

/* v[xi * ld + t] = (A e A^T)[xi] for the 2x2 gradient blocks e[a][b] =
 * g[2a + b][t] of the n tiles of one tile row. */
SIMD_CLONES static void grad_tiles(float *const g[4], int n, float *restrict v, size_t ld)
{
    const float *restrict g00 = g[0], *restrict g01 = g[1], *restrict g10 = g[2], *restrict g11 = g[3];
#pragma omp simd
    for (int t = 0; t < n; t++) {
        /* A e, column by column: rows e0, e0 + e1, e0 - e1, -e1 */
        float e00 = g00[t], e01 = g01[t], e10 = g10[t], e11 = g11[t];
        COLS_AT(v, 0, e00, e01);
        COLS_AT(v, 1, e00 + e10, e01 + e11);
        COLS_AT(v, 2, e00 - e10, e01 - e11);
        COLS_AT(v, 3, -e10, -e11);
    }
}

/* Each OpenMP thread's row buffers (8 rows of ntx + d floats) in the
 * SCR_ROW slot, which reserve() sized for every thread before the pass. */
static size_t rows_per_thread(const sd_conv_geom *g) { return (size_t)8 * (tiles(g->ow, g->dw) + g->dw); }
/* r[i] = row i (of len floats) of the calling OpenMP thread's buffers in
 * rows (the SCR_ROW slot, offset by the caller), for i < n. */
static void thread_rows(const sd_conv_geom *g, float *rows, int len, int n, float **r)
{
    float *mine = rows + omp_get_thread_num() * rows_per_thread(g);
    for (int i = 0; i < n; i++)
        r[i] = mine + (size_t)i * len;
}

/* V[c][xi][t] = (B^T d B)[xi] for the input tiles of tile rows [ty0, ty1)
 * (t counted from the block's first tile), x one image [cin][h][w]. */
static void input_transform(const sd_conv_geom *g, const float *x, int ty0, int ty1, int ntx, float *V)
{
    const int nb = (ty1 - ty0) * ntx, h = g->h, w = g->w, n = ntx + g->dw;
    const size_t plane = (size_t)h * w;
    float *rows = scr[SCR_ROW]; /* the caller's: scr is per thread */
#pragma omp parallel
    {
        float *E[4], *O[4];
        thread_rows(g, rows, n, 4, E);
        thread_rows(g, rows + 4 * (size_t)n, n, 4, O);
#pragma omp for schedule(static)
        for (int c = 0; c < g->cin; c++)
            for (int ty = ty0; ty < ty1; ty++) {
                int y0 = tile_base(ty, g->dh) - g->ph;
                for (int i = 0; i < 4; i++) {
                    int iy = y0 + i * g->dh;
                    const float *row = iy >= 0 && iy < h ? x + c * plane + (size_t)iy * w : NULL;
                    split_row(row, w, g->pw, g->dw, n, E[i], O[i]);
                }
                input_tiles(E, O, ntx, g->dw, V + ((size_t)c * 16 * nb + (size_t)(ty - ty0) * ntx), nb);
            }
    }
}

/* y (+)= A^T m A for each output tile of tile rows [ty0, ty1); M[k][xi][t]. */
static void output_transform(const sd_conv_geom *g, const float *M, int ty0, int ty1, int ntx, float *y, bool acc)
{
    const int nb = (ty1 - ty0) * ntx, oh = g->oh, ow = g->ow;
    const size_t plane = (size_t)oh * ow;
    float *rows = scr[SCR_ROW];
#pragma omp parallel
    {
        float *Y[4];
        thread_rows(g, rows, ntx, 4, Y);
#pragma omp for schedule(static)
        for (int k = 0; k < g->cout; k++)
            for (int ty = ty0; ty < ty1; ty++) {
                int oy = tile_base(ty, g->dh);
                output_tiles(M + ((size_t)k * 16 * nb + (size_t)(ty - ty0) * ntx), nb, ntx, Y);
                for (int a = 0; a < 2 && oy + a * g->dh < oh; a++)
                    merge_row(y + k * plane + (size_t)(oy + a * g->dh) * ow, ow, g->dw, ntx, Y[2 * a],
                              Y[2 * a + 1], acc);
            }
    }
}

/* E[k][xi][t] = (A e A^T)[xi] for the 2x2 blocks e of dy (outputs past the
 * plane read as 0) of tile rows [ty0, ty1). */
static void grad_transform(const sd_conv_geom *g, const float *dy, int ty0, int ty1, int ntx, float *E)
{
    const int nb = (ty1 - ty0) * ntx, oh = g->oh, ow = g->ow;
    const size_t plane = (size_t)oh * ow;
    float *rows = scr[SCR_ROW];
#pragma omp parallel
    {
        float *G4[4];
        thread_rows(g, rows, ntx, 4, G4);
#pragma omp for schedule(static)
        for (int k = 0; k < g->cout; k++)
            for (int ty = ty0; ty < ty1; ty++) {
                int oy = tile_base(ty, g->dh);
                for (int a = 0; a < 2; a++) {
                    int yy = oy + a * g->dh;
                    const float *row = yy < oh ? dy + k * plane + (size_t)yy * ow : NULL;
                    split_row(row, ow, 0, g->dw, ntx, G4[2 * a], G4[2 * a + 1]);
                }
                grad_tiles(G4, ntx, E + ((size_t)k * 16 * nb + (size_t)(ty - ty0) * ntx), nb);
            }
    }
}

/* dw[k][c] += G^T m G for Mw[xi][k][c]. */
static void weight_grad_transform(int cout, int cin, const float *Mw, float *dw)
{
    const size_t KC = (size_t)cout * cin;
#pragma omp parallel for schedule(static) if (KC > 4096)
    for (size_t kc = 0; kc < KC; kc++) {
        float t[3][4];
        for (int j = 0; j < 4; j++) {
            float m0 = Mw[j * KC + kc], m1 = Mw[(4 + j) * KC + kc], m2 = Mw[(8 + j) * KC + kc],
                  m3 = Mw[(12 + j) * KC + kc];
            t[0][j] = m0 + 0.5f * (m1 + m2);
            t[1][j] = 0.5f * (m1 - m2);
            t[2][j] = 0.5f * (m1 + m2) + m3;
        }
        float *o = dw + kc * 9;
        for (int r = 0; r < 3; r++) {
            o[3 * r + 0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
            o[3 * r + 1] += 0.5f * (t[r][1] - t[r][2]);
            o[3 * r + 2] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
        }
    }
}

/* Tile rows per block: V and M (or E) under wino_cap floats each. */
static int block_rows(const sd_conv_geom *g, int ntx, int nty)
{
    size_t wide = (size_t)(g->cin > g->cout ? g->cin : g->cout);
    size_t per_row = 16 * wide * ntx;
    size_t rb = wino_cap / per_row;
    if (rb < 1)
        rb = 1;
    return rb > (size_t)nty ? nty : (int)rb;
}

/* Grows the V, M and row slots for a pass over geometry g (the calling
 * thread's, shared by the OpenMP threads of its parallel regions); false:
 * no memory. */
static bool reserve(const sd_conv_geom *g)
{
    const int ntx = tiles(g->ow, g->dw), nty = tiles(g->oh, g->dh), rb = block_rows(g, ntx, nty);
    int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    return scratch(SCR_V, (size_t)16 * g->cin * rb * ntx) && scratch(SCR_M, (size_t)16 * g->cout * rb * ntx) &&
           scratch(SCR_ROW, nthr * rows_per_thread(g));
}

/* y (+)= conv(x, U) for every image, U already transformed; reserve(g) done. */
static void wino_run(const sd_conv_geom *g, const float *x, const float *U, float *y, bool acc)
{
    const int ntx = tiles(g->ow, g->dw), nty = tiles(g->oh, g->dh), rb = block_rows(g, ntx, nty);
    const size_t in_img = (size_t)g->cin * g->h * g->w, out_img = (size_t)g->cout * g->oh * g->ow;
    const size_t KC = (size_t)g->cout * g->cin;
    float *V = scr[SCR_V], *M = scr[SCR_M];
    for (int n = 0; n < g->n; n++)
        for (int ty0 = 0; ty0 < nty; ty0 += rb) {
            int ty1 = ty0 + rb < nty ? ty0 + rb : nty, nb = (ty1 - ty0) * ntx;
            input_transform(g, x + n * in_img, ty0, ty1, ntx, V);
#pragma omp parallel for schedule(static)
            for (int xi = 0; xi < 16; xi++)
                sd_cpu_sgemm(CblasNoTrans, CblasNoTrans, g->cout, nb, g->cin, 1.0f, U + xi * KC, g->cin,
                             V + (size_t)xi * nb, 16 * nb, 0.0f, M + (size_t)xi * nb, 16 * nb);
            output_transform(g, M, ty0, ty1, ntx, y + n * out_img, acc);
        }
}

bool sd_cpu_winograd_fwd(const sd_conv_geom *g, const float *x, const float *w, float *y, bool acc)
{
    float *U = scratch(SCR_U, (size_t)16 * g->cout * g->cin);
    if (!U || !reserve(g))
        return false;
    weight_transform(g->cout, g->cin, w, U);
    wino_run(g, x, U, y, acc);
    return true;
}

/* The geometry of backward-data: the forward conv of dy with the flipped,
 * transposed kernel and padding 2d - p. */
static sd_conv_geom adjoint(const sd_conv_geom *g)
{
    sd_conv_geom a = *g;
    a.cin = g->cout;
    a.cout = g->cin;
    a.h = g->oh;
    a.w = g->ow;
    a.oh = g->h;
    a.ow = g->w;
    a.ph = 2 * g->dh - g->ph;
    a.pw = 2 * g->dw - g->pw;
    return a;
}

/* dx += conv(dy, flipped w^T): the adjoint of the forward in x; reserve()
 * of its geometry and the U and W slots done. */
static void wino_bwd_data(const sd_conv_geom *g, const float *w, const float *dy, float *dx)
{
    sd_conv_geom a = adjoint(g);
    float *wf = scr[SCR_W], *U = scr[SCR_U];
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->cin; c++)
        for (int k = 0; k < g->cout; k++)
            for (int i = 0; i < 9; i++)
                wf[((size_t)c * g->cout + k) * 9 + i] = w[((size_t)k * g->cin + c) * 9 + 8 - i];
    weight_transform(a.cout, a.cin, wf, U);
    wino_run(&a, dy, U, dx, true);
}

/* dw += the adjoint of the forward in w, summed over tiles and images;
 * reserve(g) and the U slot done. */
static void wino_bwd_weights(const sd_conv_geom *g, const float *x, const float *dy, float *dw)
{
    const int ntx = tiles(g->ow, g->dw), nty = tiles(g->oh, g->dh), rb = block_rows(g, ntx, nty);
    const size_t in_img = (size_t)g->cin * g->h * g->w, out_img = (size_t)g->cout * g->oh * g->ow;
    const size_t KC = (size_t)g->cout * g->cin;
    float *V = scr[SCR_V], *E = scr[SCR_M], *Mw = scr[SCR_U];
    bool first = true;
    for (int n = 0; n < g->n; n++)
        for (int ty0 = 0; ty0 < nty; ty0 += rb) {
            int ty1 = ty0 + rb < nty ? ty0 + rb : nty, nb = (ty1 - ty0) * ntx;
            input_transform(g, x + n * in_img, ty0, ty1, ntx, V);
            grad_transform(g, dy + n * out_img, ty0, ty1, ntx, E);
#pragma omp parallel for schedule(static)
            for (int xi = 0; xi < 16; xi++)
                sd_cpu_sgemm(CblasNoTrans, CblasTrans, g->cout, g->cin, nb, 1.0f, E + (size_t)xi * nb, 16 * nb,
                             V + (size_t)xi * nb, 16 * nb, first ? 0.0f : 1.0f, Mw + xi * KC, g->cin);
            first = false;
        }
    weight_grad_transform(g->cout, g->cin, Mw, dw);
}

bool sd_cpu_winograd_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                         float *dw)
{
    /* every buffer both passes need is allocated first, so a failure
     * (false: the caller falls back) leaves both gradients untouched; the
     * weight gradient runs first since backward-data reuses the U slot */
    sd_conv_geom a = adjoint(g);
    if (!scratch(SCR_U, (size_t)16 * g->cout * g->cin) || !scratch(SCR_W, (size_t)9 * g->cout * g->cin) ||
        (dw && !reserve(g)) || (dx && !reserve(&a)))
        return false;
    if (dw)
        wino_bwd_weights(g, x, dy, dw);
    if (dx)
        wino_bwd_data(g, w, dy, dx);
    return true;
}
