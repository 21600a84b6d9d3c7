/* segda gap: measures the gap between two datasets: SVM domain accuracy,
 * MMD, retrieval and PCA on features (from a model's layer or from files),
 * and per-class KL of pixel-proportion histograms from labels alone. The
 * measurement is the library's (sd_gap_run, src/gap/run.c); this file
 * parses the options. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/api.h" /* sd_version */
#include "segda/checkpoint.h"
#include "segda/data.h"
#include "segda/gap.h"
#include "segda/infer.h"
#include "segda/progress.h"


static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda gap --model CKPT --layer NAME --a SPEC --b SPEC [options]\n"
            "       segda gap --features-a FILE --features-b FILE [--a SPEC --b SPEC] [options]\n"
            "       segda gap --rgb --a SPEC --b SPEC [options]\n"
            "       segda gap --labels-only --a SPEC --b SPEC [--json FILE]\n"
            "       segda gap --objects shape|texture|both --a SPEC --b SPEC [--crop N] [options]\n"
            "\n"
            "Measures the gap between domain A and domain B: held-out accuracy of a linear\n"
            "(liblinear) and a cubic-kernel (libsvm) SVM telling them apart (stratified k-fold,\n"
            "features standardised; 0.5 = indistinguishable), the unbiased MMD^2 with a Gaussian\n"
            "kernel (median-heuristic bandwidth) and its permutation p-value, the fraction of\n"
            "the k nearest neighbours of A rows that come from B (0.5 = mixed, 0 = apart), a\n"
            "PCA plot, and per class the KL divergence KL(A||B) in nats between histograms of\n"
            "the class's pixel share per image (labels only; 20 bins on [0, 1], 0.01 of mass\n"
            "added to every bin of the normalised histogram so KL stays finite).\n"
            "\n"
            "  --a SPEC, --b SPEC   datasets: gta5:ROOT, synthia:ROOT, cityscapes:ROOT[:SPLIT],\n"
            "                       folder:ROOT (their labels give class_kl)\n"
            "  --model CKPT         checkpoint whose features are measured (with --layer)\n"
            "  --layer NAME         layer4, layer3, conv5/fc7 (VGG), logits, softmax, aux_logits\n"
            "  --size WxH           with --model: resize images to WxH for the network (PIL\n"
            "                       bicubic; default: each image at its own size)\n"
            "  --features-a FILE    A's features instead of a model: a 2-D float32/float64 .npy\n"
            "  --features-b FILE    (numpy.save) or text, one row per line, numbers separated\n"
            "                       by commas or blanks, '#' lines skipped\n"
            "  --rgb                features without a model: the images' colours, box\n"
            "                       downsampled 8x (a pixel-statistics baseline)\n"
            "  --labels-only        only class_kl, from --a and --b labels\n"
            "  --objects KIND       the shape-vs-texture test of Saleh et al. (ECCV 2018): one row per\n"
            "                       thing instance (instance files needed: segda synth writes them) of\n"
            "                       at least 64 pixels, its box squared and sampled at --crop N x N\n"
            "                       (default 16): shape = the silhouette (0/1), texture = the colours\n"
            "                       inside it; the SVMs' domain accuracy for each KIND (both: the two)\n"
            "  --lanemarking-as-road SYNTHIA labels: lane markings (id 22) are road (CBST/CRST)\n"
            "  --n N                images used per dataset, a seeded sample (default: all for\n"
            "                       labels, %d with --model or --rgb)\n"
            "  --pixels K           with --model/--rgb: K feature-map positions per image (seeded)\n"
            "                       instead of one globally averaged row per image\n"
            "  --max-rows M         feature rows per domain (default 1000); both domains keep the\n"
            "                       same number, min(rows of A, rows of B, M), a seeded sample\n"
            "  --k K                retrieval neighbours (default 5)\n"
            "  --metric l2|cosine   retrieval distance on standardised features (default l2)\n"
            "  --folds F            SVM cross-validation folds (default 5)\n"
            "  --perm P             MMD permutations (default 200)\n"
            "  --bins B             histogram bins for class_kl (default 20)\n"
            "  --seed S             seed of every sample, split and permutation (default 0)\n"
            "  --out DIR            write pca.svg, retrieval.png (--model/--rgb) and gap.json\n"
            "  --json FILE          write the numbers as JSON\n"
            "  --threads N          label files read in parallel (default 4)\n"
            "  --device D           cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P        f32 (default), bf16 or bf16-emulated: compute dtype of a model's convolutions\n"
            "  -h, --help           this help\n"
            "Progress: a bar on a terminal, else a line every 5 s once feature extraction takes that long.\n",
            SD_GAP_MODEL_IMAGES);
}

