/* TensorBoard event files, written by segda's own code: TFRecord framing
 * (length, masked CRC32C of the length, data, masked CRC32C of the data)
 * around tensorflow.Event protobufs encoded by hand (wall_time, step,
 * file_version "brain.Event:2" in the first record, then Summary values:
 * simple_value scalars and PNG-encoded images). `tensorboard --logdir DIR`
 * reads the files. Not here: what a run logs (src/da/tblog.c). */
#ifndef SEGDA_TFEVENTS_H
#define SEGDA_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"
#include "segda/image.h"

typedef struct sd_tb sd_tb;

/* Creates dir (and its parents) and DIR/events.out.tfevents.<unix time>.<host>
 * (".<pid>" appended if that name exists), and writes the file-version
 * record. Errors name the file. */
sd_status sd_tb_open(sd_tb **out, const char *dir);
/* One scalar event (the value is stored as a float, as TensorBoard's is). */
sd_status sd_tb_scalar(sd_tb *tb, const char *tag, int64_t step, double value);
/* One image event: img (8-bit, c 1, 3 or 4) PNG-encoded into the record. */
sd_status sd_tb_image(sd_tb *tb, const char *tag, int64_t step, const sd_image *img);
/* A SessionLog START at step (Event field 6): a resumed run's first record,
 * so TensorBoard drops the earlier file's events at steps >= step (they were
 * computed again). */
sd_status sd_tb_session_start(sd_tb *tb, int64_t step);
sd_status sd_tb_flush(sd_tb *tb);
const char *sd_tb_path(const sd_tb *tb);
/* Flushes and closes; NULL is fine. */
sd_status sd_tb_close(sd_tb *tb);

/* CRC-32C (Castagnoli) of buf continuing from crc (0 to start), and the
 * TFRecord mask of a CRC: ((c >> 15) | (c << 17)) + 0xa282ead8. */
uint32_t sd_crc32c(uint32_t crc, const void *buf, size_t n);
uint32_t sd_crc32c_mask(uint32_t crc);

#endif
