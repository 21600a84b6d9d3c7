/* The demo's outputs from its results: the table (per-class IoU, mIoU-19,
 * gap closed) as `segda demo` prints it, DIR/results.json (each run with
 * its resolved configuration, the version, precision and device), and
 * DIR/report.md with the domain-gap table, loss curves (segda plot's
 * charts) and example predictions side by side (examples.png). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo_internal.h"
#include "demo/extra.h"
#include "io/file.h"
#include "segda/api.h" /* sd_version */
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/draw.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/model.h"
#include "segda/plot.h"
#include "segda/progress.h"
#include "segda/train.h"

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6f", v);
    else
        fprintf(f, "null");
}

/* A run's resolved configuration (RUNDIR/config.txt, as the run wrote it)
 * as a JSON object of strings; {} when it cannot be read. */
static void json_run_config(FILE *f, const char *rundir)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/config.txt", rundir);
    sd_config c;
    sd_config_init(&c);
    fputc('{', f);
    if (sd_config_read(&c, path) == SD_OK)
        for (int i = 0; i < c.n; i++) {
            fputs(i ? ", " : "", f);
            sd_json_str(f, c.e[i].key);
            fputs(": ", f);
            sd_json_str(f, c.e[i].value);
        }
    else
        sd_error_clear();
    fputc('}', f);
    sd_config_free(&c);
}

/* ---- loss curves: segda plot's chart of a row's runs (plot.h) ---- */
static sd_status write_curves(const char *svg_path, const demo_result *res, int n_res, const char *name)
{
    const char *dirs[64], *labels[64];
    char lab[64][32];
    int n = 0;
    for (int i = 0; i < n_res && n < 64; i++)
        if (!strcmp(res[i].name, name)) {
            snprintf(lab[n], sizeof lab[n], "seed %d", res[i].seed);
            labels[n] = lab[n];
            dirs[n++] = res[i].rundir;
        }
    return sd_plot_runs(n, dirs, labels, svg_path, &(sd_plot_opts){.title = name, .width = 720, .height = 480});
}

/* ---- example predictions: rows of image | GT | each model ---- */
static sd_status load_model(const char *ckpt_path, sd_model **m, sd_norm *norm)
{
    sd_ckpt c;
    sd_status st = sd_ckpt_open(ckpt_path, &c);
    if (st)
        return st;
    const char *name = sd_ckpt_meta(&c, SD_META_MODEL), *aux = sd_ckpt_meta(&c, SD_META_AUX);
    const char *nm = sd_ckpt_meta(&c, SD_META_NORM);
    sd_model_opts o = sd_model_opts_default(name ? name : "deeplab-mini");
    o.aux = aux && !strcmp(aux, "1");
    *norm = nm && sd_norm_parse(nm) >= 0 ? (sd_norm)sd_norm_parse(nm) : SD_NORM_IMAGENET;
    st = sd_model_create(&o, m);
    if (!st)
        st = sd_ckpt_load_params(&c, "", sd_model_params(*m), true, NULL);
    sd_ckpt_close(&c);
    return st;
}

/* Columns titled (image, ground truth, each model's name) over the rows, the
 * class-colour legend under them. */
