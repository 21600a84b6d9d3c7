/* Datasets as they lie on disk: GTA5, SYNTHIA-RAND-CITYSCAPES, Cityscapes and
 * a generic folder layout, opened from a spec string, listed in a fixed
 * order, and read one sample at a time as an RGB image plus trainIds.
 * Resizing, cropping and batching live in transform.h and loader.h.
 *
 * Specs:
 *   gta5:ROOT         ROOT/images/NNNNN.png + ROOT/labels/NNNNN.png (label ids); optional
 *                     ROOT/instances/NNNNN.png: instance ids in Cityscapes' instanceIds
 *                     encoding (segda synth writes them; instances.h reads them)
 *   synthia:ROOT      ROOT/RGB/NNNNNNN.png + ROOT/GT/LABELS/NNNNNNN.png (16-bit, class id in R)
 *   cityscapes:ROOT[:SPLIT]
 *                     ROOT/leftImg8bit/SPLIT/CITY/STEM_leftImg8bit.png +
 *                     ROOT/gtFine/SPLIT/CITY/STEM_gtFine_labelIds.png (instances.h reads
 *                     the STEM_gtFine_instanceIds.png beside it); an empty
 *                     ROOT means $CITYSCAPES_DATASET; SPLIT train (default), val, test
 *   folder:ROOT       ROOT/images/STEM.{png,jpg,jpeg} + ROOT/labels/STEM.png and an
 *                     optional ROOT/mapping.txt of "src_id train_id" lines ('#'
 *                     comments); without it label values are trainIds already
 *                     (0..18 and 255).
 *
 * Size policy: a sample's image and label are returned at their stored
 * sizes, which may differ (GTA5 has such frames). The loader resizes each to
 * the training size on its own (image bilinear/bicubic, label nearest), as
 * the field's code does; with no training size it resizes the label to the
 * image's size, nearest.
 *
 * Label policy: ids are mapped to trainIds through the official tables
 * (labels.h). An id outside the dataset's table is an SD_ERR_DATA error
 * naming the file and the id, unless allow_unknown_ids (then it reads as 255).
 */
#ifndef SEGDA_DATA_H
#define SEGDA_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

typedef enum sd_dataset_kind {
    SD_DATASET_GTA5 = 0,
    SD_DATASET_SYNTHIA,
    SD_DATASET_CITYSCAPES,
    SD_DATASET_FOLDER,
    SD_DATASET_CAMVID,
    SD_DATASET_KIND_COUNT
} sd_dataset_kind;

typedef struct sd_dataset_opts {
    bool synthia_lanemarking_as_road; /* SYNTHIA id 22 -> road (CBST/CRST); off by default */
    bool allow_unknown_ids;           /* unknown label ids read as 255 instead of failing */
    /* Open despite listing problems (an image without its label or the
     * reverse): the incomplete pairs are left out and listed in
     * ds->problems. Without it sd_dataset_open fails on them. */
    bool skip_bad;
} sd_dataset_opts;

typedef struct sd_sample_entry {
    char *image_path;
    char *label_path;  /* NULL when the split has no labels (Cityscapes test) */
    char *stem;        /* "00001", "0000001", "aachen_000000_000019", folder file stem */
} sd_sample_entry;

typedef struct sd_dataset {
    sd_dataset_kind kind;
    char *spec;                /* as given, for messages */
    char *root;
    char *split;               /* "train"/"val"/"test" for Cityscapes, "all" otherwise */
    int n;                     /* samples, sorted by relative path */
    sd_sample_entry *samples;
    bool has_labels;           /* false when no sample has a label */
    int n_problems;            /* incomplete pairs left out (skip_bad) */
    char **problems;           /* "PATH: image has no label (expected LABEL)" */
    uint8_t lut[256];          /* stored id -> trainId */
    bool id_known[256];        /* ids in the dataset's table; larger values are unknown */
    bool allow_unknown_ids;
    bool camvid_color;         /* CamVid's 32-class colour-coded labels (else SegNet's 11-class indices) */
} sd_dataset;

/* One sample as read: an 8-bit RGB image and a trainId label, each at its
 * stored size. */
typedef struct sd_sample {
    int index;
    const char *stem;          /* points into the dataset */
    int w, h;
    uint8_t *image;            /* [h][w][3] RGB */
    int lw, lh;
    uint8_t *label;            /* [lh][lw] trainIds; NULL without a label */
} sd_sample;

const char *sd_dataset_kind_name(sd_dataset_kind k);

/* Opens a dataset from a spec (see the top of this file). split overrides
 * the one in the spec (NULL: the spec's, else "train" for Cityscapes and
 * "all" for the others). opts may be NULL. */
sd_status sd_dataset_open(sd_dataset *ds, const char *spec, const char *split, const sd_dataset_opts *opts);
void sd_dataset_free(sd_dataset *ds);

/* Reads sample i. Errors name the file and the problem: unreadable image,
 * wrong label bit depth or channel count, unknown ids. */
sd_status sd_dataset_read(const sd_dataset *ds, int i, sd_sample *out);
/* The image only (out->label NULL): unlabelled target streams never open
 * the label file, so a broken label cannot stop adaptation. */
sd_status sd_dataset_read_image(const sd_dataset *ds, int i, sd_sample *out);
void sd_sample_free(sd_sample *s);

/* The label of sample i as stored ids (before the trainId map), widened to
 * 16 bits: what check-data inspects. *ids is malloc'd, [h][w]. */
sd_status sd_dataset_read_ids(const sd_dataset *ds, int i, uint16_t **ids, int *w, int *h);

/* Pixels of each trainId in each sample's label (for rare-class sampling
 * and check-data): counts[i*19 + c]. Reads every label with `threads`
 * threads (0 = one). Samples that cannot be read fail the call unless
 * skip_bad, then their row is zero and n_bad counts them. */
sd_status sd_dataset_class_pixels(const sd_dataset *ds, int threads, bool skip_bad, uint64_t *counts, int *n_bad);

#endif
