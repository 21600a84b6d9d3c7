/* segda plot (plot.h) and the drawing under it (draw.h): runs with known
 * log.jsonl lines are plotted; the SVG is parsed back (polylines, their
 * point counts, tick labels, legend entries) and every point must sit where
 * the axis ticks say its data value belongs; the PNG of the same chart must
 * have the series' colour at those points. Also the 1-2-5 tick rule, the
 * log axis, the font and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "segda/draw.h"
#include "segda/image.h"
#include "segda/plot.h"
#include "util.h"

static char dir[] = "/tmp/segda_plot_XXXXXX";

/* A run directory whose log has `n` iterations: term a = 2 - 0.1 it (or
 * 10^(1 - 3 it / n) with log_a), term b = 0.5, evaluations at 5 and 10. */
static const char *make_run(const char *name, int n, bool log_a)
{
    static char runs[8][512];
    static int k;
    char *d = runs[k++ % 8];
    snprintf(d, 512, "%s/%s", dir, name);
    mkdir(d, 0777);
    FILE *f = fopen(test_path(d, "log.jsonl"), "w");
    for (int it = 1; it <= n; it++) {
        double a = log_a ? pow(10, 1 - 3.0 * it / n) : 2 - 0.1 * it;
        fprintf(f, "{\"it\": %d, \"lr\": 0.001, \"time\": %d.5, \"terms\": {\"a\": %.9g, \"b\": 0.5}}\n", it, it, a);
        if (it % 5 == 0)
            fprintf(f, "{\"it\": %d, \"eval\": {\"miou_19\": %g, \"miou_16\": null, \"class_iou\": {}}}\n", it,
                    0.05 * it);
    }
    fprintf(f, "{\"it\": 3, \"eval_error\": \"ignored\"}\n");
    fclose(f);
    return d;
}

/* ---- a small reader of the SVG the plotter writes ---- */

typedef struct svg_poly {
    char name[80];
    int n;
    double x[512], y[512];
} svg_poly;

