/* `segda bench` on its small workloads (mini, loader), one timed step: every
 * JSON field present and sane; bad workloads, precisions and thread counts
 * refused with exit 2; the library's own checks. Speed is never asserted. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/bench.h"

static char tmpdir[256];
static const char *bin;


/* The number after "KEY": in the object of workload `wl` (NAN if missing). */
static double json_num(const char *js, const char *wl, const char *key)
{
    char pat[128];
    const char *p = js;
    if (wl) {
        snprintf(pat, sizeof pat, "\"workload\": \"%s\"", wl);
        p = js ? strstr(js, pat) : NULL;
    }
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    p = p ? strstr(p, pat) : NULL;
    if (!p)
        return NAN;
    const char *end_obj = strchr(p, '}');
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p || (wl && end_obj && end > end_obj) ? NAN : v;
}

static void TEST_bench_json(void)
{
    const char *json = test_path(tmpdir, "bench.json"), *err = test_path(tmpdir, "err.txt");
    int rc = test_sh("'%s' bench mini loader --iters 1 --warmup 0 --threads 1 --json '%s' > /dev/null 2> '%s'", bin, json,
                err);
    CHECK_MSG(rc == 0, "exit %d", rc);
    char *js = test_slurp(json, NULL);
    CHECK(js != NULL);
    if (!js)
        return;
    CHECK(strstr(js, "\"tool\": \"segda\"") && strstr(js, "\"precision\": \"f32\""));
    CHECK(json_num(js, NULL, "threads") == 1);
    CHECK(json_num(js, NULL, "iters") == 1);
    CHECK(json_num(js, NULL, "sgemm_gflops") > 0);
    CHECK(strstr(js, "\"model\": \"deeplab-mini\""));
    CHECK(json_num(js, "mini", "w") == 256 && json_num(js, "mini", "h") == 128);
    CHECK(json_num(js, "mini", "batch") == 1);
    CHECK(json_num(js, "mini", "iters") == 1);
    double med = json_num(js, "mini", "median_ms"), mn = json_num(js, "mini", "min_ms"),
           mx = json_num(js, "mini", "max_ms");
    CHECK_MSG(med > 0 && mn > 0 && mx >= med && med >= mn, "min %g median %g max %g", mn, med, mx);
    /* 3 x forward of deeplab-mini at 256x128: a few GFLOP */
    double gf = json_num(js, "mini", "gflop");
    CHECK_MSG(gf > 0.5 && gf < 50, "gflop %g", gf);
    CHECK(json_num(js, "mini", "gflops") > 0);
    double frac = json_num(js, "mini", "peak_frac");
    CHECK_MSG(frac > 0 && frac < 10, "peak_frac %g", frac);
    double rss = json_num(js, "mini", "peak_rss_mb");
    CHECK_MSG(rss > 1 && rss < 100000, "peak_rss_mb %g", rss);
    double loss = json_num(js, "mini", "loss");
    CHECK_MSG(isfinite(loss) && loss > 0, "loss %g", loss);
    CHECK(json_num(js, "loader", "batches_per_s_321") > 0);
    CHECK(json_num(js, "loader", "batches_per_s_mini") > 0);
    CHECK(json_num(js, "loader", "peak_rss_mb") > 0);
    free(js);
}

static void TEST_bench_usage_errors(void)
{
    const char *err = test_path(tmpdir, "err.txt");
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"nosuchworkload", "unknown workload 'nosuchworkload'"},
        {"mini --precision fp8", "--precision 'fp8', expected f32, bf16 or bf16-emulated"},
        {"mini --threads 0", "--threads '0', expected 1..1024"},
        {"mini --iters 0", "--iters '0'"},
        {"mini --bogus", "--bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = test_sh("'%s' bench %s > /dev/null 2> '%s'", bin, cases[i].args, err);
        CHECK_MSG(rc == 2, "bench %s: exit %d", cases[i].args, rc);
        char *e = test_slurp(err, NULL);
        CHECK_MSG(e && strstr(e, cases[i].needle), "bench %s: stderr \"%s\" lacks \"%s\"", cases[i].args,
                  e ? e : "", cases[i].needle);
        free(e);
    }
}

/* A workload that fails leaves an error entry and exit 1, not a silent gap. */
static void TEST_bench_failure_reported(void)
{
    const char *json = test_path(tmpdir, "fail.json");
    int rc = test_sh("'%s' bench loader --iters 1 --data gta5:/nonexistent-segda-bench --json '%s' > /dev/null 2>&1", bin,
                json);
    CHECK_MSG(rc == 1, "exit %d", rc);
    char *js = test_slurp(json, NULL);
    CHECK(js && strstr(js, "\"workload\": \"loader\", \"error\": ") && strstr(js, "nonexistent-segda-bench"));
    free(js);
}

static void TEST_bench_library_args(void)
{
    CHECK(sd_bench_parse("r101-infer") == SD_BENCH_R101_INFER);
    CHECK(sd_bench_parse("R101") == -1 && sd_bench_parse(NULL) == -1);
    CHECK(!strcmp(sd_bench_name(SD_BENCH_ADAPTSEG), "adaptseg"));
    for (int w = 0; w < SD_BENCH_COUNT; w++)
        CHECK(sd_bench_parse(sd_bench_name((sd_bench_workload)w)) == w);
    sd_bench_opts o = sd_bench_opts_default();
    sd_bench_result r;
    o.threads = 0;
    CHECK(sd_bench_run(SD_BENCH_MINI, &o, &r) == SD_ERR_ARG);
    CHECK_ERR_HAS("threads 0");
    o = sd_bench_opts_default();
    o.precision = SD_DTYPE_COUNT;
    CHECK(sd_bench_run(SD_BENCH_MINI, &o, &r) == SD_ERR_ARG);
    CHECK_ERR_HAS("precision");
    o = sd_bench_opts_default();
    CHECK(sd_bench_run(SD_BENCH_COUNT, &o, &r) == SD_ERR_ARG);
    CHECK_ERR_HAS("unknown workload");
    double g;
    CHECK(sd_bench_sgemm_peak(0, 256, 1, &g) == SD_ERR_ARG);
    /* a failure inside the child comes back with its message */
    o.data = "gta5:/nonexistent-segda-bench-dir";
    CHECK(sd_bench_run_isolated(SD_BENCH_LOADER, &o, &r) != SD_OK);
    CHECK_ERR_HAS("nonexistent-segda-bench-dir");
}

int main(void)
{
    RUN(TEST_bench_library_args);
    bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP TEST_bench_json (no SEGDA_BIN)\n");
        TESTS_DONE();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda-test-bench-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(TEST_bench_json);
    RUN(TEST_bench_usage_errors);
    RUN(TEST_bench_failure_reported);
    test_sh("rm -rf '%s'", tmpdir);
    TESTS_DONE();
}
