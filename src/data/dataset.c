/* Dataset readers: parses the spec, lists GTA5 / SYNTHIA / Cityscapes /
 * folder trees into sorted image-label pairs, and reads a sample as RGB u8
 * plus trainIds through one table look-up per pixel. No resizing (see
 * transform.c) and no threading beyond the class-pixel census. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segda/data.h"
#include "io/file.h"
#include "segda/image.h"
#include "segda/labels.h"

static const char *const kind_names[SD_DATASET_KIND_COUNT] = {"gta5", "synthia", "cityscapes", "folder", "camvid"};

const char *sd_dataset_kind_name(sd_dataset_kind k)
{
    return (unsigned)k < SD_DATASET_KIND_COUNT ? kind_names[k] : "?";
}

static char *path_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    char *p = sd_malloc(na + nb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        sd_fail(SD_ERR_NOMEM, "out of memory");
    return s;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- string lists ---- */

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* Sorted names in dir: regular files ending with one of the suffixes (or,
 * with dirs_only, subdirectories). */
typedef struct list_filter {
    const char *const *suffixes;
    bool dirs_only;
} list_filter;

static bool keep_entry(const char *name, bool is_dir, void *ctx)
{
    const list_filter *lf = ctx;
    if (lf->dirs_only || is_dir)
        return lf->dirs_only && is_dir;
    for (int k = 0; lf->suffixes[k]; k++)
        if (ends_with(name, lf->suffixes[k]))
            return true;
    return false;
}

static sd_status list_dir(const char *dir, const char *const *suffixes, bool dirs_only, strlist *out)
{
    memset(out, 0, sizeof *out);
    list_filter lf = {suffixes, dirs_only};
    sd_names names;
    sd_status st = sd_dir_list(dir, keep_entry, &lf, &names);
    if (!st)
        out->v = names.v, out->n = out->cap = names.n;
    return st;
}

/* ---- dataset building ---- */

static sd_status add_sample(sd_dataset *ds, int *cap, char *img, char *lab, char *stem)
{
    if (!img || !stem) {
        free(img), free(lab), free(stem);
        return SD_ERR_NOMEM;
    }
    if (ds->n == *cap) {
        int nc = *cap ? 2 * *cap : 256;
        sd_sample_entry *s = realloc(ds->samples, sizeof *s * nc);
        if (!s) {
            free(img), free(lab), free(stem);
            return sd_fail(SD_ERR_NOMEM, "out of memory listing samples");
        }
        ds->samples = s;
        *cap = nc;
    }
    ds->samples[ds->n++] = (sd_sample_entry){img, lab, stem};
    return SD_OK;
}

static sd_status add_problem(sd_dataset *ds, char *msg)
{
    if (!msg)
        return SD_ERR_NOMEM;
    char **p = realloc(ds->problems, sizeof(char *) * (ds->n_problems + 1));
    if (!p) {
        free(msg);
        return sd_fail(SD_ERR_NOMEM, "out of memory");
    }
    ds->problems = p;
    ds->problems[ds->n_problems++] = msg;
    return SD_OK;
}

static char *strip_suffix(const char *name, const char *suf)
{
    size_t n = strlen(name), m = strlen(suf);
    char *s = sd_malloc(n - m + 1);
    if (s) {
        memcpy(s, name, n - m);
        s[n - m] = 0;
    }
    return s;
}

static const char *file_ext(const char *name)
{
    const char *d = strrchr(name, '.');
    return d ? d : name + strlen(name);
}

static int cmp_idx_by_str(const void *a, const void *b, void *strs)
{
    char **s = strs;
    int c = strcmp(s[*(const int *)a], s[*(const int *)b]);
    return c ? c : *(const int *)a - *(const int *)b;
}

/* Pairs two sorted lists of file names by stem (name without extension,
 * after removing img_suf / lab_suf when given). */
