/* Video decoding and encoding through FFmpeg's libraries (see video.h):
 * demux -> decode -> swscale to RGB24 for reading; swscale from RGB24 ->
 * encode -> mux into a temporary file renamed on success for writing.
 * Compiled with SD_HAVE_FFMPEG when the Makefile's pkg-config finds
 * libavformat, libavcodec, libswscale and libavutil; otherwise only the
 * stubs at the end, which say what is missing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/file.h"
#include "io/video.h"

bool sd_video_path(const char *path)
{
    static const char *ext[] = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v"};
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return false;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i]))
            return true;
    return false;
}

#ifdef SD_HAVE_FFMPEG
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

bool sd_video_available(void)
{
    return true;
}

/* FFmpeg's reason for an error code */
static const char *av_reason(int err, char buf[AV_ERROR_MAX_STRING_SIZE])
{
    av_strerror(err, buf, AV_ERROR_MAX_STRING_SIZE);
    return buf;
}

/* FFmpeg prints its own diagnostics to stderr; segda's messages carry the
 * reason instead. */
static void quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET);
}

struct sd_video_reader {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frame;
    int stream, w, h;
    int64_t index;         /* frames returned so far */
    bool draining;         /* the demuxer is done; the decoder is being flushed */
    char path[4096];
};

void sd_video_reader_close(sd_video_reader *r)
{
    if (!r)
        return;
    sws_freeContext(r->sws);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r);
}

sd_status sd_video_reader_open(const char *path, sd_video_reader **out, int *w, int *h, int *fps_num, int *fps_den,
                               int64_t *frames)
{
    *out = NULL;
    quiet_ffmpeg();
    sd_video_reader *r = calloc(1, sizeof *r);
    if (!r)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
    snprintf(r->path, sizeof r->path, "%s", path);
    char why[AV_ERROR_MAX_STRING_SIZE];
    sd_status st = SD_OK;
    int err = avformat_open_input(&r->fmt, path, NULL, NULL);
    if (err < 0) {
        st = sd_fail(SD_ERR_DATA, "%s: cannot open as a video: %s", path, av_reason(err, why));
        goto fail;
    }
    if ((err = avformat_find_stream_info(r->fmt, NULL)) < 0) {
        st = sd_fail(SD_ERR_DATA, "%s: cannot read its streams: %s", path, av_reason(err, why));
        goto fail;
    }
    const AVCodec *codec = NULL;
    r->stream = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->stream < 0 || !codec) {
        st = sd_fail(SD_ERR_DATA, "%s: no video stream that this FFmpeg can decode", path);
        goto fail;
    }
    AVStream *s = r->fmt->streams[r->stream];
    if (!(r->dec = avcodec_alloc_context3(codec)) || !(r->pkt = av_packet_alloc()) || !(r->frame = av_frame_alloc())) {
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((err = avcodec_parameters_to_context(r->dec, s->codecpar)) < 0 ||
        (err = avcodec_open2(r->dec, codec, NULL)) < 0) {
        st = sd_fail(SD_ERR_DATA, "%s: cannot open its %s decoder: %s", path, codec->name, av_reason(err, why));
        goto fail;
    }
    r->w = r->dec->width;
    r->h = r->dec->height;
    if (r->w < 1 || r->h < 1) {
        st = sd_fail(SD_ERR_DATA, "%s: video stream without a frame size", path);
        goto fail;
    }
    AVRational fr = av_guess_frame_rate(r->fmt, s, NULL);
    if (fr.num <= 0 || fr.den <= 0)
        fr = (AVRational){25, 1};
    *w = r->w;
    *h = r->h;
    *fps_num = fr.num;
    *fps_den = fr.den;
    if (frames)
        *frames = s->nb_frames > 0 ? s->nb_frames : 0;
    *out = r;
    return SD_OK;
fail:
    sd_video_reader_close(r);
    return st;
}

