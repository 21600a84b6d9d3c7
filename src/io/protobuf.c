/* Protocol-buffer wire encoding (protobuf.h). */
#include <stdlib.h>
#include <string.h>

#include "io/protobuf.h"

void sd_pb_raw(sd_pb *b, const void *p, size_t len)
{
    if (b->oom || len == 0)
        return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len)
            cap *= 2;
        uint8_t *d = realloc(b->d, cap);
        if (!d) {
            b->oom = true;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, len);
    b->n += len;
}

void sd_pb_varint(sd_pb *b, uint64_t v)
{
    uint8_t t[10];
    int k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        t[k++] |= v ? 0x80 : 0;
    } while (v);
    sd_pb_raw(b, t, (size_t)k);
}

void sd_pb_key(sd_pb *b, int field, int wire) { sd_pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

void sd_pb_int(sd_pb *b, int field, int64_t v)
{
    sd_pb_key(b, field, 0);
    sd_pb_varint(b, (uint64_t)v);   /* negative values: ten bytes, as protobuf's int64 */
}

static void fixed(sd_pb *b, int field, uint64_t u, int bytes)
{
    sd_pb_key(b, field, bytes == 8 ? 1 : 5);
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)   /* little-endian whatever the host */
        t[i] = (uint8_t)(u >> (8 * i));
    sd_pb_raw(b, t, (size_t)bytes);
}

void sd_pb_float(sd_pb *b, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    fixed(b, field, u, 4);
}

void sd_pb_double(sd_pb *b, int field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    fixed(b, field, u, 8);
}

void sd_pb_bytes(sd_pb *b, int field, const void *p, size_t len)
{
    sd_pb_key(b, field, 2);
    sd_pb_varint(b, len);
    sd_pb_raw(b, p, len);
}

void sd_pb_str(sd_pb *b, int field, const char *s) { sd_pb_bytes(b, field, s, strlen(s)); }

void sd_pb_msg(sd_pb *b, int field, const sd_pb *sub)
{
    b->oom |= sub->oom;
    sd_pb_bytes(b, field, sub->d, sub->n);
}

void sd_pb_free(sd_pb *b)
{
    free(b->d);
    *b = (sd_pb){0};
}
