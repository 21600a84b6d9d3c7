/* Image-classification folders (pretrain.h: sd_image_folder): DIR/SPLIT/
 * CLASS/ images (.png, .jpg) read whole into memory, classes in name order, images
 * shrunk to a maximum shorter side. Used by pretraining (src/train/pretrain.c).
 * Not here: batches and augmentation (the pretraining loop). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "segda/image.h"
#include "segda/pretrain.h"
#include "segda/transform.h"

typedef struct name_list {
    int n, cap;
    char **v;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static bool is_image_name(const char *s)
{
    const char *dot = strrchr(s, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Sorted entries of dir that are directories (want_dirs) or image files. */
static bool keep_dir(const char *name, bool is_dir, void *ctx)
{
    (void)name, (void)ctx;
    return is_dir;
}

static bool keep_image(const char *name, bool is_dir, void *ctx)
{
    (void)ctx;
    return !is_dir && is_image_name(name);
}

/* Sorted entries of dir that are directories (want_dirs) or image files. */
static sd_status list_dir(const char *dir, bool want_dirs, name_list *out)
{
    sd_names names;
    memset(out, 0, sizeof *out);
    sd_status st = sd_dir_list(dir, want_dirs ? keep_dir : keep_image, NULL, &names);
    if (!st)
        out->v = names.v, out->n = out->cap = names.n;
    return st;
}

/* Decodes one file to RGB u8, shrinking it when its shorter side exceeds max_side. */
static sd_status load_rgb(const char *path, int max_side, uint8_t **rgb, int *w, int *h)
{
    sd_image img;
    sd_status st = sd_image_read(path, &img, false);
    if (st)
        return st;
    size_t np = (size_t)img.w * img.h;
    uint8_t *o = sd_malloc(np * 3);
    if (!o) {
        sd_image_free(&img);
        return SD_ERR_NOMEM;
    }
    for (size_t i = 0; i < np; i++)
        for (int ch = 0; ch < 3; ch++) {
            int src = img.c >= 3 ? ch : 0; /* grey (+alpha) replicates; alpha dropped */
            size_t k = i * (size_t)img.c + (size_t)src;
            o[i * 3 + ch] = img.depth == 16 ? (uint8_t)(((const uint16_t *)img.data)[k] >> 8)
                                             : ((const uint8_t *)img.data)[k];
        }
    *w = img.w, *h = img.h;
    sd_image_free(&img);
    int side = *w < *h ? *w : *h;
    if (max_side > 0 && side > max_side) {
        int nw = (int)lround((double)*w * max_side / side), nh = (int)lround((double)*h * max_side / side);
        if (nw < 1)
            nw = 1;
        if (nh < 1)
            nh = 1;
        uint8_t *r = sd_malloc((size_t)nw * nh * 3);
        if (!r || (st = sd_resize_u8(o, *w, *h, 3, r, nw, nh, SD_INTERP_BILINEAR))) {
            free(o);
            free(r);
            return r ? sd_fail_prefix(st, "%s", path) : SD_ERR_NOMEM;
        }
        free(o);
        o = r, *w = nw, *h = nh;
    }
    *rgb = o;
    return SD_OK;
}

void sd_image_folder_free(sd_image_folder *f)
{
    for (int i = 0; i < f->n_classes; i++)
        free(f->classes[i]);
    for (int i = 0; i < f->n; i++) {
        free(f->rgb[i]);
        free(f->paths[i]);
    }
    free(f->classes);
    free(f->rgb);
    free(f->paths);
    free(f->label);
    free(f->w);
    free(f->h);
    memset(f, 0, sizeof *f);
}

static sd_status folder_grow(sd_image_folder *f, int need, int *cap)
{
    if (need <= *cap)
        return SD_OK;
    int c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    int *label = realloc(f->label, sizeof *label * (size_t)c);
    if (label)
        f->label = label;
    int *w = realloc(f->w, sizeof *w * (size_t)c);
    if (w)
        f->w = w;
    int *h = realloc(f->h, sizeof *h * (size_t)c);
    if (h)
        f->h = h;
    uint8_t **rgb = realloc(f->rgb, sizeof *rgb * (size_t)c);
    if (rgb)
        f->rgb = rgb;
    char **paths = realloc(f->paths, sizeof *paths * (size_t)c);
    if (paths)
        f->paths = paths;
    if (!label || !w || !h || !rgb || !paths)
        return sd_fail(SD_ERR_NOMEM, "image folder: out of memory for %d images", c);
    *cap = c;
    return SD_OK;
}

