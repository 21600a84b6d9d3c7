/* The non-convolution ops of a training step that the core issue asked to
 * route through oneDNN "where it is faster": ReLU, max pooling and batch
 * norm with batch statistics, forward and backward, segda's CPU kernels
 * (src/cpu/) against oneDNN's primitives on the same plain NCHW buffers, at
 * the layer sizes of DeepLab-v2 (VGG-16 at 321x321, ResNet-101 at 512x256)
 * and deeplab-mini (256x128). oneDNN's primitives are created once per case,
 * outside the timing. Usage: bench_dnnl_ops [threads] (default: all cores).
 * Speed is reported, never asserted. */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/backend.h"
#include "cpu/kernels.h"
#include "segda/core.h"

typedef enum { OP_RELU, OP_POOL, OP_BN } op_kind;

typedef struct op_case {
    const char *name;
    op_kind op;
    int c, h, w;
    int k, s, p; /* pooling window, stride, padding (ceil mode, as DeepLab's) */
} op_case;

static const op_case cases[] = {
    {"relu VGG conv1 64x321x321", OP_RELU, 64, 321, 321, 0, 0, 0},
    {"relu R101 layer1 256x65x129", OP_RELU, 256, 65, 129, 0, 0, 0},
    {"relu mini 64x64x128", OP_RELU, 64, 64, 128, 0, 0, 0},
    {"maxpool VGG 2/2 64x321x321", OP_POOL, 64, 321, 321, 2, 2, 0},
    {"maxpool R101 3/2 64x128x256", OP_POOL, 64, 128, 256, 3, 2, 1},
    {"maxpool mini 3/2 64x64x128", OP_POOL, 64, 64, 128, 3, 2, 1},
    {"bn batch-stats 64x128x256", OP_BN, 64, 128, 256, 0, 0, 0},
    {"bn batch-stats 256x65x129", OP_BN, 256, 65, 129, 0, 0, 0},
    {"bn batch-stats mini 64x64x128", OP_BN, 64, 64, 128, 0, 0, 0},
};

