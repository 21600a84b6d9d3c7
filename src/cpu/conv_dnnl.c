/* oneDNN convolutions for the CPU backend: conv2d forward (+bias),
 * backward-data and backward-weights in f32 or bf16 for groups == 1, and the
 * transposed conv as the same three primitives. The only file that includes dnnl.h.
 *
 * Primitives, their layouts and the reorders into/out of them are built once
 * per (geometry, direction, dtype, layout mode, thread count) and kept in a
 * mutex-protected table: building one costs far more than running a small
 * conv. The table never evicts (a training run has a few dozen geometries);
 * past its size a call builds, runs and frees its own primitive.
 * oneDNN overwrites its outputs, so accumulated results (all gradients) go
 * to per-thread scratch and are added to the caller's buffer by a reorder
 * with a sum post-op, which also converts blocked layouts back to NCHW.
 * Determinism: oneDNN's reductions (weight gradient) follow a decomposition
 * fixed by the thread count the primitive was made for, which is part of the
 * key; tests/test_conv_dnnl.c checks bit-identical reruns. */
#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/dnnl.h"
#include "segda/core.h"

enum { DIR_FWD, DIR_BWD_DATA, DIR_BWD_W };
/* Each primitive has three tensors: role 0 the input side (x / diff_src),
 * 1 the weights, 2 the output side (y / diff_dst); one is its output. */
static const int role_arg[3][3] = {
    {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
    {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
    {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST},
};
static const int out_role[3] = {2, 0, 1};

typedef struct conv_key {
    sd_conv_geom g; /* compute forced to F32; bf16 says which */
    int dir, nthr;
    bool acc, bias, bf16, blocked;
} conv_key;

typedef struct conv_entry {
    conv_key k;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t user[3], md[3], bias_md, pad_md;
    /* inputs: user -> md, NULL when equal; output: md -> user, with a sum
     * post-op when accumulating, NULL when equal and overwriting */
    dnnl_primitive_t reorder[3];
    size_t pad_bytes;
} conv_entry;

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
#define TABLE_CAP 256
static conv_entry *table[TABLE_CAP];
static int table_n;

static _Atomic int impl_mode = SD_CPU_CONV_AUTO;
static atomic_bool blocked_mode = true;

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static void read_env(void);
void sd_cpu_conv_impl_set(sd_cpu_conv_impl impl)
{
    pthread_once(&env_once, read_env);
    impl_mode = impl;
}
sd_cpu_conv_impl sd_cpu_conv_impl_get(void)
{
    pthread_once(&env_once, read_env);
    return (sd_cpu_conv_impl)impl_mode;
}
void sd_cpu_dnnl_set_blocked(bool blocked) { blocked_mode = blocked; }

static void engine_init(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
}

/* Scratch per thread and slot: 0-2 the primitive-layout copy of each role,
 * 3 the primitives' scratchpad, 4-6 bf16-rounded inputs (emulation). Grown
 * on demand and kept, like the im2col buffer. */
enum { SLOT_PAD = 3, SLOT_ROUND = 4, N_SLOTS = 7 };
static _Thread_local void *slot_buf[N_SLOTS];
static _Thread_local size_t slot_cap[N_SLOTS];

static void *slot_get(int s, size_t bytes)
{
    if (bytes > slot_cap[s]) {
        free(slot_buf[s]);
        slot_buf[s] = aligned_alloc(64, (bytes + 63) / 64 * 64);
        slot_cap[s] = slot_buf[s] ? bytes : 0;
    }
    return slot_buf[s];
}

void sd_cpu_bf16_round(const float *src, float *dst, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            u |= 0x00400000u; /* NaN stays NaN (quiet) */
        else
            u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        memcpy(&dst[i], &u, 4);
    }
}

static void entry_free(conv_entry *e)
{
    if (!e)
        return;
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    for (int r = 0; r < 3; r++)
        if (e->reorder[r])
            dnnl_primitive_destroy(e->reorder[r]);
    free(e);
}

static size_t pd_pad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return m ? dnnl_memory_desc_get_size(m) : 0;
}

