/* The synthetic benchmark's public face: rendering one scene, and writing the
 * sim/real/SYNTHIA/crop sets to disk in the real datasets' layouts, in
 * parallel and byte-identical for a seed. Layout and drawing live in
 * synth_scene.c and synth_render.c. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/synth_internal.h"
#include "io/file.h"
#include "segda/image.h"
#include "segda/instances.h"
#include "segda/labels.h"

enum { STREAM_SIM = 1, STREAM_REAL_TRAIN = 2, STREAM_REAL_VAL = 3, STREAM_CROPS_TRAIN = 4, STREAM_CROPS_VAL = 5,
       STREAM_SIMPLE = 6 };
#define SY_MAX_SIDE 16384

void sd_synth_opts_init(sd_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_sim = 400;
    o->n_real = 400;
    o->n_real_val = 100;
    o->w = 256;
    o->h = 128;
    o->seed = 1;
    o->crop_size = 64;
}

static const char *const train_cities[] = {"brunnstadt", "corvel", "dornhafen", "elmsau"};
static const char *const val_cities[] = {"falkenried", "grauwald"};

const char *sd_synth_city(const char *split, int index)
{
    if (split && !strcmp(split, "val"))
        return val_cities[index % 2];
    return train_cities[index % 4];
}

void sd_synth_real_stem(const char *split, int index, char *stem, int cap)
{
    int nc = (split && !strcmp(split, "val")) ? 2 : 4;
    snprintf(stem, (size_t)cap, "%s_%06d_%06d", sd_synth_city(split, index), index / nc, 19);
}

const char *sd_synth_crop_dir_name(int train_id)
{
    static const char *const names[SD_NUM_CLASSES] = {
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic_light", "traffic_sign", "vegetation",
        "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"};
    return train_id >= 0 && train_id < SD_NUM_CLASSES ? names[train_id] : NULL;
}

int sd_synth_synthia_id(int train_id)
{
    static const int ids[SD_NUM_CLASSES] = {3, 4, 2, 21, 5, 7, 15, 9, 6, 16, 1, 10, 17, 8, 18, 19, 20, 12, 11};
    return train_id >= 0 && train_id < SD_NUM_CLASSES ? ids[train_id] : 0;
}

static sd_rng scene_rng(uint64_t seed, uint32_t stream, uint64_t index)
{
    return sd_rng_fork(seed, ((uint64_t)stream << 40) ^ index);
}

/* want: -1 a street scene, 0..18 one that shows that trainId prominently,
 * SIMPLE_SCENE + c a simple scene of thing class c. */
#define SIMPLE_SCENE 100
static sd_status render_want(sd_synth_domain dom, sd_rng *r, int w, int h, int want, uint8_t *rgb, uint8_t *ids,
                             uint16_t *inst)
{
    sy_scene *s = sd_malloc(sizeof *s);
    if (!s)
        return sd_fail_prefix(SD_ERR_NOMEM, "synth: scene");
    if (want >= SIMPLE_SCENE)
        sy_scene_build_simple(s, dom, r, w, h, want - SIMPLE_SCENE);
    else
        sy_scene_build(s, dom, r, w, h, want);
    sd_status st = sy_scene_render(s, r, rgb, ids, inst);
    free(s);
    return st;
}

static sd_status check_size(int w, int h)
{
    if (w < 8 || h < 8 || w > SY_MAX_SIDE || h > SY_MAX_SIDE)
        return sd_fail(SD_ERR_ARG, "synth: image size %dx%d out of range (expected 8..%d on each side)", w, h,
                       SY_MAX_SIDE);
    return SD_OK;
}

sd_status sd_synth_render_instances(sd_synth_domain dom, uint64_t seed, uint32_t stream, uint64_t index, int w,
                                    int h, uint8_t *rgb, uint8_t *label_ids, uint16_t *instance_ids)
{
    if ((int)dom < 0 || dom >= SD_SYNTH_DOMAIN_COUNT)
        return sd_fail(SD_ERR_ARG, "synth: domain %d unknown (expected 0 sim or 1 real)", (int)dom);
    sd_status st = check_size(w, h);
    if (st)
        return st;
    sd_rng r = scene_rng(seed, stream, index);
    return render_want(dom, &r, w, h, -1, rgb, label_ids, instance_ids);
}

