/* `segda plot` (plot.h): log.jsonl of each run -> series -> a layout of two
 * panels -> one of two renderers, SVG text or the raster of draw.h, which
 * receive the same coordinates (so a PNG pixel can be checked where the SVG
 * says a line runs). Not here: the command line (src/cli/cmd_plot.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "segda/draw.h"
#include "segda/image.h"
#include "segda/plot.h"

/* ---- the data ---- */

typedef struct series {
    char name[80];
    int n, cap;
    double *x, *y;
} series;

typedef struct chart {
    series *loss;     /* one per (run, term) */
    int n_loss;
    series *miou;     /* one per run with evaluations */
    int n_miou;
} chart;

static series *new_series(series **arr, int *n, const char *name)
{
    series *s = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
    if (!s)
        return NULL;
    *arr = s;
    s = &s[(*n)++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static bool push(series *s, double x, double y)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, (size_t)cap * sizeof *nx);
        if (!nx)
            return false;
        s->x = nx;
        double *ny = realloc(s->y, (size_t)cap * sizeof *ny);
        if (!ny)
            return false;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n++] = y;
    return true;
}

static void chart_free(chart *c)
{
    for (int i = 0; i < c->n_loss; i++)
        free(c->loss[i].x), free(c->loss[i].y);
    for (int i = 0; i < c->n_miou; i++)
        free(c->miou[i].x), free(c->miou[i].y);
    free(c->loss);
    free(c->miou);
}

/* A number or null after "key": in line; false when absent or null. */
static bool json_num_after(const char *line, const char *key, double *v)
{
    const char *p = strstr(line, key);
    if (!p)
        return false;
    p += strlen(key);
    while (*p == ' ' || *p == ':')
        p++;
    char *end;
    *v = strtod(p, &end);
    return end != p;
}

/* The lines the training loop writes (train.c): {"it": N, "lr": .., "terms":
 * {"name": v, ...}} per iteration and {"it": N, "eval": {"miou_19": v, ...}}
 * per evaluation; other lines (errors, settings) are skipped. */
