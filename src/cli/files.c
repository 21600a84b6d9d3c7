/* Image-file listing and mkdir -p for the commands that write one output
 * per input (predict, translate); see files.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/files.h"

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int push(cli_files *l, const char *path)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n] = strdup(path);
    return l->v[l->n++] ? 0 : -1;
}

static sd_status walk(const char *dir, cli_files *l, int depth)
{
    if (depth > 16)
        return SD_OK;
    sd_names names;
    sd_status st = sd_dir_list(dir, NULL, NULL, &names);
    char path[4096];
    for (int i = 0; i < names.n && !st; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names.v[i]);
        struct stat sb;
        if (stat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            st = walk(path, l, depth + 1);
        else if (is_image_name(names.v[i]) && push(l, path))
            st = sd_fail(SD_ERR_NOMEM, "out of memory listing %s", dir);
    }
    sd_names_free(&names);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

sd_status cli_files_images(const char *input, cli_files *l)
{
    memset(l, 0, sizeof *l);
    struct stat sb;
    if (stat(input, &sb) != 0)
        return sd_fail(SD_ERR_IO, "%s: %s", input, strerror(errno));
    l->dir = S_ISDIR(sb.st_mode);
    sd_status st = l->dir ? walk(input, l, 0) : push(l, input) ? sd_fail(SD_ERR_NOMEM, "out of memory") : SD_OK;
    if (!st && !l->n)
        st = sd_fail(SD_ERR_DATA, "%s: no .png or .jpg images found", input);
    if (!st)
        qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_str);
    return st;
}

const char *cli_files_rel(const cli_files *l, const char *input, int i)
{
    const char *p = l->v[i];
    size_t n = strlen(input);
    if (l->dir && !strncmp(p, input, n) && p[n] == '/')
        return p + n + 1;
    const char *slash = strrchr(p, '/');
    return slash ? slash + 1 : p;
}

void cli_files_free(cli_files *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

