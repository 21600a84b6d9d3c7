/* Feature matrices for the gap measures: standardising, pooling a feature
 * map into rows, reading/writing .npy and text matrices, running every
 * measure at once and writing the JSON report. The measures themselves live
 * in svm.c, mmd.c, retrieval.c, pca.c and classkl.c. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/gap.h"
#include "io/file.h"

void sd_gap_standardize(float *x, int n, int d)
{
    if (n <= 0)
        return;
    for (int j = 0; j < d; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++)
            m += x[(size_t)i * d + j];
        m /= n;
        for (int i = 0; i < n; i++) {
            double t = x[(size_t)i * d + j] - m;
            v += t * t;
        }
        double sd = sqrt(v / n);
        double inv = sd > 1e-12 ? 1.0 / sd : 0.0;
        for (int i = 0; i < n; i++)
            x[(size_t)i * d + j] = (float)((x[(size_t)i * d + j] - m) * inv);
    }
}

sd_status sd_gap_pool_features(const float *fmap, int c, int h, int w, int pixels,
                               sd_rng *rng, float *out, int *pos)
{
    if (!fmap || !out || c < 1 || h < 1 || w < 1)
        return sd_fail(SD_ERR_SHAPE, "pool features: feature map %dx%dx%d, expected C, H, W >= 1", c, h, w);
    if (pixels < 0 || (pixels > 0 && !rng))
        return sd_fail(SD_ERR_ARG, "pool features: %d pixels, expected 0 (average) or > 0 with an rng", pixels);
    size_t hw = (size_t)h * w;
    if (pixels == 0) {
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            const float *p = fmap + ch * hw;
            for (size_t i = 0; i < hw; i++)
                s += p[i];
            out[ch] = (float)(s / hw);
        }
        return SD_OK;
    }
    for (int k = 0; k < pixels; k++) {
        int x = sd_rng_int(rng, w), y = sd_rng_int(rng, h);
        for (int ch = 0; ch < c; ch++)
            out[(size_t)k * c + ch] = fmap[ch * hw + (size_t)y * w + x];
        if (pos) {
            pos[2 * k] = x;
            pos[2 * k + 1] = y;
        }
    }
    return SD_OK;
}

/* ---- .npy ---------------------------------------------------------------- */

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *npy_field(const char *hdr, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static sd_status npy_read(const char *path, FILE *f, float **xo, int *no, int *do_)
{
    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10)
        return sd_fail(SD_ERR_FORMAT, "%s: truncated .npy preamble", path);
    int major = pre[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2)
            return sd_fail(SD_ERR_FORMAT, "%s: truncated .npy preamble", path);
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        off = 12;
    } else {
        return sd_fail(SD_ERR_FORMAT, "%s: .npy version %d, expected 1, 2 or 3", path, major);
    }
    if (hlen == 0 || hlen > 1 << 20)
        return sd_fail(SD_ERR_FORMAT, "%s: .npy header length %zu, expected 1..1048576", path, hlen);
    char *hdr = sd_malloc(hlen + 1);
    if (!hdr)
        return SD_ERR_NOMEM;
    if (fread(hdr, 1, hlen, f) != hlen) {
        free(hdr);
        return sd_fail(SD_ERR_FORMAT, "%s: truncated .npy header (%zu bytes expected)", path, hlen);
    }
    hdr[hlen] = 0;
    sd_status st = SD_OK;
    const char *descr = npy_field(hdr, "descr"), *fo = npy_field(hdr, "fortran_order"),
               *shape = npy_field(hdr, "shape");
    int esize = 0;
    if (descr && (!strncmp(descr, "'<f4'", 5) || !strncmp(descr, "'=f4'", 5)))
        esize = 4;
    else if (descr && (!strncmp(descr, "'<f8'", 5) || !strncmp(descr, "'=f8'", 5)))
        esize = 8;
    if (!esize) {
        st = sd_fail(SD_ERR_FORMAT, "%s: .npy field 'descr' is %.8s, expected '<f4' or '<f8'", path,
                     descr ? descr : "missing");
        goto done;
    }
    if (!fo || strncmp(fo, "False", 5)) {
        st = sd_fail(SD_ERR_FORMAT, "%s: .npy field 'fortran_order' must be False (C order)", path);
        goto done;
    }
    long long dims[2];
    int nd = 0;
    if (!shape || *shape != '(') {
        st = sd_fail(SD_ERR_FORMAT, "%s: .npy field 'shape' missing or not a tuple", path);
        goto done;
    }
    const char *p = shape + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || nd == 2) {
            st = sd_fail(SD_ERR_FORMAT, "%s: .npy field 'shape' is %.40s, expected (rows, columns)", path, shape);
            goto done;
        }
        dims[nd++] = v;
        p = end;
    }
    if (nd != 2 || dims[0] < 1 || dims[1] < 1 || dims[0] > INT_MAX || dims[1] > INT_MAX ||
        (unsigned long long)dims[0] * dims[1] > (1ULL << 34)) {
        st = sd_fail(SD_ERR_FORMAT, "%s: .npy field 'shape' is %.40s, expected 2-D (rows, columns), both >= 1",
                     path, shape);
        goto done;
    }
    size_t count = (size_t)dims[0] * dims[1];
    float *x = sd_malloc(sizeof(float) * count);
    void *raw = esize == 8 ? sd_malloc(8 * count) : x;
    if (!x || !raw) {
        free(x);
        st = SD_ERR_NOMEM;
        goto done;
    }
    size_t got = fread(raw, esize, count, f);
    if (got != count) {
        st = sd_fail(SD_ERR_FORMAT, "%s: truncated .npy data: %zu of %zu values after the %zu-byte header",
                     path, got, count, off + hlen);
        if (raw != x)
            free(raw);
        free(x);
        goto done;
    }
    if (esize == 8) {
        for (size_t i = 0; i < count; i++)
            x[i] = (float)((double *)raw)[i];
        free(raw);
    }
    for (size_t i = 0; i < count; i++)
        if (!isfinite(x[i])) {
            st = sd_fail(SD_ERR_NUMERIC, "%s: value at row %zu, column %zu is not finite", path,
                         i / (size_t)dims[1], i % (size_t)dims[1]);
            free(x);
            goto done;
        }
    *xo = x;
    *no = (int)dims[0];
    *do_ = (int)dims[1];
done:
    free(hdr);
    return st;
}

/* ---- text ---------------------------------------------------------------- */

static sd_status text_read(const char *path, FILE *f, float **xo, int *no, int *do_)
{
    char *line = NULL;
    size_t cap = 0, n_val = 0, n_cap = 0;
    float *x = NULL;
    int d = -1, n = 0;
    long lineno = 0;
    sd_status st = SD_OK;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
            continue;
        int cols = 0;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            if (!*p || *p == '\n' || *p == '\r')
                break;
            char *end;
            float v = strtof(p, &end);
            if (end == p || !isfinite(v)) {
                char tok[24];
                size_t m = strcspn(p, " \t,\r\n");
                snprintf(tok, sizeof tok, "%.*s", (int)(m < 20 ? m : 20), p);
                st = sd_fail(SD_ERR_FORMAT, "%s:%ld: column %d is '%s', expected a finite number", path, lineno,
                             cols + 1, tok);
                goto done;
            }
            if (n_val == n_cap) {
                n_cap = n_cap ? 2 * n_cap : 1024;
                float *nx = realloc(x, sizeof(float) * n_cap);
                if (!nx) {
                    st = sd_fail(SD_ERR_NOMEM, "%s: out of memory at line %ld", path, lineno);
                    goto done;
                }
                x = nx;
            }
            x[n_val++] = v;
            cols++;
            p = end;
        }
        if (d < 0)
            d = cols;
        else if (cols != d) {
            st = sd_fail(SD_ERR_FORMAT, "%s:%ld: %d numbers, expected %d like the first row", path, lineno, cols, d);
            goto done;
        }
        if (n == INT_MAX) {
            st = sd_fail(SD_ERR_FORMAT, "%s: too many rows", path);
            goto done;
        }
        n++;
    }
    if (n == 0) {
        st = sd_fail(SD_ERR_FORMAT, "%s: no rows of numbers (expected a .npy file or text rows)", path);
        goto done;
    }
    *xo = x;
    *no = n;
    *do_ = d;
    x = NULL;
done:
    free(x);
    free(line);
    return st;
}