static sd_status pair_lists(sd_dataset *ds, int *cap, const char *img_dir, const strlist *imgs, const char *img_suf,
                            const char *lab_dir, const strlist *labs, const char *lab_suf, bool labels_optional)
{
    int ni = imgs->n, nl = labs->n;
    char **si = calloc(ni + 1, sizeof(char *)), **sl = calloc(nl + 1, sizeof(char *));
    sd_status st = SD_OK;
    if (!si || !sl)
        st = sd_fail(SD_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < ni; i++) {
        const char *nm = imgs->v[i];
        si[i] = strip_suffix(nm, img_suf ? img_suf : file_ext(nm));
        if (!si[i])
            st = SD_ERR_NOMEM;
    }
    for (int i = 0; !st && i < nl; i++) {
        const char *nm = labs->v[i];
        sl[i] = strip_suffix(nm, lab_suf ? lab_suf : file_ext(nm));
        if (!sl[i])
            st = SD_ERR_NOMEM;
    }
    /* Stems of names with mixed extensions (folder: a.jpg, a_b.png) need
     * not sort like the names, so order index arrays by stem. */
    int *oi = malloc(sizeof(int) * (ni + 1)), *ol = malloc(sizeof(int) * (nl + 1));
    if (!st && (!oi || !ol))
        st = sd_fail(SD_ERR_NOMEM, "out of memory");
    if (!st) {
        for (int i = 0; i < ni; i++)
            oi[i] = i;
        for (int i = 0; i < nl; i++)
            ol[i] = i;
        qsort_r(oi, ni, sizeof(int), cmp_idx_by_str, si);
        qsort_r(ol, nl, sizeof(int), cmp_idx_by_str, sl);
    }
    int a = 0, b = 0;
    while (!st && (a < ni || b < nl)) {
        int c = a >= ni ? 1 : b >= nl ? -1 : strcmp(si[oi[a]], sl[ol[b]]);
        if (c <= 0 && a + 1 < ni && !strcmp(si[oi[a]], si[oi[a + 1]])) {
            st = add_problem(ds, str_printf("%s/%s: another image has the same stem (%s); left out", img_dir,
                                            imgs->v[oi[a]], imgs->v[oi[a + 1]]));
            a++;
            continue;
        }
        if (c == 0) {
            st = add_sample(ds, cap, path_join(img_dir, imgs->v[oi[a]]), path_join(lab_dir, labs->v[ol[b]]),
                            sd_strdup(si[oi[a]]));
            a++, b++;
        } else if (c < 0) {
            if (labels_optional)
                st = add_sample(ds, cap, path_join(img_dir, imgs->v[oi[a]]), NULL, sd_strdup(si[oi[a]]));
            else
                st = add_problem(ds, str_printf("%s/%s: image has no label (expected %s/%s%s)", img_dir,
                                                imgs->v[oi[a]], lab_dir, si[oi[a]], lab_suf ? lab_suf : ".png"));
            a++;
        } else {
            st = add_problem(ds, str_printf("%s/%s: label has no image", lab_dir, labs->v[ol[b]]));
            b++;
        }
    }
    for (int i = 0; si && i < ni; i++)
        free(si[i]);
    for (int i = 0; sl && i < nl; i++)
        free(sl[i]);
    free(si), free(sl), free(oi), free(ol);
    return st;
}

static sd_status list_pairs(sd_dataset *ds, int *cap, const char *img_sub, const char *lab_sub,
                            const char *const *img_exts, const char *img_suf, const char *lab_suf)
{
    static const char *const png[] = {".png", NULL};
    char *idir = path_join(ds->root, img_sub), *ldir = path_join(ds->root, lab_sub);
    strlist imgs = {0}, labs = {0};
    sd_status st = (!idir || !ldir) ? SD_ERR_NOMEM : SD_OK;
    if (!st && !is_dir(idir))
        st = sd_fail(SD_ERR_IO, "%s: no such directory (a %s tree needs %s/ and %s/)", idir,
                     sd_dataset_kind_name(ds->kind), img_sub, lab_sub);
    if (!st && !is_dir(ldir))
        st = sd_fail(SD_ERR_IO, "%s: no such directory (a %s tree needs %s/ and %s/)", ldir,
                     sd_dataset_kind_name(ds->kind), img_sub, lab_sub);
    if (!st)
        st = list_dir(idir, img_exts, false, &imgs);
    if (!st)
        st = list_dir(ldir, png, false, &labs);
    if (!st)
        st = pair_lists(ds, cap, idir, &imgs, img_suf, ldir, &labs, lab_suf, false);
    strlist_free(&imgs);
    strlist_free(&labs);
    free(idir);
    free(ldir);
    return st;
}

