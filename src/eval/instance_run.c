/* Running the instance-aware metrics (eval_inst.h) over a dataset: iIoU of
 * prediction folders (a second, label-and-instance-only pass beside
 * sd_eval_pred_dirs), iIoU of a model through a wrapper of its logits
 * callback, and AP of instance predictions in the official text format. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/data.h"
#include "segda/eval_inst.h"
#include "segda/image.h"
#include "segda/labels.h"

/* Reads a prediction PNG as trainIds of the ground truth's size. */
static sd_status read_pred_train_ids(const char *path, sd_pred_kind kind, int w, int h, uint8_t **out)
{
    *out = NULL;
    sd_image img;
    sd_status st = sd_image_read(path, &img, true);
    if (st)
        return st;
    if (img.c != 1 || img.depth != 8 || img.w != w || img.h != h) {
        st = sd_fail(SD_ERR_DATA, "%s: prediction is %dx%d with %d channel(s) of %d bits: expected %dx%d, one 8-bit "
                     "channel (the instance ids' size)", path, img.w, img.h, img.c, img.depth, w, h);
        sd_image_free(&img);
        return st;
    }
    uint8_t *p = img.data;
    if (kind == SD_PRED_LABEL_IDS) {
        uint8_t lut[256];
        sd_labels_id_to_train_lut(lut);
        for (size_t k = 0; k < (size_t)w * h; k++)
            p[k] = lut[p[k]];
    }
    *out = p; /* the image's buffer, now owned by the caller */
    return SD_OK;
}

sd_status sd_iiou_pred_dirs(const sd_dataset *ds, const sd_eval_pred_opts *o, sd_iiou *out)
{
    int n = ds->n, nd = o->n_dirs;
    const char **keys = sd_malloc(sizeof(char *) * (size_t)(n ? n : 1));
    sd_pred_match *m = sd_calloc((size_t)nd, sizeof *m);
    sd_status st = (!keys || !m) ? sd_fail(SD_ERR_NOMEM, "iIoU: out of memory") : SD_OK;
    sd_match_mode mode = ds->kind == SD_DATASET_CITYSCAPES ? SD_MATCH_STEM : SD_MATCH_BASENAME;
    for (int i = 0; !st && i < n; i++)
        keys[i] = ds->samples[i].stem;
    for (int d = 0; !st && d < nd; d++)
        st = sd_pred_match_dir(&m[d], o->dirs[d], keys, n, mode, o->kind);
    bool first = true;
    for (int i = 0; !st && i < n; i++) {
        if (!ds->samples[i].label_path)
            continue;
        bool all = true;
        for (int d = 0; d < nd; d++)
            all &= m[d].paths[i] != NULL;
        if (!all)
            continue; /* sd_eval_pred_dirs has already refused or skipped it */
        sd_instances in;
        if ((st = sd_dataset_read_instances(ds, i, &in)))
            break;
        if (first)
            for (int d = 0; d < nd; d++)
                sd_iiou_init(&out[d], in.w, in.h);
        first = false;
        for (int d = 0; !st && d < nd; d++) {
            uint8_t *pred;
            st = read_pred_train_ids(m[d].paths[i], o->kind, in.w, in.h, &pred);
            if (!st)
                st = sd_iiou_add(&out[d], &in, pred, m[d].paths[i]);
            free(pred);
        }
        sd_instances_free(&in);
    }
    for (int d = 0; m && d < nd; d++)
        sd_pred_match_free(&m[d]);
    free(m);
    free(keys);
    return st;
}