/* A reorder src -> dst, summing into dst when acc; NULL on failure. */
static dnnl_primitive_t reorder_make(const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, bool acc,
                                     size_t *pad)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (acc && (dnnl_post_ops_create(&po) != dnnl_success || dnnl_post_ops_append_sum(po, 1.0f) != dnnl_success ||
                dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success))
        goto out;
    if (dnnl_reorder_primitive_desc_create(&pd, src, engine, dst, engine, attr) != dnnl_success)
        goto out;
    size_t b = pd_pad_bytes(pd);
    if (b > *pad)
        *pad = b;
    if (dnnl_primitive_create(&p, pd) != dnnl_success)
        p = NULL;
out:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (po)
        dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return p;
}

/* The fast kernels only: oneDNN's reference convolution is far slower than
 * im2col, so a case that only it covers stays on the im2col path. */
static bool pd_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return true;
    return strncmp(impl, "ref", 3) == 0;
}

static conv_entry *entry_make(const conv_key *k)
{
    pthread_once(&engine_once, engine_init);
    if (!engine)
        return NULL;
    conv_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->k = *k;
    const sd_conv_geom *g = &k->g;
    const dnnl_dims_t dims[3] = {{g->n, g->cin, g->h, g->w}, {g->cout, g->cin, g->kh, g->kw},
                                 {g->n, g->cout, g->oh, g->ow}};
    const dnnl_dims_t bdims = {g->cout};
    const dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pad = {g->ph, g->pw};
    dnnl_data_type_t in_t = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t want[3], hint_md[3];
    for (int r = 0; r < 3; r++) {
        dnnl_data_type_t t = r == out_role[k->dir] ? dnnl_f32 : in_t;
        dnnl_format_tag_t tag = k->blocked ? dnnl_format_tag_any : dnnl_abcd;
        if (dnnl_memory_desc_init_by_tag(&e->user[r], 4, dims[r], dnnl_f32, dnnl_abcd) != dnnl_success ||
            dnnl_memory_desc_init_by_tag(&want[r], 4, dims[r], t, tag) != dnnl_success ||
            dnnl_memory_desc_init_by_tag(&hint_md[r], 4, dims[r], in_t, tag) != dnnl_success)
            goto fail;
    }
    if (k->bias && dnnl_memory_desc_init_by_tag(&e->bias_md, 1, bdims, dnnl_f32, dnnl_a) != dnnl_success)
        goto fail;

    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_convolution_desc_t cd, hd;
    bool ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
              dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && k->dir == DIR_FWD) {
        ok = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                                        &want[0], &want[1], k->bias ? &e->bias_md : NULL,
                                                        &want[2], strides, dil, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) == dnnl_success;
    } else if (ok) {
        ok = dnnl_dilated_convolution_forward_desc_init(&hd, dnnl_forward_training, dnnl_convolution_direct,
                                                        &hint_md[0], &hint_md[1], NULL, &hint_md[2], strides,
                                                        dil, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&hint, &hd, NULL, engine, NULL) == dnnl_success;
        if (ok && k->dir == DIR_BWD_DATA)
            ok = dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &want[0], &want[1],
                                                                  &want[2], strides, dil, pad, pad) == dnnl_success;
        else if (ok)
            ok = dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &want[0],
                                                                     &want[1], NULL, &want[2], strides, dil, pad,
                                                                     pad) == dnnl_success;
        ok = ok && dnnl_primitive_desc_create(&pd, &cd, attr, engine, hint) == dnnl_success;
    }
    ok = ok && !pd_is_ref(pd);
    if (ok) {
        for (int r = 0; r < 3; r++)
            e->md[r] = *dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, role_arg[k->dir][r]);
        e->pad_bytes = pd_pad_bytes(pd);
        ok = dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    }
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (hint)
        dnnl_primitive_desc_destroy(hint);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        e->prim = NULL;
        goto fail;
    }
    for (int r = 0; r < 3; r++) {
        bool same = dnnl_memory_desc_equal(&e->user[r], &e->md[r]);
        if (r != out_role[k->dir]) {
            if (!same && !(e->reorder[r] = reorder_make(&e->user[r], &e->md[r], false, &e->pad_bytes)))
                goto fail;
        } else if (k->acc || !same) {
            if (!(e->reorder[r] = reorder_make(&e->md[r], &e->user[r], k->acc, &e->pad_bytes)))
                goto fail;
        }
    }
    if (e->pad_bytes) {
        const dnnl_dims_t pdims = {(dnnl_dim_t)e->pad_bytes};
        dnnl_memory_desc_init_by_tag(&e->pad_md, 1, pdims, dnnl_u8, dnnl_a);
    }
    return e;
