/* segda demo: the main job end to end on the built-in benchmark: generate
 * it, train the oracle, source-only and adaptation methods, evaluate each on
 * real val, print the paper-style table (per-class IoU, mIoU-19, gap closed)
 * and write DIR/results.json and DIR/report.md with loss curves (SVG) and
 * example predictions side by side (PNG contact sheet). The training itself
 * is the library's (src/da/); this file chooses the runs and writes the
 * report. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/demo_extra.h"
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
#include "segda/synth.h"
#include "segda/train.h"

/* The default recipe (measured on the benchmark: see README "The demo"). */
enum {
    DEMO_PRETRAIN_ITERS = 600,   /* classification pretraining on real-style crops (the ImageNet stand-in) */
    DEMO_CROPS = 200,            /* crops per class for it (val gets a quarter) */
    DEMO_WARMUP = 100,           /* linear warm-up of the runs that start from the pretrained backbone */
    DEMO_ITERS = 800,            /* source-base from the pretrained backbone */
    DEMO_ADAPT_ITERS = 400,      /* every row from source-base; the oracle gets both */
    DEMO_ADABN_ITERS = 200,      /* adabn rows (at most): target batches of 2, one pass over the 400 real train images */
    DEMO_FULL_ITERS = DEMO_ITERS, /* --full: more rows and seeds, the same runs */
    DEMO_FULL_ADAPT_ITERS = DEMO_ADAPT_ITERS,
};

/* --device as the runs take it: "cpu" or "cuda:N" */
static const char *demo_device(void)
{
    static char d[24];
    snprintf(d, sizeof d, sd_device_selected() == SD_DEVICE_CPU ? "%s" : "%s:%d",
             sd_device_name(sd_device_selected()), sd_device_selected_index());
    return d;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda demo [--full] [--out DIR] [options]\n"
            "\n"
            "Generates the built-in sim->real benchmark and real-style object crops,\n"
            "pretrains deeplab-mini's backbone on the crops (segda pretrain: the stand-in for\n"
            "ImageNet weights), trains source-only on sim from it (source-base), then each\n"
            "adaptation method and source-only itself for more iterations from that\n"
            "checkpoint, and the oracle (real labels) from the pretrained backbone for the\n"
            "sum; evaluates each on real val, measures the domain gap (segda gap) for the\n"
            "source-only and the best adapted checkpoint, prints the table (per-class IoU,\n"
            "mIoU-19, gap closed) and writes DIR/results.json and DIR/report.md (gap table,\n"
            "loss curves, example predictions). Runs go side by side as child processes.\n"
            "\n"
            "  --out DIR          where everything goes (default demo-out)\n"
            "  --full             every method, the fine-tuning budgets, 3 seeds (~2 h 20 min, 2 cores,\n"
            "                     before the rows below were added); also the lambda sweep (x10, x100 of\n"
            "                     adaptseg/advent/feature-adv/road, gradient ratios in the report), the\n"
            "                     from-scratch source-only row and the task-informed GAN rows (alpha 0; 1/5/25/\n"
            "                     100%% labels; f fine-tuned on the same labels)\n"
            "  --pretrain-iters N classification pretraining iterations (default %d; 0: start\n"
            "                     from random weights)\n"
            "  --iters N          source-base iterations (default %d; --full %d)\n"
            "  --adapt-iters N    iterations of each row from source-base (default %d; --full %d)\n"
            "  --lr X             LR of source-base and oracle (default 0.01)\n"
            "  --adapt-lr X       LR from source-base (default 0.0025)\n"
            "  --seeds N          seeds per method (default 1; --full 3)\n"
            "  --methods LIST     comma-separated methods instead of the default set\n"
            "  --rows LIST        only these rows of --full (comma-separated row names; oracle,\n"
            "                     source-only and the rows they start from are kept)\n"
            "  --jobs N           runs at once (default: cores, at most 4)\n"
            "  --threads N        threads per run (default: cores / jobs)\n"
            "  --no-gap           skip the domain-gap measures\n"
            "  --device D         cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P      f32 (default), bf16 or bf16-emulated: every run's convolution compute dtype\n"
            "  --resume           go on with an earlier demo in --out: runs it finished with the\n"
            "                     same configuration are kept, unfinished ones continue from\n"
            "                     their last checkpoint, the rest run (without it: all run anew)\n"
            "  -h, --help         this help\n",
            DEMO_PRETRAIN_ITERS, DEMO_ITERS, DEMO_FULL_ITERS, DEMO_ADAPT_ITERS, DEMO_FULL_ADAPT_ITERS);
}

typedef struct demo_run {
    char name[64];        /* table row: "adaptseg", "finetune-75" */
    char method[32];
    const char *extra[8]; /* "key=value" */
    int n_extra;
} demo_run;

typedef struct demo_result {
    char name[64];
    char init[80];        /* results.json "init": "pretrain", "source-base" or the row it started from */
    int seed, iters;
    double miou;
    double class_iou[SD_NUM_CLASSES];
    double seconds;
    char rundir[512];
} demo_result;

static int add_run(demo_run *runs, int n, const char *name, const char *method, int n_extra, ...)
{
    demo_run *r = &runs[n];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->method, sizeof r->method, "%s", method);
    va_list ap;
    va_start(ap, n_extra);
    for (int i = 0; i < n_extra && i < 8; i++)
        r->extra[r->n_extra++] = va_arg(ap, const char *);
    va_end(ap);
    return n + 1;
}

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
typedef struct row_stat {
    char name[64];
    int n;
    double miou_mean, miou_std;
    double class_iou[SD_NUM_CLASSES];
    int first;              /* index of its first result (for run directories) */
} row_stat;

