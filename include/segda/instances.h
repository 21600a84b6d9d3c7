/* Instance labels: Cityscapes' *_gtFine_instanceIds.png encoding, decoded
 * into a list of object instances of the 8 evaluated "thing" classes
 * (person, rider, car, truck, bus, train, motorcycle, bicycle = trainIds
 * 11..18) and a per-pixel map into that list.
 *
 * Encoding (cityscapesScripts, json2instanceImg): a pixel of an object with
 * its own instance stores labelId * 1000 + k (k = 0, 1, ...); every other
 * pixel stores its plain labelId (< 1000: stuff, or a crowd "group" region
 * of a thing class, which has no instance). Files are 16-bit (or 8-bit when
 * no instance exists) one-channel PNGs. Instances of labels without a
 * trainId (caravan, trailer) are not listed; their pixels map to -1. */
#ifndef SEGDA_INSTANCES_H
#define SEGDA_INSTANCES_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_FIRST_THING_TRAIN_ID 11
#define SD_NUM_THING_CLASSES 8

/* trainIds 11..18 are things, 0..10 stuff; anything else is neither. */
bool sd_train_id_is_thing(int train_id);

typedef struct sd_instance {
    int id;                /* as stored: label_id * 1000 + k */
    int label_id;          /* Cityscapes labelId (24..33) */
    int train_id;          /* 11..18 */
    int x0, y0, x1, y1;    /* tight box in pixels, x1/y1 exclusive */
    int64_t area;          /* pixels */
} sd_instance;

typedef struct sd_instances {
    int w, h;
    int n;
    sd_instance *inst;     /* n, sorted by id */
    int32_t *map;          /* [h][w]: index into inst, -1 where no listed instance */
} sd_instances;

/* Decodes stored ids (see above). `name` names the source in messages. An id
 * >= 1000 whose labelId is not a label with instances (>= 34, or road*1000)
 * is an SD_ERR_DATA error naming the file, the pixel and the value. */
sd_status sd_instances_from_ids(const uint16_t *ids, int w, int h, const char *name, sd_instances *out);
/* Reads an instanceIds PNG (one channel, 8 or 16 bit) as stored ids,
 * uint16 [h][w], malloc'd into *ids. */
sd_status sd_instance_ids_read(const char *path, uint16_t **ids, int *w, int *h);
/* Reads and decodes an instanceIds PNG (one channel, 8 or 16 bit). */
sd_status sd_instances_read(const char *path, sd_instances *out);
/* Checks that every instance pixel's labelId equals the label file's
 * (label_ids: [h][w] stored Cityscapes labelIds, same size). The first
 * disagreement is an SD_ERR_DATA error naming `name`, the pixel, both ids. */
sd_status sd_instances_check_labels(const sd_instances *in, const uint8_t *label_ids, const char *name);
/* The instance ids as a stored image would hold them (the inverse of
 * sd_instances_from_ids for listed instances; other pixels get `background`,
 * [h][w] labelIds, which may be NULL for 0). out: [h][w], caller-owned. */
void sd_instances_to_ids(const sd_instances *in, const uint8_t *background, uint16_t *out);
void sd_instances_free(sd_instances *in);

/* ---- instance files of a dataset (data.h) ----
 * Where they lie:
 *   cityscapes  beside the label: STEM_gtFine_instanceIds.png for
 *               STEM_gtFine_labelIds.png (gtFine/SPLIT/CITY/)
 *   gta5        ROOT/instances/NNNNN.png for ROOT/labels/NNNNN.png (the
 *               layout segda synth writes for sim/ and simple/; GTA5
 *               itself ships none)
 * Other kinds have none (SD_ERR_ARG). */
typedef struct sd_dataset sd_dataset;

/* The instance file of sample i into buf (cap bytes). */
sd_status sd_dataset_instances_path(const sd_dataset *ds, int i, char *buf, size_t cap);
/* Whether the dataset has instance files: its kind can and the first
 * labelled sample's file exists. Then every sample should have one. */
bool sd_dataset_has_instances(const sd_dataset *ds);
/* Reads and decodes sample i's instance file. A missing file is SD_ERR_IO
 * naming the path expected. An image without instances decodes to n = 0
 * (not an error). */
sd_status sd_dataset_read_instances(const sd_dataset *ds, int i, sd_instances *out);
/* What check-data asks of sample i's instance file: decodable, the size of
 * the label, every instance pixel's label id equal to the label file's
 * (sd_instances_check_labels). per_class (may be NULL): instances of each
 * thing class added, [SD_NUM_THING_CLASSES] by trainId - 11. */
sd_status sd_dataset_check_instances(const sd_dataset *ds, int i, int *per_class);

#endif
