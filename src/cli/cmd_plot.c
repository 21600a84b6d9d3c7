/* segda plot: training curves of runs (plot.h) as SVG or PNG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "segda/plot.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: segda plot RUNDIR... --out FILE.svg|FILE.png [--size WxH] [--title TEXT] [--label NAME]...\n"
               "\n"
               "Draws the loss terms (top panel: every run's terms on one axis, log scale when they span more\n"
               "than a factor of 30; series longer than 400 points as window means) and the validation\n"
               "mIoU-19 (bottom panel, percent) of each run directory from its log.jsonl, with ticks, axis\n"
               "labels and a legend. Several runs share the chart; legend entries are 'RUN TERM'.\n"
               "\n"
               "  --out FILE     .svg (text) or .png (drawn by segda)\n"
               "  --size WxH     chart size in pixels (default 800x600)\n"
               "  --title TEXT   a title over the chart\n"
               "  --label NAME   legend name of the next run (repeat in order; default the directory name)\n"
               "\n"
               "For live curves and image strips use TensorBoard: tensorboard --logdir RUNDIR/tb\n");
}

int cli_plot(int argc, char **argv)
{
    const char *out = NULL;
    sd_plot_opts o = {0};
    const char **dirs = calloc((size_t)argc + 1, sizeof *dirs), **labels = calloc((size_t)argc + 1, sizeof *labels);
    int n = 0, nl = 0, rc = 2;
    if (!dirs || !labels)
        goto done;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            rc = 0;
            goto done;
        }
        if (a[0] == '-' && a[1] == '-' && i + 1 >= argc) {
            fprintf(stderr, "segda plot: %s needs a value\n", a);
            goto done;
        }
        if (!strcmp(a, "--out"))
            out = argv[++i];
        else if (!strcmp(a, "--title"))
            o.title = argv[++i];
        else if (!strcmp(a, "--label"))
            labels[nl++] = argv[++i];
        else if (!strcmp(a, "--size")) {
            char x;
            if (sscanf(argv[++i], "%d%c%d", &o.width, &x, &o.height) != 3 || x != 'x') {
                fprintf(stderr, "segda plot: --size %s: expected WxH, e.g. 800x600\n", argv[i]);
                goto done;
            }
        } else if (a[0] == '-') {
            fprintf(stderr, "segda plot: unknown option %s\n", a);
            usage(stderr);
            goto done;
        } else
            dirs[n++] = a;
    }
    if (!n || !out) {
        fprintf(stderr, "segda plot: %s\n", !n ? "no run directory given" : "--out FILE.svg|FILE.png is required");
        usage(stderr);
        goto done;
    }
    if (nl > n) {
        fprintf(stderr, "segda plot: %d --label for %d run directories\n", nl, n);
        goto done;
    }
    rc = sd_plot_runs(n, dirs, labels, out, &o) ? cli_fail("plot") : 0;
    if (!rc)
        fprintf(stderr, "plot: wrote %s\n", out);
done:
    free(dirs);
    free(labels);
    return rc;
}