static sd_status write_sheet(const char *path, const char *val_spec, int n_rows, int n_models, char **ckpts,
                             const char *const *model_names)
{
    sd_dataset ds;
    sd_status st = sd_dataset_open(&ds, val_spec, "val", NULL);
    if (st)
        return st;
    if (n_rows > ds.n)
        n_rows = ds.n;
    sd_sample s0;
    if ((st = sd_dataset_read(&ds, 0, &s0))) {
        sd_dataset_free(&ds);
        return st;
    }
    int w = s0.w, h = s0.h, cols = 2 + n_models, gap = 4, head = SD_FONT_H + 6;
    sd_sample_free(&s0);
    int sw = cols * (w + gap), per_row = sw / (16 * SD_FONT_W), lw, lh;
    per_row = per_row < 1 ? 1 : per_row > 10 ? 10 : per_row;
    sd_draw_legend_size(per_row, 1, &lw, &lh);
    sd_image sheet;
    if ((st = sd_image_alloc(&sheet, sw > lw ? sw : lw, head + n_rows * (h + gap) + lh + 4, 3, 8))) {
        sd_dataset_free(&ds);
        return st;
    }
    memset(sheet.data, 255, (size_t)sheet.w * sheet.h * 3);
    uint8_t *px = sheet.data;
    for (int k = 0; k < cols; k++) {
        char t[80];
        snprintf(t, sizeof t, "%.*s", w / SD_FONT_W < 79 ? w / SD_FONT_W : 79,
                 k == 0 ? "image" : k == 1 ? "label" : model_names[k - 2]);
        sd_draw_text(&sheet, k * (w + gap), 3, t, (const uint8_t[3]){0, 0, 0}, 1);
    }
    sd_draw_class_legend(&sheet, 0, head + n_rows * (h + gap) + 2, per_row, 1);
    float *probs = malloc((size_t)SD_NUM_CLASSES * w * h * sizeof(float));
    uint8_t *pred = malloc((size_t)w * h);
    sd_tape t;
    st = sd_tape_init_on(&t, 1, sd_device_selected());
    for (int r = 0; r < n_rows && !st; r++) {
        sd_sample s;
        if ((st = sd_dataset_read(&ds, r, &s)))
            break;
        if (s.w == w && s.h == h) {
            for (int y = 0; y < h; y++)
                memcpy(px + ((size_t)(head + r * (h + gap) + y) * sheet.w) * 3, s.image + (size_t)y * w * 3, (size_t)w * 3);
            if (s.label && s.lw == w && s.lh == h)
                demo_paint_labels(px, sheet.w, w + gap, head + r * (h + gap), s.label, w, h);
        }
        sd_sample_free(&s);
    }
    for (int m = 0; m < n_models && !st && probs && pred; m++) {
        sd_model *model;
        sd_norm norm;
        if ((st = load_model(ckpts[m], &model, &norm)))
            break;
        sd_infer_opts o = sd_infer_opts_default(norm);
        o.align_corners = true;
        for (int r = 0; r < n_rows && !st; r++) {
            sd_sample s;
            if ((st = sd_dataset_read(&ds, r, &s)))
                break;
            if (s.w == w && s.h == h && !(st = sd_infer_probs(model, &t, s.image, w, h, 3, &o, probs))) {
                sd_probs_argmax(probs, SD_NUM_CLASSES, w, h, pred, NULL);
                demo_paint_labels(px, sheet.w, (2 + m) * (w + gap), head + r * (h + gap), pred, w, h);
            }
            sd_sample_free(&s);
        }
        sd_model_free(model);
    }
    sd_tape_free(&t);
    if (!st)
        st = sd_png_write(path, &sheet);
    free(probs);
    free(pred);
    sd_image_free(&sheet);
    sd_dataset_free(&ds);
    return st;
}

/* ---- the table ---- */
int demo_collect_rows(const demo_result *res, int n_res, demo_row_stat *rows)
{
    int n = 0;
    for (int i = 0; i < n_res; i++) {
        int k = 0;
        while (k < n && strcmp(rows[k].name, res[i].name))
            k++;
        if (k == n) {
            memset(&rows[n], 0, sizeof rows[n]);
            snprintf(rows[n].name, sizeof rows[n].name, "%s", res[i].name);
            rows[n].first = i;
            n++;
        }
        demo_row_stat *r = &rows[k];
        r->n++;
        r->miou_mean += res[i].miou;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            r->class_iou[c] += isfinite(res[i].class_iou[c]) ? res[i].class_iou[c] : 0;
    }
    for (int k = 0; k < n; k++) {
        demo_row_stat *r = &rows[k];
        r->miou_mean /= r->n;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            r->class_iou[c] /= r->n;
        double v = 0;
        for (int i = 0; i < n_res; i++)
            if (!strcmp(res[i].name, r->name))
                v += (res[i].miou - r->miou_mean) * (res[i].miou - r->miou_mean);
        r->miou_std = r->n > 1 ? sqrt(v / (r->n - 1)) : 0;
    }
    return n;
}

static double gap_closed(const demo_row_stat *rows, int n, const demo_row_stat *r)
{
    const demo_row_stat *src = NULL, *orc = NULL;
    for (int k = 0; k < n; k++) {
        if (!strcmp(rows[k].name, "source-only"))
            src = &rows[k];
        if (!strcmp(rows[k].name, "oracle"))
            orc = &rows[k];
    }
    if (!src || !orc || orc->miou_mean - src->miou_mean <= 1e-9)
        return NAN;
    return 100.0 * (r->miou_mean - src->miou_mean) / (orc->miou_mean - src->miou_mean);
}

static void print_table(FILE *f, const demo_row_stat *rows, int n, bool markdown)
{
    if (markdown) {
        fprintf(f, "| method |");
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            fprintf(f, " %s |", sd_class_short_names[c]);
        fprintf(f, " mIoU-19 | gap closed |\n|---|");
        for (int c = 0; c <= SD_NUM_CLASSES + 1; c++)
            fprintf(f, "---|");
        fprintf(f, "\n");
        for (int k = 0; k < n; k++) {
            fprintf(f, "| %s |", rows[k].name);
            for (int c = 0; c < SD_NUM_CLASSES; c++)
                fprintf(f, " %.1f |", 100 * rows[k].class_iou[c]);
            fprintf(f, " %.1f", 100 * rows[k].miou_mean);
            if (rows[k].n > 1)
                fprintf(f, " ± %.1f", 100 * rows[k].miou_std);
            double g = gap_closed(rows, n, &rows[k]);
            if (isfinite(g))
                fprintf(f, " | %.0f%% |\n", g);
            else
                fprintf(f, " | - |\n");
        }
        return;
    }
    const char *names[64] = {0};
    double ciou[64][SD_NUM_CLASSES];
    for (int k = 0; k < n && k < 64; k++) {
        names[k] = rows[k].name;
        memcpy(ciou[k], rows[k].class_iou, sizeof ciou[k]);
    }
    sd_iou_table_write(f, SD_PROTOCOL_19, n < 64 ? n : 64, names, (const double(*)[SD_NUM_CLASSES])ciou);
    fprintf(f, "\n%-16s %12s %8s %s\n", "method", "mIoU-19", "seeds", "gap closed (source-only -> oracle)");
    for (int k = 0; k < n; k++) {
        double g = gap_closed(rows, n, &rows[k]);
        char gs[32] = "-";
        if (isfinite(g))
            snprintf(gs, sizeof gs, "%.0f%%", g);
        /* one seed has no spread: "± 0.0" would claim one */
        char sd[32] = "      "; /* the columns "± x.x" takes */
        if (rows[k].n > 1)
            snprintf(sd, sizeof sd, "± %-4.1f", 100 * rows[k].miou_std);
        fprintf(f, "%-16s %6.1f %s %6d %s\n", rows[k].name, 100 * rows[k].miou_mean, sd, rows[k].n, gs);
    }
}

/* ---- the domain-gap section (issue #7's measures through `segda gap`) ---- */
typedef struct gap_nums {
    bool ok;
    double lin, poly, mmd, p, retr, kl;
    double kl_sum;          /* class_kl's finite values while reading */
    int kl_n;
} gap_nums;

static void gap_leaf(void *ctx, const char *path, const char *str, double v)
{
    gap_nums *g = ctx;
    static const char *keys[] = {"svm_linear_accuracy", "svm_poly_accuracy", "mmd", "mmd_p", "retrieval_other_domain"};
    double *dst[] = {&g->lin, &g->poly, &g->mmd, &g->p, &g->retr};
    if (str)
        return;
    for (int k = 0; k < 5; k++)
        if (!strcmp(path, keys[k]))
            *dst[k] = v;
    if (!strncmp(path, "class_kl.", 9) && isfinite(v))
        g->kl_sum += v, g->kl_n++;
}

static gap_nums read_gap_json(const char *path)
{
    gap_nums g = {.ok = false, .lin = NAN, .poly = NAN, .mmd = NAN, .p = NAN, .retr = NAN, .kl = NAN};
    uint8_t *buf;
    size_t len;
    if (access(path, F_OK) != 0 || io_read_file(path, &buf, &len))
        return g;
    g.ok = !sd_json_walk((const char *)buf, len, path, gap_leaf, &g);
    free(buf);
    if (g.kl_n)
        g.kl = g.kl_sum / g.kl_n;
    return g;
}

