/* safetensors: a JSON-subset header parser written for hostile input (every
 * length and offset is checked before it is used; errors give the byte
 * offset in the file) and an atomic writer. No knowledge of models here. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/file.h"
#include "segda/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (tensor data is copied as is)"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[SD_ST_DTYPE_COUNT] = {
    {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"U8", 1}, {"BOOL", 1},
};

const char *sd_st_dtype_name(sd_st_dtype d) { return (unsigned)d < SD_ST_DTYPE_COUNT ? dtypes[d].name : "?"; }
size_t sd_st_dtype_size(sd_st_dtype d) { return (unsigned)d < SD_ST_DTYPE_COUNT ? dtypes[d].size : 0; }

/* ---- JSON subset ---- */

typedef struct jcur {
    const uint8_t *p;      /* header bytes */
    size_t len, pos;
    const char *file;
    size_t base;           /* file offset of p[0], for messages */
} jcur;

#define JFAIL(c, ...) jfail((c), __VA_ARGS__)
__attribute__((format(printf, 2, 3))) static sd_status jfail(jcur *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sd_fail(SD_ERR_FORMAT, "%s: header byte %zu: %s", c->file, c->base + c->pos, msg);
}

static void jws(jcur *c)
{
    while (c->pos < c->len && (c->p[c->pos] == ' ' || c->p[c->pos] == '\t' || c->p[c->pos] == '\n' ||
                               c->p[c->pos] == '\r'))
        c->pos++;
}

static int jpeek(jcur *c)
{
    jws(c);
    return c->pos < c->len ? c->p[c->pos] : -1;
}

