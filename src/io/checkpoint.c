/* Checkpoints on top of safetensors: parameter sets under namespaces, extra
 * tensors, optimiser state, metadata, and name matching with a report on
 * load. Building a model from a checkpoint's metadata is in src/nn/model_io.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "segda/checkpoint.h"

void sd_ckpt_writer_init(sd_ckpt_writer *w) { memset(w, 0, sizeof *w); }

void sd_ckpt_writer_free(sd_ckpt_writer *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->names[i]);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->keys[i]);
        free(w->values[i]);
    }
    for (int i = 0; i < w->n_copies; i++)
        free(w->copies[i]);
    free(w->copies);
    free(w->names);
    free(w->entries);
    free(w->keys);
    free(w->values);
    memset(w, 0, sizeof *w);
}

static sd_status check_prefix(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n && (prefix[n - 1] != ':' || strchr(prefix, ':') != prefix + n - 1))
        return sd_fail(SD_ERR_ARG, "checkpoint namespace '%s' must be empty or end with its only ':'", prefix);
    return SD_OK;
}

static sd_status writer_add(sd_ckpt_writer *w, const char *prefix, const char *name, int ndim, const int *shape,
                            const float *data)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 256;
        sd_st_entry *ne = realloc(w->entries, (size_t)cap * sizeof *ne);
        if (ne)
            w->entries = ne;
        char **nn = realloc(w->names, (size_t)cap * sizeof *nn);
        if (nn)
            w->names = nn;
        if (!ne || !nn)
            return sd_fail(SD_ERR_NOMEM, "checkpoint: out of memory adding '%s'", name);
        w->cap = cap;
    }
    size_t lp = strlen(prefix), ln = strlen(name);
    char *full = malloc(lp + ln + 1);
    if (!full)
        return sd_fail(SD_ERR_NOMEM, "checkpoint: out of memory adding '%s'", name);
    memcpy(full, prefix, lp);
    memcpy(full + lp, name, ln + 1);
    sd_st_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = full;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        e->shape[d] = shape[d];
    e->data = data;
    w->names[w->n++] = full;
    return SD_OK;
}

/* *out: data (numel floats on dev) as host memory the writer can read at
 * save time: data itself on the CPU, else a copy the writer owns. */
static sd_status host_data(sd_ckpt_writer *w, sd_device dev, const float *data, size_t numel, const float **out)
{
    *out = data;
    if (dev == SD_DEVICE_CPU)
        return SD_OK;
    const sd_backend *be = sd_backend_for(dev);
    if (!be)
        return sd_fail(SD_ERR_UNSUPPORTED, "checkpoint: tensor on %s: %s", sd_device_name(dev),
                       sd_device_unavailable(dev));
    float **nc = realloc(w->copies, (size_t)(w->n_copies + 1) * sizeof *nc);
    if (nc)
        w->copies = nc;
    float *h = nc ? malloc((numel ? numel : 1) * sizeof *h) : NULL;
    if (!h)
        return sd_fail(SD_ERR_NOMEM, "checkpoint: out of memory copying %zu floats from %s", numel,
                       sd_device_name(dev));
    be->copy_to_host(h, data, numel * sizeof *h);
    w->copies[w->n_copies++] = h;
    *out = h;
    return SD_OK;
}

sd_status sd_ckpt_writer_add_params(sd_ckpt_writer *w, const char *prefix, const sd_params *p)
{
    sd_status st = check_prefix(prefix);
    if (st)
        return st;
    if (!p->allocated)
        return sd_fail(SD_ERR_ARG, "checkpoint: parameter set for '%s' is not allocated", prefix);
    for (int i = 0; i < p->n; i++) {
        const sd_tensor *x = p->tensors[i];
        const float *d;
        if ((st = host_data(w, p->device, x->data, x->numel, &d)) ||
            (st = writer_add(w, prefix, x->name, x->ndim, x->shape, d)))
            return st;
    }
    return SD_OK;
}

sd_status sd_ckpt_writer_add_tensor(sd_ckpt_writer *w, const char *name, int ndim, const int *shape,
                                    const float *data)
{
    if (ndim < 0 || ndim > SD_ST_MAX_DIMS)
        return sd_fail(SD_ERR_ARG, "checkpoint: tensor '%s' has %d dimensions", name, ndim);
    return writer_add(w, "", name, ndim, shape, data);
}