static sd_status read_run(chart *c, const char *dir, const char *label)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot open: %s (is %s a run directory?)", path, strerror(errno), dir);
    int first = c->n_loss, lines = 0;
    series *mi = NULL;
    char *line = NULL;
    size_t cap = 0;
    sd_status st = SD_OK;
    while (!st && getline(&line, &cap, f) > 0) {
        long long it;
        if (sscanf(line, "{\"it\": %lld", &it) != 1)
            continue;
        const char *t = strstr(line, "\"terms\": {");
        double v;
        if (t) {
            lines++;
            for (const char *p = t + 10; *p == '"';) {
                const char *q = strchr(p + 1, '"');
                if (!q)
                    break;
                char key[64], name[80];
                snprintf(key, sizeof key, "%.*s", (int)(q - p - 1), p + 1);
                p = q + 1;
                while (*p == ':' || *p == ' ')
                    p++;
                char *end;
                v = strtod(p, &end);
                bool num = end != p;
                p = num ? end : p + strspn(p, "null");
                while (*p == ',' || *p == ' ')
                    p++;
                if (!num || !isfinite(v))
                    continue;
                if (snprintf(name, sizeof name, "%s%s%s", label, *label ? " " : "", key) >= (int)sizeof name)
                    name[sizeof name - 1] = '\0'; /* a long label: the legend shows its start */
                series *s = NULL;
                for (int k = first; k < c->n_loss && !s; k++)
                    if (!strcmp(c->loss[k].name, name))
                        s = &c->loss[k];
                if (!s && !(s = new_series(&c->loss, &c->n_loss, name)))
                    st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
                else if (!push(s, (double)it, v))
                    st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
            }
        } else if (strstr(line, "\"eval\": {") && json_num_after(line, "\"miou_19\"", &v) && isfinite(v)) {
            if (!mi && !(mi = new_series(&c->miou, &c->n_miou, *label ? label : "mIoU-19")))
                st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
            else if (!push(mi, (double)it, 100 * v))
                st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    free(line);
    fclose(f);
    if (!st && lines == 0)
        st = sd_fail(SD_ERR_DATA, "%s: no iteration lines (\"terms\") to plot", path);
    return st;
}

/* ---- axes ---- */

int sd_plot_nice_ticks(double lo, double hi, int target, double *first, double *step)
{
    if (!(hi > lo)) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    double raw = (hi - lo) / (target > 0 ? target : 5), mag = pow(10, floor(log10(raw))), r = raw / mag;
    double s = (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
    *step = s;
    *first = floor(lo / s + 1e-9) * s;
    int n = (int)ceil(hi / s - 1e-9) - (int)floor(lo / s + 1e-9) + 1;
    return n > 64 ? 64 : n;
}

typedef struct axis {
    double lo, hi;     /* data range drawn (log10 of values when log) */
    bool log;
    int n_ticks;
    double ticks[64];  /* values (not log10) */
    double step;       /* linear: tick spacing (label precision) */
} axis;

static void axis_linear(axis *a, double lo, double hi, int target)
{
    double first, step;
    int n = sd_plot_nice_ticks(lo, hi, target, &first, &step);
    a->log = false;
    a->step = step;
    a->n_ticks = n;
    for (int i = 0; i < n; i++)
        a->ticks[i] = first + i * step;
    a->lo = a->ticks[0];
    a->hi = a->ticks[n - 1];
}

/* Decades, with 2 and 5 between them when the range is under three. */
static void axis_log(axis *a, double lo, double hi)
{
    int d0 = (int)floor(log10(lo)), d1 = (int)ceil(log10(hi));
    if (d1 == d0)
        d1++;
    a->log = true;
    a->n_ticks = 0;
    for (int d = d0; d <= d1 && a->n_ticks < 62; d++)
        for (int m = 1; m <= 5; m++) {
            if ((m == 1 || (d1 - d0 < 3 && (m == 2 || m == 5))) && a->n_ticks < 64 && (d < d1 || m == 1))
                a->ticks[a->n_ticks++] = m * pow(10, d);
        }
    a->lo = d0;
    a->hi = d1;
}

static double axis_t(const axis *a, double v) { return ((a->log ? log10(v) : v) - a->lo) / (a->hi - a->lo); }

static void tick_label(const axis *a, double v, char *buf, size_t n)
{
    if (a->log) {
        snprintf(buf, n, "%g", v);
        return;
    }
    int dec = a->step >= 1 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
    snprintf(buf, n, "%.*f", dec, fabs(v) < a->step * 1e-6 ? 0.0 : v);
}

/* ---- renderers: the same calls draw SVG text or pixels ---- */

typedef struct canvas {
    FILE *svg;
    sd_image *img;
} canvas;

static const uint8_t palette[10][3] = {{31, 119, 180}, {214, 39, 40},  {44, 160, 44},   {255, 127, 14},
                                        {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                        {188, 189, 34},  {23, 190, 207}};
static const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, white[3] = {255, 255, 255};

static void c_line(canvas *c, double x0, double y0, double x1, double y1, const uint8_t *rgb, const char *cls)
{
    if (c->svg)
        fprintf(c->svg, "<line class=\"%s\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#%02x%02x%02x\"/>\n",
                cls, x0, y0, x1, y1, rgb[0], rgb[1], rgb[2]);
    else
        sd_draw_line(c->img, x0, y0, x1, y1, rgb, 1);
}

static void c_rect(canvas *c, double x, double y, double w, double h, const uint8_t *rgb, const char *cls)
{
    if (c->svg)
        fprintf(c->svg, "<rect class=\"%s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n",
                cls, x, y, w, h, rgb[0], rgb[1], rgb[2]);
    else
        sd_draw_rect(c->img, (int)lround(x), (int)lround(y), (int)lround(w), (int)lround(h), rgb);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

/* Text whose box (font cells) starts at y; anchor 0 left, 1 centre, 2 right of x. */
static void c_text(canvas *c, double x, double y, const char *s, int anchor, const uint8_t *rgb, const char *cls)
{
    int w = sd_text_width(s, 1);
    double left = x - (anchor == 1 ? w / 2.0 : anchor == 2 ? w : 0);
    if (c->svg) {
        static const char *const anc[3] = {"start", "middle", "end"};
        fprintf(c->svg, "<text class=\"%s\" x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" fill=\"#%02x%02x%02x\">", cls, x,
                y + 7, anc[anchor], rgb[0], rgb[1], rgb[2]);
        xml_text(c->svg, s);
        fputs("</text>\n", c->svg);
    } else {
        sd_draw_text(c->img, (int)lround(left), (int)lround(y), s, rgb, 1);
    }
}

static void c_polyline(canvas *c, const double *px, const double *py, int n, const uint8_t *rgb, const char *name)
{
    if (c->svg) {
        fprintf(c->svg, "<polyline class=\"series\" data-name=\"");
        xml_text(c->svg, name);
        fprintf(c->svg, "\" fill=\"none\" stroke-width=\"1.5\" stroke=\"#%02x%02x%02x\" points=\"", rgb[0], rgb[1],
                rgb[2]);
        for (int i = 0; i < n; i++)
            fprintf(c->svg, "%s%.2f,%.2f", i ? " " : "", px[i], py[i]);
        fprintf(c->svg, "\"/>\n");
    } else {
        for (int i = 0; i + 1 < n; i++)
            sd_draw_line(c->img, px[i], py[i], px[i + 1], py[i + 1], rgb, 2);
        if (n == 1)
            sd_draw_rect(c->img, (int)lround(px[0]) - 1, (int)lround(py[0]) - 1, 3, 3, rgb);
    }
}

/* ---- a panel ---- */

typedef struct panel {
    double x, y, w, h;    /* the plot area */
    const char *title, *xlabel, *ylabel;
    const series *s;
    int n;
    int color0;           /* palette index of the first series */
    bool markers;
    int max_points;
} panel;

static void draw_panel(canvas *c, const panel *p)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    bool positive = true;
    for (int k = 0; k < p->n; k++)
        for (int i = 0; i < p->s[k].n; i++) {
            xmin = fmin(xmin, p->s[k].x[i]);
            xmax = fmax(xmax, p->s[k].x[i]);
            ymin = fmin(ymin, p->s[k].y[i]);
            ymax = fmax(ymax, p->s[k].y[i]);
            positive &= p->s[k].y[i] > 0;
        }
    c_text(c, p->x, p->y - 22, p->title, 0, black, "title");
    c_text(c, p->x, p->y - 11, p->ylabel, 0, black, "ylabel");
    c_text(c, p->x + p->w / 2, p->y + p->h + 20, p->xlabel, 1, black, "xlabel");
    c_rect(c, p->x, p->y, p->w, p->h, white, "plot-area");
    if (!isfinite(xmin)) {
        c_text(c, p->x + p->w / 2, p->y + p->h / 2, "(no data)", 1, black, "empty");
        return;
    }
    axis ax, ay;
    axis_linear(&ax, xmin < 0 ? xmin : 0, xmax, 6);
    if (positive && ymax / ymin > 30)
        axis_log(&ay, ymin, ymax);
    else
        axis_linear(&ay, ymin, ymax, 5);
    char buf[64];
    for (int i = 0; i < ay.n_ticks; i++) {
        double y = p->y + p->h * (1 - axis_t(&ay, ay.ticks[i]));
        c_line(c, p->x, y, p->x + p->w, y, grid, "grid");
        c_line(c, p->x - 4, y, p->x, y, black, "ytick");
        tick_label(&ay, ay.ticks[i], buf, sizeof buf);
        c_text(c, p->x - 6, y - 3, buf, 2, black, "ytick-label");
    }
    for (int i = 0; i < ax.n_ticks; i++) {
        double x = p->x + p->w * axis_t(&ax, ax.ticks[i]);
        c_line(c, x, p->y + p->h, x, p->y + p->h + 4, black, "xtick");
        tick_label(&ax, ax.ticks[i], buf, sizeof buf);
        c_text(c, x, p->y + p->h + 7, buf, 1, black, "xtick-label");
    }
    c_line(c, p->x, p->y, p->x, p->y + p->h, black, "axis");
    c_line(c, p->x, p->y + p->h, p->x + p->w, p->y + p->h, black, "axis");
    int maxp = p->max_points > 0 ? p->max_points : 400;
    for (int k = 0; k < p->n; k++) {
        const series *s = &p->s[k];
        const uint8_t *rgb = palette[(p->color0 + k) % 10];
        int win = (s->n + maxp - 1) / maxp, m = 0;
        double *px = malloc((size_t)(s->n + 1) * sizeof *px), *py = malloc((size_t)(s->n + 1) * sizeof *py);
        for (int i = 0; px && py && i < s->n; i += win) { /* window means of x and y */
            double sx = 0, sy = 0;
            int cnt = 0;
            for (int j = i; j < i + win && j < s->n; j++, cnt++)
                sx += s->x[j], sy += s->y[j];
            px[m] = p->x + p->w * axis_t(&ax, sx / cnt);
            py[m++] = p->y + p->h * (1 - axis_t(&ay, sy / cnt));
        }
        if (px && py) {
            c_polyline(c, px, py, m, rgb, s->name);
            for (int i = 0; p->markers && i < m; i++)
                c_rect(c, px[i] - 2, py[i] - 2, 5, 5, rgb, "marker");
        }
        free(px);
        free(py);
        /* the legend, right of the plot area, as many entries as fit */
        int fit = (int)((p->h - 4) / 12);
        double ly = p->y + 4 + 12 * k;
        if (p->n > fit && k >= fit - 1) {
            if (k == fit - 1) {
                snprintf(buf, sizeof buf, "(+%d more)", p->n - k);
                c_text(c, p->x + p->w + 30, ly, buf, 0, black, "legend-more");
            }
            continue;
        }
        c_rect(c, p->x + p->w + 12, ly + 2, 14, 3, rgb, "legend-swatch");
        char name[28]; /* what fits right of the plot */
        snprintf(name, sizeof name, "%.27s", s->name);
        c_text(c, p->x + p->w + 30, ly, name, 0, black, "legend");
    }
}

static sd_status write_chart(const chart *ch, const char *out, const sd_plot_opts *o)
{
    size_t len = strlen(out);
    bool svg = len > 4 && !strcasecmp(out + len - 4, ".svg");
    if (!svg && !(len > 4 && !strcasecmp(out + len - 4, ".png")))
        return sd_fail(SD_ERR_ARG, "%s: the output must end in .svg or .png", out);
    int W = o && o->width > 0 ? o->width : 800, H = o && o->height > 0 ? o->height : 600;
    if (W < 320 || H < 240 || W > 8000 || H > 8000)
        return sd_fail(SD_ERR_ARG, "%s: chart size %dx%d (expected 320x240 to 8000x8000)", out, W, H);
    const int L = 64, R = 180, top = o && o->title ? 52 : 36, gap = 70, B = 34;
    double ph = H - top - gap - B, h1 = ph * 0.6, h2 = ph - h1;
    panel p1 = {.x = L, .y = top, .w = W - L - R, .h = h1, .title = "Training losses", .xlabel = "iteration",
                .ylabel = "loss (unweighted)", .s = ch->loss, .n = ch->n_loss, .max_points = o ? o->max_points : 0};
    panel p2 = {.x = L, .y = top + h1 + gap, .w = W - L - R, .h = h2, .title = "Validation", .xlabel = "iteration",
                .ylabel = "mIoU-19 (%)", .s = ch->miou, .n = ch->n_miou, .markers = true};
    canvas c = {0};
    sd_image img = {0};
    char tmp[4200];
    if (svg) {
        io_tmp_name(tmp, sizeof tmp, out);
        if (!(c.svg = fopen(tmp, "w")))
            return sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        fprintf(c.svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "font-family=\"monospace\" font-size=\"10\">\n", W, H);
    } else {
        sd_status st = sd_image_alloc(&img, W, H, 3, 8);
        if (st)
            return st;
        c.img = &img;
    }
    c_rect(&c, 0, 0, W, H, (const uint8_t[3]){250, 250, 250}, "background");
    if (o && o->title)
        c_text(&c, W / 2.0, 10, o->title, 1, black, "chart-title");
    draw_panel(&c, &p1);
    draw_panel(&c, &p2);
    sd_status st = SD_OK;
    if (svg) {
        fprintf(c.svg, "</svg>\n");
        if (fclose(c.svg) | rename(tmp, out)) {
            st = sd_fail(SD_ERR_IO, "%s: write failed: %s", out, strerror(errno));
            remove(tmp);
        }
    } else {
        st = sd_png_write(out, &img);
        sd_image_free(&img);
    }
    return st;
}

sd_status sd_plot_runs(int n_runs, const char *const *rundirs, const char *const *labels, const char *out,
                       const sd_plot_opts *opts)
{
    if (n_runs < 1)
        return sd_fail(SD_ERR_ARG, "plot: no run directories");
    chart ch = {0};
    sd_status st = SD_OK;
    for (int i = 0; i < n_runs && !st; i++) {
        char label[80] = "";
        if (labels && labels[i]) {
            snprintf(label, sizeof label, "%s", labels[i]);
        } else if (n_runs > 1) { /* one run: the terms' names say enough */
            char d[4096];
            snprintf(d, sizeof d, "%s", rundirs[i]);
            size_t n = strlen(d);
            while (n > 1 && d[n - 1] == '/')
                d[--n] = 0;
            const char *b = strrchr(d, '/');
            snprintf(label, sizeof label, "%.*s", (int)sizeof label - 1, b ? b + 1 : d); /* long names cut */
        }
        st = read_run(&ch, rundirs[i], label);
    }
    if (!st)
        st = write_chart(&ch, out, opts);
    chart_free(&ch);
    return st;
}
