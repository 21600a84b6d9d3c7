/* Whole-file reads shared by the parsers of outside bytes in src/io/
 * (images, safetensors). Internal to the library; no format knowledge. */
#ifndef SEGDA_IO_FILE_H
#define SEGDA_IO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

/* The whole regular file at path in a malloc'd *buf (free it) of *len bytes.
 * Errors name the path: cannot open (with the reason), not a regular file,
 * out of memory, short read. */
sd_status io_read_file(const char *path, uint8_t **buf, size_t *len);

#endif
