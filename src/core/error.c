/* The per-thread error message, logging, allocation wrappers and the thread
 * count. Kept tiny: every other file depends on it. */
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/core.h"

static _Thread_local char err_buf[2048];
static int log_level = 1;
static int n_threads = 0;

sd_status sd_fail(sd_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return st;
}

sd_status sd_fail_prefix(sd_status st, const char *fmt, ...)
{
    char prefix[1024], old[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err_buf - 3)
        n = sizeof err_buf - 3;
    memcpy(err_buf, prefix, n);
    memcpy(err_buf + n, ": ", 2);
    size_t rest = sizeof err_buf - n - 3, m = strlen(old);
    if (m > rest)
        m = rest;
    memcpy(err_buf + n + 2, old, m);
    err_buf[n + 2 + m] = 0;
    return st;
}

const char *sd_errmsg(void) { return err_buf; }
void sd_error_clear(void) { err_buf[0] = 0; }

const char *sd_status_name(sd_status st)
{
    static const char *names[SD_STATUS_COUNT] = {
        "ok", "bad argument", "shape mismatch", "I/O error", "format error", "data error",
        "out of memory", "non-finite value", "unsupported", "interrupted",
    };
    _Static_assert(sizeof names / sizeof names[0] == SD_STATUS_COUNT, "one name per status");
    return (unsigned)st < SD_STATUS_COUNT ? names[st] : "unknown status";
}

void sd_log_set_level(int level) { log_level = level; }
int sd_log_level(void) { return log_level; }

void sd_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void *sd_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        sd_fail(SD_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void *sd_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        sd_fail(SD_ERR_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

char *sd_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sd_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* OpenBLAS exposes this; declared here to avoid pulling
 * cblas.h into the core. */
extern void openblas_set_num_threads(int);

void sd_set_threads(int n)
{
    n_threads = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(n_threads);
    /* One thread pool: kernels split their GEMMs over OpenMP threads and
     * call OpenBLAS single-threaded (see src/cpu/conv_cpu.c). */
    openblas_set_num_threads(1);
}

int sd_threads(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }
