/* segda demo --full: the report's gradient-ratio table (issue 18) and the
 * translated-examples figure of the task-informed GAN (issue 19). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "demo/extra.h"
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/gan.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/model.h"
#include "segda/ops.h"

enum { GR_MAX = 8 };

typedef struct gr_term {
    char name[40];
    double sum, first, last;
    int n;
} gr_term;

/* Every "grad_ratio_X": value of a run's log, accumulated per X. */
static int read_ratios(const char *rundir, gr_term *t)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/log.jsonl", rundir);
    FILE *in = fopen(path, "r");
    if (!in)
        return 0;
    int nt = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0)
        for (char *p = strstr(line, "\"grad_ratio_"); p; p = strstr(p, "\"grad_ratio_")) {
            char *q = strchr(p + 1, '"');
            if (!q)
                break;
            char key[40];
            snprintf(key, sizeof key, "%.*s", (int)(q - p - 12), p + 12);
            char *end;
            double v = strtod(q + 2 + (q[1] == ':'), &end);
            p = q + 1;
            if (end == q + 2 || !isfinite(v))
                continue;
            int k = 0;
            while (k < nt && strcmp(t[k].name, key))
                k++;
            if (k == nt) {
                if (nt == GR_MAX)
                    continue;
                memset(&t[nt], 0, sizeof t[nt]);
                snprintf(t[nt++].name, sizeof t[0].name, "%s", key);
                t[k].first = v;
            }
            t[k].sum += v;
            t[k].last = v;
            t[k].n++;
        }
    free(line);
    fclose(in);
    return nt;
}

void demo_grad_ratio_section(FILE *f, const char *const *names, const char *const *rundirs, int n)
{
    bool header = false;
    for (int r = 0; r < n; r++) {
        gr_term t[GR_MAX];
        int nt = read_ratios(rundirs[r], t);
        for (int k = 0; k < nt; k++) {
            if (!header) {
                fprintf(f, "\n## Gradient ratios\n\nPer adversarial row (seed 1), the norm of each adaptation term's "
                           "weighted gradient on the segmentation network over that of the segmentation loss "
                           "(`--log-grad-ratio`: separate backward passes every 50 iterations; `adapt` = all the "
                           "row's adaptation terms together): where a term starts to act. The `-x10` / `-x100` rows "
                           "multiply the published weights.\n\n"
                           "| row | term | mean | first | last | logged |\n|---|---|---|---|---|---|\n");
                header = true;
            }
            fprintf(f, "| %s | %s | %.3g | %.3g | %.3g | %d |\n", names[r], t[k].name, t[k].sum / t[k].n, t[k].first,
                    t[k].last, t[k].n);
        }
    }
}

void demo_paint_labels(uint8_t *px, int sw, int x0, int y0, const uint8_t *lab, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = lab[(size_t)y * w + x];
            const uint8_t *c = v < SD_NUM_CLASSES ? sd_class_colors[v] : (const uint8_t[3]){0, 0, 0};
            memcpy(px + ((size_t)(y0 + y) * sw + x0 + x) * 3, c, 3);
        }
}

static void paint_rgb(uint8_t *px, int sw, int x0, int y0, const uint8_t *rgb, int w, int h)
{
    for (int y = 0; y < h; y++)
        memcpy(px + ((size_t)(y0 + y) * sw + x0) * 3, rgb + (size_t)y * w * 3, (size_t)w * 3);
}

/* The PNG inside an SVG (base64 data URI) under one label per column. */
static sd_status write_labelled_svg(const char *svg_path, const char *png_path, int w, int h, int cols, int gap,
                                    const char *const *labels)
{
    FILE *in = fopen(png_path, "rb");
    if (!in)
        return sd_fail(SD_ERR_IO, "%s: %s", png_path, strerror(errno));
    FILE *f = fopen(svg_path, "w");
    if (!f) {
        fclose(in);
        return sd_fail(SD_ERR_IO, "%s: %s", svg_path, strerror(errno));
    }
    const int top = 18;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            w, h + top);
    int cw = (w + gap) / cols;
    for (int c = 0; c < cols; c++)
        fprintf(f, "<text x=\"%d\" y=\"13\" text-anchor=\"middle\">%s</text>\n", c * cw + (cw - gap) / 2, labels[c]);
    fprintf(f, "<image x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" href=\"data:image/png;base64,", top, w, h);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char buf[3];
    size_t got;
    while ((got = fread(buf, 1, 3, in)) > 0) {
        unsigned v = (unsigned)buf[0] << 16 | (got > 1 ? (unsigned)buf[1] << 8 : 0) | (got > 2 ? buf[2] : 0);
        fputc(b64[v >> 18 & 63], f);
        fputc(b64[v >> 12 & 63], f);
        fputc(got > 1 ? b64[v >> 6 & 63] : '=', f);
        fputc(got > 2 ? b64[v & 63] : '=', f);
    }
    fprintf(f, "\"/>\n</svg>\n");
    fclose(in);
    return fclose(f) ? sd_fail(SD_ERR_IO, "%s: %s", svg_path, strerror(errno)) : SD_OK;
}

