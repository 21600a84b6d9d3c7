/* Tensors, the step arena, the tape and its reverse walk, and parameter
 * sets. Op implementations are in ops_*.c; kernels in src/cpu/. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "core/backend.h"
#include "segda/tensor.h"

/* ---- arena ---- */

struct sd_arena_chunk {
    sd_arena_chunk *next;
    size_t size, used;
    unsigned char *mem;
};

#define ARENA_ALIGN 64

void sd_arena_init(sd_arena *a, size_t chunk_size) { sd_arena_init_on(a, chunk_size, SD_DEVICE_CPU); }

void sd_arena_init_on(sd_arena *a, size_t chunk_size, sd_device dev)
{
    memset(a, 0, sizeof *a);
    a->chunk_size = chunk_size ? chunk_size : ((size_t)64 << 20);
    a->device = dev;
}

static sd_arena_chunk *chunk_new(sd_device dev, size_t size)
{
    const sd_backend *be = sd_backend_for(dev);
    if (!be) {
        sd_fail(SD_ERR_UNSUPPORTED, "arena on %s: %s", sd_device_name(dev), sd_device_unavailable(dev));
        return NULL;
    }
    sd_arena_chunk *c = sd_malloc(sizeof *c);
    if (!c)
        return NULL;
    c->mem = be->buffer_alloc((size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!c->mem) {
        free(c);
        sd_fail(SD_ERR_NOMEM, "out of memory: arena chunk of %zu bytes", size);
        return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = NULL;
    return c;
}

/* Memory handed back (sd_arena_give_back) is a list of free blocks, each
 * inside one chunk; neighbours merge, and a block that reaches its chunk's
 * top lowers the top instead. Two free blocks are therefore never adjacent
 * and none ends at a top, so a request sees the free memory in as few, as
 * large pieces as the live blocks allow (inference hands back every
 * activation: without merging, a later, larger one found no block to fit
 * and the arena held twice the live bytes). */

static void note_used(sd_arena *a, size_t bytes)
{
    a->used += bytes;
    if (a->used > a->peak)
        a->peak = a->used;
}

static sd_arena_chunk *chunk_of(const sd_arena *a, const unsigned char *p)
{
    for (sd_arena_chunk *c = a->head; c; c = c->next)
        if (p >= c->mem && p < c->mem + c->size)
            return c;
    return NULL;
}

void sd_arena_give_back(sd_arena *a, void *p, size_t bytes)
{
    bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    sd_arena_chunk *c = p && bytes ? chunk_of(a, p) : NULL;
    if (!c)
        return;
    a->used -= bytes;
    unsigned char *lo = p, *hi = lo + bytes;
    for (int i = 0; i < a->n_freed;) {
        unsigned char *bl = a->freed[i].p, *bh = bl + a->freed[i].bytes;
        if ((bh == lo || bl == hi) && bl >= c->mem && bh <= c->mem + c->size) {
            lo = bh == lo ? bl : lo;
            hi = bl == hi ? bh : hi;
            a->freed[i] = a->freed[--a->n_freed];
            continue;
        }
        i++;
    }
    if (hi == c->mem + c->used) {
        c->used = (size_t)(lo - c->mem);
        return;
    }
    if (a->n_freed == a->cap_freed) {
        int cap = a->cap_freed ? 2 * a->cap_freed : 64;
        sd_arena_block *nb = realloc(a->freed, (size_t)cap * sizeof *nb);
        if (!nb)
            return; /* the block stays unused until the reset */
        a->freed = nb;
        a->cap_freed = cap;
    }
    a->freed[a->n_freed++] = (sd_arena_block){lo, (size_t)(hi - lo)};
}

void *sd_arena_alloc(sd_arena *a, size_t bytes)
{
    bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (!bytes)
        bytes = ARENA_ALIGN;
    /* Best fit over the free blocks and the chunks' unused tops: after the
     * first step every chunk exists and a step allocates nothing from the
     * system (the steps repeat one sequence of requests). */
    int best = -1;
    sd_arena_chunk *best_c = NULL, **pp = &a->head;
    size_t best_size = (size_t)-1;
    for (int i = 0; i < a->n_freed; i++)
        if (a->freed[i].bytes >= bytes && a->freed[i].bytes < best_size)
            best = i, best_size = a->freed[i].bytes;
    for (sd_arena_chunk *c = a->head; c; pp = &c->next, c = c->next)
        if (c->size - c->used >= bytes && c->size - c->used < best_size)
            best_c = c, best_size = c->size - c->used;
    if (best_c) {
        void *p = best_c->mem + best_c->used;
        best_c->used += bytes;
        note_used(a, bytes);
        return p;
    }
    if (best >= 0) {
        sd_arena_block *b = &a->freed[best];
        void *p = b->p;
        b->p = (unsigned char *)b->p + bytes;
        b->bytes -= bytes;
        if (!b->bytes)
            *b = a->freed[--a->n_freed];
        note_used(a, bytes);
        return p;
    }
    /* Chunks cannot merge: empty ones go back before a new one comes, or
     * memory handed back in pieces too small for the request would be
     * held beside it (2048x1024 inference held twice its live bytes). */
    for (sd_arena_chunk **q = &a->head; *q;) {
        sd_arena_chunk *e = *q;
        if (e->used) {
            q = &e->next;
            continue;
        }
        *q = e->next;
        a->held -= e->size;
        sd_backend_for(a->device)->buffer_free(e->mem);
        free(e);
    }
    for (pp = &a->head; *pp;)
        pp = &(*pp)->next;
    sd_arena_chunk *c = chunk_new(a->device, bytes > a->chunk_size ? bytes : a->chunk_size);
    if (!c)
        return NULL;
    *pp = c;
    a->held += c->size;
    c->used = bytes;
    note_used(a, bytes);
    return c->mem;
}

void *sd_arena_calloc(sd_arena *a, size_t bytes)
{
    void *p = sd_arena_alloc(a, bytes);
    if (p)
        sd_backend_for(a->device)->buffer_zero(p, bytes);
    return p;
}

void sd_arena_reset(sd_arena *a)
{
    for (sd_arena_chunk *c = a->head; c; c = c->next)
        c->used = 0;
    a->used = 0;
    a->n_freed = 0;
}

void sd_arena_free(sd_arena *a)
{
    sd_arena_chunk *c = a->head;
    const sd_backend *be = sd_backend_for(a->device);
    while (c) {
        sd_arena_chunk *n = c->next;
        be->buffer_free(c->mem);
        free(c);
        c = n;
    }
    free(a->freed);
    a->freed = NULL;
    a->n_freed = a->cap_freed = 0;
    a->head = NULL;
    a->used = a->held = 0;
}

/* ---- tape ---- */

static sd_dtype precision = SD_DTYPE_F32;

sd_status sd_set_precision(sd_dtype d, bool emulate)
{
    if (d != SD_DTYPE_F32 && d != SD_DTYPE_BF16)
        return sd_fail(SD_ERR_UNSUPPORTED, "precision %s: expected f32 or bf16", sd_dtype_name(d));
    if (!emulate && !sd_backend_for(SD_DEVICE_CPU)->compute_supported(d)) {
        precision = SD_DTYPE_F32;
        return sd_fail(SD_ERR_UNSUPPORTED, "precision %s: this CPU has no native %s arithmetic (AMX-BF16 or "
                       "AVX512-BF16); running in f32 (bf16-emulated gives bf16's numbers at f32's speed)",
                       sd_dtype_name(d), sd_dtype_name(d));
    }
    precision = d;
    return SD_OK;
}

sd_dtype sd_precision(void) { return precision; }

sd_status sd_dtype_parse(const char *s, sd_dtype *out, bool *emulate)
{
    *emulate = false;
    if (s && !strcmp(s, "f32"))
        *out = SD_DTYPE_F32;
    else if (s && !strcmp(s, "bf16"))
        *out = SD_DTYPE_BF16;
    else if (s && !strcmp(s, "bf16-emulated"))
        *out = SD_DTYPE_BF16, *emulate = true;
    else
        return sd_fail(SD_ERR_ARG, "precision '%s': expected f32, bf16 or bf16-emulated", s ? s : "");
    return SD_OK;
}

sd_status sd_tape_init(sd_tape *t, uint64_t seed) { return sd_tape_init_on(t, seed, SD_DEVICE_CPU); }

sd_status sd_tape_init_on(sd_tape *t, uint64_t seed, sd_device dev)
{
    memset(t, 0, sizeof *t);
    if (!sd_backend_for(dev))
        return sd_fail(SD_ERR_UNSUPPORTED, "tape on %s: %s", sd_device_name(dev), sd_device_unavailable(dev));
    sd_arena_init(&t->arena, (size_t)4 << 20);
    sd_arena_init_on(&t->store, 0, dev);
    t->device = dev;
    t->compute = precision;
    sd_rng_seed(&t->rng, seed);
    t->training = true;
    return SD_OK;
}

void sd_tape_free(sd_tape *t)
{
    sd_arena_free(&t->arena);
    sd_arena_free(&t->store);
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

void sd_tape_reset(sd_tape *t)
{
    sd_arena_reset(&t->arena);
    sd_arena_reset(&t->store);
    t->n_nodes = 0;
    t->status = SD_OK;
}

void sd_tape_no_grad_begin(sd_tape *t) { t->no_grad++; }
void sd_tape_no_grad_end(sd_tape *t)
{
    if (t->no_grad > 0)
        t->no_grad--;
}

sd_tensor *sd_tape_fail(sd_tape *t, sd_status st, const char *fmt, ...)
{
    if (t->status == SD_OK) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        t->status = st;
        sd_fail(st, "%s", buf);
    }
    return NULL;
}

bool sd_tape_wants_grad(const sd_tape *t, int n, sd_tensor *const *in)
{
    if (t->no_grad > 0)
        return false;
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->requires_grad)
            return true;
    return false;
}

sd_node *sd_tape_record(sd_tape *t, const char *op, sd_backward_fn bw, sd_tensor *out,
                        int n_in, sd_tensor *const *in)
{
    if (!sd_tape_wants_grad(t, n_in, in))
        return NULL;
    if (t->n_nodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 256;
        sd_node **nn = realloc(t->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory growing the tape", op);
            return NULL;
        }
        t->nodes = nn;
        t->cap_nodes = cap;
    }
    sd_node *n = sd_arena_calloc(&t->arena, sizeof *n);
    if (!n) {
        sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory recording a node", op);
        return NULL;
    }
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        n->in[i] = in[i];
        if (in[i] && in[i]->requires_grad)
            n->wants |= 1u << i;
    }
    out->node = n;
    out->requires_grad = true;
    t->nodes[t->n_nodes++] = n;
    return n;
}