static sd_status list_cityscapes(sd_dataset *ds, int *cap)
{
    static const char *const img_suf[] = {"_leftImg8bit.png", NULL};
    static const char *const lab_suf[] = {"_gtFine_labelIds.png", NULL};
    char *idir = str_printf("%s/leftImg8bit/%s", ds->root, ds->split);
    char *ldir = str_printf("%s/gtFine/%s", ds->root, ds->split);
    bool test = !strcmp(ds->split, "test");
    strlist cities = {0};
    sd_status st = (!idir || !ldir) ? SD_ERR_NOMEM : SD_OK;
    if (!st && !is_dir(idir))
        st = sd_fail(SD_ERR_IO, "%s: no such directory (expected ROOT/leftImg8bit/%s/CITY/*_leftImg8bit.png)", idir,
                     ds->split);
    if (!st && !test && !is_dir(ldir))
        st = sd_fail(SD_ERR_IO, "%s: no such directory (expected ROOT/gtFine/%s/CITY/*_gtFine_labelIds.png)", ldir,
                     ds->split);
    if (!st)
        st = list_dir(idir, NULL, true, &cities);
    for (int c = 0; !st && c < cities.n; c++) {
        char *icity = path_join(idir, cities.v[c]), *lcity = path_join(ldir, cities.v[c]);
        strlist imgs = {0}, labs = {0};
        st = (!icity || !lcity) ? SD_ERR_NOMEM : SD_OK;
        if (!st)
            st = list_dir(icity, img_suf, false, &imgs);
        if (!st && is_dir(lcity))
            st = list_dir(lcity, lab_suf, false, &labs);
        if (!st)
            st = pair_lists(ds, cap, icity, &imgs, img_suf[0], lcity, &labs, lab_suf[0], test);
        strlist_free(&imgs);
        strlist_free(&labs);
        free(icity);
        free(lcity);
    }
    strlist_free(&cities);
    free(idir);
    free(ldir);
    return st;
}

/* CamVid as it ships: SegNet's 11-class layout ROOT/SPLIT/NAME.png with
 * ROOT/SPLITannot/NAME.png (8-bit class indices, 11 unlabelled), or the
 * 32-class colour-coded original as commonly split, ROOT/SPLIT/NAME.png with
 * ROOT/SPLIT_labels/NAME_L.png (RGB colours of label_colors.txt). */
static sd_status list_camvid(sd_dataset *ds, int *cap)
{
    static const char *const png[] = {".png", NULL};
    char *idir = path_join(ds->root, ds->split);
    char *annot = str_printf("%s/%sannot", ds->root, ds->split), *col = str_printf("%s/%s_labels", ds->root, ds->split);
    strlist imgs = {0}, labs = {0};
    sd_status st = (!idir || !annot || !col) ? SD_ERR_NOMEM : SD_OK;
    bool segnet = !st && is_dir(annot), colour = !st && !segnet && is_dir(col);
    if (!st && !is_dir(idir))
        st = sd_fail(SD_ERR_IO, "%s: no such directory (a camvid tree holds SPLIT/ beside SPLITannot/ (SegNet, 11 "
                     "classes) or SPLIT_labels/ (32-class colours))", idir);
    else if (!st && !segnet && !colour)
        st = sd_fail(SD_ERR_IO, "%s: neither %s (SegNet 11-class labels) nor %s (32-class colour labels) exists", ds->root,
                     annot, col);
    ds->camvid_color = colour;
    memset(ds->lut, SD_IGNORE, sizeof ds->lut);
    if (segnet)
        for (int i = 0; i < SD_CAMVID11_N; i++) {
            ds->lut[i] = sd_camvid11_train_id[i];
            ds->id_known[i] = true;
        }
    else   /* colour labels are turned into indices of sd_camvid32 first */
        for (int i = 0; i < SD_CAMVID32_N; i++) {
            ds->lut[i] = sd_camvid32[i].train_id;
            ds->id_known[i] = true;
        }
    if (!st)
        st = list_dir(idir, png, false, &imgs);
    if (!st)
        st = list_dir(segnet ? annot : col, png, false, &labs);
    if (!st)
        st = pair_lists(ds, cap, idir, &imgs, ".png", segnet ? annot : col, &labs, segnet ? ".png" : "_L.png", false);
    strlist_free(&imgs);
    strlist_free(&labs);
    free(idir);
    free(annot);
    free(col);
    return st;
}

/* ROOT/mapping.txt (sd_label_map_parse, labels.h). Without the file the
 * labels are trainIds already (identity, said at level 1). */
