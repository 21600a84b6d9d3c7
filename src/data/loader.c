/* The prefetching batch loader: pthread workers claim whole batches in
 * iteration order and fill ring slots; the consumer waits for its slot.
 * Contents depend only on (seed, iteration), never on which thread ran
 * them. Reading: dataset.c; augmentation: transform.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "segda/labels.h"
#include "segda/loader.h"

#define PERM_SALT 0x7065726d75746531ULL /* separates permutation, pick and augment streams */
#define PICK_SALT 0x7263732d7069636bULL

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    int state;
    sd_status status;
    char msg[1024];
    sd_batch b;
    size_t cap_pixels;        /* per item h*w the buffers hold */
} slot;

typedef struct perm_cache {
    int64_t epoch;
    int *perm;
} perm_cache;

struct sd_loader {
    const sd_dataset *ds;
    sd_loader_opts o;
    int *pool, npool;             /* the dataset indices read (opts.subset or all) */
    int nslots;
    slot *slots;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work, ready;
    int64_t next_claim, consume;  /* next batch to claim / to return */
    bool stop;
    perm_cache main_perm;         /* for workers == 0 */
    /* rare-class sampling */
    double rcs_cum[SD_NUM_CLASSES];
    int *rcs_samples[SD_NUM_CLASSES];
    int rcs_n[SD_NUM_CLASSES];
    /* skip_bad bookkeeping */
    bool *bad_seen;
    char **skipped;
    int n_skipped;
};

/* ---- which sample slot p reads ---- */

static const int *epoch_perm(const sd_loader *l, perm_cache *pc, int64_t epoch)
{
    int n = l->npool;
    if (!pc->perm) {
        pc->perm = malloc(sizeof(int) * n);
        if (!pc->perm)
            return NULL;
        pc->epoch = -1;
    }
    if (pc->epoch != epoch) {
        for (int i = 0; i < n; i++)
            pc->perm[i] = i;
        sd_rng r = sd_rng_fork(l->o.seed ^ PERM_SALT, (uint64_t)epoch);
        for (int i = n - 1; i > 0; i--) {
            int j = sd_rng_int(&r, i + 1);
            int t = pc->perm[i];
            pc->perm[i] = pc->perm[j];
            pc->perm[j] = t;
        }
        pc->epoch = epoch;
    }
    return pc->perm;
}

/* Slot p's position in the pool (pool[pos] is the dataset index). */
static int pick(const sd_loader *l, perm_cache *pc, int64_t p)
{
    int n = l->npool;
    if (l->o.rcs_temperature > 0) {
        sd_rng r = sd_rng_fork(l->o.seed ^ PICK_SALT, (uint64_t)p);
        double u = sd_rng_uniform(&r) * l->rcs_cum[SD_NUM_CLASSES - 1];
        int c = 0;
        while (c < SD_NUM_CLASSES - 1 && (u >= l->rcs_cum[c] || l->rcs_n[c] == 0))
            c++;
        if (l->rcs_n[c] == 0) /* u landed past the last class with samples */
            for (c = SD_NUM_CLASSES - 1; c > 0 && l->rcs_n[c] == 0; c--)
                ;
        return l->rcs_samples[c][sd_rng_int(&r, l->rcs_n[c])];
    }
    int64_t epoch = p / n;
    int k = (int)(p % n);
    if (!l->o.shuffle)
        return k;
    const int *perm = epoch_perm(l, pc, epoch);
    return perm ? perm[k] : k;
}

int sd_loader_pick(const sd_loader *l, int64_t p)
{
    perm_cache pc = {0};
    int i = l->pool[pick(l, &pc, p)];
    free(pc.perm);
    return i;
}

/* ---- filling a batch ---- */

