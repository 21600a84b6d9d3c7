/* Protocol-buffer encoding into a growing byte buffer: the one encoder
 * behind TensorBoard's event files (tfevents.c) and ONNX export (onnx.c).
 * Wire format only (varints, fixed 32/64-bit little-endian values,
 * length-delimited fields); messages are written by hand from the .proto
 * field numbers. An allocation failure sets `oom` and later calls do
 * nothing, so a writer checks once at the end. */
#ifndef SEGDA_IO_PROTOBUF_H
#define SEGDA_IO_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sd_pb {
    uint8_t *d;
    size_t n, cap;
    bool oom;
} sd_pb;

void sd_pb_raw(sd_pb *b, const void *p, size_t len);        /* bytes as they are */
void sd_pb_varint(sd_pb *b, uint64_t v);
/* key = field << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32) */
void sd_pb_key(sd_pb *b, int field, int wire);
void sd_pb_int(sd_pb *b, int field, int64_t v);             /* int32/int64/uint64/bool/enum */
void sd_pb_float(sd_pb *b, int field, float v);
void sd_pb_double(sd_pb *b, int field, double v);
void sd_pb_bytes(sd_pb *b, int field, const void *p, size_t len);
void sd_pb_str(sd_pb *b, int field, const char *s);
/* sub as a message field (sub's oom carries over; sub is left as it is) */
void sd_pb_msg(sd_pb *b, int field, const sd_pb *sub);
void sd_pb_free(sd_pb *b);

#endif