static int collect_rows(const demo_result *res, int n_res, row_stat *rows)
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
        row_stat *r = &rows[k];
        r->n++;
        r->miou_mean += res[i].miou;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            r->class_iou[c] += isfinite(res[i].class_iou[c]) ? res[i].class_iou[c] : 0;
    }
    for (int k = 0; k < n; k++) {
        row_stat *r = &rows[k];
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

static double gap_closed(const row_stat *rows, int n, const row_stat *r)
{
    const row_stat *src = NULL, *orc = NULL;
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

static void print_table(FILE *f, const row_stat *rows, int n, bool markdown)
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

/* ---- the runs: each a child process (`segda train --config` or `segda gap`)
 * so that independent runs use the cores side by side (two one-thread runs
 * beat one two-thread run at these image sizes) and a crash stays in its run.
 * Children are exec'd, never merely forked: OpenMP is not fork-safe. ---- */
enum { JOB_WAIT, JOB_RUN, JOB_OK, JOB_FAIL };
enum { JOB_TRAIN, JOB_GAP, JOB_PRETRAIN };
#define DEMO_MAX_ARGS 32

typedef struct demo_job {
    int kind;
    char name[64];          /* table row ("adaptseg"), "source-base" or a gap label */
    char method[32];
    const char *extra[8];   /* "key=value" */
    int n_extra;
    int seed, iters, dep;   /* dep: job whose checkpoint is --init (-1: none) */
    char init_row[64];      /* "init=@row": the row it starts from instead (adabn rows) */
    int threads;            /* 0: demo_setup's */
    int waits[4], n_waits;  /* rows of the same seed named by "@row" in an extra value */
    char resolved[2][700];  /* extra values with "@row" replaced by that row's checkpoint */
    const char *lr;
    bool row;               /* a row of the table */
    char rundir[512], log[600], cfg[600];   /* pretrain: rundir is the checkpoint file */
    char args[DEMO_MAX_ARGS][600];
    int n_args;
    pid_t pid;
    int state;
    double t0, seconds;
    double miou, class_iou[SD_NUM_CLASSES];
} demo_job;

typedef struct demo_setup {
    const char *self, *src, *tgt, *runs_dir;
    const char *precision;  /* --precision: every run's compute dtype */
    int threads, par;
    bool verbose;
    bool resume;            /* --resume: keep finished runs, continue unfinished ones */
} demo_setup;

static demo_job *job_add(demo_job *jobs, int *n, int kind, const char *name)
{
    demo_job *j = &jobs[(*n)++];
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->dep = -1;
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

static void job_arg(demo_job *j, const char *fmt, ...)
{
    if (j->n_args >= DEMO_MAX_ARGS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->args[j->n_args++], sizeof j->args[0], fmt, ap);
    va_end(ap);
}

/* A finished training run's result from its summary.json: mIoU-19 and the
 * class IoUs of the final evaluation. False unless the run ended "ok" after
 * all its iterations with a final evaluation. */
static bool read_final_eval(const char *rundir, double *miou, double ciou[SD_NUM_CLASSES], long long *it)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/summary.json", rundir);
    sd_run_result r;
    if (access(path, F_OK) != 0 || sd_run_summary_read(path, &r) || strcmp(r.status, "ok") ||
        strcmp(r.metric, "miou_19") || !r.has_class_iou)
        return false;
    *miou = r.final_value;
    memcpy(ciou, r.class_iou, sizeof r.class_iou);
    *it = (long long)r.iterations;
    return true;
}

/* The val top-1 accuracy of a pretraining, from CKPT.summary.json (NAN if absent). */
static double read_top1(const char *ckpt)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s.summary.json", ckpt);
    sd_run_result r;
    if (access(path, F_OK) != 0 || sd_run_summary_read(path, &r) || strcmp(r.metric, "val_top1"))
        return NAN;
    return r.final_value;
}

/* Extra values naming rows ("pseudo-from=@fda-b01,@fda") become those rows'
 * checkpoints of the same seed, and the job waits for them. */
static sd_status resolve_rows(demo_job *jobs, int first, int end, demo_job *j)
{
    int nres = 0;
    for (int e = 0; e < j->n_extra; e++) {
        const char *eq = strchr(j->extra[e], '=');
        if (!eq || !strchr(eq, '@'))
            continue;
        if (nres == 2)
            return sd_fail(SD_ERR_ARG, "demo: row %s: at most two values may name rows", j->name);
        char *out = j->resolved[nres++], list[256];
        size_t len = (size_t)(eq + 1 - j->extra[e]);
        if (!strncmp(j->extra[e], "init=@", 6))
            snprintf(j->init_row, sizeof j->init_row, "%s", j->extra[e] + 6);
        snprintf(out, sizeof j->resolved[0], "%.*s", (int)len, j->extra[e]);
        snprintf(list, sizeof list, "%s", eq + 1);
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int r = -1;
            for (int k = first; k < end && tok[0] == '@'; k++)
                if (!strcmp(jobs[k].name, tok + 1))
                    r = k;
            if (r < 0 || j->n_waits == 4)
                return sd_fail(SD_ERR_ARG, "demo: row %s: '%s' is not a row of this run (or too many)", j->name, tok);
            j->waits[j->n_waits++] = r;
            size_t o = strlen(out);
            snprintf(out + o, sizeof j->resolved[0] - o, "%s%.600s/last.safetensors", out[o - 1] == '=' ? "" : ",",
                     jobs[r].rundir);
        }
        j->extra[e] = out;
    }
    return SD_OK;
}