sd_status demo_translated_figure(const char *png_path, const char *svg_path, const char *val_spec, const char *ckpt,
                                 int n_rows)
{
    enum { COLS = 4, GAP = 4 };
    static const char *const labels[COLS] = {"real", "G_S(real)", "f(G_S(real))", "ground truth"};
    sd_gen *g = NULL;
    sd_model *m = NULL;
    sd_norm norm;
    sd_status st = sd_gen_load(ckpt, &g);
    if (!st)
        st = sd_model_load(ckpt, false, &m, &norm);
    sd_dataset ds;
    bool ds_open = false;
    if (!st)
        ds_open = !(st = sd_dataset_open(&ds, val_spec, "val", NULL));
    sd_image sheet = {0};
    uint8_t *tr = NULL, *pred = NULL;
    float *probs = NULL;
    sd_tape t;
    bool tape = false;
    int w = 0, h = 0;
    if (!st) {
        if (n_rows > ds.n)
            n_rows = ds.n;
        sd_sample s0;
        if (!(st = sd_dataset_read(&ds, 0, &s0))) {
            w = s0.w, h = s0.h;
            sd_sample_free(&s0);
        }
    }
    if (!st && !(st = sd_image_alloc(&sheet, COLS * (w + GAP) - GAP, n_rows * (h + GAP) - GAP, 3, 8))) {
        memset(sheet.data, 255, (size_t)sheet.w * sheet.h * 3);
        tr = malloc((size_t)w * h * 3);
        pred = malloc((size_t)w * h);
        probs = malloc((size_t)SD_NUM_CLASSES * w * h * sizeof(float));
        st = tr && pred && probs ? sd_tape_init(&t, 1) : sd_fail(SD_ERR_NOMEM, "demo: out of memory for the figure");
        tape = !st;
    }
    sd_infer_opts o = sd_infer_opts_default(norm);
    o.align_corners = true;
    for (int r = 0; r < n_rows && !st; r++) {
        sd_sample s;
        if ((st = sd_dataset_read(&ds, r, &s)))
            break;
        if (s.w == w && s.h == h && !(st = sd_gen_translate_rgb(g, &t, s.image, w, h, 3, tr)) &&
            !(st = sd_infer_probs(m, &t, tr, w, h, 3, &o, probs))) {
            int y0 = r * (h + GAP);
            sd_probs_argmax(probs, SD_NUM_CLASSES, w, h, pred, NULL);
            paint_rgb(sheet.data, sheet.w, 0, y0, s.image, w, h);
            paint_rgb(sheet.data, sheet.w, w + GAP, y0, tr, w, h);
            demo_paint_labels(sheet.data, sheet.w, 2 * (w + GAP), y0, pred, w, h);
            if (s.label && s.lw == w && s.lh == h)
                demo_paint_labels(sheet.data, sheet.w, 3 * (w + GAP), y0, s.label, w, h);
        }
        sd_sample_free(&s);
    }
    if (!st && !(st = sd_png_write(png_path, &sheet)))
        st = write_labelled_svg(svg_path, png_path, sheet.w, sheet.h, COLS, GAP, labels);
    if (tape)
        sd_tape_free(&t);
    free(tr);
    free(pred);
    free(probs);
    sd_image_free(&sheet);
    if (ds_open)
        sd_dataset_free(&ds);
    if (m)
        sd_model_free(m);
    if (g)
        sd_gen_free(g);
    return st;
}