sd_status sd_gap_features_read(const char *path, float **x, int *n, int *d)
{
    if (!path || !x || !n || !d)
        return sd_fail(SD_ERR_ARG, "features: no path given");
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char magic[6] = {0};
    size_t got = fread(magic, 1, 6, f);
    rewind(f);
    sd_status st = got == 6 && !memcmp(magic, "\x93NUMPY", 6) ? npy_read(path, f, x, n, d)
                                                               : text_read(path, f, x, n, d);
    fclose(f);
    return st;
}

sd_status sd_gap_features_write_npy(const char *path, const float *x, int n, int d)
{
    if (!path || !x || n < 1 || d < 1)
        return sd_fail(SD_ERR_ARG, "features %s: empty matrix (%d x %d)", path ? path : "(null)", n, d);
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, d);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64; /* the format wants the data 64-byte aligned */
    FILE *f = fopen(path, "wb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    unsigned hl = (unsigned)(len + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 255), (unsigned char)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(x, sizeof(float), (size_t)n * d, f);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return sd_fail(SD_ERR_IO, "%s: write failed", path);
    return SD_OK;
}

/* ---- all measures ---------------------------------------------------------- */

void sd_gap_options_default(sd_gap_options *o)
{
    o->folds = 5;
    o->n_perm = 200;
    o->k = 5;
    o->max_per_domain = 1000;
    o->metric = SD_GAP_METRIC_L2;
    o->seed = 0;
}