static sd_status job_write_config(const demo_setup *ds, demo_job *jobs, demo_job *j, const char *path)
{
    char iters_s[32], seed_s[32], init_s[700];
    snprintf(iters_s, sizeof iters_s, "%d", j->iters);
    snprintf(seed_s, sizeof seed_s, "%d", j->seed);
    sd_config cfg;
    sd_config_init(&cfg);
    sd_config_set(&cfg, "method", j->method, "demo", true);
    sd_config_set(&cfg, "source", ds->src, "demo", true);
    sd_config_set(&cfg, "target", ds->tgt, "demo", true);
    sd_config_set(&cfg, "out", j->rundir, "demo", true);
    sd_config_set(&cfg, "model", "deeplab-mini", "demo", true);
    sd_config_set(&cfg, "iters", iters_s, "demo", true);
    sd_config_set(&cfg, "eval-every", iters_s, "demo", true);
    sd_config_set(&cfg, "seed", seed_s, "demo", true);
    sd_config_set(&cfg, "lr", j->lr, "demo", true);
    /* BN trained: the pretrained statistics are those of 64-px crops, not of
     * 256x128 street frames */
    sd_config_set(&cfg, "bn", "train", "demo", true);
    sd_config_set(&cfg, "lr-d", "1e-4", "demo", true);
    sd_config_set(&cfg, "batch", "2,2", "demo", true);
    sd_config_set(&cfg, "flip", "true", "demo", true);
    char th[16];
    snprintf(th, sizeof th, "%d", j->threads ? j->threads : ds->threads);
    sd_config_set(&cfg, "threads", th, "demo", true);
    sd_config_set(&cfg, "precision", ds->precision, "demo", true);
    sd_config_set(&cfg, "device", demo_device(), "demo", true);
    sd_config_set(&cfg, "log-every", "100", "demo", true);
    if (j->dep >= 0 && jobs[j->dep].kind == JOB_PRETRAIN) {
        sd_config_set(&cfg, "init", jobs[j->dep].rundir, "demo", true);
        /* the pretrained backbone meets a fresh head: without a warm-up the
         * first steps' large gradients wreck its features */
        char wu[16];
        snprintf(wu, sizeof wu, "%d", DEMO_WARMUP);
        sd_config_set(&cfg, "warmup", wu, "demo", true);
    } else if (j->dep >= 0) {
        snprintf(init_s, sizeof init_s, "%.600s/last.safetensors", jobs[j->dep].rundir);
        sd_config_set(&cfg, "init", init_s, "demo", true);
    }
    /* FDA's published schedule switches entropy on after 50000 of 150000
     * iterations; a row's 400 would never reach it, so the demo's FDA rows
     * use the term from the start (as they were measured) */
    if (!strcmp(j->method, "fda"))
        sd_config_set(&cfg, "switch2entropy", "0", "demo", true);
    /* ROAD distils towards the pretrained backbone (the paper's "pretrained
     * real style model"), named explicitly: the pretraining this row's
     * --init chain starts from */
    if (!strcmp(j->method, "road"))
        for (int d = j->dep; d >= 0; d = jobs[d].dep)
            if (jobs[d].kind == JOB_PRETRAIN) {
                sd_config_set(&cfg, "teacher", jobs[d].rundir, "demo", true);
                break;
            }
    for (int k = 0; k < j->n_extra; k++) {
        char key[64];
        const char *eq = strchr(j->extra[k], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - j->extra[k]), j->extra[k]);
        sd_config_set(&cfg, key, eq + 1, "demo", true);
    }
    sd_status st = sd_config_write(&cfg, path);
    sd_config_free(&cfg);
    return st;
}

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF;) {
        ca = getc(fa);
        cb = getc(fb);
        same = ca == cb;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* --resume, a row's run: KEEP_DONE when an earlier demo finished it with the
 * configuration this one would write (its result is read back), KEEP_RESUME
 * when it stopped on the way with a checkpoint (segda train --resume goes
 * on, bit-identically), KEEP_NONE otherwise (start over). */
enum { KEEP_NONE, KEEP_DONE, KEEP_RESUME };
static int kept_run(const demo_setup *ds, demo_job *jobs, demo_job *j)
{
    char fresh[640], path[700];
    snprintf(fresh, sizeof fresh, "%.600s.new", j->cfg);
    bool same = !job_write_config(ds, jobs, j, fresh) && same_file(fresh, j->cfg);
    unlink(fresh);
    if (!same)
        return KEEP_NONE;
    long long it = -1;
    if (read_final_eval(j->rundir, &j->miou, j->class_iou, &it) && it == j->iters)
        return KEEP_DONE;
    snprintf(path, sizeof path, "%.600s/last.safetensors", j->rundir);
    return access(path, F_OK) == 0 ? KEEP_RESUME : KEEP_NONE;
}

static sd_status job_start(const demo_setup *ds, demo_job *jobs, demo_job *j)
{
    char *argv[DEMO_MAX_ARGS + 4];
    int a = 0;
    argv[a++] = "segda";
    bool append = false;   /* the log goes on where an earlier demo left it */
    if (j->kind == JOB_TRAIN) {
        int keep = ds->resume ? kept_run(ds, jobs, j) : KEEP_NONE;
        if (keep == KEEP_DONE) {
            j->state = JOB_OK;
            j->seconds = 0;
            return SD_OK;
        }
        if (keep == KEEP_NONE) {
            if (sd_remove_tree(j->rundir))
                return sd_fail_prefix(SD_ERR_IO, "could not clear the run directory");
            sd_status st = job_write_config(ds, jobs, j, j->cfg);
            if (st)
                return st;
        }
        argv[a++] = "train";
        argv[a++] = "--config";
        argv[a++] = j->cfg;
        if (keep == KEEP_RESUME)
            argv[a++] = "--resume";
        append = keep == KEEP_RESUME;
    } else {
        /* --resume: segda pretrain --resume finishes the run in the file (or
         * says it is finished); its options must match the file's */
        bool resume = j->kind == JOB_PRETRAIN && ds->resume && access(j->rundir, F_OK) == 0;
        if (j->kind == JOB_PRETRAIN && !resume && unlink(j->rundir) && errno != ENOENT)
            return sd_fail(SD_ERR_IO, "%s: could not remove the old checkpoint: %s", j->rundir, strerror(errno));
        argv[a++] = j->kind == JOB_GAP ? "gap" : "pretrain";
        for (int k = 0; k < j->n_args; k++)
            argv[a++] = j->args[k];
        if (resume)
            argv[a++] = "--resume";
        append = resume;
    }
    argv[a] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return sd_fail(SD_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        FILE *lf = fopen(j->log, append ? "a" : "w");
        if (lf) {
            dup2(fileno(lf), 1);
            dup2(fileno(lf), 2);
        }
        char th[16];
        snprintf(th, sizeof th, "%d", j->threads ? j->threads : ds->threads);
        setenv("OMP_NUM_THREADS", th, 1);
        execv(ds->self, argv);
        fprintf(stderr, "exec %s: %s\n", ds->self, strerror(errno));
        _exit(127);
    }
    j->pid = pid;
    j->state = JOB_RUN;
    j->t0 = sd_time_now();
    if (ds->verbose)
        fprintf(stderr, "demo: started %s%s (seed %d%s%s) -> %s\n", j->kind == JOB_GAP ? "gap " : "", j->name, j->seed,
                j->kind == JOB_TRAIN ? ", " : "", j->kind == JOB_TRAIN ? j->method : "", j->log);
    return SD_OK;
}

/* Runs every job, at most ds->par at once, each after its dependency. Returns
 * the number that failed (their logs are named on stderr). */
static int pool_run(const demo_setup *ds, demo_job *jobs, int n)
{
    int running = 0, done = 0, failed = 0;
    while (done < n) {
        for (int i = 0; i < n && running < ds->par; i++) {
            demo_job *j = &jobs[i];
            if (j->state != JOB_WAIT)
                continue;
            int before[5], nb = 0, bad = -1;
            bool ready = true;
            if (j->dep >= 0)
                before[nb++] = j->dep;
            for (int k = 0; k < j->n_waits; k++)
                before[nb++] = j->waits[k];
            for (int k = 0; k < nb; k++) {
                bad = jobs[before[k]].state == JOB_FAIL ? before[k] : bad;
                ready = ready && jobs[before[k]].state == JOB_OK;
            }
            if (bad >= 0) {
                j->state = JOB_FAIL;
                done++, failed++;
                fprintf(stderr, "demo: %s (seed %d) skipped: %s failed\n", j->name, j->seed, jobs[bad].name);
                continue;
            }
            if (!ready)
                continue;
            if (job_start(ds, jobs, j)) {
                fprintf(stderr, "demo: %s: %s\n", j->name, sd_errmsg());
                j->state = JOB_FAIL;
                done++, failed++;
                continue;
            }
            if (j->state == JOB_OK) {   /* kept from an earlier demo (--resume) */
                done++;
                fprintf(stderr, "demo: %-16s seed %d  %5d it  mIoU-19 %5.1f  (kept from an earlier run)\n", j->name,
                        j->seed, j->iters, 100 * j->miou);
                i = -1;   /* rows waiting on it may start now */
                continue;
            }
            running++;
        }
        if (!running)
            break;
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            demo_job *j = &jobs[i];
            if (j->state != JOB_RUN || j->pid != p)
                continue;
            running--, done++;
            j->seconds = sd_time_now() - j->t0;
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (ok && j->kind == JOB_TRAIN) {
                long long it = -1;
                ok = read_final_eval(j->rundir, &j->miou, j->class_iou, &it) && it == j->iters;
            }
            j->state = ok ? JOB_OK : JOB_FAIL;
            failed += !ok;
            if (!ok)
                fprintf(stderr, "demo: %s (seed %d) FAILED, see %s\n", j->name, j->seed, j->log);
            else if (j->kind == JOB_TRAIN)
                fprintf(stderr, "demo: %-16s seed %d  %5d it  mIoU-19 %5.1f  (%.0f s)\n", j->name, j->seed, j->iters,
                        100 * j->miou, j->seconds);
            else if (ds->verbose || j->kind == JOB_PRETRAIN)
                fprintf(stderr, "demo: %s%s done (%.0f s)\n", j->kind == JOB_GAP ? "gap " : "", j->name, j->seconds);
        }
    }
    return failed;
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

/* ---- --full rows of issues 18 and 19 ----
 * The lambda sweep: each adversarial method at x10 and x100 of its published
 * weights (x1 are the rows above), every such row logging its gradient
 * ratios (--log-grad-ratio 50). The seed's from-scratch comparison:
 * scratch-source is source-only from random weights with the budget of
 * source-base + source-only (the pretrained pair). The task-informed GAN
 * (taskgan) with f = scratch-source: alpha 0 (plain LSGAN/CycleGAN), the task
 * term with 1/5/25/100 % of real train labels, and f fine-tuned on the same
 * labelled images (finetune chooses the subset as taskgan does, by seed).
 * taskgan trains a small generator (ngf 16, 3 residual blocks, PatchGAN ndf
 * 16) on whole images so that a CPU demo stays within its budget. */
#define DEMO_MAX_ROWS 64
static const int demo_label_pct[4] = {1, 5, 25, 100};
static char demo_crop_kv[48], demo_labels_kv[4][48];

static bool demo_row_from_random(const demo_run *r)
{
    return !strcmp(r->name, "scratch-source") || !strcmp(r->method, "taskgan");
}

/* The values that depend on the benchmark: taskgan's crop (whole images;
 * multiples of 4) and the label counts of each share. */
static void demo_rows_set_bench(int w, int h, int n_real)
{
    snprintf(demo_crop_kv, sizeof demo_crop_kv, "crop=%dx%d", w / 4 * 4, h / 4 * 4);
    for (int k = 0; k < 4; k++) {
        int n = (int)floor(demo_label_pct[k] / 100.0 * n_real + 0.5);
        snprintf(demo_labels_kv[k], sizeof demo_labels_kv[k], "target-labels=%d", n < 1 ? 1 : n);
    }
}

static int demo_full_extra_rows(demo_run *runs, int nr)
{
    static const char *const adversarial[] = {"adaptseg", "advent", "feature-adv", "road"};
    nr = add_run(runs, nr, "adaptseg-x10", "adaptseg", 1, "lambda-adv=0.01");
    nr = add_run(runs, nr, "adaptseg-x100", "adaptseg", 1, "lambda-adv=0.1");
    nr = add_run(runs, nr, "advent-x10", "advent", 3, "mode=advent", "lambda-adv=0.01", "lambda-adv-aux=0.002");
    nr = add_run(runs, nr, "advent-x100", "advent", 3, "mode=advent", "lambda-adv=0.1", "lambda-adv-aux=0.02");
    nr = add_run(runs, nr, "feature-adv-x10", "feature-adv", 1, "lambda-adv=0.1");
    nr = add_run(runs, nr, "feature-adv-x100", "feature-adv", 1, "lambda-adv=1");
    nr = add_run(runs, nr, "road-x10", "road", 2, "lambda-dist=1", "lambda-spatial=0.1");
    nr = add_run(runs, nr, "road-x100", "road", 2, "lambda-dist=10", "lambda-spatial=1");
    /* the official code's BN mode (model.train(), affine frozen: batch
     * statistics) for AdaptSegNet and ADVENT, against the control in the same
     * mode; the demo's other rows train BN */
    nr = add_run(runs, nr, "bn-control-bs", "advent", 5, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0",
                 "levels=single", "bn=batch-stats");
    nr = add_run(runs, nr, "adaptseg-bs", "adaptseg", 1, "bn=batch-stats");
    nr = add_run(runs, nr, "advent-bs", "advent", 2, "mode=advent", "bn=batch-stats");
    /* (not minent and bn-control: they stay bit-identical to the default set's rows) */
    for (int i = 0; i < nr; i++) {
        bool minent = false;
        for (int e = 0; e < runs[i].n_extra; e++)
            minent |= !strcmp(runs[i].extra[e], "mode=minent");
        for (size_t m = 0; m < sizeof adversarial / sizeof *adversarial; m++)
            if (!strcmp(runs[i].method, adversarial[m]) && !minent && runs[i].n_extra < 8)
                runs[i].extra[runs[i].n_extra++] = "log-grad-ratio=50";
    }
    nr = add_run(runs, nr, "scratch-source", "source-only", 0);
    const char *gan[] = {"task-model=@scratch-source", demo_crop_kv, "gen-ngf=16", "gen-blocks=3", "disc-ndf=16"};
    nr = add_run(runs, nr, "taskgan-a0", "taskgan", 6, gan[0], gan[1], gan[2], gan[3], gan[4], "alpha=0");
    char name[32];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "taskgan-%dpct", demo_label_pct[k]);
        nr = add_run(runs, nr, name, "taskgan", 6, gan[0], gan[1], gan[2], gan[3], gan[4], demo_labels_kv[k]);
    }
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "scratch-ft-%dpct", demo_label_pct[k]);
        nr = add_run(runs, nr, name, "finetune", 2, "init=@scratch-source", demo_labels_kv[k]);
    }
    return nr;
}