float *sd_tensor_grad(sd_tape *t, sd_tensor *x)
{
    if (!x->grad)
        x->grad = sd_arena_calloc(&t->store, x->numel * sizeof(float));
    return x->grad;
}

void *sd_tape_scratch(sd_tape *t, size_t bytes, const char *op)
{
    void *p = sd_arena_alloc(&t->store, bytes);
    if (!p)
        sd_tape_fail(t, SD_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", op, bytes);
    return p;
}

void sd_tensor_release(sd_tape *t, sd_tensor *x)
{
    if (!x || t->no_grad <= 0 || x->node || x->name || x->released || !x->owned || !x->data)
        return;
    sd_arena_give_back(&t->store, x->data, x->numel * sd_dtype_size(x->dtype));
    x->data = NULL;
    x->released = true;
}

sd_status sd_backward(sd_tape *t, int n_losses, sd_tensor *const *losses, const float *weights)
{
    if (t->status != SD_OK)
        return sd_fail(t->status, "backward after a failed forward: %s", sd_errmsg());
    for (int i = 0; i < n_losses; i++) {
        sd_tensor *l = losses[i];
        if (!l)
            return sd_fail(SD_ERR_ARG, "backward: loss %d is NULL", i);
        if (l->numel != 1)
            return sd_fail(SD_ERR_SHAPE, "backward: loss %d has shape %s, expected a scalar", i,
                           sd_shape_str(l));
        if (!l->requires_grad)
            continue; /* e.g. a loss computed entirely under no_grad */
        float *g = sd_tensor_grad(t, l);
        if (!g)
            return SD_ERR_NOMEM;
        /* through the backend: the gradient may live on a device */
        sd_backend_for(l->device)->add_const(1, weights ? weights[i] : 1.0f, g);
    }
    for (int i = t->n_nodes - 1; i >= 0; i--) {
        sd_node *n = t->nodes[i];
        if (!n->out->grad)
            continue; /* not reached from any loss */
        /* Inputs that require grad get their buffer before the op runs, so
         * each backward can simply accumulate. */
        for (int k = 0; k < n->n_in; k++)
            if (((n->wants >> k) & 1u) && !sd_tensor_grad(t, n->in[k]))
                return SD_ERR_NOMEM;
        n->backward(n);
        /* Every consumer of n's output was recorded after n and has run:
         * its gradient is dead, and its memory serves the gradients still
         * to come (the backward's peak is then the live ones, not all). */
        sd_arena_give_back(&t->store, n->out->grad, n->out->numel * sizeof(float));
        n->out->grad = NULL;
    }
    /* Clear activation grads so a later backward on this tape starts clean;
     * parameters (leaves) keep theirs. */
    for (int i = 0; i < t->n_nodes; i++)
        t->nodes[i]->out->grad = NULL;
    if (t->status != SD_OK)
        return t->status;
    return SD_OK;
}

/* ---- tensors ---- */

static sd_tensor *tensor_alloc(sd_tape *t, int ndim, const int *shape, bool zero, float *data)
{
    if (ndim < 1 || ndim > SD_MAX_DIMS)
        return sd_tape_fail(t, SD_ERR_SHAPE, "tensor: %d dims, expected 1..%d", ndim, SD_MAX_DIMS);
    sd_tensor *x = sd_arena_calloc(&t->arena, sizeof *x);
    if (!x)
        return sd_tape_fail(t, SD_ERR_NOMEM, "tensor: out of memory");
    x->ndim = ndim;
    x->numel = 1;
    for (int i = 0; i < SD_MAX_DIMS; i++) {
        x->shape[i] = i < ndim ? shape[i] : 1;
        if (x->shape[i] < 0)
            return sd_tape_fail(t, SD_ERR_SHAPE, "tensor: negative dimension %d", x->shape[i]);
        x->numel *= (size_t)x->shape[i];
    }
    x->device = t->device;
    if (data && t->device == SD_DEVICE_CPU) {
        x->data = data;
        return x;
    }
    size_t bytes = x->numel * sizeof(float);
    x->data = zero ? sd_arena_calloc(&t->store, bytes) : sd_arena_alloc(&t->store, bytes);
    if (!x->data)
        return sd_tape_fail(t, SD_ERR_NOMEM, "tensor %s: out of memory for %zu floats", sd_shape_str(x), x->numel);
    x->owned = true;
    if (data)
        sd_backend_for(t->device)->copy_from_host(x->data, data, bytes);
    return x;
}

sd_tensor *sd_tensor_new(sd_tape *t, int ndim, const int *shape) { return tensor_alloc(t, ndim, shape, false, NULL); }
sd_tensor *sd_tensor_zeros(sd_tape *t, int ndim, const int *shape) { return tensor_alloc(t, ndim, shape, true, NULL); }
sd_tensor *sd_tensor_wrap(sd_tape *t, int ndim, const int *shape, float *data) { return tensor_alloc(t, ndim, shape, false, data); }

sd_tensor *sd_tensor_wrap_device(sd_tape *t, int ndim, const int *shape, void *device_data)
{
    if (!device_data)
        return sd_tape_fail(t, SD_ERR_ARG, "tensor: wrap of NULL device storage");
    /* (a zero-size shape allocates nothing; the header is the tape's) */
    sd_tensor *x = tensor_alloc(t, ndim, shape, false, NULL);
    if (x && x->owned) {
        sd_arena_give_back(&t->store, x->data, x->numel * sizeof(float));
        x->data = device_data;
        x->owned = false;
    }
    return x;
}

sd_tensor *sd_tensor_new4(sd_tape *t, int n, int c, int h, int w)
{
    int s[4] = {n, c, h, w};
    return tensor_alloc(t, 4, s, false, NULL);
}

size_t sd_dtype_size(sd_dtype d) { return d == SD_DTYPE_F32 ? 4 : 2; }

/* bf16 <-> f32 by the top 16 bits, rounding to nearest even (as oneDNN and PyTorch). */
static float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if (isnan(f))
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static sd_status host_check(const sd_tensor *x, const char *what)
{
    if (!x || !x->data)
        return sd_fail(SD_ERR_ARG, "%s: tensor %s has no storage%s", what, sd_shape_str(x),
                       x && x->released ? " (released)" : "");
    if (!sd_backend_for(x->device))
        return sd_fail(SD_ERR_UNSUPPORTED, "%s: no %s backend in this build", what, sd_device_name(x->device));
    if (x->dtype != SD_DTYPE_F32 && x->dtype != SD_DTYPE_BF16)
        return sd_fail(SD_ERR_UNSUPPORTED, "%s: tensor %s of dtype %s", what, sd_shape_str(x),
                       sd_dtype_name(x->dtype));
    return SD_OK;
}

sd_status sd_tensor_to_host(const sd_tensor *x, float *dst)
{
    sd_status st = host_check(x, "copy to host");
    if (st)
        return st;
    const sd_backend *be = sd_backend_for(x->device);
    if (x->dtype == SD_DTYPE_F32) {
        be->copy_to_host(dst, x->data, x->numel * sizeof(float));
        return SD_OK;
    }
    uint16_t *h = malloc(x->numel * 2 + 2);
    if (!h)
        return sd_fail(SD_ERR_NOMEM, "copy to host: out of memory");
    be->copy_to_host(h, x->data, x->numel * 2);
    for (size_t i = 0; i < x->numel; i++)
        dst[i] = bf16_to_f32(h[i]);
    free(h);
    return SD_OK;
}

sd_status sd_tensor_from_host(sd_tensor *x, const float *src)
{
    sd_status st = host_check(x, "copy from host");
    if (st)
        return st;
    const sd_backend *be = sd_backend_for(x->device);
    if (x->dtype == SD_DTYPE_F32) {
        be->copy_from_host(x->data, src, x->numel * sizeof(float));
        return SD_OK;
    }
    uint16_t *h = malloc(x->numel * 2 + 2);
    if (!h)
        return sd_fail(SD_ERR_NOMEM, "copy from host: out of memory");
    for (size_t i = 0; i < x->numel; i++)
        h[i] = f32_to_bf16(src[i]);
    be->copy_from_host(x->data, h, x->numel * 2);
    free(h);
    return SD_OK;
}

sd_status sd_tensor_grad_to_host(const sd_tensor *x, float *dst)
{
    if (!x->grad) {
        memset(dst, 0, x->numel * sizeof(float));
        return SD_OK;
    }
    const sd_backend *be = sd_backend_for(x->device);
    if (!be)
        return sd_fail(SD_ERR_UNSUPPORTED, "grad to host: no %s backend in this build", sd_device_name(x->device));
    be->copy_to_host(dst, x->grad, x->numel * sizeof(float));
    return SD_OK;
}

float sd_tensor_item(const sd_tensor *x)
{
    if (host_check(x, "item") != SD_OK)
        return NAN;
    float v[2];
    if (x->dtype == SD_DTYPE_F32) {
        sd_backend_for(x->device)->copy_to_host(v, x->data, sizeof(float));
        return v[0];
    }
    uint16_t h;
    sd_backend_for(x->device)->copy_to_host(&h, x->data, 2);
    return bf16_to_f32(h);
}

float *sd_tensor_host(const sd_tensor *x)
{
    return x && x->device == SD_DEVICE_CPU && x->dtype == SD_DTYPE_F32 ? x->data : NULL;
}

float *sd_tensor_host_view(sd_tape *t, const sd_tensor *x)
{
    float *h = sd_tensor_host(x);
    if (h || !x)
        return h;
    if (!(h = sd_arena_alloc(&t->arena, x->numel * sizeof *h))) {
        sd_tape_fail(t, SD_ERR_NOMEM, "host copy of %s: out of memory", sd_shape_str(x));
        return NULL;
    }
    if (sd_tensor_to_host(x, h)) {
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "host copy of %s: %s", sd_shape_str(x), sd_errmsg());
        return NULL;
    }
    return h;
}