int *sd_gap_pick(int n, int m, sd_rng *rng, int *out_m)
{
    int *idx = sd_malloc(sizeof(int) * (n > 0 ? n : 1));
    if (!idx)
        return NULL;
    for (int i = 0; i < n; i++)
        idx[i] = i;
    if (m > 0 && m < n) {
        for (int i = 0; i < m; i++) {
            int j = i + sd_rng_int(rng, n - i), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        /* Sorted so the kept rows keep their dataset order (insertion sort
         * is enough: m is at most a few thousand). */
        for (int i = 1; i < m; i++) {
            int v = idx[i], j = i;
            while (j > 0 && idx[j - 1] > v) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        n = m;
    }
    *out_m = n;
    return idx;
}

void sd_gap_result_free(sd_gap_result *res)
{
    if (!res)
        return;
    free(res->rows_a);
    free(res->rows_b);
    free(res->pca);
    free(res->nbr);
    res->rows_a = res->rows_b = res->nbr = NULL;
    res->pca = NULL;
    res->has_features = false;
}

sd_status sd_gap_measure(const float *xa, int na, const float *xb, int nb, int d,
                         const sd_gap_options *opts, sd_gap_result *res)
{
    sd_gap_options def;
    if (!opts) {
        sd_gap_options_default(&def);
        opts = &def;
    }
    if (!xa || !xb || !res || d < 1)
        return sd_fail(SD_ERR_ARG, "gap: missing features (d %d)", d);
    if (opts->max_per_domain < 2)
        return sd_fail(SD_ERR_ARG, "gap: max rows per domain %d, expected >= 2", opts->max_per_domain);
    sd_gap_result_free(res);
    sd_rng rng = sd_rng_fork(opts->seed, 0x6a9);
    int ma = 0, mb = 0;
    /* Equal rows per domain, so that 0.5 is chance for the SVMs and for
     * retrieval whatever the datasets' sizes. */
    int keep = na < nb ? na : nb;
    if (keep > opts->max_per_domain)
        keep = opts->max_per_domain;
    res->rows_a = sd_gap_pick(na, keep, &rng, &ma);
    res->rows_b = sd_gap_pick(nb, keep, &rng, &mb);
    int n = ma + mb;
    float *x = sd_malloc(sizeof(float) * (size_t)n * d);
    uint8_t *dom = sd_malloc((size_t)n);
    res->pca = sd_malloc(sizeof(float) * (size_t)n * 2);
    res->nbr = sd_malloc(sizeof(int) * (size_t)ma * (opts->k > 0 ? opts->k : 1));
    float comp[2 * 2];
    float *comp_big = NULL;
    sd_status st = SD_OK;
    if (!res->rows_a || !res->rows_b || !x || !dom || !res->pca || !res->nbr) {
        st = SD_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < ma; i++) {
        memcpy(x + (size_t)i * d, xa + (size_t)res->rows_a[i] * d, sizeof(float) * d);
        dom[i] = 0;
    }
    for (int i = 0; i < mb; i++) {
        memcpy(x + (size_t)(ma + i) * d, xb + (size_t)res->rows_b[i] * d, sizeof(float) * d);
        dom[ma + i] = 1;
    }
    for (size_t i = 0; i < (size_t)n * d; i++)
        if (!isfinite(x[i])) {
            st = sd_fail(SD_ERR_NUMERIC, "gap: feature %zu of %s row %zu is not finite", i % d,
                         i / d < (size_t)ma ? "A" : "B", i / d < (size_t)ma ? i / d : i / d - ma);
            goto done;
        }
    res->n_a = ma;
    res->n_b = mb;
    res->d = d;
    res->k = opts->k;
    if ((st = sd_gap_svm_accuracy(x, dom, n, d, SD_GAP_SVM_LINEAR, opts->folds, opts->seed,
                                  &res->svm_linear_accuracy)) != SD_OK ||
        (st = sd_gap_svm_accuracy(x, dom, n, d, SD_GAP_SVM_POLY, opts->folds, opts->seed,
                                  &res->svm_poly_accuracy)) != SD_OK)
        goto done;
    sd_gap_standardize(x, n, d);
    if ((st = sd_gap_mmd(x, dom, n, d, opts->n_perm, opts->seed, &res->mmd, &res->mmd_p, &res->mmd_sigma)) != SD_OK)
        goto done;
    if ((st = sd_gap_retrieval(x, dom, n, d, opts->k, opts->metric, res->nbr, &res->retrieval_other_domain)) != SD_OK)
        goto done;
    if (d >= 2) {
        comp_big = sd_malloc(sizeof(float) * 2 * d);
        if (!comp_big) {
            st = SD_ERR_NOMEM;
            goto done;
        }
        st = sd_gap_pca(x, n, d, 2, opts->seed, comp_big, res->pca, NULL);
    } else {
        /* One feature: plot it against zero. */
        st = sd_gap_pca(x, n, d, 1, opts->seed, comp, res->pca, NULL);
        for (int i = n - 1; i >= 0 && st == SD_OK; i--) {
            res->pca[2 * i] = res->pca[i];
            res->pca[2 * i + 1] = 0;
        }
    }
    if (st == SD_OK)
        res->has_features = true;
done:
    free(x);
    free(dom);
    free(comp_big);
    if (st != SD_OK) {
        bool kl = res->has_class_kl;
        sd_gap_result_free(res);
        res->has_class_kl = kl;
    }
    return st;
}

sd_status sd_gap_result_write_json(const char *path, const sd_gap_result *res)
{
    return sd_gap_result_write_json_setup(path, res, 0, NULL, NULL);
}

sd_status sd_gap_result_write_json_setup(const char *path, const sd_gap_result *res, int n_setup,
                                         const char *const *keys, const char *const *values)
{
    if (!path || !res)
        return sd_fail(SD_ERR_ARG, "gap json: no path or result");
    char tmp[4096];
    if (io_tmp_name(tmp, sizeof tmp, path) >= (int)sizeof tmp)
        return sd_fail(SD_ERR_ARG, "gap json: path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "{");
    if (n_setup > 0) {
        fprintf(f, "\"setup\": {");
        for (int i = 0; i < n_setup; i++) {
            fputs(i ? ", " : "", f);
            sd_json_str(f, keys[i]);
            fputs(": ", f);
            sd_json_str(f, values[i]);
        }
        fprintf(f, "}, ");
    }
    if (res->has_features)
        fprintf(f, "\"svm_linear_accuracy\": %.6f, \"svm_poly_accuracy\": %.6f, \"mmd\": %.9g, \"mmd_p\": %.6f, ",
                res->svm_linear_accuracy, res->svm_poly_accuracy, res->mmd, res->mmd_p);
    fprintf(f, "\"class_kl\": {");
    if (res->has_class_kl)
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            fprintf(f, "%s\"%s\": %.6f", c ? ", " : "", sd_class_names[c], res->class_kl[c]);
    fprintf(f, "}");
    if (res->has_features)
        fprintf(f, ", \"retrieval_other_domain\": %.6f", res->retrieval_other_domain);
    fprintf(f, "}\n");
    int bad = ferror(f);
    if (fclose(f) || bad) {
        remove(tmp);
        return sd_fail(SD_ERR_IO, "%s: write failed", tmp);
    }
    if (rename(tmp, path)) {
        int e = errno;
        remove(tmp);
        return sd_fail(SD_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(e));
    }
    return SD_OK;
}
