/* Painting detector masks over a segmentation map (fuse.h), and the same
 * over prediction files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/data.h"
#include "segda/detect.h"
#include "segda/fuse.h"
#include "segda/image.h"
#include "segda/labels.h"

void sd_fuse_opts_init(sd_fuse_opts *o)
{
    o->score_thresh = 0.5f;
    o->overlap_thresh = 0.5f;
    o->clear_things = false;
}

static int by_score_desc(const void *a, const void *b, void *ctx)
{
    const sd_inst_pred *d = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    float x = d[i].score, y = d[j].score;
    if (x != y)
        return x > y ? -1 : 1;
    return i - j; /* ties: list order, whatever qsort does */
}

sd_status sd_fuse_detections(uint8_t *seg, int w, int h, const sd_inst_pred *dets, int n, const sd_fuse_opts *o,
                             int *n_painted)
{
    if (n_painted)
        *n_painted = 0;
    if (!(o->score_thresh >= 0 && o->score_thresh <= 1) || !(o->overlap_thresh >= 0 && o->overlap_thresh <= 1))
        return sd_fail(SD_ERR_ARG, "fuse: score threshold %g and overlap threshold %g: expected both in [0, 1]",
                       (double)o->score_thresh, (double)o->overlap_thresh);
    size_t np = (size_t)w * h;
    if (n <= 0) {
        for (size_t p = 0; o->clear_things && p < np; p++)
            if (sd_train_id_is_thing(seg[p]))
                seg[p] = SD_IGNORE;
        return SD_OK;
    }
    int *ord = malloc((size_t)n * sizeof *ord);
    uint8_t *painted = calloc(np ? np : 1, 1);
    if (!ord || !painted) {
        free(ord), free(painted);
        return sd_fail(SD_ERR_NOMEM, "fuse: out of memory for %d detections on %dx%d", n, w, h);
    }
    for (int i = 0; i < n; i++)
        ord[i] = i;
    qsort_r(ord, (size_t)n, sizeof *ord, by_score_desc, (void *)dets);
    int painted_n = 0;
    for (int k = 0; k < n; k++) {
        const sd_inst_pred *d = &dets[ord[k]];
        if (!(d->score >= o->score_thresh))
            break;
        if (!sd_train_id_is_thing(d->train_id))
            continue;
        size_t area = 0, taken = 0;
        for (size_t p = 0; p < np; p++)
            if (d->mask[p])
                area++, taken += painted[p];
        if (area == 0 || (double)taken > (double)o->overlap_thresh * (double)area)
            continue;
        for (size_t p = 0; p < np; p++)
            if (d->mask[p] && !painted[p])
                painted[p] = 1, seg[p] = (uint8_t)d->train_id;
        painted_n++;
    }
    for (size_t p = 0; o->clear_things && p < np; p++)
        if (!painted[p] && sd_train_id_is_thing(seg[p]))
            seg[p] = SD_IGNORE;
    free(ord), free(painted);
    if (n_painted)
        *n_painted = painted_n;
    return SD_OK;
}

sd_status sd_fuse_pred_dirs(const sd_dataset *ds, const char *pred_dir, sd_pred_kind kind, const char *inst_dir,
                            const sd_fuse_opts *o, const char *out_dir)
{
    const char **keys = sd_malloc(sizeof(char *) * (size_t)(ds->n ? ds->n : 1));
    if (!keys)
        return sd_fail(SD_ERR_NOMEM, "fuse: out of memory");
    for (int i = 0; i < ds->n; i++)
        keys[i] = ds->samples[i].stem;
    sd_pred_match m = {0};
    char **lists = NULL;
    sd_status st = sd_pred_match_dir(&m, pred_dir, keys, ds->n,
                                     ds->kind == SD_DATASET_CITYSCAPES ? SD_MATCH_STEM : SD_MATCH_BASENAME, kind);
    if (!st)
        st = sd_inst_lists_match(ds, inst_dir, &lists);
    uint8_t lut[256];
    sd_labels_id_to_train_lut(lut);
    for (int i = 0; !st && i < ds->n; i++) {
        if (!ds->samples[i].label_path)
            continue;
        if (!m.paths[i]) {
            st = sd_fail(SD_ERR_DATA, "%s: no prediction for %s", pred_dir, ds->samples[i].stem);
            break;
        }
        sd_image img;
        if ((st = sd_image_read(m.paths[i], &img, true)))
            break;
        if (img.c != 1 || img.depth != 8) {
            st = sd_fail(SD_ERR_DATA, "%s: prediction has %d channel(s) of %d bits: expected one 8-bit channel",
                         m.paths[i], img.c, img.depth);
            sd_image_free(&img);
            break;
        }
        uint8_t *seg = img.data;
        if (kind == SD_PRED_LABEL_IDS)
            for (size_t p = 0; p < (size_t)img.w * img.h; p++)
                seg[p] = lut[seg[p]];
        sd_inst_preds pr;
        st = sd_inst_preds_read(lists[i], img.w, img.h, &pr);
        if (!st)
            st = sd_fuse_detections(seg, img.w, img.h, pr.v, pr.n, o, NULL);
        sd_inst_preds_free(&pr);
        if (!st) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s_trainIds.png", out_dir, ds->samples[i].stem);
            sd_image out = {img.w, img.h, 1, 8, seg};
            st = sd_png_write(path, &out);
        }
        sd_image_free(&img);
    }
    sd_inst_lists_free(lists, ds->n);
    sd_pred_match_free(&m);
    free(keys);
    return st;
}