static void fmt_val(char *s, size_t n, double v, const char *fmt)
{
    if (isfinite(v))
        snprintf(s, n, fmt, v);
    else
        snprintf(s, n, "-");
}

static void gap_row(FILE *f, const char *feat, const char *pair, gap_nums g)
{
    char a[5][32];
    fmt_val(a[0], 32, g.lin, "%.3f");
    fmt_val(a[1], 32, g.poly, "%.3f");
    fmt_val(a[2], 32, g.mmd, "%.4f");
    fmt_val(a[3], 32, g.p, "%.3f");
    fmt_val(a[4], 32, g.retr, "%.3f");
    fprintf(f, "| %s | %s | %s | %s | %s | %s | %s |\n", feat, pair, a[0], a[1], a[2], a[3], a[4]);
}


/* "## Domain gap" of report.md from the gap runs' JSON; the lines `segda
 * demo` prints for it go to out. */
static void write_gap_section(FILE *f, FILE *out, const demo_report *r, const demo_row_stat *rows)
{
    static const char *gfeat[G_N] = {"image colours (--rgb)", "labels (class_kl mean)", "source-only layer4",
                                     "adapted layer4"};
    fprintf(f, "\n## Domain gap\n\n`segda gap` on 100 images per domain, 10 feature positions per image (1000 rows "
               "per domain), seed 0. sim = sim vs real val; ctrl = real train vs real val (the same domain: the "
               "floor). SVM: held-out domain-classification accuracy (0.5 = indistinguishable); MMD²: unbiased, "
               "Gaussian kernel, with its permutation p-value; retrieval: share of the 5 nearest neighbours of an A "
               "row that come from B (0.5 = mixed, 0 = apart). Adapted = `%s` (best adapted row), seed 1.\n\n",
            r->best >= 0 ? rows[r->best].name : "-");
    fprintf(f, "| features | pair | SVM linear | SVM poly | MMD² | p | retrieval |\n|---|---|---|---|---|---|---|\n");
    gap_nums gn[G_N][2];
    for (int g = 0; g < G_N; g++)
        for (int pr = 0; pr < 2; pr++) {
            gap_nums z = {.ok = false};
            char jp[700];
            gn[g][pr] = z;
            int k = r->gap_idx[g][pr];
            if (k < 0 || r->gap_jobs[k].state != JOB_OK)
                continue;
            snprintf(jp, sizeof jp, "%.500s/%.60s.json", r->gap_dir, r->gap_jobs[k].name);
            gn[g][pr] = read_gap_json(jp);
        }
    for (int g = 0; g < G_N; g++) {
        if (g == G_LAB)
            continue;
        for (int pr = 0; pr < 2; pr++)
            if (gn[g][pr].ok)
                gap_row(f, gfeat[g], pr ? "ctrl" : "sim", gn[g][pr]);
    }
    if (gn[G_SRC][0].ok && gn[G_ADA][0].ok) {
        gap_nums d = {.ok = true,
                      .lin = gn[G_ADA][0].lin - gn[G_SRC][0].lin,
                      .poly = gn[G_ADA][0].poly - gn[G_SRC][0].poly,
                      .mmd = gn[G_ADA][0].mmd - gn[G_SRC][0].mmd,
                      .p = NAN,
                      .retr = gn[G_ADA][0].retr - gn[G_SRC][0].retr};
        gap_row(f, "adapted − source-only", "sim", d);
    }
    if (gn[G_LAB][0].ok && gn[G_LAB][1].ok)
        fprintf(f, "\nLabels alone (class_kl, mean over the 19 classes of KL(A‖B) of the per-image class-share "
                   "histograms, nats): sim %.4f, ctrl %.4f.\n",
                gn[G_LAB][0].kl, gn[G_LAB][1].kl);
    fprintf(f, "\nPer-run outputs (gap.json, pca.svg, retrieval.png) are in `gap/`.\n");
    for (int g = 0; g < G_N; g++)
        for (int pr = 0; pr < 2; pr++)
            if (gn[g][pr].ok && g != G_LAB)
                fprintf(out, "gap %-24s %-4s svm %.3f/%.3f  mmd %.4f (p %.3f)  retrieval %.3f\n", gfeat[g],
                        pr ? "ctrl" : "sim", gn[g][pr].lin, gn[g][pr].poly, gn[g][pr].mmd, gn[g][pr].p,
                        gn[g][pr].retr);
}