sd_status sd_ckpt_writer_set_meta(sd_ckpt_writer *w, const char *key, const char *value)
{
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->keys[i], key)) {
            char *v = sd_strdup(value);
            if (!v)
                return SD_ERR_NOMEM;
            free(w->values[i]);
            w->values[i] = v;
            return SD_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 16;
        char **nk = realloc(w->keys, (size_t)cap * sizeof *nk);
        if (nk)
            w->keys = nk;
        char **nv = realloc(w->values, (size_t)cap * sizeof *nv);
        if (nv)
            w->values = nv;
        if (!nk || !nv)
            return sd_fail(SD_ERR_NOMEM, "checkpoint: out of memory for metadata");
        w->cap_meta = cap;
    }
    char *k = sd_strdup(key), *v = sd_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return SD_ERR_NOMEM;
    }
    w->keys[w->n_meta] = k;
    w->values[w->n_meta] = v;
    w->n_meta++;
    return SD_OK;
}

sd_status sd_ckpt_writer_add_optim(sd_ckpt_writer *w, sd_optim *o, const char *ns, const char *steps_key)
{
    char name[160];
    int nst = sd_optim_state_count(o);
    for (int i = 0; i < nst; i++) {
        float *data;
        size_t numel;
        sd_status st = sd_optim_state_at(o, i, ns, name, sizeof name, &data, &numel);
        if (st)
            return st;
        int shape[1] = {(int)numel};
        const float *d;
        if ((st = host_data(w, o->state_device, data, numel, &d)) ||
            (st = sd_ckpt_writer_add_tensor(w, name, 1, shape, d)))
            return st;
    }
    char steps[SD_OPTIM_MAX_GROUPS * 24] = "";
    for (int g = 0; g < o->params->n_groups; g++) {
        size_t n = strlen(steps);
        snprintf(steps + n, sizeof steps - n, "%s%lld", g ? "," : "", (long long)o->steps[g]);
    }
    return sd_ckpt_writer_set_meta(w, steps_key, steps);
}

sd_status sd_ckpt_writer_save(sd_ckpt_writer *w, const char *path)
{
    return sd_st_write(path, w->n, w->entries, w->n_meta, (const char *const *)w->keys,
                       (const char *const *)w->values);
}

/* ---- reading ---- */

sd_status sd_ckpt_open(const char *path, sd_ckpt *c)
{
    memset(c, 0, sizeof *c);
    sd_status st = sd_st_read(path, &c->st);
    if (st)
        return st;
    c->used = calloc((size_t)(c->st.n ? c->st.n : 1), sizeof *c->used);
    if (!c->used) {
        sd_st_free(&c->st);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
    }
    return SD_OK;
}

void sd_ckpt_close(sd_ckpt *c)
{
    sd_st_free(&c->st);
    free(c->used);
    memset(c, 0, sizeof *c);
}

const char *sd_ckpt_meta(const sd_ckpt *c, const char *key) { return sd_st_meta(&c->st, key); }

bool sd_ckpt_has(const sd_ckpt *c, const char *name) { return sd_st_find(&c->st, name) >= 0; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The file's name for prefix+name: as is, or with "module." after the prefix. */
static int find_in_file(const sd_ckpt *c, const char *prefix, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", prefix, name);
    int i = sd_st_find(&c->st, buf);
    if (i >= 0)
        return i;
    snprintf(buf, sizeof buf, "%smodule.%s", prefix, name);
    return sd_st_find(&c->st, buf);
}

static bool params_have(const sd_params *p, const char *start)
{
    for (int i = 0; i < p->n; i++)
        if (!strncmp(p->tensors[i]->name, start, strlen(start)))
            return true;
    return false;
}

static bool file_has(const sd_ckpt *c, const char *prefix, const char *start)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s%s", prefix, start);
    for (int k = 0; k < c->st.n; k++)
        if (!strncmp(c->st.tensors[k].name, buf, (size_t)n))
            return true;
    return false;
}

/* DeepLab-v2's main classifier is layer5 in a single-level network and
 * layer6 in a multi-level one (layer5 is then the head on layer3, as the
 * published code names them). Starting a multi-level run from a
 * single-level checkpoint, or the reverse, maps the main head across:
 * returns the file's name prefix for the model's `layer5.`/`layer6.`
 * tensors, "" for none (the model's aux head then starts fresh), or NULL when
 * names match as they are. */
