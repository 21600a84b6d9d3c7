/* Pinned, asynchronous input staging for device runs (stage.h). The copies
 * go through the backend's storage kernels (host_alloc, copy_from_host_async,
 * wait_copy): no CUDA here. */
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "segda/stage.h"

void sd_stage_init(sd_stage *s, sd_device dev)
{
    memset(s, 0, sizeof *s);
    s->device = dev;
}

void sd_stage_free(sd_stage *s)
{
    const sd_backend *be = sd_backend_for(s->device);
    for (int i = 0; i < SD_STAGE_SLOTS && be; i++) {
        if (s->slot[i].host)
            be->host_free(s->slot[i].host);
        if (s->slot[i].dev)
            be->buffer_free(s->slot[i].dev);
    }
    memset(s, 0, sizeof *s);
}

sd_status sd_stage_put(sd_stage *s, int slot, const sd_batch *b, const sd_norm_params *np)
{
    if (s->device == SD_DEVICE_CPU || slot < 0 || slot >= SD_STAGE_SLOTS)
        return SD_OK;
    s->slot[slot].b = NULL;
    if (!b)
        return SD_OK;
    const sd_backend *be = sd_backend_for(s->device);
    if (!be)
        return sd_fail(SD_ERR_UNSUPPORTED, "input staging on %s: %s", sd_device_name(s->device),
                       sd_device_unavailable(s->device));
    /* the previous iteration's copies may still read the pinned buffers
     * (a staged batch no kernel waited for): slot 0 comes first in an
     * iteration, when the device has nothing else to do */
    if (slot == 0)
        be->sync();
    size_t numel = (size_t)b->n * 3 * b->h * b->w;
    if (numel > s->slot[slot].cap) {
        be->sync();   /* (and before freeing them) */
        if (s->slot[slot].host)
            be->host_free(s->slot[slot].host);
        if (s->slot[slot].dev)
            be->buffer_free(s->slot[slot].dev);
        s->slot[slot].host = be->host_alloc(numel * sizeof(float));
        s->slot[slot].dev = be->buffer_alloc(numel * sizeof(float));
        s->slot[slot].cap = s->slot[slot].host && s->slot[slot].dev ? numel : 0;
        if (!s->slot[slot].cap)
            return sd_fail(SD_ERR_NOMEM, "input staging: out of memory for a %d x 3 x %dx%d batch on %s", b->n,
                           b->w, b->h, sd_device_name(s->device));
    }
    sd_normalize_f32(b->image, b->n, b->w, b->h, np, s->slot[slot].host);
    be->copy_from_host_async(slot, s->slot[slot].dev, s->slot[slot].host, numel * sizeof(float));
    s->slot[slot].b = b;
    s->slot[slot].iter = b->iter;
    s->slot[slot].n = b->n;
    s->slot[slot].h = b->h;
    s->slot[slot].w = b->w;
    return SD_OK;
}

sd_tensor *sd_stage_take(sd_stage *s, sd_tape *t, const sd_batch *b)
{
    if (s->device == SD_DEVICE_CPU || !b || t->device != s->device)
        return NULL;
    for (int i = 0; i < SD_STAGE_SLOTS; i++)
        if (s->slot[i].b == b && s->slot[i].iter == b->iter && s->slot[i].n == b->n && s->slot[i].h == b->h &&
            s->slot[i].w == b->w) {
            sd_backend_for(s->device)->wait_copy(i);
            return sd_tensor_wrap_device(t, 4, (int[]){b->n, 3, b->h, b->w}, s->slot[i].dev);
        }
    return NULL;
}
