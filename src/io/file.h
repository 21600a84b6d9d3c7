/* Whole-file reads shared by the parsers of outside bytes in src/io/
 * (images, safetensors), per-process temporary names for atomic writes and
 * the run-directory lock. Internal to the library; no format knowledge. */
#ifndef SEGDA_IO_FILE_H
#define SEGDA_IO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

/* The whole regular file at path in a malloc'd *buf (free it) of *len bytes.
 * Errors name the path: cannot open (with the reason), not a regular file,
 * out of memory, short read. */
sd_status io_read_file(const char *path, uint8_t **buf, size_t *len);

/* The temporary name an atomic write of `path` goes through before its
 * rename: PATH.tmp.PID, so two processes writing the same file never share
 * (and truncate or rename away) one temporary. Returns snprintf's count: a
 * value >= cap means buf was too small. */
int io_tmp_name(char *buf, size_t cap, const char *path);

/* Exclusive, non-blocking flock on lock_path (created if needed), which then
 * holds this process's pid; *fd keeps the lock until io_unlock. When another
 * process holds it, fails with SD_ERR_ARG naming `what`, the lock file and
 * the holder's pid (as written in the file). */
sd_status io_lock(const char *lock_path, const char *what, int *fd);
/* Releases a lock io_lock took (fd < 0: nothing to do). The file stays:
 * removing it would let a third process lock a new inode while a second
 * still waits on the old one. */
void io_unlock(int fd);

#endif