/* --rows: keeps oracle, source-only, the named rows and, transitively, the
 * rows they name with "@row"; the order of the --full table is kept.
 * Returns the new count, or -1 naming an unknown row. */
static int demo_keep_rows(demo_run *runs, int nr, const char *list)
{
    bool keep[DEMO_MAX_ROWS] = {false};
    keep[0] = keep[1] = true;   /* oracle, source-only */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < nr && strcmp(runs[k].name, tok))
            k++;
        if (k == nr)
            return sd_fail(SD_ERR_ARG, "'%s' is not a row of --full", tok), -1;
        keep[k] = true;
    }
    for (bool grew = true; grew;) {
        grew = false;
        for (int i = 0; i < nr; i++)
            for (int e = 0; keep[i] && e < runs[i].n_extra; e++)
                for (int k = 0; k < nr; k++) {
                    const char *at = strstr(runs[i].extra[e], "@");
                    size_t n = strlen(runs[k].name);
                    for (; at; at = strstr(at + 1, "@"))
                        if (!keep[k] && !strncmp(at + 1, runs[k].name, n) && (at[1 + n] == ',' || !at[1 + n]))
                            keep[k] = grew = true;
                }
    }
    int n = 0;
    for (int i = 0; i < nr; i++)
        if (keep[i])
            runs[n++] = runs[i];
    return n;
}

