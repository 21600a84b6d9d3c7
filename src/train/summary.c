/* summary.json, the machine-readable record of every run (train, GAN,
 * pretrain): status, iterations, final and best metrics, configuration,
 * segda version, build, precision and device, written atomically; and its
 * reader, which the demo uses instead of reading logs. Not here: the
 * per-iteration log (rundir.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "segda/api.h"
#include "segda/data.h"
#include "segda/eval.h"
#include "segda/labels.h"
#include "segda/tensor.h"
#include "segda/train.h"


/* What built the library: compiler, optimisation, sanitizers, backends. */
static void build_flags(char *s, size_t cap)
{
    snprintf(s, cap, "%s%s%s; backends: %s",
#ifdef __VERSION__
             "cc " __VERSION__,
#else
             "cc",
#endif
#ifdef __OPTIMIZE__
             " -O",
#else
             " -O0",
#endif
#ifdef __SANITIZE_ADDRESS__
             " -fsanitize=address",
#else
             "",
#endif
             sd_backends_built());
}

static void kv_str(FILE *f, const char *k, const char *v, bool comma)
{
    fprintf(f, "  \"%s\": ", k);
    sd_json_str(f, v ? v : "");
    fputs(comma ? ",\n" : "\n", f);
}

sd_status sd_run_summary_write(const char *path, const sd_run_summary *s)
{
    char tmp[4200], build[512];
    io_tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", tmp, strerror(errno));
    build_flags(build, sizeof build);
    fputs("{\n", f);
    kv_str(f, "task", s->task, true);
    kv_str(f, "method", s->method, true);
    kv_str(f, "status", s->status, true);
    kv_str(f, "message", s->message, true);
    fprintf(f, "  \"iterations\": %lld,\n  \"iters\": %lld,\n  \"seconds\": ", (long long)s->iterations,
            (long long)s->iters);
    sd_json_num(f, s->seconds, 6);
    fprintf(f, ",\n  \"eval_failures\": %d,\n  \"final\": {\"%s\": ", s->eval_failures, s->metric);
    sd_json_num(f, s->final_value, 17);
    if (s->class_iou) {
        fputs(", \"class_iou\": {", f);
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            fprintf(f, "%s\"%s\": ", c ? ", " : "", sd_class_short_names[c]);
            sd_json_num(f, s->class_iou[c], 17);
        }
        fputs("}", f);
    }
    fprintf(f, "},\n  \"best\": {\"%s\": ", s->metric);
    sd_json_num(f, s->best_value, 17);
    fprintf(f, ", \"iteration\": %lld},\n", (long long)s->best_iteration);
    kv_str(f, "config", s->config, true);
    kv_str(f, "segda_version", sd_version(), true);
    kv_str(f, "build", build, true);
    kv_str(f, "precision", s->precision ? s->precision : sd_dtype_name(sd_precision()), true);
    kv_str(f, "device", s->device ? s->device : "cpu", false);
    fputs("}\n", f);
    if (fclose(f) || rename(tmp, path)) {
        sd_status st = sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return st;
    }
    return SD_OK;
}

typedef struct reader {
    sd_run_result *r;
    const char *metric;
    int n_class;
} reader;

static void leaf(void *ctx, const char *path, const char *str, double num)
{
    reader *rd = ctx;
    sd_run_result *r = rd->r;
    if (!strcmp(path, "status") && str)
        snprintf(r->status, sizeof r->status, "%s", str);
    else if (!strcmp(path, "message") && str)
        snprintf(r->message, sizeof r->message, "%s", str);
    else if (!strcmp(path, "precision") && str)
        snprintf(r->precision, sizeof r->precision, "%s", str);
    else if (!strcmp(path, "iterations") && !str)
        r->iterations = (int64_t)num;
    else if (!strcmp(path, "iters") && !str)
        r->iters = (int64_t)num;
    else if (!strcmp(path, "seconds") && !str)
        r->seconds = num;
    else if (!strncmp(path, "final.class_iou.", 16) && !str) {
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            if (!strcmp(path + 16, sd_class_short_names[c])) {
                r->class_iou[c] = num;
                rd->n_class++;
            }
    } else if (!strncmp(path, "final.", 6) && !str) {
        r->final_value = num;
        snprintf(r->metric, sizeof r->metric, "%s", path + 6);
    } else if (!strcmp(path, "best.iteration") && !str)
        r->best_iteration = (int64_t)num;
    else if (!strncmp(path, "best.", 5) && !str)
        r->best_value = num;
}

sd_status sd_run_summary_read(const char *path, sd_run_result *r)
{
    memset(r, 0, sizeof *r);
    r->final_value = r->best_value = NAN;
    r->iterations = r->iters = r->best_iteration = -1;
    for (int c = 0; c < SD_NUM_CLASSES; c++)
        r->class_iou[c] = NAN;
    uint8_t *buf;
    size_t len;
    sd_status st = io_read_file(path, &buf, &len);
    if (st)
        return st;
    reader rd = {.r = r};
    st = sd_json_walk((const char *)buf, len, path, leaf, &rd);
    free(buf);
    if (!st && (!r->status[0] || r->iterations < 0 || r->iters < 0 || !r->metric[0]))
        st = sd_fail(SD_ERR_FORMAT, "%s: not a segda run summary (status, iterations, iters or final missing)",
                     path);
    r->has_class_iou = rd.n_class == SD_NUM_CLASSES;
    return st;
}
