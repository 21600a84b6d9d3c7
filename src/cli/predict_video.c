/* `segda predict` on video: frames of a video file (src/io/video.c decodes
 * them) or of a folder of images (in sorted-name order) are segmented one
 * by one through the image path (cli_predict_pixels), and either written as
 * per-frame PNGs or encoded into a video of colour maps or overlays with
 * the input's frame rate and size. The output video appears only when
 * complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/files.h"
#include "cli/predict.h"
#include "io/video.h"
#include "segda/progress.h"

bool cli_predict_is_video_input(const char *input)
{
    struct stat sb;
    if (stat(input, &sb) || !S_ISREG(sb.st_mode))
        return false;
    const char *dot = strrchr(input, '.');
    return !(dot && !strchr(dot, '/') &&
             (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")));
}

/* The source of frames: a video reader, or image files read in order. */
typedef struct frame_source {
    sd_video_reader *video;
    char *const *files;
    int n_files, next;
    int w, h, fps_num, fps_den;
    int64_t total;                  /* 0: unknown */
    sd_image img;                   /* the current image file's pixels */
    uint8_t *rgb;                   /* the current video frame */
} frame_source;

static sd_status source_open(frame_source *s, const cli_predict_ctx *c, const char *input, char *const *files, int n)
{
    memset(s, 0, sizeof *s);
    sd_status st;
    if (!files) {
        if ((st = sd_video_reader_open(input, &s->video, &s->w, &s->h, &s->fps_num, &s->fps_den, &s->total)))
            return st;
        if (!(s->rgb = malloc((size_t)s->w * s->h * 3)))
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d frame", input, s->w, s->h);
        return SD_OK;
    }
    s->files = files;
    s->n_files = s->total = n;
    s->fps_num = c->fps_num;
    s->fps_den = c->fps_den;
    sd_image first;   /* the first frame gives the size */
    if ((st = cli_predict_read(files[0], &first)))
        return st;
    s->w = first.w;
    s->h = first.h;
    sd_image_free(&first);
    return SD_OK;
}

/* The next frame's pixels (*px, *ch; valid until the next call); *what
 * names it in messages; *got false after the last. */
static sd_status source_next(frame_source *s, const uint8_t **px, int *ch, char *what, size_t cap, const char *input,
                             bool *got)
{
    *got = false;
    if (s->video) {
        sd_status st = sd_video_reader_next(s->video, s->rgb, got);
        *px = s->rgb;
        *ch = 3;
        snprintf(what, cap, "%s: frame %d", input, s->next++);
        return st;
    }
    sd_image_free(&s->img);
    if (s->next == s->n_files)
        return SD_OK;
    const char *path = s->files[s->next++];
    snprintf(what, cap, "%s", path);
    sd_status st = cli_predict_read(path, &s->img);
    if (st)
        return st;
    if (s->img.w != s->w || s->img.h != s->h)
        return sd_fail(SD_ERR_DATA, "%s: %dx%d, but the first frame %s is %dx%d (a video has one frame size)", path,
                       s->img.w, s->img.h, s->files[0], s->w, s->h);
    *px = s->img.data;
    *ch = s->img.c;
    *got = true;
    return SD_OK;
}

static void source_close(frame_source *s)
{
    sd_video_reader_close(s->video);
    sd_image_free(&s->img);
    free(s->rgb);
}

/* out's base name without its extension: the video's frames are STEM_000001... */
static void video_stem(const char *input, const char *outdir, char *buf, size_t cap)
{
    const char *base = strrchr(input, '/');
    snprintf(buf, cap, "%s/%s", outdir, base ? base + 1 : input);
    char *dot = strrchr(buf, '.'), *slash = strrchr(buf, '/');
    if (dot && dot > slash + 1)
        *dot = 0;
}

sd_status cli_predict_video(const cli_predict_ctx *c, const char *input, char *const *frames, int n_frames,
                            const char *out)
{
    bool to_video = sd_video_path(out);
    frame_source src;
    sd_status st = source_open(&src, c, input, frames, n_frames);
    sd_video_writer *wr = NULL;
    const char *codec = NULL;
    char codec_name[64] = "";
    size_t hw = (size_t)src.w * src.h;
    uint8_t *pred = st ? NULL : malloc(hw), *rgb = st || !to_video ? NULL : malloc(3 * hw);
    if (!st && (!pred || (to_video && !rgb)))
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for %dx%d frames", input, src.w, src.h);
    if (!st && to_video)
        st = sd_video_writer_open(out, src.w, src.h, src.fps_num, src.fps_den, false, &wr, &codec);
    if (codec)
        snprintf(codec_name, sizeof codec_name, "%s", codec);   /* (wr owns codec) */
    char stem[4200];
    if (!to_video)
        video_stem(input, out, stem, sizeof stem);
    sd_progress pr;
    sd_progress_init(&pr, "predict", "frame", src.total, c->quiet ? SD_PROGRESS_OFF : SD_PROGRESS_AUTO);
    int64_t n = 0;
    while (!st) {
        const uint8_t *px = NULL;
        int ch = 3;
        bool got;
        char what[4300];
        if ((st = source_next(&src, &px, &ch, what, sizeof what, input, &got)) || !got)
            break;
        if ((st = cli_predict_pixels(c, px, src.w, src.h, ch, pred, what, NULL)))
            break;
        if (to_video) {
            cli_predict_paint(c, px, ch, pred, hw, rgb);
            st = sd_video_writer_add(wr, rgb);
        } else {
            char fstem[4300];
            snprintf(fstem, sizeof fstem, "%s_%06lld", stem, (long long)n + 1);
            st = cli_predict_write(c, fstem, px, src.w, src.h, ch, pred);
        }
        sd_progress_update(&pr, ++n);
    }
    sd_progress_finish(&pr);
    if (!st && n == 0)
        st = sd_fail(SD_ERR_DATA, "%s: no frame decodes", input);
    if (wr) {
        if (st)
            sd_video_writer_abort(wr);
        else if (!(st = sd_video_writer_finish(wr)))
            sd_log(1, "predict: %s: %lld frames of %dx%d at %d/%d frames/s, %s%s\n", out, (long long)n, src.w, src.h,
                   src.fps_num, src.fps_den, codec_name, c->overlay ? ", overlays" : ", colour maps");
    }
    free(pred);
    free(rgb);
    source_close(&src);
    return st;
}
