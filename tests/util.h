/* Helpers shared by the C test programs (header-only, like check.h). */
#ifndef SEGDA_TEST_UTIL_H
#define SEGDA_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <math.h>
#include <stdbool.h>

#include "segda/checkpoint.h"
#include "segda/synth.h"
#include "segda/train.h"

/* dir/name in one of four rotating static buffers: a result stays valid
 * while the next three are made. */
static inline const char *test_path(const char *dir, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* A whole file in a malloc'd buffer with a NUL after its last byte (so text
 * files are strings); *len (if given) gets its size. NULL if unreadable. */
static inline void *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1))) {
        if (fread(b, 1, (size_t)n, f) == (size_t)n) {
            b[n] = 0;
            if (len)
                *len = (size_t)n;
        } else {
            free(b);
            b = NULL;
        }
    }
    fclose(f);
    return b;
}

/* The values of loss term `key` on the per-iteration lines of a run's
 * log.jsonl, in order (at most cap); the count read (0 if unreadable). */
static inline int test_log_terms(const char *log_path, const char *key, double *vals, int cap)
{
    char pat[80], line[4096];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    FILE *f = fopen(log_path, "r");
    int n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        char *p = strstr(line, pat);
        if (p && strstr(line, "\"terms\""))
            vals[n++] = strtod(p + strlen(pat), NULL);
    }
    fclose(f);
    return n;
}

/* A tiny benchmark (8 sim, n_real + n_val real images of 64x32) in
 * /tmp/segda-test-TAG-PID, and the gta5:/cityscapes: specs of it; exits on
 * failure, since no test can run without it. */
static inline void test_tiny_bench(const char *tag, int n_real, int n_val, char bench[256], char src[300],
                                   char tgt[300])
{
    snprintf(bench, 256, "/tmp/segda-test-%s-%d", tag, (int)getpid());
    sd_synth_opts o;
    sd_synth_opts_init(&o);
    o.n_sim = 8;
    o.n_real = n_real;
    o.n_real_val = n_val;
    o.w = 64;
    o.h = 32;
    o.quiet = true;
    o.threads = 1;
    if (sd_synth_write(bench, &o)) {
        fprintf(stderr, "synth: %s\n", sd_errmsg());
        exit(1);
    }
    snprintf(src, 300, "gta5:%s/sim", bench);
    snprintf(tgt, 300, "cityscapes:%s/real", bench);
}

/* Runs a shell command built from fmt; returns its exit status (-1 if it
 * could not run). */
static inline __attribute__((format(printf, 1, 2))) int test_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    return r == -1 ? -1 : WEXITSTATUS(r);
}

/* Largest |a - b| / max(1, |b|) over the f32 tensors both checkpoints hold
 * (model, modules, and unless weights_only the optimiser state, "opt:...");
 * -1 if a file is unreadable or the tensor lists differ. */
static inline double test_ckpt_diff(const char *a, const char *b, bool weights_only)
{
    sd_ckpt x, y;
    if (sd_ckpt_open(a, &x))
        return -1;
    if (sd_ckpt_open(b, &y)) {
        sd_ckpt_close(&x);
        return -1;
    }
    double m = x.st.n == y.st.n ? 0 : -1;
    for (int i = 0; m >= 0 && i < x.st.n; i++) {
        const sd_st_tensor *tx = &x.st.tensors[i];
        int j = sd_st_find(&y.st, tx->name);
        if (j < 0 || y.st.tensors[j].numel != tx->numel) {
            m = -1;
            break;
        }
        if (tx->dtype != SD_ST_F32 || (weights_only && !strncmp(tx->name, "opt:", 4)))
            continue;
        const float *p = (const float *)(x.st.buf + x.st.data_start + tx->begin);
        const float *q = (const float *)(y.st.buf + y.st.data_start + y.st.tensors[j].begin);
        for (uint64_t k = 0; k < tx->numel; k++) {
            double s = fabs(q[k]) > 1 ? fabs(q[k]) : 1, d = fabs((double)p[k] - q[k]) / s;
            if (!(d <= m))
                m = isnan(d) ? INFINITY : d;
        }
    }
    sd_ckpt_close(&x);
    sd_ckpt_close(&y);
    return m;
}

/* A one-thread training configuration of method m from src to tgt into
 * out, plus "key=value" pairs (later ones win). */
static inline void test_train_cfg(sd_config *c, const char *m, const char *src, const char *tgt, const char *out,
                                  int n_extra, const char *const *extra)
{
    sd_config_init(c);
    sd_config_set(c, "method", m, "test", true);
    sd_config_set(c, "source", src, "test", true);
    sd_config_set(c, "target", tgt, "test", true);
    sd_config_set(c, "out", out, "test", true);
    sd_config_set(c, "threads", "1", "test", true);
    sd_config_set(c, "log-every", "1000", "test", true);
    for (int i = 0; i < n_extra; i++) {
        char k[64];
        const char *eq = strchr(extra[i], '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - extra[i]), extra[i]);
        sd_config_set(c, k, eq + 1, "test", true);
    }
}

#endif
