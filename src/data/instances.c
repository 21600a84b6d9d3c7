/* Decoding Cityscapes instanceIds images into instance lists, and finding,
 * reading and checking a dataset's instance files (instances.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "segda/data.h"
#include "segda/image.h"
#include "segda/instances.h"
#include "segda/labels.h"

/* Cityscapes labels with hasInstances = True: person .. bicycle. */
static bool label_has_instances(int label_id) { return label_id >= 24 && label_id <= 33; }

bool sd_train_id_is_thing(int train_id)
{
    return train_id >= SD_FIRST_THING_TRAIN_ID && train_id < SD_FIRST_THING_TRAIN_ID + SD_NUM_THING_CLASSES;
}

static int cmp_inst(const void *a, const void *b)
{
    return ((const sd_instance *)a)->id - ((const sd_instance *)b)->id;
}

sd_status sd_instances_from_ids(const uint16_t *ids, int w, int h, const char *name, sd_instances *out)
{
    memset(out, 0, sizeof *out);
    size_t np = (size_t)w * h;
    /* 65536 possible ids: find the listed ones, then number them in id order. */
    int32_t *slot = malloc(65536 * sizeof *slot);
    out->map = malloc((np ? np : 1) * sizeof *out->map);
    if (!slot || !out->map) {
        free(slot);
        sd_instances_free(out);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory decoding instance ids", name);
    }
    for (int i = 0; i < 65536; i++)
        slot[i] = -1;
    int cap = 0;
    for (size_t p = 0; p < np; p++) {
        int v = ids[p];
        if (v < 1000 || slot[v] >= 0)
            continue;
        int label = v / 1000;
        if (label >= SD_NUM_LABEL_IDS || !label_has_instances(label)) {
            free(slot);
            sd_instances_free(out);
            return sd_fail(SD_ERR_DATA,
                           "%s: pixel (x=%zu, y=%zu) has instance id %d, which decodes to label id %d: expected "
                           "an id < 1000 (a plain label id) or 24000..33999 (person..bicycle * 1000 + index)",
                           name, p % (size_t)w, p / (size_t)w, v, label);
        }
        if (sd_labels[label].train_id == SD_IGNORE) {
            slot[v] = -2; /* caravan, trailer: known, not listed */
            continue;
        }
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16;
            sd_instance *grown = realloc(out->inst, (size_t)cap * sizeof *grown);
            if (!grown) {
                free(slot);
                sd_instances_free(out);
                return sd_fail(SD_ERR_NOMEM, "%s: out of memory decoding instance ids", name);
            }
            out->inst = grown;
        }
        sd_instance *in = &out->inst[out->n];
        *in = (sd_instance){.id = v, .label_id = label, .train_id = sd_labels[label].train_id,
                            .x0 = w, .y0 = h, .x1 = 0, .y1 = 0};
        slot[v] = out->n++;
    }
    qsort(out->inst, (size_t)out->n, sizeof *out->inst, cmp_inst);
    for (int i = 0; i < out->n; i++)
        slot[out->inst[i].id] = i;
    for (size_t p = 0; p < np; p++) {
        int v = ids[p];
        int k = v >= 1000 ? slot[v] : -1;
        out->map[p] = k >= 0 ? k : -1;
        if (k < 0)
            continue;
        sd_instance *in = &out->inst[k];
        int x = (int)(p % (size_t)w), y = (int)(p / (size_t)w);
        if (x < in->x0) in->x0 = x;
        if (y < in->y0) in->y0 = y;
        if (x + 1 > in->x1) in->x1 = x + 1;
        if (y + 1 > in->y1) in->y1 = y + 1;
        in->area++;
    }
    free(slot);
    out->w = w;
    out->h = h;
    return SD_OK;
}

sd_status sd_instance_ids_read(const char *path, uint16_t **ids, int *w, int *h)
{
    *ids = NULL;
    sd_image img;
    sd_status st = sd_image_read(path, &img, true);
    if (st)
        return st;
    if (img.c != 1) {
        sd_image_free(&img);
        return sd_fail(SD_ERR_FORMAT, "%s: instance ids image has %d channels: expected 1 (8- or 16-bit grey)", path,
                       img.c);
    }
    size_t np = (size_t)img.w * img.h;
    uint16_t *o = malloc((np ? np : 1) * sizeof *o);
    if (!o) {
        sd_image_free(&img);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t p = 0; p < np; p++)
        o[p] = img.depth == 16 ? ((const uint16_t *)img.data)[p] : ((const uint8_t *)img.data)[p];
    *ids = o, *w = img.w, *h = img.h;
    sd_image_free(&img);
    return SD_OK;
}

sd_status sd_instances_read(const char *path, sd_instances *out)
{
    memset(out, 0, sizeof *out);
    uint16_t *ids;
    int w, h;
    sd_status st = sd_instance_ids_read(path, &ids, &w, &h);
    if (st)
        return st;
    st = sd_instances_from_ids(ids, w, h, path, out);
    free(ids);
    return st;
}

