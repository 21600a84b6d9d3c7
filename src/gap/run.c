/* The whole measurement of `segda gap` (sd_gap_run): picks the samples of
 * two datasets, gathers features (a model's layer, the images' colours,
 * files, or thing objects), measures them (the functions of gap.h), prints
 * the table to opts->table and writes gap.json, pca.svg and retrieval.png.
 * The command (src/cli/cmd_gap.c) only parses options; the demo runs it
 * in-process too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/api.h" /* sd_version */
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/gap.h"
#include "segda/infer.h"
#include "segda/progress.h"

enum { THUMB_W = 128, THUMB_H = 64, SHEET_QUERIES = 8 };

static sd_status pick_samples(int n, int m, uint64_t seed, uint64_t stream, int **out, int *out_m)
{
    sd_rng r = sd_rng_fork(seed, stream);
    *out = sd_gap_pick(n, m, &r, out_m);
    return *out ? SD_OK : SD_ERR_NOMEM;
}

/* Adds the labels of the chosen samples of ds to domain `dom` of h. */
static sd_status add_labels(sd_gap_class_hist *h, int dom, const sd_dataset *ds, const int *idx, int m,
                            int threads)
{
    if (!ds->has_labels)
        return sd_fail(SD_ERR_DATA, "%s: no labels, which class_kl needs", ds->spec);
    /* A view of the chosen samples; the entries still belong to ds. */
    sd_dataset sub = *ds;
    sub.n = m;
    sub.samples = sd_malloc(sizeof(sd_sample_entry) * (m > 0 ? m : 1));
    uint64_t *counts = sd_malloc(sizeof(uint64_t) * SD_NUM_CLASSES * (m > 0 ? m : 1));
    sd_status st = SD_OK;
    if (!sub.samples || !counts) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < m; i++)
        sub.samples[i] = ds->samples[idx[i]];
    int n_bad = 0;
    if ((st = sd_dataset_class_pixels(&sub, threads, false, counts, &n_bad)) != SD_OK)
        goto done;
    for (int i = 0; i < m && st == SD_OK; i++) {
        const uint64_t *row = counts + (size_t)i * SD_NUM_CLASSES;
        uint64_t valid = 0;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            valid += row[c];
        if (!valid)
            continue; /* an all-void label says nothing about class shares */
        double prop[SD_NUM_CLASSES];
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            prop[c] = (double)row[c] / valid;
        st = sd_gap_class_hist_add_props(h, dom, prop);
    }
done:
    free(sub.samples);
    free(counts);
    return st;
}

/* ---- features from a model ------------------------------------------------ */

/* The model side of `segda gap`: open a checkpoint, and for one sample
 * return the feature map [C][H][W] of the chosen layer: the image as
 * sd_infer_input builds it (resized to --size if given, normalised as the
 * checkpoint says), one forward pass in eval mode under no_grad, then
 * sd_model_feature(layer). */
typedef struct gap_model {
    const char *ckpt, *layer;
    int net_w, net_h;    /* 0: each image at its own size */
    sd_model *m;
    sd_norm norm;
    sd_tape tape;
    bool tape_ready;
} gap_model;

static sd_status gap_model_open(gap_model *gm, const char *ckpt, const char *layer)
{
    gm->ckpt = ckpt;
    gm->layer = layer;
    sd_status st = sd_model_load(ckpt, false, &gm->m, &gm->norm);
    if (st)
        return st;
    sd_tape_init_on(&gm->tape, 0, sd_device_selected());
    gm->tape_ready = true;
    return SD_OK;
}

