/* segda gap: measures the gap between two datasets: SVM domain accuracy,
 * MMD, retrieval and PCA on features (from a model's layer or from files),
 * and per-class KL of pixel-proportion histograms from labels alone. The
 * measures are in src/gap/; this file gathers features, prints, writes. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/api.h" /* sd_version */
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/gap.h"
#include "segda/infer.h"

enum { THUMB_W = 128, THUMB_H = 64, SHEET_QUERIES = 8, DEFAULT_MODEL_IMAGES = 200 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda gap --model CKPT --layer NAME --a SPEC --b SPEC [options]\n"
            "       segda gap --features-a FILE --features-b FILE [--a SPEC --b SPEC] [options]\n"
            "       segda gap --rgb --a SPEC --b SPEC [options]\n"
            "       segda gap --labels-only --a SPEC --b SPEC [--json FILE]\n"
            "       segda gap --objects shape|texture|both --a SPEC --b SPEC [--crop N] [options]\n"
            "\n"
            "Measures the gap between domain A and domain B: held-out accuracy of a linear\n"
            "(liblinear) and a cubic-kernel (libsvm) SVM telling them apart (stratified k-fold,\n"
            "features standardised; 0.5 = indistinguishable), the unbiased MMD^2 with a Gaussian\n"
            "kernel (median-heuristic bandwidth) and its permutation p-value, the fraction of\n"
            "the k nearest neighbours of A rows that come from B (0.5 = mixed, 0 = apart), a\n"
            "PCA plot, and per class the KL divergence KL(A||B) in nats between histograms of\n"
            "the class's pixel share per image (labels only; 20 bins on [0, 1], 0.01 of mass\n"
            "added to every bin of the normalised histogram so KL stays finite).\n"
            "\n"
            "  --a SPEC, --b SPEC   datasets: gta5:ROOT, synthia:ROOT, cityscapes:ROOT[:SPLIT],\n"
            "                       folder:ROOT (their labels give class_kl)\n"
            "  --model CKPT         checkpoint whose features are measured (with --layer)\n"
            "  --layer NAME         layer4, layer3, conv5/fc7 (VGG), logits, softmax, aux_logits\n"
            "  --size WxH           with --model: resize images to WxH for the network (PIL\n"
            "                       bicubic; default: each image at its own size)\n"
            "  --features-a FILE    A's features instead of a model: a 2-D float32/float64 .npy\n"
            "  --features-b FILE    (numpy.save) or text, one row per line, numbers separated\n"
            "                       by commas or blanks, '#' lines skipped\n"
            "  --rgb                features without a model: the images' colours, box\n"
            "                       downsampled 8x (a pixel-statistics baseline)\n"
            "  --labels-only        only class_kl, from --a and --b labels\n"
            "  --objects KIND       the shape-vs-texture test of Saleh et al. (ECCV 2018): one row per\n"
            "                       thing instance (instance files needed: segda synth writes them) of\n"
            "                       at least 64 pixels, its box squared and sampled at --crop N x N\n"
            "                       (default 16): shape = the silhouette (0/1), texture = the colours\n"
            "                       inside it; the SVMs' domain accuracy for each KIND (both: the two)\n"
            "  --lanemarking-as-road SYNTHIA labels: lane markings (id 22) are road (CBST/CRST)\n"
            "  --n N                images used per dataset, a seeded sample (default: all for\n"
            "                       labels, %d with --model or --rgb)\n"
            "  --pixels K           with --model/--rgb: K feature-map positions per image (seeded)\n"
            "                       instead of one globally averaged row per image\n"
            "  --max-rows M         feature rows per domain (default 1000); both domains keep the\n"
            "                       same number, min(rows of A, rows of B, M), a seeded sample\n"
            "  --k K                retrieval neighbours (default 5)\n"
            "  --metric l2|cosine   retrieval distance on standardised features (default l2)\n"
            "  --folds F            SVM cross-validation folds (default 5)\n"
            "  --perm P             MMD permutations (default 200)\n"
            "  --bins B             histogram bins for class_kl (default 20)\n"
            "  --seed S             seed of every sample, split and permutation (default 0)\n"
            "  --out DIR            write pca.svg, retrieval.png (--model/--rgb) and gap.json\n"
            "  --json FILE          write the numbers as JSON\n"
            "  --threads N          label files read in parallel (default 4)\n"
            "  --precision P        f32 (default), bf16 or bf16-emulated: compute dtype of a model's convolutions\n"
            "  -h, --help           this help\n",
            DEFAULT_MODEL_IMAGES);
}

