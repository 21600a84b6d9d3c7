/* The safetensors file format: a hardened reader (header parser of our own,
 * every offset and size checked before use) and a writer that never leaves a
 * half-written file. Tensors here are plain named arrays; mapping them onto
 * model parameters is checkpoint.h's job.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data; offsets are relative
 * to the first data byte. */
#ifndef SEGDA_SAFETENSORS_H
#define SEGDA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

#define SD_ST_MAX_HEADER ((uint64_t)100 << 20) /* as the reference implementation */
#define SD_ST_MAX_DIMS 8

typedef enum sd_st_dtype {
    SD_ST_F32 = 0,
    SD_ST_F16,
    SD_ST_BF16,
    SD_ST_F64,
    SD_ST_I64,   /* accepted so files with integer buffers parse; not convertible */
    SD_ST_I32,
    SD_ST_U8,
    SD_ST_BOOL,
    SD_ST_DTYPE_COUNT
} sd_st_dtype;
const char *sd_st_dtype_name(sd_st_dtype d);
size_t sd_st_dtype_size(sd_st_dtype d);

typedef struct sd_st_tensor {
    char *name;
    sd_st_dtype dtype;
    int ndim;
    int64_t shape[SD_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;     /* byte offsets relative to the data section */
} sd_st_tensor;

typedef struct sd_st_file {
    uint8_t *buf;            /* the whole file (owned unless borrowed) */
    size_t len;
    int borrowed;            /* buf belongs to the caller (sd_st_parse) */
    size_t data_start;       /* 8 + header length */
    int n;                   /* tensors, in header order */
    sd_st_tensor *tensors;
    int n_meta;
    char **meta_keys, **meta_values;
    char *path;              /* for messages */
} sd_st_file;

/* Parses a complete file image held in buf[len] (not copied: it must outlive
 * the sd_st_file). Rejects: a header length beyond SD_ST_MAX_HEADER or the
 * file, JSON that is not the expected object, unknown dtypes, shapes whose
 * byte size differs from the offsets, offsets out of range, overlapping
 * tensors, holes, duplicate names, non-string metadata. Messages name the
 * file, the tensor and/or the byte offset. On failure *out is left empty. */
sd_status sd_st_parse(const uint8_t *buf, size_t len, const char *name, sd_st_file *out);
/* Reads and parses a file. */
sd_status sd_st_read(const char *path, sd_st_file *out);
void sd_st_free(sd_st_file *f);

int sd_st_find(const sd_st_file *f, const char *name);          /* index or -1 */
const char *sd_st_meta(const sd_st_file *f, const char *key);    /* NULL if absent */
/* Copies tensor i into dst[numel] as f32 (F32, F16, BF16, F64 convert). */
sd_status sd_st_to_f32(const sd_st_file *f, int i, float *dst);

/* ---- writing ---- */
typedef struct sd_st_entry {
    const char *name;
    int ndim;
    int64_t shape[SD_ST_MAX_DIMS];
    const float *data;       /* F32, numel = product of shape */
} sd_st_entry;

/* Writes F32 tensors in the given order plus string metadata to PATH.tmp,
 * fsyncs, renames onto PATH and fsyncs the directory: a crash leaves either
 * the old file or the new one. Names must be unique. */
sd_status sd_st_write(const char *path, int n, const sd_st_entry *entries,
                      int n_meta, const char *const *keys, const char *const *values);

#endif