static const char *main_head_alias(const sd_ckpt *c, const char *prefix, const sd_params *p, const char *name)
{
    bool m5 = params_have(p, "layer5."), m6 = params_have(p, "layer6.");
    bool f5 = file_has(c, prefix, "layer5."), f6 = file_has(c, prefix, "layer6.");
    if (m5 && m6 && f5 && !f6) /* multi-level model, single-level file */
        return !strncmp(name, "layer6.", 7) ? "layer5." : !strncmp(name, "layer5.", 7) ? "" : NULL;
    if (m5 && !m6 && f5 && f6) /* single-level model, multi-level file */
        return !strncmp(name, "layer5.", 7) ? "layer6." : NULL;
    return NULL;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && off < n; d++)
        off += (size_t)snprintf(buf + off, n - off, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
}

/* The load itself; shape mismatches are also refused when refuse_shape (a
 * file of another model must not half-load), naming the first few. */
static sd_status load_params(sd_ckpt *c, const char *prefix, sd_params *p, bool strict, bool refuse_shape,
                             sd_ckpt_report *rep)
{
    sd_ckpt_report r = {0};
    sd_status st = check_prefix(prefix);
    if (st)
        return st;
    if (!p->allocated)
        return sd_fail(SD_ERR_ARG, "checkpoint: parameter set for '%s' is not allocated", prefix);
    const char *file = c->st.path;
    char first[768] = "", shapes[1024] = "";
    size_t ns = 0;
#define PROBLEM(...)                                                                                             \
    do {                                                                                                         \
        char m_[768];                                                                                            \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                    \
        sd_log(1, "warning: %s: %s\n", file, m_);                                                                \
        if (!first[0])                                                                                           \
            snprintf(first, sizeof first, "%s", m_);                                                             \
    } while (0)

    int fresh_said = 0;
    for (int i = 0; i < p->n; i++) {
        sd_tensor *x = p->tensors[i];
        const char *alias = main_head_alias(c, prefix, p, x->name);
        char renamed[256];
        if (alias)
            snprintf(renamed, sizeof renamed, "%s%s", alias, x->name + 7);
        int k = !alias ? find_in_file(c, prefix, x->name) : alias[0] ? find_in_file(c, prefix, renamed) : -1;
        if (k < 0 && alias && !alias[0]) {
            if (!fresh_said++)
                sd_log(1, "%s: the head on layer3 (%slayer5.*) starts fresh: a single-level checkpoint has none\n",
                       file, prefix);
            continue;
        }
        if (k < 0) {
            r.missing++;
            PROBLEM("missing tensor '%s%s'", prefix, x->name);
            continue;
        }
        const sd_st_tensor *t = &c->st.tensors[k];
        c->used[k] = true;
        bool same = t->ndim == x->ndim;
        for (int d = 0; same && d < x->ndim; d++)
            same = t->shape[d] == x->shape[d];
        if (!same) {
            char a[128], b[128];
            int64_t xs[SD_MAX_DIMS];
            for (int d = 0; d < x->ndim; d++)
                xs[d] = x->shape[d];
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, x->ndim, xs);
            r.mismatched++;
            PROBLEM("tensor '%s' has shape %s in the checkpoint, the model expects %s", t->name, a, b);
            if (r.mismatched <= 3 && ns < sizeof shapes)
                ns += (size_t)snprintf(shapes + ns, sizeof shapes - ns, "%s'%s' %s, expected %s", ns ? "; " : "",
                                       t->name, a, b);
            continue;
        }
        /* read on the host, checked, then copied to the parameter's device */
        size_t numel = (size_t)t->numel;
        float *h = malloc((numel ? numel : 1) * sizeof *h);
        if (!h)
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory reading tensor '%s'", file, t->name);
        if ((st = sd_st_to_f32(&c->st, k, h))) {
            free(h);
            return st;
        }
        /* NaN or inf weights predict one class everywhere without a word;
         * refusing them here covers every caller (init, resume, predict) */
        for (size_t j = 0; j < numel; j++)
            if (!isfinite(h[j])) {
                st = sd_fail(SD_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value (%g at element %zu of %zu)",
                             file, t->name, (double)h[j], j, numel);
                free(h);
                return st;
            }
        st = sd_tensor_from_host(x, h);
        free(h);
        if (st)
            return st;
        r.loaded++;
    }
    size_t lp = strlen(prefix);
    for (int k = 0; k < c->st.n; k++) {
        const char *nm = c->st.tensors[k].name;
        const char *colon = strchr(nm, ':');
        bool in_ns = lp ? !strncmp(nm, prefix, lp) : colon == NULL;
        if (!in_ns || c->used[k])
            continue;
        if (ends_with(nm, "num_batches_tracked")) {
            c->used[k] = true;
            continue;
        }
        r.unexpected++;
        PROBLEM("unexpected tensor '%s'", nm);
    }
