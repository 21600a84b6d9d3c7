/* segda pretrain: classification pretraining of a backbone on an image-folder
 * dataset (src/train/pretrain.c does the work; this file parses options, takes
 * a resumed run's options from its checkpoint and routes Ctrl-C to a clean
 * stop). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "segda/dist.h"
#include "cli/cli.h"
#include "segda/pretrain.h"

static void usage(FILE *f)
{
    sd_pretrain_opts d;
    sd_pretrain_opts_init(&d);
    fprintf(f,
            "usage: segda pretrain --data DIR --out CKPT [options]\n"
            "\n"
            "Trains a segmentation model's backbone as an image classifier (global average\n"
            "pool of the last backbone block, a linear layer, cross-entropy): the stand-in\n"
            "for ImageNet initialisation. DIR/train/CLASS/*.png|jpg and DIR/val/CLASS/*\n"
            "(classes = sorted folder names; `segda synth --crops N` writes DIR/crops).\n"
            "The checkpoint holds the whole model (segmentation head at its initial values)\n"
            "plus the classifier under \"pretrain:\"; start from it with\n"
            "`segda train --init CKPT --model NAME`.\n"
            "\n"
            "options:\n"
            "  --data DIR       image-folder dataset (train/ and val/)\n"
            "  --out CKPT       checkpoint to write (.safetensors)\n"
            "  --model NAME     model whose backbone to train (default %s; see `segda models`)\n"
            "  --iters N        iterations (default %d)\n"
            "  --batch B        images per iteration (default %d)\n"
            "  --lr X           SGD learning rate, momentum 0.9, poly decay 0.9 (default %g)\n"
            "  --weight-decay X (default %g)\n"
            "  --size S         network input side in pixels (default %d)\n"
            "  --scale-min X    random crops cover [X, 1] of the image's area (default %g)\n"
            "  --seed S         seed (default %llu); same seed and threads, same bytes\n"
            "  --threads N      threads (default: all cores)\n"
            "  --device D       cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P    f32 (default), bf16 or bf16-emulated: the convolutions' compute dtype\n"
            "  --val-every K    val top-1 every K iterations, 0 = only at the end (default %d)\n"
            "  --log-every K    progress line every K iterations (default %d)\n"
            "  --save-every K   also save the resumable state every K iterations (default:\n"
            "                   at each val evaluation and at the end)\n"
            "  --resume         continue the run in --out; its options come from the file\n"
            "                   (a different --iters is allowed; other run options must match)\n"
            "  --stop-after N   stop and save after N iterations, as Ctrl-C would\n"
            "  --quiet          no progress lines\n"
            "  --tb DIR         TensorBoard event file in DIR (loss, lr, val top-1); default CKPT.tb/\n"
            "                   beside the checkpoint, 'none' = no file (tensorboard --logdir DIR)\n"
            "  --help           this text\n",
            d.model, d.iters, d.batch, (double)d.lr, (double)d.weight_decay, d.size, (double)d.scale_min,
            (unsigned long long)d.seed, d.val_every, d.log_every);
}

int cli_pretrain(int argc, char **argv)
{
    enum { O_DATA = 1, O_OUT, O_MODEL, O_ITERS, O_BATCH, O_LR, O_WD, O_SIZE, O_SCALE, O_SEED, O_THREADS, O_VAL,
           O_LOG, O_QUIET, O_HELP, O_SAVE, O_RESUME, O_STOP };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA},       {"out", required_argument, 0, O_OUT},
        {"model", required_argument, 0, O_MODEL},     {"iters", required_argument, 0, O_ITERS},
        {"batch", required_argument, 0, O_BATCH},     {"lr", required_argument, 0, O_LR},
        {"weight-decay", required_argument, 0, O_WD}, {"size", required_argument, 0, O_SIZE},
        {"scale-min", required_argument, 0, O_SCALE}, {"seed", required_argument, 0, O_SEED},
        {"threads", required_argument, 0, O_THREADS}, {"val-every", required_argument, 0, O_VAL},
        {"log-every", required_argument, 0, O_LOG},   {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},             {"save-every", required_argument, 0, O_SAVE},
        {"resume", no_argument, 0, O_RESUME},         {"stop-after", required_argument, 0, O_STOP},
        {"precision", required_argument, 0, 'P'},    {"tb", required_argument, 0, 'T'},
        {"device", required_argument, 0, 'D'},
        {0, 0, 0, 0}};
    sd_pretrain_opts o;
    sd_pretrain_opts_init(&o);
    int threads = 0;
    bool quiet = false;
    unsigned given = 0; /* options set on the command line, by their O_ value */
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL, *want = "a positive integer";
        if (c > 0 && c < 32)
            given |= 1u << c;
        switch (c) {
        case O_DATA: o.data = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_MODEL: o.model = optarg; break;
        case O_ITERS: bad = cli_parse_int(optarg, 1, 100000000, &o.iters) ? NULL : "--iters"; break;
        case O_BATCH:
            bad = cli_parse_int(optarg, 1, 4096, &o.batch) ? NULL : "--batch";
            want = "1..4096";
            break;
        case O_LR:
            bad = cli_parse_float(optarg, 0, 100, &o.lr) ? NULL : "--lr";
            want = "a number in 0..100";
            break;
        case O_WD:
            bad = cli_parse_float(optarg, 0, 1, &o.weight_decay) ? NULL : "--weight-decay";
            want = "a number in 0..1";
            break;
        case O_SIZE:
            bad = cli_parse_int(optarg, 8, 4096, &o.size) ? NULL : "--size";
            want = "8..4096";
            break;
        case O_SCALE:
            bad = cli_parse_float(optarg, 0.01f, 1, &o.scale_min) ? NULL : "--scale-min";
            want = "a number in 0.01..1";
            break;
        case O_SEED:
            bad = cli_parse_seed(optarg, &o.seed) ? NULL : "--seed";
            want = "a non-negative integer";
            break;
        case 'D': {
            int r = cli_device("pretrain", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'P':
            if (cli_precision("pretrain", usage, optarg))
                return 2;
            break;
        case O_THREADS:
            bad = cli_parse_int(optarg, 0, 4096, &threads) ? NULL : "--threads";
            want = "0..4096 (0 = all cores)";
            break;
        case O_VAL:
            bad = cli_parse_int(optarg, 0, 100000000, &o.val_every) ? NULL : "--val-every";
            want = "a non-negative integer";
            break;
        case O_LOG:
            bad = cli_parse_int(optarg, 0, 100000000, &o.log_every) ? NULL : "--log-every";
            want = "a non-negative integer";
            break;
        case O_SAVE:
            bad = cli_parse_int(optarg, 0, 100000000, &o.save_every) ? NULL : "--save-every";
            want = "a non-negative integer";
            break;
        case O_STOP:
            bad = cli_parse_int(optarg, 1, 100000000, &o.stop_after) ? NULL : "--stop-after";
            break;
        case O_RESUME: o.resume = true; break;
        case 'T': o.tb = optarg; break;
        case O_QUIET: quiet = true; break;
        case O_HELP: usage(stdout); return 0;
        default: return cli_bad_option("pretrain", usage, argv);
        }
        if (bad)
            return cli_usage_error("pretrain", usage, "bad value '%s' for %s (expected %s)", optarg, bad, want);
    }
    if (optind < argc)
        return cli_usage_error("pretrain", usage, "unexpected argument '%s'", argv[optind]);
    if (!o.out)
        return cli_usage_error("pretrain", usage, "--out CKPT is required");
    if (!o.data && !o.resume)
        return cli_usage_error("pretrain", usage, "--data DIR is required");
    if (threads > 0)
        sd_set_threads(threads);
    if (quiet)
        sd_log_set_level(0);
    char tb_dir[4200];
    if (!o.tb) { /* CKPT.tb/ beside the checkpoint (the .safetensors dropped) */
        size_t n = strlen(o.out), k = strlen(".safetensors");
        n = n > k && !strcmp(o.out + n - k, ".safetensors") ? n - k : n;
        snprintf(tb_dir, sizeof tb_dir, "%.*s.tb", (int)(n < 4000 ? n : 4000), o.out);
        o.tb = tb_dir;
    } else if (!strcmp(o.tb, "none")) {
        o.tb = NULL;
    }
    char *store = NULL;
    if (o.resume) {
        /* The run's options come from its checkpoint; those given must match
         * it (sd_pretrain_run names a conflicting one). */
        sd_pretrain_opts s = o;
        if (sd_pretrain_read_opts(o.out, &s, &store))
            return cli_fail("pretrain --resume");
        static const int keys[] = {O_DATA, O_MODEL, O_ITERS, O_BATCH, O_LR, O_WD, O_SIZE, O_SCALE, O_SEED, O_VAL,
                                   O_SAVE};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            if (given & (1u << keys[i]))
                continue;
            switch (keys[i]) {
            case O_DATA: o.data = s.data; break;
            case O_MODEL: o.model = s.model; break;
            case O_ITERS: o.iters = s.iters; break;
            case O_BATCH: o.batch = s.batch; break;
            case O_LR: o.lr = s.lr; break;
            case O_WD: o.weight_decay = s.weight_decay; break;
            case O_SIZE: o.size = s.size; break;
            case O_SCALE: o.scale_min = s.scale_min; break;
            case O_SEED: o.seed = s.seed; break;
            case O_VAL: o.val_every = s.val_every; break;
            default: o.save_every = s.save_every; break;
            }
        }
        o.momentum = s.momentum; /* no flag: always the run's */
    }
    cli_catch_interrupt();
    sd_pretrain_result r;
    sd_status st = sd_pretrain_run(&o, &r);
    cli_release_interrupt();
    int rc = 0;
    if (st == SD_ERR_INTERRUPTED) {
        fprintf(stderr, "segda pretrain: %s\n", sd_errmsg());
        rc = 130;
    } else if (st) {
        rc = cli_fail("pretrain");
        if (st == SD_ERR_ARG)
            rc = 2; /* as segda train: an option at fault (a conflict on --resume, an existing --out) */
    } else if (sd_dist_rank() > 0) {
        /* (data parallel: rank 0 reports the run) */
    } else if (r.finished && r.start_iteration == r.iterations) {
        printf("pretrain: %s: already finished (iteration %d of %d); nothing to do\n", o.out, r.iterations,
               o.iters);
    } else if (!r.finished) {
        printf("pretrain: %s: stopped at iteration %d of %d, state saved (continue with --resume)\n", o.out,
               r.iterations, o.iters);
    } else {
        printf("pretrain: %s: %d classes, val top-1 %.4f (best %.4f, chance %.4f), train loss %.4f, %.0f s\n",
               o.out, r.classes, r.val_top1, r.best_val_top1, 1.0 / r.classes, r.train_loss, r.seconds);
    }
    free(store);
    return rc;
}
