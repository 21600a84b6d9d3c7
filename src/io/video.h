/* Video files through FFmpeg's libraries (libavformat, libavcodec,
 * libswscale): frames decoded to 8-bit RGB, and RGB frames encoded to a new
 * file that appears only when complete (written as PATH.tmp.PID, renamed by
 * sd_video_writer_finish). Internal to the library. A build without FFmpeg
 * (the Makefile finds it with pkg-config) keeps these functions; they fail
 * saying that video needs those libraries. No segmentation here. */
#ifndef SEGDA_IO_VIDEO_H
#define SEGDA_IO_VIDEO_H

#include <stdbool.h>
#include <stdint.h>

#include "segda/core.h"

/* false when this segda was built without FFmpeg's libraries */
bool sd_video_available(void);

typedef struct sd_video_reader sd_video_reader;

/* Opens the first video stream of path. *w x *h: the frame size; *fps_num /
 * *fps_den: the frame rate as FFmpeg guesses it (25/1 when the file has
 * none); *frames: the container's frame count, 0 when it does not say.
 * Errors name path and FFmpeg's reason ("Invalid data found ..."). */
sd_status sd_video_reader_open(const char *path, sd_video_reader **r, int *w, int *h, int *fps_num, int *fps_den,
                               int64_t *frames);
/* The next frame in decoding order into rgb [h][w][3]; *got false at the
 * end of the stream. A frame of another size, or a packet that does not
 * decode, is an error naming the file and the frame index. */
sd_status sd_video_reader_next(sd_video_reader *r, uint8_t *rgb, bool *got);
void sd_video_reader_close(sd_video_reader *r);

typedef struct sd_video_writer sd_video_writer;

/* A new video file at path, its container from the extension (.mp4, .mkv,
 * .avi, .mov, ...), frames of w x h at fps_num/fps_den. lossless: FFV1 on
 * 8-bit RGB (bit-exact frames back; .mkv or .avi); else H.264 (libx264,
 * CRF 18) when this FFmpeg has an H.264 encoder, MPEG-4 part 2 otherwise.
 * *codec (optional) gets the codec's description. Nothing exists at path
 * until sd_video_writer_finish. */
sd_status sd_video_writer_open(const char *path, int w, int h, int fps_num, int fps_den, bool lossless,
                               sd_video_writer **wr, const char **codec);
/* Appends one frame rgb [h][w][3]. */
sd_status sd_video_writer_add(sd_video_writer *wr, const uint8_t *rgb);
/* Flushes the encoder, writes the trailer, renames the file into place and
 * frees wr (also on error, which leaves no file). */
sd_status sd_video_writer_finish(sd_video_writer *wr);
/* Frees wr and removes its temporary file: nothing half-written remains. */
void sd_video_writer_abort(sd_video_writer *wr);

/* path's extension names a video container segda writes (.mp4, .mkv, .avi,
 * .mov, .webm, .m4v), case-insensitively */
bool sd_video_path(const char *path);

#endif
