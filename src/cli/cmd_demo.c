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
#include <unistd.h>

#include "cli/cli.h"
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/model.h"
#include "segda/synth.h"
#include "segda/train.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda demo [--full] [--out DIR] [options]\n"
            "\n"
            "Generates the built-in sim->real benchmark, trains the oracle (real labels),\n"
            "source-only and adaptation methods with deeplab-mini, evaluates each on real\n"
            "val, prints the table (per-class IoU, mIoU-19, gap closed) and writes\n"
            "DIR/results.json and DIR/report.md (loss curves, example predictions).\n"
            "\n"
            "  --out DIR        where everything goes (default demo-out)\n"
            "  --full           every method, the fine-tuning budgets, 3 seeds each (hours)\n"
            "  --iters N        iterations per run (default 150; --full 2000)\n"
            "  --seeds N        seeds per method (default 1; --full 3)\n"
            "  --methods LIST   comma-separated methods instead of the default set\n"
            "  --threads N      threads (default: all cores)\n"
            "  -h, --help       this help\n");
}

typedef struct demo_run {
    char name[64];        /* table row: "adaptseg", "finetune-75" */
    char method[32];
    const char *extra[8]; /* "key=value" */
    int n_extra;
} demo_run;

typedef struct demo_result {
    char name[64];
    int seed;
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

static sd_status ensure_dir(const char *p)
{
    if (mkdir(p, 0777) && errno != EEXIST)
        return sd_fail(SD_ERR_IO, "%s: %s", p, strerror(errno));
    return SD_OK;
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6f", v);
    else
        fprintf(f, "null");
}

/* ---- loss curves: one SVG polyline per logged term ---- */
static sd_status write_curves(const char *svg_path, const char *log_path, const char *title)
{
    FILE *in = fopen(log_path, "r");
    if (!in)
        return sd_fail(SD_ERR_IO, "%s: %s", log_path, strerror(errno));
    enum { MAXT = 8, MAXP = 20000 };
    char names[MAXT][32];
    int nt = 0, np[MAXT] = {0};
    static float vals[MAXT][MAXP];
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        char *p = strstr(line, "\"terms\": {");
        if (!p)
            continue;
        p += 10;
        while (*p == '"') {
            char key[32];
            char *q = strchr(p + 1, '"');
            if (!q)
                break;
            snprintf(key, sizeof key, "%.*s", (int)(q - p - 1), p + 1);
            double v = strtod(q + 3, &p);
            int k = 0;
            while (k < nt && strcmp(names[k], key))
                k++;
            if (k == nt && nt < MAXT)
                snprintf(names[nt++], 32, "%s", key);
            if (k < nt && np[k] < MAXP)
                vals[k][np[k]++] = (float)v;
            while (*p == ',' || *p == ' ')
                p++;
        }
    }
    free(line);
    fclose(in);
    FILE *f = fopen(svg_path, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", svg_path, strerror(errno));
    static const char *colors[MAXT] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    const int W = 480, H = 240, L = 40, B = 20;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"10\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"12\">%s (each term scaled to its own max; smoothed)</text>\n",
            W, H + 30, L, title);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, H, W - 10, H);
    for (int k = 0; k < nt; k++) {
        int n = np[k];
        if (n < 2)
            continue;
        int win = n / 50 + 1;
        float mx = 1e-12f;
        for (int i = 0; i < n; i++)
            mx = fabsf(vals[k][i]) > mx ? fabsf(vals[k][i]) : mx;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" points=\"", colors[k]);
        for (int i = 0; i < n; i += win) {
            double s = 0;
            int c = 0;
            for (int j = i; j < i + win && j < n; j++, c++)
                s += vals[k][j];
            double x = L + (double)(W - 10 - L) * i / (n - 1), y = H - (H - B) * (s / c) / mx;
            fprintf(f, "%.1f,%.1f ", x, y);
        }
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s (max %.3g)</text>\n", L + 110 * (k % 4),
                H + 14 + 12 * (k / 4), colors[k], names[k], mx);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) ? sd_fail(SD_ERR_IO, "%s: write failed", svg_path) : SD_OK;
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

static void paint(uint8_t *sheet, int sw, int x0, int y0, const uint8_t *lab, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = lab[(size_t)y * w + x];
            const uint8_t *c = v < SD_NUM_CLASSES ? sd_class_colors[v] : (const uint8_t[3]){0, 0, 0};
            memcpy(sheet + ((size_t)(y0 + y) * sw + x0 + x) * 3, c, 3);
        }
}