fail:
    entry_free(e);
    return NULL;
}

/* The cached entry for k, built on first use. *owned: the caller frees it
 * (the table is full). NULL when oneDNN has no fast kernel for it. */
static conv_entry *entry_get(const conv_key *k, bool *owned)
{
    *owned = false;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < table_n; i++)
        if (!memcmp(&table[i]->k, k, sizeof *k)) {
            conv_entry *e = table[i];
            pthread_mutex_unlock(&table_lock);
            return e;
        }
    /* built under the lock so two threads never build the same entry. Inside
     * a parallel region oneDNN runs a primitive on one thread, but its
     * kernels split work (the weight-gradient reduction) by the thread
     * count seen when they were built: built for 2 and run on 1, half of dw
     * was never computed. So such entries are built seeing one thread. */
    int prev = omp_get_max_threads();
    if (k->nthr != prev)
        omp_set_num_threads(k->nthr);
    conv_entry *e = entry_make(k);
    if (k->nthr != prev)
        omp_set_num_threads(prev);
    if (e && table_n < TABLE_CAP)
        table[table_n++] = e;
    else if (e)
        *owned = true;
    pthread_mutex_unlock(&table_lock);
    return e;
}

static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *p)
{
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, engine, p) != dnnl_success)
        return NULL;
    return m;
}

static bool exec(dnnl_primitive_t p, dnnl_stream_t s, int n, dnnl_exec_arg_t *args)
{
    for (int i = 0; i < n; i++)
        if (!args[i].memory)
            return false;
    return dnnl_primitive_execute(p, s, n, args) == dnnl_success;
}

/* Runs entry e: ptr[r] is the user NCHW buffer of role r (the output role's
 * is written or accumulated into); bias may be NULL. */
static bool entry_run(const conv_entry *e, const float *const ptr[3], const float *bias)
{
    const int out = out_role[e->k.dir];
    void *pad = e->pad_bytes ? slot_get(SLOT_PAD, e->pad_bytes) : NULL;
    void *buf[3];
    for (int r = 0; r < 3; r++) {
        buf[r] = (void *)ptr[r];
        if (e->reorder[r] && !(buf[r] = slot_get(r, dnnl_memory_desc_get_size(&e->md[r]))))
            return false;
    }
    if (e->pad_bytes && !pad)
        return false;
    dnnl_stream_t s;
    if (dnnl_stream_create(&s, engine, dnnl_stream_default_flags) != dnnl_success)
        return false;
    dnnl_memory_t mpad = pad ? mem(&e->pad_md, pad) : NULL, user[3] = {0}, prim[3] = {0}, mb = NULL;
    bool ok = !pad || mpad;
    for (int r = 0; r < 3 && ok; r++) {
        prim[r] = mem(&e->md[r], buf[r]);
        ok = prim[r] != NULL;
        if (ok && e->reorder[r])
            ok = (user[r] = mem(&e->user[r], (void *)ptr[r])) != NULL;
    }
    for (int r = 0; r < 3 && ok; r++) {
        if (r == out || !e->reorder[r])
            continue;
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, user[r]}, {DNNL_ARG_TO, prim[r]}, {DNNL_ARG_SCRATCHPAD, mpad}};
        ok = exec(e->reorder[r], s, pad ? 3 : 2, a);
    }
    if (ok) {
        dnnl_exec_arg_t a[5];
        int n = 0;
        for (int r = 0; r < 3; r++)
            a[n++] = (dnnl_exec_arg_t){role_arg[e->k.dir][r], prim[r]};
        if (e->k.bias) {
            mb = mem(&e->bias_md, (void *)bias);
            a[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
        }
        if (pad)
            a[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mpad};
        ok = exec(e->prim, s, n, a);
    }
    if (ok && e->reorder[out]) {
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_FROM, prim[out]}, {DNNL_ARG_TO, user[out]}, {DNNL_ARG_SCRATCHPAD, mpad}};
        ok = exec(e->reorder[out], s, pad ? 3 : 2, a);
    }
    ok = dnnl_stream_wait(s) == dnnl_success && ok;
    dnnl_stream_destroy(s);
    for (int r = 0; r < 3; r++) {
        if (user[r])
            dnnl_memory_destroy(user[r]);
        if (prim[r])
            dnnl_memory_destroy(prim[r]);
    }
    if (mb)
        dnnl_memory_destroy(mb);
    if (mpad)
        dnnl_memory_destroy(mpad);
    return ok;
}