sd_status sd_synth_render(sd_synth_domain dom, uint64_t seed, uint32_t stream, uint64_t index, int w, int h,
                          uint8_t *rgb, uint8_t *label_ids)
{
    return sd_synth_render_instances(dom, seed, stream, index, w, h, rgb, label_ids, NULL);
}

int sd_synth_simple_class(int index) { return SD_FIRST_THING_TRAIN_ID + index % SD_NUM_THING_CLASSES; }

/* ---- files ---- */

static sd_status make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return sd_fail(SD_ERR_ARG, "synth: output path '%s' empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return sd_fail(SD_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        struct stat stt;
        if (stat(buf, &stt) != 0 || !S_ISDIR(stt.st_mode))
            return sd_fail(SD_ERR_IO, "%s: exists and is not a directory", buf);
        buf[i] = c;
    }
    return SD_OK;
}

static sd_status write_rgb(const char *path, uint8_t *rgb, int w, int h)
{
    sd_image im = {w, h, 3, 8, rgb};
    return sd_png_write(path, &im);
}

/* Cityscapes writes 16-bit instanceIds images; so do we, always. */
static sd_status write_instances(const char *path, uint16_t *inst, int w, int h)
{
    sd_image im = {w, h, 1, 16, inst};
    return sd_png_write(path, &im);
}

/* One frame in GTA5's layout under out/set: images/, labels/ (palette PNGs
 * whose indices are the ids, as GTA5 ships them) and instances/. */
static sd_status write_gta5_frame(const char *out, const char *set, int i, int w, int h, uint8_t *rgb, uint8_t *ids,
                                  uint16_t *inst)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s/images/%05d.png", out, set, i + 1);
    sd_status st = write_rgb(path, rgb, w, h);
    if (!st) {
        uint8_t pal[SD_NUM_LABEL_IDS][3];
        for (int k = 0; k < SD_NUM_LABEL_IDS; k++)
            memcpy(pal[k], sd_labels[k].color, 3);
        snprintf(path, sizeof path, "%s/%s/labels/%05d.png", out, set, i + 1);
        st = sd_png_write_palette(path, ids, w, h, (const uint8_t(*)[3])pal, SD_NUM_LABEL_IDS);
    }
    if (!st) {
        snprintf(path, sizeof path, "%s/%s/instances/%05d.png", out, set, i + 1);
        st = write_instances(path, inst, w, h);
    }
    return st;
}

static sd_status write_simple(const char *out, const sd_synth_opts *o, int i, uint8_t *rgb, uint8_t *ids,
                              uint16_t *inst)
{
    sd_rng r = scene_rng(o->seed, STREAM_SIMPLE, (uint64_t)i);
    sd_status st = render_want(SD_SYNTH_SIM, &r, o->w, o->h, SIMPLE_SCENE + sd_synth_simple_class(i), rgb, ids, inst);
    return st ? st : write_gta5_frame(out, "simple", i, o->w, o->h, rgb, ids, inst);
}

static sd_status write_sim(const char *out, const sd_synth_opts *o, int i, uint8_t *rgb, uint8_t *ids, uint16_t *inst)
{
    int w = o->w, h = o->h;
    sd_rng r = scene_rng(o->seed, STREAM_SIM, (uint64_t)i);
    sd_status st = render_want(SD_SYNTH_SIM, &r, w, h, -1, rgb, ids, inst);
    char path[4200];
    if (!st)
        st = write_gta5_frame(out, "sim", i, w, h, rgb, ids, inst);
    if (!st && o->synthia) {
        snprintf(path, sizeof path, "%s/synthia/RGB/%07d.png", out, i);
        st = write_rgb(path, rgb, w, h);
        if (!st) {
            sd_image im;
            st = sd_image_alloc(&im, w, h, 3, 16);
            if (!st) {
                uint8_t lut[256];
                sd_labels_id_to_train_lut(lut);
                uint16_t *d = im.data;
                for (size_t k = 0; k < (size_t)w * h; k++) {
                    d[3 * k] = (uint16_t)sd_synth_synthia_id(lut[ids[k]]);
                    d[3 * k + 1] = 0; /* SYNTHIA's instance channel: not modelled */
                    d[3 * k + 2] = 0;
                }
                snprintf(path, sizeof path, "%s/synthia/GT/LABELS/%07d.png", out, i);
                st = sd_png_write(path, &im);
                sd_image_free(&im);
            }
        }
    }
    return st;
}