static sd_status write_sheet(const char *path, const char *val_spec, int n_rows, int n_models, char **ckpts)
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
    int w = s0.w, h = s0.h, cols = 2 + n_models, gap = 4;
    sd_sample_free(&s0);
    sd_image sheet;
    if ((st = sd_image_alloc(&sheet, cols * (w + gap), n_rows * (h + gap), 3, 8))) {
        sd_dataset_free(&ds);
        return st;
    }
    memset(sheet.data, 255, (size_t)sheet.w * sheet.h * 3);
    uint8_t *px = sheet.data;
    float *probs = malloc((size_t)SD_NUM_CLASSES * w * h * sizeof(float));
    uint8_t *pred = malloc((size_t)w * h);
    sd_tape t;
    st = sd_tape_init(&t, 1);
    for (int r = 0; r < n_rows && !st; r++) {
        sd_sample s;
        if ((st = sd_dataset_read(&ds, r, &s)))
            break;
        if (s.w == w && s.h == h) {
            for (int y = 0; y < h; y++)
                memcpy(px + ((size_t)(r * (h + gap) + y) * sheet.w) * 3, s.image + (size_t)y * w * 3, (size_t)w * 3);
            if (s.label && s.lw == w && s.lh == h)
                paint(px, sheet.w, w + gap, r * (h + gap), s.label, w, h);
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
                paint(px, sheet.w, (2 + m) * (w + gap), r * (h + gap), pred, w, h);
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
        fprintf(f, "%-16s %6.1f ± %-4.1f %6d %s\n", rows[k].name, 100 * rows[k].miou_mean, 100 * rows[k].miou_std,
                rows[k].n, gs);
    }
}

