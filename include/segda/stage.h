/* Input staging of a device run: a batch's image normalised on the host into
 * pinned memory and copied to the device on the backend's copy stream while
 * the GPU computes, into device buffers the stager owns (so a tape reset in
 * the middle of a step does not take them). The trainer stages the source
 * and target batches at the start of an iteration; the target's copy then
 * overlaps the source's forward pass. On the CPU nothing is staged: inputs
 * are normalised straight into their tensors, as before. */
#ifndef SEGDA_STAGE_H
#define SEGDA_STAGE_H

#include "segda/loader.h"
#include "segda/norm.h"
#include "segda/tensor.h"

#define SD_STAGE_SLOTS 2

typedef struct sd_stage {
    sd_device device;
    struct {
        float *host;             /* [cap] pinned (the backend's host_alloc) */
        float *dev;              /* [cap] on the device */
        size_t cap;
        const sd_batch *b;       /* what the slot holds (NULL: nothing) */
        int64_t iter;
        int n, h, w;
    } slot[SD_STAGE_SLOTS];
} sd_stage;

void sd_stage_init(sd_stage *s, sd_device dev);
void sd_stage_free(sd_stage *s);
/* Starts b (NULL: empties the slot) on its way to the device: normalised
 * with np into the slot's pinned buffer, then an asynchronous copy. A no-op
 * on the CPU. */
sd_status sd_stage_put(sd_stage *s, int slot, const sd_batch *b, const sd_norm_params *np);
/* b's staged image as a [n,3,h,w] tensor on t, with the kernels issued
 * afterwards waiting for its copy; NULL when b is not staged (the caller
 * normalises and copies it itself). */
sd_tensor *sd_stage_take(sd_stage *s, sd_tape *t, const sd_batch *b);

#endif