enum { REPS = 7, MAXARG = 10 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static dnnl_engine_t eng;
static dnnl_stream_t stream;

static void die(const char *what, dnnl_status_t st)
{
    if (st != dnnl_success) {
        fprintf(stderr, "bench_dnnl_ops: %s failed (oneDNN status %d)\n", what, (int)st);
        exit(1);
    }
}

/* One oneDNN primitive with its arguments bound to host buffers. */
typedef struct prim {
    dnnl_primitive_t p;
    dnnl_primitive_desc_t pd;
    int n;
    dnnl_exec_arg_t args[MAXARG];
} prim;

static void prim_make(prim *q, const void *desc, const_dnnl_primitive_desc_t hint)
{
    die("primitive_desc_create", dnnl_primitive_desc_create(&q->pd, desc, NULL, eng, hint));
    die("primitive_create", dnnl_primitive_create(&q->p, q->pd));
    q->n = 0;
}

static void prim_arg(prim *q, int arg, const dnnl_memory_desc_t *md, void *ptr)
{
    dnnl_memory_t m;
    die("memory_create", dnnl_memory_create(&m, md, eng, ptr));
    q->args[q->n].arg = arg;
    q->args[q->n++].memory = m;
}

static void prim_run(const prim *q)
{
    die("execute", dnnl_primitive_execute(q->p, stream, q->n, q->args));
    dnnl_stream_wait(stream);
}

static void prim_free(prim *q)
{
    for (int i = 0; i < q->n; i++)
        dnnl_memory_destroy(q->args[i].memory);
    dnnl_primitive_destroy(q->p);
    dnnl_primitive_desc_destroy(q->pd);
}

static const dnnl_memory_desc_t *query_md(const prim *q, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(q->pd, what, 0);
}

static float *buf(size_t n, unsigned seed)
{
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) {
        fprintf(stderr, "bench_dnnl_ops: out of memory\n");
        exit(1);
    }
    srand(seed);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

static int pool_out(int n, int k, int s, int p)
{
    int o = (n + 2 * p - k + s - 1) / s + 1; /* ceil mode */
    if ((o - 1) * s >= n + p)
        o--;
    return o;
}

/* Best-of-(REPS-1) ms of segda's forward and backward (sf, sb) and of
 * oneDNN's (df, db) for case k. */
static void time_case(const op_case *k, double t[4])
{
    const int c = k->c, h = k->h, w = k->w;
    size_t n = (size_t)c * h * w;
    int oh = k->op == OP_POOL ? pool_out(h, k->k, k->s, k->p) : h;
    int ow = k->op == OP_POOL ? pool_out(w, k->k, k->s, k->p) : w;
    size_t no = (size_t)c * oh * ow;
    float *x = buf(n, 1), *y = buf(no, 2), *dy = buf(no, 3), *dx = buf(n, 4);
    float *y2 = buf(no, 5), *dx2 = buf(n, 6), *ws = buf(no * 2, 7);
    float *mean = buf(c, 8), *inv = buf(c, 9), *var = buf(c, 10), *g = buf(c, 11), *b = buf(c, 12);
    float *dg = buf(c, 13), *dbias = buf(c, 14);
    int32_t *argmax = malloc(no * sizeof *argmax);
    dnnl_memory_desc_t md, omd, cmd;
    die("md", dnnl_memory_desc_init_by_tag(&md, 4, (dnnl_dims_t){1, c, h, w}, dnnl_f32, dnnl_nchw));
    die("md", dnnl_memory_desc_init_by_tag(&omd, 4, (dnnl_dims_t){1, c, oh, ow}, dnnl_f32, dnnl_nchw));
    die("md", dnnl_memory_desc_init_by_tag(&cmd, 1, (dnnl_dims_t){c}, dnnl_f32, dnnl_a));
    prim fwd, bwd;
    sd_pool_geom pg = {c, h, w, oh, ow, k->k, k->k, k->s, k->s, k->p, k->p, false};
    sd_norm_geom ng = {1, c, h * w, c};
    if (k->op == OP_RELU) {
        dnnl_eltwise_desc_t fd, bd;
        die("eltwise fwd", dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                                           dnnl_eltwise_relu_use_dst_for_bwd, &md, 0.f, 0.f));
        prim_make(&fwd, &fd, NULL);
        prim_arg(&fwd, DNNL_ARG_SRC, &md, x);
        prim_arg(&fwd, DNNL_ARG_DST, &md, y2);
        die("eltwise bwd", dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, &md, &md, 0.f, 0.f));
        prim_make(&bwd, &bd, fwd.pd);
        prim_arg(&bwd, DNNL_ARG_DST, &md, y2);
        prim_arg(&bwd, DNNL_ARG_DIFF_DST, &md, dy);
        prim_arg(&bwd, DNNL_ARG_DIFF_SRC, &md, dx2);
    } else if (k->op == OP_POOL) {
        dnnl_pooling_v2_desc_t fd, bd;
        dnnl_dims_t st = {k->s, k->s}, ker = {k->k, k->k}, dil = {0, 0}, pl = {k->p, k->p};
        dnnl_dims_t pr = {(oh - 1) * k->s + k->k - h - k->p, (ow - 1) * k->s + k->k - w - k->p};
        die("pool fwd", dnnl_pooling_v2_forward_desc_init(&fd, dnnl_forward_training, dnnl_pooling_max, &md, &omd,
                                                          st, ker, dil, pl, pr));
        prim_make(&fwd, &fd, NULL);
        prim_arg(&fwd, DNNL_ARG_SRC, &md, x);
        prim_arg(&fwd, DNNL_ARG_DST, &omd, y2);
        prim_arg(&fwd, DNNL_ARG_WORKSPACE, query_md(&fwd, dnnl_query_workspace_md), ws);
        die("pool bwd", dnnl_pooling_v2_backward_desc_init(&bd, dnnl_pooling_max, &md, &omd, st, ker, dil, pl, pr));
        prim_make(&bwd, &bd, fwd.pd);
        prim_arg(&bwd, DNNL_ARG_DIFF_DST, &omd, dy);
        prim_arg(&bwd, DNNL_ARG_DIFF_SRC, &md, dx2);
        prim_arg(&bwd, DNNL_ARG_WORKSPACE, query_md(&fwd, dnnl_query_workspace_md), ws);
    } else {
        dnnl_batch_normalization_desc_t fd, bd;
        unsigned flags = dnnl_use_scale | dnnl_use_shift;
        die("bn fwd", dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &md, 1e-5f, flags));
        prim_make(&fwd, &fd, NULL);
        prim_arg(&fwd, DNNL_ARG_SRC, &md, x);
        prim_arg(&fwd, DNNL_ARG_DST, &md, y2);
        prim_arg(&fwd, DNNL_ARG_MEAN, &cmd, mean);
        prim_arg(&fwd, DNNL_ARG_VARIANCE, &cmd, var);
        prim_arg(&fwd, DNNL_ARG_SCALE, &cmd, g);
        prim_arg(&fwd, DNNL_ARG_SHIFT, &cmd, b);
        die("bn bwd", dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &md, &md, 1e-5f, flags));
        prim_make(&bwd, &bd, fwd.pd);
        prim_arg(&bwd, DNNL_ARG_SRC, &md, x);
        prim_arg(&bwd, DNNL_ARG_MEAN, &cmd, mean);
        prim_arg(&bwd, DNNL_ARG_VARIANCE, &cmd, var);
        prim_arg(&bwd, DNNL_ARG_SCALE, &cmd, g);
        prim_arg(&bwd, DNNL_ARG_SHIFT, &cmd, b);
        prim_arg(&bwd, DNNL_ARG_DIFF_DST, &md, dy);
        prim_arg(&bwd, DNNL_ARG_DIFF_SRC, &md, dx2);
        prim_arg(&bwd, DNNL_ARG_DIFF_SCALE, &cmd, dg);
        prim_arg(&bwd, DNNL_ARG_DIFF_SHIFT, &cmd, dbias);
    }
    for (int i = 0; i < 4; i++)
        t[i] = 1e9;
    for (int rep = 0; rep < REPS; rep++) {
        double s[5];
        s[0] = now();
        if (k->op == OP_RELU)
            sd_cpu_relu_fwd(n, x, y);
        else if (k->op == OP_POOL)
            sd_cpu_max_pool_fwd(&pg, x, y, argmax);
        else {
            sd_cpu_norm_stats(&ng, x, 1e-5f, mean, inv, var);
            sd_cpu_norm_apply(&ng, x, mean, inv, g, b, y);
        }
        s[1] = now();
        if (k->op == OP_RELU)
            sd_cpu_relu_bwd(n, y, dy, dx);
        else if (k->op == OP_POOL)
            sd_cpu_max_pool_bwd(&pg, dy, argmax, dx);
        else
            sd_cpu_norm_bwd(&ng, x, mean, inv, g, dy, true, dx, dg, dbias);
        s[2] = now();
        prim_run(&fwd);
        s[3] = now();
        prim_run(&bwd);
        s[4] = now();
        if (rep > 0) /* the first run faults the pages in */
            for (int i = 0; i < 4; i++)
                t[i] = s[i + 1] - s[i] < t[i] ? s[i + 1] - s[i] : t[i];
    }
    prim_free(&fwd);
    prim_free(&bwd);
    float *all[] = {x, y, dy, dx, y2, dx2, ws, mean, inv, var, g, b, dg, dbias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    free(argmax);
}

int main(int argc, char **argv)
{
    sd_set_threads(argc > 1 ? atoi(argv[1]) : 0);
    die("engine", dnnl_engine_create(&eng, dnnl_cpu, 0));
    die("stream", dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    printf("ReLU, max pooling, batch norm (batch statistics): segda's CPU kernels vs oneDNN, batch 1, NCHW,\n"
           "%d threads, ms, best of %d (backward of segda's kernels accumulates into dx; oneDNN's overwrites)\n",
           sd_threads(), REPS - 1);
    printf("%-32s %10s %10s %10s %10s\n", "case", "segda fwd", "oneDNN fwd", "segda bwd", "oneDNN bwd");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double t[4];
        time_case(&cases[i], t);
        printf("%-32s %10.2f %10.2f %10.2f %10.2f\n", cases[i].name, 1e3 * t[0], 1e3 * t[2], 1e3 * t[1],
               1e3 * t[3]);
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