/* A seeded choice of m of the n samples (all when m <= 0 or m >= n), in
 * dataset order. */
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
    sd_tape_init(&gm->tape, 0);
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
            memcpy(*fmap, f->data, n * sizeof(float));
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
    for (int i = 0; i < m && st == SD_OK; i++) {
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
    free(pos);
    if (st != SD_OK)
        gap_rows_free(out);
    return st;
}

/* ---- output ------------------------------------------------------------------ */

static sd_status mkdir_p(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return sd_fail(SD_ERR_ARG, "--out: path too long");
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char keep = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return sd_fail(SD_ERR_IO, "--out %s: cannot create %s: %s", dir, buf, strerror(errno));
            *p = keep;
            if (!keep)
                break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
        return sd_fail(SD_ERR_IO, "--out %s: not a directory", dir);
    return SD_OK;
}

static void print_table(const sd_gap_result *r, const char *a, const char *b, const sd_gap_options *o, int bins,
                        const int *n_img)
{
    printf("segda gap: A = %s, B = %s\n", a, b);
    if (r->has_features) {
        printf("  features: %d rows of A, %d of B, %d dims\n", r->n_a, r->n_b, r->d);
        printf("  %-24s %10.4f   (%d-fold held-out; 0.5 = indistinguishable)\n", "svm_linear_accuracy",
               r->svm_linear_accuracy, o->folds);
        printf("  %-24s %10.4f   (cubic kernel)\n", "svm_poly_accuracy", r->svm_poly_accuracy);
        printf("  %-24s %10.6f   (MMD^2_u, Gaussian kernel, sigma %.4g)\n", "mmd", r->mmd, r->mmd_sigma);
        printf("  %-24s %10.4f   (%d permutations)\n", "mmd_p", r->mmd_p, o->n_perm);
        printf("  %-24s %10.4f   (k = %d, %s; %.3f = mixed, 0 = apart)\n", "retrieval_other_domain",
               r->retrieval_other_domain, o->k, o->metric == SD_GAP_METRIC_COSINE ? "cosine" : "L2",
               (double)r->n_b / (r->n_a + r->n_b - 1));
    }
    if (r->has_class_kl) {
        printf("  class_kl: KL(A||B) in nats, %d bins on [0, 1], +%g per bin; %d images of A, %d of B\n", bins,
               SD_GAP_KL_ALPHA, n_img[0], n_img[1]);
        double mean = 0;
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            printf("    %-16s %8.4f\n", sd_class_names[c], r->class_kl[c]);
            mean += r->class_kl[c];
        }
        printf("    %-16s %8.4f\n", "(mean)", mean / SD_NUM_CLASSES);
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
static int gap_objects(const char *const *spec, int which, int crop, bool lanemarking, const sd_gap_options *o,
                       const char *json)
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
    printf("segda gap --objects: A = %s, B = %s; SVM domain accuracy (%d-fold held-out; 0.5 = indistinguishable)\n",
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
            printf("  %-8s linear %.4f  cubic %.4f   (%d objects per domain of %d + %d, %d dims)\n",
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
    return st ? cli_fail("gap") : 0;
}

int cli_gap(int argc, char **argv)
{
    enum {
        OPT_A = 256, OPT_B, OPT_MODEL, OPT_LAYER, OPT_FA, OPT_FB, OPT_LABELS, OPT_N, OPT_PIXELS, OPT_MAXROWS,
        OPT_K, OPT_METRIC, OPT_FOLDS, OPT_PERM, OPT_BINS, OPT_SEED, OPT_OUT, OPT_JSON, OPT_THREADS, OPT_RGB,
        OPT_SIZE, OPT_LANE, OPT_OBJECTS, OPT_CROP,
    };
    static const struct option longopts[] = {
        {"a", required_argument, 0, OPT_A},           {"b", required_argument, 0, OPT_B},
        {"model", required_argument, 0, OPT_MODEL},   {"layer", required_argument, 0, OPT_LAYER},
        {"features-a", required_argument, 0, OPT_FA}, {"features-b", required_argument, 0, OPT_FB},
        {"labels-only", no_argument, 0, OPT_LABELS},  {"n", required_argument, 0, OPT_N},
        {"pixels", required_argument, 0, OPT_PIXELS}, {"max-rows", required_argument, 0, OPT_MAXROWS},
        {"k", required_argument, 0, OPT_K},           {"metric", required_argument, 0, OPT_METRIC},
        {"folds", required_argument, 0, OPT_FOLDS},   {"perm", required_argument, 0, OPT_PERM},
        {"bins", required_argument, 0, OPT_BINS},     {"seed", required_argument, 0, OPT_SEED},
        {"out", required_argument, 0, OPT_OUT},       {"json", required_argument, 0, OPT_JSON},
        {"threads", required_argument, 0, OPT_THREADS}, {"precision", required_argument, 0, 'P'}, {"rgb", no_argument, 0, OPT_RGB},
        {"size", required_argument, 0, OPT_SIZE},      {"lanemarking-as-road", no_argument, 0, OPT_LANE},
        {"objects", required_argument, 0, OPT_OBJECTS}, {"crop", required_argument, 0, OPT_CROP},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *spec[2] = {NULL, NULL}, *ckpt = NULL, *layer = NULL, *feat[2] = {NULL, NULL};
    const char *out_dir = NULL, *json = NULL;
    bool labels_only = false, rgb = false, lanemarking = false;
    int n_img = -1, pixels = 0, bins = SD_GAP_KL_BINS, threads = 4, net_w = 0, net_h = 0, objects = 0, crop = 16;
    sd_gap_options o;
    sd_gap_options_default(&o);
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *what = NULL;
        switch (c) {
        case OPT_A: spec[0] = optarg; break;
        case OPT_B: spec[1] = optarg; break;
        case OPT_MODEL: ckpt = optarg; break;
        case OPT_LAYER: layer = optarg; break;
        case OPT_FA: feat[0] = optarg; break;
        case OPT_FB: feat[1] = optarg; break;
        case OPT_LABELS: labels_only = true; break;
        case OPT_LANE: lanemarking = true; break;
        case OPT_RGB: rgb = true; break;
        case OPT_OBJECTS:
            objects = !strcmp(optarg, "shape") ? 1 : !strcmp(optarg, "texture") ? 2 : !strcmp(optarg, "both") ? 3 : 0;
            if (!objects)
                what = "--objects: expected shape, texture or both";
            break;
        case OPT_CROP: if (!cli_parse_int(optarg, 2, 256, &crop)) what = "--crop: expected 2..256"; break;
        case OPT_SIZE: {
            char tail;
            if (sscanf(optarg, "%dx%d%c", &net_w, &net_h, &tail) != 2 || net_w < 8 || net_h < 8 || net_w > 16384 ||
                net_h > 16384)
                what = "--size: expected WxH (8..16384)";
            break;
        }
        case OPT_N: if (!cli_parse_int(optarg, 1, 1 << 30, &n_img)) what = "--n: expected an integer >= 1"; break;
        case OPT_PIXELS: if (!cli_parse_int(optarg, 1, 1 << 20, &pixels)) what = "--pixels: expected an integer >= 1"; break;
        case OPT_MAXROWS: if (!cli_parse_int(optarg, 10, 1 << 16, &o.max_per_domain)) what = "--max-rows: expected 10..65536"; break;
        case OPT_K: if (!cli_parse_int(optarg, 1, 1000, &o.k)) what = "--k: expected 1..1000"; break;
        case OPT_FOLDS: if (!cli_parse_int(optarg, 2, 100, &o.folds)) what = "--folds: expected 2..100"; break;
        case OPT_PERM: if (!cli_parse_int(optarg, 0, 1000000, &o.n_perm)) what = "--perm: expected 0..1000000"; break;
        case OPT_BINS: if (!cli_parse_int(optarg, 1, SD_GAP_MAX_BINS, &bins)) what = "--bins: expected 1..100"; break;
        case 'P':
            if (cli_precision("gap", usage, optarg))
                return 2;
            break;
        case OPT_THREADS: if (!cli_parse_int(optarg, 1, 1024, &threads)) what = "--threads: expected 1..1024"; break;
        case OPT_SEED:
            if (!cli_parse_seed(optarg, &o.seed))
                what = "--seed: expected a non-negative integer";
            break;
        case OPT_METRIC:
            if (!strcmp(optarg, "l2") || !strcmp(optarg, "L2"))
                o.metric = SD_GAP_METRIC_L2;
            else if (!strcmp(optarg, "cosine"))
                o.metric = SD_GAP_METRIC_COSINE;
            else
                what = "--metric: expected l2 or cosine";
            break;
        case OPT_OUT: out_dir = optarg; break;
        case OPT_JSON: json = optarg; break;
        case 'h': usage(stdout); return 0;
        default: bad = 1; break;
        }
        if (what) {
            fprintf(stderr, "segda gap: %s (got '%s')\n", what, optarg);
            bad = 1;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "segda gap: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    const char *why = NULL;
    if (!bad) {
        int modes = (ckpt != NULL) + (feat[0] || feat[1]) + labels_only + rgb + (objects != 0);
        if (modes != 1)
            why = "choose one of --model, --rgb, --features-a/--features-b, --labels-only, --objects";
        else if (objects && (!spec[0] || !spec[1]))
            why = "--objects needs --a SPEC and --b SPEC";
        else if (rgb && (!spec[0] || !spec[1]))
            why = "--rgb needs --a SPEC and --b SPEC";
        else if (labels_only && (!spec[0] || !spec[1]))
            why = "--labels-only needs --a SPEC and --b SPEC";
        else if (ckpt && (!layer || !spec[0] || !spec[1]))
            why = "--model needs --layer NAME, --a SPEC and --b SPEC";
        else if ((feat[0] || feat[1]) && (!feat[0] || !feat[1]))
            why = "give both --features-a and --features-b";
        else if ((feat[0] || feat[1]) && (!spec[0] != !spec[1]))
            why = "with feature files, give both --a and --b (for class_kl) or neither";
        else if (pixels && !ckpt && !rgb)
            why = "--pixels works with --model or --rgb only";
        else if (net_w && !ckpt)
            why = "--size works with --model only";
        if (why) {
            fprintf(stderr, "segda gap: %s\n", why);
            bad = 1;
        }
    }
    if (bad) {
        usage(stderr);
        return 2;
    }
    if (objects)
        return gap_objects(spec, objects, crop, lanemarking, &o, json);

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
            int want = n_img > 0 ? n_img : ckpt || rgb ? DEFAULT_MODEL_IMAGES : 0;
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

    if (st == SD_OK)
        print_table(&res, spec[0] ? spec[0] : feat[0], spec[1] ? spec[1] : feat[1], &o, bins, n_kl_img);
    if (st == SD_OK && out_dir) /* first: --json may point into it */
        st = mkdir_p(out_dir);
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
        setup_add(&setup, "images", "%d", n_img > 0 ? n_img : DEFAULT_MODEL_IMAGES);
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
    setup_add(&setup, "device", "%s", sd_device_name(SD_DEVICE_CPU));
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
        if (st == SD_OK)
            fprintf(stderr, "segda gap: wrote %s/{%sgap.json}\n", out_dir,
                    res.has_features ? (images ? "pca.svg,retrieval.png," : "pca.svg,") : "");
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
    return st == SD_OK ? 0 : cli_fail("gap");
}
