/* The backend comparison of tests/test_backend_cuda.c and
 * tests/test_cuda_emulated.c, in the manner of ggml's test-backend-ops: every
 * kernel of src/core/ops.def on random inputs of several shapes (odd sizes,
 * stride, dilation, padding, groups, ignore_index), run through a reference
 * table R (the CPU) and a table under test D with buffers moved by the
 * storage kernels, results compared within stated tolerances. */
#ifndef SEGDA_TEST_BACKEND_COMPARE_H
#define SEGDA_TEST_BACKEND_COMPARE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/backend.h"
#include "segda/core.h"
#include "segda/ops.h"
#include "segda/tensor.h"

/* R: the reference (CPU), D: the device under test */
static const sd_backend *R, *D;
static sd_rng rng;
static int n_compared;

/* one buffer on both sides: r on R (host memory), d on D */
typedef struct arr {
    size_t n;
    float *r, *d;
} arr;

static arr mk_from(const float *h, size_t n)
{
    arr a = {n, R->buffer_alloc(n * sizeof(float)), D->buffer_alloc(n * sizeof(float))};
    R->copy_from_host(a.r, h, n * sizeof(float));
    D->copy_from_host(a.d, h, n * sizeof(float));
    return a;
}

static arr mk(size_t n, float lo, float hi)
{
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = lo + (hi - lo) * sd_rng_uniform(&rng);
    arr a = mk_from(h, n);
    free(h);
    return a;
}

static void rel(arr *a)
{
    R->buffer_free(a->r);
    D->buffer_free(a->d);
    a->r = a->d = NULL;
}

/* |d - r| <= tol * max(1, |r|) for every element; NaNs must match */
static void cmp(const arr *a, double tol, const char *what)
{
    float *h = malloc((a->n ? a->n : 1) * sizeof(float));
    D->sync();
    D->copy_to_host(h, a->d, a->n * sizeof(float));
    size_t bad = 0, first = 0;
    double worst = 0;
    for (size_t i = 0; i < a->n; i++) {
        double r = a->r[i], d = h[i], s = fabs(r) > 1 ? fabs(r) : 1, e = fabs(d - r) / s;
        bool ok = isnan(r) ? isnan(d) : e <= tol;
        if (!ok && !bad++)
            first = i;
        if (e > worst)
            worst = e;
    }
    CHECK_MSG(bad == 0, "%s: %zu of %zu elements differ, first [%zu] %.9g vs cpu %.9g (worst rel %.3g, tol %.3g)",
              what, bad, a->n, first, bad ? h[first] : 0.0, bad ? a->r[first] : 0.0, worst, tol);
    n_compared++;
    free(h);
}

static void cmp_d(double d, double r, double tol, const char *what)
{
    double s = fabs(r) > 1 ? fabs(r) : 1;
    CHECK_MSG(fabs(d - r) <= tol * s, "%s: %.12g vs cpu %.12g (tol %.3g)", what, d, r, tol);
    n_compared++;
}

/* each call once per side: X(a) is a's buffer on that side */
#define X(a) (side ? (a).d : (a).r)
#define BOTH(call)                                        \
    for (int side = 0; side < 2; side++) {                \
        const sd_backend *be = side ? D : R;              \
        call;                                             \
    }

static char msg[256];
#define WHAT(...) (snprintf(msg, sizeof msg, __VA_ARGS__), msg)

/* ---- element-wise, copies, sums, optimiser steps ---- */

