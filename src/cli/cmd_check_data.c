/* segda check-data: reads every sample of a dataset and reports what is
 * wrong with it (incomplete pairs, unreadable files, wrong bit depth or
 * channels, unknown label ids, image/label size mismatches) and the
 * per-class pixel frequencies; where the dataset has instance files
 * (instances.h), that each decodes, has the label's size and agrees with it,
 * and the instances per thing class. The checking is library calls; this file
 * only decides what to print and the exit code. */
#include <errno.h>
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/data.h"
#include "segda/image.h"
#include "segda/instances.h"
#include "segda/labels.h"

#define MAX_UNKNOWN 8

typedef struct result {
    char *error;                 /* unreadable image or label; NULL when fine */
    int w, h, lw, lh;
    bool has_label;
    int n_unknown;               /* distinct unknown ids */
    unsigned unknown_id[MAX_UNKNOWN];
    uint64_t unknown_px;
    uint64_t px[SD_NUM_CLASSES];
    uint64_t ignored_px;
    char *inst_error;            /* instance file missing, undecodable, wrong size or disagreeing with the label */
    int inst[SD_NUM_THING_CLASSES]; /* instances per thing class (trainId - 11) */
} result;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda check-data SPEC [--split S] [--skip-bad] [--json FILE] [--threads N]\n"
            "                         [--lanemarking-as-road] [--quiet]\n"
            "  SPEC: gta5:ROOT | synthia:ROOT | cityscapes:ROOT[:SPLIT] | folder:ROOT\n"
            "  Reads every image and label; reports incomplete pairs, unreadable files,\n"
            "  unknown label ids, image/label size mismatches and per-class pixel\n"
            "  frequencies. Exit status 1 when errors were found, unless --skip-bad\n"
            "  (training would then skip the listed samples) and good samples remain.\n"
            "  Size mismatches are warnings: training resizes labels to the image size.\n"
            "  Instance files (gta5: ROOT/instances/NNNNN.png; cityscapes: the\n"
            "  *_gtFine_instanceIds.png beside each label), when the first sample has one:\n"
            "  every sample needs one that decodes (ids < 1000 or 24000..33999), has the\n"
            "  label's size and whose instance pixels carry the label file's id; the\n"
            "  instances per thing class are counted (an image without any is fine).\n"
            "options:\n"
            "  --split S              Cityscapes split: train, val or test (overrides\n"
            "                         the one in SPEC; default train)\n"
            "  --skip-bad             exit 0 when good samples remain despite errors\n"
            "  --json FILE            also write the report as JSON to FILE\n"
            "  --threads N            reader threads, 0..1024 (default 0: all cores)\n"
            "  --lanemarking-as-road  SYNTHIA: count lane markings (id 22) as road, as\n"
            "                         CBST/CRST do (default: ignored)\n"
            "  --quiet                list at most 5 files per problem (default 50)\n"
            "  --help                 this text\n");
}

static void check_one(const sd_dataset *ds, int i, bool instances, result *r)
{
    const sd_sample_entry *e = &ds->samples[i];
    sd_image img;
    if (sd_image_read(e->image_path, &img, false)) {
        r->error = sd_strdup(sd_errmsg());
        return;
    }
    r->w = img.w;
    r->h = img.h;
    sd_image_free(&img);
    if (!e->label_path)
        return;
    r->has_label = true;
    uint16_t *ids;
    if (sd_dataset_read_ids(ds, i, &ids, &r->lw, &r->lh)) {
        r->error = sd_strdup(sd_errmsg());
        return;
    }
    uint64_t hist[256] = {0};
    size_t n = (size_t)r->lw * r->lh;
    for (size_t k = 0; k < n; k++) {
        unsigned v = ids[k];
        if (v > 255 || !ds->id_known[v]) {
            r->unknown_px++;
            bool seen = false;
            for (int u = 0; u < r->n_unknown; u++)
                seen |= r->unknown_id[u] == v;
            if (!seen && r->n_unknown < MAX_UNKNOWN)
                r->unknown_id[r->n_unknown++] = v;
        } else {
            hist[v]++;
        }
    }
    free(ids);
    if (instances && sd_dataset_check_instances(ds, i, r->inst))
        r->inst_error = sd_strdup(sd_errmsg());
    for (int v = 0; v < 256; v++) {
        int t = ds->lut[v];
        if (t < SD_NUM_CLASSES)
            r->px[t] += hist[v];
        else
            r->ignored_px += hist[v];
    }
}

