/* Object crops for the shape-vs-texture test of Saleh et al. (ECCV 2018):
 * every thing instance of a dataset (instances.h) as a fixed-size feature
 * row, either its silhouette (shape) or its masked colours (texture), for
 * the domain classifiers of gap.h. */
#include <stdlib.h>
#include <string.h>

#include "segda/data.h"
#include "segda/gap.h"
#include "segda/instances.h"

const char *sd_gap_object_kind_name(sd_gap_object_kind k) { return k == SD_GAP_OBJECT_SHAPE ? "shape" : "texture"; }

/* One instance's row: its box made square about its centre (clamped to the
 * image), sampled nearest at side x side cell centres. */
static void object_row(const sd_instances *in, int k, const uint8_t *rgb, int iw, sd_gap_object_kind kind, int side,
                       float *row)
{
    const sd_instance *o = &in->inst[k];
    int bw = o->x1 - o->x0, bh = o->y1 - o->y0, s = bw > bh ? bw : bh;
    float cx = 0.5f * (float)(o->x0 + o->x1), cy = 0.5f * (float)(o->y0 + o->y1);
    for (int v = 0; v < side; v++)
        for (int u = 0; u < side; u++) {
            int x = (int)(cx - 0.5f * (float)s + ((float)u + 0.5f) * (float)s / (float)side);
            int y = (int)(cy - 0.5f * (float)s + ((float)v + 0.5f) * (float)s / (float)side);
            bool inside = x >= 0 && y >= 0 && x < in->w && y < in->h && in->map[(size_t)y * in->w + x] == k;
            size_t c = (size_t)v * side + u;
            if (kind == SD_GAP_OBJECT_SHAPE) {
                row[c] = inside ? 1.0f : 0.0f;
            } else {
                for (int j = 0; j < 3; j++)
                    row[3 * c + j] = inside ? (float)rgb[((size_t)y * iw + x) * 3 + j] / 255.0f : 0.0f;
            }
        }
}

sd_status sd_gap_object_features(const sd_dataset *ds, sd_gap_object_kind kind, int side, int min_area, float **x,
                                 int *n, int *d)
{
    *x = NULL, *n = 0;
    *d = side * side * (kind == SD_GAP_OBJECT_SHAPE ? 1 : 3);
    if (side < 2 || side > 256)
        return sd_fail(SD_ERR_ARG, "gap objects: crop side %d, expected 2..256", side);
    if (!sd_dataset_has_instances(ds))
        return sd_fail(SD_ERR_DATA, "dataset \"%s\" has no instance files (cityscapes: *_gtFine_instanceIds.png; "
                       "gta5: ROOT/instances/, as segda synth writes them)", ds->spec);
    int cap = 0;
    float *rows = NULL;
    sd_status st = SD_OK;
    for (int i = 0; i < ds->n && !st; i++) {
        if (!ds->samples[i].label_path)
            continue;
        sd_instances in;
        if ((st = sd_dataset_read_instances(ds, i, &in)))
            break;
        sd_sample s;
        if ((st = sd_dataset_read_image(ds, i, &s))) {
            sd_instances_free(&in);
            break;
        }
        if (s.w != in.w || s.h != in.h)
            st = sd_fail(SD_ERR_DATA, "%s: image %dx%d, instance ids %dx%d: expected equal sizes",
                         ds->samples[i].image_path, s.w, s.h, in.w, in.h);
        for (int k = 0; k < in.n && !st; k++) {
            if (in.inst[k].area < min_area)
                continue;
            if (*n == cap) {
                cap = cap ? 2 * cap : 256;
                float *g = realloc(rows, (size_t)cap * (size_t)*d * sizeof *g);
                if (!g) {
                    st = sd_fail(SD_ERR_NOMEM, "gap objects: out of memory for %d rows", cap);
                    break;
                }
                rows = g;
            }
            object_row(&in, k, s.image, s.w, kind, side, rows + (size_t)*n * *d);
            ++*n;
        }
        sd_sample_free(&s);
        sd_instances_free(&in);
    }
    if (st) {
        free(rows);
        *n = 0;
        return st;
    }
    *x = rows;
    return SD_OK;
}