/* ---- the "+det" rows' detector measures (issue 16) ---- */
static void write_det_json(FILE *f, const demo_det_result *d)
{
    const char *keys[5] = {"ap", "ap50", "iiou", "unfused_miou_19", "unfused_iiou"};
    const double v[5] = {d->ap, d->ap50, d->iiou, d->plain_miou, d->plain_iiou};
    fprintf(f, "\"detector\": {");
    for (int k = 0; k < 5; k++) {
        fprintf(f, "\"%s\": ", keys[k]);
        json_num(f, v[k]);
        fprintf(f, ", ");
    }
    fprintf(f, "\"detections\": %d, \"painted\": %d}, ", d->detections, d->painted);
}

/* The "+det" rows' table (means over seeds): the fused map's mIoU-19 and
 * iIoU, the same network's without the masks, the detector's AP / AP50 on
 * real val, detections and masks painted per seed. Nothing without such
 * rows. */
static void print_det_table(FILE *f, const demo_result *res, int n_res, const demo_row_stat *rows, int n_rows,
                            bool markdown)
{
    bool any = false;
    for (int k = 0; k < n_rows; k++)
        any |= res[rows[k].first].fused;
    if (!any)
        return;
    static const char *const head[8] = {"mIoU-19", "iIoU", "unfused mIoU-19", "unfused iIoU", "AP", "AP50",
                                        "detections", "painted"};
    fprintf(f, markdown ? "\n## Detection-based foreground\n\nThe seed's detector (`segda train --method detect`) "
                          "painted over the row's network's map (score >= 0.5, overlap <= 0.5); AP / AP50 of its "
                          "masks on real val (cityscapesScripts' definitions); IoU in %%, means over seeds.\n\n| row |"
                        : "\n%-26s", markdown ? "" : "detection-based foreground");
    static const int width[8] = {7, 4, 15, 12, 4, 4, 10, 7};
    for (int c = 0; c < 8; c++)
        fprintf(f, markdown ? " %.*s |" : " %*s", markdown ? 99 : width[c], head[c]);
    fprintf(f, markdown ? "\n|---|---|---|---|---|---|---|---|---|\n" : "\n");
    for (int k = 0; k < n_rows; k++) {
        if (!res[rows[k].first].fused)
            continue;
        double sum[6] = {0}, cnt[2] = {0};
        for (int i = 0; i < n_res; i++)
            if (!strcmp(res[i].name, rows[k].name)) {
                const demo_det_result *d = &res[i].det;
                const double v[6] = {d->iiou, d->plain_miou, d->plain_iiou, d->ap, d->ap50, 0};
                for (int c = 0; c < 5; c++)
                    sum[c] += v[c];
                cnt[0] += d->detections, cnt[1] += d->painted;
                sum[5]++;
            }
        double n = sum[5];
        fprintf(f, markdown ? "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f |\n"
                            : "%-26s %7.1f %4.1f %15.1f %12.1f %4.1f %4.1f %10.0f %7.0f\n",
                rows[k].name, 100 * rows[k].miou_mean, 100 * sum[0] / n, 100 * sum[1] / n, 100 * sum[2] / n,
                100 * sum[3] / n, 100 * sum[4] / n, cnt[0] / n, cnt[1] / n);
    }
}

static void write_results_json(FILE *f, const demo_report *r)
{
    const demo_result *res = r->res;
    fprintf(f, "[\n");
    for (int i = 0; i < r->n_res; i++) {
        fprintf(f, "  {\"method\": \"%s\", \"seed\": %d, \"iters\": %d, \"init\": %s, \"seconds\": %.1f, \"miou_19\": ",
                res[i].name, res[i].seed, res[i].iters, res[i].init, res[i].seconds);
        json_num(f, res[i].miou);
        fprintf(f, ", \"class_iou\": {");
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            fprintf(f, "%s\"%s\": ", c ? ", " : "", sd_class_names[c]);
            json_num(f, res[i].class_iou[c]);
        }
        /* what produced the number: the run's resolved settings, the
         * build, the compute precision and the device */
        fprintf(f, "}, ");
        if (res[i].fused)
            write_det_json(f, &res[i].det);
        fprintf(f, "\"config\": ");
        json_run_config(f, res[i].rundir);
        fprintf(f, ", \"segda_version\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\"}%s\n", sd_version(),
                r->precision, r->device, i + 1 < r->n_res ? "," : "");
    }
    fprintf(f, "]\n");
}