static void note_bad(sd_loader *l, int idx, const char *msg)
{
    pthread_mutex_lock(&l->mu);
    if (!l->bad_seen[idx]) {
        l->bad_seen[idx] = true;
        char **s = realloc(l->skipped, sizeof(char *) * (l->n_skipped + 1));
        if (s) {
            l->skipped = s;
            l->skipped[l->n_skipped] = sd_strdup(msg);
            if (l->skipped[l->n_skipped])
                l->n_skipped++;
        }
        sd_log(1, "loader: skipping sample %d: %s\n", idx, msg);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Batch memory: plain malloc for a CPU run; for a device run the backend's
 * pinned host memory (host_alloc), from which the trainer's host->device
 * copies run asynchronously and at full bus speed. */
static void *batch_alloc(sd_device dev, size_t bytes)
{
    return dev == SD_DEVICE_CPU ? malloc(bytes) : sd_backend_for(dev)->host_alloc(bytes);
}

static void batch_free(sd_device dev, void *p)
{
    if (dev == SD_DEVICE_CPU)
        free(p);
    else if (p)
        sd_backend_for(dev)->host_free(p);
}

static sd_status ensure_capacity(slot *s, sd_device dev, int n, int h, int w, bool labels)
{
    size_t px = (size_t)h * w;
    if (px > s->cap_pixels || !s->b.image) {
        batch_free(dev, s->b.image);
        batch_free(dev, s->b.label);
        s->b.image = batch_alloc(dev, sizeof(float) * 3 * px * n);
        s->b.label = labels ? batch_alloc(dev, px * n) : NULL;
        if (!s->b.image || (labels && !s->b.label)) {
            s->cap_pixels = 0;
            return sd_fail(SD_ERR_NOMEM, "loader: cannot allocate a batch of %d x %dx%d", n, w, h);
        }
        s->cap_pixels = px;
    }
    s->b.h = h;
    s->b.w = w;
    return SD_OK;
}

static sd_status fill_batch(sd_loader *l, perm_cache *pc, slot *s, int64_t k)
{
    const sd_dataset *ds = l->ds;
    int B = l->o.batch;
    s->b.iter = k;
    s->b.n = B;
    for (int j = 0; j < B; j++) {
        int64_t p = k * l->o.global_batch + l->o.first + j;
        int pos = pick(l, pc, p), idx = l->pool[pos];
        sd_sample smp;
        sd_status st = SD_OK;
        for (int t = 0; t < l->npool; t++) {
            int cand = l->pool[(pos + t) % l->npool];
            st = l->o.images_only ? sd_dataset_read_image(ds, cand, &smp) : sd_dataset_read(ds, cand, &smp);
            if (st == SD_OK) {
                idx = cand;
                break;
            }
            if (!l->o.skip_bad || st == SD_ERR_NOMEM)
                return st;
            note_bad(l, cand, sd_errmsg());
        }
        if (st)
            return sd_fail(st, "loader: no readable sample left in \"%s\" (%d skipped)", ds->spec, l->n_skipped);
        int ow, oh;
        sd_augment_out_size(&l->o.aug, smp.w, smp.h, &ow, &oh);
        if (j == 0)
            st = ensure_capacity(s, l->o.device, B, oh, ow, !l->o.images_only);
        else if (ow != s->b.w || oh != s->b.h)
            st = sd_fail(SD_ERR_DATA,
                         "loader: sample %s is %dx%d after augmentation but the batch is %dx%d (set a crop or base size)",
                         smp.stem, ow, oh, s->b.w, s->b.h);
        if (!st) {
            sd_rng r = sd_rng_fork(l->o.seed, (uint64_t)p);
            size_t px = (size_t)oh * ow;
            st = sd_augment_sample(&l->o.aug, &r, &smp, s->b.image + (size_t)j * 3 * px,
                                   s->b.label ? s->b.label + (size_t)j * px : NULL, &s->b.box[j]);
            s->b.index[j] = idx;
        }
        sd_sample_free(&smp);
        if (st)
            return st;
    }
    return SD_OK;
}

static void fill_slot(sd_loader *l, perm_cache *pc, slot *s, int64_t k)
{
    s->status = fill_batch(l, pc, s, k);
    if (s->status)
        snprintf(s->msg, sizeof s->msg, "batch %lld: %s", (long long)k, sd_errmsg());
}

static void *worker_main(void *arg)
{
    sd_loader *l = arg;
    perm_cache pc = {0};
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* the caller still holds batch consume-1, so its slot is not ours */
        while (!l->stop && l->next_claim > l->consume + l->nslots - 2)
            pthread_cond_wait(&l->work, &l->mu);
        if (l->stop)
            break;
        int64_t k = l->next_claim++;
        slot *s = &l->slots[k % l->nslots];
        s->state = SLOT_FILLING;
        s->b.iter = k;
        pthread_mutex_unlock(&l->mu);
        fill_slot(l, &pc, s, k);
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mu);
    free(pc.perm);
    return NULL;
}

static void stop_workers(sd_loader *l)
{
    if (!l->nthreads)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->nthreads; i++)
        pthread_join(l->threads[i], NULL);
    l->nthreads = 0;
    l->stop = false;
}

