/* The trainer layer's records and inputs (issue 17): summary.json of every
 * run read back by the demo's reader, the one number parser's range and
 * messages, configuration text with NUL bytes, the JSON reader, mapping.txt
 * (long lines, overflowing numbers, missing file), unknown dataset splits
 * and a huge --iters' ETA. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "segda/api.h"
#include "segda/data.h"
#include "segda/image.h"
#include "segda/synth.h"
#include "segda/train.h"

static char bench[256], src_spec[300], tgt_spec[300];

static void test_number_parser(void)
{
    int v = -1;
    int64_t w = -1;
    uint64_t u = 0;
    double d = 0;
    CHECK_OK(sd_parse_int("42", 0, 100, "--x", &v));
    CHECK(v == 42);
    CHECK(sd_parse_int("99999999999999", 0, INT_MAX, "--iters", &v) == SD_ERR_ARG);
    CHECK_ERR_HAS("--iters: 99999999999999 is outside 0..2147483647");
    CHECK(v == 42);   /* untouched on error */
    CHECK(sd_parse_i64("99999999999999999999", 0, INT64_MAX, "f.txt:3: id", &w) == SD_ERR_ARG);
    CHECK_ERR_HAS("f.txt:3: id: 99999999999999999999 is outside");
    CHECK(sd_parse_int("12x", 0, 100, "cfg:2: iters", &v) == SD_ERR_ARG);
    CHECK_ERR_HAS("cfg:2: iters: '12x' is not an integer");
    CHECK(sd_parse_int("", 0, 100, "--n", &v) == SD_ERR_ARG);
    CHECK(sd_parse_u64("-1", "--seed", &u) == SD_ERR_ARG);
    CHECK_ERR_HAS("--seed: '-1' is not an unsigned integer");
    CHECK_OK(sd_parse_u64("18446744073709551615", "--seed", &u));
    CHECK(u == UINT64_MAX);
    CHECK(sd_parse_u64("18446744073709551616", "--seed", &u) == SD_ERR_ARG);
    CHECK(sd_parse_double("nan", -1, 1, "--lr", &d) == SD_ERR_ARG);
    CHECK(sd_parse_double("1e999", -1e300, 1e300, "--lr", &d) == SD_ERR_ARG);
    CHECK(sd_parse_double("2", 0, 1, "--p", &d) == SD_ERR_ARG);
    CHECK_ERR_HAS("--p: 2 is outside 0..1");
    CHECK_OK(sd_parse_double("2.5e-4", 0, 1, "--lr", &d));
    CHECK(d == 2.5e-4);
}

/* Text after a NUL used to be dropped silently (fgets stops there). */
static void test_config_nul_and_dir(void)
{
    static const char text[] = "method = source-only\nlr = 0.1\0iters = 5\n";
    sd_config c;
    sd_config_init(&c);
    CHECK(sd_config_parse(&c, text, sizeof text - 1, "t.cfg") == SD_ERR_FORMAT);
    CHECK_ERR_HAS("t.cfg:2: NUL byte in the line");
    sd_config_free(&c);
    char path[400];
    snprintf(path, sizeof path, "%s/nul.cfg", bench);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, sizeof text - 1, f);
    fclose(f);
    sd_config_init(&c);
    CHECK(sd_config_read(&c, path) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("nul.cfg:2: NUL byte");
    sd_config_free(&c);
    sd_config_init(&c);
    CHECK(sd_config_read(&c, bench) == SD_ERR_IO);
    CHECK_ERR_HAS("not a regular file");
    sd_config_free(&c);
    /* the parser itself: comments, trimming, line numbers of duplicates */
    static const char ok[] = "# c\n  a =  1 # x\n\nb=two words\n";
    sd_config_init(&c);
    CHECK_OK(sd_config_parse(&c, ok, sizeof ok - 1, "ok.cfg"));
    CHECK(c.n == 2 && !strcmp(sd_config_get(&c, "a"), "1") && !strcmp(sd_config_get(&c, "b"), "two words"));
    CHECK(!strcmp(sd_config_origin(&c, "b"), "ok.cfg:4"));
    sd_config_free(&c);
}

typedef struct leaves {
    int n;
    char path[8][64], str[8][32];
    double num[8];
} leaves;

static void collect(void *ctx, const char *path, const char *str, double num)
{
    leaves *l = ctx;
    if (l->n < 8) {
        snprintf(l->path[l->n], 64, "%s", path);
        snprintf(l->str[l->n], 32, "%s", str ? str : "");
        l->num[l->n++] = num;
    }
}