sd_status sd_image_folder_load(sd_image_folder *f, const char *dir, const char *split,
                               char *const *classes, int n_classes, int max_side)
{
    memset(f, 0, sizeof *f);
    if (!dir || !*dir || !split || !*split)
        return sd_fail(SD_ERR_ARG, "image folder: no folder given");
    size_t rlen = strlen(dir) + strlen(split) + 2;
    char *root = sd_malloc(rlen);
    if (!root)
        return SD_ERR_NOMEM;
    snprintf(root, rlen, "%s/%s", dir, split);
    struct stat sb;
    sd_status st = SD_OK;
    name_list cls = {0};
    if (stat(root, &sb) != 0) {
        st = sd_fail(SD_ERR_IO, "%s: missing folder (expected %s/%s/CLASS/*.png|jpg): %s", root, dir, split,
                     strerror(errno));
        goto done;
    }
    if (!S_ISDIR(sb.st_mode)) {
        st = sd_fail(SD_ERR_IO, "%s: not a folder (expected %s/%s/CLASS/*.png|jpg)", root, dir, split);
        goto done;
    }
    if ((st = list_dir(root, true, &cls)))
        goto done;
    if (cls.n == 0) {
        st = sd_fail(SD_ERR_DATA, "%s: no class folders (expected %s/CLASS/*.png|jpg)", root, root);
        goto done;
    }
    if (cls.n > 255) {
        st = sd_fail(SD_ERR_DATA, "%s: %d class folders, at most 255 supported", root, cls.n);
        goto done;
    }
    if (classes) {
        for (int i = 0; i < n_classes || i < cls.n; i++) {
            const char *want = i < n_classes ? classes[i] : NULL, *got = i < cls.n ? cls.v[i] : NULL;
            if (want && got && !strcmp(want, got))
                continue;
            if (!got || (want && strcmp(want, got) < 0))
                st = sd_fail(SD_ERR_DATA, "%s: class folder '%s' missing (the classes must match train's %d)",
                             root, want, n_classes);
            else
                st = sd_fail(SD_ERR_DATA, "%s: class folder '%s' is not one of train's %d classes", root, got,
                             n_classes);
            goto done;
        }
    }
    f->n_classes = cls.n;
    f->classes = cls.v;
    cls.v = NULL, cls.n = 0;
    int cap = 0;
    for (int c = 0; c < f->n_classes; c++) {
        size_t clen = strlen(root) + strlen(f->classes[c]) + 2;
        char *cdir = sd_malloc(clen);
        if (!cdir) {
            st = SD_ERR_NOMEM;
            goto done;
        }
        snprintf(cdir, clen, "%s/%s", root, f->classes[c]);
        name_list files;
        if ((st = list_dir(cdir, false, &files))) {
            free(cdir);
            goto done;
        }
        if (files.n == 0) {
            st = sd_fail(SD_ERR_DATA, "%s: class folder has no images (.png, .jpg, .jpeg)", cdir);
            free(cdir);
            names_free(&files);
            goto done;
        }
        if ((st = folder_grow(f, f->n + files.n, &cap))) {
            free(cdir);
            names_free(&files);
            goto done;
        }
        for (int i = 0; i < files.n && !st; i++) {
            size_t plen = clen + strlen(files.v[i]) + 1;
            char *path = sd_malloc(plen);
            if (!path) {
                st = SD_ERR_NOMEM;
                break;
            }
            snprintf(path, plen, "%s/%s", cdir, files.v[i]);
            int k = f->n;
            if ((st = load_rgb(path, max_side, &f->rgb[k], &f->w[k], &f->h[k]))) {
                free(path);
                break;
            }
            f->paths[k] = path;
            f->label[k] = c;
            f->n++;
        }
        free(cdir);
        names_free(&files);
        if (st)
            goto done;
    }
done:
    names_free(&cls);
    free(root);
    if (st)
        sd_image_folder_free(f);
    return st;
}