static sd_status start_workers(sd_loader *l, int64_t iter)
{
    l->next_claim = l->consume = iter;
    for (int i = 0; i < l->nslots; i++)
        l->slots[i].state = SLOT_FREE;
    for (int i = 0; i < l->o.workers; i++) {
        if (pthread_create(&l->threads[i], NULL, worker_main, l) != 0) {
            stop_workers(l);
            return sd_fail(SD_ERR_NOMEM, "loader: cannot start worker thread %d", i);
        }
        l->nthreads = i + 1;
    }
    return SD_OK;
}

/* ---- public ---- */

static sd_status rcs_setup(sd_loader *l)
{
    const sd_dataset *ds = l->ds;
    const uint64_t *cp = l->o.class_pixels;
    if (!cp)
        return sd_fail(SD_ERR_ARG, "loader: rare-class sampling needs class_pixels (sd_dataset_class_pixels)");
    double tot[SD_NUM_CLASSES] = {0}, all = 0;
    for (int q = 0; q < l->npool; q++)
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            tot[c] += (double)cp[(size_t)l->pool[q] * SD_NUM_CLASSES + c];
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        all += tot[c];
    if (all <= 0)
        return sd_fail(SD_ERR_DATA, "loader: rare-class sampling on \"%s\": no labelled pixels", ds->spec);
    double cum = 0;
    int min_px = l->o.rcs_min_pixels > 0 ? l->o.rcs_min_pixels : 1;
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        int m = 0;
        l->rcs_samples[c] = malloc(sizeof(int) * l->npool);
        if (!l->rcs_samples[c])
            return sd_fail(SD_ERR_NOMEM, "loader: out of memory");
        for (int q = 0; q < l->npool; q++)
            if (cp[(size_t)l->pool[q] * SD_NUM_CLASSES + c] >= (uint64_t)min_px)
                l->rcs_samples[c][m++] = q;
        l->rcs_n[c] = m;
        /* classes absent from every sample get no probability */
        if (m > 0)
            cum += exp((1.0 - tot[c] / all) / l->o.rcs_temperature);
        l->rcs_cum[c] = cum;
    }
    if (cum <= 0)
        return sd_fail(SD_ERR_DATA, "loader: rare-class sampling: no sample has %d pixels of any class", min_px);
    return SD_OK;
}