float *sd_tensor_host_grad(const sd_tensor *x)
{
    return x && x->device == SD_DEVICE_CPU ? x->grad : NULL;
}

const char *sd_shape_str(const sd_tensor *x)
{
    static _Thread_local char bufs[4][64];
    static _Thread_local int slot;
    char *b = bufs[slot++ & 3];
    if (!x) {
        snprintf(b, 64, "(null)");
        return b;
    }
    int off = snprintf(b, 64, "[");
    for (int i = 0; i < x->ndim && off < 60; i++)
        off += snprintf(b + off, 64 - off, i ? ",%d" : "%d", x->shape[i]);
    snprintf(b + off, 64 - off, "]");
    return b;
}

bool sd_shape_eq(const sd_tensor *a, const sd_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* ---- parameters ---- */

void sd_params_init(sd_params *p) { memset(p, 0, sizeof *p); }

/* Zeroed f32 storage on the params' device (NULL + message). */
static float *params_buffer(const sd_params *p, const char *group, size_t numel)
{
    const sd_backend *be = sd_backend_for(p->device);
    size_t bytes = (numel ? numel : 1) * sizeof(float);
    float *b = be ? be->buffer_alloc_zero(bytes) : NULL;
    if (!b)
        sd_fail(SD_ERR_NOMEM, "params: out of memory for group '%s' (%zu floats on %s)", group, numel,
                sd_device_name(p->device));
    return b;
}

void sd_params_free(sd_params *p)
{
    const sd_backend *be = sd_backend_for(p->device);
    for (int g = 0; g < p->n_groups && be; g++) {
        if (p->groups[g].data)
            be->buffer_free(p->groups[g].data);
        if (p->groups[g].grad)
            be->buffer_free(p->groups[g].grad);
    }
    for (int i = 0; i < p->n; i++) {
        free((char *)p->tensors[i]->name);
        free(p->tensors[i]);
    }
    free(p->tensors);
    free(p->group_of);
    memset(p, 0, sizeof *p);
}

int sd_params_add_group(sd_params *p, const char *name, float lr_mult, float wd_mult, bool is_buffer)
{
    for (int g = 0; g < p->n_groups; g++)
        if (!strcmp(p->groups[g].name, name))
            return g;
    if (p->allocated || p->n_groups == (int)(sizeof p->groups / sizeof p->groups[0])) {
        sd_fail(SD_ERR_ARG, "params: cannot add group '%s' (%s)", name,
                p->allocated ? "already allocated" : "too many groups");
        return -1;
    }
    sd_param_group *g = &p->groups[p->n_groups];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr_mult = lr_mult;
    g->wd_mult = is_buffer ? 0.0f : wd_mult;
    g->is_buffer = is_buffer;
    g->frozen = is_buffer;
    return p->n_groups++;
}

sd_tensor *sd_params_declare(sd_params *p, int group, const char *name, int ndim, const int *shape)
{
    if (p->allocated) {
        sd_fail(SD_ERR_ARG, "params: '%s' declared after allocation", name);
        return NULL;
    }
    if (group < 0 || group >= p->n_groups) {
        sd_fail(SD_ERR_ARG, "params: '%s' in unknown group %d", name, group);
        return NULL;
    }
    if (ndim < 1 || ndim > SD_MAX_DIMS) {
        sd_fail(SD_ERR_SHAPE, "params: '%s' has %d dims", name, ndim);
        return NULL;
    }
    if (sd_params_find(p, name)) {
        sd_fail(SD_ERR_ARG, "params: duplicate parameter name '%s'", name);
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        sd_tensor **nt = realloc(p->tensors, (size_t)cap * sizeof *nt);
        if (!nt)
            goto oom;
        p->tensors = nt;
        int *ng = realloc(p->group_of, (size_t)cap * sizeof *ng);
        if (!ng)
            goto oom;
        p->group_of = ng;
        p->cap = cap;
    }
    sd_tensor *x = sd_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->ndim = ndim;
    x->numel = 1;
    for (int i = 0; i < SD_MAX_DIMS; i++) {
        x->shape[i] = i < ndim ? shape[i] : 1;
        x->numel *= (size_t)x->shape[i];
    }
    x->name = sd_strdup(name);
    if (!x->name) {
        free(x);
        return NULL;
    }
    p->tensors[p->n] = x;
    p->group_of[p->n] = group;
    p->groups[group].numel += x->numel;
    p->n++;
    return x;
oom:
    sd_fail(SD_ERR_NOMEM, "params: out of memory declaring '%s'", name);
    return NULL;
}

sd_status sd_params_alloc(sd_params *p)
{
    for (int g = 0; g < p->n_groups; g++) {
        sd_param_group *gr = &p->groups[g];
        gr->data = params_buffer(p, gr->name, gr->numel);
        gr->grad = gr->is_buffer || !gr->data ? NULL : params_buffer(p, gr->name, gr->numel);
        if (!gr->data || (!gr->is_buffer && !gr->grad))
            return SD_ERR_NOMEM;
    }
    size_t off[8] = {0};
    for (int i = 0; i < p->n; i++) {
        int g = p->group_of[i];
        sd_tensor *x = p->tensors[i];
        x->data = p->groups[g].data + off[g];
        x->grad = p->groups[g].grad ? p->groups[g].grad + off[g] : NULL;
        x->device = p->device;
        x->requires_grad = !p->groups[g].frozen;
        off[g] += x->numel;
    }
    p->allocated = true;
    return SD_OK;
}

/* A copy of n floats of `from` (on src's backend) in new storage on dst's,
 * through a host buffer; NULL + message when either side fails. */
static float *copy_across(const sd_backend *src, const sd_backend *dst, const float *from, size_t n,
                          const char *group)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    float *h = malloc(bytes), *to = dst->buffer_alloc(bytes);
    if (!h || !to) {
        free(h);
        if (to)
            dst->buffer_free(to);
        sd_fail(SD_ERR_NOMEM, "params: out of memory moving group '%s' (%zu floats) to %s", group, n, dst->name);
        return NULL;
    }
    src->copy_to_host(h, from, n * sizeof(float));
    dst->copy_from_host(to, h, n * sizeof(float));
    free(h);
    return to;
}