#undef PROBLEM
    if (rep)
        *rep = r;
    int problems = r.missing + r.unexpected + r.mismatched;
    if (p->n && !r.loaded)
        return sd_fail(SD_ERR_DATA, "%s: no tensor matches the %d expected%s%s (first problem: %s)", file, p->n,
                       lp ? " in namespace " : "", prefix, first);
    if (refuse_shape && !strict && r.mismatched)
        return sd_fail(SD_ERR_DATA, "%s: %d of %d tensors mis-shaped (a checkpoint of another model or class "
                       "count?): %s%s", file, r.mismatched, p->n, shapes, r.mismatched > 3 ? "; ..." : "");
    if (strict && problems)
        return sd_fail(SD_ERR_DATA, "%s: %d missing, %d unexpected, %d mis-shaped tensors (strict); first: %s", file,
                       r.missing, r.unexpected, r.mismatched, first);
    if (problems)
        sd_log(1, "warning: %s: loaded %d tensors; %d missing, %d unexpected, %d mis-shaped\n", file, r.loaded,
               r.missing, r.unexpected, r.mismatched);
    return SD_OK;
}

sd_status sd_ckpt_load_params(sd_ckpt *c, const char *prefix, sd_params *p, bool strict, sd_ckpt_report *rep)
{
    return load_params(c, prefix, p, strict, false, rep);
}

sd_status sd_ckpt_load_weights(sd_ckpt *c, sd_params *p, const char *model, bool partial, sd_ckpt_report *rep)
{
    const char *held = sd_ckpt_meta(c, SD_META_MODEL);
    if (model && held && strcmp(held, model) && !partial)
        return sd_fail(SD_ERR_DATA, "%s holds model '%s', not '%s' (--partial-init loads the tensors that fit)",
                       c->st.path, held, model);
    sd_ckpt_report r;
    sd_status st = load_params(c, "", p, false, !partial, &r);
    if (st)
        return st;
    if (partial && (r.missing || r.unexpected || r.mismatched))
        sd_log(0, "%s: partial load: %d of %d tensors loaded; skipped %d missing, %d unexpected, %d mis-shaped "
               "(each named above at log level 1)\n", c->st.path, r.loaded, p->n, r.missing, r.unexpected,
               r.mismatched);
    if (rep)
        *rep = r;
    return SD_OK;
}

sd_status sd_ckpt_read_tensor(sd_ckpt *c, const char *name, size_t numel, float *dst)
{
    int k = sd_st_find(&c->st, name);
    if (k < 0)
        return sd_fail(SD_ERR_DATA, "%s: missing tensor '%s'", c->st.path, name);
    if (c->st.tensors[k].numel != numel)
        return sd_fail(SD_ERR_DATA, "%s: tensor '%s' has %llu elements, expected %zu", c->st.path, name,
                       (unsigned long long)c->st.tensors[k].numel, numel);
    c->used[k] = true;
    return sd_st_to_f32(&c->st, k, dst);
}

sd_status sd_ckpt_read_optim(sd_ckpt *c, sd_optim *o, const char *ns, const char *steps_key)
{
    char name[160];
    int nst = sd_optim_state_count(o);
    for (int i = 0; i < nst; i++) {
        float *data;
        size_t numel;
        sd_status st = sd_optim_state_at(o, i, ns, name, sizeof name, &data, &numel);
        if (!st && o->state_device != SD_DEVICE_CPU) {
            /* read on the host, then copied to the state's device */
            float *h = malloc((numel ? numel : 1) * sizeof *h);
            st = h ? sd_ckpt_read_tensor(c, name, numel, h) : sd_fail(SD_ERR_NOMEM, "%s: out of memory", name);
            if (!st)
                sd_backend_for(o->state_device)->copy_from_host(data, h, numel * sizeof *h);
            free(h);
        } else if (!st) {
            st = sd_ckpt_read_tensor(c, name, numel, data);
        }
        if (st)
            return st;
    }
    const char *s = sd_ckpt_meta(c, steps_key);
    if (!s)
        return sd_fail(SD_ERR_DATA, "%s: metadata '%s' missing (not a resumable segda checkpoint?)", c->st.path,
                       steps_key);
    for (int g = 0; g < o->params->n_groups; g++) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0)
            return sd_fail(SD_ERR_DATA, "%s: metadata '%s' = '%s' (expected %d step counts >= 0, comma-separated)",
                           c->st.path, steps_key, sd_ckpt_meta(c, steps_key), o->params->n_groups);
        o->steps[g] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return SD_OK;
}
