/* segda train: builds the run configuration from flags, a --config file and
 * (with --resume) the run directory's config.txt, in that order of
 * precedence, and hands it to the training library (src/da/). The flags are
 * generated from the knob tables, so every method setting is a flag. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/train.h"

static void print_knobs(FILE *f, const sd_knob *k)
{
    for (; k && k->key; k++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s", k->key,
                 k->type == SD_KNOB_BOOL ? "[=B]" : k->type == SD_KNOB_INT ? " N" : k->type == SD_KNOB_FLOAT ? " X"
                                                                                                        : " V");
        fprintf(f, "  %-22s %s", lhs, k->help);
        if (k->choices)
            fprintf(f, " (%s)", k->choices);
        if (k->def && *k->def)
            fprintf(f, " [%s]", k->def);
        fputc('\n', f);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda train --method M --source SPEC --target SPEC --out RUNDIR [options]\n"
            "\n"
            "Trains a segmentation network on a source domain and adapts it to a target one.\n"
            "Every option is also a `key = value` line of a --config file (flags win; with\n"
            "--resume, RUNDIR/config.txt fills what neither gives). RUNDIR gets config.txt,\n"
            "log.jsonl, last.safetensors (with all resume state), best.safetensors and tb/\n"
            "(TensorBoard: tensorboard --logdir RUNDIR/tb; curves as a chart: segda plot RUNDIR --out FILE.png).\n"
            "\n"
            "  --method M             ");
    int n;
    const sd_method *const *ms = sd_method_list(&n);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? "|" : "", ms[i]->name);
    fprintf(f, "\n");
    print_knobs(f, sd_train_knobs());
    fprintf(f, "  -h, --help             this help\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "\nmethod %s: %s\n", ms[i]->name, ms[i]->summary);
        print_knobs(f, ms[i]->knobs);
    }    fprintf(f, "\nmethod detect: the instance detector (Mask R-CNN) on instance files, its own options:\n"
               "  segda train --method detect --help\n");
}

/* The long options of every knob, each key once. */
static struct option *build_options(const sd_knob ***knob_of, int *count)
{
    int n, cap = 2;
    const sd_method *const *ms = sd_method_list(&n);
    for (const sd_knob *k = sd_train_knobs(); k->key; k++)
        cap++;
    for (int i = 0; i < n; i++)
        for (const sd_knob *k = ms[i]->knobs; k && k->key; k++)
            cap++;
    struct option *o = calloc((size_t)cap + 1, sizeof *o);
    const sd_knob **kf = calloc((size_t)cap + 1, sizeof *kf);
    if (!o || !kf) {
        free(o);
        free(kf);
        return NULL;
    }
    int m = 0;
    o[m++] = (struct option){"help", no_argument, NULL, 'h'};
    o[m++] = (struct option){"method", required_argument, NULL, 0};
    for (int pass = -1; pass < n; pass++)
        for (const sd_knob *k = pass < 0 ? sd_train_knobs() : ms[pass]->knobs; k && k->key; k++) {
            bool dup = false;
            for (int j = 0; j < m && !dup; j++)
                dup = !strcmp(o[j].name, k->key);
            if (dup)
                continue;
            kf[m] = k;
            o[m++] = (struct option){k->key, k->type == SD_KNOB_BOOL ? optional_argument : required_argument, NULL, 0};
        }
    *knob_of = kf;
    *count = m;
    return o;
}

int cli_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* the detector has its own task and options */
        if ((!strcmp(argv[i], "--method") && i + 1 < argc && !strcmp(argv[i + 1], "detect")) ||
            !strcmp(argv[i], "--method=detect"))
            return cli_detect_train(argc, argv);
    const sd_knob **knob_of;
    int n_opts;
    struct option *opts = build_options(&knob_of, &n_opts);
    if (!opts)
        return cli_fail("train");
    sd_config cfg;
    sd_config_init(&cfg);
    int c, idx, rc = 0;
    char origin[80];
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            goto done;
        }
        if (c != 0) {
            usage(stderr);
            rc = 2;
            goto done;
        }
        const char *key = opts[idx].name;
        const char *val = optarg ? optarg : "true";
        /* "--flip false" as well as "--flip=false" */
        if (!optarg && knob_of[idx] && knob_of[idx]->type == SD_KNOB_BOOL && optind < argc) {
            static const char *const words[] = {"true", "false", "1", "0", "yes", "no", "on", "off"};
            for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
                if (!strcmp(argv[optind], words[w])) {
                    val = argv[optind++];
                    break;
                }
        }
        snprintf(origin, sizeof origin, "--%s", key);
        if (sd_config_set(&cfg, key, val, origin, true)) {
            rc = cli_fail("train");
            goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "segda train: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        rc = 2;
        goto done;
    }
    const char *file = sd_config_get(&cfg, "config");
    if (file && *file && sd_config_read(&cfg, file)) {
        rc = cli_fail("train");
        goto done;
    }
    const char *resume = sd_config_get(&cfg, "resume");
    if (resume && (!strcmp(resume, "true") || !strcmp(resume, "1") || !strcmp(resume, "yes"))) {
        const char *out = sd_config_get(&cfg, "out");
        if (!out || !*out) {
            fprintf(stderr, "segda train: --resume needs --out RUNDIR\n");
            rc = 2;
            goto done;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/config.txt", out);
        if (sd_config_read(&cfg, path)) {
            rc = cli_fail("train");
            goto done;
        }
    }
    if (!sd_config_get(&cfg, "method")) {
        fprintf(stderr, "segda train: --method is required\n");
        usage(stderr);
        rc = 2;
        goto done;
    }
    cli_catch_interrupt();
    sd_status st = sd_train_run(&cfg);
    cli_release_interrupt();
    if (st == SD_ERR_INTERRUPTED) {
        fprintf(stderr, "segda train: %s\n", sd_errmsg());
        rc = 130;
    } else if (st == SD_ERR_ARG) {
        rc = cli_fail("train");
        rc = 2;
    } else if (st) {
        rc = cli_fail("train");
    }
done:
    free(opts);
    free(knob_of);
    sd_config_free(&cfg);
    return rc;
}