static sd_status parse_mapping(sd_dataset *ds)
{
    char *path = path_join(ds->root, "mapping.txt");
    if (!path)
        return SD_ERR_NOMEM;
    uint8_t *text = NULL;
    size_t len = 0;
    sd_status st = SD_OK;
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        sd_log(1, "dataset %s: no %s: label values are read as trainIds (0..%d, 255 ignored)\n", ds->spec, path,
               SD_NUM_CLASSES - 1);
        memset(ds->lut, SD_IGNORE, 256);
        memset(ds->id_known, 0, sizeof ds->id_known);
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            ds->lut[c] = (uint8_t)c;
            ds->id_known[c] = true;
        }
        ds->id_known[SD_IGNORE] = true;
    } else if (!(st = io_read_file(path, &text, &len))) {
        st = sd_label_map_parse((const char *)text, len, path, ds->lut, ds->id_known);
    }
    free(text);
    free(path);
    return st;
}

void sd_dataset_free(sd_dataset *ds)
{
    if (!ds)
        return;
    for (int i = 0; i < ds->n; i++) {
        free(ds->samples[i].image_path);
        free(ds->samples[i].label_path);
        free(ds->samples[i].stem);
    }
    free(ds->samples);
    for (int i = 0; i < ds->n_problems; i++)
        free(ds->problems[i]);
    free(ds->problems);
    free(ds->spec);
    free(ds->root);
    free(ds->split);
    memset(ds, 0, sizeof *ds);
}

