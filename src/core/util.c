/* Small shared helpers behind every caller (core.h): the one number parser
 * (CLI options, configuration files, checkpoint metadata, mapping.txt), one
 * mkdir -p, one sorted directory lister and one tree remover.
 * Not here: what a number means (its caller names it in `what`). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "segda/core.h"

sd_status sd_parse_i64(const char *s, int64_t lo, int64_t hi, const char *what, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not an integer", what, s ? s : "");
    if (errno == ERANGE || v < lo || v > hi)
        return sd_fail(SD_ERR_ARG, "%s: %s is outside %lld..%lld", what, s, (long long)lo, (long long)hi);
    *out = v;
    return SD_OK;
}

sd_status sd_parse_int(const char *s, int lo, int hi, const char *what, int *out)
{
    int64_t v;
    sd_status st = sd_parse_i64(s, lo, hi, what, &v);
    if (!st)
        *out = (int)v;
    return st;
}

sd_status sd_parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || *end)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not an unsigned integer", what, s ? s : "");
    if (errno == ERANGE)
        return sd_fail(SD_ERR_ARG, "%s: %s is larger than %llu", what, s, (unsigned long long)UINT64_MAX);
    *out = (uint64_t)v;
    return SD_OK;
}

sd_status sd_parse_double(const char *s, double lo, double hi, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not a number", what, s ? s : "");
    if (!isfinite(v) || errno == ERANGE)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not a finite number", what, s);
    if (!(v >= lo && v <= hi))
        return sd_fail(SD_ERR_ARG, "%s: %s is outside %g..%g", what, s, lo, hi);
    *out = v;
    return SD_OK;
}

sd_status sd_parse_float(const char *s, float lo, float hi, const char *what, float *out)
{
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0;
    if (!s || !*s || *end)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not a number", what, s ? s : "");
    if (!isfinite(v) || errno == ERANGE)
        return sd_fail(SD_ERR_ARG, "%s: '%s' is not a finite float", what, s);
    if (!(v >= lo && v <= hi))
        return sd_fail(SD_ERR_ARG, "%s: %s is outside %g..%g", what, s, (double)lo, (double)hi);
    *out = v;
    return SD_OK;
}

sd_status sd_mkdir_p(const char *dir)
{
    char buf[4096];
    size_t n = dir ? strlen(dir) : 0;
    if (n == 0 || n >= sizeof buf)
        return sd_fail(SD_ERR_ARG, "'%s': folder path empty or too long", dir ? dir : "");
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        struct stat sb;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sd_fail(SD_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return sd_fail(SD_ERR_IO, "%s: exists and is not a folder", buf);
        buf[i] = c;
    }
    return SD_OK;
}

void sd_names_free(sd_names *l)
{
    for (int i = 0; l && i < l->n; i++)
        free(l->v[i]);
    if (l)
        free(l->v);
    if (l)
        memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

sd_status sd_dir_list(const char *dir, bool (*keep)(const char *name, bool is_dir, void *ctx), void *ctx,
                      sd_names *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return sd_fail(SD_ERR_IO, "%s: cannot list folder: %s", dir, strerror(errno));
    struct dirent *e;
    sd_status st = SD_OK;
    int cap = 0;
    char *full = NULL;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = realloc(full, len);
        if (!p) {
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
        full = p;
        snprintf(full, len, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(full, &sb) != 0 || !(S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)))
            continue;
        if (keep && !keep(e->d_name, S_ISDIR(sb.st_mode), ctx))
            continue;
        if (out->n == cap) {
            int nc = cap ? 2 * cap : 64;
            char **v = realloc(out->v, sizeof *v * (size_t)nc);
            if (!v) {
                st = sd_fail(SD_ERR_NOMEM, "%s: out of memory listing the folder", dir);
                break;
            }
            out->v = v, cap = nc;
        }
        if (!(out->v[out->n] = sd_strdup(e->d_name)))
            st = SD_ERR_NOMEM;
        else
            out->n++;
    }
    free(full);
    closedir(d);
    if (st) {
        sd_names_free(out);
        return st;
    }
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return SD_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

sd_status sd_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? SD_OK : sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return sd_fail(SD_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return SD_OK;
}

void sd_first_error_init(sd_first_error *e)
{
    e->st = SD_OK;
    e->job = LONG_MAX;
    e->count = 0;
    e->msg[0] = 0;
}

void sd_first_error_keep(sd_first_error *e, long job, sd_status st)
{
    if (!st)
        return;
#pragma omp critical(sd_first_error)
    {
        e->count++;
        if (!e->st || job < e->job) {
            e->st = st;
            e->job = job;
            snprintf(e->msg, sizeof e->msg, "%s", sd_errmsg());
        }
    }
}

sd_status sd_first_error_raise(const sd_first_error *e)
{
    return e->st ? sd_fail(e->st, "%s", e->msg) : SD_OK;
}
