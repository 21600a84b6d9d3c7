/* segda synth: writes the built-in sim/real street-scene benchmark
 * (src/data/synth*.c does the work; this file only parses options). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/synth.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda synth --out DIR [options]\n"
            "\n"
            "Writes the built-in benchmark: street scenes rendered in a \"sim\" (game-like)\n"
            "and a \"real\" (camera-like) domain, with exact Cityscapes label ids.\n"
            "  DIR/sim/images/00001.png, DIR/sim/labels/00001.png          GTA5 layout\n"
            "  DIR/sim/instances/00001.png                                 instance ids (16-bit)\n"
            "  DIR/real/{leftImg8bit,gtFine}/{train,val}/CITY/...          Cityscapes layout\n"
            "      (gtFine: *_gtFine_labelIds.png and *_gtFine_instanceIds.png)\n"
            "  DIR/simple/{images,labels,instances}/00001.png (--simple-scenes N) one-class sim scenes\n"
            "  DIR/synthia/{RGB,GT/LABELS}/0000000.png    (--synthia)      SYNTHIA layout\n"
            "  DIR/crops/{train,val}/CLASS/00001.png      (--crops N)      image-folder classification\n"
            "\n"
            "options:\n"
            "  --out DIR          output directory (created if missing)\n"
            "  --n-sim N          sim images (default 400)\n"
            "  --n-real N         real train images (default 400)\n"
            "  --n-real-val N     real val images (default 100)\n"
            "  --size WxH         image size (default 256x128; any size from 8x8 up)\n"
            "  --seed S           seed (default 1); same seed, same bytes\n"
            "  --synthia          also write the sim images in SYNTHIA's layout (16-bit labels)\n"
            "  --crops N          N real-style crops per class for train, ceil(N/4) for val\n"
            "  --crop-size N      crop side in pixels (default 64)\n"
            "  --simple-scenes N  N VEIS-like simple sim scenes (Saleh et al. 2018): 1-3 objects\n"
            "                     of one thing class on plain road/sidewalk/facades/sky, cycling\n"
            "                     person, rider (with its two-wheeler), car, truck, bus, train,\n"
            "                     motorcycle, bicycle; read them as gta5:DIR/simple\n"
            "  --threads N        worker threads (default: all cores)\n"
            "  --force            write into a non-empty DIR, first removing what an earlier\n"
            "                     segda synth wrote there (sim, real, synthia, crops, simple;\n"
            "                     nothing else)\n"
            "  --quiet            no progress messages\n"
            "  --help             this text\n");
}

int cli_synth(int argc, char **argv)
{
    enum { O_OUT = 1, O_NSIM, O_NREAL, O_NVAL, O_SIZE, O_SEED, O_SYNTHIA, O_CROPS, O_CROPSIZE, O_THREADS, O_QUIET,
           O_HELP, O_FORCE, O_SIMPLE };
    static const struct option opts[] = {
        {"out", required_argument, 0, O_OUT},         {"n-sim", required_argument, 0, O_NSIM},
        {"n-real", required_argument, 0, O_NREAL},    {"n-real-val", required_argument, 0, O_NVAL},
        {"size", required_argument, 0, O_SIZE},       {"seed", required_argument, 0, O_SEED},
        {"synthia", no_argument, 0, O_SYNTHIA},       {"crops", required_argument, 0, O_CROPS},
        {"crop-size", required_argument, 0, O_CROPSIZE}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET},           {"help", no_argument, 0, O_HELP},
        {"force", no_argument, 0, O_FORCE},           {"simple-scenes", required_argument, 0, O_SIMPLE},
        {0, 0, 0, 0}};
    sd_synth_opts o;
    sd_synth_opts_init(&o);
    const char *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL, *want = "a non-negative integer";
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_NSIM: bad = cli_parse_int(optarg, 0, 10000000, &o.n_sim) ? NULL : "--n-sim"; break;
        case O_NREAL: bad = cli_parse_int(optarg, 0, 10000000, &o.n_real) ? NULL : "--n-real"; break;
        case O_NVAL: bad = cli_parse_int(optarg, 0, 10000000, &o.n_real_val) ? NULL : "--n-real-val"; break;
        case O_SIMPLE: bad = cli_parse_int(optarg, 0, 10000000, &o.n_simple) ? NULL : "--simple-scenes"; break;
        case O_CROPS: bad = cli_parse_int(optarg, 0, 10000000, &o.crops) ? NULL : "--crops"; break;
        case O_CROPSIZE:
            bad = cli_parse_int(optarg, 16, 1024, &o.crop_size) ? NULL : "--crop-size";
            want = "16..1024";
            break;
        case O_THREADS: bad = cli_parse_int(optarg, 0, 4096, &o.threads) ? NULL : "--threads"; break;
        case O_SIZE:
            bad = cli_parse_size(optarg, &o.w, &o.h) ? NULL : "--size";
            want = "WxH, each 8..16384";
            break;
        case O_SEED: bad = cli_parse_seed(optarg, &o.seed) ? NULL : "--seed"; break;
        case O_SYNTHIA: o.synthia = true; break;
        case O_QUIET: o.quiet = true; break;
        case O_FORCE: o.force = true; break;
        case O_HELP: usage(stdout); return 0;
        default: return cli_bad_option("synth", usage, argv);
        }
        if (bad)
            return cli_usage_error("synth", usage, "bad value '%s' for %s (expected %s)", optarg, bad, want);
    }
    if (optind < argc)
        return cli_usage_error("synth", usage, "unexpected argument '%s'", argv[optind]);
    if (!out)
        return cli_usage_error("synth", usage, "--out DIR is required");
    if (o.synthia && o.n_sim == 0)
        return cli_usage_error("synth", usage, "--synthia needs sim images (--n-sim > 0)");
    if (sd_synth_write(out, &o))
        return cli_fail("synth");
    return 0;
}
