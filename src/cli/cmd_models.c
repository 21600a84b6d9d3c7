/* segda models: the model table with parameter counts and GFLOPs at an input
 * size, or (--names) every tensor name and shape a model expects, which
 * tools/pth2safetensors.py checks converted checkpoints against. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "segda/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda models [--size WxH] [--classes N] [--aux] [--aspp-two-branch] [--output-stride 8|16]\n"
            "       segda models --names NAME [--classes N] [--aux] [--aspp-two-branch]\n"
            "\n"
            "Lists the models segda builds, with parameters and GFLOPs (2 x multiply-adds\n"
            "of the convolutions, batch 1) at --size (default 1024x512). --names prints\n"
            "every tensor NAME expects, one per line: name, then the shape.\n");
}

int cli_models(int argc, char **argv)
{
    static const struct option lo[] = {
        {"size", required_argument, 0, 's'},  {"classes", required_argument, 0, 'c'},
        {"names", required_argument, 0, 'n'}, {"aux", no_argument, 0, 'a'},
        {"aspp-two-branch", no_argument, 0, '2'}, {"output-stride", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    int w = 1024, h = 512, classes = 19, os = 0;
    bool aux = false, two = false;
    const char *names = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (sscanf(optarg, "%dx%d", &w, &h) != 2 || w < 8 || h < 8 || w > 16384 || h > 16384) {
                fprintf(stderr, "segda models: --size '%s', expected WxH (8..16384)\n", optarg);
                return 2;
            }
            break;
        case 'c': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1000) {
                fprintf(stderr, "segda models: --classes '%s', expected 1..1000\n", optarg);
                return 2;
            }
            classes = (int)v;
            break;
        }
        case 'o':
            os = atoi(optarg);
            if (os != 8 && os != 16) {
                fprintf(stderr, "segda models: --output-stride '%s', expected 8 or 16\n", optarg);
                return 2;
            }
            break;
        case 'n': names = optarg; break;
        case 'a': aux = true; break;
        case '2': two = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "segda models: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (names) {
        sd_model_opts o = sd_model_opts_default(names);
        o.classes = classes;
        o.aux = aux;
        o.aspp_two_branch = two;
        o.output_stride = os;
        sd_model *m;
        if (sd_model_create(&o, &m))
            return cli_fail("models");
        sd_params *p = sd_model_params(m);
        for (int i = 0; i < p->n; i++) {
            const sd_tensor *x = p->tensors[i];
            printf("%s ", x->name);
            for (int d = 0; d < x->ndim; d++)
                printf(d ? ",%d" : "%d", x->shape[d]);
            printf("\n");
        }
        sd_model_free(m);
        return 0;
    }
    int n;
    const sd_model_info *info = sd_model_list(&n);
    printf("%-22s %10s %10s  %-8s  %s\n", "model", "params(M)", "GFLOPs", "norm", "description");
    char sz[32];
    snprintf(sz, sizeof sz, "%dx%d", w, h);
    for (int i = 0; i < n; i++) {
        sd_model_opts o = sd_model_opts_default(info[i].name);
        o.classes = classes;
        o.aux = aux;
        o.aspp_two_branch = two;
        o.output_stride = os;
        size_t params;
        double gf;
        if (sd_model_cost(&o, h, w, &params, &gf)) {
            printf("%-22s %10s %10s  %-8s  (%s)\n", info[i].name, "-", "-", sd_norm_name(info[i].default_norm),
                   sd_errmsg());
            continue;
        }
        printf("%-22s %10.2f %10.1f  %-8s  %s\n", info[i].name, params / 1e6, gf, sd_norm_name(info[i].default_norm),
               info[i].description);
    }
    printf("(GFLOPs at %s, %d classes%s)\n", sz, classes, aux ? ", with aux heads" : "");
    return 0;
}