static void kernels_elementwise(void)
{
    const size_t sizes[] = {1, 1001, 70001};
    for (int si = 0; si < 3; si++) {
        size_t n = sizes[si];
        arr x = mk(n, -3, 3), dy = mk(n, -1, 1), y = mk(n, 0, 0), dx = mk(n, -1, 1), pos = mk(n, 0.1f, 2);
        BOTH(be->relu_fwd(n, X(x), X(y))) cmp(&y, 0, WHAT("relu_fwd n=%zu", n));
        BOTH(be->relu_bwd(n, X(y), X(dy), X(dx))) cmp(&dx, 0, WHAT("relu_bwd n=%zu", n));
        BOTH(be->leaky_relu_fwd(n, 0.2f, X(x), X(y))) cmp(&y, 0, WHAT("leaky_relu_fwd n=%zu", n));
        BOTH(be->leaky_relu_bwd(n, 0.2f, X(x), X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("leaky_relu_bwd n=%zu", n));
        BOTH(be->tanh_fwd(n, X(x), X(y))) cmp(&y, 1e-6, WHAT("tanh_fwd n=%zu", n));
        BOTH(be->tanh_bwd(n, X(y), X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("tanh_bwd n=%zu", n));
        BOTH(be->sigmoid_fwd(n, X(x), X(y))) cmp(&y, 1e-6, WHAT("sigmoid_fwd n=%zu", n));
        BOTH(be->sigmoid_bwd(n, X(y), X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("sigmoid_bwd n=%zu", n));
        BOTH(be->scale_fwd(n, -1.5f, X(x), X(y))) cmp(&y, 0, WHAT("scale_fwd n=%zu", n));
        BOTH(be->add_scalar_fwd(n, 0.25f, X(x), X(y))) cmp(&y, 0, WHAT("add_scalar_fwd n=%zu", n));
        BOTH(be->pow_fwd(n, 1.7f, X(pos), X(y))) cmp(&y, 1e-6, WHAT("pow_fwd n=%zu", n));
        BOTH(be->pow_bwd(n, 1.7f, X(pos), X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("pow_bwd n=%zu", n));
        BOTH(be->axpy(n, 0.5f, X(x), X(y))) cmp(&y, 1e-7, WHAT("axpy n=%zu", n));
        BOTH(be->add_const(n, -0.75f, X(y))) cmp(&y, 1e-7, WHAT("add_const n=%zu", n));
        BOTH(be->mul(n, X(x), X(dy), X(y), false)) cmp(&y, 0, WHAT("mul n=%zu", n));
        BOTH(be->mul(n, X(x), X(dy), X(y), true)) cmp(&y, 1e-7, WHAT("mul accumulate n=%zu", n));
        /* the mask is a function of (seed, i): the same bits on both */
        BOTH(be->dropout_mask(12345u + n, 0.3f, n, X(y))) cmp(&y, 0, WHAT("dropout_mask n=%zu", n));
        double s[2];
        BOTH(s[side] = be->sum(n, X(x))) cmp_d(s[1], s[0], 1e-9, WHAT("sum n=%zu", n));
        /* copy_blocks: rows of len out of a narrower-strided source into a
         * wider destination (rows of 2 or more elements) */
        size_t outer = n / 7 ? n / 7 : 1, row = n / outer, len = row - 1 < 5 ? row - 1 : 5;
        if (len > 0) {
            BOTH(be->copy_blocks(outer, len, X(x) + 1, row - 1, X(dx), row, false))
            cmp(&dx, 0, WHAT("copy_blocks n=%zu", n));
            BOTH(be->copy_blocks(outer, len, X(x), row, X(dx) + (row - len), row, true))
            cmp(&dx, 1e-7, WHAT("copy_blocks accumulate n=%zu", n));
        }
        arr w = mk(n, -1, 1), g = mk(n, -1, 1), buf = mk(n, -0.1f, 0.1f), m = mk(n, -0.1f, 0.1f), v = mk(n, 0, 0.1f);
        BOTH(be->sgd_step(n, 0.1f, 1e-4f, 0.9f, X(w), X(g), X(buf))) cmp(&w, 1e-6, WHAT("sgd_step momentum n=%zu", n));
        cmp(&buf, 1e-6, WHAT("sgd_step buffer n=%zu", n));
        BOTH(be->sgd_step(n, 0.1f, 1e-4f, 0.0f, X(w), X(g), NULL)) cmp(&w, 1e-6, WHAT("sgd_step plain n=%zu", n));
        BOTH(be->adam_step(n, 1e-3f, 0.3f, 1e-4f, 0.9f, 0.999f, 1e-8f, X(w), X(g), X(m), X(v)))
        cmp(&w, 1e-6, WHAT("adam_step w n=%zu", n));
        cmp(&m, 1e-6, WHAT("adam_step m n=%zu", n));
        cmp(&v, 1e-6, WHAT("adam_step v n=%zu", n));
        arr all[] = {x, dy, y, dx, pos, w, g, buf, m, v};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            rel(&all[i]);
    }
}

static void kernels_binary(void)
{
    const int as[4] = {2, 3, 5, 7};
    const int bss[][4] = {{2, 3, 5, 7}, {1, 3, 1, 1}, {2, 1, 5, 1}, {1, 1, 1, 7}, {1, 1, 1, 1}, {2, 3, 1, 7}};
    const char ops[] = "+-*";
    size_t n = 2 * 3 * 5 * 7;
    for (size_t bi = 0; bi < sizeof bss / sizeof bss[0]; bi++)
        for (int oi = 0; oi < 3; oi++) {
            const int *bs = bss[bi];
            size_t nb = (size_t)bs[0] * bs[1] * bs[2] * bs[3];
            char op = ops[oi];
            arr a = mk(n, -2, 2), b = mk(nb, -2, 2), y = mk(n, 0, 0), dy = mk(n, -1, 1), da = mk(n, -1, 1),
                db = mk(nb, -1, 1);
            BOTH(be->binary_fwd(op, as, bs, X(a), X(b), X(y)))
            cmp(&y, 0, WHAT("binary_fwd '%c' b [%d,%d,%d,%d]", op, bs[0], bs[1], bs[2], bs[3]));
            BOTH(be->binary_bwd(op, as, bs, X(a), X(b), X(dy), X(da), X(db)))
            cmp(&da, 1e-6, WHAT("binary_bwd da '%c' b [%d,%d,%d,%d]", op, bs[0], bs[1], bs[2], bs[3]));
            cmp(&db, 1e-6, WHAT("binary_bwd db '%c' b [%d,%d,%d,%d]", op, bs[0], bs[1], bs[2], bs[3]));
            BOTH(be->binary_bwd(op, as, bs, X(a), X(b), X(dy), NULL, X(db)))
            cmp(&db, 1e-6, WHAT("binary_bwd db only '%c'", op));
            arr all[] = {a, b, y, dy, da, db};
            for (size_t i = 0; i < 6; i++)
                rel(&all[i]);
        }
}

/* ---- softmax and losses ---- */

static void kernels_loss(void)
{
    const int shapes[][3] = {{2, 5, 37}, {1, 19, 300}, {3, 2, 1}, {1, 1, 9}};
    for (int si = 0; si < 4; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t hw = (size_t)shapes[si][2], npix = (size_t)n * hw, nel = npix * (size_t)c;
        arr x = mk(nel, -4, 4), x2 = mk(nel, -4, 4), y = mk(nel, 0, 0), dy = mk(nel, -1, 1), dx = mk(nel, -1, 1),
            pix = mk(npix, 0, 0), dpix = mk(npix, -1, 1), t = mk(nel, 0, 1), dx2 = mk(nel, -1, 1);
        for (int lg = 0; lg < 2; lg++) {
            BOTH(be->softmax_fwd(lg, n, c, hw, X(x), X(y))) cmp(&y, 1e-5, WHAT("softmax_fwd log=%d [%d,%d,%zu]", lg, n, c, hw));
            BOTH(be->softmax_bwd(lg, n, c, hw, X(y), X(dy), X(dx)))
            cmp(&dx, 1e-5, WHAT("softmax_bwd log=%d [%d,%d,%zu]", lg, n, c, hw));
        }
        /* labels stay on the host, as the ops hand them over today; about a
         * fifth are ignore_index (255) */
        uint8_t *lab = malloc(npix);
        float *cw = malloc((size_t)c * sizeof(float)), *pwh = malloc(npix * sizeof(float));
        for (size_t i = 0; i < npix; i++) {
            lab[i] = sd_rng_uniform(&rng) < 0.2f ? 255 : (uint8_t)sd_rng_int(&rng, c);
            pwh[i] = sd_rng_uniform(&rng);
        }
        for (int k = 0; k < c; k++)
            cw[k] = 0.5f + sd_rng_uniform(&rng);
        arr pw = mk_from(pwh, npix);
        for (int variant = 0; variant < 3; variant++) {
            const float *cwp = variant == 1 ? cw : NULL;
            double num[2], ws[2], cnt[2];
            BOTH(be->cross_entropy_fwd(n, c, hw, X(x), lab, cwp, variant == 2 ? X(pw) : NULL, 255, X(pix), &num[side],
                                       &ws[side], &cnt[side]))
            cmp(&pix, 1e-5, WHAT("cross_entropy_fwd lse variant %d [%d,%d,%zu]", variant, n, c, hw));
            cmp_d(num[1], num[0], 1e-6, WHAT("cross_entropy_fwd num variant %d", variant));
            cmp_d(ws[1], ws[0], 1e-9, WHAT("cross_entropy_fwd wsum variant %d", variant));
            cmp_d(cnt[1], cnt[0], 0, WHAT("cross_entropy_fwd count variant %d", variant));
            BOTH(be->cross_entropy_bwd(n, c, hw, X(x), lab, cwp, variant == 2 ? X(pw) : NULL, 255, X(pix), 0.37f, X(dx)))
            cmp(&dx, 1e-5, WHAT("cross_entropy_bwd variant %d [%d,%d,%zu]", variant, n, c, hw));
        }
        for (int tv = 0; tv < 2; tv++) {
            double s[2];
            BOTH(s[side] = be->bce_fwd(nel, X(x), tv ? X(t) : NULL, 0.3f)) cmp_d(s[1], s[0], 1e-6, WHAT("bce_fwd t=%d", tv));
            BOTH(be->bce_bwd(nel, X(x), tv ? X(t) : NULL, 0.3f, 0.5f, X(dx))) cmp(&dx, 1e-6, WHAT("bce_bwd t=%d", tv));
            BOTH(s[side] = be->sqdiff_fwd(nel, X(x), tv ? X(x2) : NULL, 0.7f))
            cmp_d(s[1], s[0], 1e-9, WHAT("sqdiff_fwd b=%d", tv));
            BOTH(be->sqdiff_bwd(nel, X(x), tv ? X(x2) : NULL, 0.7f, 0.5f, X(dx), tv ? X(dx2) : NULL))
            cmp(&dx, 1e-6, WHAT("sqdiff_bwd da b=%d", tv));
            cmp(&dx2, 1e-6, WHAT("sqdiff_bwd db b=%d", tv));
        }
        float inv = c > 1 ? 1.0f / logf((float)c) : 1.0f;
        BOTH(be->entropy_fwd(n, c, hw, X(x), inv, X(y), X(pix))) cmp(&pix, 1e-5, WHAT("entropy_fwd [%d,%d,%zu]", n, c, hw));
        cmp(&y, 1e-5, WHAT("entropy_fwd logp"));
        BOTH(be->entropy_bwd(n, c, hw, X(y), inv, X(dpix), X(dx))) cmp(&dx, 1e-5, WHAT("entropy_bwd [%d,%d,%zu]", n, c, hw));
        BOTH(be->selfinfo_fwd(n, c, hw, X(x), inv, X(y), X(t))) cmp(&t, 1e-5, WHAT("selfinfo_fwd [%d,%d,%zu]", n, c, hw));
        BOTH(be->selfinfo_bwd(n, c, hw, X(y), inv, X(dy), X(dx))) cmp(&dx, 1e-5, WHAT("selfinfo_bwd [%d,%d,%zu]", n, c, hw));
        double s[2];
        BOTH(s[side] = be->l2dist_fwd(n, c, hw, X(x), X(x2), X(pix)))
        cmp_d(s[1], s[0], 1e-9, WHAT("l2dist_fwd sum [%d,%d,%zu]", n, c, hw));
        cmp(&pix, 1e-6, WHAT("l2dist_fwd dist"));
        BOTH(be->l2dist_bwd(n, c, hw, X(x), X(x2), X(pix), 0.4f, X(dx), X(dx2)))
        cmp(&dx, 1e-5, WHAT("l2dist_bwd da [%d,%d,%zu]", n, c, hw));
        cmp(&dx2, 1e-5, WHAT("l2dist_bwd db"));
        free(lab);
        free(cw);
        free(pwh);
        arr all[] = {x, x2, y, dy, dx, pix, dpix, t, dx2, pw};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            rel(&all[i]);
    }
}

/* ---- pooling ---- */

static void kernels_pool(void)
{
    /* planes, h, w, kh, kw, sh, sw, ph, pw */
    const int gs[][9] = {{3, 9, 11, 3, 3, 2, 2, 1, 1}, {2, 8, 8, 2, 2, 2, 2, 0, 0}, {1, 13, 7, 3, 2, 1, 2, 1, 0},
                         {4, 5, 5, 5, 5, 1, 1, 2, 2}};
    for (int gi = 0; gi < 4; gi++) {
        sd_pool_geom g = {.planes = gs[gi][0], .h = gs[gi][1], .w = gs[gi][2], .kh = gs[gi][3], .kw = gs[gi][4],
                          .sh = gs[gi][5], .sw = gs[gi][6], .ph = gs[gi][7], .pw = gs[gi][8]};
        g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
        g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
        size_t ni = (size_t)g.planes * g.h * g.w, no = (size_t)g.planes * g.oh * g.ow;
        arr x = mk(ni, -2, 2), y = mk(no, 0, 0), dy = mk(no, -1, 1), dx = mk(ni, -1, 1);
        int32_t *amr = R->buffer_alloc(no * 4), *amd = D->buffer_alloc(no * 4);
        BOTH(be->max_pool_fwd(&g, X(x), X(y), side ? amd : amr)) cmp(&y, 0, WHAT("max_pool_fwd geom %d", gi));
        int32_t *amh = malloc(no * 4);
        D->sync();
        D->copy_to_host(amh, amd, no * 4);
        CHECK_MSG(!memcmp(amh, amr, no * 4), "max_pool_fwd argmax geom %d differs", gi);
        BOTH(be->max_pool_bwd(&g, X(dy), side ? amd : amr, X(dx))) cmp(&dx, 1e-6, WHAT("max_pool_bwd geom %d", gi));
        /* the op keeps argmax in host memory today: the CUDA wrappers take it there too */
        BOTH(be->max_pool_fwd(&g, X(x), X(y), side ? amh : amr)) cmp(&y, 0, WHAT("max_pool_fwd host argmax %d", gi));
        CHECK_MSG(!memcmp(amh, amr, no * 4), "max_pool_fwd host argmax geom %d differs", gi);
        BOTH(be->max_pool_bwd(&g, X(dy), side ? amh : amr, X(dx))) cmp(&dx, 1e-6, WHAT("max_pool_bwd host argmax %d", gi));
        for (int cip = 0; cip < 2; cip++) {
            g.count_include_pad = cip;
            BOTH(be->avg_pool_fwd(&g, X(x), X(y))) cmp(&y, 1e-6, WHAT("avg_pool_fwd geom %d cip %d", gi, cip));
            BOTH(be->avg_pool_bwd(&g, X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("avg_pool_bwd geom %d cip %d", gi, cip));
        }
        free(amh);
        R->buffer_free(amr);
        D->buffer_free(amd);
        arr all[] = {x, y, dy, dx};
        for (int i = 0; i < 4; i++)
            rel(&all[i]);
    }
    /* adaptive: down, up, odd and to 1x1 */
    const int ad[][4] = {{9, 11, 4, 3}, {5, 3, 7, 6}, {13, 13, 1, 1}, {6, 6, 6, 6}};
    for (int ai = 0; ai < 4; ai++) {
        sd_pool_geom g = {.planes = 3, .h = ad[ai][0], .w = ad[ai][1], .oh = ad[ai][2], .ow = ad[ai][3]};
        size_t ni = (size_t)g.planes * g.h * g.w, no = (size_t)g.planes * g.oh * g.ow;
        arr x = mk(ni, -2, 2), y = mk(no, 0, 0), dy = mk(no, -1, 1), dx = mk(ni, -1, 1);
        BOTH(be->adaptive_avg_pool_fwd(&g, X(x), X(y))) cmp(&y, 1e-6, WHAT("adaptive_avg_pool_fwd %d", ai));
        BOTH(be->adaptive_avg_pool_bwd(&g, X(dy), X(dx))) cmp(&dx, 1e-6, WHAT("adaptive_avg_pool_bwd %d", ai));
        arr all[] = {x, y, dy, dx};
        for (int i = 0; i < 4; i++)
            rel(&all[i]);
    }
}

/* ---- normalisation ---- */

static void kernels_norm(void)
{
    /* batch norm [3,5,7x9] and instance norm of the same tensor */
    const sd_norm_geom gs[] = {{3, 5, 63, 5}, {1, 15, 63, 5}, {2, 4, 1, 4}};
    for (int gi = 0; gi < 3; gi++) {
        sd_norm_geom g = gs[gi];
        size_t n = (size_t)g.outer * g.ch * g.inner;
        arr x = mk(n, -2, 3), y = mk(n, 0, 0), dy = mk(n, -1, 1), dx = mk(n, -1, 1), mean = mk(g.ch, 0, 0),
            inv = mk(g.ch, 0, 0), var = mk(g.ch, 0, 0), w = mk(g.affine_ch, 0.5f, 1.5f), b = mk(g.affine_ch, -1, 1),
            dw = mk(g.affine_ch, -1, 1), db = mk(g.affine_ch, -1, 1), rm = mk(g.ch, -1, 1), rv = mk(g.ch, 0.5f, 2);
        BOTH(be->norm_stats(&g, X(x), 1e-5f, X(mean), X(inv), X(var)))
        cmp(&mean, 1e-6, WHAT("norm_stats mean %d", gi));
        cmp(&inv, 1e-5, WHAT("norm_stats invstd %d", gi));
        cmp(&var, 1e-5, WHAT("norm_stats var %d", gi));
        for (int aff = 0; aff < 2; aff++) {
            BOTH(be->norm_apply(&g, X(x), X(mean), X(inv), aff ? X(w) : NULL, aff ? X(b) : NULL, X(y)))
            cmp(&y, 1e-5, WHAT("norm_apply %d affine %d", gi, aff));
            for (int bs = 0; bs < 2; bs++) {
                BOTH(be->norm_bwd(&g, X(x), X(mean), X(inv), aff ? X(w) : NULL, X(dy), bs, X(dx), aff ? X(dw) : NULL,
                                  aff ? X(db) : NULL))
                cmp(&dx, 1e-4, WHAT("norm_bwd dx %d affine %d batch_stats %d", gi, aff, bs));
                cmp(&dw, 1e-5, WHAT("norm_bwd dweight %d", gi));
                cmp(&db, 1e-5, WHAT("norm_bwd dbias %d", gi));
            }
        }
        BOTH(be->norm_update_running(g.ch, 0.1f, X(mean), X(var), X(rm), X(rv)))
        cmp(&rm, 1e-6, WHAT("norm_update_running mean %d", gi));
        cmp(&rv, 1e-6, WHAT("norm_update_running var %d", gi));
        BOTH(be->norm_running_stats(g.ch, 1e-5f, X(rm), X(rv), X(mean), X(inv)))
        cmp(&mean, 0, WHAT("norm_running_stats mean %d", gi));
        cmp(&inv, 1e-6, WHAT("norm_running_stats invstd %d", gi));
        arr all[] = {x, y, dy, dx, mean, inv, var, w, b, dw, db, rm, rv};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            rel(&all[i]);
    }
}

/* ---- resize, pad, flip ---- */

static void kernels_resize(void)
{
    const int rs[][4] = {{5, 7, 11, 13}, {9, 8, 4, 3}, {1, 1, 3, 2}, {6, 6, 6, 6}, {7, 5, 1, 1}, {4, 3, 8, 6}};
    const int planes = 3;
    for (int ri = 0; ri < 6; ri++) {
        int h = rs[ri][0], w = rs[ri][1], oh = rs[ri][2], ow = rs[ri][3];
        size_t ni = (size_t)planes * h * w, no = (size_t)planes * oh * ow;
        arr x = mk(ni, -2, 2), y = mk(no, 0, 0), dy = mk(no, -1, 1), dx = mk(ni, -1, 1);
        for (int ac = 0; ac < 2; ac++) {
            BOTH(be->resize_bilinear_fwd(planes, h, w, oh, ow, ac, X(x), X(y)))
            cmp(&y, 1e-6, WHAT("resize_bilinear_fwd %dx%d->%dx%d ac %d", h, w, oh, ow, ac));
            BOTH(be->resize_bilinear_bwd(planes, h, w, oh, ow, ac, X(dy), X(dx)))
            cmp(&dx, 1e-5, WHAT("resize_bilinear_bwd %dx%d->%dx%d ac %d", h, w, oh, ow, ac));
        }
        BOTH(be->resize_nearest_fwd(planes, h, w, oh, ow, X(x), X(y)))
        cmp(&y, 0, WHAT("resize_nearest_fwd %dx%d->%dx%d", h, w, oh, ow));
        BOTH(be->resize_nearest_bwd(planes, h, w, oh, ow, X(dy), X(dx)))
        cmp(&dx, 1e-6, WHAT("resize_nearest_bwd %dx%d->%dx%d", h, w, oh, ow));
        arr all[] = {x, y, dy, dx};
        for (int i = 0; i < 4; i++)
            rel(&all[i]);
    }
    /* h, w, top, bottom, left, right (reflect needs pads < size) */
    const int ps[][6] = {{5, 7, 1, 2, 3, 0}, {8, 8, 3, 3, 3, 3}, {4, 9, 0, 0, 2, 5}};
    for (int pi = 0; pi < 3; pi++)
        for (int refl = 0; refl < 2; refl++) {
            int h = ps[pi][0], w = ps[pi][1], t = ps[pi][2], b = ps[pi][3], l = ps[pi][4], r = ps[pi][5];
            size_t ni = (size_t)planes * h * w, no = (size_t)planes * (h + t + b) * (w + l + r);
            arr x = mk(ni, -2, 2), y = mk(no, 0, 0), dy = mk(no, -1, 1), dx = mk(ni, -1, 1);
            BOTH(be->pad2d_fwd(planes, h, w, t, b, l, r, refl, X(x), X(y))) cmp(&y, 0, WHAT("pad2d_fwd %d reflect %d", pi, refl));
            BOTH(be->pad2d_bwd(planes, h, w, t, b, l, r, refl, X(dy), X(dx)))
            cmp(&dx, 1e-6, WHAT("pad2d_bwd %d reflect %d", pi, refl));
            arr all[] = {x, y, dy, dx};
            for (int i = 0; i < 4; i++)
                rel(&all[i]);
        }
    size_t n = 3 * 5 * 7;
    arr x = mk(n, -2, 2), y = mk(n, 0, 0), dx = mk(n, -1, 1);
    BOTH(be->flip_w_fwd(3, 5, 7, X(x), X(y))) cmp(&y, 0, "flip_w_fwd");
    BOTH(be->flip_w_bwd(3, 5, 7, X(x), X(dx))) cmp(&dx, 0, "flip_w_bwd");
    rel(&x), rel(&y), rel(&dx);
}

/* ---- detection: roi_align, gather, smooth-L1 ---- */

static void kernels_detect(void)
{
    const float rois[4 * 5] = {0, 0.5f, 1.0f, 7.5f, 4.0f, 1, -2.0f, 1.5f, 5.0f, 9.0f,
                               1, 3.0f, 3.0f, 3.2f, 3.1f, 0, 2.2f, 0.3f, 8.6f, 5.7f};
    for (int aligned = 0; aligned < 2; aligned++)
        for (int sampling = 0; sampling < 3; sampling += 2) {
            sd_roi_geom g = {.n = 2, .c = 3, .h = 6, .w = 9, .k = 4, .oh = 3, .ow = 4, .scale = 0.9f,
                             .sampling = sampling, .aligned = aligned};
            size_t ni = 2 * 3 * 6 * 9, no = 4 * 3 * 3 * 4;
            arr x = mk(ni, -2, 2), r = mk_from(rois, 20), y = mk(no, 0, 0), dy = mk(no, -1, 1), dx = mk(ni, -1, 1);
            BOTH(be->roi_align_fwd(&g, X(x), X(r), X(y)))
            cmp(&y, 1e-6, WHAT("roi_align_fwd aligned %d sampling %d", aligned, sampling));
            BOTH(be->roi_align_bwd(&g, X(r), X(dy), X(dx)))
            cmp(&dx, 1e-6, WHAT("roi_align_bwd aligned %d sampling %d", aligned, sampling));
            arr all[] = {x, r, y, dy, dx};
            for (int i = 0; i < 5; i++)
                rel(&all[i]);
        }
    const int32_t idx[5] = {3, 0, 3, 7, 1};
    int32_t *ir = R->buffer_alloc(sizeof idx), *id = D->buffer_alloc(sizeof idx);
    R->copy_from_host(ir, idx, sizeof idx);
    D->copy_from_host(id, idx, sizeof idx);
    arr x = mk(8 * 6, -2, 2), y = mk(5 * 6, 0, 0), dy = mk(5 * 6, -1, 1), dx = mk(8 * 6, -1, 1);
    BOTH(be->gather_fwd(5, 6, side ? id : ir, X(x), X(y))) cmp(&y, 0, "gather_fwd");
    BOTH(be->gather_bwd(5, 6, side ? id : ir, X(dy), X(dx))) cmp(&dx, 1e-6, "gather_bwd (a repeated row)");
    double sl[2];
    BOTH(sl[side] = be->smooth_l1_fwd(30, 0.5f, X(dy), X(y)))
    cmp_d(sl[1], sl[0], 1e-9, "smooth_l1_fwd");
    BOTH(be->smooth_l1_bwd(30, 0.5f, X(dy), X(y), 0.3f, X(x))) cmp(&x, 1e-6, "smooth_l1_bwd");
    R->buffer_free(ir);
    D->buffer_free(id);
    rel(&x), rel(&y), rel(&dy), rel(&dx);
}

/* ---- convolutions ---- */

/* conv2d_fused's epilogue: fold, forward and backward, with and without
 * scale, shift and residual, for each activation */
static void kernels_conv_post(void)
{
    const int n = 2, c = 5;
    const size_t plane = 1003, ny = (size_t)n * c * plane;
    arr bias = mk(c, -1, 1), w = mk(c, -2, 2), b = mk(c, -1, 1), rm = mk(c, -1, 1), rv = mk(c, 0.1f, 2),
        scale = mk(c, 0, 0), shift = mk(c, 0, 0);
    BOTH(be->conv_post_fold(c, 1e-5f, X(bias), X(w), X(b), X(rm), X(rv), X(scale), X(shift)))
    cmp(&scale, 1e-6, "conv_post_fold scale");
    cmp(&shift, 1e-6, "conv_post_fold shift");
    BOTH(be->conv_post_fold(c, 1e-3f, NULL, NULL, NULL, X(rm), X(rv), X(scale), X(shift)))
    cmp(&shift, 1e-6, "conv_post_fold without affine");
    for (int act = SD_ACT_NONE; act <= SD_ACT_LEAKY_RELU; act++)
        for (int with = 0; with < 2; with++) {
            arr y = mk(ny, -2, 2), res = mk(ny, -1, 1), dy = mk(ny, -1, 1), dres = mk(ny, -1, 1), dpre = mk(ny, 0, 0);
            BOTH(be->conv_post_fwd(n, c, plane, with ? X(scale) : NULL, with ? X(shift) : NULL,
                                   with ? X(res) : NULL, act, 0.2f, X(y)))
            cmp(&y, 1e-6, WHAT("conv_post_fwd act %d scale/shift/res %d", act, with));
            BOTH(be->conv_post_bwd(n, c, plane, with ? X(scale) : NULL, act, 0.2f, X(y), X(dy),
                                   with ? X(dres) : NULL, X(dpre)))
            cmp(&dpre, 1e-6, WHAT("conv_post_bwd act %d dpre", act));
            cmp(&dres, 1e-6, WHAT("conv_post_bwd act %d dres", act));
            arr all[] = {y, res, dy, dres, dpre};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                rel(&all[i]);
        }
    arr all[] = {bias, w, b, rm, rv, scale, shift};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rel(&all[i]);
}

static void kernels_conv(void)
{
    /* n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups */
    const int cs[][14] = {{2, 3, 9, 11, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
                          {1, 4, 10, 7, 6, 3, 2, 2, 1, 1, 0, 2, 1, 2},
                          {2, 8, 8, 8, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1},
                          {1, 6, 13, 9, 6, 3, 3, 2, 2, 1, 1, 1, 1, 6},
                          {3, 5, 7, 7, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1}};
    for (int ci = 0; ci < 5; ci++)
        for (int bf = 0; bf < 2; bf++) {
            const int *q = cs[ci];
            sd_conv_geom g = {.n = q[0], .cin = q[1], .h = q[2], .w = q[3], .cout = q[4], .kh = q[5], .kw = q[6],
                              .sh = q[7], .sw = q[8], .ph = q[9], .pw = q[10], .dh = q[11], .dw = q[12],
                              .groups = q[13], .compute = bf ? SD_DTYPE_BF16 : SD_DTYPE_F32};
            if (bf && !D->compute_supported(SD_DTYPE_BF16))
                continue;
            g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
            g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
            /* a CPU without native bf16 gives the f32 reference (bf16's tolerance covers the rounding) */
            sd_conv_geom gr = g;
            if (bf && !R->compute_supported(SD_DTYPE_BF16))
                gr.compute = SD_DTYPE_F32;
            size_t nx = (size_t)g.n * g.cin * g.h * g.w, ny = (size_t)g.n * g.cout * g.oh * g.ow,
                   nw = (size_t)g.cout * (g.cin / g.groups) * g.kh * g.kw;
            /* bf16 rounds the inputs (8 bits of mantissa): its own tolerance */
            double tol = bf ? 3e-2 : 2e-4;
            arr x = mk(nx, -1, 1), w = mk(nw, -1, 1), b = mk((size_t)g.cout, -1, 1), bt = mk((size_t)g.cin, -1, 1),
                y = mk(ny, 0, 0), dy = mk(ny, -1, 1), dx = mk(nx, -1, 1), dw = mk(nw, -1, 1), db = mk((size_t)g.cout, -1, 1),
                yt = mk(nx, 0, 0), dyt = mk(nx, -1, 1), dxt = mk(ny, -1, 1), dbt = mk((size_t)g.cin, -1, 1);
            bool ok[2];
            BOTH(ok[side] = be->conv2d_fwd(side ? &g : &gr, X(x), X(w), X(b), X(y)))
            CHECK_MSG(ok[0] && ok[1], "conv2d_fwd %d bf16 %d failed: %s", ci, bf, sd_errmsg());
            cmp(&y, tol, WHAT("conv2d_fwd geom %d bf16 %d", ci, bf));
            BOTH(ok[side] = be->conv2d_fwd(side ? &g : &gr, X(x), X(w), NULL, X(y))) cmp(&y, tol, WHAT("conv2d_fwd no bias %d", ci));
            BOTH(ok[side] = be->conv2d_bwd(side ? &g : &gr, X(x), X(w), X(dy), X(dx), X(dw), X(db)))
            CHECK_MSG(ok[0] && ok[1], "conv2d_bwd %d bf16 %d failed: %s", ci, bf, sd_errmsg());
            cmp(&dx, tol, WHAT("conv2d_bwd dx geom %d bf16 %d", ci, bf));
            cmp(&dw, tol, WHAT("conv2d_bwd dw geom %d bf16 %d", ci, bf));
            cmp(&db, 1e-5, WHAT("conv2d_bwd db geom %d bf16 %d", ci, bf));
            BOTH(ok[side] = be->conv2d_bwd(side ? &g : &gr, X(x), X(w), X(dy), NULL, X(dw), NULL))
            cmp(&dw, tol, WHAT("conv2d_bwd dw only geom %d", ci));
            /* transposed: x on the conv's output side, y on its input side */
            BOTH(ok[side] = be->conv_transpose2d_fwd(side ? &g : &gr, X(dy), X(w), X(bt), X(yt)))
            CHECK_MSG(ok[0] && ok[1], "conv_transpose2d_fwd %d bf16 %d failed: %s", ci, bf, sd_errmsg());
            cmp(&yt, tol, WHAT("conv_transpose2d_fwd geom %d bf16 %d", ci, bf));
            BOTH(ok[side] = be->conv_transpose2d_bwd(side ? &g : &gr, X(dy), X(w), X(dyt), X(dxt), X(dw), X(dbt)))
            CHECK_MSG(ok[0] && ok[1], "conv_transpose2d_bwd %d bf16 %d failed: %s", ci, bf, sd_errmsg());
            cmp(&dxt, tol, WHAT("conv_transpose2d_bwd dx geom %d bf16 %d", ci, bf));
            cmp(&dw, tol, WHAT("conv_transpose2d_bwd dw geom %d bf16 %d", ci, bf));
            cmp(&dbt, 1e-5, WHAT("conv_transpose2d_bwd db geom %d bf16 %d", ci, bf));
            arr all[] = {x, w, b, bt, y, dy, dx, dw, db, yt, dyt, dxt, dbt};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                rel(&all[i]);
        }
}

/* storage: a round trip, zeroing, and the conv kernels' bf16 support answer */
static void kernels_storage(void)
{
    float h[37], back[37];
    for (int i = 0; i < 37; i++)
        h[i] = (float)i - 3.5f;
    float *d = D->buffer_alloc(sizeof h);
    CHECK(d != NULL);
    D->copy_from_host(d, h, sizeof h);
    D->copy_to_host(back, d, sizeof h);
    CHECK(!memcmp(h, back, sizeof h));
    D->buffer_zero(d, sizeof h);
    D->copy_to_host(back, d, sizeof h);
    CHECK(back[0] == 0.0f && back[36] == 0.0f);
    D->sync();
    D->buffer_free(d);
    /* zero-filled allocations, small and large (the CPU maps large ones) */
    for (size_t bytes = 148; bytes <= ((size_t)4 << 20); bytes *= 1024) {
        float *z = D->buffer_alloc_zero(bytes);
        CHECK(z != NULL);
        size_t n = bytes / sizeof(float);
        float *zh = malloc(bytes);
        D->copy_to_host(zh, z, bytes);
        size_t nz = 0;
        for (size_t i = 0; i < n; i++)
            nz += zh[i] != 0.0f;
        CHECK_MSG(nz == 0, "buffer_alloc_zero(%zu): %zu non-zero floats", bytes, nz);
        D->copy_from_host(z, zh, bytes);
        free(zh);
        D->buffer_free(z);
    }
    CHECK(D->compute_supported(SD_DTYPE_F32));
    n_compared++;
}

/* every comparison of D against R */
static void run_all(const sd_backend *ref, const sd_backend *dut)
{
    R = ref;
    D = dut;
    sd_rng_seed(&rng, 7);
    n_compared = 0;
    kernels_storage();
    kernels_elementwise();
    kernels_binary();
    kernels_loss();
    kernels_pool();
    kernels_norm();
    kernels_resize();
    kernels_detect();
    kernels_conv();
    kernels_conv_post();
    printf("  %d comparisons (%s against %s)\n", n_compared, D->name, R->name);
    CHECK(n_compared > 300);
}

#endif