sd_status sd_dataset_open(sd_dataset *ds, const char *spec, const char *split, const sd_dataset_opts *opts)
{
    static const sd_dataset_opts defaults = {0};
    static const char *const png[] = {".png", NULL};
    static const char *const any_img[] = {".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", NULL};
    memset(ds, 0, sizeof *ds);
    if (!opts)
        opts = &defaults;
    if (!spec)
        return sd_fail(SD_ERR_ARG, "dataset spec missing (expected gta5:ROOT, synthia:ROOT, cityscapes:ROOT[:SPLIT], "
                       "camvid:ROOT[:SPLIT] or folder:ROOT)");
    const char *colon = strchr(spec, ':');
    size_t kn = colon ? (size_t)(colon - spec) : strlen(spec);
    int kind = -1;
    for (int k = 0; k < SD_DATASET_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == kn && !strncmp(spec, kind_names[k], kn))
            kind = k;
    if (kind < 0)
        return sd_fail(SD_ERR_ARG, "dataset spec \"%s\": unknown kind \"%.*s\" (expected gta5, synthia, cityscapes, camvid or folder)",
                       spec, (int)kn, spec);
    ds->kind = (sd_dataset_kind)kind;
    ds->allow_unknown_ids = opts->allow_unknown_ids;
    ds->spec = sd_strdup(spec);
    char *root = sd_strdup(colon ? colon + 1 : "");
    if (!ds->spec || !root) {
        free(root);
        sd_dataset_free(ds);
        return SD_ERR_NOMEM;
    }
    const char *spec_split = NULL;
    bool has_splits = ds->kind == SD_DATASET_CITYSCAPES || ds->kind == SD_DATASET_CAMVID;
    if (has_splits) {
        char *c2 = strrchr(root, ':');
        if (c2 && (!strcmp(c2 + 1, "train") || !strcmp(c2 + 1, "val") || !strcmp(c2 + 1, "test"))) {
            *c2 = 0;
            spec_split = spec + (colon - spec) + 1 + (c2 - root) + 1;
        } else if (c2 && c2 > root && !strchr(c2 + 1, '/') && !is_dir(root)) {
            /* ROOT:WORD where ROOT:WORD is no folder: a mistyped split,
             * not a folder name with a colon */
            sd_status st = sd_fail(SD_ERR_ARG, "dataset spec \"%s\": unknown split \"%s\" (expected train, val "
                                   "or test)", spec, c2 + 1);
            free(root);
            sd_dataset_free(ds);
            return st;
        }
        if (!root[0] && ds->kind == SD_DATASET_CITYSCAPES) {
            const char *env = getenv("CITYSCAPES_DATASET");
            free(root);
            if (!env || !env[0]) {
                sd_dataset_free(ds);
                return sd_fail(SD_ERR_ARG, "dataset spec \"%s\": no ROOT and CITYSCAPES_DATASET is not set", spec);
            }
            root = sd_strdup(env);
        }
    }
    ds->root = root;
    if (!root || !root[0]) {
        sd_dataset_free(ds);
        return root ? sd_fail(SD_ERR_ARG, "dataset spec \"%s\": ROOT is empty (expected %s:ROOT)", spec, kind_names[kind])
                    : SD_ERR_NOMEM;
    }
    if (!split)
        split = spec_split ? spec_split : has_splits ? "train" : "all";
    if (has_splits) {
        if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
            sd_dataset_free(ds);
            return sd_fail(SD_ERR_ARG, "dataset \"%s\": split \"%s\" (expected train, val or test)", spec, split);
        }
    } else if (strcmp(split, "all") && strcmp(split, "train")) {
        sd_dataset_free(ds);
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": split \"%s\" (a %s tree has one split: all)", spec, split,
                       kind_names[kind]);
    }
    ds->split = sd_strdup(has_splits ? split : "all");
    if (!ds->split) {
        sd_dataset_free(ds);
        return SD_ERR_NOMEM;
    }
    if (!is_dir(ds->root)) {
        sd_status st = sd_fail(SD_ERR_IO, "dataset \"%s\": %s is not a directory", spec, ds->root);
        sd_dataset_free(ds);
        return st;
    }

    int cap = 0;
    sd_status st = SD_OK;
    switch (ds->kind) {
    case SD_DATASET_GTA5:
        sd_labels_id_to_train_lut(ds->lut);
        for (int i = 0; i < SD_NUM_LABEL_IDS; i++)
            ds->id_known[i] = true;
        st = list_pairs(ds, &cap, "images", "labels", png, ".png", ".png");
        break;
    case SD_DATASET_SYNTHIA:
        sd_labels_synthia_lut(ds->lut, opts->synthia_lanemarking_as_road);
        for (int i = 0; i <= SD_SYNTHIA_MAX_ID; i++)
            ds->id_known[i] = true;
        st = list_pairs(ds, &cap, "RGB", "GT/LABELS", png, ".png", ".png");
        break;
    case SD_DATASET_CITYSCAPES:
        sd_labels_id_to_train_lut(ds->lut);
        for (int i = 0; i < SD_NUM_LABEL_IDS; i++)
            ds->id_known[i] = true;
        st = list_cityscapes(ds, &cap);
        break;
    case SD_DATASET_CAMVID:
        st = list_camvid(ds, &cap);
        break;
    case SD_DATASET_FOLDER:
        st = parse_mapping(ds);
        if (!st)
            st = list_pairs(ds, &cap, "images", "labels", any_img, NULL, ".png");
        break;
    default:
        break;
    }
    if (!st && ds->n == 0)
        st = sd_fail(SD_ERR_DATA, "dataset \"%s\": no complete image/label pairs found under %s%s", spec, ds->root,
                     ds->n_problems ? " (see the listed problems)" : "");
    if (!st && ds->n_problems && !opts->skip_bad)
        st = sd_fail(SD_ERR_DATA, "dataset \"%s\": %d incomplete pair%s, first: %s (--skip-bad leaves them out)", spec,
                     ds->n_problems, ds->n_problems == 1 ? "" : "s", ds->problems[0]);
    if (st) {
        sd_dataset_free(ds);
        return st;
    }
    ds->has_labels = false;
    for (int i = 0; i < ds->n; i++)
        ds->has_labels |= ds->samples[i].label_path != NULL;
    if (ds->n_problems)
        sd_log(1, "dataset %s: %d incomplete pair%s left out (first: %s)\n", spec, ds->n_problems,
               ds->n_problems == 1 ? "" : "s", ds->problems[0]);
    return SD_OK;
}

/* ---- reading ---- */

static sd_status image_to_rgb8(const char *path, sd_image *img, uint8_t **rgb)
{
    size_t n = (size_t)img->w * img->h;
    if (img->c == 3 && img->depth == 8) {
        *rgb = img->data;
        img->data = NULL;
        return SD_OK;
    }
    uint8_t *o = sd_malloc(n * 3);
    if (!o)
        return sd_fail_prefix(SD_ERR_NOMEM, "%s", path);
    int c = img->c;
    if (img->depth == 8) {
        const uint8_t *p = img->data;
        if (c <= 2)
            for (size_t i = 0; i < n; i++)
                o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = p[i * c];
        else
            for (size_t i = 0; i < n; i++)
                o[3 * i] = p[i * c], o[3 * i + 1] = p[i * c + 1], o[3 * i + 2] = p[i * c + 2];
    } else {
        const uint16_t *p = img->data;
        if (c <= 2)
            for (size_t i = 0; i < n; i++)
                o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = (uint8_t)(p[i * c] >> 8);
        else
            for (size_t i = 0; i < n; i++)
                o[3 * i] = (uint8_t)(p[i * c] >> 8), o[3 * i + 1] = (uint8_t)(p[i * c + 1] >> 8),
                o[3 * i + 2] = (uint8_t)(p[i * c + 2] >> 8);
    }
    *rgb = o;
    return SD_OK;
}