sd_status sd_params_to_device(sd_params *p, sd_device dev)
{
    if (p->device == dev)
        return SD_OK;
    const sd_backend *src = sd_backend_for(p->device), *dst = sd_backend_for(dev);
    if (!dst)
        return sd_fail(SD_ERR_UNSUPPORTED, "params to %s: %s", sd_device_name(dev), sd_device_unavailable(dev));
    if (!p->allocated) {
        p->device = dev;
        return SD_OK;
    }
    if (!src)
        return sd_fail(SD_ERR_UNSUPPORTED, "params from %s: %s", sd_device_name(p->device),
                       sd_device_unavailable(p->device));
    /* every copy first, so a failure leaves p whole on its old device */
    float *d[8] = {0}, *gd[8] = {0};
    bool ok = true;
    for (int g = 0; g < p->n_groups && ok; g++) {
        sd_param_group *gr = &p->groups[g];
        ok = (d[g] = copy_across(src, dst, gr->data, gr->numel, gr->name)) != NULL &&
             (!gr->grad || (gd[g] = copy_across(src, dst, gr->grad, gr->numel, gr->name)) != NULL);
    }
    if (!ok) {
        for (int g = 0; g < p->n_groups; g++) {
            if (d[g])
                dst->buffer_free(d[g]);
            if (gd[g])
                dst->buffer_free(gd[g]);
        }
        return SD_ERR_NOMEM;
    }
    for (int i = 0; i < p->n; i++) {
        int g = p->group_of[i];
        sd_tensor *x = p->tensors[i];
        x->data = d[g] + ((float *)x->data - p->groups[g].data);
        x->grad = gd[g] ? gd[g] + ((float *)x->grad - p->groups[g].grad) : NULL;
        x->device = dev;
    }
    for (int g = 0; g < p->n_groups; g++) {
        sd_param_group *gr = &p->groups[g];
        src->buffer_free(gr->data);
        if (gr->grad)
            src->buffer_free(gr->grad);
        gr->data = d[g];
        gr->grad = gd[g];
    }
    p->device = dev;
    return SD_OK;
}

