/* The pieces of `segda predict` that images and video frames share
 * (cmd_predict.c), so a frame is segmented by exactly the code that
 * segments an image; and the video paths (predict_video.c). */
#ifndef SEGDA_CLI_PREDICT_H
#define SEGDA_CLI_PREDICT_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/gan.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/detect.h"
#include "segda/fuse.h"

typedef struct cli_predict_ctx {
    sd_model *m;
    sd_gen *gen;                 /* --translate, or NULL */
    sd_tape *t;
    const sd_infer_opts *io;
    bool color, overlay, labelids, quiet;
    const uint8_t (*pal)[3];     /* [256] trainId colours */
    int fps_num, fps_den;        /* --fps: frame rate of a video made from image files */
    sd_detector *det;            /* --detector, or NULL: its masks painted over the map */
    sd_fuse_opts fuse;
    const char *inst_dir;        /* --instances-out, or NULL */
} cli_predict_ctx;

/* An image file as 8-bit interleaved pixels. */
sd_status cli_predict_read(const char *path, sd_image *img);
/* trainIds [h*w] of 8-bit pixels (ch 1, 3 or 4), the detector's masks painted
 * over with --detector (inst_name: the file name its detections are written
 * under with --instances-out, NULL for none); errors start with `what`. */
sd_status cli_predict_pixels(const cli_predict_ctx *c, const uint8_t *px, int w, int h, int ch, uint8_t *pred,
                             const char *what, const char *inst_name);
/* STEM_trainIds.png and the _color/_overlay/_labelIds PNGs asked for. */
sd_status cli_predict_write(const cli_predict_ctx *c, const char *stem, const uint8_t *px, int w, int h, int ch,
                            const uint8_t *pred);
/* rgb [hw][3]: pred's colours, blended half and half over px with --overlay */
void cli_predict_paint(const cli_predict_ctx *c, const uint8_t *px, int ch, const uint8_t *pred, size_t hw,
                       uint8_t *rgb);

/* Input is one file that is not a .png/.jpg/.jpeg image: a video. */
bool cli_predict_is_video_input(const char *input);
/* A video input into OUT/STEM_000001_trainIds.png ... (out a folder), or a
 * video or the image files `frames` (sorted paths; used when input is not
 * a video) into the video file out (colour maps, or overlays with
 * --overlay). */
sd_status cli_predict_video(const cli_predict_ctx *c, const char *input, char *const *frames, int n_frames,
                            const char *out);

#endif