static int write_json(const char *path, const sd_dataset *ds, const result *r, const uint64_t *tot,
                      const int *imgs_with, uint64_t all_px, int n_bad, int n_unknown_files, int n_mismatch,
                      bool instances, const int *inst_tot, int n_inst_bad)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "segda check-data: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "{\n  \"spec\": ");
    sd_json_str(f, ds->spec);
    fprintf(f, ",\n  \"kind\": \"%s\",\n  \"split\": ", sd_dataset_kind_name(ds->kind));
    sd_json_str(f, ds->split);
    fprintf(f, ",\n  \"samples\": %d,\n  \"incomplete_pairs\": [", ds->n);
    for (int i = 0; i < ds->n_problems; i++) {
        fputs(i ? ", " : "", f);
        sd_json_str(f, ds->problems[i]);
    }
    fprintf(f, "],\n  \"unreadable\": [");
    for (int i = 0, k = 0; i < ds->n; i++)
        if (r[i].error) {
            fputs(k++ ? ", " : "", f);
            sd_json_str(f, r[i].error);
        }
    fprintf(f, "],\n  \"unknown_ids\": [");
    for (int i = 0, k = 0; i < ds->n; i++)
        if (r[i].n_unknown) {
            fprintf(f, "%s{\"file\": ", k++ ? ", " : "");
            sd_json_str(f, ds->samples[i].label_path);
            fprintf(f, ", \"pixels\": %llu, \"ids\": [", (unsigned long long)r[i].unknown_px);
            for (int u = 0; u < r[i].n_unknown; u++)
                fprintf(f, "%s%u", u ? ", " : "", r[i].unknown_id[u]);
            fprintf(f, "]}");
        }
    fprintf(f, "],\n  \"size_mismatches\": [");
    for (int i = 0, k = 0; i < ds->n; i++)
        if (!r[i].error && r[i].has_label && (r[i].w != r[i].lw || r[i].h != r[i].lh)) {
            fprintf(f, "%s{\"stem\": ", k++ ? ", " : "");
            sd_json_str(f, ds->samples[i].stem);
            fprintf(f, ", \"image\": [%d, %d], \"label\": [%d, %d]}", r[i].w, r[i].h, r[i].lw, r[i].lh);
        }
    fprintf(f, "],\n  \"counts\": {\"bad\": %d, \"unknown_id_files\": %d, \"size_mismatches\": %d},\n", n_bad,
            n_unknown_files, n_mismatch);
    fprintf(f, "  \"classes\": [\n");
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        fprintf(f, "    {\"train_id\": %d, \"name\": \"%s\", \"pixels\": %llu, \"fraction\": %.8f, \"images\": %d}%s\n", c,
                sd_class_names[c], (unsigned long long)tot[c], all_px ? (double)tot[c] / all_px : 0.0, imgs_with[c],
                c + 1 < SD_NUM_CLASSES ? "," : "");
    fprintf(f, "  ],\n  \"instances\": ");
    if (!instances) {
        fprintf(f, "null\n}\n");
    } else {
        fprintf(f, "{\"bad_files\": [");
        for (int i = 0, k = 0; i < ds->n; i++)
            if (r[i].inst_error) {
                fputs(k++ ? ", " : "", f);
                sd_json_str(f, r[i].inst_error);
            }
        fprintf(f, "], \"n_bad\": %d, \"per_class\": {", n_inst_bad);
        for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
            fprintf(f, "%s\"%s\": %d", k ? ", " : "", sd_class_names[SD_FIRST_THING_TRAIN_ID + k], inst_tot[k]);
        fprintf(f, "}}\n}\n");
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "segda check-data: write error on %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int cli_check_data(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"split", required_argument, 0, 's'}, {"skip-bad", no_argument, 0, 'k'},
        {"json", required_argument, 0, 'j'},  {"threads", required_argument, 0, 't'},
        {"lanemarking-as-road", no_argument, 0, 'l'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *split = NULL, *json = NULL;
    bool skip_bad = false, quiet = false;
    int threads = 0;
    sd_dataset_opts dopts = {.skip_bad = true, .allow_unknown_ids = true};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "s:kj:t:lqh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': split = optarg; break;
        case 'k': skip_bad = true; break;
        case 'j': json = optarg; break;
        case 't':
            if (!cli_parse_int(optarg, 0, 1024, &threads))
                return cli_usage_error("check-data", usage, "--threads '%s', expected 0..1024", optarg);
            break;
        case 'l': dopts.synthia_lanemarking_as_road = true; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("check-data", usage, argv);
        }
    }
    if (optind == argc)
        return cli_usage_error("check-data", usage, "expected a dataset SPEC");
    if (optind < argc - 1)
        return cli_usage_error("check-data", usage, "unexpected argument '%s'", argv[optind + 1]);
    sd_dataset ds;
    int level = sd_log_level();
    sd_log_set_level(0); /* the incomplete pairs are printed below, in full */
    sd_status st = sd_dataset_open(&ds, argv[optind], split, &dopts);
    sd_log_set_level(level);
    if (st)
        return cli_fail("check-data");
    bool instances = sd_dataset_has_instances(&ds);
    result *r = calloc(ds.n, sizeof *r);
    if (!r) {
        sd_dataset_free(&ds);
        fprintf(stderr, "segda check-data: out of memory\n");
        return 1;
    }
    if (threads <= 0)
        threads = omp_get_num_procs();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < ds.n; i++)
        check_one(&ds, i, instances, &r[i]);

    uint64_t tot[SD_NUM_CLASSES] = {0}, all_px = 0, ignored = 0;
    int imgs_with[SD_NUM_CLASSES] = {0}, n_bad = 0, n_unknown = 0, n_mismatch = 0, n_labelled = 0;
    int n_inst_bad = 0, inst_tot[SD_NUM_THING_CLASSES] = {0}, n_no_inst = 0;
    for (int i = 0; i < ds.n; i++) {
        if (r[i].error) {
            n_bad++;
            continue;
        }
        n_inst_bad += r[i].inst_error != NULL;
        int any = 0;
        for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
            inst_tot[k] += r[i].inst[k], any += r[i].inst[k];
        n_no_inst += instances && r[i].has_label && !r[i].inst_error && !any;
        n_unknown += r[i].n_unknown > 0;
        if (r[i].has_label) {
            n_labelled++;
            n_mismatch += r[i].w != r[i].lw || r[i].h != r[i].lh;
        }
        ignored += r[i].ignored_px;
        for (int k = 0; k < SD_NUM_CLASSES; k++) {
            tot[k] += r[i].px[k];
            imgs_with[k] += r[i].px[k] > 0;
        }
    }
    for (int k = 0; k < SD_NUM_CLASSES; k++)
        all_px += tot[k];

    printf("%s (%s, split %s): %d samples listed (complete pairs), %d labels read\n", ds.spec, sd_dataset_kind_name(ds.kind), ds.split,
           ds.n, n_labelled);
    const int show = quiet ? 5 : 50;
    if (ds.n_problems) {
        printf("ERROR: %d incomplete pair%s:\n", ds.n_problems, ds.n_problems == 1 ? "" : "s");
        for (int i = 0; i < ds.n_problems && i < show; i++)
            printf("  %s\n", ds.problems[i]);
        if (ds.n_problems > show)
            printf("  ... and %d more\n", ds.n_problems - show);
    }
    if (n_bad) {
        printf("ERROR: %d unreadable sample%s:\n", n_bad, n_bad == 1 ? "" : "s");
        for (int i = 0, k = 0; i < ds.n; i++)
            if (r[i].error && k++ < show)
                printf("  %s\n", r[i].error);
        if (n_bad > show)
            printf("  ... and %d more\n", n_bad - show);
    }
    if (n_unknown) {
        printf("ERROR: %d label file%s with ids outside the %s table:\n", n_unknown, n_unknown == 1 ? "" : "s",
               sd_dataset_kind_name(ds.kind));
        for (int i = 0, k = 0; i < ds.n; i++)
            if (r[i].n_unknown && k++ < show) {
                printf("  %s: %llu pixels, ids", ds.samples[i].label_path, (unsigned long long)r[i].unknown_px);
                for (int u = 0; u < r[i].n_unknown; u++)
                    printf(" %u", r[i].unknown_id[u]);
                printf("%s\n", r[i].n_unknown == MAX_UNKNOWN ? " ..." : "");
            }
    }
    if (n_inst_bad) {
        printf("ERROR: %d bad instance file%s:\n", n_inst_bad, n_inst_bad == 1 ? "" : "s");
        for (int i = 0, k = 0; i < ds.n; i++)
            if (r[i].inst_error && k++ < show)
                printf("  %s\n", r[i].inst_error);
        if (n_inst_bad > show)
            printf("  ... and %d more\n", n_inst_bad - show);
    }
    if (n_mismatch) {
        printf("WARNING: %d image/label size mismatch%s (labels are resized to the image, nearest):\n", n_mismatch,
               n_mismatch == 1 ? "" : "es");
        for (int i = 0, k = 0; i < ds.n; i++)
            if (!r[i].error && r[i].has_label && (r[i].w != r[i].lw || r[i].h != r[i].lh) && k++ < show)
                printf("  %s: image %dx%d, label %dx%d\n", ds.samples[i].stem, r[i].w, r[i].h, r[i].lw, r[i].lh);
    }
    if (all_px) {
        printf("\n%-3s %-14s %14s %9s %8s\n", "id", "class", "pixels", "fraction", "images");
        for (int k = 0; k < SD_NUM_CLASSES; k++)
            printf("%-3d %-14s %14llu %8.4f%% %8d\n", k, sd_class_names[k], (unsigned long long)tot[k],
                   100.0 * tot[k] / all_px, imgs_with[k]);
        printf("ignored (255): %llu pixels (%.2f%% of all)\n", (unsigned long long)ignored,
               100.0 * ignored / (double)(all_px + ignored));
        int absent = 0;
        for (int k = 0; k < SD_NUM_CLASSES; k++)
            absent += tot[k] == 0;
        if (absent) {
            printf("note: %d class%s never appear%s:", absent, absent == 1 ? "" : "es", absent == 1 ? "s" : "");
            for (int k = 0; k < SD_NUM_CLASSES; k++)
                if (!tot[k])
                    printf(" %s", sd_class_names[k]);
            printf("\n");
        }
    }
    if (instances) {
        printf("\ninstances (thing classes):");
        for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
            printf(" %s %d%s", sd_class_names[SD_FIRST_THING_TRAIN_ID + k], inst_tot[k],
                   k + 1 < SD_NUM_THING_CLASSES ? "," : "\n");
        printf("images without instances: %d\n", n_no_inst);
    } else {
        printf("\ninstances: none (no instance file beside the first label)\n");
    }
    int rc = 0;
    if (json)
        rc = write_json(json, &ds, r, tot, imgs_with, all_px, n_bad, n_unknown, n_mismatch, instances, inst_tot,
                        n_inst_bad);
    int errors = ds.n_problems + n_bad + n_unknown + n_inst_bad;
    int good = ds.n - n_bad - n_unknown - n_inst_bad;
    if (errors) {
        if (skip_bad && good > 0) {
            printf("\n%d problem%s; with --skip-bad, %d incomplete pair%s and %d bad sample%s are skipped, %d remain\n",
                   errors, errors == 1 ? "" : "s", ds.n_problems, ds.n_problems == 1 ? "" : "s", n_bad + n_unknown,
                   n_bad + n_unknown == 1 ? "" : "s", good);
        } else {
            printf("\n%d problem%s found%s\n", errors, errors == 1 ? "" : "s",
                   good > 0 ? " (--skip-bad would skip them)" : "");
            rc = 1;
        }
    } else {
        printf("\nOK: %d samples\n", ds.n);
    }
    for (int i = 0; i < ds.n; i++)
        free(r[i].error), free(r[i].inst_error);
    free(r);
    sd_dataset_free(&ds);
    return rc;
}