static void test_json_reader(void)
{
    static const char doc[] = " {\"a\": {\"b\": [1.5, \"x\\\"y\\u0041\"]}, \"n\": null, \"t\": true, \"e\": {}}";
    leaves l = {0};
    CHECK_OK(sd_json_walk(doc, strlen(doc), "doc", collect, &l));
    CHECK(l.n == 4);
    CHECK(!strcmp(l.path[0], "a.b.0") && l.num[0] == 1.5);
    CHECK(!strcmp(l.path[1], "a.b.1") && !strcmp(l.str[1], "x\"yA"));
    CHECK(!strcmp(l.path[2], "n") && isnan(l.num[2]));
    CHECK(!strcmp(l.path[3], "t") && l.num[3] == 1);
    static const char *const bad[] = {"{\"a\": }", "{\"a\": 1} x", "{\"a\" 1}", "[1, 2", "\"abc", "{\"a\": 1e}", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        leaves m = {0};
        CHECK_MSG(sd_json_walk(bad[i], strlen(bad[i]), "bad", collect, &m) == SD_ERR_FORMAT, "accepted '%s'", bad[i]);
    }
    CHECK_ERR_HAS("bad: not JSON");
}

static void test_summary_roundtrip(void)
{
    double ciou[19];
    for (int c = 0; c < 19; c++)
        ciou[c] = c == 3 ? NAN : 0.01 * c + 1.0 / 3;
    sd_run_summary s = {.task = "train", .method = "adaptseg", .status = "failed", .message = "x \"quoted\"\nline",
                        .iterations = 7, .iters = 10, .seconds = 1.25, .metric = "miou_19", .final_value = 0.123456789012345,
                        .best_value = 0.2, .best_iteration = 5, .class_iou = ciou, .config = "lr = 0.1\n"};
    char path[400];
    snprintf(path, sizeof path, "%s/s.json", bench);
    CHECK_OK(sd_run_summary_write(path, &s));
    sd_run_result r;
    CHECK_OK(sd_run_summary_read(path, &r));
    CHECK(!strcmp(r.status, "failed") && !strcmp(r.message, "x \"quoted\"\nline") && !strcmp(r.metric, "miou_19"));
    CHECK(r.iterations == 7 && r.iters == 10 && r.best_iteration == 5);
    CHECK(r.final_value == 0.123456789012345 && r.best_value == 0.2);
    CHECK(r.has_class_iou && isnan(r.class_iou[3]) && r.class_iou[18] == ciou[18]);
    char tmp[420];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    size_t len;
    char *text = test_slurp(path, &len);
    CHECK(text && strstr(text, "\"segda_version\": \"" SD_VERSION "\"") && strstr(text, "\"build\": \"cc ") &&
          strstr(text, "\"precision\": \"f32\"") && strstr(text, "\"device\": \"cpu\""));
    free(text);
    /* not a summary */
    FILE *f = fopen(path, "w");
    fputs("{\"status\": \"ok\"}", f);
    fclose(f);
    CHECK(sd_run_summary_read(path, &r) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("not a segda run summary");
}

static sd_status run(const char *name, int n_extra, const char *const *extra, sd_train_summary *sum)
{
    char out[400];
    snprintf(out, sizeof out, "%s/run-%s", bench, name);
    sd_config c;
    test_train_cfg(&c, "source-only", src_spec, tgt_spec, out, n_extra, extra);
    sd_status st = sd_train_run_summary(&c, sum);
    sd_config_free(&c);
    return st;
}

/* A finished run's summary.json holds the numbers the run returned; a
 * stopped one says "interrupted"; a run that fails says "failed" and why. */
static void test_train_writes_summary(void)
{
    const char *a[] = {"iters=2", "eval-every=2", "lr=1e-3"};
    sd_train_summary sum;
    CHECK_OK(run("sum", 3, a, &sum));
    char path[500];
    snprintf(path, sizeof path, "%s/run-sum/summary.json", bench);
    sd_run_result r;
    CHECK_OK(sd_run_summary_read(path, &r));
    CHECK(!strcmp(r.status, "ok") && r.iterations == 2 && r.iters == 2 && !strcmp(r.metric, "miou_19"));
    CHECK(sum.evaluated && r.final_value == sum.miou_19 && r.best_value == sum.best_miou && r.best_iteration == 2);
    CHECK(r.has_class_iou);
    for (int c = 0; c < 19; c++)
        CHECK((isnan(r.class_iou[c]) && isnan(sum.class_iou[c])) || r.class_iou[c] == sum.class_iou[c]);
    size_t len;
    char *text = test_slurp(path, &len);
    CHECK(text && strstr(text, "method = source-only") && strstr(text, "\"task\": \"train\""));
    free(text);

    const char *b[] = {"iters=4", "stop-after=1"};
    CHECK_OK(run("sumstop", 2, b, NULL));
    snprintf(path, sizeof path, "%s/run-sumstop/summary.json", bench);
    CHECK_OK(sd_run_summary_read(path, &r));
    CHECK(!strcmp(r.status, "interrupted") && r.iterations == 1 && r.iters == 4 && isnan(r.final_value));
    CHECK(strstr(r.message, "stopped after iteration 1") != NULL);

    /* a training image that cannot be read fails the run at its iteration */
    char bad_bench[256], bad_src[300], bad_tgt[300];
    test_tiny_bench("trainerbad", 2, 1, bad_bench, bad_src, bad_tgt);
    CHECK(test_sh("for f in %s/sim/images/*; do printf x > \"$f\"; done", bad_bench) == 0);
    char keep[300];
    snprintf(keep, sizeof keep, "%s", src_spec);
    snprintf(src_spec, sizeof src_spec, "%s", bad_src);
    const char *bad[] = {"iters=2", "workers=0"};
    sd_status st = run("sumfail", 2, bad, NULL);
    snprintf(src_spec, sizeof src_spec, "%s", keep);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sd_errmsg());
    CHECK(st != SD_OK);
    snprintf(path, sizeof path, "%s/run-sumfail/summary.json", bench);
    CHECK_OK(sd_run_summary_read(path, &r));
    CHECK(!strcmp(r.status, "failed") && r.iterations == 0);
    CHECK_MSG(!strcmp(r.message, msg), "summary '%s' vs run '%s'", r.message, msg);
    test_sh("rm -rf %s", bad_bench);
    /* a second run refused by the lock-free check never overwrites the first's record */
    const char *again[] = {"iters=2", "eval-every=2", "lr=1e-3"};
    CHECK(run("sum", 3, again, NULL) == SD_ERR_ARG);
    snprintf(path, sizeof path, "%s/run-sum/summary.json", bench);
    CHECK_OK(sd_run_summary_read(path, &r));
    CHECK(!strcmp(r.status, "ok"));
}