static sd_status write_real(const char *out, const sd_synth_opts *o, const char *split, int i, uint8_t *rgb,
                            uint8_t *ids, uint16_t *inst)
{
    int w = o->w, h = o->h;
    sd_rng r = scene_rng(o->seed, strcmp(split, "val") ? STREAM_REAL_TRAIN : STREAM_REAL_VAL, (uint64_t)i);
    sd_status st = render_want(SD_SYNTH_REAL, &r, w, h, -1, rgb, ids, inst);
    char stem[64], path[4200];
    sd_synth_real_stem(split, i, stem, sizeof stem);
    const char *city = sd_synth_city(split, i);
    if (!st) {
        snprintf(path, sizeof path, "%s/real/leftImg8bit/%s/%s/%s_leftImg8bit.png", out, split, city, stem);
        st = write_rgb(path, rgb, w, h);
    }
    if (!st) {
        sd_image im = {w, h, 1, 8, ids};
        snprintf(path, sizeof path, "%s/real/gtFine/%s/%s/%s_gtFine_labelIds.png", out, split, city, stem);
        st = sd_png_write(path, &im);
    }
    if (!st) {
        snprintf(path, sizeof path, "%s/real/gtFine/%s/%s/%s_gtFine_instanceIds.png", out, split, city, stem);
        st = write_instances(path, inst, w, h);
    }
    return st;
}

/* ---- classification crops ---- */

typedef struct crop_win { int x0, y0, s; float frac; } crop_win;

static crop_win eval_window(const uint8_t *tid, int w, int h, int cx, int cy, int s, int cls)
{
    crop_win c;
    if (s > w)
        s = w;
    if (s > h)
        s = h;
    c.s = s;
    c.x0 = cx - s / 2 < 0 ? 0 : cx - s / 2 + s > w ? w - s : cx - s / 2;
    c.y0 = cy - s / 2 < 0 ? 0 : cy - s / 2 + s > h ? h - s : cy - s / 2;
    int cnt[SD_NUM_CLASSES + 1] = {0};
    for (int y = c.y0; y < c.y0 + s; y++)
        for (int x = c.x0; x < c.x0 + s; x++) {
            int t = tid[(size_t)y * w + x];
            cnt[t < SD_NUM_CLASSES ? t : SD_NUM_CLASSES]++;
        }
    c.frac = (float)cnt[cls] / (float)(s * s);
    return c;
}

/* Share of a crop the class must cover: stuff fills crops, thin objects
 * (poles, people, two-wheelers) cannot. */
static float crop_share(int cls)
{
    static const float share[SD_NUM_CLASSES] = {0.5f, 0.45f, 0.5f, 0.35f, 0.35f, 0.15f, 0.2f, 0.2f, 0.5f,
                                                0.4f, 0.5f, 0.2f, 0.2f, 0.35f, 0.35f, 0.35f, 0.35f, 0.2f, 0.15f};
    return share[cls];
}

/* Picks the largest square window (from 2 to 1/2 crop side) around a pixel
 * of class `cls` that the class covers enough of; 0 if there is none. */