/* Sends what `segda demo` prints on stdout as a TABLE event. */
static void emit_table(const demo_setup *ds, char **bufp, FILE *mem)
{
    fclose(mem);   /* sets *bufp */
    char *buf = *bufp;
    sd_demo_event ev = {.kind = SD_DEMO_EV_TABLE, .miou = NAN, .seconds = NAN};
    ev.text = buf;
    if (ds->progress && buf[0] && ds->progress(ds->ctx, &ev) && ds->stop)
        *ds->stop = 1;
    free(buf);
}

sd_status demo_report_write(const demo_setup *ds, const demo_report *r, const demo_row_stat *rows, int n_rows)
{
    const sd_demo_opts *o = r->o;
    const demo_result *res = r->res;
    int n_res = r->n_res;
    char path[1024];
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return sd_fail(SD_ERR_NOMEM, "demo: no memory for the table");
    fprintf(out, "\nsegda demo: deeplab-mini; source-only = %d + %d it, adaptation methods %d it from the %d-it "
                 "source-only checkpoint, oracle %d it; %d seed(s); real val of the built-in benchmark\n\n",
            r->iters, r->adapt_iters, r->adapt_iters, r->iters, r->iters + r->adapt_iters, r->seeds);
    print_table(out, rows, n_rows, false);
    print_det_table(out, res, n_res, rows, n_rows, false);
    emit_table(ds, &buf, out);

    snprintf(path, sizeof path, "%s/results.json", o->out);
    FILE *f = fopen(path, "w");
    if (f) {
        write_results_json(f, r);
        fclose(f);
    }

    /* report.md: table, gap, curves, contact sheet */
    snprintf(path, sizeof path, "%s/report.md", o->out);
    f = fopen(path, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot create", path);
    const char *start = r->pretrain ? "from the pretrained backbone" : "from random weights";
    char pre_desc[400];
    if (r->pretrain)
        snprintf(pre_desc, sizeof pre_desc,
                 "with its backbone pretrained as a 19-way classifier of real-style object crops (`segda pretrain`, "
                 "%d iterations of 32 crops at 64 px, %s, val top-1 %.3f: the stand-in for ImageNet weights)",
                 o->pretrain_iters, r->pretrain_precision, demo_read_top1(r->pretrain->rundir));
    else
        snprintf(pre_desc, sizeof pre_desc, "from random weights");
    fprintf(f, "# segda demo\n\nBuilt-in sim→real benchmark (`%s`, 400 sim / 400 real train / 100 real val, 256×128), "
               "deeplab-mini %s, whole 256×128 images with flips, batch 2 source + 2 target, "
               "SGD momentum 0.9 with poly decay, BN trained; %d seed(s); mIoU-19 on real val (final weights, no "
               "snapshot selection), IoU in %%.\n\n"
               "- oracle: trained on real train labels, %d iterations %s, lr %s.\n"
               "- source-base: sim labels only, %d iterations %s, lr %s (not a row).\n"
               "- every other row, source-only included: %d more iterations from source-base at lr %s, so all rows but "
               "the oracle have the same budget and the same start; the exceptions:\n"
               "- adabn rows (`adabn`, `X+adabn`): the final network of source-only (or of row X) with every BN "
               "layer's statistics re-estimated on real train images (AdaBN), weights unchanged.\n"
               "- bn-control: MinEnt at weight 0, i.e. source training with real batches passed through BN in "
               "training mode, no adaptation loss: the share of a method's gain that BN's drifting statistics "
               "explain.\n\n"
               "Training took %.0f s (%d runs, %d at a time, %d thread(s) each)%s.\n\n",
            r->bench, pre_desc, r->seeds, r->iters + r->adapt_iters, start, o->lr, r->iters, start, o->lr,
            r->adapt_iters, o->adapt_lr, r->t_train, r->n_jobs, r->par, r->threads,
            r->n_fail ? "; SOME RUNS FAILED (see runs/*.log)" : "");
    print_table(f, rows, n_rows, true);
    print_det_table(f, res, n_res, rows, n_rows, true);
    if (r->n_gap > 0) {
        buf = NULL;
        out = open_memstream(&buf, &len);
        write_gap_section(f, out ? out : stderr, r, rows);
        if (out)
            emit_table(ds, &buf, out);
    }
    fprintf(f, "\n## Loss curves\n\n");
    for (int k = 0; k < n_rows; k++) {
        char svg[700];
        if (res[rows[k].first].fused)   /* scored, not trained */
            continue;
        snprintf(svg, sizeof svg, "%.500s/curve-%.60s.svg", o->out, rows[k].name);
        if (!write_curves(svg, res, n_res, rows[k].name)) {
            fprintf(f, "![%s](curve-%s.svg)\n", rows[k].name, rows[k].name);
        } else {
            sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
            demo_emit(ds, &ev, "segda demo: %s\n", sd_errmsg());
        }
    }
    char *ckpts[64];
    const char *ck_names[64];
    int nc = 0;
    for (int k = 0; k < n_rows && nc < 64; k++) {
        if (!strcmp(rows[k].name, "oracle") || res[rows[k].first].fused)
            continue;
        ck_names[nc] = rows[k].name;
        ckpts[nc] = malloc(700);
        snprintf(ckpts[nc++], 700, "%.600s/last.safetensors", res[rows[k].first].rundir);
    }
    fprintf(f, "\n## Example predictions\n\nColumns (titled in the image, class colours under it): image, label");
    for (int k = 0; k < n_rows; k++)
        if (strcmp(rows[k].name, "oracle") && !res[rows[k].first].fused)
            fprintf(f, ", %s", rows[k].name);
    fprintf(f, ".\n\n![examples](examples.png)\n");
    {   /* issue 18's gradient ratios, issue 19's translated examples (extra.c) */
        const char *names[64], *dirs[64];
        int ng2 = 0, gan_row = -1;
        for (int k = 0; k < n_rows && ng2 < 64; k++) {
            names[ng2] = rows[k].name;
            dirs[ng2++] = res[rows[k].first].rundir;
            if (!strncmp(rows[k].name, "taskgan-", 8) && strcmp(rows[k].name, "taskgan-a0"))
                gan_row = k;   /* the last: the most labels */
        }
        demo_grad_ratio_section(f, names, dirs, ng2);
        if (gan_row >= 0) {
            char png[700], svg[700], ck[700];
            snprintf(png, sizeof png, "%.600s/translated.png", o->out);
            snprintf(svg, sizeof svg, "%.600s/translated.svg", o->out);
            snprintf(ck, sizeof ck, "%.600s/last.safetensors", res[rows[gan_row].first].rundir);
            if (demo_translated_figure(png, svg, r->tgt, ck, 4)) {
                sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
                demo_emit(ds, &ev, "segda demo: translated.png: %s\n", sd_errmsg());
            } else {
                fprintf(f, "\n## Translated examples\n\nRow `%s` (seed 1): real val image, its translation "
                           "into the synthetic domain G_S(real), the prediction of the sim-trained network f on "
                           "it, and the ground truth.\n\n![translated](translated.svg)\n", rows[gan_row].name);
            }
        }
    }
    fprintf(f, "\nTotal time %.0f s.\n", sd_time_now() - r->t_start);
    fclose(f);
    snprintf(path, sizeof path, "%s/examples.png", o->out);
    if (write_sheet(path, r->tgt, 4, nc, ckpts, ck_names)) {
        sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
        demo_emit(ds, &ev, "segda demo: examples.png: %s\n", sd_errmsg());
    }
    for (int i = 0; i < nc; i++)
        free(ckpts[i]);
    sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
    demo_emit(ds, &ev, "demo: wrote %s/report.md, %s/results.json, %s/examples.png (%.0f s in all)\n", o->out, o->out,
              o->out, sd_time_now() - r->t_start);
    return SD_OK;
}