int cli_demo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},   {"full", no_argument, NULL, 'f'},
        {"iters", required_argument, NULL, 'i'}, {"seeds", required_argument, NULL, 's'},
        {"methods", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *out = "demo-out", *methods = NULL, *threads = "0";
    bool full = false;
    int iters = 0, seeds = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': full = true; break;
        case 'i': iters = atoi(optarg); break;
        case 's': seeds = atoi(optarg); break;
        case 'm': methods = optarg; break;
        case 't': threads = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || iters < 0 || seeds < 0) {
        usage(stderr);
        return 2;
    }
    if (!iters)
        iters = full ? 2000 : 150;
    if (!seeds)
        seeds = full ? 3 : 1;
    char bench[512], path[1024], src[600], tgt[600];
    snprintf(bench, sizeof bench, "%s/bench", out);
    if (ensure_dir(out) || ensure_dir(bench))
        return cli_fail("demo");
    snprintf(src, sizeof src, "gta5:%s/sim", bench);
    snprintf(tgt, sizeof tgt, "cityscapes:%s/real", bench);
    snprintf(path, sizeof path, "%s/real/gtFine/val", bench);
    double t_start = sd_time_now();
    if (access(path, F_OK) != 0) {
        sd_synth_opts so;
        sd_synth_opts_init(&so);
        fprintf(stderr, "demo: generating the benchmark in %s (%d sim, %d real train, %d real val, %dx%d)\n", bench,
                so.n_sim, so.n_real, so.n_real_val, so.w, so.h);
        if (sd_synth_write(bench, &so))
            return cli_fail("demo");
    }

    demo_run runs[32];
    int nr = 0;
    nr = add_run(runs, nr, "oracle", "oracle", 0);
    nr = add_run(runs, nr, "source-only", "source-only", 0);
    if (methods) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", methods);
        for (char *tok = strtok(buf, ","); tok && nr < 30; tok = strtok(NULL, ","))
            if (strcmp(tok, "oracle") && strcmp(tok, "source-only"))
                nr = add_run(runs, nr, tok, tok, 0);
        for (int i = 2; i < nr; i++) {   /* names were in buf: copy is in runs[i].name already */
            if (!sd_method_find(runs[i].method)) {
                fprintf(stderr, "segda demo: unknown method '%s'\n", runs[i].method);
                return 2;
            }
        }
    } else if (!full) {
        nr = add_run(runs, nr, "adaptseg", "adaptseg", 1, "disc-width=32");
        nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
        nr = add_run(runs, nr, "selftrain-mt", "selftrain", 1, "mode=mean-teacher");
    } else {
        nr = add_run(runs, nr, "feature-adv", "feature-adv", 0);
        nr = add_run(runs, nr, "adaptseg", "adaptseg", 1, "disc-width=32");
        nr = add_run(runs, nr, "adaptseg-multi", "adaptseg", 2, "disc-width=32", "levels=multi");
        nr = add_run(runs, nr, "adaptseg-ls", "adaptseg", 2, "disc-width=32", "gan=ls");
        nr = add_run(runs, nr, "road", "road", 0);
        nr = add_run(runs, nr, "road-distill", "road", 1, "spatial=false");
        nr = add_run(runs, nr, "road-spatial", "road", 1, "distill=off");
        nr = add_run(runs, nr, "minent", "advent", 1, "mode=minent");
        nr = add_run(runs, nr, "advent", "advent", 2, "mode=advent", "disc-width=32");
        nr = add_run(runs, nr, "fda", "fda", 1, "beta=0.05");
        nr = add_run(runs, nr, "selftrain-cbst", "selftrain", 1, "mode=cbst");
        nr = add_run(runs, nr, "selftrain-stuff", "selftrain", 1, "mode=stuff");
        nr = add_run(runs, nr, "selftrain-mt", "selftrain", 1, "mode=mean-teacher");
        nr = add_run(runs, nr, "finetune-75", "finetune", 1, "target-labels=75");
        nr = add_run(runs, nr, "finetune-200", "finetune", 1, "target-labels=200");
    }

    demo_result *res = calloc((size_t)nr * seeds, sizeof *res);
    if (!res)
        return cli_fail("demo");
    int n_res = 0, rc = 0;
    char runs_dir[400];
    snprintf(runs_dir, sizeof runs_dir, "%.380s/runs", out);
    if (ensure_dir(runs_dir))
        return cli_fail("demo");
    char iters_s[32], seed_s[32], init_s[700];
    snprintf(iters_s, sizeof iters_s, "%d", iters);
    for (int s = 1; s <= seeds && !rc; s++) {
        for (int i = 0; i < nr && !rc; i++) {
            demo_result *r = &res[n_res];
            snprintf(r->name, sizeof r->name, "%.60s", runs[i].name);
            r->seed = s;
            snprintf(r->rundir, sizeof r->rundir, "%s/%.60s-s%d", runs_dir, runs[i].name, s);
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->rundir);
            if (system(cmd) != 0) {
                fprintf(stderr, "segda demo: could not clear %s\n", r->rundir);
                rc = 1;
                break;
            }
            sd_config cfg;
            sd_config_init(&cfg);
            snprintf(seed_s, sizeof seed_s, "%d", s);
            sd_config_set(&cfg, "method", runs[i].method, "demo", true);
            sd_config_set(&cfg, "source", src, "demo", true);
            sd_config_set(&cfg, "target", tgt, "demo", true);
            sd_config_set(&cfg, "out", r->rundir, "demo", true);
            sd_config_set(&cfg, "model", "deeplab-mini", "demo", true);
            sd_config_set(&cfg, "iters", iters_s, "demo", true);
            sd_config_set(&cfg, "eval-every", iters_s, "demo", true);
            sd_config_set(&cfg, "seed", seed_s, "demo", true);
            sd_config_set(&cfg, "lr", "0.005", "demo", true);
            sd_config_set(&cfg, "freeze-bn", "false", "demo", true);   /* from scratch: BN must learn its statistics */
            sd_config_set(&cfg, "lr-d", "1e-4", "demo", true);
            sd_config_set(&cfg, "batch", "2,2", "demo", true);
            sd_config_set(&cfg, "flip", "true", "demo", true);
            sd_config_set(&cfg, "threads", threads, "demo", true);
            sd_config_set(&cfg, "log-every", "50", "demo", true);
            if (!strcmp(runs[i].method, "finetune")) {
                snprintf(init_s, sizeof init_s, "%.500s/source-only-s%d/last.safetensors", runs_dir, s);
                sd_config_set(&cfg, "init", init_s, "demo", true);
            }
            for (int k = 0; k < runs[i].n_extra; k++) {
                char key[64];
                const char *eq = strchr(runs[i].extra[k], '=');
                snprintf(key, sizeof key, "%.*s", (int)(eq - runs[i].extra[k]), runs[i].extra[k]);
                sd_config_set(&cfg, key, eq + 1, "demo", true);
            }
            fprintf(stderr, "demo: training %s (seed %d, %d iterations)\n", runs[i].name, s, iters);
            sd_train_summary sum;
            sd_status st = sd_train_run_summary(&cfg, &sum);
            sd_config_free(&cfg);
            if (st) {
                rc = cli_fail("demo");
                break;
            }
            r->miou = sum.miou_19;
            memcpy(r->class_iou, sum.class_iou, sizeof r->class_iou);
            r->seconds = sum.seconds;
            fprintf(stderr, "demo: %s seed %d: mIoU-19 %.1f (%.0f s)\n", r->name, s, 100 * r->miou, r->seconds);
            n_res++;
        }
    }
    if (n_res == 0) {
        free(res);
        return rc ? rc : 1;
    }
    row_stat rows[64];
    int n_rows = collect_rows(res, n_res, rows);
    printf("\nsegda demo: deeplab-mini, %d iterations per run, %d seed(s), real val of the built-in benchmark\n\n", iters,
           seeds);
    print_table(stdout, rows, n_rows, false);

    /* results.json */
    snprintf(path, sizeof path, "%s/results.json", out);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "[\n");
        for (int i = 0; i < n_res; i++) {
            fprintf(f, "  {\"method\": \"%s\", \"seed\": %d, \"iters\": %d, \"seconds\": %.1f, \"miou_19\": ", res[i].name,
                    res[i].seed, iters, res[i].seconds);
            json_num(f, res[i].miou);
            fprintf(f, ", \"class_iou\": {");
            for (int c = 0; c < SD_NUM_CLASSES; c++) {
                fprintf(f, "%s\"%s\": ", c ? ", " : "", sd_class_names[c]);
                json_num(f, res[i].class_iou[c]);
            }
            fprintf(f, "}}%s\n", i + 1 < n_res ? "," : "");
        }
        fprintf(f, "]\n");
        fclose(f);
    }

    /* report.md: table, curves, contact sheet */
    snprintf(path, sizeof path, "%s/report.md", out);
    f = fopen(path, "w");
    if (!f)
        return cli_fail("demo");
    fprintf(f, "# segda demo\n\nBuilt-in sim→real benchmark (%s), deeplab-mini from scratch, %d iterations per run "
               "(batch 2 source + 2 target, SGD lr 0.005 poly 0.9, BN trained), %d seed(s); mIoU-19 on real val, IoU in %%. "
               "Total time %.0f s.\n\n",
            bench, iters, seeds, sd_time_now() - t_start);
    print_table(f, rows, n_rows, true);
    fprintf(f, "\n## Loss curves\n\n");
    for (int k = 0; k < n_rows; k++) {
        char svg[700], logp[700];
        snprintf(svg, sizeof svg, "%.500s/curve-%.60s.svg", out, rows[k].name);
        snprintf(logp, sizeof logp, "%.600s/log.jsonl", res[rows[k].first].rundir);
        if (!write_curves(svg, logp, rows[k].name))
            fprintf(f, "![%s](curve-%s.svg)\n", rows[k].name, rows[k].name);
    }
    char *ckpts[64];
    int nc = 0;
    for (int k = 0; k < n_rows && nc < 64; k++) {
        if (!strcmp(rows[k].name, "oracle"))
            continue;
        ckpts[nc] = malloc(700);
        snprintf(ckpts[nc++], 700, "%.600s/last.safetensors", res[rows[k].first].rundir);
    }
    snprintf(path, sizeof path, "%s/examples.png", out);
    fprintf(f, "\n## Example predictions\n\nColumns: image, ground truth");
    for (int k = 0; k < n_rows; k++)
        if (strcmp(rows[k].name, "oracle"))
            fprintf(f, ", %s", rows[k].name);
    fprintf(f, ".\n\n![examples](examples.png)\n");
    fclose(f);
    if (write_sheet(path, tgt, 4, nc, ckpts))
        fprintf(stderr, "segda demo: examples.png: %s\n", sd_errmsg());
    for (int i = 0; i < nc; i++)
        free(ckpts[i]);
    fprintf(stderr, "demo: wrote %s/report.md, %s/results.json, %s/examples.png (%.0f s in all)\n", out, out, out,
            sd_time_now() - t_start);
    free(res);
    return rc;
}
