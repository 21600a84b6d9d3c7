/* The built-in synthetic->real street-scene benchmark: procedural street
 * scenes rendered in two domains ("sim": flat game-like shading; "real":
 * camera-like textures, optics, noise and compression), written in the GTA5,
 * SYNTHIA and Cityscapes layouts. It does not read datasets (data.h) and
 * does not train anything. */
#ifndef SEGDA_SYNTH_H
#define SEGDA_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

typedef enum sd_synth_domain {
    SD_SYNTH_SIM = 0,   /* the "game": flat shading, clean edges, saturated palette */
    SD_SYNTH_REAL,      /* the "camera": textures, blur, vignetting, casts, noise, JPEG blocks */
    SD_SYNTH_DOMAIN_COUNT
} sd_synth_domain;

/* What sd_synth_write produces. Counts of 0 skip that part. */
typedef struct sd_synth_opts {
    int n_sim;          /* sim images (GTA5 layout under OUT/sim); default 400 */
    int n_real;         /* real train images (Cityscapes layout under OUT/real); default 400 */
    int n_real_val;     /* real val images; default 100 */
    int w, h;           /* image size; default 256x128 */
    uint64_t seed;      /* default 1 */
    bool synthia;       /* also write the sim images in SYNTHIA's layout under OUT/synthia */
    int crops;          /* real-style object crops per class for train (val gets ceil(crops/4)); default 0 */
    int crop_size;      /* crop side in pixels; default 64 */
    int n_simple;       /* VEIS-like simple sim scenes (one thing class each, GTA5 layout under OUT/simple); default 0 */
    int threads;        /* worker threads; 0 = sd_threads() */
    bool quiet;         /* no progress lines on stderr */
    bool force;         /* write into a non-empty folder, first removing what an earlier write left there */
    bool instances;     /* set by sd_synth_read_marker: the write has instance files (every write since they
                         * exist; an older folder without them is rewritten by sd_synth_ensure) */
} sd_synth_opts;

/* The file sd_synth_write writes last, holding its options: a folder
 * without it is a write that did not finish. */
#define SD_SYNTH_MARKER ".segda-synth-complete"

void sd_synth_opts_init(sd_synth_opts *o);

/* Renders scene `index` of a domain. rgb: uint8 [h*w*3] RGB; label_ids:
 * uint8 [h*w] Cityscapes label ids (not trainIds; void areas are 0, the
 * ego-vehicle bonnet 1, street furniture 4). Either output may be NULL. The
 * result depends only on (domain, seed, stream, index, w, h): streams keep
 * sets apart (sd_synth_write uses 1 sim, 2 real train, 3 real val, 4/5 crops),
 * and the scene itself (its layout) does not depend on w and h. */
sd_status sd_synth_render(sd_synth_domain dom, uint64_t seed, uint32_t stream, uint64_t index,
                          int w, int h, uint8_t *rgb, uint8_t *label_ids);
/* The same scene, with its instance ids as well: uint16 [h*w] in Cityscapes'
 * instanceIds encoding (instances.h): labelId*1000 + k on each visible thing
 * object (a rider and its bicycle are two instances; k counts each label's
 * objects from 0 in the order the scene placed them), the plain labelId
 * elsewhere. rgb and label_ids are byte-identical to sd_synth_render's. */
sd_status sd_synth_render_instances(sd_synth_domain dom, uint64_t seed, uint32_t stream, uint64_t index,
                                    int w, int h, uint8_t *rgb, uint8_t *label_ids, uint16_t *instance_ids);

/* The thing class (trainId 11..18) of simple scene `index`: they cycle
 * through person, rider, car, truck, bus, train, motorcycle, bicycle. */
int sd_synth_simple_class(int index);

/* Writes the benchmark under `out_dir` (created if missing; a non-empty
 * folder is refused with SD_ERR_ARG unless o->force, which first removes
 * the layout folders below and the marker, nothing else):
 *   sim/images/00001.png, sim/labels/00001.png  (GTA5: RGB, 8-bit palette label ids)
 *   sim/instances/00001.png                     (16-bit grey instance ids, Cityscapes' encoding)
 *   real/leftImg8bit/{train,val}/CITY/CITY_SSSSSS_FFFFFF_leftImg8bit.png
 *   real/gtFine/{train,val}/CITY/CITY_SSSSSS_FFFFFF_gtFine_labelIds.png (8-bit grey)
 *   real/gtFine/{train,val}/CITY/CITY_SSSSSS_FFFFFF_gtFine_instanceIds.png (16-bit grey)
 *   simple/{images,labels,instances}/00001.png (n_simple: VEIS-like one-class sim scenes, as sim/)
 *   synthia/RGB/0000000.png, synthia/GT/LABELS/0000000.png (16-bit RGB, SYNTHIA id in R)
 *   crops/{train,val}/CLASS/00001.png (CLASS = sd_synth_crop_dir_name)
 *   .segda-synth-complete (SD_SYNTH_MARKER), written last
 * Byte-identical for the same options whatever the thread count. */
sd_status sd_synth_write(const char *out_dir, const sd_synth_opts *o);

/* The options recorded in out_dir's completion marker (SD_ERR_IO naming
 * it when absent: the folder was never finished; SD_ERR_FORMAT when
 * unreadable). */
sd_status sd_synth_read_marker(const char *out_dir, sd_synth_opts *o);

/* A benchmark in out_dir with what `want` asks for: kept when its marker
 * says a finished write of the same images (`want->crops` > 0: with crops),
 * else written anew with `want` (clearing what an unfinished or different
 * earlier write left). *regenerated (may be NULL) tells which. */
sd_status sd_synth_ensure(const char *out_dir, const sd_synth_opts *want, bool *regenerated);

/* The fake Cityscapes city of real image `index` in a split ("train" or
 * "val") and the file stem "CITY_SSSSSS_FFFFFF" for it (buffer >= 64). */
const char *sd_synth_city(const char *split, int index);
void sd_synth_real_stem(const char *split, int index, char *stem, int cap);

/* Crop folder name of a trainId: the class name with '_' for spaces. */
const char *sd_synth_crop_dir_name(int train_id);

/* trainId -> SYNTHIA id (inverse of sd_labels_synthia_lut); 0 (void) for 255. */
int sd_synth_synthia_id(int train_id);

#endif
