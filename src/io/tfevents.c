/* The TensorBoard event-file writer (tfevents.h): protobuf wire format by
 * hand (varints, fixed32/fixed64, length-delimited fields) for the few
 * messages TensorBoard needs, in TFRecord frames with masked CRC32C. The
 * field numbers are tensorflow/core/util/event.proto and
 * framework/summary.proto: Event{1 wall_time double, 2 step int64,
 * 3 file_version string, 5 summary, 6 session_log}, Summary{1 repeated Value},
 * Value{1 tag, 2 simple_value float, 4 image}, Image{1 height, 2 width,
 * 3 colorspace, 4 encoded_image_string}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/protobuf.h"
#include "segda/tfevents.h"

struct sd_tb {
    FILE *f;
    char path[4096];
};

/* ---- CRC-32C (reflected polynomial 0x82f63b78), a table built once ---- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t sd_crc32c(uint32_t crc, const void *buf, size_t n)
{
    if (!crc_table[1])
        crc_init(); /* (idempotent: two threads racing here write the same values) */
    const uint8_t *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t sd_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

typedef sd_pb pb;   /* (io/protobuf.h) */

/* ---- records ---- */

static sd_status write_record(sd_tb *tb, const pb *ev)
{
    if (ev->oom)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory encoding an event", tb->path);
    uint8_t head[12];
    uint64_t n = ev->n;
    for (int i = 0; i < 8; i++)
        head[i] = (uint8_t)(n >> (8 * i));
    uint32_t c = sd_crc32c_mask(sd_crc32c(0, head, 8));
    for (int i = 0; i < 4; i++)
        head[8 + i] = (uint8_t)(c >> (8 * i));
    uint32_t cd = sd_crc32c_mask(sd_crc32c(0, ev->d, ev->n));
    uint8_t tail[4];
    for (int i = 0; i < 4; i++)
        tail[i] = (uint8_t)(cd >> (8 * i));
    if (fwrite(head, 1, 12, tb->f) != 12 || fwrite(ev->d, 1, ev->n, tb->f) != ev->n || fwrite(tail, 1, 4, tb->f) != 4)
        return sd_fail(SD_ERR_IO, "%s: write failed: %s", tb->path, strerror(errno));
    return SD_OK;
}

static double wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* An Event: wall time, step and one length-delimited field (3 file_version,
 * 5 summary, 6 session_log) holding body. */
static sd_status write_event(sd_tb *tb, int64_t step, int field, const pb *body)
{
    pb ev = {0};
    sd_pb_double(&ev, 1, wall_time());
    sd_pb_key(&ev, 2, 0);
    sd_pb_varint(&ev, (uint64_t)step);
    sd_pb_msg(&ev, field, body);
    sd_status st = body->oom ? sd_fail(SD_ERR_NOMEM, "%s: out of memory encoding an event", tb->path)
                             : write_record(tb, &ev);
    free(ev.d);
    return st;
}

/* An Event with a one-value Summary around `value` (a Value message). */
static sd_status write_summary(sd_tb *tb, int64_t step, const pb *value)
{
    pb sum = {0};
    sd_pb_msg(&sum, 1, value);
    sd_status st = write_event(tb, step, 5, &sum);
    free(sum.d);
    return st;
}

static sd_status make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++)
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST)
                return sd_fail(SD_ERR_IO, "%s: cannot create the directory: %s", buf, strerror(errno));
            if (!(*p = c))
                return SD_OK;
        }
}

sd_status sd_tb_open(sd_tb **out, const char *dir)
{
    *out = NULL;
    sd_status st = make_dirs(dir);
    if (st)
        return st;
    sd_tb *tb = calloc(1, sizeof *tb);
    if (!tb)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", dir);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) || !host[0])
        snprintf(host, sizeof host, "localhost");
    int n = snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%lld.%s", dir, (long long)time(NULL), host);
    struct stat sb;
    if (n > 0 && (size_t)n < sizeof tb->path && stat(tb->path, &sb) == 0)
        n = snprintf(tb->path + n, sizeof tb->path - (size_t)n, ".%ld", (long)getpid()); /* a second run this second */
    if (n < 0 || strlen(tb->path) + 1 >= sizeof tb->path) {
        free(tb);
        return sd_fail(SD_ERR_ARG, "%s: event file path too long", dir);
    }
    if (!(tb->f = fopen(tb->path, "wb"))) {
        st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", tb->path, strerror(errno));
        free(tb);
        return st;
    }
    static const char version[] = "brain.Event:2";
    pb ver = {.d = (uint8_t *)version, .n = sizeof version - 1};
    st = write_event(tb, 0, 3, &ver);
    if (!st)
        st = sd_tb_flush(tb);
    if (st) {
        fclose(tb->f);
        remove(tb->path);
        free(tb);
        return st;
    }
    *out = tb;
    return SD_OK;
}

sd_status sd_tb_scalar(sd_tb *tb, const char *tag, int64_t step, double value)
{
    pb v = {0};
    sd_pb_bytes(&v, 1, tag, strlen(tag));
    sd_pb_float(&v, 2, (float)value);
    sd_status st = write_summary(tb, step, &v);
    free(v.d);
    return st;
}

sd_status sd_tb_image(sd_tb *tb, const char *tag, int64_t step, const sd_image *img)
{
    if (!img || img->depth != 8 || (img->c != 1 && img->c != 3 && img->c != 4))
        return sd_fail(SD_ERR_ARG, "%s: image '%s': expected 8-bit grey, RGB or RGBA", tb->path, tag);
    uint8_t *png;
    size_t n;
    sd_status st = sd_png_encode(img, &png, &n);
    if (st)
        return sd_fail_prefix(st, "%s: image '%s'", tb->path, tag);
    pb im = {0}, v = {0};
    sd_pb_key(&im, 1, 0);
    sd_pb_varint(&im, (uint64_t)img->h);
    sd_pb_key(&im, 2, 0);
    sd_pb_varint(&im, (uint64_t)img->w);
    sd_pb_key(&im, 3, 0);
    sd_pb_varint(&im, (uint64_t)img->c); /* 1 grey, 3 RGB, 4 RGBA: the proto's colorspace codes */
    sd_pb_bytes(&im, 4, png, n);
    free(png);
    sd_pb_bytes(&v, 1, tag, strlen(tag));
    sd_pb_msg(&v, 4, &im);
    st = im.oom || v.oom ? sd_fail(SD_ERR_NOMEM, "%s: out of memory encoding image '%s'", tb->path, tag)
                         : write_summary(tb, step, &v);
    free(im.d);
    free(v.d);
    return st;
}

sd_status sd_tb_session_start(sd_tb *tb, int64_t step)
{
    pb log = {0};
    sd_pb_key(&log, 1, 0);
    sd_pb_varint(&log, 1); /* SessionLog.status START */
    sd_status st = write_event(tb, step, 6, &log);
    free(log.d);
    return st;
}

sd_status sd_tb_flush(sd_tb *tb)
{
    if (fflush(tb->f))
        return sd_fail(SD_ERR_IO, "%s: write failed: %s", tb->path, strerror(errno));
    return SD_OK;
}

const char *sd_tb_path(const sd_tb *tb) { return tb->path; }

sd_status sd_tb_close(sd_tb *tb)
{
    if (!tb)
        return SD_OK;
    sd_status st = SD_OK;
    if (fclose(tb->f))
        st = sd_fail(SD_ERR_IO, "%s: write failed: %s", tb->path, strerror(errno));
    free(tb);
    return st;
}
