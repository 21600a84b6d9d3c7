/* Finding the prediction file of each ground-truth sample under a directory,
 * as cityscapesScripts' getPrediction does (recursive walk, the
 * CITY_SSSSSS_FFFFFF stem in the file name, two candidates an error). Does
 * not read images. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "segda/eval.h"

typedef struct key_ref {
    const char *key;
    size_t len;
    int idx;
} key_ref;

static int key_cmp(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

typedef struct walk_state {
    sd_pred_match *m;
    const key_ref *refs;
    int n_refs;
    sd_match_mode mode;
    sd_pred_kind kind;
} walk_state;

/* segda predict's file suffixes (see eval.h) */
static bool has_suffix(const char *name, size_t len, const char *suf)
{
    size_t n = strlen(suf);
    return len >= n && !strcasecmp(name + len - n, suf);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static sd_status claim(walk_state *ws, const key_ref *k, const char *path)
{
    char **slot = &ws->m->paths[k->idx];
    if (*slot) {
        if (!strcmp(*slot, path))
            return SD_OK; /* the same file matched twice through one key */
        return sd_fail(SD_ERR_DATA, "two predictions for %.*s: %s and %s", (int)k->len, k->key,
                       *slot, path);
    }
    *slot = sd_strdup(path);
    return *slot ? SD_OK : SD_ERR_NOMEM;
}

static const key_ref *find_key(const walk_state *ws, const char *s, size_t len)
{
    key_ref probe = {s, len, -1};
    return bsearch(&probe, ws->refs, (size_t)ws->n_refs, sizeof probe, key_cmp);
}

static sd_status match_file(walk_state *ws, const char *path, const char *name)
{
    size_t len = strlen(name);
    if (len < 4 || strcasecmp(name + len - 4, ".png"))
        return SD_OK;
    const char *own = ws->kind == SD_PRED_LABEL_IDS ? "_labelIds.png" : "_trainIds.png";
    const char *other = ws->kind == SD_PRED_LABEL_IDS ? "_trainIds.png" : "_labelIds.png";
    if (has_suffix(name, len, other) || has_suffix(name, len, "_color.png") || has_suffix(name, len, "_overlay.png"))
        return SD_OK;
    ws->m->n_files++;
    int hits = 0;
    if (ws->mode == SD_MATCH_BASENAME) {
        size_t base = has_suffix(name, len, own) ? len - strlen(own) : len - 4;
        const key_ref *k = find_key(ws, name, base);
        if (k) {
            hits++;
            sd_status st = claim(ws, k, path);
            if (st)
                return st;
        }
    } else {
        /* a stem ends in a digit that no digit follows: try every start
         * before each such end (names are short) */
        size_t stem_len = len - 4;
        for (size_t e = 1; e <= stem_len; e++) {
            if (!is_digit(name[e - 1]) || (e < stem_len && is_digit(name[e])))
                continue;
            for (size_t s = 0; s < e; s++) {
                const key_ref *k = find_key(ws, name + s, e - s);
                if (!k)
                    continue;
                hits++;
                sd_status st = claim(ws, k, path);
                if (st)
                    return st;
            }
        }
    }
    if (!hits)
        ws->m->n_unmatched++;
    return SD_OK;
}

static int skip_dot(const struct dirent *d)
{
    return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

/* Sorted entries so that which of two duplicates is named first does not
 * depend on the file system's order. Depth-limited against symlink loops. */
static sd_status walk(walk_state *ws, const char *dir, int depth)
{
    if (depth > 32)
        return sd_fail(SD_ERR_IO, "%s: directories nested deeper than 32 (a symlink loop?)", dir);
    struct dirent **ents;
    int n = scandir(dir, &ents, skip_dot, alphasort);
    if (n < 0)
        return sd_fail(SD_ERR_IO, "%s: cannot list directory: %s", dir, strerror(errno));
    sd_status st = SD_OK;
    size_t dl = strlen(dir);
    for (int i = 0; i < n; i++) {
        if (st == SD_OK) {
            size_t nl = strlen(ents[i]->d_name);
            char *path = sd_malloc(dl + nl + 2);
            if (!path) {
                st = SD_ERR_NOMEM;
            } else {
                snprintf(path, dl + nl + 2, "%s%s%s", dir,
                         dl && dir[dl - 1] == '/' ? "" : "/", ents[i]->d_name);
                struct stat sb;
                if (stat(path, &sb) == 0) {
                    if (S_ISDIR(sb.st_mode))
                        st = walk(ws, path, depth + 1);
                    else if (S_ISREG(sb.st_mode))
                        st = match_file(ws, path, ents[i]->d_name);
                } /* a dangling link is not a prediction: skipped */
                free(path);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return st;
}

sd_status sd_pred_match_dir(sd_pred_match *m, const char *dir, const char *const *keys, int n_keys,
                            sd_match_mode mode, sd_pred_kind kind)
{
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return sd_fail(SD_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return sd_fail(SD_ERR_ARG, "%s: not a directory (expected the predictions' folder)", dir);
    m->n_keys = n_keys;
    m->paths = sd_calloc((size_t)(n_keys > 0 ? n_keys : 1), sizeof *m->paths);
    key_ref *refs = sd_malloc(sizeof *refs * (size_t)(n_keys > 0 ? n_keys : 1));
    if (!m->paths || !refs) {
        free(refs);
        sd_pred_match_free(m);
        return SD_ERR_NOMEM;
    }
    for (int i = 0; i < n_keys; i++)
        refs[i] = (key_ref){keys[i], strlen(keys[i]), i};
    qsort(refs, (size_t)n_keys, sizeof *refs, key_cmp);
    for (int i = 1; i < n_keys; i++)
        if (!key_cmp(&refs[i - 1], &refs[i])) {
            sd_status st = sd_fail(SD_ERR_DATA,
                                   "two ground-truth samples share the key %s: predictions "
                                   "could not tell them apart",
                                   refs[i].key);
            free(refs);
            sd_pred_match_free(m);
            return st;
        }
    walk_state ws = {m, refs, n_keys, mode, kind};
    sd_status st = walk(&ws, dir, 0);
    free(refs);
    if (st != SD_OK) {
        sd_pred_match_free(m);
        return st;
    }
    return SD_OK;
}

void sd_pred_match_free(sd_pred_match *m)
{
    if (m->paths)
        for (int i = 0; i < m->n_keys; i++)
            free(m->paths[i]);
    free(m->paths);
    memset(m, 0, sizeof *m);
}