sd_status sd_iiou_logits_fn(void *ctx, const struct sd_sample *s, float **logits, int *c, int *h, int *w)
{
    sd_iiou_logits_ctx *x = ctx;
    sd_status st = x->fn(x->ctx, s, logits, c, h, w);
    if (st || !x->stats)
        return st; /* no stats: a plain pass-through */
    sd_instances in;
    if ((st = sd_dataset_read_instances(x->ds, s->index, &in)))
        return st;
    if (in.w != s->lw || in.h != s->lh) {
        st = sd_fail(SD_ERR_DATA, "sample %s: instance ids are %dx%d, its label %dx%d: expected equal sizes", s->stem,
                     in.w, in.h, s->lw, s->lh);
        sd_instances_free(&in);
        return st;
    }
    if (!x->started)
        sd_iiou_init(x->stats, in.w, in.h), x->started = true;
    uint8_t *pred = sd_malloc((size_t)in.w * in.h);
    st = pred ? sd_upsample_argmax(*logits, *c, *h, *w, in.h, in.w, x->align_corners, pred)
              : sd_fail(SD_ERR_NOMEM, "iIoU: out of memory");
    if (!st)
        st = sd_iiou_add(x->stats, &in, pred, s->stem);
    free(pred);
    sd_instances_free(&in);
    return st;
}

/* ---- AP of instance predictions on disk ---- */

static struct {
    char **paths;
    int n, cap;
} txt_walk;

static int collect_txt(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)f;
    size_t len = strlen(path);
    if (flag != FTW_F || len < 4 || strcmp(path + len - 4, ".txt"))
        return 0;
    if (txt_walk.n == txt_walk.cap) {
        int cap = txt_walk.cap ? 2 * txt_walk.cap : 64;
        char **p = realloc(txt_walk.paths, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        txt_walk.paths = p, txt_walk.cap = cap;
    }
    txt_walk.paths[txt_walk.n] = sd_strdup(path);
    return txt_walk.paths[txt_walk.n++] ? 0 : -1;
}

/* The prediction list of a sample: a .txt whose name contains the stem
 * (Cityscapes) or is STEM.txt (others). */
static const char *find_txt(const sd_dataset *ds, int i)
{
    const char *stem = ds->samples[i].stem, *hit = NULL;
    size_t sl = strlen(stem);
    for (int k = 0; k < txt_walk.n; k++) {
        const char *base = strrchr(txt_walk.paths[k], '/');
        base = base ? base + 1 : txt_walk.paths[k];
        bool ok = ds->kind == SD_DATASET_CITYSCAPES ? strstr(base, stem) != NULL
                                                    : !strncmp(base, stem, sl) && !strcmp(base + sl, ".txt");
        if (ok)
            hit = txt_walk.paths[k];
    }
    return hit;
}

sd_status sd_inst_lists_match(const sd_dataset *ds, const char *dir, char ***lists)
{
    *lists = NULL;
    txt_walk.n = 0;
    sd_status st = SD_OK;
    if (nftw(dir, collect_txt, 16, FTW_PHYS) != 0)
        st = sd_fail(SD_ERR_IO, "%s: cannot list the instance predictions", dir);
    char **out = st ? NULL : sd_calloc((size_t)(ds->n ? ds->n : 1), sizeof *out);
    if (!st && !out)
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", dir);
    for (int i = 0; !st && i < ds->n; i++) {
        const char *t = ds->samples[i].label_path ? find_txt(ds, i) : NULL;
        if (t && !(out[i] = sd_strdup(t)))
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", dir);
        if (!t && ds->samples[i].label_path)
            st = sd_fail(SD_ERR_DATA, "%s: no instance prediction list for %s (expected a .txt whose name %s)", dir,
                         ds->samples[i].stem, ds->kind == SD_DATASET_CITYSCAPES ? "contains the stem" : "is STEM.txt");
    }
    for (int k = 0; k < txt_walk.n; k++)
        free(txt_walk.paths[k]);
    free(txt_walk.paths);
    memset(&txt_walk, 0, sizeof txt_walk);
    if (st)
        sd_inst_lists_free(out, ds->n);
    else
        *lists = out;
    return st;
}

void sd_inst_lists_free(char **lists, int n)
{
    for (int i = 0; lists && i < n; i++)
        free(lists[i]);
    free(lists);
}

