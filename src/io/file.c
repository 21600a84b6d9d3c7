/* Whole-file reads for src/io/ (see file.h). Decoders work from memory, so
 * the file path and the fuzz targets share every byte of parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/file.h"

sd_status io_read_file(const char *path, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return sd_fail(SD_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return sd_fail(SD_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path, n);
    }
    size_t got = fread(b, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != n) {
        free(b);
        return sd_fail(SD_ERR_IO, "%s: read error after %zu of %zu bytes", path, got, n);
    }
    *buf = b;
    *len = n;
    return SD_OK;
}