int cli_demo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"full", no_argument, NULL, 'f'},
        {"iters", required_argument, NULL, 'i'},   {"adapt-iters", required_argument, NULL, 'a'},
        {"seeds", required_argument, NULL, 's'},   {"methods", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"jobs", required_argument, NULL, 'j'},
        {"lr", required_argument, NULL, 'l'},      {"adapt-lr", required_argument, NULL, 'L'},
        {"no-gap", no_argument, NULL, 'G'},        {"help", no_argument, NULL, 'h'},
        {"pretrain-iters", required_argument, NULL, 'p'}, {"resume", no_argument, NULL, 'R'},
        {"rows", required_argument, NULL, 'r'},
        {"precision", required_argument, NULL, 'P'}, {"device", required_argument, 0, 'D'},
        {NULL, 0, NULL, 0},
    };
    const char *out = "demo-out", *methods = NULL, *only_rows = NULL, *lr = "0.01", *adapt_lr = "0.0025", *precision = "f32";
    bool full = false, gap = true, resume = false;
    int iters = 0, adapt_iters = 0, seeds = 0, threads = 0, par = 0, pretrain_iters = DEMO_PRETRAIN_ITERS, c;
    optind = 1;
    opterr = 0;
    float lr_v = 0;
    /* whole-string numbers with ranges: "--iters 1e3" or "--jobs -1" is an
     * error naming the option, not a silent 1 or 0 */
#define DEMO_INT(opt, lo, hi, var)                                                                                 \
    do {                                                                                                           \
        if (!cli_parse_int(optarg, lo, hi, &(var)))                                                                \
            return cli_usage_error("demo", usage, "%s '%s', expected an integer in %d..%d", opt, optarg, lo, hi);  \
    } while (0)
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': full = true; break;
        case 'i': DEMO_INT("--iters", 0, 100000000, iters); break;
        case 'a': DEMO_INT("--adapt-iters", 0, 100000000, adapt_iters); break;
        case 's': DEMO_INT("--seeds", 0, 1000, seeds); break;
        case 'm': methods = optarg; break;
        case 'r': only_rows = optarg; full = true; break;
        case 't': DEMO_INT("--threads", 0, 4096, threads); break;
        case 'j': DEMO_INT("--jobs", 0, 4096, par); break;
        case 'l':
        case 'L':
            if (!cli_parse_float(optarg, 1e-12f, 100.0f, &lr_v) || !(lr_v > 0))
                return cli_usage_error("demo", usage, "%s '%s', expected a number in (0, 100]",
                                       c == 'l' ? "--lr" : "--adapt-lr", optarg);
            *(c == 'l' ? &lr : &adapt_lr) = optarg;
            break;
        case 'G': gap = false; break;
        case 'R': resume = true; break;
        case 'p': DEMO_INT("--pretrain-iters", 0, 100000000, pretrain_iters); break;
        case 'D': {
            int r = cli_device("demo", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'P':
            if (cli_precision("demo", usage, optarg))
                return 2;
            /* f32 when bf16 fell back */
            precision = sd_precision() == SD_DTYPE_F32 ? "f32" : strcmp(optarg, "bf16-emulated") ? "bf16" : optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("demo", usage, argv);
        }
    }