static void write_label_png(const char *path, uint8_t v)
{
    uint8_t px[4] = {v, v, v, v};
    sd_image img = {.w = 2, .h = 2, .c = 1, .depth = 8, .data = px};
    sd_png_write(path, &img);
}

/* mapping.txt: lines over 255 characters stay one line, numbers that
 * overflow are errors naming file:line, and without the file the identity
 * is used (and said). */
static void test_mapping_txt(void)
{
    char root[400], p[600];
    snprintf(root, sizeof root, "%s/folder", bench);
    snprintf(p, sizeof p, "%s/images", root);
    CHECK_OK(sd_mkdir_p(p));
    snprintf(p, sizeof p, "%s/labels", root);
    CHECK_OK(sd_mkdir_p(p));
    snprintf(p, sizeof p, "%s/images/a.png", root);
    write_label_png(p, 0);
    snprintf(p, sizeof p, "%s/labels/a.png", root);
    write_label_png(p, 7);
    char spec[420];
    snprintf(spec, sizeof spec, "folder:%s", root);
    sd_dataset ds;
    /* no mapping.txt: identity for 0..18 */
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.lut[7] == 7 && ds.lut[18] == 18 && ds.lut[19] == 255 && ds.id_known[7] && !ds.id_known[19]);
    sd_dataset_free(&ds);
    /* a 300-character comment, then "7 3": the old reader split the long
     * line at 255 and read its tail as a mapping line */
    snprintf(p, sizeof p, "%s/mapping.txt", root);
    FILE *f = fopen(p, "w");
    fputs("# ", f);
    for (int i = 0; i < 300; i++)
        fputc(i % 10 == 9 ? ' ' : 'x', f);
    fputs(" 5 6\n7 3\n", f);
    fclose(f);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(ds.lut[7] == 3 && ds.lut[5] == 255);
    sd_dataset_free(&ds);
    f = fopen(p, "w");
    fputs("7 3\n8 99999999999\n", f);
    fclose(f);
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("mapping.txt:2: train id: 99999999999 is outside 0..255");
    f = fopen(p, "w");
    fputs("4294967303 3\n", f);   /* 2^32 + 7 */
    fclose(f);
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("mapping.txt:1: source id: 4294967303 is outside 0..255");
    f = fopen(p, "w");
    fputs("7 3 1\n", f);
    fclose(f);
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("mapping.txt:1: expected \"src_id train_id\"");
}