/* ---- with the detector ---- */

sd_status sd_fuse_detect(sd_detector *det, const uint8_t *rgb, int w, int h, uint8_t *seg, const sd_fuse_opts *o,
                         const char *inst_dir, const char *stem, int *n_det, int *n_painted)
{
    sd_detections dd;
    sd_status st = sd_detector_predict(det, rgb, w, h, &dd);
    if (st)
        return st;
    sd_inst_pred *v = sd_malloc((size_t)(dd.n ? dd.n : 1) * sizeof *v);
    if (!v) {
        sd_detections_free(&dd);
        return sd_fail(SD_ERR_NOMEM, "fuse: out of memory");
    }
    for (int i = 0; i < dd.n; i++)
        v[i] = (sd_inst_pred){dd.d[i].train_id, dd.d[i].score, dd.d[i].mask};
    if (n_det)
        *n_det = dd.n;
    st = sd_fuse_detections(seg, w, h, v, dd.n, o, n_painted);
    if (!st && inst_dir) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s.txt", inst_dir, stem);
        FILE *f = fopen(path, "w");
        if (!f)
            st = sd_fail(SD_ERR_IO, "%s: cannot create", path);
        uint8_t *m = st ? NULL : sd_malloc((size_t)w * h);
        if (!st && !m)
            st = sd_fail(SD_ERR_NOMEM, "fuse: out of memory");
        for (int i = 0, k = 0; !st && i < dd.n; i++) {
            if (!sd_train_id_is_thing(v[i].train_id))
                continue;
            for (size_t p = 0; p < (size_t)w * h; p++)
                m[p] = v[i].mask[p] ? 255 : 0;
            snprintf(path, sizeof path, "%s/%s_%d.png", inst_dir, stem, k);
            sd_image im = {w, h, 1, 8, m};
            st = sd_png_write(path, &im);
            if (!st && fprintf(f, "%s_%d.png %d %.6f\n", stem, k, sd_class_label_id[v[i].train_id], (double)v[i].score) < 0)
                st = sd_fail(SD_ERR_IO, "%s/%s.txt: write error", inst_dir, stem);
            k++;
        }
        free(m);
        if (f && fclose(f) != 0 && !st)
            st = sd_fail(SD_ERR_IO, "%s/%s.txt: write error", inst_dir, stem);
    }
    free(v);
    sd_detections_free(&dd);
    return st;
}

sd_status sd_fuse_logits_fn(void *ctx, const sd_sample *s, float **logits, int *c, int *h, int *w)
{
    sd_fuse_logits_ctx *x = ctx;
    sd_status st = x->fn(x->ctx, s, logits, c, h, w);
    if (st)
        return st;
    if (*c != SD_NUM_CLASSES || s->w != s->lw || s->h != s->lh) {
        st = sd_fail(SD_ERR_ARG, "%s: the detector's masks are painted on a 19-class map of the image's size: the "
                     "model has %d classes, the image is %dx%d and its label %dx%d", s->stem, *c, s->w, s->h, s->lw,
                     s->lh);
        free(*logits), *logits = NULL;
        return st;
    }
    size_t n = (size_t)s->lw * s->lh;
    uint8_t *seg = sd_malloc(n);
    float *onehot = seg ? sd_calloc((size_t)SD_NUM_CLASSES * n, sizeof *onehot) : NULL;
    st = onehot ? sd_upsample_argmax(*logits, *c, *h, *w, s->lh, s->lw, x->align_corners, seg)
                : sd_fail(SD_ERR_NOMEM, "%s: out of memory for the fused map", s->stem);
    if (!st)
        st = sd_fuse_detect(x->det, s->image, s->w, s->h, seg, &x->opts, NULL, s->stem, NULL, NULL);
    if (!st)
        for (size_t p = 0; p < n; p++)
            if (seg[p] < SD_NUM_CLASSES)
                onehot[(size_t)seg[p] * n + p] = 1;
    free(*logits);
    free(seg);
    *logits = NULL;
    if (st) {
        free(onehot);
        return st;
    }
    *logits = onehot, *c = SD_NUM_CLASSES, *h = s->lh, *w = s->lw;
    return SD_OK;
}
