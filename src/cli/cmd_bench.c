/* segda bench: parses the options, runs the workloads of segda/bench.h one
 * forked child each, prints a table and optionally writes JSON (what
 * tools/bench_table.py merges with bench/bench_torch.py's). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "segda/bench.h"

enum { SGEMM_N = 2048, SGEMM_ITERS = 5 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: segda bench [WORKLOAD ...] [--precision f32|bf16|bf16-emulated] [--threads N] [--iters N]\n"
            "                   [--warmup N] [--json FILE] [--data SPEC]\n"
            "\n"
            "Times whole steps at batch 1 on random inputs (fixed seed), each workload in a\n"
            "process of its own: median step time after warm-up, GFLOP/s (train steps count\n"
            "3 x the forward FLOPs), the fraction of OpenBLAS's sgemm peak (%dx%dx%d at the\n"
            "same thread count) and the workload's peak RSS (--json adds the step arena's held\n"
            "and live-peak MB). Speeds are never asserted.\n"
            "Workloads (default: all):\n"
            "  vgg321      DeepLab-v2 VGG-16 train step at 321x321\n"
            "  r101        DeepLab-v2 ResNet-101 train step at 512x256, frozen BN\n"
            "  adaptseg    one multi-level AdaptSegNet iteration at 512x256 (ResNet-101)\n"
            "  r101-infer  ResNet-101 inference at 1024x512 as segda predict does it\n"
            "  r101-infer-2k  the same at Cityscapes' full 2048x1024 (peak memory)\n"
            "  mini        the demo's deeplab-mini train step at 256x128\n"
            "  loader      threaded loader (2 workers) batches/s at 321x321 and 256x128\n"
            "  --device D     cpu, cuda or cuda:N: where tensors live and ops run (default cpu)\n"
            "  --precision P  f32 (default), bf16 (f32 where the CPU has no native bf16, said so)\n"
            "                 or bf16-emulated (bf16's numbers at f32's speed): convolution compute dtype\n"
            "  --threads N    threads, 1..1024 (default: all cores)\n"
            "  --iters N      timed steps, 1..10000 (default 3)\n"
            "  --warmup N     untimed steps first, 0..10000 (default 1)\n"
            "  --json FILE    also write the results as JSON (- for stdout)\n"
            "  --data SPEC    loader: a dataset (data.h spec) instead of a generated one\n"
            "  --help         this text\n"
            "SEGDA_CONV=im2col (environment) times every conv on im2col + OpenBLAS, without the\n"
            "default's Winograd convolutions; the table's first line and the JSON say which path ran.\n",
            SGEMM_N, SGEMM_N, SGEMM_N);
}

static void json_result(FILE *f, const sd_bench_result *r, double peak, bool last)
{
    fprintf(f,
            "    {\"workload\": \"%s\", \"model\": \"%s\", \"w\": %d, \"h\": %d, \"batch\": %d, \"iters\": %d,\n"
            "     \"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"gflop\": %.3f, \"gflops\": %.3f,\n"
            "     \"peak_frac\": %.5f, \"peak_rss_mb\": %.1f, \"arena_mb\": %.1f, \"arena_peak_mb\": %.1f,\n"
            "     \"loss\": %.6g",
            r->workload, r->model, r->w, r->h, r->batch, r->iters, r->median_ms, r->min_ms, r->max_ms, r->gflop,
            r->gflops, peak > 0 ? r->gflops / peak : 0.0, r->peak_rss_mb, r->arena_mb, r->arena_peak_mb, r->loss);
    if (!strcmp(r->workload, "loader"))
        fprintf(f, ",\n     \"batches_per_s_321\": %.3f, \"batches_per_s_mini\": %.3f", r->loader_bps_321,
                r->loader_bps_mini);
    fprintf(f, "}%s\n", last ? "" : ",");
}

/* s as a JSON string (quotes and backslashes escaped, control characters
 * dropped); NULL as "". */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const char *p = s ? s : ""; *p; p++)
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
            fputc(*p, f);
    fputc('"', f);
}

/* A workload that failed: its name and message, so the others still report. */
static void json_failed(FILE *f, const sd_bench_result *r, const char *msg, bool last)
{
    fprintf(f, "    {\"workload\": \"%s\", \"error\": ", r->workload);
    json_str(f, msg);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static int write_json(const char *path, const sd_bench_opts *o, const char *plabel, double peak, const sd_bench_result *rs,
                      char (*errs)[512], int n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "segda bench: %s: cannot write\n", path);
        return 1;
    }
    fprintf(f,
            "{\"tool\": \"segda\", \"precision\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"warmup\": %d, \"iters\": %d,\n"
            " \"sgemm_n\": %d, \"sgemm_gflops\": %.3f, \"omp_wait_policy\": ",
            plabel, sd_device_name(sd_device_selected()), o->threads, o->warmup, o->iters, SGEMM_N, peak);
    json_str(f, getenv("OMP_WAIT_POLICY"));
    fprintf(f, ", \"segda_conv\": ");
    json_str(f, getenv("SEGDA_CONV"));
    fprintf(f, ",\n \"results\": [\n");
    for (int i = 0; i < n; i++)
        if (errs[i][0])
            json_failed(f, &rs[i], errs[i], i == n - 1);
        else
            json_result(f, &rs[i], peak, i == n - 1);
    fprintf(f, "]}\n");
    bool bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "segda bench: %s: write failed\n", path);
        return 1;
    }
    return 0;
}