static sd_status gap_model_feature_map(gap_model *gm, const sd_sample *s, float **fmap, int *c, int *h, int *w)
{
    *fmap = NULL;
    *c = *h = *w = 0;
    float *x = NULL;
    int iw = gm->net_w ? gm->net_w : s->w, ih = gm->net_h ? gm->net_h : s->h;
    sd_status st = sd_infer_input(s->image, s->w, s->h, 3, iw, ih, gm->norm, &x);
    if (st)
        return sd_fail_prefix(st, "%s", s->stem);
    sd_tape_reset(&gm->tape);
    sd_tape_no_grad_begin(&gm->tape);
    sd_model_out out;
    sd_tensor *xt = sd_tensor_wrap(&gm->tape, 4, (int[]){1, 3, ih, iw}, x);
    sd_tensor *f = NULL;
    if (!xt)
        st = gm->tape.status ? gm->tape.status : SD_ERR_NOMEM;
    else if ((st = sd_model_forward(gm->m, &gm->tape, xt, false, &out)) == SD_OK &&
             !(f = sd_model_feature(gm->m, &out, gm->layer)))
        st = sd_fail(SD_ERR_ARG, "--layer %s: %s has no such feature map (expected layer4, layer3, fc7/conv5 for "
                     "VGG, logits, softmax%s)", gm->layer, gm->ckpt, out.aux_logits ? ", aux_logits" : "");
    sd_tape_no_grad_end(&gm->tape);
    if (!st && (f->ndim != 4 || f->shape[0] != 1))
        st = sd_fail(SD_ERR_SHAPE, "--layer %s: expected a [1, C, H, W] feature map", gm->layer);
    if (!st) {
        size_t n = (size_t)f->shape[1] * f->shape[2] * f->shape[3];
        if (!(*fmap = sd_malloc(n * sizeof(float))))
            st = SD_ERR_NOMEM;
        else {
            st = sd_tensor_to_host(f, *fmap);   /* (from the device of --device) */
            *c = f->shape[1];
            *h = f->shape[2];
            *w = f->shape[3];
        }
    }
    sd_tape_reset(&gm->tape);
    free(x);
    return st;
}

static void gap_model_close(gap_model *gm)
{
    if (gm->tape_ready)
        sd_tape_free(&gm->tape);
    sd_model_free(gm->m);
    gm->m = NULL;
    gm->tape_ready = false;
}

/* The --rgb baseline: the image itself as a 3-channel feature map, box
 * downsampled 8x (colour statistics only; no model needed). */
static sd_status rgb_feature_map(gap_model *gm, const sd_sample *s, float **fmap, int *c, int *h, int *w)
{
    (void)gm;
    int fh = s->h / 8 > 0 ? s->h / 8 : 1, fw = s->w / 8 > 0 ? s->w / 8 : 1;
    float *f = sd_malloc(sizeof(float) * 3 * (size_t)fh * fw);
    if (!f)
        return SD_ERR_NOMEM;
    for (int y = 0; y < fh; y++) {
        int y0 = (int)((long)y * s->h / fh), y1 = (int)((long)(y + 1) * s->h / fh);
        for (int x = 0; x < fw; x++) {
            int x0 = (int)((long)x * s->w / fw), x1 = (int)((long)(x + 1) * s->w / fw);
            for (int ch = 0; ch < 3; ch++) {
                double sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        sum += s->image[((size_t)yy * s->w + xx) * 3 + ch];
                f[((size_t)ch * fh + y) * fw + x] = (float)(sum / ((double)(y1 - y0) * (x1 - x0)) / 255.0);
            }
        }
    }
    *fmap = f;
    *c = 3;
    *h = fh;
    *w = fw;
    return SD_OK;
}

typedef sd_status (*feature_map_fn)(gap_model *gm, const sd_sample *s, float **fmap, int *c, int *h, int *w);

/* Box-filtered thumbnail of an RGB image (aspect not kept: every tile of the
 * contact sheet must have one size). */
static sd_status make_thumb(const uint8_t *rgb, int w, int h, sd_image *t)
{
    sd_status st = sd_image_alloc(t, THUMB_W, THUMB_H, 3, 8);
    if (st)
        return st;
    uint8_t *o = t->data;
    for (int y = 0; y < THUMB_H; y++) {
        int y0 = (int)((long)y * h / THUMB_H), y1 = (int)((long)(y + 1) * h / THUMB_H);
        if (y1 <= y0)
            y1 = y0 + 1;
        for (int x = 0; x < THUMB_W; x++) {
            int x0 = (int)((long)x * w / THUMB_W), x1 = (int)((long)(x + 1) * w / THUMB_W);
            if (x1 <= x0)
                x1 = x0 + 1;
            for (int ch = 0; ch < 3; ch++) {
                long s = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        s += rgb[((size_t)yy * w + xx) * 3 + ch];
                o[((size_t)y * THUMB_W + x) * 3 + ch] = (uint8_t)(s / ((long)(y1 - y0) * (x1 - x0)));
            }
        }
    }
    return SD_OK;
}

