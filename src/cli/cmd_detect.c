/* segda train --method detect: the detector's training task (options, the
 * run directory); the work is sd_detect_train, on the training driver
 * (src/train/driver.c), which prints a progress line per step. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/files.h"
#include "segda/detect.h"

static void usage(FILE *f)
{
    sd_detect_train_opts d = sd_detect_train_opts_default();
    fprintf(f,
            "usage: segda train --method detect --data SPEC --out DIR [options]\n"
            "\n"
            "Trains the instance detector (Mask R-CNN R50-FPN as torchvision's\n"
            "maskrcnn_resnet50_fpn, background + the 8 Cityscapes thing classes) on a\n"
            "dataset with instance files, e.g. gta5:DIR/sim or gta5:DIR/simple from segda\n"
            "synth. One image per forward. Writes\n"
            "DIR/detector.safetensors (weights, optimiser state, iteration), DIR/log.csv\n"
            "and DIR/summary.json; give the file to segda predict/eval --detector.\n"
            "  --data SPEC         training dataset (instance files required)\n"
            "  --out DIR           run directory (created)\n"
            "  --iters N           steps (default %lld)\n"
            "  --batch N           images per step, losses averaged (default %d)\n"
            "  --lr F              SGD learning rate (default %g)\n"
            "  --momentum F        (default %g)\n"
            "  --weight-decay F    (default %g)\n"
            "  --warmup N          linear warm-up steps from lr/1000 (default %lld)\n"
            "  --min-size N        short side of the network input (default %d)\n"
            "  --max-size N        long side at most (default %d)\n"
            "  --anchor-size N     anchor side on P2, doubled per level to P6 (default %d:\n"
            "                      32..512 as torchvision's; the benchmark's 256x128 images\n"
            "                      at --min-size 128: 8, see tools/measure_detect.sh)\n"
            "  --box-batch N       proposals sampled per image for the box head, a quarter\n"
            "                      of them positive at most (default %d)\n"
            "  --save-every N      checkpoint every N steps, and at the end (default %d)\n"
            "  --init FILE         start from a detector file: tensors of matching shape\n"
            "                      (converted COCO weights: all but the 91-class predictors)\n"
            "  --bn MODE           the backbone's batch norm: frozen (FrozenBatchNorm2d, conv1\n"
            "                      and layer1 frozen: torchvision with pretrained weights),\n"
            "                      train (BatchNorm2d, batch statistics, every layer trained:\n"
            "                      torchvision without them) or auto: train without --init,\n"
            "                      frozen with it; --resume keeps the run's (default auto)\n"
            "  --resume            continue DIR/detector.safetensors\n"
            "  --seed N            weights, sampling and image order (default %llu)\n"
            "  --threads N         threads (default: all cores, or OMP_NUM_THREADS)\n",
            (long long)d.iters, d.batch, d.lr, d.momentum, d.weight_decay, (long long)d.warmup_iters, d.det.min_size,
            d.det.max_size, d.det.anchor_size, d.det.box_batch, d.save_every, (unsigned long long)d.seed);
}

int cli_detect_train(int argc, char **argv)
{
    enum { O_DATA = 256, O_OUT, O_ITERS, O_BATCH, O_LR, O_MOM, O_WD, O_WARM, O_MIN, O_MAX, O_SAVE, O_INIT, O_RESUME,
           O_SEED, O_METHOD, O_ANCHOR, O_BOXB, O_BN, O_THREADS };
    static const struct option lo[] = {
        {"data", required_argument, 0, O_DATA},       {"out", required_argument, 0, O_OUT},
        {"iters", required_argument, 0, O_ITERS},     {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},           {"momentum", required_argument, 0, O_MOM},
        {"weight-decay", required_argument, 0, O_WD}, {"warmup", required_argument, 0, O_WARM},
        {"min-size", required_argument, 0, O_MIN},    {"max-size", required_argument, 0, O_MAX},
        {"save-every", required_argument, 0, O_SAVE}, {"init", required_argument, 0, O_INIT},
        {"resume", no_argument, 0, O_RESUME},         {"seed", required_argument, 0, O_SEED},
        {"method", required_argument, 0, O_METHOD},   {"help", no_argument, 0, 'h'},
        {"anchor-size", required_argument, 0, O_ANCHOR}, {"box-batch", required_argument, 0, O_BOXB},
        {"bn", required_argument, 0, O_BN},           {"threads", required_argument, 0, O_THREADS},
        {0, 0, 0, 0},
    };
    sd_detect_train_opts o = sd_detect_train_opts_default();
    long n;
    int threads = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        const char *bad = NULL;
        switch (ch) {
        case O_DATA: o.data = optarg; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_ITERS: bad = cli_parse_long(optarg, 1, 100000000, &n) ? (o.iters = n, NULL) : "--iters"; break;
        case O_BATCH: bad = cli_parse_int(optarg, 1, 1024, &o.batch) ? NULL : "--batch"; break;
        case O_LR: bad = cli_parse_float(optarg, 1e-9f, 10.0f, &o.lr) ? NULL : "--lr"; break;
        case O_MOM: bad = cli_parse_float(optarg, 0.0f, 0.999f, &o.momentum) ? NULL : "--momentum"; break;
        case O_WD: bad = cli_parse_float(optarg, 0.0f, 1.0f, &o.weight_decay) ? NULL : "--weight-decay"; break;
        case O_WARM: bad = cli_parse_long(optarg, 0, 100000000, &n) ? (o.warmup_iters = n, NULL) : "--warmup"; break;
        case O_MIN: bad = cli_parse_int(optarg, 32, 4096, &o.det.min_size) ? NULL : "--min-size"; break;
        case O_MAX: bad = cli_parse_int(optarg, 32, 8192, &o.det.max_size) ? NULL : "--max-size"; break;
        case O_ANCHOR: bad = cli_parse_int(optarg, 1, 4096, &o.det.anchor_size) ? NULL : "--anchor-size"; break;
        case O_BOXB: bad = cli_parse_int(optarg, 1, 100000, &o.det.box_batch) ? NULL : "--box-batch"; break;
        case O_SAVE: bad = cli_parse_int(optarg, 0, 100000000, &o.save_every) ? NULL : "--save-every"; break;
        case O_INIT: o.init = optarg; break;
        case O_BN:
            if (!sd_det_bn_parse(optarg, &o.bn))
                return cli_usage_error("train", usage, "--bn '%s': expected auto, frozen or train", optarg);
            break;
        case O_RESUME: o.resume = true; break;
        case O_SEED: bad = cli_parse_seed(optarg, &o.seed) ? NULL : "--seed"; break;
        case O_THREADS: bad = cli_parse_int(optarg, 1, 4096, &threads) ? NULL : "--threads"; break;
        case O_METHOD:
            if (strcmp(optarg, "detect"))
                return cli_usage_error("train", usage, "--method %s reached the detector trainer", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("train", usage, argv);
        }
        if (bad)
            return cli_usage_error("train", usage, "%s '%s': out of range or not a number", bad, optarg);
    }
    if (optind < argc)
        return cli_usage_error("train", usage, "unexpected argument '%s'", argv[optind]);
    if (!o.data || !o.out_dir)
        return cli_usage_error("train", usage, "--method detect needs --data SPEC and --out DIR");
    if (o.det.max_size < o.det.min_size)
        return cli_usage_error("train", usage, "--max-size %d is below --min-size %d", o.det.max_size,
                               o.det.min_size);
    if (threads > 0)
        sd_set_threads(threads);
    if (sd_mkdir_p(o.out_dir))
        return cli_fail("train");
    float first = 0, last = 0;
    if (sd_detect_train(&o, &first, &last))
        return cli_fail("train");
    printf("detector: %s/detector.safetensors (loss %.4f -> %.4f)\n", o.out_dir, first, last);
    return 0;
}
