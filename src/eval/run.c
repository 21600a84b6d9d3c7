/* Scoring folders of prediction PNGs against a dataset's labels: matching,
 * reading, checks (size, channels, values), parallel accumulation. Ground
 * truth is read label-only (no image decode). Prints nothing but the
 * optional progress bar. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "segda/data.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/progress.h"

sd_status sd_eval_read_gt(const sd_dataset *ds, int i, uint8_t **gt, int *w, int *h)
{
    *gt = NULL;
    uint16_t *ids;
    sd_status st = sd_dataset_read_ids(ds, i, &ids, w, h);
    if (st)
        return st;
    size_t n = (size_t)*w * (size_t)*h;
    uint8_t *o = sd_malloc(n ? n : 1);
    if (!o) {
        free(ids);
        return SD_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        unsigned v = ids[k];
        if (v > 255 || !ds->id_known[v]) {
            if (!ds->allow_unknown_ids) {
                st = sd_fail(SD_ERR_DATA, "%s: unknown label id %u at x=%zu y=%zu (not in the %s table)",
                             ds->samples[i].label_path, v, k % (size_t)*w, k / (size_t)*w,
                             sd_dataset_kind_name(ds->kind));
                free(ids);
                free(o);
                return st;
            }
            o[k] = SD_IGNORE;
        } else {
            o[k] = ds->lut[v];
        }
    }
    free(ids);
    *gt = o;
    return SD_OK;
}

/* One prediction file checked against its ground truth and added. */
static sd_status add_pred(sd_confusion *cm, const char *path, const uint8_t *gt, int w, int h,
                          const char *gt_path, sd_pred_kind kind)
{
    sd_image img;
    sd_status st = sd_image_read(path, &img, true);
    if (st)
        return st;
    if (img.c != 1 || img.depth != 8)
        st = sd_fail(SD_ERR_DATA,
                     "%s: prediction has %d channel%s of %d bits; expected one 8-bit channel of %s",
                     path, img.c, img.c == 1 ? "" : "s", img.depth,
                     kind == SD_PRED_LABEL_IDS ? "label ids" : "trainIds");
    else if (img.w != w || img.h != h)
        st = sd_fail(SD_ERR_DATA,
                     "%s: prediction is %dx%d but its ground truth %s is %dx%d (predictions are "
                     "scored at the ground truth's full resolution)",
                     path, img.w, img.h, gt_path, w, h);
    else
        st = sd_confusion_add(cm, gt, img.data, w, h, kind, path);
    sd_image_free(&img);
    return st;
}