int cli_bench(int argc, char **argv)
{
    static const struct option lo[] = {
        {"precision", required_argument, 0, 'p'}, {"device", required_argument, 0, 'D'}, {"threads", required_argument, 0, 't'},
        {"iters", required_argument, 0, 'i'},     {"warmup", required_argument, 0, 'w'},
        {"json", required_argument, 0, 'j'},      {"data", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0},
    };
    sd_bench_opts o = sd_bench_opts_default();
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = nproc > 0 ? (int)nproc : 1;
    const char *json = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    const char *plabel = "f32";
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'D': {
            int r = cli_device("bench", usage, optarg);
            if (r)
                return r;
            break;
        }
        case 'p': {
            /* what --precision does for a user: bf16 without native support
             * runs (and is labelled) f32; bf16-emulated times the emulation */
            bool emulate;
            if (sd_dtype_parse(optarg, &o.precision, &emulate))
                return cli_usage_error("bench", usage, "--precision '%s', expected f32, bf16 or bf16-emulated",
                                       optarg);
            plabel = emulate ? "bf16-emulated" : plabel;
            if (sd_set_precision(o.precision, emulate)) {
                fprintf(stderr, "segda bench: warning: %s\n", sd_errmsg());
                o.precision = SD_DTYPE_F32;
                plabel = "bf16->f32";
            }
            break;
        }
        case 't':
            if (!cli_parse_int(optarg, 1, 1024, &o.threads))
                return cli_usage_error("bench", usage, "--threads '%s', expected 1..1024", optarg);
            break;
        case 'i':
            if (!cli_parse_int(optarg, 1, 10000, &o.iters))
                return cli_usage_error("bench", usage, "--iters '%s', expected 1..10000", optarg);
            break;
        case 'w':
            if (!cli_parse_int(optarg, 0, 10000, &o.warmup))
                return cli_usage_error("bench", usage, "--warmup '%s', expected 0..10000", optarg);
            break;
        case 'j': json = optarg; break;
        case 'd': o.data = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("bench", usage, argv);
        }
    }
    bool want[SD_BENCH_COUNT] = {0};
    int n_want = 0;
    for (int i = optind; i < argc; i++) {
        int w = sd_bench_parse(argv[i]);
        if (w < 0)
            return cli_usage_error("bench", usage,
                                   "unknown workload '%s' (vgg321, r101, adaptseg, r101-infer, r101-infer-2k, mini, "
                                   "loader)",
                                   argv[i]);
        n_want += !want[w];
        want[w] = true;
    }
    if (!n_want)
        for (int w = 0; w < SD_BENCH_COUNT; w++)
            want[w] = true, n_want++;

    double peak = 0;
    if (n_want > 1 || !want[SD_BENCH_LOADER]) {
        fprintf(stderr, "bench: sgemm %dx%dx%d, %d threads\n", SGEMM_N, SGEMM_N, SGEMM_N, o.threads);
        if (sd_bench_sgemm_peak(o.threads, SGEMM_N, SGEMM_ITERS, &peak))
            return cli_fail("bench");
    }
    sd_bench_result rs[SD_BENCH_COUNT];
    char errs[SD_BENCH_COUNT][512];
    int n = 0, failed = 0;
    for (int w = 0; w < SD_BENCH_COUNT; w++) {
        if (!want[w])
            continue;
        fprintf(stderr, "bench: %s (%s, %d threads, warmup %d, iters %d)\n", sd_bench_name(w),
                plabel, o.threads, o.warmup, o.iters);
        errs[n][0] = 0;
        /* one failed workload (a NaN, out of memory) must not hide the others' numbers */
        if (sd_bench_run_isolated(w, &o, &rs[n])) {
            cli_fail("bench");
            snprintf(errs[n], sizeof errs[n], "%s", sd_errmsg());
            snprintf(rs[n].workload, sizeof rs[n].workload, "%s", sd_bench_name(w));
            failed++;
        }
        n++;
    }

    /* --json -: the JSON alone on stdout, the table goes to stderr */
    FILE *out = json && !strcmp(json, "-") ? stderr : stdout;
    const char *conv = getenv("SEGDA_CONV");
    fprintf(out, "segda bench: %s, %d threads, warmup %d, median of %d; sgemm %d^3 peak %.1f GFLOP/s; SEGDA_CONV=%s\n",
           plabel, o.threads, o.warmup, o.iters, SGEMM_N, peak, conv && *conv ? conv : "(default)");
    fprintf(out, "%-11s %-20s %9s %10s %10s %8s %8s %7s %9s\n", "workload", "model", "size", "median ms", "min ms",
           "GFLOP", "GFLOP/s", "%peak", "RSS MB");
    for (int i = 0; i < n; i++) {
        const sd_bench_result *r = &rs[i];
        char size[32];
        snprintf(size, sizeof size, "%dx%d", r->w, r->h);
        if (errs[i][0]) {
            fprintf(out, "%-11s failed: %s\n", r->workload, errs[i]);
            continue;
        }
        if (!strcmp(r->workload, "loader")) {
            fprintf(out, "%-11s %-20s %9s %10.1f %10.1f %8s %8s %7s %9.0f  (%.1f batches/s at 321x321, %.1f at 256x128)\n",
                   r->workload, "2 workers", size, r->median_ms, r->min_ms, "-", "-", "-", r->peak_rss_mb,
                   r->loader_bps_321, r->loader_bps_mini);
            continue;
        }
        fprintf(out, "%-11s %-20s %9s %10.1f %10.1f %8.1f %8.1f %6.1f%% %9.0f\n", r->workload, r->model, size,
               r->median_ms, r->min_ms, r->gflop, r->gflops, peak > 0 ? 100 * r->gflops / peak : 0.0,
               r->peak_rss_mb);
    }
    int rc = json ? write_json(json, &o, plabel, peak, rs, errs, n) : 0;
    return failed ? 1 : rc;
}
