/* The Cityscapes label table (id -> trainId, category, colour), the SYNTHIA
 * id map, and the evaluation protocols (19/16/13 classes). Facts from the
 * official cityscapesScripts table; see ../shared/FIELD.md. */
#ifndef SEGDA_LABELS_H
#define SEGDA_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_NUM_CLASSES 19
#define SD_IGNORE 255
#define SD_NUM_LABEL_IDS 34      /* ids 0..33 */
#define SD_NUM_CATEGORIES 7

typedef struct sd_label_info {
    int id;
    const char *name;
    int train_id;                /* 255 = ignored in training and evaluation */
    const char *category;        /* "void", "flat", ... */
    int category_id;             /* -1 void, else index into sd_category_names */
    uint8_t color[3];
} sd_label_info;

extern const sd_label_info sd_labels[SD_NUM_LABEL_IDS];
extern const char *const sd_class_names[SD_NUM_CLASSES];        /* by trainId */
extern const uint8_t sd_class_colors[SD_NUM_CLASSES][3];        /* by trainId */
extern const int sd_class_label_id[SD_NUM_CLASSES];             /* trainId -> id */
extern const int sd_class_category[SD_NUM_CLASSES];             /* trainId -> category index */
extern const char *const sd_category_names[SD_NUM_CATEGORIES];  /* flat .. vehicle */

/* id -> trainId for every byte value: ids outside 0..33 map to 255. */
void sd_labels_id_to_train_lut(uint8_t lut[256]);

/* SYNTHIA class id -> trainId (the common 19-class convention);
 * lanemarking_as_road maps id 22 to road as CBST/CRST do. */
void sd_labels_synthia_lut(uint8_t lut[256], bool lanemarking_as_road);
#define SD_SYNTHIA_MAX_ID 22

/* CamVid: the SegNet 11-class layout's indices (0 Sky .. 10 Bicyclist, 11
 * Unlabelled) and the original 32-class colour table (label_colors.txt),
 * each with its trainId (255 where no Cityscapes class matches). */
#define SD_CAMVID11_N 12
extern const char *const sd_camvid11_names[SD_CAMVID11_N];
extern const uint8_t sd_camvid11_train_id[SD_CAMVID11_N];
#define SD_CAMVID32_N 32
typedef struct sd_camvid_class {
    const char *name;
    uint8_t color[3];
    uint8_t train_id;
} sd_camvid_class;
extern const sd_camvid_class sd_camvid32[SD_CAMVID32_N];

/* Evaluation protocols: which trainIds count in the mean. */
typedef enum sd_protocol {
    SD_PROTOCOL_19 = 0, SD_PROTOCOL_16, SD_PROTOCOL_13,
    SD_PROTOCOL_CAMVID,          /* the 10 classes CamVid's SegNet layout shares with the 19 (see labels.c) */
    SD_PROTOCOL_COUNT
} sd_protocol;
typedef struct sd_protocol_info {
    const char *name;           /* "mIoU-19", "mIoU-16", "mIoU-13" */
    int n;
    int classes[SD_NUM_CLASSES];
} sd_protocol_info;
extern const sd_protocol_info sd_protocols[SD_PROTOCOL_COUNT];
/* Parses "19", "16", "13", "camvid" (or "mIoU-16"); returns -1 if unknown. */
int sd_protocol_parse(const char *s);

/* Class sets a model may predict: 19 outputs (index = trainId) or the 16
 * SYNTHIA classes (the mIoU-16 protocol's, in trainId order: output k is
 * trainId sd_protocols[SD_PROTOCOL_16].classes[k]). Anything else is
 * predicted as raw indices. */
#define SD_NUM_CLASSES_SYNTHIA 16
/* Output index -> trainId for a model of `classes` outputs; NULL when the
 * index is the trainId (19) or the count is no known class set. */
const uint8_t *sd_class_set_train_ids(int classes);
/* trainId -> output index of the class set (255 for trainIds outside it,
 * and for 255); identity for 19. false for an unknown class count. */
bool sd_class_set_index_lut(int classes, uint8_t lut[256]);
/* Indices of a `classes`-output model to trainIds, in place (no-op for 19). */
void sd_class_set_to_train_ids(int classes, uint8_t *pred, size_t n);
/* The protocol a class set is scored and selected by (19 -> mIoU-19,
 * 16 -> mIoU-16). */
sd_protocol sd_class_set_protocol(int classes);

/* mapping.txt of a folder: dataset (text[0..len), name for messages):
 * "src_id train_id" lines, '#' comments, blank lines skipped; lut[src] =
 * train id (255 elsewhere), known[src] set. Ids outside 0..255, train ids
 * other than 0..18 and 255, an id mapped twice, a NUL byte or a line over
 * 1023 characters (comments may be longer) are SD_ERR_FORMAT naming
 * name:LINE. */
sd_status sd_label_map_parse(const char *text, size_t len, const char *name, uint8_t lut[256], bool known[256]);

#endif
