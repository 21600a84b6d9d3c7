/* segda export: a checkpoint as an ONNX model (sd_model_export_onnx,
 * src/nn/onnx.c). */
#include <getopt.h>
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/checkpoint.h"
#include "segda/onnx.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda export --onnx OUT.onnx CKPT [--size WxH]\n"
            "\n"
            "Writes the checkpoint's segmentation network as an ONNX model (opset 13) for a\n"
            "fixed input size: input \"input\" [1, 3, H, W], the image normalised as the\n"
            "checkpoint says (metadata segda.norm: caffe = BGR minus the mean, imagenet = RGB\n"
            "in 0..1 minus the mean over the std); output \"logits\", the main classifier's\n"
            "logits at the network's output resolution (eval mode, running BN statistics).\n"
            "deeplab-mini, DeepLab-v2 (VGG-16, ResNet), DeepLab-v3 and PSPNet export; an op\n"
            "ONNX lacks fails naming it, and nothing is written.\n"
            "  --size WxH         input size (default 512x256; PSPNet needs a feature map that\n"
            "                     divides by its pooling bins 1, 2, 3 and 6)\n"
            "  --strict           fail on any missing, unexpected or mis-shaped checkpoint tensor\n"
            "  --help             this text\n");
}

int cli_export(int argc, char **argv)
{
    static const struct option lo[] = {
        {"onnx", required_argument, 0, 'o'}, {"size", required_argument, 0, 's'},
        {"strict", no_argument, 0, 'x'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *out = NULL;
    int w = 512, h = 256;
    bool strict = false;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 's':
            if (!cli_parse_size(optarg, &w, &h))
                return cli_usage_error("export", usage, "--size '%s', expected WxH (8..16384)", optarg);
            break;
        case 'x': strict = true; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("export", usage, argv);
        }
    }
    if (!out)
        return cli_usage_error("export", usage, "--onnx OUT.onnx is required");
    if (optind != argc - 1)
        return cli_usage_error("export", usage, "expected one checkpoint, got %d arguments", argc - optind);
    sd_model *m;
    sd_norm norm;
    if (sd_model_load(argv[optind], strict, &m, &norm))
        return cli_fail("export");
    sd_status st = sd_model_export_onnx(m, norm, w, h, out);
    sd_model_free(m);
    if (st)
        return cli_fail("export");
    printf("segda export: %s (%dx%d input)\n", out, w, h);
    return 0;
}