static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static bool bf16_native;

/* Native bf16 means oneDNN builds a non-reference bf16 conv with f32 output
 * here; it needs AVX512 (bf16 instructions or AMX for speed). */
static void bf16_probe(void)
{
    sd_conv_geom g = {.n = 1, .cin = 16, .h = 8, .w = 8, .cout = 16, .kh = 3, .kw = 3, .oh = 8, .ow = 8,
                      .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1};
    conv_key k;
    memset(&k, 0, sizeof k);
    k.g = g;
    k.dir = DIR_FWD;
    k.nthr = 1;
    k.bf16 = k.blocked = true;
    conv_entry *e = entry_make(&k);
    bf16_native = e != NULL;
    entry_free(e);
}

bool sd_cpu_bf16_supported(void)
{
    pthread_once(&bf16_once, bf16_probe);
    return bf16_native;
}

/* The AUTO rule on CPUs with AVX-512-class oneDNN kernels (below: the
 * whole-step measurement that keeps im2col on AVX2), from bench/bench_conv
 * at 2 threads on this project's 2-core
 * AVX2 box (AMD EPYC, oneDNN jit:avx2, no native bf16), ms fwd / bwd, best
 * of 3, im2col vs oneDNN blocked (machine shared with other builds, load
 * 3-5: differences under ~15% are noise):
 *   1x1 256->64 128x256          7.3 / 16.4   vs   8.8 / 26.5   im2col (no im2col: one sgemm)
 *   1x1 1024->256 65x129        24.8 / 52.6   vs  28.3 / 69.4   im2col
 *   3x3 64->64 128x256          21.8 / 46.6   vs  13.9 / 35.3   oneDNN
 *   3x3 64->64 dil2             20.6 / 55.2   vs  14.1 / 41.6   oneDNN
 *   3x3 256->256 65x129 dil2-24   59-63 / 125-137 vs 53-71 / 123-208: even
 *   ASPP 3x3 2048->19 dil6        263 / 717   vs   184 / 356    oneDNN
 *   ASPP dil12 / 18 / 24    495-730 / 1234-1709 vs 415-442 / 754-1064  oneDNN
 *   VGG 3x3 64->64 321x321        277 / 563   vs   134 / 359    oneDNN
 *   VGG 3x3 3->64 321x321        13.0 / 57.5  vs  11.7 / 58.7   fwd even, bwd even
 *   stem 7x7/2 3->64 512x1024    68.1 / 213   vs  46.8 / 221    fwd oneDNN; bwd even (load 7 reruns:
 *                                                                274 vs 365, 252 vs 178): im2col kept
 *   3x3/2 64->128 batch 2        44.0 / 76.0  vs  40.1 / 34.7   oneDNN
 *   transposed 4x4/2 128->64     52.9 / 92.0  vs  93.0 / 152    im2col
 *   transposed 16x16/8 19->19    97.9 / 155   vs  75.5 / 146    even (load 7)
 * Plain-layout oneDNN primitives were slower than blocked ones with
 * reorders in most rows (3x3 64->64: 21.6 vs 13.9 ms fwd; VGG 199 vs 134),
 * so blocked is the default. Two reruns at load 5-7 agreed on every
 * direction above except the rows marked even. With native bf16 every groups == 1 conv goes to
 * oneDNN: f32 sgemm cannot use the bf16 units (not measurable here). */
/* SEGDA_CONV=im2col|onednn|hybrid|winograd overrides the rule for a whole
 * process, so `segda bench` can time the im2col path it replaced
 * (before/after) and the opt-in paths. */
static void read_env(void)
{
    const char *e = getenv("SEGDA_CONV");
    if (e && !strcmp(e, "im2col"))
        impl_mode = SD_CPU_CONV_IM2COL;
    else if (e && !strcmp(e, "onednn"))
        impl_mode = SD_CPU_CONV_DNNL;
    else if (e && !strcmp(e, "hybrid"))
        impl_mode = SD_CPU_CONV_HYBRID;
    else if (e && !strcmp(e, "winograd"))
        impl_mode = SD_CPU_CONV_WINOGRAD;
    else if (e && *e)
        sd_log(0, "warning: SEGDA_CONV='%s': expected im2col, onednn, hybrid or winograd; the default rule is used\n",
               e);
}