sd_status sd_eval_pred_dirs(const sd_dataset *ds, const sd_eval_pred_opts *o, sd_confusion *cms,
                            sd_eval_setup *setup)
{
    if (o->n_dirs < 1)
        return sd_fail(SD_ERR_ARG, "eval: no prediction folder given");
    if (!ds->has_labels)
        return sd_fail(SD_ERR_DATA, "dataset \"%s\" (split %s) has no labels to score against",
                       ds->spec, ds->split);
    int n = ds->n, nd = o->n_dirs;
    const char **keys = sd_malloc(sizeof(char *) * (size_t)n);
    sd_pred_match *m = sd_calloc((size_t)nd, sizeof *m);
    bool *skip = sd_calloc((size_t)n, sizeof *skip);
    sd_status st = (!keys || !m || !skip) ? SD_ERR_NOMEM : SD_OK;
    sd_match_mode mode = ds->kind == SD_DATASET_CITYSCAPES ? SD_MATCH_STEM : SD_MATCH_BASENAME;
    for (int i = 0; !st && i < n; i++)
        keys[i] = ds->samples[i].stem;
    for (int d = 0; !st && d < nd; d++)
        st = sd_pred_match_dir(&m[d], o->dirs[d], keys, n, mode, o->kind);

    /* every missing prediction is known before any image is read */
    int64_t skipped = 0;
    for (int d = 0; !st && d < nd; d++) {
        int missing = 0, first = -1;
        for (int i = 0; i < n; i++)
            if (!m[d].paths[i] && ds->samples[i].label_path) {
                missing++;
                if (first < 0)
                    first = i;
                skip[i] = true;
            }
        if (missing && !o->skip_missing)
            st = sd_fail(SD_ERR_DATA,
                         "%s: no prediction for %s (ground truth %s)%s; %d of %d samples lack one "
                         "(--skip-missing scores the others)",
                         o->dirs[d], ds->samples[first].stem, ds->samples[first].label_path,
                         mode == SD_MATCH_STEM ? ": expected a .png whose name contains the stem"
                                               : ": expected STEM.png",
                         missing, n);
    }
    for (int i = 0; !st && i < n; i++) {
        skipped += skip[i];
        if (!ds->samples[i].label_path)
            skip[i] = true; /* nothing to score it against */
    }

    int nt = o->threads > 0 ? o->threads : sd_threads();
    sd_confusion *local = st ? NULL : sd_calloc((size_t)nt * (size_t)nd, sizeof *local);
    if (!st && !local)
        st = SD_ERR_NOMEM;
    sd_first_error fe; /* the lowest failing sample wins, so the message does not depend on timing */
    sd_first_error_init(&fe);
    int gw = -1, gh = -1;
    int64_t done = 0;
    sd_progress pb;
    int64_t todo = 0;
    for (int i = 0; !st && i < n; i++)
        todo += !skip[i];
    sd_progress_init(&pb, "eval", "img", todo, o->progress);
    if (!st) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int i = 0; i < n; i++) {
            int me = omp_get_thread_num();
            long stop;
#pragma omp atomic read
            stop = fe.job;
            if (skip[i] || i > stop)
                continue;
            uint8_t *gt = NULL;
            int w = 0, h = 0;
            sd_status s = sd_eval_read_gt(ds, i, &gt, &w, &h);
            for (int d = 0; !s && d < nd; d++)
                s = add_pred(&local[(size_t)me * nd + d], m[d].paths[i], gt, w, h,
                             ds->samples[i].label_path, o->kind);
            free(gt);
            sd_first_error_keep(&fe, i, s);
            if (!s) {
#pragma omp critical(sd_eval_pred)
                {
                    if (gw == -1)
                        gw = w, gh = h;
                    else if (gw != w || gh != h)
                        gw = gh = 0;
                    sd_progress_update(&pb, ++done);
                }
            }
        }
        if (fe.st)
            st = sd_first_error_raise(&fe);
    }
    if (!st) {
        sd_progress_finish(&pb);
        for (int d = 0; d < nd; d++) {
            sd_confusion_init(&cms[d]);
            for (int t = 0; t < nt; t++)
                sd_confusion_merge(&cms[d], &local[(size_t)t * nd + d]);
        }
        setup->images = done;
        setup->skipped = skipped;
        setup->gt_w = gw > 0 ? gw : 0;
        setup->gt_h = gh > 0 ? gh : 0;
        for (int d = 0; d < nd; d++)
            if (m[d].n_unmatched)
                sd_log(2, "eval: %s: %d .png file%s matched no sample (ignored)\n", o->dirs[d],
                       m[d].n_unmatched, m[d].n_unmatched == 1 ? "" : "s");
    } else if (pb.enabled && pb.tty) {
        fputc('\n', stderr); /* end the bar's line before the CLI prints the error */
    }
    for (int d = 0; m && d < nd; d++)
        sd_pred_match_free(&m[d]);
    free(m);
    free(keys);
    free(skip);
    free(local);
    return st;
}

sd_status sd_eval_logits(const sd_dataset *ds, sd_eval_logits_fn fn, void *ctx, bool align_corners,
                         sd_progress_mode progress, sd_confusion *cm, sd_eval_setup *setup)
{
    if (!ds->has_labels)
        return sd_fail(SD_ERR_DATA, "dataset \"%s\" (split %s) has no labels to score against",
                       ds->spec, ds->split);
    sd_confusion_init(cm);
    int64_t todo = 0;
    for (int i = 0; i < ds->n; i++)
        todo += ds->samples[i].label_path != NULL;
    sd_progress pb;
    sd_progress_init(&pb, "eval", "img", todo, progress);
    int gw = -1, gh = -1;
    int64_t done = 0;
    sd_status st = SD_OK;
    /* one sample at a time: the model's forward pass uses the threads */
    for (int i = 0; !st && i < ds->n; i++) {
        if (!ds->samples[i].label_path)
            continue;
        sd_sample s;
        st = sd_dataset_read(ds, i, &s);
        if (st)
            break;
        float *lg = NULL;
        int c = 0, h = 0, w = 0;
        st = fn(ctx, &s, &lg, &c, &h, &w);
        if (!st)
            st = sd_confusion_add_logits(cm, lg, c, h, w, s.label, s.lw, s.lh, align_corners,
                                         ds->samples[i].label_path);
        else
            sd_fail_prefix(st, "%s", ds->samples[i].image_path);
        if (!st) {
            if (gw == -1)
                gw = s.lw, gh = s.lh;
            else if (gw != s.lw || gh != s.lh)
                gw = gh = 0;
            sd_progress_update(&pb, ++done);
        }
        free(lg);
        sd_sample_free(&s);
    }
    if (st) {
        if (pb.enabled && pb.tty)
            fputc('\n', stderr);
        return st;
    }
    sd_progress_finish(&pb);
    setup->images = done;
    setup->gt_w = gw > 0 ? gw : 0;
    setup->gt_h = gh > 0 ? gh : 0;
    setup->align_corners = align_corners;
    return SD_OK;
}
