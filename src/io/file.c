/* Whole-file reads for src/io/ (see file.h). Decoders work from memory, so
 * the file path and the fuzz targets share every byte of parsing. Also the
 * per-process temporary names and the run-directory lock. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
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

int io_tmp_name(char *buf, size_t cap, const char *path)
{
    return snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
}

sd_status io_lock(const char *lock_path, const char *what, int *fd)
{
    *fd = -1;
    int f = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
        return sd_fail(SD_ERR_IO, "%s: cannot create the lock file: %s", lock_path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = err == EWOULDBLOCK ? pread(f, pid, sizeof pid - 1, 0) : -1;
        close(f);
        if (err != EWOULDBLOCK)
            return sd_fail(SD_ERR_IO, "%s: cannot lock: %s", lock_path, strerror(err));
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\r\n")] = 0;
        return sd_fail(SD_ERR_ARG, "%s is in use by another process (pid %s, lock %s); wait for it to end or choose "
                       "another --out", what, *pid ? pid : "unknown", lock_path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(f, 0) != 0 || pwrite(f, pid, (size_t)n, 0) != n) {
        int err = errno;
        close(f);
        return sd_fail(SD_ERR_IO, "%s: cannot write the pid: %s", lock_path, strerror(err));
    }
    *fd = f;
    return SD_OK;
}

void io_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}
