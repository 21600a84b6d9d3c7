/* The training loop's TensorBoard log (tblog.h): tags, steps and the image
 * strips. Tags: loss/<term> (unweighted values, as log.jsonl), metric/<name>
 * for logged values that are not losses, train/lr, val/mIoU-19, -16, -13 and
 * val_class_iou/<class> (percent), images/source and images/target. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "da/tblog.h"
#include "segda/draw.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/tfevents.h"

typedef struct tblog {
    sd_tb *w;
    int64_t images_every;  /* 0: no image strips */
} tblog;

static tblog *get(sd_trainer *tr) { return tr->tb; }

/* A failed write ends TensorBoard logging for the run, not the run. */
static void check(sd_trainer *tr, sd_status st)
{
    tblog *t = get(tr);
    if (!st || !t)
        return;
    fprintf(stderr, "train %s: TensorBoard logging stops: %s\n", tr->method->name, sd_errmsg());
    sd_tb_close(t->w);
    free(t);
    tr->tb = NULL;
}

void sd_tblog_open(sd_trainer *tr, int64_t start_it)
{
    if (!tr->log || !sd_config_bool(tr->cfg, "tb"))
        return; /* (ranks other than 0 have no log and write nothing) */
    tblog *t = calloc(1, sizeof *t);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tb", tr->rundir);
    if (!t || sd_tb_open(&t->w, dir)) {
        fprintf(stderr, "train %s: no TensorBoard log: %s\n", tr->method->name, t ? sd_errmsg() : "out of memory");
        free(t);
        return;
    }
    t->images_every = sd_config_int(tr->cfg, "tb-images-every");
    tr->tb = t;
    if (start_it > 0)
        check(tr, sd_tb_session_start(t->w, start_it + 1));
}

/* ---- image strips ---- */

enum { PANEL_MAX_W = 320, GAP = 4, HEAD = 12 };

static const uint8_t *class_rgb(const uint8_t *ids, int classes, uint8_t v)
{
    static const uint8_t black[3] = {0, 0, 0};
    if (v == 255 || v >= classes)
        return black;
    uint8_t tid = ids ? ids[v] : v;
    return tid < SD_NUM_CLASSES ? sd_class_colors[tid] : black;
}

/* One domain's strip: labelled columns input | prediction | label | entropy,
 * each the batch's first crop, subsampled to at most PANEL_MAX_W wide. */
static sd_status image_strip(sd_trainer *tr, const sd_batch *b, bool entropy, sd_image *out)
{
    int w = b->w, h = b->h, classes = sd_model_options(tr->model)->classes;
    int step = (w + PANEL_MAX_W - 1) / PANEL_MAX_W, pw = (w + step - 1) / step, ph = (h + step - 1) / step;
    const char *titles[4] = {"input", "prediction", b->label ? "label" : "(no label)", "entropy"};
    int cols = entropy ? 4 : 3;
    size_t n = (size_t)w * h;
    uint8_t *rgb = malloc(n * 3), *pred = malloc(n);
    float *probs = malloc((size_t)classes * n * sizeof *probs);
    sd_status st = rgb && pred && probs ? sd_image_alloc(out, cols * (pw + GAP) - GAP, HEAD + ph, 3, 8)
                                        : sd_fail(SD_ERR_NOMEM, "TensorBoard image: out of memory");
    if (!st) {
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) {
                float v = b->image[c * n + i];
                rgb[i * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        sd_infer_opts o = sd_infer_opts_default(tr->norm);
        st = sd_infer_probs(tr->model, &tr->tape, rgb, w, h, 3, &o, probs);
    }
    if (!st) {
        sd_probs_argmax(probs, classes, w, h, pred, NULL);
        static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0};
        sd_draw_rect(out, 0, 0, out->w, out->h, white);
        const uint8_t *ids = sd_class_set_train_ids(classes);
        double log_c = log((double)classes);
        for (int k = 0; k < cols; k++) {
            int x0 = k * (pw + GAP);
            sd_draw_text(out, x0 + 1, 2, titles[k], black, 1);
            uint8_t *px = out->data;
            for (int y = 0; y < ph; y++)
                for (int x = 0; x < pw; x++) {
                    size_t i = (size_t)(y * step) * w + (size_t)(x * step);
                    uint8_t *d = px + ((size_t)(HEAD + y) * out->w + x0 + x) * 3;
                    if (k == 0) {
                        memcpy(d, rgb + i * 3, 3);
                    } else if (k == 1) {
                        memcpy(d, class_rgb(ids, classes, pred[i]), 3);
                    } else if (k == 2) {
                        memcpy(d, b->label ? class_rgb(ids, classes, b->label[i]) : black, 3);
                    } else { /* normalised entropy, 0 black .. log C white */
                        double e = 0;
                        for (int c = 0; c < classes; c++) {
                            double p = probs[(size_t)c * n + i];
                            e -= p > 0 ? p * log(p) : 0;
                        }
                        double v = 255 * e / log_c;
                        memset(d, (int)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5), 3);
                    }
                }
        }
    }
    free(rgb);
    free(pred);
    free(probs);
    return st;
}