void sd_inst_preds_free(sd_inst_preds *p)
{
    for (int i = 0; i < p->n; i++)
        free((void *)p->v[i].mask);
    free(p->v);
    memset(p, 0, sizeof *p);
}

sd_status sd_inst_preds_read(const char *txt, int w, int h, sd_inst_preds *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(txt, "r");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot open the instance prediction list", txt);
    char line[4400], dir[4200];
    snprintf(dir, sizeof dir, "%s", txt);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = 0;
    else
        dir[0] = 0;
    sd_status st = SD_OK;
    int ln = 0;
    while (!st && fgets(line, sizeof line, f)) {
        ln++;
        char rel[4096];
        double label = 0, conf = 0;
        if (line[0] == '\n' || line[0] == 0)
            continue;
        if (sscanf(line, "%4095s %lf %lf", rel, &label, &conf) != 3) {
            st = sd_fail(SD_ERR_FORMAT, "%s:%d: expected \"relPathPrediction labelID confidence\"", txt, ln);
            break;
        }
        if (rel[0] == '/') {
            st = sd_fail(SD_ERR_FORMAT, "%s:%d: the mask path must be relative to the list's folder", txt, ln);
            break;
        }
        int lid = (int)label;
        int tid = lid >= 0 && lid < SD_NUM_LABEL_IDS ? sd_labels[lid].train_id : SD_IGNORE;
        if (!sd_train_id_is_thing(tid))
            continue; /* as the official tool: predictions of other labels are passed over */
        char path[8400];
        snprintf(path, sizeof path, "%s%s", dir, rel);
        sd_image img;
        if ((st = sd_image_read(path, &img, true)))
            break;
        if (img.w != w || img.h != h || img.depth != 8) {
            st = sd_fail(SD_ERR_DATA, "%s: mask is %dx%d (%d-bit): expected %dx%d 8-bit like the ground truth", path,
                         img.w, img.h, img.depth, w, h);
            sd_image_free(&img);
            break;
        }
        uint8_t *mask = sd_malloc((size_t)w * h);
        if (!mask) {
            sd_image_free(&img);
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        for (size_t p = 0; p < (size_t)w * h; p++) {
            const uint8_t *px = (const uint8_t *)img.data + p * (size_t)img.c;
            int any = 0; /* convert("L") != 0: any non-zero channel */
            for (int k = 0; k < (img.c == 4 ? 3 : img.c); k++)
                any |= px[k];
            mask[p] = any != 0;
        }
        sd_image_free(&img);
        sd_inst_pred *grown = realloc(out->v, (size_t)(out->n + 1) * sizeof *grown);
        if (!grown) {
            free(mask);
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", txt);
            break;
        }
        out->v = grown;
        out->v[out->n++] = (sd_inst_pred){tid, (float)conf, mask};
    }
    fclose(f);
    if (st)
        sd_inst_preds_free(out);
    return st;
}

sd_status sd_ap_pred_dir(const sd_dataset *ds, const char *dir, sd_ap *ap, int *n_images)
{
    *n_images = 0;
    char **lists;
    sd_status st = sd_inst_lists_match(ds, dir, &lists);
    for (int i = 0; !st && i < ds->n; i++) {
        if (!lists[i])
            continue;
        char ipath[4200];
        uint16_t *ids = NULL;
        int w = 0, h = 0;
        if ((st = sd_dataset_instances_path(ds, i, ipath, sizeof ipath)) || (st = sd_instance_ids_read(ipath, &ids, &w, &h)))
            break;
        sd_inst_preds pr;
        st = sd_inst_preds_read(lists[i], w, h, &pr);
        if (!st)
            st = sd_ap_add(ap, ids, w, h, pr.v, pr.n, ipath);
        if (!st)
            ++*n_images;
        sd_inst_preds_free(&pr);
        free(ids);
    }
    sd_inst_lists_free(lists, ds->n);
    return st;
}