sd_status sd_instances_check_labels(const sd_instances *in, const uint8_t *label_ids, const char *name)
{
    size_t np = (size_t)in->w * in->h;
    for (size_t p = 0; p < np; p++) {
        int k = in->map[p];
        if (k >= 0 && label_ids[p] != in->inst[k].label_id)
            return sd_fail(SD_ERR_DATA,
                           "%s: pixel (x=%zu, y=%zu) belongs to instance %d (label id %d) but the label file has "
                           "id %d there: expected the instance's label id",
                           name, p % (size_t)in->w, p / (size_t)in->w, in->inst[k].id, in->inst[k].label_id,
                           label_ids[p]);
    }
    return SD_OK;
}

void sd_instances_to_ids(const sd_instances *in, const uint8_t *background, uint16_t *out)
{
    size_t np = (size_t)in->w * in->h;
    for (size_t p = 0; p < np; p++) {
        int k = in->map[p];
        out[p] = k >= 0 ? (uint16_t)in->inst[k].id : (uint16_t)(background ? background[p] : 0);
    }
}

void sd_instances_free(sd_instances *in)
{
    free(in->inst);
    free(in->map);
    memset(in, 0, sizeof *in);
}

/* ---- instance files of a dataset ---- */

static bool replace_suffix(const char *s, const char *suf, const char *with, char *buf, size_t cap)
{
    size_t n = strlen(s), k = strlen(suf);
    if (n < k || strcmp(s + n - k, suf))
        return false;
    return (size_t)snprintf(buf, cap, "%.*s%s", (int)(n - k), s, with) < cap;
}

sd_status sd_dataset_instances_path(const sd_dataset *ds, int i, char *buf, size_t cap)
{
    if (i < 0 || i >= ds->n)
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": sample %d outside 0..%d", ds->spec, i, ds->n - 1);
    const sd_sample_entry *e = &ds->samples[i];
    bool ok = false;
    if (ds->kind == SD_DATASET_CITYSCAPES && e->label_path)
        ok = replace_suffix(e->label_path, "_gtFine_labelIds.png", "_gtFine_instanceIds.png", buf, cap);
    else if (ds->kind == SD_DATASET_GTA5)
        ok = (size_t)snprintf(buf, cap, "%s/instances/%s.png", ds->root, e->stem) < cap;
    else
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": %s datasets have no instance files (cityscapes and gta5 do)",
                       ds->spec, sd_dataset_kind_name(ds->kind));
    if (!ok)
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": sample %d (%s) has no instance file name", ds->spec, i, e->stem);
    return SD_OK;
}

bool sd_dataset_has_instances(const sd_dataset *ds)
{
    char path[4200];
    for (int i = 0; i < ds->n; i++) {
        if (!ds->samples[i].label_path)
            continue;
        sd_status st = sd_dataset_instances_path(ds, i, path, sizeof path);
        sd_error_clear();
        return !st && access(path, F_OK) == 0;
    }
    return false;
}

sd_status sd_dataset_read_instances(const sd_dataset *ds, int i, sd_instances *out)
{
    memset(out, 0, sizeof *out);
    char path[4200];
    sd_status st = sd_dataset_instances_path(ds, i, path, sizeof path);
    if (st)
        return st;
    if (access(path, F_OK) != 0)
        return sd_fail(SD_ERR_IO, "%s: no instance file for sample %s of \"%s\" (expected it beside the label)", path,
                       ds->samples[i].stem, ds->spec);
    return sd_instances_read(path, out);
}

sd_status sd_dataset_check_instances(const sd_dataset *ds, int i, int *per_class)
{
    sd_instances in;
    sd_status st = sd_dataset_read_instances(ds, i, &in);
    if (st)
        return st;
    uint16_t *ids = NULL;
    int lw = 0, lh = 0;
    char path[4200];
    sd_dataset_instances_path(ds, i, path, sizeof path);
    st = sd_dataset_read_ids(ds, i, &ids, &lw, &lh);
    if (!st && (lw != in.w || lh != in.h))
        st = sd_fail(SD_ERR_DATA, "%s: instance ids are %dx%d but the label %s is %dx%d: expected equal sizes", path,
                     in.w, in.h, ds->samples[i].label_path, lw, lh);
    if (!st) {
        size_t np = (size_t)lw * lh;
        uint8_t *lab = (uint8_t *)ids; /* narrowed in place: ids > 255 never equal an instance's label */
        for (size_t p = 0; p < np; p++)
            lab[p] = ids[p] > 255 ? 255 : (uint8_t)ids[p];
        st = sd_instances_check_labels(&in, lab, path);
    }
    if (!st && per_class)
        for (int k = 0; k < in.n; k++)
            per_class[in.inst[k].train_id - SD_FIRST_THING_TRAIN_ID]++;
    free(ids);
    sd_instances_free(&in);
    return st;
}