/* Rows of one domain from the model: one per image (global average) or
 * `pixels` per image; thumb[i] is the image of sample i of idx, and row r
 * belongs to image row_img[r] with its position mark[2r], mark[2r+1] in
 * thumbnail coordinates (-1 for averaged rows). */
typedef struct gap_rows {
    float *x;
    int n, d;
    sd_image *thumb;     /* [n_img] */
    int n_img;
    int *row_img;        /* [n] */
    int *mark;           /* [2n] */
} gap_rows;

static void gap_rows_free(gap_rows *r)
{
    free(r->x);
    if (r->thumb)
        for (int i = 0; i < r->n_img; i++)
            sd_image_free(&r->thumb[i]);
    free(r->thumb);
    free(r->row_img);
    free(r->mark);
    memset(r, 0, sizeof *r);
}

static sd_status model_rows(gap_model *gm, feature_map_fn fmap_of, const sd_dataset *ds, const int *idx, int m,
                            int pixels, uint64_t seed, uint64_t stream, gap_rows *out)
{
    int per = pixels > 0 ? pixels : 1;
    sd_status st = SD_OK;
    memset(out, 0, sizeof *out);
    out->thumb = sd_calloc(m > 0 ? m : 1, sizeof(sd_image));
    out->row_img = sd_malloc(sizeof(int) * (size_t)m * per + 1);
    out->mark = sd_malloc(sizeof(int) * 2 * (size_t)m * per + 1);
    int *pos = sd_malloc(sizeof(int) * 2 * per);
    if (!out->thumb || !out->row_img || !out->mark || !pos) {
        free(pos);
        gap_rows_free(out);
        return SD_ERR_NOMEM;
    }
    out->n_img = m;
    sd_rng rng = sd_rng_fork(seed, stream);
    sd_progress pr;
    sd_progress_init(&pr, "gap features", "img", m, SD_PROGRESS_AUTO);
    for (int i = 0; i < m && st == SD_OK; i++) {
        sd_progress_update(&pr, i);
        sd_sample s = {0};
        float *fmap = NULL;
        int c, h, w;
        if ((st = sd_dataset_read(ds, idx[i], &s)) != SD_OK)
            break;
        st = fmap_of(gm, &s, &fmap, &c, &h, &w);
        if (st == SD_OK && out->d && c != out->d)
            st = sd_fail(SD_ERR_SHAPE, "%s: layer %s has %d channels on sample %s, %d before", ds->spec,
                         gm->layer ? gm->layer : "rgb", c, s.stem, out->d);
        if (st == SD_OK && !out->x) {
            out->d = c;
            if (!(out->x = sd_malloc(sizeof(float) * (size_t)m * per * c)))
                st = SD_ERR_NOMEM;
        }
        if (st == SD_OK)
            st = sd_gap_pool_features(fmap, c, h, w, pixels, &rng, out->x + (size_t)out->n * c, pos);
        if (st == SD_OK)
            st = make_thumb(s.image, s.w, s.h, &out->thumb[i]);
        for (int k = 0; k < per && st == SD_OK; k++) {
            int r = out->n + k;
            out->row_img[r] = i;
            out->mark[2 * r] = pixels > 0 ? (int)((pos[2 * k] + 0.5) * THUMB_W / w) : -1;
            out->mark[2 * r + 1] = pixels > 0 ? (int)((pos[2 * k + 1] + 0.5) * THUMB_H / h) : -1;
        }
        if (st == SD_OK)
            out->n += per;
        free(fmap);
        sd_sample_free(&s);
    }
    if (st == SD_OK) {
        sd_progress_update(&pr, m);
        sd_progress_finish(&pr);
    }
    free(pos);
    if (st != SD_OK)
        gap_rows_free(out);
    return st;
}

/* ---- output ------------------------------------------------------------------ */