#undef DEMO_INT
    if (optind < argc)
        return cli_usage_error("demo", usage, "unexpected argument '%s'", argv[optind]);
    if (!iters)
        iters = full ? DEMO_FULL_ITERS : DEMO_ITERS;
    if (!adapt_iters)
        adapt_iters = full ? DEMO_FULL_ADAPT_ITERS : DEMO_ADAPT_ITERS;
    if (!seeds)
        seeds = full ? 3 : 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (!par)
        par = ncpu >= 4 ? 4 : (int)ncpu;
    if (!threads)
        threads = ncpu / par > 1 ? (int)(ncpu / par) : 1;

    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "segda demo: cannot find its own executable (/proc/self/exe)\n");
        return 1;
    }
    self[sl] = 0;

    char bench[512], path[1024], src[600], tgt[600], runs_dir[400];
    snprintf(bench, sizeof bench, "%s/bench", out);
    snprintf(runs_dir, sizeof runs_dir, "%.380s/runs", out);
    if (sd_mkdir_p(out) || sd_mkdir_p(bench) || sd_mkdir_p(runs_dir))
        return cli_fail("demo");
    snprintf(src, sizeof src, "gta5:%s/sim", bench);
    snprintf(tgt, sizeof tgt, "cityscapes:%s/real", bench);
    /* The rows: name, method, knobs. Oracle and source-only are always there. */
    demo_run runs[DEMO_MAX_ROWS];
    int nr = 0;
    nr = add_run(runs, nr, "oracle", "oracle", 0);
    nr = add_run(runs, nr, "source-only", "source-only", 0);
    if (methods) {
        static char buf[512];
        snprintf(buf, sizeof buf, "%s", methods);
        for (char *tok = strtok(buf, ","); tok && nr < 30; tok = strtok(NULL, ","))
            if (!strcmp(tok, "adabn"))
                nr = add_run(runs, nr, tok, tok, 1, "init=@source-only");
            else if (strcmp(tok, "oracle") && strcmp(tok, "source-only"))
                nr = add_run(runs, nr, tok, tok, 0);
        for (int i = 2; i < nr; i++) {
            if (!sd_method_find(runs[i].method)) {
                fprintf(stderr, "segda demo: unknown method '%s'\n", runs[i].method);
                return 2;
            }
        }
    } else if (!full) {
        /* bn-control is a control, not a method: MinEnt at weight 0, i.e. the
         * source loss with target batches passed through the network in
         * training mode, so BN's running statistics drift part of the way to
         * the target. With BN trained, every method that forwards target
         * batches gets this for free; the row shows how much of a gain it
         * explains. adabn (Li et al.) goes all the way: the statistics of a
         * finished network re-estimated on target images alone, weights
         * untouched; "X+adabn" is that step after method X. The rows are the
         * strongest in the --full table (README "The demo") plus the
         * control and MinEnt, whose gain it explains. */
        nr = add_run(runs, nr, "adabn", "adabn", 1, "init=@source-only");
        nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
        nr = add_run(runs, nr, "fda+adabn", "adabn", 1, "init=@fda");
        nr = add_run(runs, nr, "bn-control", "advent", 4, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0", "levels=single");
        nr = add_run(runs, nr, "minent", "advent", 2, "mode=minent", "levels=single");
    } else {
        nr = add_run(runs, nr, "bn-control", "advent", 4, "mode=minent", "lambda-ent=0", "lambda-ent-aux=0", "levels=single");
        nr = add_run(runs, nr, "adabn", "adabn", 1, "init=@source-only");
        nr = add_run(runs, nr, "feature-adv", "feature-adv", 0);
        nr = add_run(runs, nr, "adaptseg", "adaptseg", 0);
        nr = add_run(runs, nr, "adaptseg-multi", "adaptseg", 1, "levels=multi");
        nr = add_run(runs, nr, "adaptseg-ls", "adaptseg", 1, "gan=ls");
        nr = add_run(runs, nr, "road", "road", 0);
        nr = add_run(runs, nr, "road-distill", "road", 1, "spatial=false");
        nr = add_run(runs, nr, "road-spatial", "road", 1, "distill=off");
        nr = add_run(runs, nr, "minent", "advent", 2, "mode=minent", "levels=single");
        nr = add_run(runs, nr, "advent", "advent", 1, "mode=advent");
        nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
        /* FDA's multi-band transfer + self-supervised round: pseudo-labels
         * from the mean softmax of the three single-band models */
        nr = add_run(runs, nr, "fda-b01", "fda", 1, "beta=0.01");
        nr = add_run(runs, nr, "fda-b09", "fda", 1, "beta=0.09");
        nr = add_run(runs, nr, "fda-ssl", "fda", 2, "beta=0.05", "pseudo-from=@fda-b01,@fda,@fda-b09");
        nr = add_run(runs, nr, "fda+adabn", "adabn", 1, "init=@fda");
        nr = add_run(runs, nr, "minent+adabn", "adabn", 1, "init=@minent");
        nr = add_run(runs, nr, "adaptseg+adabn", "adabn", 1, "init=@adaptseg");
        nr = add_run(runs, nr, "selftrain-cbst", "selftrain", 1, "mode=cbst");
        nr = add_run(runs, nr, "selftrain-stuff", "selftrain", 1, "mode=stuff");
        nr = add_run(runs, nr, "selftrain-mt", "selftrain", 1, "mode=mean-teacher");
        nr = add_run(runs, nr, "finetune-75", "finetune", 1, "target-labels=75");
        nr = add_run(runs, nr, "finetune-200", "finetune", 1, "target-labels=200");
        nr = demo_full_extra_rows(runs, nr);
        if (only_rows && (nr = demo_keep_rows(runs, nr, only_rows)) < 0)
            return cli_usage_error("demo", usage, "--rows '%s': %s", only_rows, sd_errmsg());
    }

    double t_start = sd_time_now();
    /* A benchmark is reused only when its completion marker says a finished
     * write (a demo killed while generating leaves none): otherwise it is
     * written anew, object crops included when pretraining needs them. A
     * benchmark written beforehand by `segda synth` (with its own options)
     * is kept whatever its size. */
    {
        sd_synth_opts so, have;
        sd_synth_opts_init(&so);
        so.crops = pretrain_iters > 0 ? DEMO_CROPS : 0;
        bool complete = sd_synth_read_marker(bench, &have) == SD_OK;
        if (complete && (so.crops == 0 || have.crops > 0))
            demo_rows_set_bench(have.w, have.h, have.n_real);
        else
            demo_rows_set_bench(so.w, so.h, so.n_real);
        if (complete && (so.crops == 0 || have.crops > 0)) {
            fprintf(stderr, "demo: using the finished benchmark in %s (%d sim, %d real train, %d real val, %dx%d)\n",
                    bench, have.n_sim, have.n_real, have.n_real_val, have.w, have.h);
        } else {
            snprintf(path, sizeof path, "%s/real", bench);
            fprintf(stderr, "demo: %s the benchmark in %s (%d sim, %d real train, %d real val, %dx%d, %d object crops "
                    "per class)\n", complete ? "regenerating, with object crops for pretraining,"
                    : access(path, F_OK) == 0 ? "regenerating (no completion marker: an interrupted generation)"
                                              : "generating",
                    bench, so.n_sim, so.n_real, so.n_real_val, so.w, so.h, so.crops);
            if (sd_synth_ensure(bench, &so, NULL))
                return cli_fail("demo");
        }
    }

    /* The jobs: one classification pretraining on the crops (the ImageNet
     * stand-in, shared by every seed as published weights are), on all
     * cores since everything waits for it; then per seed source-base (iters
     * from the pretrained backbone), every other row from its last checkpoint
     * for adapt_iters at the fine-tuning LR, source-only included (so it has
     * the same budget as the methods), and the oracle from the pretrained
     * backbone for iters + adapt_iters. */
    int max_jobs = seeds * (nr + 1) + 16;
    demo_job *jobs = calloc((size_t)max_jobs, sizeof *jobs);
    if (!jobs)
        return cli_fail("demo");
    int nj = 0, pre = -1;
    if (pretrain_iters > 0) {
        demo_job *j = job_add(jobs, &nj, JOB_PRETRAIN, "pretrain");
        pre = 0;
        j->seed = 1;
        j->iters = pretrain_iters;
        j->threads = par * threads;
        snprintf(j->rundir, sizeof j->rundir, "%.480s/pretrain.safetensors", runs_dir);
        snprintf(j->log, sizeof j->log, "%.500s/pretrain.log", runs_dir);
        job_arg(j, "--data");
        job_arg(j, "%s/crops", bench);
        job_arg(j, "--out");
        job_arg(j, "%s", j->rundir);
        job_arg(j, "--model");
        job_arg(j, "deeplab-mini");
        job_arg(j, "--iters");
        job_arg(j, "%d", pretrain_iters);
        job_arg(j, "--threads");
        job_arg(j, "%d", j->threads);
        job_arg(j, "--precision");
        job_arg(j, "%s", precision);
        job_arg(j, "--device");
        job_arg(j, "%s", demo_device());
        job_arg(j, "--val-every");
        job_arg(j, "%d", pretrain_iters);
        job_arg(j, "--log-every");
        job_arg(j, "100");
    }
    for (int s = 1; s <= seeds; s++) {
        int base = nj;
        for (int i = -1; i < nr; i++) {
            demo_job *j = job_add(jobs, &nj, JOB_TRAIN, i < 0 ? "source-base" : runs[i].name);
            snprintf(j->method, sizeof j->method, "%s", i < 0 ? "source-only" : runs[i].method);
            j->seed = s;
            j->row = i >= 0;
            if (i >= 0) {
                j->n_extra = runs[i].n_extra;
                memcpy(j->extra, runs[i].extra, sizeof j->extra);
            }
            bool scratch = i < 0 || !strcmp(runs[i].name, "oracle");
            bool random = i >= 0 && demo_row_from_random(&runs[i]);   /* issue 19's rows: no --init */
            j->dep = random ? -1 : scratch ? pre : base;
            j->iters = i < 0 ? iters : scratch ? iters + adapt_iters : adapt_iters;
            if (random && !strcmp(runs[i].method, "source-only"))
                j->iters = iters + adapt_iters, scratch = true;
            if (i >= 0 && !strcmp(runs[i].method, "adabn") && adapt_iters > DEMO_ADABN_ITERS)
                j->iters = DEMO_ADABN_ITERS;
            j->lr = scratch ? lr : adapt_lr;
            snprintf(j->rundir, sizeof j->rundir, "%s/%.60s-s%d", runs_dir, j->name, s);
            snprintf(j->log, sizeof j->log, "%.500s/%.60s-s%d.log", runs_dir, j->name, s);
            snprintf(j->cfg, sizeof j->cfg, "%.500s/%.60s-s%d.cfg", runs_dir, j->name, s);
        }
        for (int k = base; k < nj; k++)
            if (resolve_rows(jobs, base, nj, &jobs[k]))
                return cli_fail("demo");
    }
    demo_setup ds = {.self = self, .src = src, .tgt = tgt, .runs_dir = runs_dir, .threads = threads, .par = par,
                     .precision = precision,
                     .resume = resume,
                     .verbose = true};
    const char *start = pre >= 0 ? "from the pretrained backbone" : "from random weights";
    fprintf(stderr, "demo: %d runs (%d seed(s)): %s source-base %d it and oracle %d it %s at lr %s, "
                    "the rest %d it from source-base at lr %s; %d at a time, %d thread(s) each\n",
            nj, seeds, pre >= 0 ? "pretrain, then" : "", iters, iters + adapt_iters, start, lr, adapt_iters, adapt_lr,
            par, threads);
    int n_fail = pool_run(&ds, jobs, nj);

    demo_result *res = calloc((size_t)nj, sizeof *res);
    if (!res) {
        free(jobs);
        return cli_fail("demo");
    }
    int n_res = 0;
    for (int i = 0; i < nj; i++) {
        if (!jobs[i].row || jobs[i].state != JOB_OK)
            continue;
        demo_result *r = &res[n_res++];
        snprintf(r->name, sizeof r->name, "%s", jobs[i].name);
        r->seed = jobs[i].seed;
        r->iters = jobs[i].iters;
        if (jobs[i].init_row[0])
            snprintf(r->init, sizeof r->init, "\"%s\"", jobs[i].init_row);
        else if (!strcmp(jobs[i].name, "oracle"))
            snprintf(r->init, sizeof r->init, "%s", pre >= 0 ? "\"pretrain\"" : "null");
        else
            snprintf(r->init, sizeof r->init, "\"source-base\"");
        r->miou = jobs[i].miou;
        memcpy(r->class_iou, jobs[i].class_iou, sizeof r->class_iou);
        r->seconds = jobs[i].seconds;
        snprintf(r->rundir, sizeof r->rundir, "%s", jobs[i].rundir);
    }
    if (n_res == 0) {
        free(res);
        free(jobs);
        return 1;
    }
    double t_train = sd_time_now() - t_start;
    row_stat rows[64];
    int n_rows = collect_rows(res, n_res, rows);

    /* Domain gap: pixel statistics (rgb) and labels (class_kl) without a
     * model, then layer4 features of source-only and of the best adapted row
     * (seed 1), each as sim vs real val and real train vs real val. */
    int best = -1;
    for (int k = 0; k < n_rows; k++)
        if (strcmp(rows[k].name, "oracle") && strcmp(rows[k].name, "source-only") &&
            strcmp(rows[k].name, "bn-control") && strncmp(rows[k].name, "finetune", 8) &&
            strncmp(rows[k].name, "scratch", 7) && strncmp(rows[k].name, "taskgan", 7) &&
            (best < 0 || rows[k].miou_mean > rows[best].miou_mean))
            best = k;
    int src_row = -1;
    for (int k = 0; k < n_rows; k++)
        if (!strcmp(rows[k].name, "source-only"))
            src_row = k;
    enum { G_RGB, G_LAB, G_SRC, G_ADA, G_N };
    static const char *gfeat[G_N] = {"image colours (--rgb)", "labels (class_kl mean)", "source-only layer4",
                                     "adapted layer4"};
    int gj[G_N][2];
    demo_job *gjobs = calloc(2 * G_N, sizeof *gjobs);
    int ng = 0;
    char gap_dir[600];
    snprintf(gap_dir, sizeof gap_dir, "%.500s/gap", out);
    if (gap && gjobs && !sd_mkdir_p(gap_dir)) {
        for (int g = 0; g < G_N; g++)
            for (int pr = 0; pr < 2; pr++) {
                gj[g][pr] = -1;
                const char *ckpt = NULL;
                if (g == G_SRC && src_row >= 0)
                    ckpt = res[rows[src_row].first].rundir;
                if (g == G_ADA && best >= 0)
                    ckpt = res[rows[best].first].rundir;
                if ((g == G_SRC || g == G_ADA) && !ckpt)
                    continue;
                static const char *tag[G_N] = {"rgb", "labels", "source-only", "adapted"};
                char nm[64];
                snprintf(nm, sizeof nm, "%s-%s", tag[g], pr ? "ctrl" : "sim");
                demo_job *j = job_add(gjobs, &ng, JOB_GAP, nm);
                gj[g][pr] = ng - 1;
                j->seed = 1;
                snprintf(j->log, sizeof j->log, "%.500s/%.60s.log", gap_dir, nm);
                if (g == G_LAB)
                    job_arg(j, "--labels-only");
                else if (g == G_RGB)
                    job_arg(j, "--rgb");
                else {
                    job_arg(j, "--model");
                    job_arg(j, "%.560s/last.safetensors", ckpt);
                    job_arg(j, "--layer");
                    job_arg(j, "layer4");
                }
                job_arg(j, "--a");
                if (pr)
                    job_arg(j, "%.590s:train", tgt);
                else
                    job_arg(j, "%s", src);
                job_arg(j, "--b");
                job_arg(j, "%.590s:val", tgt);
                job_arg(j, "--n");
                job_arg(j, "100");
                if (g != G_LAB) {
                    job_arg(j, "--pixels");
                    job_arg(j, "10");
                    job_arg(j, "--out");
                    job_arg(j, "%.500s/%.60s", gap_dir, nm);
                }
                job_arg(j, "--json");
                job_arg(j, "%.500s/%.60s.json", gap_dir, nm);
            }
        ds.verbose = false;
        fprintf(stderr, "demo: measuring the domain gap (%d `segda gap` runs)\n", ng);
        pool_run(&ds, gjobs, ng);
    }

    printf("\nsegda demo: deeplab-mini; source-only = %d + %d it, adaptation methods %d it from the %d-it source-only "
           "checkpoint, oracle %d it; %d seed(s); real val of the built-in benchmark\n\n",
           iters, adapt_iters, adapt_iters, iters, iters + adapt_iters, seeds);
    print_table(stdout, rows, n_rows, false);

    /* results.json */
    snprintf(path, sizeof path, "%s/results.json", out);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "[\n");
        for (int i = 0; i < n_res; i++) {
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
            fprintf(f, "}, \"config\": ");
            json_run_config(f, res[i].rundir);
            fprintf(f, ", \"segda_version\": \"%s\", \"precision\": \"%s\", \"device\": \"%s\"}%s\n",
                    sd_version(), precision, demo_device(), i + 1 < n_res ? "," : "");
        }
        fprintf(f, "]\n");
        fclose(f);
    }

    /* report.md: table, gap, curves, contact sheet */
    snprintf(path, sizeof path, "%s/report.md", out);
    f = fopen(path, "w");
    if (!f) {
        free(gjobs);
        free(res);
        free(jobs);
        return cli_fail("demo");
    }
    char pre_desc[400];
    if (pre >= 0)
        snprintf(pre_desc, sizeof pre_desc,
                 "with its backbone pretrained as a 19-way classifier of real-style object crops (`segda pretrain`, "
                 "%d iterations of 32 crops at 64 px, val top-1 %.3f: the stand-in for ImageNet weights)",
                 pretrain_iters, read_top1(jobs[pre].rundir));
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
            bench, pre_desc, seeds, iters + adapt_iters, start, lr, iters, start, lr, adapt_iters, adapt_lr, t_train, nj,
            par, threads,
            n_fail ? "; SOME RUNS FAILED (see runs/*.log)" : "");
    print_table(f, rows, n_rows, true);
    if (ng > 0) {
        fprintf(f, "\n## Domain gap\n\n`segda gap` on 100 images per domain, 10 feature positions per image (1000 rows "
                   "per domain), seed 0. sim = sim vs real val; ctrl = real train vs real val (the same domain: the "
                   "floor). SVM: held-out domain-classification accuracy (0.5 = indistinguishable); MMD²: unbiased, "
                   "Gaussian kernel, with its permutation p-value; retrieval: share of the 5 nearest neighbours of an A "
                   "row that come from B (0.5 = mixed, 0 = apart). Adapted = `%s` (best adapted row), seed 1.\n\n",
                best >= 0 ? rows[best].name : "-");
        fprintf(f, "| features | pair | SVM linear | SVM poly | MMD² | p | retrieval |\n|---|---|---|---|---|---|---|\n");
        gap_nums gn[G_N][2];
        for (int g = 0; g < G_N; g++)
            for (int pr = 0; pr < 2; pr++) {
                gap_nums z = {.ok = false};
                char jp[700];
                gn[g][pr] = z;
                if (gj[g][pr] < 0 || gjobs[gj[g][pr]].state != JOB_OK)
                    continue;
                snprintf(jp, sizeof jp, "%.500s/%.60s.json", gap_dir, gjobs[gj[g][pr]].name);
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
                if (gn[g][pr].ok && g != G_LAB) {
                    printf("gap %-24s %-4s svm %.3f/%.3f  mmd %.4f (p %.3f)  retrieval %.3f\n", gfeat[g],
                           pr ? "ctrl" : "sim", gn[g][pr].lin, gn[g][pr].poly, gn[g][pr].mmd, gn[g][pr].p,
                           gn[g][pr].retr);
                }
    }
    fprintf(f, "\n## Loss curves\n\n");
    for (int k = 0; k < n_rows; k++) {
        char svg[700];
        snprintf(svg, sizeof svg, "%.500s/curve-%.60s.svg", out, rows[k].name);
        if (!write_curves(svg, res, n_res, rows[k].name))
            fprintf(f, "![%s](curve-%s.svg)\n", rows[k].name, rows[k].name);
        else
            fprintf(stderr, "segda demo: %s\n", sd_errmsg());
    }
    char *ckpts[64];
    const char *ck_names[64];
    int nc = 0;
    for (int k = 0; k < n_rows && nc < 64; k++) {
        if (!strcmp(rows[k].name, "oracle"))
            continue;
        ck_names[nc] = rows[k].name;
        ckpts[nc] = malloc(700);
        snprintf(ckpts[nc++], 700, "%.600s/last.safetensors", res[rows[k].first].rundir);
    }
    snprintf(path, sizeof path, "%s/examples.png", out);
    fprintf(f, "\n## Example predictions\n\nColumns (titled in the image, class colours under it): image, label");
    for (int k = 0; k < n_rows; k++)
        if (strcmp(rows[k].name, "oracle"))
            fprintf(f, ", %s", rows[k].name);
    fprintf(f, ".\n\n![examples](examples.png)\n");
    {   /* issue 18's gradient ratios, issue 19's translated examples (src/cli/demo_extra.c) */
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
            snprintf(png, sizeof png, "%.600s/translated.png", out);
            snprintf(svg, sizeof svg, "%.600s/translated.svg", out);
            snprintf(ck, sizeof ck, "%.600s/last.safetensors", res[rows[gan_row].first].rundir);
            if (demo_translated_figure(png, svg, tgt, ck, 4))
                fprintf(stderr, "segda demo: translated.png: %s\n", sd_errmsg());
            else
                fprintf(f, "\n## Translated examples\n\nRow `%s` (seed 1): real val image, its translation "
                           "into the synthetic domain G_S(real), the prediction of the sim-trained network f on "
                           "it, and the ground truth.\n\n![translated](translated.svg)\n", rows[gan_row].name);
        }
    }
    fprintf(f, "\nTotal time %.0f s.\n", sd_time_now() - t_start);
    fclose(f);
    if (write_sheet(path, tgt, 4, nc, ckpts, ck_names))
        fprintf(stderr, "segda demo: examples.png: %s\n", sd_errmsg());
    for (int i = 0; i < nc; i++)
        free(ckpts[i]);
    fprintf(stderr, "demo: wrote %s/report.md, %s/results.json, %s/examples.png (%.0f s in all)\n", out, out, out,
            sd_time_now() - t_start);
    free(gjobs);
    free(res);
    free(jobs);
    return n_fail ? 1 : 0;
}