sd_status sd_params_copy_values(sd_params *dst, const sd_params *src)
{
    if (dst->n_groups != src->n_groups)
        return sd_fail(SD_ERR_ARG, "params copy: %d groups into %d", src->n_groups, dst->n_groups);
    const sd_backend *bs = sd_backend_for(src->device), *bd = sd_backend_for(dst->device);
    if (!bs || !bd)
        return sd_fail(SD_ERR_UNSUPPORTED, "params copy: %s", sd_device_unavailable(bs ? dst->device : src->device));
    for (int g = 0; g < dst->n_groups; g++) {
        size_t n = dst->groups[g].numel;
        if (src->groups[g].numel != n)
            return sd_fail(SD_ERR_ARG, "params copy: group '%s' of %zu values into %zu", src->groups[g].name,
                           src->groups[g].numel, n);
        if (dst->device == SD_DEVICE_CPU && src->device == SD_DEVICE_CPU) {
            memcpy(dst->groups[g].data, src->groups[g].data, n * sizeof(float));
            continue;
        }
        float *h = malloc((n ? n : 1) * sizeof *h);   /* (through the host: no device-to-device kernel) */
        if (!h)
            return sd_fail(SD_ERR_NOMEM, "params copy: out of memory for group '%s'", src->groups[g].name);
        bs->copy_to_host(h, src->groups[g].data, n * sizeof *h);
        bd->copy_from_host(dst->groups[g].data, h, n * sizeof *h);
        free(h);
    }
    return SD_OK;
}

sd_tensor *sd_params_find(sd_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->tensors[i]->name, name))
            return p->tensors[i];
    return NULL;
}

void sd_params_zero_grad(sd_params *p)
{
    for (int g = 0; g < p->n_groups; g++)
        if (p->groups[g].grad)
            sd_backend_for(p->device)->buffer_zero(p->groups[g].grad, p->groups[g].numel * sizeof(float));
}

void sd_params_set_frozen(sd_params *p, int group, bool frozen)
{
    if (group < 0 || group >= p->n_groups || p->groups[group].is_buffer)
        return;
    p->groups[group].frozen = frozen;
    for (int i = 0; i < p->n; i++)
        if (p->group_of[i] == group)
            p->tensors[i]->requires_grad = !frozen;
}

size_t sd_params_count(const sd_params *p, bool trainable_only)
{
    size_t n = 0;
    for (int g = 0; g < p->n_groups; g++)
        if (!p->groups[g].is_buffer && (!trainable_only || !p->groups[g].frozen))
            n += p->groups[g].numel;
    return n;
}