sd_status sd_loader_init(sd_loader **out, const sd_dataset *ds, const sd_loader_opts *opts)
{
    *out = NULL;
    if (!ds || ds->n <= 0)
        return sd_fail(SD_ERR_ARG, "loader: empty dataset");
    if (opts->subset && opts->n_subset < 1)
        return sd_fail(SD_ERR_ARG, "loader: empty subset of \"%s\"", ds->spec);
    for (int q = 0; opts->subset && q < opts->n_subset; q++)
        if (opts->subset[q] < 0 || opts->subset[q] >= ds->n)
            return sd_fail(SD_ERR_ARG, "loader: subset entry %d is sample %d, expected 0..%d (\"%s\")", q,
                           opts->subset[q], ds->n - 1, ds->spec);
    if (opts->batch < 1 || opts->workers < 0 || opts->workers > 256 || opts->prefetch < 0 || opts->start_iter < 0)
        return sd_fail(SD_ERR_ARG, "loader: batch %d, workers %d, prefetch %d, start %lld (expected batch >= 1, 0..256 workers, prefetch and start >= 0)",
                       opts->batch, opts->workers, opts->prefetch, (long long)opts->start_iter);
    if (opts->global_batch && (opts->first < 0 || opts->first + opts->batch > opts->global_batch))
        return sd_fail(SD_ERR_ARG, "loader: share %d..%d of a batch of %d", opts->first, opts->first + opts->batch - 1,
                       opts->global_batch);
    if (!sd_backend_for(opts->device))
        return sd_fail(SD_ERR_UNSUPPORTED, "loader: batches for %s: %s", sd_device_name(opts->device),
                       sd_device_unavailable(opts->device));
    sd_loader *l = calloc(1, sizeof *l);
    if (!l)
        return sd_fail(SD_ERR_NOMEM, "loader: out of memory");
    l->ds = ds;
    l->o = *opts;
    if (!l->o.global_batch) {
        l->o.global_batch = opts->batch;
        l->o.first = 0;
    }
    l->o.subset = NULL;   /* the loader's copy is l->pool */
    l->npool = opts->subset ? opts->n_subset : ds->n;
    l->pool = malloc(sizeof(int) * (l->npool > 0 ? l->npool : 1));
    if (!l->pool) {
        free(l);
        return sd_fail(SD_ERR_NOMEM, "loader: out of memory");
    }
    for (int q = 0; q < l->npool; q++)
        l->pool[q] = opts->subset ? opts->subset[q] : q;
    int pf = opts->prefetch ? opts->prefetch : 2 * (opts->workers ? opts->workers : 1);
    l->nslots = opts->workers ? pf + 1 : 1;
    l->slots = calloc(l->nslots, sizeof(slot));
    l->threads = calloc(opts->workers + 1, sizeof(pthread_t));
    l->bad_seen = calloc(ds->n, 1);
    sd_status st = (!l->slots || !l->threads || !l->bad_seen) ? sd_fail(SD_ERR_NOMEM, "loader: out of memory") : SD_OK;
    for (int i = 0; !st && i < l->nslots; i++) {
        l->slots[i].b.box = calloc(opts->batch, sizeof(sd_crop_box));
        l->slots[i].b.index = calloc(opts->batch, sizeof(int));
        if (!l->slots[i].b.box || !l->slots[i].b.index)
            st = sd_fail(SD_ERR_NOMEM, "loader: out of memory");
    }
    if (!st && opts->rcs_temperature > 0)
        st = rcs_setup(l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    if (!st)
        st = start_workers(l, opts->start_iter);
    if (st) {
        sd_loader_free(l);
        return st;
    }
    *out = l;
    return SD_OK;
}

void sd_loader_free(sd_loader *l)
{
    if (!l)
        return;
    stop_workers(l);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    for (int i = 0; l->slots && i < l->nslots; i++) {
        batch_free(l->o.device, l->slots[i].b.image);
        batch_free(l->o.device, l->slots[i].b.label);
        free(l->slots[i].b.box);
        free(l->slots[i].b.index);
    }
    free(l->slots);
    free(l->threads);
    free(l->main_perm.perm);
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        free(l->rcs_samples[c]);
    for (int i = 0; i < l->n_skipped; i++)
        free(l->skipped[i]);
    free(l->skipped);
    free(l->bad_seen);
    free(l->pool);
    free(l);
}

sd_status sd_loader_next(sd_loader *l, const sd_batch **batch)
{
    *batch = NULL;
    slot *s;
    if (l->o.workers == 0) {
        s = &l->slots[0];
        fill_slot(l, &l->main_perm, s, l->consume);
        l->consume++;
    } else {
        pthread_mutex_lock(&l->mu);
        int64_t k = l->consume;
        s = &l->slots[k % l->nslots];
        while (!(s->state == SLOT_READY && s->b.iter == k))
            pthread_cond_wait(&l->ready, &l->mu);
        l->consume++;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
    }
    if (s->status)
        return sd_fail(s->status, "%s", s->msg);
    *batch = &s->b;
    return SD_OK;
}

int64_t sd_loader_position(const sd_loader *l) { return l->consume; }

sd_status sd_loader_seek(sd_loader *l, int64_t iter)
{
    if (iter < 0)
        return sd_fail(SD_ERR_ARG, "loader: seek to iteration %lld", (long long)iter);
    stop_workers(l);
    if (l->o.workers == 0) {
        l->consume = iter;
        return SD_OK;
    }
    return start_workers(l, iter);
}

int sd_loader_n_skipped(const sd_loader *l) { return l->n_skipped; }

const char *sd_loader_skipped(const sd_loader *l, int i)
{
    return i >= 0 && i < l->n_skipped ? l->skipped[i] : NULL;
}