static void print_table(FILE *f, const sd_gap_result *r, const char *a, const char *b, const sd_gap_options *o,
                        int bins, const int *n_img)
{
    fprintf(f, "segda gap: A = %s, B = %s\n", a, b);
    if (r->has_features) {
        fprintf(f, "  features: %d rows of A, %d of B, %d dims\n", r->n_a, r->n_b, r->d);
        fprintf(f, "  %-24s %10.4f   (%d-fold held-out; 0.5 = indistinguishable)\n", "svm_linear_accuracy",
               r->svm_linear_accuracy, o->folds);
        fprintf(f, "  %-24s %10.4f   (cubic kernel)\n", "svm_poly_accuracy", r->svm_poly_accuracy);
        fprintf(f, "  %-24s %10.6f   (MMD^2_u, Gaussian kernel, sigma %.4g)\n", "mmd", r->mmd, r->mmd_sigma);
        fprintf(f, "  %-24s %10.4f   (%d permutations)\n", "mmd_p", r->mmd_p, o->n_perm);
        fprintf(f, "  %-24s %10.4f   (k = %d, %s; %.3f = mixed, 0 = apart)\n", "retrieval_other_domain",
               r->retrieval_other_domain, o->k, o->metric == SD_GAP_METRIC_COSINE ? "cosine" : "L2",
               (double)r->n_b / (r->n_a + r->n_b - 1));
    }
    if (r->has_class_kl) {
        fprintf(f, "  class_kl: KL(A||B) in nats, %d bins on [0, 1], +%g per bin; %d images of A, %d of B\n", bins,
               SD_GAP_KL_ALPHA, n_img[0], n_img[1]);
        double mean = 0;
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            fprintf(f, "    %-16s %8.4f\n", sd_class_names[c], r->class_kl[c]);
            mean += r->class_kl[c];
        }
        fprintf(f, "    %-16s %8.4f\n", "(mean)", mean / SD_NUM_CLASSES);
    }
}

/* gap.json's "setup": the inputs and options that produced the numbers,
 * with the segda version, precision and device. */
typedef struct gap_setup {
    int n;
    const char *key[32];
    char val[32][512];
} gap_setup;

static void setup_add(gap_setup *s, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void setup_add(gap_setup *s, const char *key, const char *fmt, ...)
{
    if (s->n >= 32)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->val[s->n], sizeof s->val[s->n], fmt, ap);
    va_end(ap);
    s->key[s->n++] = key;
}

/* --objects: object rows of both datasets, the SVM accuracies per kind. */
static sd_status gap_objects(const char *const *spec, int which, int crop, bool lanemarking,
                             const sd_gap_options *o, const char *json, FILE *table)
{
    sd_dataset ds[2];
    memset(ds, 0, sizeof ds);
    sd_status st = SD_OK;
    for (int k = 0; k < 2 && !st; k++) {
        sd_dataset_opts dopts = {.synthia_lanemarking_as_road = lanemarking};
        st = sd_dataset_open(&ds[k], spec[k], NULL, &dopts);
    }
    double acc[2][2] = {{-1, -1}, {-1, -1}};
    int rows[2] = {0, 0}, dims[2] = {0, 0};
    if (table)
        fprintf(table, "segda gap --objects: A = %s, B = %s; SVM domain accuracy (%d-fold held-out; 0.5 = indistinguishable)\n",
           spec[0], spec[1], o->folds);
    for (int kind = 0; kind < 2 && !st; kind++) {
        if (!(which & (1 << kind)))
            continue;
        float *x[2] = {NULL, NULL};
        int n[2] = {0, 0}, d = 0;
        for (int k = 0; k < 2 && !st; k++)
            st = sd_gap_object_features(&ds[k], (sd_gap_object_kind)kind, crop, 64, &x[k], &n[k], &d);
        if (!st && (n[0] < o->folds || n[1] < o->folds))
            st = sd_fail(SD_ERR_DATA, "--objects: %d objects in A, %d in B: the %d-fold SVMs need at least %d in each",
                         n[0], n[1], o->folds, o->folds);
        sd_gap_result r = {0};
        if (!st)
            st = sd_gap_measure(x[0], n[0], x[1], n[1], d, o, &r);
        if (!st) {
            acc[kind][0] = r.svm_linear_accuracy, acc[kind][1] = r.svm_poly_accuracy;
            rows[kind] = r.n_a, dims[kind] = d;
            if (table)
                fprintf(table, "  %-8s linear %.4f  cubic %.4f   (%d objects per domain of %d + %d, %d dims)\n",
                   sd_gap_object_kind_name((sd_gap_object_kind)kind), r.svm_linear_accuracy, r.svm_poly_accuracy,
                   r.n_a, n[0], n[1], d);
        }
        sd_gap_result_free(&r);
        free(x[0]), free(x[1]);
    }
    if (!st && json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            st = sd_fail(SD_ERR_IO, "%s: cannot create", json);
        } else {
            fprintf(f, "{\"objects\": {");
            for (int kind = 0, first = 1; kind < 2; kind++)
                if (acc[kind][0] >= 0) {
                    fprintf(f, "%s\"%s\": {\"svm_linear_accuracy\": %.6f, \"svm_poly_accuracy\": %.6f, "
                               "\"rows_per_domain\": %d, \"dims\": %d}", first ? "" : ", ",
                            sd_gap_object_kind_name((sd_gap_object_kind)kind), acc[kind][0], acc[kind][1], rows[kind],
                            dims[kind]);
                    first = 0;
                }
            fprintf(f, "}}\n");
            if (fclose(f))
                st = sd_fail(SD_ERR_IO, "%s: write error", json);
        }
    }
    sd_dataset_free(&ds[0]);
    sd_dataset_free(&ds[1]);
    return st;
}

