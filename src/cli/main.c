/* segda: the command. Dispatches to one function per subcommand
 * (src/cli/cmd_*.c); global help and version live here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "segda/api.h" /* SD_VERSION */
#include "segda/core.h"
#include "segda/dist.h"
#include "segda/tensor.h"

/* segda devices: what this machine offers the compiled-in backends */
static int cli_devices(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: segda devices\n\nLists the CPU (model, threads) and each CUDA device with its memory,\n"
               "or why there is none.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "segda devices: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    char buf[4096];
    sd_devices_describe(buf, sizeof buf);
    fputs(buf, stdout);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"synth", cli_synth, "write the built-in sim/real street-scene benchmark"},
    {"check-data", cli_check_data, "check a dataset as it lies on disk"},
    {"models", cli_models, "list models with parameter counts and FLOPs"},
    {"predict", cli_predict, "segment images with a checkpoint"},
    {"eval", cli_eval, "score models or prediction PNGs as the Cityscapes evaluator does"},
    {"train", cli_train, "train or adapt a segmentation network"},
    {"pretrain", cli_pretrain, "classification pretraining of a backbone"},
    {"demo", cli_demo, "benchmark, train, adapt, evaluate, report"},
    {"gap", cli_gap, "measure the domain gap between two datasets"},
    {"bench", cli_bench, "time train/inference steps of the published models"},
    {"devices", cli_devices, "list the CPU and CUDA devices segda can use"},
    {"translate", cli_translate, "translate images with a generator (e.g. taskgan's G_S: real -> sim)"},
    {"export", cli_export, "write a checkpoint as an ONNX model"},
    {"plot", cli_plot, "loss and validation-mIoU curves of runs as SVG or PNG"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: segda COMMAND [options]   (segda help COMMAND or segda COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nenvironment:\n"
               "  SEGDA_CONV  the CPU convolution path: unset = the measured default (Winograd F(2x2,3x3)\n"
               "              for wide 3x3 layers, im2col + OpenBLAS for the rest); im2col or onednn force\n"
               "              one for every conv (im2col: the results of segda before Winograd, bit for bit);\n"
               "              hybrid (oneDNN for heads and small 3x3 layers) is opt-in\n"
               "  OMP_WAIT_POLICY  OpenMP's idle threads (segda sets passive unless given)\n");
}

int cli_fail(const char *cmd)
{
    fprintf(stderr, "segda %s: %s\n", cmd, sd_errmsg()[0] ? sd_errmsg() : "failed");
    return 1;
}

/* OpenMP workers that spin while they wait (libgomp's default) stall
 * training 5-10x as soon as anything else runs on the same cores; measured:
 * 0.3 against 3.7 it/s for deeplab-mini on 2 busy cores. libgomp reads
 * OMP_WAIT_POLICY when it loads, before main, so segda sets it and starts
 * itself again, once. A user's own setting is kept. */
static void prefer_passive_wait(char **argv)
{
    if (getenv("OMP_WAIT_POLICY"))
        return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with the default policy */
}

int main(int argc, char **argv)
{
    prefer_passive_wait(argv);
    /* `segda help CMD` is `segda CMD --help` */
    if (argc >= 3 && !strcmp(argv[1], "help")) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *args[] = {argv[2], "--help", NULL};
                return commands[i].run(2, args);
            }
        fprintf(stderr, "segda help: unknown command '%s'\n", argv[2]);
        usage(stderr);
        return 2;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("segda %s (%s)\nbackends: %s\n", sd_version(), sd_dist_describe(), sd_backends_built());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name))
            continue;
        /* under mpirun, train is one rank of a data-parallel run; MPI starts
         * after the re-exec above, once per process */
        if (!strcmp(argv[1], "train") || !strcmp(argv[1], "pretrain")) {
            if (sd_dist_init(&argc, &argv)) {
                fprintf(stderr, "segda %s: %s\n", argv[1], sd_errmsg());
                return 1;
            }
        }
        int rc = commands[i].run(argc - 1, argv + 1);
        sd_dist_finalize();
        return rc;
    }
    fprintf(stderr, "segda: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