/* CamVid colour labels, in place, to one channel of sd_camvid32 indices (the
 * dataset's lut maps those to trainIds); a colour outside the table is an
 * error naming the pixel, or with allow_unknown 255. */
static sd_status camvid_colors_to_index(const char *path, sd_image *img, bool allow_unknown)
{
    size_t n = (size_t)img->w * img->h;
    uint8_t *p = img->data;
    int c = img->c, last = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *px = p + i * c;
        int k = last;
        if (memcmp(sd_camvid32[k].color, px, 3))   /* neighbours mostly share a colour */
            for (k = 0; k < SD_CAMVID32_N && memcmp(sd_camvid32[k].color, px, 3); k++)
                ;
        if (k == SD_CAMVID32_N && !allow_unknown)
            return sd_fail(SD_ERR_DATA, "%s: colour (%d, %d, %d) at x=%zu y=%zu is not in CamVid's 32-class table",
                           path, px[0], px[1], px[2], i % img->w, i / img->w);
        p[i] = k == SD_CAMVID32_N ? 255 : (uint8_t)k;   /* (i <= i * c: nothing unread is overwritten) */
        last = k == SD_CAMVID32_N ? 0 : k;
    }
    img->c = 1;
    return SD_OK;
}

/* Reads a label file and checks its layout for the dataset. */
static sd_status read_label_image(const sd_dataset *ds, const char *path, sd_image *img)
{
    sd_status st = sd_image_read(path, img, true);
    if (st)
        return st;
    bool synthia = ds->kind == SD_DATASET_SYNTHIA, colour = ds->camvid_color;
    if (colour && (img->depth != 8 || img->c < 3)) {
        st = sd_fail(SD_ERR_DATA, "%s: label has %d channel(s) of %d bits; expected CamVid's 8-bit RGB label colours",
                     path, img->c, img->depth);
    } else if (colour) {
        st = camvid_colors_to_index(path, img, ds->allow_unknown_ids);
    } else if (img->depth != 8 && !synthia) {
        st = sd_fail(SD_ERR_DATA, "%s: label has bit depth %d; expected 8-bit %s label ids", path, img->depth,
                     sd_dataset_kind_name(ds->kind));
    } else if (img->c >= 3 && !synthia) {
        st = sd_fail(SD_ERR_DATA,
                     "%s: label has %d channels; expected one channel of label ids (is it a colour image such as *_color.png?)",
                     path, img->c);
    }
    if (st)
        sd_image_free(img);
    return st;
}

static sd_status report_unknown(const sd_dataset *ds, const char *path, const sd_image *img)
{
    size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        unsigned v = img->depth == 8 ? ((const uint8_t *)img->data)[i * img->c] : ((const uint16_t *)img->data)[i * img->c];
        if (v > 255 || !ds->id_known[v])
            return sd_fail(SD_ERR_DATA, "%s: unknown label id %u at x=%zu y=%zu (not in the %s table)", path, v,
                           i % img->w, i / img->w, sd_dataset_kind_name(ds->kind));
    }
    return SD_OK;
}

static sd_status label_to_train(const sd_dataset *ds, const char *path, const sd_image *img, uint8_t *out)
{
    size_t n = (size_t)img->w * img->h;
    int c = img->c;
    uint8_t unknown[256];
    for (int v = 0; v < 256; v++)
        unknown[v] = !ds->id_known[v];
    unsigned bad = 0;
    if (img->depth == 8) {
        const uint8_t *p = img->data;
        if (c == 1)
            for (size_t i = 0; i < n; i++) {
                out[i] = ds->lut[p[i]];
                bad |= unknown[p[i]];
            }
        else
            for (size_t i = 0; i < n; i++) {
                out[i] = ds->lut[p[i * c]];
                bad |= unknown[p[i * c]];
            }
    } else {
        const uint16_t *p = img->data;
        for (size_t i = 0; i < n; i++) {
            unsigned v = p[i * c];
            unsigned big = v > 255;
            unsigned v8 = big ? 0 : v;
            out[i] = big ? SD_IGNORE : ds->lut[v8];
            bad |= big | unknown[v8];
        }
    }
    if (bad && !ds->allow_unknown_ids)
        return report_unknown(ds, path, img);
    return SD_OK;
}