/* SEGDA_CONV=hybrid, opt-in because it changes results in the last bits:
 * oneDNN where the per-conv table above has it clearly ahead on AVX2 (few
 * output channels: the classifier heads and ASPP branches, 2048->19 took
 * 184 / 356 ms against 263 / 717; 3x3 convs of up to 128 channels: VGG's
 * and ResNet's first stages), im2col + OpenBLAS for the wide and 1x1
 * layers, transposed convs and tiny-Cin backward, where oneDNN was even or
 * slower. The whole-step numbers are in the README (Speed). */
static bool hybrid_wanted(const sd_conv_geom *g, bool backward, bool transposed)
{
    bool pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    if (transposed || pointwise || (backward && g->cin < 8))
        return false;
    return g->cout <= 32 || (g->cin <= 128 && g->cout <= 128);
}

bool sd_cpu_dnnl_conv_wanted(const sd_conv_geom *g, bool backward, bool transposed)
{
    pthread_once(&env_once, read_env);
    if (g->groups != 1)
        return false;
    switch ((sd_cpu_conv_impl)impl_mode) {
    case SD_CPU_CONV_IM2COL:
    case SD_CPU_CONV_WINOGRAD:
        return false;
    case SD_CPU_CONV_DNNL:
        return true;
    case SD_CPU_CONV_HYBRID:
        return hybrid_wanted(g, backward, transposed);
    default:
        break;
    }
    if (g->compute == SD_DTYPE_BF16 && sd_cpu_bf16_supported())
        return true;
    /* Whole training and inference steps on the quiet 2-core AVX2 machine
     * (segda bench, median of 3, ms, im2col vs oneDNN): vgg321 2997 vs 3042,
     * r101 4892 vs 5134, r101-infer 5732 vs 6028, mini 53 vs 77, and less
     * memory (vgg321 788 vs 1190 MB RSS): the per-conv wins below (measured
     * under load) do not survive the reorders, scratch and the dilated
     * 256-channel layers where oneDNN's AVX2 kernels lose. So oneDNN leads
     * only where it has its AVX-512-class kernels (the CPUs with native
     * bf16); elsewhere im2col + OpenBLAS stays the default, SEGDA_CONV=onednn
     * forces oneDNN. */
    if (!sd_cpu_bf16_supported())
        return false;
    if (transposed)
        return false;
    bool pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    if (pointwise)
        return false;
    return !(backward && g->cin < 8);
}

static conv_key key_make(const sd_conv_geom *g, int dir, bool acc, bool bias, bool bf16)
{
    conv_key k;
    memset(&k, 0, sizeof k); /* memcmp'd: no stray padding bytes */
    k.g = *g;
    k.g.compute = SD_DTYPE_F32;
    k.dir = dir;
    k.acc = acc;
    k.bias = bias;
    k.bf16 = bf16;
    k.blocked = blocked_mode;
    k.nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
    return k;
}

/* The entry for (g, dir), in bf16 when g asks for it and oneDNN has it; else
 * f32 with *emulate set when g wants bf16 (the caller rounds the inputs). */
static conv_entry *prepare(const sd_conv_geom *g, int dir, bool acc, bool bias, bool *emulate, bool *owned)
{
    static atomic_bool told;
    bool want = g->compute == SD_DTYPE_BF16;
    *emulate = false;
    if (want && sd_cpu_bf16_supported()) {
        conv_key k = key_make(g, dir, acc, bias, true);
        conv_entry *e = entry_get(&k, owned);
        if (e)
            return e;
    }
    conv_key k = key_make(g, dir, acc, bias, false);
    conv_entry *e = entry_get(&k, owned);
    if (e && want) {
        *emulate = true;
        if (!atomic_exchange(&told, true))
            sd_log(1, "conv: no native bf16 convolution on this CPU (oneDNN ISA %d); bf16 inputs are rounded "
                      "and computed in f32\n", (int)dnnl_get_effective_cpu_isa());
    }
    return e;
}

/* The bf16-rounded copy of a role's input in slot SLOT_ROUND + r, or src. */
static const float *rounded(int r, const float *src, size_t n, bool emulate)
{
    if (!emulate || !src)
        return src;
    float *d = slot_get(SLOT_ROUND + r, n * sizeof(float));
    if (d)
        sd_cpu_bf16_round(src, d, n);
    return d;
}