sd_status sd_video_reader_next(sd_video_reader *r, uint8_t *rgb, bool *got)
{
    char why[AV_ERROR_MAX_STRING_SIZE];
    *got = false;
    for (;;) {
        int err = avcodec_receive_frame(r->dec, r->frame);
        if (err == 0)
            break;
        if (err == AVERROR_EOF)
            return SD_OK;
        if (err != AVERROR(EAGAIN))
            return sd_fail(SD_ERR_DATA, "%s: frame %lld does not decode: %s", r->path, (long long)r->index,
                           av_reason(err, why));
        if (r->draining)   /* EAGAIN after the flush packet: nothing more */
            return SD_OK;
        err = av_read_frame(r->fmt, r->pkt);
        if (err == AVERROR_EOF) {
            r->draining = true;
            err = avcodec_send_packet(r->dec, NULL);
        } else if (err < 0) {
            return sd_fail(SD_ERR_DATA, "%s: cannot read after frame %lld: %s", r->path, (long long)r->index,
                           av_reason(err, why));
        } else {
            if (r->pkt->stream_index == r->stream)
                err = avcodec_send_packet(r->dec, r->pkt);
            av_packet_unref(r->pkt);
        }
        if (err < 0 && err != AVERROR(EAGAIN) && err != AVERROR_EOF)
            return sd_fail(SD_ERR_DATA, "%s: frame %lld does not decode: %s", r->path, (long long)r->index,
                           av_reason(err, why));
    }
    AVFrame *f = r->frame;
    sd_status st = SD_OK;
    if (f->width != r->w || f->height != r->h)
        st = sd_fail(SD_ERR_DATA, "%s: frame %lld is %dx%d, the stream's first frames %dx%d", r->path,
                     (long long)r->index, f->width, f->height, r->w, r->h);
    /* SWS_POINT: no scaling happens; RGB formats come back bit for bit */
    if (!st && !(r->sws = sws_getCachedContext(r->sws, f->width, f->height, f->format, r->w, r->h,
                                               AV_PIX_FMT_RGB24, SWS_POINT, NULL, NULL, NULL)))
        st = sd_fail(SD_ERR_DATA, "%s: cannot convert pixel format %s to RGB", r->path,
                     av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
    if (!st) {
        uint8_t *dst[4] = {rgb};
        int stride[4] = {3 * r->w};
        sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, r->h, dst, stride);
        r->index++;
        *got = true;
    }
    av_frame_unref(f);
    return st;
}

struct sd_video_writer {
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *st;
    struct SwsContext *sws;
    AVFrame *frame;
    AVPacket *pkt;
    int64_t next_pts;
    char path[4096], tmp[4200], codec[64];
};

/* Frees everything; removes the temporary file unless it was renamed. */
static void writer_free(sd_video_writer *wr)
{
    if (!wr)
        return;
    if (wr->fmt && wr->fmt->pb)
        avio_closep(&wr->fmt->pb);
    if (wr->tmp[0])
        remove(wr->tmp);
    sws_freeContext(wr->sws);
    av_frame_free(&wr->frame);
    av_packet_free(&wr->pkt);
    avcodec_free_context(&wr->enc);
    avformat_free_context(wr->fmt);
    free(wr);
}

void sd_video_writer_abort(sd_video_writer *wr)
{
    writer_free(wr);
}

/* The first of want (ending in AV_PIX_FMT_NONE) that the codec takes, else
 * its first format. */
static enum AVPixelFormat pick_pix_fmt(const AVCodec *c, const enum AVPixelFormat *want)
{
    if (!c->pix_fmts)
        return want[0];
    for (; *want != AV_PIX_FMT_NONE; want++)
        for (const enum AVPixelFormat *p = c->pix_fmts; *p != AV_PIX_FMT_NONE; p++)
            if (*p == *want)
                return *want;
    return c->pix_fmts[0];
}

sd_status sd_video_writer_open(const char *path, int w, int h, int fps_num, int fps_den, bool lossless,
                               sd_video_writer **out, const char **codec_desc)
{
    *out = NULL;
    quiet_ffmpeg();
    char why[AV_ERROR_MAX_STRING_SIZE];
    if (w < 1 || h < 1 || fps_num < 1 || fps_den < 1)
        return sd_fail(SD_ERR_ARG, "%s: video of %dx%d at %d/%d frames/s", path, w, h, fps_num, fps_den);
    sd_video_writer *wr = calloc(1, sizeof *wr);
    if (!wr)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
    snprintf(wr->path, sizeof wr->path, "%s", path);
    sd_status st = SD_OK;
    int err = avformat_alloc_output_context2(&wr->fmt, NULL, NULL, path);
    if (err < 0 || !wr->fmt) {
        st = sd_fail(SD_ERR_ARG, "%s: no container format for this extension (use .mp4, .mkv, .avi or .mov)", path);
        goto fail;
    }
    const AVCodec *c;
    /* 8-bit RGB without loss: FFV1 takes it packed (0RGB32) */
    enum AVPixelFormat pix[3] = {AV_PIX_FMT_GBRP, AV_PIX_FMT_0RGB32, AV_PIX_FMT_NONE};
    if (lossless) {
        c = avcodec_find_encoder(AV_CODEC_ID_FFV1);
    } else {
        /* H.264 plays everywhere; MPEG-4 part 2 is in every FFmpeg build */
        c = avcodec_find_encoder(AV_CODEC_ID_H264);
        if (!c) {
            sd_log(1, "video: this FFmpeg has no H.264 encoder; %s gets MPEG-4 part 2\n", path);
            c = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
        }
        /* 4:2:0 halves both sides: odd frame sizes keep full chroma */
        pix[0] = w % 2 || h % 2 ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P;
        pix[1] = AV_PIX_FMT_NONE;
    }
    if (!c) {
        st = sd_fail(SD_ERR_ARG, "%s: this FFmpeg has no %s encoder", path, lossless ? "FFV1" : "H.264 or MPEG-4");
        goto fail;
    }
    if (avformat_query_codec(wr->fmt->oformat, c->id, FF_COMPLIANCE_NORMAL) != 1) {
        st = sd_fail(SD_ERR_ARG, "%s: the %s container cannot hold %s video (use .mkv%s)", path,
                     wr->fmt->oformat->name, c->name, lossless ? " or .avi" : " or .mp4");
        goto fail;
    }
    if (!(wr->enc = avcodec_alloc_context3(c)) || !(wr->frame = av_frame_alloc()) || !(wr->pkt = av_packet_alloc())) {
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    AVCodecContext *e = wr->enc;
    e->width = w;
    e->height = h;
    e->time_base = (AVRational){fps_den, fps_num};
    e->framerate = (AVRational){fps_num, fps_den};
    e->pix_fmt = pick_pix_fmt(c, pix);
    e->gop_size = 12;
    if (c->id == AV_CODEC_ID_H264)
        av_opt_set(e->priv_data, "crf", "18", 0);   /* visually lossless for colour maps */
    if (c->id == AV_CODEC_ID_MPEG4) {
        e->flags |= AV_CODEC_FLAG_QSCALE;
        e->global_quality = FF_QP2LAMBDA * 3;
    }
    if (wr->fmt->oformat->flags & AVFMT_GLOBALHEADER)
        e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((err = avcodec_open2(e, c, NULL)) < 0) {
        st = sd_fail(SD_ERR_ARG, "%s: cannot open the %s encoder for %dx%d: %s", path, c->name, w, h,
                     av_reason(err, why));
        goto fail;
    }
    snprintf(wr->codec, sizeof wr->codec, "%s (%s)", avcodec_get_name(c->id), c->name);
    if (!(wr->st = avformat_new_stream(wr->fmt, NULL)) ||
        avcodec_parameters_from_context(wr->st->codecpar, e) < 0) {
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    wr->st->time_base = e->time_base;
    wr->st->avg_frame_rate = e->framerate;
    if (io_tmp_name(wr->tmp, sizeof wr->tmp, path) >= (int)sizeof wr->tmp) {
        wr->tmp[0] = 0;
        st = sd_fail(SD_ERR_ARG, "%s: path too long", path);
        goto fail;
    }
    if ((err = avio_open(&wr->fmt->pb, wr->tmp, AVIO_FLAG_WRITE)) < 0) {
        st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", wr->tmp, av_reason(err, why));
        wr->tmp[0] = 0;
        goto fail;
    }
    if ((err = avformat_write_header(wr->fmt, NULL)) < 0) {
        st = sd_fail(SD_ERR_IO, "%s: cannot write the %s header: %s", wr->tmp, wr->fmt->oformat->name,
                     av_reason(err, why));
        goto fail;
    }
    wr->frame->format = e->pix_fmt;
    wr->frame->width = w;
    wr->frame->height = h;
    if (av_frame_get_buffer(wr->frame, 0) < 0 ||
        !(wr->sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, e->pix_fmt, SWS_BICUBIC | SWS_ACCURATE_RND, NULL,
                                   NULL, NULL))) {
        st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d frame", path, w, h);
        goto fail;
    }
    if (codec_desc)
        *codec_desc = wr->codec;
    *out = wr;
    return SD_OK;
fail:
    writer_free(wr);
    return st;
}

/* Sends frame (NULL: flush) and writes every packet the encoder returns. */
static sd_status encode(sd_video_writer *wr, AVFrame *frame)
{
    char why[AV_ERROR_MAX_STRING_SIZE];
    int err = avcodec_send_frame(wr->enc, frame);
    while (err >= 0) {
        err = avcodec_receive_packet(wr->enc, wr->pkt);
        if (err == AVERROR(EAGAIN) || err == AVERROR_EOF)
            return SD_OK;
        if (err < 0)
            break;
        av_packet_rescale_ts(wr->pkt, wr->enc->time_base, wr->st->time_base);
        wr->pkt->stream_index = wr->st->index;
        err = av_interleaved_write_frame(wr->fmt, wr->pkt);
        if (err < 0)
            return sd_fail(SD_ERR_IO, "%s: write failed: %s", wr->tmp, av_reason(err, why));
    }
    return sd_fail(SD_ERR_IO, "%s: encoding frame %lld failed: %s", wr->path, (long long)wr->next_pts,
                   av_reason(err, why));
}

sd_status sd_video_writer_add(sd_video_writer *wr, const uint8_t *rgb)
{
    if (av_frame_make_writable(wr->frame) < 0)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", wr->path);
    const uint8_t *src[4] = {rgb};
    int stride[4] = {3 * wr->enc->width};
    sws_scale(wr->sws, src, stride, 0, wr->enc->height, wr->frame->data, wr->frame->linesize);
    wr->frame->pts = wr->next_pts++;
    return encode(wr, wr->frame);
}

sd_status sd_video_writer_finish(sd_video_writer *wr)
{
    char why[AV_ERROR_MAX_STRING_SIZE];
    sd_status st = encode(wr, NULL);
    int err = 0;
    if (!st && (err = av_write_trailer(wr->fmt)) < 0)
        st = sd_fail(SD_ERR_IO, "%s: cannot write the trailer: %s", wr->tmp, av_reason(err, why));
    if (!st && (err = avio_closep(&wr->fmt->pb)) < 0)
        st = sd_fail(SD_ERR_IO, "%s: write failed: %s", wr->tmp, av_reason(err, why));
    if (!st) {
        if (rename(wr->tmp, wr->path))
            st = sd_fail(SD_ERR_IO, "%s: cannot rename from %s", wr->path, wr->tmp);
        else
            wr->tmp[0] = 0;
    }
    writer_free(wr);
    return st;
}

#else /* no FFmpeg */

#define NO_FFMPEG                                                                                                  \
    "video needs FFmpeg's libraries (libavformat, libavcodec, libswscale, libavutil: Debian's libavformat-dev "   \
    "libavcodec-dev libswscale-dev libavutil-dev, which tools/deps.sh installs); this segda was built without "    \
    "them: install them and rebuild"

bool sd_video_available(void)
{
    return false;
}

sd_status sd_video_reader_open(const char *path, sd_video_reader **r, int *w, int *h, int *fps_num, int *fps_den,
                               int64_t *frames)
{
    (void)w, (void)h, (void)fps_num, (void)fps_den, (void)frames;
    *r = NULL;
    return sd_fail(SD_ERR_ARG, "%s: %s", path, NO_FFMPEG);
}

sd_status sd_video_reader_next(sd_video_reader *r, uint8_t *rgb, bool *got)
{
    (void)r, (void)rgb;
    *got = false;
    return sd_fail(SD_ERR_ARG, "%s", NO_FFMPEG);
}

void sd_video_reader_close(sd_video_reader *r)
{
    (void)r;
}

sd_status sd_video_writer_open(const char *path, int w, int h, int fps_num, int fps_den, bool lossless,
                               sd_video_writer **wr, const char **codec)
{
    (void)w, (void)h, (void)fps_num, (void)fps_den, (void)lossless, (void)codec;
    *wr = NULL;
    return sd_fail(SD_ERR_ARG, "%s: %s", path, NO_FFMPEG);
}

sd_status sd_video_writer_add(sd_video_writer *wr, const uint8_t *rgb)
{
    (void)wr, (void)rgb;
    return sd_fail(SD_ERR_ARG, "%s", NO_FFMPEG);
}

sd_status sd_video_writer_finish(sd_video_writer *wr)
{
    (void)wr;
    return sd_fail(SD_ERR_ARG, "%s", NO_FFMPEG);
}

void sd_video_writer_abort(sd_video_writer *wr)
{
    (void)wr;
}

#endif