static void test_unknown_split(void)
{
    char spec[400];
    snprintf(spec, sizeof spec, "%s:bogus", tgt_spec);
    sd_dataset ds;
    CHECK(sd_dataset_open(&ds, spec, NULL, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("unknown split \"bogus\" (expected train, val or test)");
    snprintf(spec, sizeof spec, "%s:val", tgt_spec);
    CHECK_OK(sd_dataset_open(&ds, spec, NULL, NULL));
    CHECK(!strcmp(ds.split, "val"));
    sd_dataset_free(&ds);
}

/* --iters 99999999999999: the progress line's ETA was an int ("-2147483648m"). */
static void test_huge_iters_eta(void)
{
    const char *bin = getenv("SEGDA_BIN");
    if (!bin) {
        printf("SKIP test_huge_iters_eta (no SEGDA_BIN)\n");
        return;
    }
    char log[400];
    snprintf(log, sizeof log, "%s/eta.txt", bench);
    int rc = test_sh("%s train --method source-only --source %s --target %s --out %s/run-eta --iters 99999999999999 "
                     "--stop-after 2 --log-every 1 --threads 1 > %s 2>&1",
                     bin, src_spec, tgt_spec, bench, log);
    size_t len;
    char *text = test_slurp(log, &len);
    CHECK_MSG(rc == 0, "rc %d: %s", rc, text ? text : "");
    CHECK_MSG(text && strstr(text, "it 1/99999999999999") && strstr(text, "ETA ") && !strstr(text, "ETA -"),
              "%s", text ? text : "(no output)");
    free(text);
}

/* The lowest failing job's message, whatever thread ran it, and the
 * helpers replacing the copies: mkdir -p, the lister, the tree remover. */
static void test_core_helpers(void)
{
    sd_first_error fe;
    sd_first_error_init(&fe);
#pragma omp parallel for schedule(dynamic, 1) num_threads(4)
    for (int i = 0; i < 200; i++)
        sd_first_error_keep(&fe, i, i == 37 || i == 150 || i == 80 ? sd_fail(SD_ERR_DATA, "job %d failed", i) : SD_OK);
    sd_error_clear();
    CHECK(fe.count == 3 && fe.job == 37);
    CHECK(sd_first_error_raise(&fe) == SD_ERR_DATA);
    CHECK_ERR_HAS("job 37 failed");
    char p[500];
    snprintf(p, sizeof p, "%s/h/a/b", bench);
    CHECK_OK(sd_mkdir_p(p));
    CHECK_OK(sd_mkdir_p(p));   /* existing: fine */
    snprintf(p, sizeof p, "%s/h/a/f", bench);
    FILE *f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/h/a/.hidden", bench);
    f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/h/a/f/x", bench);
    CHECK(sd_mkdir_p(p) == SD_ERR_IO);
    CHECK_ERR_HAS("/h/a/f: exists and is not a folder");
    snprintf(p, sizeof p, "%s/h/a", bench);
    sd_names l;
    CHECK_OK(sd_dir_list(p, NULL, NULL, &l));
    CHECK(l.n == 2 && !strcmp(l.v[0], "b") && !strcmp(l.v[1], "f"));
    sd_names_free(&l);
    snprintf(p, sizeof p, "%s/h", bench);
    CHECK_OK(sd_remove_tree(p));
    CHECK(access(p, F_OK) != 0);
    CHECK_OK(sd_remove_tree(p));   /* missing: fine */
    CHECK(sd_dir_list(p, NULL, NULL, &l) == SD_ERR_IO);
    CHECK_ERR_HAS("cannot list folder");
}

/* A crop too small for the network (the issue's --crop 8x8 on a deeper
 * model; 4x4 on deeplab-mini) is refused before any file is written,
 * naming the smallest crop that fits. */
static void test_small_crop_names_minimum(void)
{
    const char *a[] = {"iters=1", "crop=4x4"};
    CHECK(run("crop8", 2, a, NULL) == SD_ERR_ARG);
    CHECK_ERR_HAS("crop 4x4 is too small for model deeplab-mini");
    CHECK_ERR_HAS("use a larger --crop (at least 8x8)");
    char p[500];
    snprintf(p, sizeof p, "%s/run-crop8/log.jsonl", bench);
    CHECK(access(p, F_OK) != 0);
}

int main(void)
{
    sd_log_set_level(0);
    test_tiny_bench("trainer", 4, 2, bench, src_spec, tgt_spec);
    RUN(test_number_parser);
    RUN(test_config_nul_and_dir);
    RUN(test_json_reader);
    RUN(test_summary_roundtrip);
    RUN(test_train_writes_summary);
    RUN(test_mapping_txt);
    RUN(test_unknown_split);
    RUN(test_huge_iters_eta);
    RUN(test_core_helpers);
    RUN(test_small_crop_names_minimum);
    test_sh("rm -rf %s", bench);
    TESTS_DONE();
}