void sd_gap_run_opts_init(sd_gap_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->crop = 16;
    o->n_images = -1;
    o->bins = SD_GAP_KL_BINS;
    o->threads = 4;
    sd_gap_options_default(&o->measure);
}

const char *sd_gap_run_check(const sd_gap_run_opts *r)
{
    const char *spec[2] = {r->a, r->b}, *feat[2] = {r->features_a, r->features_b};
    int modes = (r->model != NULL) + (feat[0] || feat[1]) + r->labels_only + r->rgb + (r->objects != 0);
    if (modes != 1)
        return "choose one of --model, --rgb, --features-a/--features-b, --labels-only, --objects";
    if (r->objects && (!spec[0] || !spec[1]))
        return "--objects needs --a SPEC and --b SPEC";
    if (r->rgb && (!spec[0] || !spec[1]))
        return "--rgb needs --a SPEC and --b SPEC";
    if (r->labels_only && (!spec[0] || !spec[1]))
        return "--labels-only needs --a SPEC and --b SPEC";
    if (r->model && (!r->layer || !spec[0] || !spec[1]))
        return "--model needs --layer NAME, --a SPEC and --b SPEC";
    if ((feat[0] || feat[1]) && (!feat[0] || !feat[1]))
        return "give both --features-a and --features-b";
    if ((feat[0] || feat[1]) && (!spec[0] != !spec[1]))
        return "with feature files, give both --a and --b (for class_kl) or neither";
    if (r->pixels && !r->model && !r->rgb)
        return "--pixels works with --model or --rgb only";
    if (r->net_w && !r->model)
        return "--size works with --model only";
    return NULL;
}