static size_t role_numel(const sd_conv_geom *g, int r)
{
    return r == 0 ? (size_t)g->n * g->cin * g->h * g->w
           : r == 1 ? (size_t)g->cout * g->cin * g->kh * g->kw
                    : (size_t)g->n * g->cout * g->oh * g->ow;
}

/* Runs the prepared entries of one call (up to two, sharing inputs), then
 * frees those the table did not keep. in[r]: user input per role. */
static bool run_entries(const sd_conv_geom *g, int n, conv_entry *const *e, const bool *owned, bool emulate,
                        const float *const in[3], float *const *outs, const float *bias)
{
    const float *r_in[3];
    bool ok = true;
    for (int r = 0; r < 3; r++) {
        r_in[r] = rounded(r, in[r], role_numel(g, r), emulate);
        ok = ok && (!in[r] || r_in[r]);
    }
    for (int i = 0; i < n && ok; i++) {
        const float *p[3] = {r_in[0], r_in[1], r_in[2]};
        p[out_role[e[i]->k.dir]] = outs[i];
        ok = entry_run(e[i], p, bias);
    }
    for (int i = 0; i < n; i++)
        if (owned[i])
            entry_free(e[i]);
    return ok;
}

/* One direction of g with user roles in[] and output out. */
static bool conv_one(const sd_conv_geom *g, int dir, bool acc, const float *x, const float *w, const float *d,
                     const float *bias, float *out)
{
    bool emulate, owned;
    conv_entry *e = prepare(g, dir, acc, bias != NULL, &emulate, &owned);
    if (!e)
        return false;
    const float *in[3] = {x, w, d};
    in[out_role[dir]] = NULL;
    return run_entries(g, 1, &e, &owned, emulate, in, &out, bias);
}

/* Backward data and weights of one conv: both primitives are built before
 * either runs, so a failure leaves every gradient untouched. */
static bool conv_two(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw)
{
    if (!dx && !dw)
        return true;
    if (!dx || !dw)
        return dx ? conv_one(g, DIR_BWD_DATA, true, NULL, w, dy, NULL, dx)
                  : conv_one(g, DIR_BWD_W, true, x, NULL, dy, NULL, dw);
    conv_entry *e[2];
    bool owned[2], em0, em1;
    e[0] = prepare(g, DIR_BWD_DATA, true, false, &em0, &owned[0]);
    e[1] = e[0] ? prepare(g, DIR_BWD_W, true, false, &em1, &owned[1]) : NULL;
    if (!e[1] || em0 != em1) {
        if (e[0] && owned[0])
            entry_free(e[0]);
        if (e[1] && owned[1])
            entry_free(e[1]);
        return false;
    }
    const float *in[3] = {x, w, dy};
    float *outs[2] = {dx, dw};
    return run_entries(g, 2, e, owned, em0, in, outs, NULL);
}

bool sd_cpu_dnnl_conv2d_fwd(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    return conv_one(g, DIR_FWD, false, x, w, NULL, b, y);
}

bool sd_cpu_dnnl_conv2d_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                            float *dw)
{
    return conv_two(g, x, w, dy, dx, dw);
}

bool sd_cpu_dnnl_convt_fwd(const sd_conv_geom *g, const float *x, const float *w, float *y)
{
    return conv_one(g, DIR_BWD_DATA, true, NULL, w, x, NULL, y);
}

bool sd_cpu_dnnl_convt_bwd(const sd_conv_geom *g, const float *x, const float *w, const float *dy, float *dx,
                           float *dw)
{
    /* the adjoint conv's input side is dy, its output side x */
    if (dx && dw) {
        conv_entry *e[2];
        bool owned[2], em0, em1;
        e[0] = prepare(g, DIR_FWD, true, false, &em0, &owned[0]);
        e[1] = e[0] ? prepare(g, DIR_BWD_W, true, false, &em1, &owned[1]) : NULL;
        if (!e[1] || em0 != em1) {
            if (e[0] && owned[0])
                entry_free(e[0]);
            if (e[1] && owned[1])
                entry_free(e[1]);
            return false;
        }
        const float *in[3] = {dy, w, x};
        float *outs[2] = {dx, dw};
        return run_entries(g, 2, e, owned, em0, in, outs, NULL);
    }
    if (dx)
        return conv_one(g, DIR_FWD, true, dy, w, NULL, NULL, dx);
    if (dw)
        return conv_one(g, DIR_BWD_W, true, dy, NULL, x, NULL, dw);
    return true;
}