static sd_status jexpect(jcur *c, char ch)
{
    if (jpeek(c) != ch) {
        if (c->pos >= c->len)
            return JFAIL(c, "expected '%c', found the end of the header", ch);
        return JFAIL(c, "expected '%c', found '%c'", ch, c->p[c->pos] >= 32 && c->p[c->pos] < 127 ? c->p[c->pos] : '?');
    }
    c->pos++;
    return SD_OK;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static sd_status jhex4(jcur *c, unsigned *out)
{
    if (c->len - c->pos < 4)
        return JFAIL(c, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(c->p[c->pos + i]);
        if (h < 0)
            return JFAIL(c, "bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    c->pos += 4;
    *out = v;
    return SD_OK;
}

/* Parses a string into a new NUL-terminated buffer (out may be NULL to skip). */
static sd_status jstring(jcur *c, char **out)
{
    sd_status st = jexpect(c, '"');
    if (st)
        return st;
    /* The decoded string is never longer than its encoding. */
    size_t start = c->pos, cap = 0;
    while (start + cap < c->len && c->p[start + cap] != '"') {
        if (c->p[start + cap] == '\\')
            cap++;
        cap++;
    }
    char *s = NULL;
    if (out) {
        s = malloc(cap + 1);
        if (!s)
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory parsing the header", c->file);
    }
    size_t n = 0;
    for (;;) {
        if (c->pos >= c->len) {
            free(s);
            return JFAIL(c, "unterminated string");
        }
        unsigned ch = c->p[c->pos];
        if (ch == '"') {
            c->pos++;
            break;
        }
        if (ch < 0x20) {
            free(s);
            return JFAIL(c, "control character in a string");
        }
        if (ch != '\\') {
            if (s)
                s[n] = (char)ch;
            n++;
            c->pos++;
            continue;
        }
        c->pos++;
        if (c->pos >= c->len) {
            free(s);
            return JFAIL(c, "unterminated escape");
        }
        ch = c->p[c->pos++];
        unsigned cp;
        switch (ch) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if ((st = jhex4(c, &cp))) {
                free(s);
                return st;
            }
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (c->len - c->pos < 2 || c->p[c->pos] != '\\' || c->p[c->pos + 1] != 'u') {
                    free(s);
                    return JFAIL(c, "unpaired surrogate in \\u escape");
                }
                c->pos += 2;
                if ((st = jhex4(c, &lo))) {
                    free(s);
                    return st;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(s);
                    return JFAIL(c, "bad low surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                free(s);
                return JFAIL(c, "unpaired surrogate in \\u escape");
            }
            if (cp == 0) {
                free(s);
                return JFAIL(c, "NUL character in a string");
            }
            break;
        default:
            free(s);
            return JFAIL(c, "unknown escape '\\%c'", ch >= 32 && ch < 127 ? (char)ch : '?');
        }
        /* UTF-8 encode; an escape's 2..12 source bytes always cover its output. */
        uint8_t u[4];
        int k;
        if (cp < 0x80) {
            u[0] = (uint8_t)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (uint8_t)(0xC0 | (cp >> 6));
            u[1] = (uint8_t)(0x80 | (cp & 63));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (uint8_t)(0xE0 | (cp >> 12));
            u[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            u[2] = (uint8_t)(0x80 | (cp & 63));
            k = 3;
        } else {
            u[0] = (uint8_t)(0xF0 | (cp >> 18));
            u[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
            u[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            u[3] = (uint8_t)(0x80 | (cp & 63));
            k = 4;
        }
        if (s) {
            if (n + (size_t)k > cap) { /* cannot happen; kept as a guard */
                free(s);
                return JFAIL(c, "string escape overflow");
            }
            memcpy(s + n, u, (size_t)k);
        }
        n += (size_t)k;
    }
    if (s) {
        s[n] = 0;
        *out = s;
    }
    return SD_OK;
}

/* A non-negative integer (no sign, fraction or exponent) below 2^63. */
static sd_status juint(jcur *c, uint64_t *out, const char *what)
{
    jws(c);
    size_t start = c->pos;
    uint64_t v = 0;
    while (c->pos < c->len && c->p[c->pos] >= '0' && c->p[c->pos] <= '9') {
        unsigned d = c->p[c->pos] - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return JFAIL(c, "%s is too large", what);
        v = v * 10 + d;
        c->pos++;
    }
    if (c->pos == start)
        return JFAIL(c, "expected a non-negative integer for %s", what);
    if (c->p[start] == '0' && c->pos - start > 1) {
        c->pos = start;
        return JFAIL(c, "leading zero in %s", what);
    }
    if (c->pos < c->len && (c->p[c->pos] == '.' || c->p[c->pos] == 'e' || c->p[c->pos] == 'E'))
        return JFAIL(c, "expected an integer for %s", what);
    *out = v;
    return SD_OK;
}

/* Skips any JSON value (unknown fields), with a depth limit. */
static sd_status jskip(jcur *c, int depth)
{
    if (depth > 32)
        return JFAIL(c, "nesting deeper than 32");
    int ch = jpeek(c);
    sd_status st;
    if (ch == '"')
        return jstring(c, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->pos++;
        if (jpeek(c) == close) {
            c->pos++;
            return SD_OK;
        }
        for (;;) {
            if (ch == '{') {
                if ((st = jstring(c, NULL)) || (st = jexpect(c, ':')))
                    return st;
            }
            if ((st = jskip(c, depth + 1)))
                return st;
            int nx = jpeek(c);
            if (nx == ',') {
                c->pos++;
                continue;
            }
            return jexpect(c, close);
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(words[i]);
        if (c->len - c->pos >= k && !memcmp(c->p + c->pos, words[i], k)) {
            c->pos += k;
            return SD_OK;
        }
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        size_t start = c->pos;
        if (c->p[c->pos] == '-')
            c->pos++;
        while (c->pos < c->len && ((c->p[c->pos] >= '0' && c->p[c->pos] <= '9') || c->p[c->pos] == '.' ||
                                   c->p[c->pos] == 'e' || c->p[c->pos] == 'E' || c->p[c->pos] == '+' ||
                                   c->p[c->pos] == '-'))
            c->pos++;
        if (c->pos - start > 1 || (ch >= '0' && ch <= '9'))
            return SD_OK;
    }
    if (ch < 0)
        return JFAIL(c, "unexpected end of the header");
    return JFAIL(c, "unexpected character '%c'", ch >= 32 && ch < 127 ? ch : '?');
}

static sd_status jshape(jcur *c, sd_st_tensor *t)
{
    sd_status st = jexpect(c, '[');
    if (st)
        return st;
    t->ndim = 0;
    if (jpeek(c) == ']') {
        c->pos++;
        return SD_OK;
    }
    for (;;) {
        uint64_t v;
        if (t->ndim == SD_ST_MAX_DIMS)
            return JFAIL(c, "tensor '%s': more than %d dimensions", t->name, SD_ST_MAX_DIMS);
        if ((st = juint(c, &v, "a dimension")))
            return st;
        if (v > INT32_MAX)
            return JFAIL(c, "tensor '%s': dimension %llu is too large", t->name, (unsigned long long)v);
        t->shape[t->ndim++] = (int64_t)v;
        int nx = jpeek(c);
        if (nx == ',') {
            c->pos++;
            continue;
        }
        return jexpect(c, ']');
    }
}

static sd_status jtensor(jcur *c, sd_st_tensor *t)
{
    sd_status st = jexpect(c, '{');
    if (st)
        return st;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    if (jpeek(c) == '}')
        return JFAIL(c, "tensor '%s': empty entry", t->name);
    for (;;) {
        char *key = NULL;
        size_t key_pos = c->pos;
        if ((st = jstring(c, &key)) || (st = jexpect(c, ':'))) {
            free(key);
            return st;
        }
        if (!strcmp(key, "dtype")) {
            char *d = NULL;
            if ((st = jstring(c, &d))) {
                free(key);
                return st;
            }
            int k;
            for (k = 0; k < SD_ST_DTYPE_COUNT; k++)
                if (!strcmp(d, dtypes[k].name))
                    break;
            if (k == SD_ST_DTYPE_COUNT) {
                c->pos = key_pos;
                st = JFAIL(c, "tensor '%s': unsupported dtype \"%.16s\" (expected F32, F16, BF16, F64, I64, I32, U8 or BOOL)",
                           t->name, d);
                free(d);
                free(key);
                return st;
            }
            free(d);
            t->dtype = (sd_st_dtype)k;
            have_dtype = 1;
        } else if (!strcmp(key, "shape")) {
            if ((st = jshape(c, t))) {
                free(key);
                return st;
            }
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            if ((st = jexpect(c, '[')) || (st = juint(c, &t->begin, "an offset")) || (st = jexpect(c, ',')) ||
                (st = juint(c, &t->end, "an offset")) || (st = jexpect(c, ']'))) {
                free(key);
                return st;
            }
            have_off = 1;
        } else if ((st = jskip(c, 1))) {
            free(key);
            return st;
        }
        free(key);
        int nx = jpeek(c);
        if (nx == ',') {
            c->pos++;
            continue;
        }
        if ((st = jexpect(c, '}')))
            return st;
        break;
    }
    if (!have_dtype || !have_shape || !have_off)
        return JFAIL(c, "tensor '%s': missing \"%s\"", t->name,
                     !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return SD_OK;
}

static sd_status jmeta(jcur *c, sd_st_file *f)
{
    sd_status st = jexpect(c, '{');
    if (st)
        return st;
    if (jpeek(c) == '}') {
        c->pos++;
        return SD_OK;
    }
    for (;;) {
        char *k = NULL, *v = NULL;
        if ((st = jstring(c, &k)) || (st = jexpect(c, ':')))
            goto fail;
        if (jpeek(c) != '"') {
            st = JFAIL(c, "__metadata__ value of \"%s\" is not a string", k);
            goto fail;
        }
        if ((st = jstring(c, &v)))
            goto fail;
        char **nk = realloc(f->meta_keys, (size_t)(f->n_meta + 1) * sizeof *nk);
        if (nk)
            f->meta_keys = nk;
        char **nv = realloc(f->meta_values, (size_t)(f->n_meta + 1) * sizeof *nv);
        if (nv)
            f->meta_values = nv;
        if (!nk || !nv) {
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory reading metadata", c->file);
            goto fail;
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
        int nx = jpeek(c);
        if (nx == ',') {
            c->pos++;
            continue;
        }
        return jexpect(c, '}');
    fail:
        free(k);
        free(v);
        return st;
    }
}

/* ---- validation of the parsed header ---- */

static const sd_st_file *sort_file;
static int cmp_by_offset(const void *a, const void *b)
{
    const sd_st_tensor *x = &sort_file->tensors[*(const int *)a], *y = &sort_file->tensors[*(const int *)b];
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_file->tensors[*(const int *)a].name, sort_file->tensors[*(const int *)b].name);
}

static sd_status validate(sd_st_file *f, const char *file)
{
    uint64_t data_len = f->len - f->data_start;
    for (int i = 0; i < f->n; i++) {
        sd_st_tensor *t = &f->tensors[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && numel > UINT64_MAX / 16 / (uint64_t)t->shape[d])
                return sd_fail(SD_ERR_FORMAT, "%s: tensor '%s': shape too large", file, t->name);
            numel *= (uint64_t)t->shape[d];
        }
        t->numel = numel;
        if (t->end < t->begin)
            return sd_fail(SD_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", file,
                           t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        uint64_t bytes = numel * dtypes[t->dtype].size;
        if (t->end - t->begin != bytes)
            return sd_fail(SD_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape and dtype %s need %llu",
                           file, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)(t->end - t->begin), dtypes[t->dtype].name, (unsigned long long)bytes);
        if (t->end > data_len)
            return sd_fail(SD_ERR_FORMAT,
                           "%s: tensor '%s': data ends at file byte %llu, past the end of the file (%zu bytes; truncated?)",
                           file, t->name, (unsigned long long)(f->data_start + t->end), f->len);
    }
    if (!f->n) {
        if (data_len)
            return sd_fail(SD_ERR_FORMAT, "%s: %llu data bytes after a header with no tensors", file,
                           (unsigned long long)data_len);
        return SD_OK;
    }
    int *idx = malloc((size_t)(unsigned)f->n * sizeof *idx);
    if (!idx)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", file);
    for (int i = 0; i < f->n; i++)
        idx[i] = i;
    sort_file = f;
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_by_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->tensors[idx[i]].name, f->tensors[idx[i - 1]].name)) {
            sd_status st = sd_fail(SD_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", file,
                                   f->tensors[idx[i]].name);
            free(idx);
            return st;
        }
    sort_file = f;
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_by_offset);
    /* The data section must be covered exactly: no overlap, no hole. */
    uint64_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < f->n; i++) {
        const sd_st_tensor *t = &f->tensors[idx[i]];
        if (t->begin < pos) {
            sd_status st = sd_fail(SD_ERR_FORMAT, "%s: tensor '%s' (data bytes %llu..%llu) overlaps tensor '%s'", file,
                                   t->name, (unsigned long long)t->begin, (unsigned long long)t->end, prev);
            free(idx);
            return st;
        }
        if (t->begin > pos) {
            sd_status st = sd_fail(SD_ERR_FORMAT, "%s: hole of %llu bytes at file byte %llu before tensor '%s'", file,
                                   (unsigned long long)(t->begin - pos),
                                   (unsigned long long)(f->data_start + pos), t->name);
            free(idx);
            return st;
        }
        pos = t->end;
        prev = t->name;
    }
    free(idx);
    if (pos != data_len)
        return sd_fail(SD_ERR_FORMAT, "%s: %llu trailing bytes after the last tensor, at file byte %llu", file,
                       (unsigned long long)(data_len - pos), (unsigned long long)(f->data_start + pos));
    return SD_OK;
}

sd_status sd_st_parse(const uint8_t *buf, size_t len, const char *name, sd_st_file *out)
{
    memset(out, 0, sizeof *out);
    const char *file = name ? name : "safetensors";
    if (len < 8)
        return sd_fail(SD_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header length (truncated?)", file, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > SD_ST_MAX_HEADER)
        return sd_fail(SD_ERR_FORMAT, "%s: header length %llu at byte 0 exceeds the %llu-byte limit (not a safetensors file?)",
                       file, (unsigned long long)hlen, (unsigned long long)SD_ST_MAX_HEADER);
    if (hlen > len - 8)
        return sd_fail(SD_ERR_FORMAT, "%s: header of %llu bytes runs past the end of the file (%zu bytes; truncated?)", file,
                       (unsigned long long)hlen, len);
    if (hlen < 2)
        return sd_fail(SD_ERR_FORMAT, "%s: header of %llu bytes cannot hold a JSON object", file, (unsigned long long)hlen);
    out->buf = (uint8_t *)buf;
    out->len = len;
    out->borrowed = 1;
    out->data_start = 8 + (size_t)hlen;
    out->path = sd_strdup(file);
    if (!out->path)
        return SD_ERR_NOMEM;

    jcur c = {.p = buf + 8, .len = (size_t)hlen, .pos = 0, .file = file, .base = 8};
    sd_status st = jexpect(&c, '{');
    int cap = 0, seen_meta = 0;
    if (!st && jpeek(&c) == '}')
        c.pos++;
    else
        while (!st) {
            char *key = NULL;
            if ((st = jstring(&c, &key)) || (st = jexpect(&c, ':'))) {
                free(key);
                break;
            }
            if (!strcmp(key, "__metadata__")) {
                free(key);
                if (seen_meta++) {
                    st = JFAIL(&c, "__metadata__ appears twice");
                    break;
                }
                if ((st = jmeta(&c, out)))
                    break;
            } else {
                if (out->n == cap) {
                    int ncap = cap ? 2 * cap : 64;
                    sd_st_tensor *nt = realloc(out->tensors, (size_t)ncap * sizeof *nt);
                    if (!nt) {
                        free(key);
                        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory reading the header", file);
                        break;
                    }
                    out->tensors = nt;
                    cap = ncap;
                }
                sd_st_tensor *t = &out->tensors[out->n];
                memset(t, 0, sizeof *t);
                t->name = key;
                out->n++;
                if ((st = jtensor(&c, t)))
                    break;
            }
            int nx = jpeek(&c);
            if (nx == ',') {
                c.pos++;
                continue;
            }
            st = jexpect(&c, '}');
            break;
        }
    if (!st) {
        /* Only padding (spaces, as writers pad to 8 bytes) may follow. */
        jws(&c);
        if (c.pos != c.len)
            st = JFAIL(&c, "unexpected bytes after the JSON object");
    }
    if (!st)
        st = validate(out, file);
    if (st) {
        sd_st_free(out);
        return st;
    }
    return SD_OK;
}

sd_status sd_st_read(const char *path, sd_st_file *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    sd_status st = io_read_file(path, &buf, &len);
    if (st)
        return st;
    if ((st = sd_st_parse(buf, len, path, out))) {
        free(buf);
        return st;
    }
    out->borrowed = 0;
    return SD_OK;
}

void sd_st_free(sd_st_file *f)
{
    if (!f)
        return;
    if (!f->borrowed)
        free(f->buf);
    for (int i = 0; i < f->n; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

int sd_st_find(const sd_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name))
            return i;
    return -1;
}

const char *sd_st_meta(const sd_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key))
            return f->meta_values[i];
    return NULL;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (!man) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 1024));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

sd_status sd_st_to_f32(const sd_st_file *f, int i, float *dst)
{
    if (i < 0 || i >= f->n)
        return sd_fail(SD_ERR_ARG, "%s: no tensor %d", f->path ? f->path : "safetensors", i);
    const sd_st_tensor *t = &f->tensors[i];
    const uint8_t *src = f->buf + f->data_start + t->begin;
    switch (t->dtype) {
    case SD_ST_F32:
        memcpy(dst, src, t->numel * 4);
        return SD_OK;
    case SD_ST_F16:
        for (uint64_t k = 0; k < t->numel; k++)
            dst[k] = half_to_float((uint16_t)(src[2 * k] | src[2 * k + 1] << 8));
        return SD_OK;
    case SD_ST_BF16:
        for (uint64_t k = 0; k < t->numel; k++) {
            uint32_t bits = (uint32_t)(src[2 * k] | src[2 * k + 1] << 8) << 16;
            memcpy(&dst[k], &bits, 4);
        }
        return SD_OK;
    case SD_ST_F64:
        for (uint64_t k = 0; k < t->numel; k++) {
            double d;
            memcpy(&d, src + 8 * k, 8);
            dst[k] = (float)d;
        }
        return SD_OK;
    default:
        return sd_fail(SD_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; expected a floating-point dtype",
                       f->path ? f->path : "safetensors", t->name, dtypes[t->dtype].name);
    }
}

/* ---- writer ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k)
{
    if (b->oom)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}
static void sb_json_str(sbuf *b, const char *s)
{
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

static sd_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const uint8_t *q = p;
    while (n) {
        ssize_t k = write(fd, q, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return sd_fail(SD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        q += k;
        n -= (size_t)k;
    }
    return SD_OK;
}

sd_status sd_st_write(const char *path, int n, const sd_st_entry *e, int n_meta, const char *const *keys,
                      const char *const *values)
{
    sbuf h = {0};
    uint64_t off = 0;
    sb_puts(&h, "{");
    if (n_meta > 0) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i)
                sb_puts(&h, ",");
            sb_json_str(&h, keys[i]);
            sb_puts(&h, ":");
            sb_json_str(&h, values[i] ? values[i] : "");
        }
        sb_puts(&h, "}");
    }
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0] || !strcmp(e[i].name, "__metadata__") || e[i].ndim < 0 ||
            e[i].ndim > SD_ST_MAX_DIMS) {
            free(h.p);
            return sd_fail(SD_ERR_ARG, "%s: tensor %d has a bad name or %d dimensions", path, i, e[i].ndim);
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(e[j].name, e[i].name)) {
                free(h.p);
                return sd_fail(SD_ERR_ARG, "%s: tensor '%s' given twice", path, e[i].name);
            }
        uint64_t numel = 1;
        if (n_meta > 0 || i)
            sb_puts(&h, ",");
        sb_json_str(&h, e[i].name);
        sb_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e[i].ndim; d++) {
            sb_printf(&h, d ? ",%lld" : "%lld", (long long)e[i].shape[d]);
            numel *= (uint64_t)e[i].shape[d];
        }
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + 4 * numel));
        off += 4 * numel;
    }
    sb_puts(&h, "}");
    while (!h.oom && h.n % 8)
        sb_puts(&h, " ");
    if (h.oom) {
        free(h.p);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory building the header", path);
    }

    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!tmp) {
        free(h.p);
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    }
    io_tmp_name(tmp, plen, path);
    sd_status st = SD_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    if ((st = write_all(fd, lenb, 8, tmp)) || (st = write_all(fd, h.p, h.n, tmp)))
        goto fail;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++)
            numel *= (uint64_t)e[i].shape[d];
        if (numel && !e[i].data) {
            st = sd_fail(SD_ERR_ARG, "%s: tensor '%s' has no data", path, e[i].name);
            goto fail;
        }
        if ((st = write_all(fd, e[i].data, numel * 4, tmp)))
            goto fail;
    }
    if (fsync(fd) != 0) {
        st = sd_fail(SD_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        st = sd_fail(SD_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        st = sd_fail(SD_ERR_IO, "%s: cannot rename %s onto it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    /* The rename is durable only once the directory entry is. */
    {
        char *dir = sd_strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash == dir)
                d = "/";
            else if (slash) {
                *slash = 0;
                d = dir;
            }
            int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    free(tmp);
    free(h.p);
    return st;
}