static double attr(const char *el, const char *name)
{
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *p = strstr(el, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static int polylines(const char *svg, svg_poly *out, int cap)
{
    int n = 0;
    for (const char *p = svg; (p = strstr(p, "<polyline")) && n < cap; p++) {
        svg_poly *s = &out[n++];
        const char *nm = strstr(p, "data-name=\"") + 11;
        snprintf(s->name, sizeof s->name, "%.*s", (int)(strchr(nm, '"') - nm), nm);
        const char *q = strstr(p, "points=\"") + 8;
        s->n = 0;
        while (*q != '"' && s->n < 512) {
            char *e;
            s->x[s->n] = strtod(q, &e);
            s->y[s->n++] = strtod(e + 1, &e);
            q = e + (*e == ' ');
        }
    }
    return n;
}

/* Tick labels of class cls with their position (x or y attribute) within
 * [lo, hi) of the other coordinate... kept simple: all of them, in order. */
static int tick_labels(const char *svg, const char *cls, double *val, double *pos, double *other, int cap)
{
    char key[64];
    snprintf(key, sizeof key, "<text class=\"%s\"", cls);
    int n = 0;
    for (const char *p = svg; (p = strstr(p, key)) && n < cap; p++) {
        const char *gt = strchr(p, '>');
        val[n] = strtod(gt + 1, NULL);
        bool y = strstr(cls, "ytick") != NULL;
        pos[n] = y ? attr(p, "y") - 4 : attr(p, "x"); /* text baseline = tick y - 3 + 7 */
        other[n++] = y ? attr(p, "x") : attr(p, "y");
    }
    return n;
}

static bool has_text(const char *svg, const char *cls, const char *s)
{
    char key[200];
    snprintf(key, sizeof key, "class=\"%s\"", cls);
    for (const char *p = svg; (p = strstr(p, key)); p++) {
        const char *gt = strchr(p, '>');
        if (!strncmp(gt + 1, s, strlen(s)) && gt[1 + strlen(s)] == '<')
            return true;
    }
    return false;
}

/* The linear map value -> pixel the first and last tick of a panel define. */
static double tick_map(const double *val, const double *pos, int n, double v, bool log)
{
    double a = log ? log10(val[0]) : val[0], b = log ? log10(val[n - 1]) : val[n - 1];
    double t = ((log ? log10(v) : v) - a) / (b - a);
    return pos[0] + t * (pos[n - 1] - pos[0]);
}

static void test_nice_ticks(void)
{
    double first, step;
    int n = sd_plot_nice_ticks(0, 10, 5, &first, &step);
    CHECK(n == 6 && first == 0 && step == 2);
    n = sd_plot_nice_ticks(0.013, 0.087, 5, &first, &step);
    CHECK_NEAR(step, 0.02, 1e-12);
    CHECK(n == 6 && fabs(first) < 1e-12);
    n = sd_plot_nice_ticks(1.53, 7.07, 5, &first, &step);
    CHECK(step == 2 && first == 0 && n == 5);
    n = sd_plot_nice_ticks(1.53, 7.07, 10, &first, &step);
    CHECK(step == 1 && first == 1 && n == 8);
    n = sd_plot_nice_ticks(120, 40000, 6, &first, &step);
    CHECK(step == 10000 && first == 0 && n == 5);
    n = sd_plot_nice_ticks(3, 3, 5, &first, &step); /* a flat series still gets an axis */
    CHECK(n >= 2 && first <= 3 && first + (n - 1) * step >= 3);
}

static void test_svg_points_map_from_data(void)
{
    const char *run = make_run("lin", 10, false);
    const char *out = test_path(dir, "lin.svg");
    CHECK_OK(sd_plot_runs(1, &run, NULL, out, NULL));
    char *svg = test_slurp(out, NULL);
    CHECK(svg != NULL);
    if (!svg)
        return;
    static svg_poly p[8];
    int np = polylines(svg, p, 8);
    CHECK_MSG(np == 3, "%d polylines", np);
    if (np != 3) {
        free(svg);
        return;
    }
    CHECK(!strcmp(p[0].name, "a") && !strcmp(p[1].name, "b") && !strcmp(p[2].name, "mIoU-19"));
    CHECK(p[0].n == 10 && p[1].n == 10 && p[2].n == 2);
    CHECK(has_text(svg, "legend", "a") && has_text(svg, "legend", "b") && has_text(svg, "legend", "mIoU-19"));
    CHECK(has_text(svg, "xlabel", "iteration") && has_text(svg, "ylabel", "loss (unweighted)") &&
          has_text(svg, "ylabel", "mIoU-19 (%)"));
    double v[64], pos[64], oth[64];
    int nx = tick_labels(svg, "xtick-label", v, pos, oth, 64);
    /* losses panel: x ticks 0, 2, ..., 10 (6), the mIoU panel the same */
    CHECK_MSG(nx == 12 && v[0] == 0 && v[5] == 10 && v[1] == 2, "%d x ticks, first %g %g", nx, v[0], v[1]);
    for (int i = 0; i < 10 && nx == 12; i++)
        CHECK_NEAR(p[0].x[i], tick_map(v, pos, 6, i + 1, false), 0.02);
    int ny = tick_labels(svg, "ytick-label", v, pos, oth, 64);
    /* the losses panel's y ticks come first: values 0.5 .. 2.0 in steps of 0.5 */
    int n1 = 0;
    while (n1 + 1 < ny && pos[n1 + 1] < pos[n1]) /* (a panel's ticks go up the page) */
        n1++;
    n1++;
    CHECK_MSG(n1 == 4 && v[0] == 0.5 && v[3] == 2.0, "%d loss y ticks from %g to %g", n1, v[0], v[n1 - 1]);
    for (int i = 0; i < 10; i++) {
        CHECK_NEAR(p[0].y[i], tick_map(v, pos, n1, 2 - 0.1 * (i + 1), false), 0.02);
        CHECK_NEAR(p[1].y[i], tick_map(v, pos, n1, 0.5, false), 0.02);
    }
    /* the mIoU panel: percent, at iterations 5 and 10 */
    CHECK_NEAR(p[2].y[0], tick_map(v + n1, pos + n1, ny - n1, 25, false), 0.02);
    CHECK_NEAR(p[2].y[1], tick_map(v + n1, pos + n1, ny - n1, 50, false), 0.02);

    /* the PNG of the same chart: the series' colours where the SVG's points are */
    const char *png = test_path(dir, "lin.png");
    CHECK_OK(sd_plot_runs(1, &run, NULL, png, NULL));
    sd_image im;
    CHECK_OK(sd_image_read(png, &im, false));
    CHECK(im.w == 800 && im.h == 600 && im.c == 3);
    static const uint8_t blue[3] = {31, 119, 180}, red[3] = {214, 39, 40};
    int hits = 0, total = 0;
    for (int s = 0; s < 2 && im.data; s++)
        for (int i = 0; i < 10; i++) {
            const uint8_t *px = (uint8_t *)im.data + ((size_t)lround(p[s].y[i]) * im.w + lround(p[s].x[i])) * 3;
            hits += !memcmp(px, s ? red : blue, 3);
            total++;
        }
    /* (b is drawn over a where they cross, at most one point) */
    CHECK_MSG(hits >= total - 1, "%d of %d points have their series' colour", hits, total);
    /* and a point of the plot area away from every line is the background */
    if (im.data) {
        const uint8_t *bg = (uint8_t *)im.data + ((size_t)lround(p[0].y[9] - 60) * im.w + lround(p[0].x[9])) * 3;
        CHECK(memcmp(bg, blue, 3) && memcmp(bg, red, 3) && bg[0] == bg[1] && bg[1] == bg[2] && bg[0] >= 225);
    }
    sd_image_free(&im);
    free(svg);
}

static void test_log_axis_and_two_runs(void)
{
    const char *runs[2] = {make_run("r1", 30, true), make_run("r2", 10, false)};
    const char *out = test_path(dir, "two.svg");
    CHECK_OK(sd_plot_runs(2, runs, NULL, out, &(sd_plot_opts){.width = 640, .height = 480}));
    char *svg = test_slurp(out, NULL);
    if (!svg)
        return;
    CHECK(strstr(svg, "width=\"640\" height=\"480\"") != NULL);
    static svg_poly p[8];
    int np = polylines(svg, p, 8);
    CHECK_MSG(np == 6, "%d polylines", np);
    CHECK(!strcmp(p[0].name, "r1 a") && !strcmp(p[2].name, "r2 a") && !strcmp(p[4].name, "r1") &&
          !strcmp(p[5].name, "r2"));
    CHECK(has_text(svg, "legend", "r1 a") && has_text(svg, "legend", "r2 b"));
    /* a spans 0.01..10 with b at 0.5: one shared log axis, ticks at decades */
    CHECK(has_text(svg, "ytick-label", "0.01") && has_text(svg, "ytick-label", "0.1") &&
          has_text(svg, "ytick-label", "1") && has_text(svg, "ytick-label", "10"));
    double v[64], pos[64], oth[64];
    int ny = tick_labels(svg, "ytick-label", v, pos, oth, 64), n1 = 0;
    while (n1 + 1 < ny && pos[n1 + 1] < pos[n1]) /* (a panel's ticks go up the page) */
        n1++;
    n1++;
    for (int i = 0; i < 30 && np == 6; i++)
        CHECK_NEAR(p[0].y[i], tick_map(v, pos, n1, pow(10, 1 - 3.0 * (i + 1) / 30), true), 0.02);
    /* r2's b (0.5) and r1's b on the same scale: same y */
    if (np == 6)
        CHECK_NEAR(p[1].y[0], p[3].y[0], 1e-9);
    free(svg);
    /* --label names */
    const char *labels[2] = {"sim", NULL};
    CHECK_OK(sd_plot_runs(2, runs, labels, out, NULL));
    svg = test_slurp(out, NULL);
    CHECK(svg && has_text(svg, "legend", "sim a") && has_text(svg, "legend", "r2 a"));
    free(svg);
}

static void test_long_series_window_means(void)
{
    const char *run = make_run("long", 1000, false);
    const char *out = test_path(dir, "long.svg");
    CHECK_OK(sd_plot_runs(1, &run, NULL, out, &(sd_plot_opts){.max_points = 100}));
    char *svg = test_slurp(out, NULL);
    static svg_poly p[4];
    CHECK(svg && polylines(svg, p, 4) == 3 && p[0].n == 100 && p[2].n == 200);
    free(svg);
}

/* More series than the legend has room for: those that fit, then "(+N more)". */
static void test_legend_overflow(void)
{
    const char *d = test_path(dir, "many");
    mkdir(d, 0777);
    FILE *f = fopen(test_path(d, "log.jsonl"), "w");
    for (int it = 1; it <= 3; it++) {
        fprintf(f, "{\"it\": %d, \"terms\": {", it);
        for (int k = 0; k < 30; k++)
            fprintf(f, "%s\"t%d\": %d", k ? ", " : "", k, k + it);
        fprintf(f, "}}\n");
    }
    fclose(f);
    const char *out = test_path(dir, "many.svg");
    CHECK_OK(sd_plot_runs(1, &d, NULL, out, &(sd_plot_opts){.width = 320, .height = 240}));
    char *svg = test_slurp(out, NULL);
    int legends = 0;
    for (const char *p = svg; p && (p = strstr(p, "class=\"legend\"")); p++)
        legends++;
    static svg_poly p[32];
    /* the losses panel is 60 px high: 4 rows of 12 px, 3 names and the count of the rest */
    CHECK_MSG(svg && polylines(svg, p, 32) == 30 && legends == 3 && has_text(svg, "legend-more", "(+27 more)"),
              "%d legend entries", legends);
    free(svg);
}

static void test_errors(void)
{
    const char *missing = test_path(dir, "nope");
    CHECK(sd_plot_runs(1, &missing, NULL, test_path(dir, "x.svg"), NULL) != SD_OK);
    CHECK_ERR_HAS("nope/log.jsonl");
    const char *run = make_run("ok", 3, false);
    CHECK(sd_plot_runs(1, &run, NULL, test_path(dir, "x.jpg"), NULL) != SD_OK);
    CHECK_ERR_HAS(".svg or .png");
    struct stat sb;
    CHECK(stat(test_path(dir, "x.svg"), &sb) != 0 && stat(test_path(dir, "x.jpg"), &sb) != 0);
    const char *empty = test_path(dir, "empty");
    mkdir(empty, 0777);
    fclose(fopen(test_path(empty, "log.jsonl"), "w"));
    CHECK(sd_plot_runs(1, &empty, NULL, test_path(dir, "e.png"), NULL) != SD_OK);
    CHECK_ERR_HAS("no iteration lines");
}

static void test_font_and_legend(void)
{
    sd_image im;
    CHECK_OK(sd_image_alloc(&im, 60, 20, 3, 8));
    memset(im.data, 0, (size_t)im.w * im.h * 3);
    static const uint8_t w[3] = {255, 255, 255};
    CHECK(sd_draw_text(&im, 0, 0, "IL", w, 1) == 12);
    const uint8_t *px = im.data;
#define LIT(x, y) (px[((y) * im.w + (x)) * 3] == 255)
    /* 'I': top row columns 1-3, the stem in column 2, nothing in column 0 */
    CHECK(LIT(1, 0) && LIT(2, 0) && LIT(3, 0) && !LIT(0, 0) && !LIT(4, 0));
    CHECK(LIT(2, 3) && !LIT(1, 3) && !LIT(3, 3));
    /* 'L' from x 6: column 6 all the way down, the bottom row to column 10 */
    CHECK(LIT(6, 0) && LIT(6, 6) && LIT(10, 6) && !LIT(10, 5) && !LIT(7, 0));
    /* scale 2 doubles every pixel */
    memset(im.data, 0, (size_t)im.w * im.h * 3);
    CHECK(sd_draw_text(&im, 0, 0, "I", w, 2) == 12);
    CHECK(LIT(2, 0) && LIT(3, 1) && LIT(7, 1) && !LIT(1, 0) && !LIT(8, 0));
#undef LIT
    sd_image_free(&im);
    int lw, lh;
    sd_draw_legend_size(5, 1, &lw, &lh);
    CHECK(lw == 5 * 16 * SD_FONT_W && lh == 4 * (SD_FONT_H + 2));
    CHECK_OK(sd_image_alloc(&im, lw, lh, 3, 8));
    memset(im.data, 255, (size_t)lw * lh * 3);
    CHECK(sd_draw_class_legend(&im, 0, 0, 5, 1) == lh);
    /* the swatch of class 1 (sidewalk) is its colour */
    px = (uint8_t *)im.data + ((size_t)3 * lw + 16 * SD_FONT_W + 5) * 3;
    CHECK(px[0] == 244 && px[1] == 35 && px[2] == 232);
    sd_image_free(&im);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_nice_ticks);
    RUN(test_svg_points_map_from_data);
    RUN(test_log_axis_and_two_runs);
    RUN(test_long_series_window_means);
    RUN(test_legend_overflow);
    RUN(test_errors);
    RUN(test_font_and_legend);
    test_sh("rm -rf %s", dir);
    TESTS_DONE();
}