sd_status sd_gap_run(const sd_gap_run_opts *r)
{
    const char *why = sd_gap_run_check(r);
    if (why)
        return sd_fail(SD_ERR_ARG, "gap: %s", why);
    const char *spec[2] = {r->a, r->b}, *ckpt = r->model, *layer = r->layer;
    const char *feat[2] = {r->features_a, r->features_b}, *out_dir = r->out_dir, *json = r->json;
    bool labels_only = r->labels_only, rgb = r->rgb, lanemarking = r->lanemarking_as_road;
    int n_img = r->n_images, pixels = r->pixels, bins = r->bins, threads = r->threads, net_w = r->net_w,
        net_h = r->net_h;
    sd_gap_options o = r->measure;
    FILE *table = r->table;
    if (r->objects)
        return gap_objects(spec, r->objects, r->crop, lanemarking, &o, json, table);

    sd_gap_result res = {0};
    sd_dataset ds[2];
    memset(ds, 0, sizeof ds);
    int *idx[2] = {NULL, NULL}, m[2] = {0, 0};
    float *fx[2] = {NULL, NULL};
    int fn[2] = {0, 0}, fd[2] = {0, 0};
    gap_rows rows[2];
    memset(rows, 0, sizeof rows);
    gap_model gm = {0};
    bool have_model = false;
    const sd_image **thumbs = NULL;
    int *marks = NULL;
    sd_status st = SD_OK;
    int n_kl_img[2] = {0, 0};

    /* Datasets: their labels give class_kl in every mode that names them. */
    if (spec[0]) {
        for (int k = 0; k < 2 && st == SD_OK; k++) {
            sd_dataset_opts dopts = {.synthia_lanemarking_as_road = lanemarking};
            if ((st = sd_dataset_open(&ds[k], spec[k], NULL, &dopts)) != SD_OK)
                break;
            if (ds[k].n == 0) {
                st = sd_fail(SD_ERR_DATA, "--%c %s: no samples", 'a' + k, spec[k]);
                break;
            }
            int want = n_img > 0 ? n_img : ckpt || rgb ? SD_GAP_MODEL_IMAGES : 0;
            st = pick_samples(ds[k].n, want, o.seed, 0x5a3 + k, &idx[k], &m[k]);
        }
        if (st == SD_OK && (labels_only || (ds[0].has_labels && ds[1].has_labels))) {
            sd_gap_class_hist h;
            st = sd_gap_class_hist_init(&h, bins);
            for (int k = 0; k < 2 && st == SD_OK; k++)
                st = add_labels(&h, k, &ds[k], idx[k], m[k], threads);
            if (st == SD_OK)
                st = sd_gap_class_hist_kl(&h, SD_GAP_KL_ALPHA, res.class_kl);
            if (st == SD_OK) {
                res.has_class_kl = true;
                n_kl_img[0] = h.n_images[0];
                n_kl_img[1] = h.n_images[1];
            }
        }
    }

    /* Features: from files or from the model. */
    const float *xa = NULL, *xb = NULL;
    int na = 0, nb = 0, d = 0;
    if (st == SD_OK && feat[0]) {
        for (int k = 0; k < 2 && st == SD_OK; k++)
            st = sd_gap_features_read(feat[k], &fx[k], &fn[k], &fd[k]);
        if (st == SD_OK && fd[0] != fd[1])
            st = sd_fail(SD_ERR_SHAPE, "--features-a %s has %d columns but --features-b %s has %d", feat[0], fd[0],
                         feat[1], fd[1]);
        xa = fx[0], xb = fx[1], na = fn[0], nb = fn[1], d = fd[0];
    } else if (st == SD_OK && (ckpt || rgb)) {
        gm.net_w = net_w;
        gm.net_h = net_h;
        if (ckpt && (st = gap_model_open(&gm, ckpt, layer)) == SD_OK)
            have_model = true;
        for (int k = 0; k < 2 && st == SD_OK; k++)
            st = model_rows(&gm, ckpt ? gap_model_feature_map : rgb_feature_map, &ds[k], idx[k], m[k], pixels,
                            o.seed, 0x7e1 + k, &rows[k]);
        if (st == SD_OK && rows[0].d != rows[1].d)
            st = sd_fail(SD_ERR_SHAPE, "layer %s: %d channels on A, %d on B", layer ? layer : "rgb", rows[0].d,
                         rows[1].d);
        xa = rows[0].x, xb = rows[1].x, na = rows[0].n, nb = rows[1].n, d = rows[0].d;
    }
    bool images = ckpt || rgb; /* rows that know their images (for the contact sheet) */
    if (st == SD_OK && xa)
        st = sd_gap_measure(xa, na, xb, nb, d, &o, &res);

    if (st == SD_OK && table)
        print_table(table, &res, spec[0] ? spec[0] : feat[0], spec[1] ? spec[1] : feat[1], &o, bins, n_kl_img);
    if (st == SD_OK && out_dir) /* first: --json may point into it */
        if ((st = sd_mkdir_p(out_dir)))
            sd_fail_prefix(st, "--out");
    gap_setup setup = {0};
    setup_add(&setup, "a", "%s", spec[0] ? spec[0] : feat[0] ? feat[0] : "");
    setup_add(&setup, "b", "%s", spec[1] ? spec[1] : feat[1] ? feat[1] : "");
    setup_add(&setup, "mode", "%s", ckpt ? "model" : rgb ? "rgb" : labels_only ? "labels-only" : "features");
    if (ckpt)
        setup_add(&setup, "model", "%s", ckpt);
    if (layer)
        setup_add(&setup, "layer", "%s", layer);
    if (net_w)
        setup_add(&setup, "size", "%dx%d", net_w, net_h);
    if (n_img > 0 || ckpt || rgb)
        setup_add(&setup, "images", "%d", n_img > 0 ? n_img : SD_GAP_MODEL_IMAGES);
    if (pixels)
        setup_add(&setup, "pixels", "%d", pixels);
    setup_add(&setup, "max-rows", "%d", o.max_per_domain);
    setup_add(&setup, "k", "%d", o.k);
    setup_add(&setup, "folds", "%d", o.folds);
    setup_add(&setup, "perm", "%d", o.n_perm);
    setup_add(&setup, "bins", "%d", bins);
    setup_add(&setup, "metric", "%s", o.metric == SD_GAP_METRIC_COSINE ? "cosine" : "l2");
    setup_add(&setup, "seed", "%llu", (unsigned long long)o.seed);
    setup_add(&setup, "threads", "%d", threads);
    setup_add(&setup, "segda_version", "%s", sd_version());
    setup_add(&setup, "precision", "%s", sd_dtype_name(sd_precision()));
    setup_add(&setup, "device", "%s", sd_device_name(sd_device_selected()));
    const char *setup_val[32];
    for (int i = 0; i < setup.n; i++)
        setup_val[i] = setup.val[i];
    if (st == SD_OK && json)
        st = sd_gap_result_write_json_setup(json, &res, setup.n, setup.key, setup_val);
    if (st == SD_OK && out_dir) {
        char path[4096];
        if (res.has_features) {
            int n = res.n_a + res.n_b;
            uint8_t *dom = sd_malloc((size_t)n);
            if (!dom)
                st = SD_ERR_NOMEM;
            for (int i = 0; dom && i < n; i++)
                dom[i] = i >= res.n_a;
            snprintf(path, sizeof path, "%s/pca.svg", out_dir);
            if (st == SD_OK)
                st = sd_gap_scatter_svg(path, res.pca, dom, n, spec[0] ? spec[0] : feat[0],
                                        spec[1] ? spec[1] : feat[1], "PCA of the features (standardised)");
            /* The contact sheet needs the images behind the rows: model mode only. */
            if (st == SD_OK && images) {
                thumbs = sd_malloc(sizeof(*thumbs) * n);
                marks = sd_malloc(sizeof(int) * 2 * n);
                int nq = res.n_a < SHEET_QUERIES ? res.n_a : SHEET_QUERIES, query[SHEET_QUERIES];
                if (!thumbs || !marks)
                    st = SD_ERR_NOMEM;
                for (int i = 0; st == SD_OK && i < n; i++) {
                    int k = i >= res.n_a, r = k ? res.rows_b[i - res.n_a] : res.rows_a[i];
                    thumbs[i] = &rows[k].thumb[rows[k].row_img[r]];
                    marks[2 * i] = rows[k].mark[2 * r];
                    marks[2 * i + 1] = rows[k].mark[2 * r + 1];
                }
                for (int q = 0; q < nq; q++) /* spread over A's rows */
                    query[q] = (int)((long)q * res.n_a / nq);
                int *nbr = sd_malloc(sizeof(int) * (size_t)SHEET_QUERIES * res.k);
                if (!nbr)
                    st = SD_ERR_NOMEM;
                for (int q = 0; st == SD_OK && q < nq; q++)
                    memcpy(nbr + (size_t)q * res.k, res.nbr + (size_t)query[q] * res.k, sizeof(int) * res.k);
                snprintf(path, sizeof path, "%s/retrieval.png", out_dir);
                if (st == SD_OK)
                    st = sd_gap_contact_sheet(path, thumbs, dom, query, nq, nbr, res.k, marks);
                free(nbr);
            }
            free(dom);
        }
        snprintf(path, sizeof path, "%s/gap.json", out_dir);
        if (st == SD_OK)
            st = sd_gap_result_write_json_setup(path, &res, setup.n, setup.key, setup_val);
    }

    if (have_model)
        gap_model_close(&gm);
    for (int k = 0; k < 2; k++) {
        sd_dataset_free(&ds[k]);
        free(idx[k]);
        free(fx[k]);
        gap_rows_free(&rows[k]);
    }
    free(thumbs);
    free(marks);
    sd_gap_result_free(&res);
    return st;
}

