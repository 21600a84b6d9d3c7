/* The configuration store and its text format: settings as text with
 * their origin (flag, file:line, default), `key = value` files and text,
 * config.txt, and WxH / A,B values. Depends on core only (the fuzz target
 * fuzz/fuzz_config.c builds it alone). Not here: which keys exist and what
 * they accept (config.c). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segda/train.h"
#include "io/file.h"

void sd_config_init(sd_config *c) { memset(c, 0, sizeof *c); }

void sd_config_free(sd_config *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].value);
        free(c->e[i].origin);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int find(const sd_config *c, const char *key)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key))
            return i;
    return -1;
}

sd_status sd_config_set(sd_config *c, const char *key, const char *value, const char *origin, bool replace)
{
    int i = find(c, key);
    if (i >= 0 && !replace)
        return SD_OK;
    char *v = sd_strdup(value), *o = sd_strdup(origin ? origin : "");
    if (!v || !o) {
        free(v);
        free(o);
        return SD_ERR_NOMEM;
    }
    if (i >= 0) {
        free(c->e[i].value);
        free(c->e[i].origin);
        c->e[i].value = v;
        c->e[i].origin = o;
        return SD_OK;
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        sd_config_entry *ne = realloc(c->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            free(v);
            free(o);
            return sd_fail(SD_ERR_NOMEM, "config: out of memory");
        }
        c->e = ne;
        c->cap = cap;
    }
    char *k = sd_strdup(key);
    if (!k) {
        free(v);
        free(o);
        return SD_ERR_NOMEM;
    }
    c->e[c->n++] = (sd_config_entry){k, v, o};
    return SD_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

/* One configuration line (comment cut, trimmed) at origin: key = value. */
static sd_status parse_line(sd_config *c, sd_config *seen, char *line, const char *origin)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = 0;
    char *s = trim(line);
    if (!*s)
        return SD_OK;
    char *eq = strchr(s, '=');
    if (!eq)
        return sd_fail(SD_ERR_FORMAT, "%s: expected 'key = value', got '%s'", origin, s);
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1);
    if (!*key)
        return sd_fail(SD_ERR_FORMAT, "%s: empty key", origin);
    /* a key given twice: which of two values was meant cannot be guessed */
    const char *before = sd_config_origin(seen, key);
    if (before)
        return sd_fail(SD_ERR_FORMAT, "%s: key '%s' given twice (first at %s)", origin, key, before);
    sd_status st = sd_config_set(seen, key, "", origin, false);
    return st ? st : sd_config_set(c, key, val, origin, false);
}

sd_status sd_config_parse(sd_config *c, const char *text, size_t len, const char *name)
{
    enum { MAX_LINE = 4094 };
    char line[MAX_LINE + 2], origin[4200];
    sd_config seen;
    sd_config_init(&seen);
    sd_status st = SD_OK;
    size_t i = 0;
    for (int lineno = 1; i < len && !st; lineno++) {
        size_t n = 0;
        snprintf(origin, sizeof origin, "%s:%d", name, lineno);
        for (; i < len && text[i] != '\n'; i++) {
            if (text[i] == 0) {
                st = sd_fail(SD_ERR_FORMAT, "%s: NUL byte in the line (a configuration is text)", origin);
                break;
            }
            if (n == MAX_LINE) {
                st = sd_fail(SD_ERR_FORMAT, "%s: line longer than %d characters", origin, MAX_LINE);
                break;
            }
            line[n++] = text[i];
        }
        i++; /* the newline */
        line[n] = 0;
        if (!st)
            st = parse_line(c, &seen, line, origin);
    }
    sd_config_free(&seen);
    return st;
}

sd_status sd_config_read(sd_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sd_fail(SD_ERR_IO, "%s: not a regular file (a configuration is a file of key = value lines)", path);
    }
    if (sb.st_size > (1 << 24)) {
        fclose(f);
        return sd_fail(SD_ERR_FORMAT, "%s: %lld bytes, more than a configuration's 16 MiB", path,
                       (long long)sb.st_size);
    }
    char *text = sd_malloc((size_t)sb.st_size + 1);
    size_t len = text ? fread(text, 1, (size_t)sb.st_size, f) : 0;
    bool bad = text && ferror(f);
    fclose(f);
    if (!text)
        return SD_ERR_NOMEM;
    sd_status st = bad ? sd_fail(SD_ERR_IO, "%s: read error", path) : sd_config_parse(c, text, len, path);
    free(text);
    return st;
}

const char *sd_config_get(const sd_config *c, const char *key)
{
    int i = find(c, key);
    return i < 0 ? NULL : c->e[i].value;
}

const char *sd_config_origin(const sd_config *c, const char *key)
{
    int i = find(c, key);
    return i < 0 ? NULL : c->e[i].origin;
}

int64_t sd_config_int(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && *v ? strtoll(v, NULL, 10) : 0;
}

double sd_config_float(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && *v ? strtod(v, NULL) : 0.0;
}

int sd_config_parse_bool(const char *v)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        return 1;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off") || !*v)
        return 0;
    return -1;
}

bool sd_config_bool(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v && sd_config_parse_bool(v) == 1;
}

const char *sd_config_str(const sd_config *c, const char *key)
{
    const char *v = sd_config_get(c, key);
    return v ? v : "";
}

sd_status sd_config_write(const sd_config *c, const char *path)
{
    char tmp[4096];
    io_tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: %s", tmp, strerror(errno));
    fprintf(f, "# segda train: resolved configuration (segda train --config THIS_FILE repeats the run)\n");
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s = %s\n", c->e[i].key, c->e[i].value);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    return SD_OK;
}

sd_status sd_parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != 'x' && *end != 'X'))
        return sd_fail(SD_ERR_ARG, "'%s': expected a size WxH (e.g. 256x128)", s);
    const char *p = end + 1;
    long b = strtol(p, &end, 10);
    if (end == p || *end || a <= 0 || b <= 0 || a > 65536 || b > 65536)
        return sd_fail(SD_ERR_ARG, "'%s': expected a size WxH with positive sides (e.g. 256x128)", s);
    *w = (int)a;
    *h = (int)b;
    return SD_OK;
}

sd_status sd_parse_pair(const char *s, int *a, int *b)
{
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end != ',')
        return sd_fail(SD_ERR_ARG, "'%s': expected two counts A,B (e.g. 1,1)", s);
    const char *p = end + 1;
    long y = strtol(p, &end, 10);
    if (end == p || *end || x < 0 || y < 0 || x > 4096 || y > 4096)
        return sd_fail(SD_ERR_ARG, "'%s': expected two counts A,B >= 0 (e.g. 1,1)", s);
    *a = (int)x;
    *b = (int)y;
    return SD_OK;
}