void sd_sample_free(sd_sample *s)
{
    if (!s)
        return;
    free(s->image);
    free(s->label);
    memset(s, 0, sizeof *s);
}

static sd_status read_sample(const sd_dataset *ds, int i, sd_sample *out, bool with_label)
{
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= ds->n)
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": sample %d outside 0..%d", ds->spec, i, ds->n - 1);
    const sd_sample_entry *e = &ds->samples[i];
    out->index = i;
    out->stem = e->stem;
    sd_image img;
    sd_status st = sd_image_read(e->image_path, &img, false);
    if (st)
        return st;
    out->w = img.w;
    out->h = img.h;
    st = image_to_rgb8(e->image_path, &img, &out->image);
    sd_image_free(&img);
    if (st)
        return st;
    if (!e->label_path || !with_label)
        return SD_OK;
    st = read_label_image(ds, e->label_path, &img);
    if (st) {
        sd_sample_free(out);
        return st;
    }
    out->lw = img.w;
    out->lh = img.h;
    out->label = sd_malloc((size_t)img.w * img.h);
    st = out->label ? label_to_train(ds, e->label_path, &img, out->label) : SD_ERR_NOMEM;
    sd_image_free(&img);
    if (st)
        sd_sample_free(out);
    return st;
}

sd_status sd_dataset_read(const sd_dataset *ds, int i, sd_sample *out) { return read_sample(ds, i, out, true); }
sd_status sd_dataset_read_image(const sd_dataset *ds, int i, sd_sample *out) { return read_sample(ds, i, out, false); }

sd_status sd_dataset_read_ids(const sd_dataset *ds, int i, uint16_t **ids, int *w, int *h)
{
    *ids = NULL;
    if (i < 0 || i >= ds->n)
        return sd_fail(SD_ERR_ARG, "dataset \"%s\": sample %d outside 0..%d", ds->spec, i, ds->n - 1);
    const char *path = ds->samples[i].label_path;
    if (!path)
        return sd_fail(SD_ERR_DATA, "%s: sample has no label", ds->samples[i].image_path);
    sd_image img;
    sd_status st = read_label_image(ds, path, &img);
    if (st)
        return st;
    size_t n = (size_t)img.w * img.h;
    uint16_t *o = sd_malloc(n * sizeof *o);
    if (!o) {
        sd_image_free(&img);
        return SD_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++)
        o[k] = img.depth == 8 ? ((uint8_t *)img.data)[k * img.c] : ((uint16_t *)img.data)[k * img.c];
    *ids = o;
    *w = img.w;
    *h = img.h;
    sd_image_free(&img);
    return SD_OK;
}

static sd_status class_pixels_one(const sd_dataset *ds, int i, uint64_t *row)
{
    const char *path = ds->samples[i].label_path;
    if (!path)
        return SD_OK;
    sd_image img;
    sd_status st = read_label_image(ds, path, &img);
    if (st)
        return st;
    size_t n = (size_t)img.w * img.h;
    uint8_t *tr = sd_malloc(n);
    if (!tr) {
        sd_image_free(&img);
        return SD_ERR_NOMEM;
    }
    st = label_to_train(ds, path, &img, tr);
    sd_image_free(&img);
    if (!st) {
        uint64_t hist[256] = {0};
        for (size_t k = 0; k < n; k++)
            hist[tr[k]]++;
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            row[c] = hist[c];
    }
    free(tr);
    return st;
}

sd_status sd_dataset_class_pixels(const sd_dataset *ds, int threads, bool skip_bad, uint64_t *counts, int *n_bad)
{
    memset(counts, 0, sizeof(uint64_t) * SD_NUM_CLASSES * ds->n);
    sd_first_error fe;
    sd_first_error_init(&fe);
    if (threads < 1)
        threads = 1;
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int i = 0; i < ds->n; i++) {
        sd_first_error_keep(&fe, i, class_pixels_one(ds, i, counts + (size_t)i * SD_NUM_CLASSES));
    }
    if (n_bad)
        *n_bad = fe.count;
    if (fe.count && !skip_bad)
        return sd_first_error_raise(&fe);
    return SD_OK;
}
