/* Private to src/data/synth_*.c: the scene description (camera, street
 * layout, sprites made of parts in metric plane coordinates), the per-domain
 * style, and the two stages: layout (synth_scene.c) and rasterisation plus
 * camera effects (synth_render.c). */
#ifndef SEGDA_SYNTH_INTERNAL_H
#define SEGDA_SYNTH_INTERNAL_H

#include <stdint.h>

#include "segda/synth.h"

/* Cityscapes label ids used by the generator. */
enum {
    SY_UNLABELED = 0, SY_EGO = 1, SY_STATIC = 4, SY_RAILTRACK = 10,
    SY_ROAD = 7, SY_SIDEWALK = 8, SY_BUILDING = 11, SY_WALL = 12, SY_FENCE = 13,
    SY_POLE = 17, SY_LIGHT = 19, SY_SIGN = 20, SY_VEG = 21, SY_TERRAIN = 22, SY_SKY = 23,
    SY_PERSON = 24, SY_RIDER = 25, SY_CAR = 26, SY_TRUCK = 27, SY_BUS = 28, SY_TRAIN = 31,
    SY_MOTO = 32, SY_BICYCLE = 33
};

/* Surface textures; only the real domain applies them. */
enum {
    SY_TEX_NONE = 0, SY_TEX_ASPHALT, SY_TEX_PAVING, SY_TEX_GRASS, SY_TEX_LEAVES,
    SY_TEX_MASONRY, SY_TEX_CONCRETE, SY_TEX_METAL, SY_TEX_CLOTH, SY_TEX_BARK, SY_TEX_COUNT
};

/* Part shapes, coordinates in metres on the sprite's plane (u along, v up). */
enum {
    SY_PART_RECT = 0,   /* a: u0 v0 u1 v1 */
    SY_PART_ELLIPSE,    /* a: cu cv ru rv */
    SY_PART_RING,       /* a: cu cv r_out r_in */
    SY_PART_TRI,        /* a: u0 v0 u1 v1 u2 v2 */
    SY_PART_SEG,        /* a: u0 v0 u1 v1 half_width */
    SY_PART_WAVY,       /* a: u0 v0 u1 v1 amp freq phase: rect with a wavy top */
    SY_PART_GRID,       /* a: u0 v0 u1 v1 cell_u cell_v frac_u frac_v: col2 in cells (windows) */
    SY_PART_STRIPES,    /* a: u0 v0 u1 v1 period frac: col2 stripes along u (fence slats, seams) */
};

typedef struct sy_part {
    uint8_t type, label, tex, pad;
    float a[8];
    float col[3], col2[3];
} sy_part;

enum { SY_PLANE_FRONT = 0, SY_PLANE_SIDE };

/* A planar sprite: FRONT planes face the camera at depth z, u = X - x;
 * SIDE planes run along the street at lateral X = x, u = z - z. */
typedef struct sy_sprite {
    uint8_t plane;
    float x, z, len;
    float vmin, vmax;       /* vertical extent in metres above the ground */
    float shade;            /* lighting factor of the whole plane */
    float toff;             /* texture offset so equal sprites do not share noise */
    int part0, nparts;
    int obj;                /* thing object this sprite belongs to (1..nobj), 0 for none: its parts
                             * of thing labels form that object's instances (one per label) */
} sy_sprite;

/* A dark contact shadow on the ground under a vehicle (real domain). */
typedef struct sy_shadow { float x0, x1, z0, z1, k; } sy_shadow;

enum { SY_SEG_BUILDING = 0, SY_SEG_GARDEN, SY_SEG_PARK, SY_SEG_CROSS };
typedef struct sy_segment {
    float z0, z1;
    int kind;
    float xf;               /* distance of facade/yard boundary from the sidewalk's outer edge */
    float height;
    int yard_tex;           /* ground between sidewalk and facade: 0 paving, 1 grass */
} sy_segment;

#define SY_MAX_SEG 24
#define SY_MAX_SPRITES 768
#define SY_MAX_PARTS 6144
#define SY_MAX_SHADOWS 64

typedef struct sy_style {
    int real;
    float road[3], mark[3], sidewalk[3], curb[3], terrain[3], yard[3];
    float sky_top[3], sky_hor[3], cloud[3], haze[3];
    float wall[3], fence[3], fence2[3], pole[3], tlbox[3];
    float veg[3], veg2[3], trunk[3], glass[3], tyre[3], rail[3], trackbed[3];
    float hood[3], stat[3];
    float sat;              /* colour choice saturation for vehicles and clothes */
    /* camera look (real) */
    float blur_sigma, vignette, noise_sigma, haze_dist, exposure, gamma;
    float cast[3];
    int jpeg_quality;
    float sun_side;         /* -1 sun from the left, +1 right, 0 overcast */
    float shade_lit, shade_dark, shade_front;
    float cloud_amt, shadow_k;
} sy_style;

typedef struct sy_scene {
    sd_synth_domain dom;
    int w, h;
    float f, cx, yh, camh;  /* focal (px), principal x, horizon row, camera height (m) */
    /* road: camera at X = 0 */
    float xl, xr, lane_w;   /* road edges (parking strips included) */
    float xl_lanes, xr_lanes; /* edges of the driving lanes */
    int lanes, lanes_left;  /* lanes_left: lanes of the oncoming direction (X < split) */
    float split_x;          /* X of the centre line */
    float verge[2], sw[2];  /* per side 0 = left, 1 = right: grass verge and sidewalk width */
    int nseg[2];
    sy_segment seg[2][SY_MAX_SEG];
    float cross_z0, cross_z1;  /* crossing street (cross_z1 <= cross_z0: none) */
    float z_end;
    int tram;
    float tram_x;
    int ego;
    float ego_top;          /* bonnet height as a fraction of h */
    sy_style st;
    int nobj;               /* thing objects (person, car, two-wheeler with rider, ...) so far */
    int nsprites, nparts, nshadows;
    sy_sprite sprites[SY_MAX_SPRITES];
    sy_part parts[SY_MAX_PARTS];
    sy_shadow shadows[SY_MAX_SHADOWS];
    sy_part sink;           /* parts beyond the pool land here and are never drawn */
    uint32_t tex_seed;
} sy_scene;

/* Builds the scene for (domain, rng); want_class >= 0 makes sure that
 * trainId appears prominently (crop generation). */
void sy_scene_build(sy_scene *s, sd_synth_domain dom, sd_rng *rng, int w, int h, int want_class);
/* A plain road/sidewalk/facade/sky scene with one to three objects of one
 * thing class (trainId 11..18) and nothing else (synth_scene.c). */
void sy_scene_build_simple(sy_scene *s, sd_synth_domain dom, sd_rng *rng, int w, int h, int thing_class);

/* Rasterises into rgb (h*w*3), label ids (h*w) and instance ids (h*w,
 * Cityscapes' instanceIds encoding: labelId*1000 + k for a visible part of
 * thing object with that label, k numbering each label's instances in object
 * order; the plain labelId elsewhere); any output may be NULL. Scratch
 * buffers are allocated inside. */
sd_status sy_scene_render(const sy_scene *s, sd_rng *rng, uint8_t *rgb, uint8_t *ids, uint16_t *inst);

#endif