/* An entropy method: ADVENT, or one whose loss terms include an entropy ("ent..."). */
static bool entropy_method(const sd_trainer *tr)
{
    if (!strcmp(tr->method->name, "advent"))
        return true;
    for (int i = 0; i < tr->n_terms; i++)
        if (!strncmp(tr->terms[i].name, "ent", 3))
            return true;
    return false;
}

void sd_tblog_iteration(sd_trainer *tr, float lr)
{
    tblog *t = get(tr);
    if (!t)
        return;
    int64_t step = tr->it + 1;
    sd_status st = sd_tb_scalar(t->w, "train/lr", step, lr);
    for (int i = 0; i < tr->n_terms && !st; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "%s/%s", tr->terms[i].logged_only ? "metric" : "loss", tr->terms[i].name);
        if (isfinite(tr->terms[i].value))
            st = sd_tb_scalar(t->w, tag, step, tr->terms[i].value);
    }
    bool due = t->images_every > 0 && (step % t->images_every == 0 || step == tr->iters);
    for (int d = 0; d < 2 && due && !st; d++) {
        const sd_batch *b = d ? tr->tgt : tr->src;
        if (!b || !b->image || b->n < 1)
            continue;
        sd_image img = {0};
        st = image_strip(tr, b, d == 1 && entropy_method(tr), &img);
        if (!st)
            st = sd_tb_image(t->w, d ? "images/target" : "images/source", step, &img);
        sd_image_free(&img);
    }
    if (!st)
        st = sd_tb_flush(t->w);
    check(tr, st);
}

void sd_tblog_eval(sd_trainer *tr, const sd_eval_result *r)
{
    tblog *t = get(tr);
    if (!t)
        return;
    sd_status st = SD_OK;
    for (int p = SD_PROTOCOL_19; p <= SD_PROTOCOL_13 && !st; p++) {
        char tag[64];
        snprintf(tag, sizeof tag, "val/%s", sd_protocols[p].name);
        if (isfinite(r->miou[p]))
            st = sd_tb_scalar(t->w, tag, tr->it, 100 * r->miou[p]);
    }
    for (int c = 0; c < SD_NUM_CLASSES && !st; c++) {
        char tag[64];
        snprintf(tag, sizeof tag, "val_class_iou/%s", sd_class_names[c]);
        if (isfinite(r->class_iou[c]))
            st = sd_tb_scalar(t->w, tag, tr->it, 100 * r->class_iou[c]);
    }
    if (!st)
        st = sd_tb_flush(t->w);
    check(tr, st);
}

sd_tb *sd_tblog_open_dir(const char *dir, int64_t start_step, const char *who)
{
    sd_tb *tb;
    if (sd_tb_open(&tb, dir)) {
        fprintf(stderr, "%s: no TensorBoard log: %s\n", who, sd_errmsg());
        return NULL;
    }
    if (start_step > 0 && sd_tb_session_start(tb, start_step + 1)) {
        fprintf(stderr, "%s: TensorBoard logging stops: %s\n", who, sd_errmsg());
        sd_tb_close(tb);
        return NULL;
    }
    return tb;
}

void sd_tblog_scalar(sd_tb **tb, const char *tag, int64_t step, double value, const char *who)
{
    if (!*tb || !isfinite(value))
        return;
    if (sd_tb_scalar(*tb, tag, step, value) || sd_tb_flush(*tb)) {
        fprintf(stderr, "%s: TensorBoard logging stops: %s\n", who, sd_errmsg());
        sd_tb_close(*tb);
        *tb = NULL;
    }
}

void sd_tblog_close(sd_trainer *tr)
{
    tblog *t = get(tr);
    if (!t)
        return;
    if (sd_tb_close(t->w))
        fprintf(stderr, "train %s: TensorBoard log: %s\n", tr->method->name, sd_errmsg());
    free(t);
    tr->tb = NULL;
}
