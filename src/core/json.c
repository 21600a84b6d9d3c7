/* JSON for every file segda writes or reads back: string escaping and
 * numbers (non-finite as null) for the writers (run logs, summaries,
 * reports, gap features), and a strict reader that walks a document's
 * leaves (the demo reading run summaries). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/core.h"

void sd_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void sd_json_num(FILE *f, double v, int digits)
{
    if (isfinite(v))
        fprintf(f, "%.*g", digits, v);
    else
        fputs("null", f);
}

/* ---- reading: a strict recursive-descent walk (RFC 8259 values, nesting
 * at most 32) that hands every leaf to a callback with its dotted path ---- */

typedef struct jr {
    const char *p, *end;
    sd_json_leaf_fn fn;
    void *ctx;
    char path[512];
    const char *err;
} jr;

static void ws(jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

/* A string into out (escapes \uXXXX above 0x7f kept as '?'). */
static bool str(jr *r, char *out, size_t cap)
{
    size_t n = 0;
    if (r->p >= r->end || *r->p != '"')
        return r->err = "expected a string", false;
    for (r->p++; r->p < r->end && *r->p != '"'; r->p++) {
        char c = *r->p;
        if ((unsigned char)c < 0x20)
            return r->err = "control character in a string", false;
        if (c == '\\') {
            if (++r->p >= r->end)
                break;
            switch (*r->p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"': case '\\': case '/': c = *r->p; break;
            case 'u': {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    if (++r->p >= r->end || !isxdigit((unsigned char)*r->p))
                        return r->err = "bad \\u escape", false;
                    char h = *r->p;
                    v = v * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                }
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default: return r->err = "bad escape", false;
            }
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (r->p >= r->end)
        return r->err = "unterminated string", false;
    r->p++;
    out[n] = 0;
    return true;
}

static bool value(jr *r, int depth);

static bool members(jr *r, int depth, bool array)
{
    size_t base = strlen(r->path);
    r->p++;
    ws(r);
    if (r->p < r->end && *r->p == (array ? ']' : '}'))
        return r->p++, true;
    for (int i = 0;; i++) {
        char key[256];
        ws(r);
        if (array) {
            snprintf(key, sizeof key, "%d", i);
        } else {
            if (!str(r, key, sizeof key))
                return false;
            ws(r);
            if (r->p >= r->end || *r->p != ':')
                return r->err = "expected ':'", false;
            r->p++;
        }
        snprintf(r->path + base, sizeof r->path - base, "%s%s", base ? "." : "", key);
        if (!value(r, depth + 1))
            return false;
        r->path[base] = 0;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == (array ? ']' : '}'))
            return r->p++, true;
        return r->err = array ? "expected ',' or ']'" : "expected ',' or '}'", false;
    }
}

static bool value(jr *r, int depth)
{
    ws(r);
    if (depth > 32)
        return r->err = "nested deeper than 32", false;
    if (r->p >= r->end)
        return r->err = "unexpected end", false;
    char c = *r->p;
    if (c == '{' || c == '[')
        return members(r, depth, c == '[');
    if (c == '"') {
        char s[4096];
        if (!str(r, s, sizeof s))
            return false;
        r->fn(r->ctx, r->path, s, NAN);
        return true;
    }
    static const char *const words[] = {"null", "true", "false"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(words[k]);
        if ((size_t)(r->end - r->p) >= n && !strncmp(r->p, words[k], n)) {
            r->p += n;
            r->fn(r->ctx, r->path, NULL, k == 0 ? NAN : k == 1 ? 1 : 0);
            return true;
        }
    }
    char num[64];
    size_t n = 0;
    while (r->p < r->end && n + 1 < sizeof num && strchr("+-0123456789.eE", *r->p))
        num[n++] = *r->p++;
    num[n] = 0;
    char *e;
    double v = n ? strtod(num, &e) : 0;
    if (!n || *e)
        return r->err = "expected a value", false;
    r->fn(r->ctx, r->path, NULL, v);
    return true;
}

sd_status sd_json_walk(const char *text, size_t len, const char *name, sd_json_leaf_fn fn, void *ctx)
{
    jr r = {.p = text, .end = text + len, .fn = fn, .ctx = ctx};
    bool ok = value(&r, 0);
    if (ok) {
        ws(&r);
        if (r.p != r.end)
            ok = false, r.err = "text after the value";
    }
    return ok ? SD_OK : sd_fail(SD_ERR_FORMAT, "%s: not JSON: %s at byte %td", name, r.err, r.p - text);
}
