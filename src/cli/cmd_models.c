/* segda models: the model table with parameter counts and GFLOPs at an input
 * size, or (--names) every tensor name and shape a model expects, which
 * tools/pth2safetensors.py checks converted checkpoints against. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "nn/nn.h"
#include "segda/detect.h"
#include "segda/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda models [--size WxH] [--classes N] [--aux] [--aspp-two-branch] [--output-stride 8|16]\n"
            "       segda models --names NAME [--classes N] [--aux] [--aspp-two-branch] [--output-stride 8|16]\n"
            "\n"
            "Lists the models segda builds, with parameters and GFLOPs (2 x multiply-adds\n"
            "of the convolutions, batch 1) at --size, and each model's input normalisation.\n"
            "  --size WxH           input size for the GFLOPs (default 1024x512)\n"
            "  --classes N          output classes, 1..1000 (default 19)\n"
            "  --aux                count the auxiliary head (on layer3/conv4) as well\n"
            "  --aspp-two-branch    DeepLab-v2 classifier summing only the first two ASPP\n"
            "                       branches, as the AdaptSegNet code does\n"
            "  --output-stride N    8 (default) or 16; ResNet models only\n"
            "  --names NAME         print every tensor model NAME expects, one per line:\n"
            "                       the name, then the shape (what tools/pth2safetensors.py\n"
            "                       checks converted checkpoints against)\n"
            "  --help               this text\n");
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
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (!cli_parse_size(optarg, &w, &h))
                return cli_usage_error("models", usage, "--size '%s', expected WxH (8..16384)", optarg);
            break;
        case 'c':
            if (!cli_parse_int(optarg, 1, 1000, &classes))
                return cli_usage_error("models", usage, "--classes '%s', expected 1..1000", optarg);
            break;
        case 'o':
            if (!cli_parse_int(optarg, 8, 16, &os) || (os != 8 && os != 16))
                return cli_usage_error("models", usage, "--output-stride '%s', expected 8 or 16", optarg);
            break;
        case 'n': names = optarg; break;
        case 'a': aux = true; break;
        case '2': two = true; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("models", usage, argv);
        }
    }
    if (optind < argc)
        return cli_usage_error("models", usage, "unexpected argument '%s'", argv[optind]);
    if (names) {
        sd_model_opts o = sd_model_opts_default(names);
        o.classes = classes;
        o.aux = aux;
        o.aspp_two_branch = two;
        o.output_stride = os;
        sd_model *m = NULL;
        sd_detector *det = NULL;
        sd_detector_opts dopt = sd_detector_opts_default(classes);
        if (!strcmp(names, SD_DETECTOR_MODEL) ? sd_detector_create(&dopt, 0, &det)
                                              : nn_model_create_zeroed(&o, &m)) /* names and shapes only */
            return cli_fail("models");
        sd_params *p = det ? sd_detector_params(det) : sd_model_params(m);
        for (int i = 0; i < p->n; i++) {
            const sd_tensor *x = p->tensors[i];
            printf("%s ", x->name);
            for (int d = 0; d < x->ndim; d++)
                printf(d ? ",%d" : "%d", x->shape[d]);
            printf("\n");
        }
        if (m)
            sd_model_free(m);
        sd_detector_free(det);
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