/* A seeded choice of m of the n samples (all when m <= 0 or m >= n), in
 * dataset order. */

int cli_gap(int argc, char **argv)
{
    enum {
        OPT_A = 256, OPT_B, OPT_MODEL, OPT_LAYER, OPT_FA, OPT_FB, OPT_LABELS, OPT_N, OPT_PIXELS, OPT_MAXROWS,
        OPT_K, OPT_METRIC, OPT_FOLDS, OPT_PERM, OPT_BINS, OPT_SEED, OPT_OUT, OPT_JSON, OPT_THREADS, OPT_RGB,
        OPT_SIZE, OPT_LANE, OPT_OBJECTS, OPT_CROP,
    };
    static const struct option longopts[] = {
        {"a", required_argument, 0, OPT_A},           {"b", required_argument, 0, OPT_B},
        {"model", required_argument, 0, OPT_MODEL},   {"layer", required_argument, 0, OPT_LAYER},
        {"features-a", required_argument, 0, OPT_FA}, {"features-b", required_argument, 0, OPT_FB},
        {"labels-only", no_argument, 0, OPT_LABELS},  {"n", required_argument, 0, OPT_N},
        {"pixels", required_argument, 0, OPT_PIXELS}, {"max-rows", required_argument, 0, OPT_MAXROWS},
        {"k", required_argument, 0, OPT_K},           {"metric", required_argument, 0, OPT_METRIC},
        {"folds", required_argument, 0, OPT_FOLDS},   {"perm", required_argument, 0, OPT_PERM},
        {"bins", required_argument, 0, OPT_BINS},     {"seed", required_argument, 0, OPT_SEED},
        {"out", required_argument, 0, OPT_OUT},       {"json", required_argument, 0, OPT_JSON},
        {"threads", required_argument, 0, OPT_THREADS}, {"precision", required_argument, 0, 'P'}, {"device", required_argument, 0, 'D'}, {"rgb", no_argument, 0, OPT_RGB},
        {"size", required_argument, 0, OPT_SIZE},      {"lanemarking-as-road", no_argument, 0, OPT_LANE},
        {"objects", required_argument, 0, OPT_OBJECTS}, {"crop", required_argument, 0, OPT_CROP},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *spec[2] = {NULL, NULL}, *ckpt = NULL, *layer = NULL, *feat[2] = {NULL, NULL};
    const char *out_dir = NULL, *json = NULL;
    bool labels_only = false, rgb = false, lanemarking = false;
    int n_img = -1, pixels = 0, bins = SD_GAP_KL_BINS, threads = 4, net_w = 0, net_h = 0, objects = 0, crop = 16;
    sd_gap_options o;
    sd_gap_options_default(&o);
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *what = NULL;
        switch (c) {
        case OPT_A: spec[0] = optarg; break;
        case OPT_B: spec[1] = optarg; break;
        case OPT_MODEL: ckpt = optarg; break;
        case OPT_LAYER: layer = optarg; break;
        case OPT_FA: feat[0] = optarg; break;
        case OPT_FB: feat[1] = optarg; break;
        case OPT_LABELS: labels_only = true; break;
        case OPT_LANE: lanemarking = true; break;
        case OPT_RGB: rgb = true; break;
        case OPT_OBJECTS:
            objects = !strcmp(optarg, "shape") ? 1 : !strcmp(optarg, "texture") ? 2 : !strcmp(optarg, "both") ? 3 : 0;
            if (!objects)
                what = "--objects: expected shape, texture or both";
            break;
        case OPT_CROP: if (!cli_parse_int(optarg, 2, 256, &crop)) what = "--crop: expected 2..256"; break;
        case OPT_SIZE: {
            char tail;
            if (sscanf(optarg, "%dx%d%c", &net_w, &net_h, &tail) != 2 || net_w < 8 || net_h < 8 || net_w > 16384 ||
                net_h > 16384)
                what = "--size: expected WxH (8..16384)";
            break;
        }
        case OPT_N: if (!cli_parse_int(optarg, 1, 1 << 30, &n_img)) what = "--n: expected an integer >= 1"; break;
        case OPT_PIXELS: if (!cli_parse_int(optarg, 1, 1 << 20, &pixels)) what = "--pixels: expected an integer >= 1"; break;
        case OPT_MAXROWS: if (!cli_parse_int(optarg, 10, 1 << 16, &o.max_per_domain)) what = "--max-rows: expected 10..65536"; break;
        case OPT_K: if (!cli_parse_int(optarg, 1, 1000, &o.k)) what = "--k: expected 1..1000"; break;
        case OPT_FOLDS: if (!cli_parse_int(optarg, 2, 100, &o.folds)) what = "--folds: expected 2..100"; break;
        case OPT_PERM: if (!cli_parse_int(optarg, 0, 1000000, &o.n_perm)) what = "--perm: expected 0..1000000"; break;
        case OPT_BINS: if (!cli_parse_int(optarg, 1, SD_GAP_MAX_BINS, &bins)) what = "--bins: expected 1..100"; break;
        case 'D': {
            int r = cli_device("gap", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'P':
            if (cli_precision("gap", usage, optarg))
                return 2;
            break;
        case OPT_THREADS: if (!cli_parse_int(optarg, 1, 1024, &threads)) what = "--threads: expected 1..1024"; break;
        case OPT_SEED:
            if (!cli_parse_seed(optarg, &o.seed))
                what = "--seed: expected a non-negative integer";
            break;
        case OPT_METRIC:
            if (!strcmp(optarg, "l2") || !strcmp(optarg, "L2"))
                o.metric = SD_GAP_METRIC_L2;
            else if (!strcmp(optarg, "cosine"))
                o.metric = SD_GAP_METRIC_COSINE;
            else
                what = "--metric: expected l2 or cosine";
            break;
        case OPT_OUT: out_dir = optarg; break;
        case OPT_JSON: json = optarg; break;
        case 'h': usage(stdout); return 0;
        default: bad = 1; break;
        }
        if (what) {
            fprintf(stderr, "segda gap: %s (got '%s')\n", what, optarg);
            bad = 1;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "segda gap: unexpected argument '%s'\n", argv[optind]);
        bad = 1;
    }
    sd_gap_run_opts r;
    sd_gap_run_opts_init(&r);
    r.a = spec[0], r.b = spec[1], r.model = ckpt, r.layer = layer, r.features_a = feat[0], r.features_b = feat[1];
    r.labels_only = labels_only, r.rgb = rgb, r.lanemarking_as_road = lanemarking, r.objects = objects;
    r.crop = crop, r.n_images = n_img, r.pixels = pixels, r.bins = bins, r.threads = threads;
    r.net_w = net_w, r.net_h = net_h, r.out_dir = out_dir, r.json = json, r.measure = o, r.table = stdout;
    const char *why = bad ? NULL : sd_gap_run_check(&r);
    if (why) {
        fprintf(stderr, "segda gap: %s\n", why);
        bad = 1;
    }
    if (bad) {
        usage(stderr);
        return 2;
    }
    if (sd_gap_run(&r))
        return cli_fail("gap");
    if (out_dir && !objects)
        fprintf(stderr, "segda gap: wrote %s/{%sgap.json}\n", out_dir,
                ckpt || rgb ? "pca.svg,retrieval.png," : feat[0] ? "pca.svg," : "");
    return 0;
}