static int pick_window(const uint8_t *tid, int w, int h, int cls, int cs, sd_rng *r, crop_win *best)
{
    size_t n = (size_t)w * h, count = 0;
    for (size_t i = 0; i < n; i++)
        count += tid[i] == cls;
    best->frac = -1;
    if (count < (size_t)cs * (size_t)cs / 64)
        return 0;
    static const float scales[] = {2.0f, 1.5f, 1.0f, 0.75f, 0.5f};
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        int s = (int)(scales[si] * (float)cs);
        for (int t = 0; t < 4; t++) {
            size_t k = (size_t)(sd_rng_u64(r) % count), j = 0, i = 0;
            for (; i < n; i++)
                if (tid[i] == cls && j++ == k)
                    break;
            crop_win c = eval_window(tid, w, h, (int)(i % (size_t)w), (int)(i / (size_t)w), s, cls);
            if (c.frac >= crop_share(cls)) {
                *best = c;
                return 1;
            }
            if (c.frac > best->frac)
                *best = c;
        }
    }
    return 0;
}

/* Area-averaged resampling of a window to cs x cs. */
static void resample(const uint8_t *rgb, int w, const crop_win *c, int cs, uint8_t *out)
{
    float step = (float)c->s / (float)cs;
    int ss = (int)ceilf(step);
    if (ss < 1)
        ss = 1;
    if (ss > 4)
        ss = 4;
    for (int oy = 0; oy < cs; oy++)
        for (int ox = 0; ox < cs; ox++) {
            float acc[3] = {0, 0, 0};
            for (int sy = 0; sy < ss; sy++)
                for (int sx = 0; sx < ss; sx++) {
                    float fx = (float)c->x0 + ((float)ox + ((float)sx + 0.5f) / (float)ss) * step - 0.5f;
                    float fy = (float)c->y0 + ((float)oy + ((float)sy + 0.5f) / (float)ss) * step - 0.5f;
                    float lo_x = (float)c->x0, hi_x = (float)(c->x0 + c->s - 1);
                    float lo_y = (float)c->y0, hi_y = (float)(c->y0 + c->s - 1);
                    fx = fx < lo_x ? lo_x : fx > hi_x ? hi_x : fx;
                    fy = fy < lo_y ? lo_y : fy > hi_y ? hi_y : fy;
                    int x0 = (int)fx, y0 = (int)fy;
                    int x1 = x0 + 1 > (int)hi_x ? x0 : x0 + 1, y1 = y0 + 1 > (int)hi_y ? y0 : y0 + 1;
                    float ax = fx - (float)x0, ay = fy - (float)y0;
                    for (int k = 0; k < 3; k++) {
                        float a = rgb[((size_t)y0 * w + x0) * 3 + k], b = rgb[((size_t)y0 * w + x1) * 3 + k];
                        float cc = rgb[((size_t)y1 * w + x0) * 3 + k], d = rgb[((size_t)y1 * w + x1) * 3 + k];
                        acc[k] += (a + (b - a) * ax) * (1 - ay) + (cc + (d - cc) * ax) * ay;
                    }
                }
            for (int k = 0; k < 3; k++) {
                float v = acc[k] / (float)(ss * ss) + 0.5f;
                out[((size_t)oy * cs + ox) * 3 + k] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
}

/* Scene j of a crop split gives crop j+1 of every class; a class the scene
 * lacks comes from extra scenes built to contain it. */
static sd_status write_crops_scene(const char *out, const sd_synth_opts *o, const char *split, int j)
{
    int cs = o->crop_size, w = 8 * cs, h = 4 * cs;
    uint32_t stream = strcmp(split, "val") ? STREAM_CROPS_TRAIN : STREAM_CROPS_VAL;
    size_t n = (size_t)w * h;
    uint8_t *rgb = sd_malloc(n * 3), *ids = sd_malloc(n), *tid = sd_malloc(n), *crop = sd_malloc((size_t)cs * cs * 3);
    uint8_t *rgb2 = sd_malloc(n * 3), *tid2 = sd_malloc(n), *rgb3 = sd_malloc(n * 3);
    sd_status st = (rgb && ids && tid && crop && rgb2 && tid2 && rgb3) ? SD_OK : SD_ERR_NOMEM;
    uint8_t lut[256];
    sd_labels_id_to_train_lut(lut);
    if (!st) {
        sd_rng r = scene_rng(o->seed, stream, (uint64_t)j);
        st = render_want(SD_SYNTH_REAL, &r, w, h, -1, rgb, ids, NULL);
        for (size_t i = 0; i < n; i++)
            tid[i] = lut[ids[i]];
    }
    for (int c = 0; c < SD_NUM_CLASSES && !st; c++) {
        sd_rng pr = scene_rng(o->seed, stream + 16, (uint64_t)j * 32 + (uint64_t)c);
        crop_win win, best = {0, 0, 0, -1};
        const uint8_t *src = rgb;
        int ok = pick_window(tid, w, h, c, cs, &pr, &win);
        if (!ok && win.frac > best.frac)
            best = win, memcpy(rgb3, rgb, n * 3);
        for (int t = 0; !ok && t < 6 && !st; t++) {
            sd_rng r2 = scene_rng(o->seed, stream + 32 + (uint32_t)t, (uint64_t)j * 32 + (uint64_t)c);
            st = render_want(SD_SYNTH_REAL, &r2, w, h, c, rgb2, ids, NULL);
            for (size_t i = 0; i < n; i++)
                tid2[i] = lut[ids[i]];
            ok = !st && pick_window(tid2, w, h, c, cs, &pr, &win);
            if (ok)
                src = rgb2;
            else if (win.frac > best.frac)
                best = win, memcpy(rgb3, rgb2, n * 3);
        }
        if (st)
            break;
        if (!ok && best.frac >= 0.1f) /* the best of the tries, if the class is still prominent */
            win = best, src = rgb3, ok = 1;
        if (!ok) {
            st = sd_fail(SD_ERR_DATA, "synth: could not place class '%s' in crop scene %d of %s", sd_class_names[c],
                         j, split);
            break;
        }
        resample(src, w, &win, cs, crop);
        char path[4200];
        snprintf(path, sizeof path, "%s/crops/%s/%s/%05d.png", out, split, sd_synth_crop_dir_name(c), j + 1);
        sd_image im = {cs, cs, 3, 8, crop};
        st = sd_png_write(path, &im);
    }
    free(rgb), free(ids), free(tid), free(crop), free(rgb2), free(tid2), free(rgb3);
    return st;
}

/* ---- the whole benchmark ---- */

enum { JOB_SIM, JOB_REAL_TRAIN, JOB_REAL_VAL, JOB_CROP_TRAIN, JOB_CROP_VAL, JOB_SIMPLE, JOB_KINDS };

/* ---- the completion marker and clearing a folder ---- */

static const char *const layout_dirs[] = {"sim", "real", "synthia", "crops", "simple"};

/* An entry of dir (its name into first, for the message), or none. A dir
 * that cannot be listed (absent, a file) counts as empty: creating it
 * reports the real problem. */
static bool dir_has_entries(const char *dir, char *first, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(first, cap, "%s", e->d_name);
            any = true;
        }
    closedir(d);
    return any;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Removes what a write leaves (the layout folders and the marker) and
 * nothing else, so --force never deletes a user's own files. */
static sd_status clear_layout(const char *out_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", out_dir, SD_SYNTH_MARKER);
    if (remove(path) != 0 && errno != ENOENT)
        return sd_fail(SD_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    for (size_t k = 0; k < sizeof layout_dirs / sizeof layout_dirs[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, layout_dirs[k]);
        if (access(path, F_OK) == 0 && nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            return sd_fail(SD_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    return SD_OK;
}

static sd_status write_marker(const char *out_dir, const sd_synth_opts *o)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/%s", out_dir, SD_SYNTH_MARKER);
    io_tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "# segda synth: this benchmark was written completely with these options\n");
    fprintf(f, "n-sim = %d\nn-real = %d\nn-real-val = %d\nsize = %dx%d\nseed = %llu\nsynthia = %d\n"
               "crops = %d\ncrop-size = %d\ninstances = 1\nsimple-scenes = %d\n",
            o->n_sim, o->n_real, o->n_real_val, o->w, o->h, (unsigned long long)o->seed, o->synthia ? 1 : 0,
            o->crops, o->crop_size, o->n_simple);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return sd_fail(SD_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return SD_OK;
}

sd_status sd_synth_read_marker(const char *out_dir, sd_synth_opts *o)
{
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/%s", out_dir, SD_SYNTH_MARKER);
    FILE *f = fopen(path, "r");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: no completion marker (%s): the benchmark was not written completely",
                       out_dir, strerror(errno));
    sd_synth_opts_init(o);
    o->crops = -1;
    int synthia = 0, n = 0, instances = 0;
    unsigned long long seed = 0;
    while (fgets(line, sizeof line, f)) {
        /* later additions, absent from older markers */
        sscanf(line, "instances = %d", &instances);
        sscanf(line, "simple-scenes = %d", &o->n_simple);
        n += sscanf(line, "n-sim = %d", &o->n_sim) + sscanf(line, "n-real = %d", &o->n_real) +
             sscanf(line, "n-real-val = %d", &o->n_real_val) + (sscanf(line, "size = %dx%d", &o->w, &o->h) == 2) +
             sscanf(line, "seed = %llu", &seed) + sscanf(line, "synthia = %d", &synthia) +
             sscanf(line, "crops = %d", &o->crops) + sscanf(line, "crop-size = %d", &o->crop_size);
    }
    fclose(f);
    o->seed = seed;
    o->synthia = synthia != 0;
    o->instances = instances != 0;
    if (n != 8 || o->crops < 0)
        return sd_fail(SD_ERR_FORMAT, "%s: %d of 8 settings readable", path, n);
    return SD_OK;
}

sd_status sd_synth_ensure(const char *out_dir, const sd_synth_opts *want, bool *regenerated)
{
    sd_synth_opts have;
    bool keep = sd_synth_read_marker(out_dir, &have) == SD_OK && have.n_sim == want->n_sim &&
                have.n_real == want->n_real && have.n_real_val == want->n_real_val && have.w == want->w &&
                have.h == want->h && have.seed == want->seed && (!want->synthia || have.synthia) &&
                (want->crops == 0 || (have.crops == want->crops && have.crop_size == want->crop_size)) &&
                have.instances && (want->n_simple == 0 || have.n_simple == want->n_simple);
    if (regenerated)
        *regenerated = !keep;
    if (keep)
        return SD_OK;
    sd_synth_opts o = *want;
    o.force = true;
    return sd_synth_write(out_dir, &o);
}

sd_status sd_synth_write(const char *out_dir, const sd_synth_opts *o)
{
    if (!out_dir || !*out_dir)
        return sd_fail(SD_ERR_ARG, "synth: no output directory given");
    sd_status st = check_size(o->w, o->h);
    if (st)
        return st;
    if (o->n_sim < 0 || o->n_real < 0 || o->n_real_val < 0 || o->crops < 0 || o->n_simple < 0)
        return sd_fail(SD_ERR_ARG, "synth: negative image count (sim %d, real %d, val %d, crops %d, simple %d)",
                       o->n_sim, o->n_real, o->n_real_val, o->crops, o->n_simple);
    if (o->crops > 0 && (o->crop_size < 16 || o->crop_size > 1024))
        return sd_fail(SD_ERR_ARG, "synth: crop size %d out of range (expected 16..1024)", o->crop_size);
    if (o->synthia && o->n_sim == 0)
        return sd_fail(SD_ERR_ARG, "synth: --synthia writes the sim images in SYNTHIA's layout; n_sim is 0");

    char path[4200], entry[256];
    if (!o->force && dir_has_entries(out_dir, entry, sizeof entry))
        return sd_fail(SD_ERR_ARG, "synth: %s is not empty (it holds '%s'); choose an empty folder, or --force to "
                       "replace what an earlier segda synth wrote there", out_dir, entry);
    /* the marker goes first and comes back last: an interrupted write
     * leaves a folder that says it is unfinished */
    if (o->force && (st = clear_layout(out_dir)))
        return st;
    /* directories first, so workers only write files */
    const char *dirs[] = {"sim/images", "sim/labels", "sim/instances", "synthia/RGB", "synthia/GT/LABELS",
                          "simple/images", "simple/labels", "simple/instances"};
    for (int k = 0; k < 8; k++) {
        if ((k < 3 && o->n_sim == 0) || (k >= 3 && k < 5 && !o->synthia) || (k >= 5 && o->n_simple == 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", out_dir, dirs[k]);
        if ((st = make_dirs(path)))
            return st;
    }
    const char *splits[2] = {"train", "val"};
    int nreal[2] = {o->n_real, o->n_real_val};
    for (int sp = 0; sp < 2; sp++)
        for (int i = 0; i < nreal[sp] && i < (sp ? 2 : 4); i++) {
            const char *city = sd_synth_city(splits[sp], i);
            snprintf(path, sizeof path, "%s/real/leftImg8bit/%s/%s", out_dir, splits[sp], city);
            if ((st = make_dirs(path)))
                return st;
            snprintf(path, sizeof path, "%s/real/gtFine/%s/%s", out_dir, splits[sp], city);
            if ((st = make_dirs(path)))
                return st;
        }
    int ncrop[2] = {o->crops, (o->crops + 3) / 4};
    for (int sp = 0; sp < 2 && o->crops > 0; sp++)
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            snprintf(path, sizeof path, "%s/crops/%s/%s", out_dir, splits[sp], sd_synth_crop_dir_name(c));
            if ((st = make_dirs(path)))
                return st;
        }
    if (o->crops == 0)
        ncrop[0] = ncrop[1] = 0;

    int counts[JOB_KINDS] = {o->n_sim, o->n_real, o->n_real_val, ncrop[0], ncrop[1], o->n_simple};
    long total = 0;
    for (int k = 0; k < JOB_KINDS; k++)
        total += counts[k];
    int threads = o->threads > 0 ? o->threads : sd_threads();
    if (!o->quiet)
        sd_log(1, "synth: writing %d sim, %d+%d real images (%dx%d) and %d+%d crops per class to %s with %d threads\n",
               o->n_sim, o->n_real, o->n_real_val, o->w, o->h, ncrop[0], ncrop[1], out_dir, threads);

    sd_status first = SD_OK;
    long first_job = -1;
    char msg[1024] = "";
    size_t npx = (size_t)o->w * o->h;
#pragma omp parallel num_threads(threads)
    {
        uint8_t *rgb = sd_malloc(npx * 3), *ids = sd_malloc(npx);
        uint16_t *inst = sd_malloc(npx * sizeof *inst);
        int bad = !rgb || !ids || !inst;
#pragma omp for schedule(dynamic, 2)
        for (long job = 0; job < total; job++) {
            long k = job;
            int kind = 0;
            while (k >= counts[kind])
                k -= counts[kind++];
            sd_status s;
            if (bad)
                s = sd_fail(SD_ERR_NOMEM, "synth: cannot allocate image buffers");
            else if (kind == JOB_SIM)
                s = write_sim(out_dir, o, (int)k, rgb, ids, inst);
            else if (kind == JOB_REAL_TRAIN || kind == JOB_REAL_VAL)
                s = write_real(out_dir, o, kind == JOB_REAL_VAL ? "val" : "train", (int)k, rgb, ids, inst);
            else if (kind == JOB_SIMPLE)
                s = write_simple(out_dir, o, (int)k, rgb, ids, inst);
            else
                s = write_crops_scene(out_dir, o, kind == JOB_CROP_VAL ? "val" : "train", (int)k);
            if (s) {
#pragma omp critical(synth_err)
                {
                    /* report the earliest failing job, whatever the thread timing */
                    if (first_job < 0 || job < first_job) {
                        first = s, first_job = job;
                        snprintf(msg, sizeof msg, "%s", sd_errmsg());
                    }
                }
            }
        }
        free(rgb);
        free(ids);
        free(inst);
    }
    if (first)
        return sd_fail(first, "%s", msg);
    if ((st = write_marker(out_dir, o)))
        return st;
    if (!o->quiet)
        sd_log(1, "synth: done\n");
    return SD_OK;
}
