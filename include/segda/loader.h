/* The threaded batch loader: worker threads read and augment samples into a
 * bounded ring of prefetched batches. What batch k holds (which samples,
 * which crops, flips and jitter) depends only on (seed, k): sample slot
 * p = k * batch + j (k * global_batch + first + j for one rank's share of a
 * data-parallel batch) picks its sample from the epoch's seeded permutation (or
 * by rare-class sampling) and augments it with sd_rng_fork(seed, p), so the
 * result is bit-identical for any number of workers and any timing, and a
 * run resumes exactly by starting at iteration k. Source and target streams
 * are two loaders side by side. Reading files: data.h; transforms: transform.h. */
#ifndef SEGDA_LOADER_H
#define SEGDA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"
#include "segda/data.h"
#include "segda/tensor.h"
#include "segda/transform.h"

typedef struct sd_loader_opts {
    int batch;                /* samples per batch, >= 1 */
    int workers;              /* threads; 0 reads in the caller's thread */
    int prefetch;             /* batches read ahead (0: 2 per worker) */
    uint64_t seed;
    bool shuffle;             /* a new seeded permutation every epoch */
    int64_t start_iter;       /* the first batch sd_loader_next returns (resume) */
    /* An unreadable sample is replaced by the next readable one in the
     * dataset's order, and listed (sd_loader_skipped). Without it the batch
     * fails with the reader's message. */
    bool skip_bad;
    /* Rare-class sampling (DAFormer): pick class c with p(c) ∝ exp((1 - f_c) / T),
     * f_c its pixel fraction, then a sample with at least rcs_min_pixels of c.
     * Needs class_pixels ([n][19], sd_dataset_class_pixels); T > 0 enables it. */
    float rcs_temperature;
    int rcs_min_pixels;
    const uint64_t *class_pixels;
    /* Read only these dataset indices (a labelled budget, a split): epochs
     * permute the list, rare-class sampling picks within it, and skip_bad
     * replaces a sample by the next readable one in it. The loader keeps a
     * copy. NULL: every sample. */
    const int *subset;
    int n_subset;
    /* Images only: the batch's label is NULL and no label is resized (the
     * target images of unsupervised adaptation). */
    bool images_only;
    sd_augment aug;
    /* One rank's share of a data-parallel batch: batch k holds slots
     * k * global_batch + first + j (j < batch) of a stream whose batches are
     * global_batch large, so the ranks' shares together are, sample for
     * sample and crop for crop, the batches of one process with
     * batch = global_batch. 0 / 0: the whole batch (global_batch = batch). */
    int global_batch;
    int first;
    /* The device the batches go to: CPU (0, the default) mallocs them; a
     * device's run gets them in its pinned host memory (cudaHostAlloc), so the
     * trainer's copies overlap compute. sd_loader_init fails when the device
     * is absent. */
    sd_device device;
} sd_loader_opts;

typedef struct sd_batch {
    int64_t iter;
    int n, h, w;
    float *image;             /* [n][3][h][w], normalised (RGB 0..255 with aug.raw_rgb) */
    uint8_t *label;           /* [n][h][w] trainIds, 255 ignored; NULL with images_only */
    sd_crop_box *box;         /* [n] where each crop came from */
    int *index;               /* [n] dataset sample indices */
} sd_batch;

typedef struct sd_loader sd_loader;

/* The dataset must outlive the loader. */
sd_status sd_loader_init(sd_loader **out, const sd_dataset *ds, const sd_loader_opts *opts);
void sd_loader_free(sd_loader *l);

/* The next batch, valid until the following call of next, seek or free.
 * A batch whose reading failed returns its error; the loader goes on with
 * the batch after it. */
sd_status sd_loader_next(sd_loader *l, const sd_batch **batch);
/* The iteration the next call of sd_loader_next returns. */
int64_t sd_loader_position(const sd_loader *l);
/* Restarts at iteration iter (drops the prefetched batches). */
sd_status sd_loader_seek(sd_loader *l, int64_t iter);

/* Samples replaced under skip_bad so far: the count and "PATH: problem" lines. */
int sd_loader_n_skipped(const sd_loader *l);
const char *sd_loader_skipped(const sd_loader *l, int i);

/* The sample index that slot p (= iter * batch + j) reads before any
 * skip_bad replacement: for tests and for logging what a batch holds. */
int sd_loader_pick(const sd_loader *l, int64_t p);

#endif
