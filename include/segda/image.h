/* Image files: PNG (libpng) and JPEG (libjpeg-turbo) in and out. Pixels are
 * 8-bit or 16-bit interleaved HWC. What these functions do not do: colour
 * management, resizing (data/transform.h) or any dataset logic. */
#ifndef SEGDA_IMAGE_H
#define SEGDA_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segda/core.h"

typedef struct sd_image {
    int w, h, c;        /* c: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int depth;          /* bits per sample: 8 or 16 */
    void *data;         /* uint8_t[h*w*c] or uint16_t[h*w*c] (host order); owned */
} sd_image;

/* Reads PNG or JPEG (by signature, not extension), as stored: palette PNGs
 * expand to RGB(A) unless keep_palette (then c = 1 and values are indices,
 * which is what label PNGs written with a palette need); 16-bit PNGs stay
 * 16-bit. Errors name the file and the problem (truncated, not an image,
 * corrupt data). */
sd_status sd_image_read(const char *path, sd_image *out, bool keep_palette);
/* Reads only the header: width, height, channels, depth. */
sd_status sd_image_info(const char *path, int *w, int *h, int *c, int *depth);
/* Reads from memory (the fuzz target's entry point). */
sd_status sd_image_decode(const uint8_t *buf, size_t len, const char *name, sd_image *out, bool keep_palette);

/* PNG writers. rgb: c = 1, 3 or 4, depth 8 or 16. palette: 8-bit indices with
 * an RGB palette of n_colors entries (Cityscapes colour label images). The
 * file is written to PATH.tmp then renamed. */
sd_status sd_png_write(const char *path, const sd_image *img);
sd_status sd_png_write_palette(const char *path, const uint8_t *idx, int w, int h,
                               const uint8_t (*palette)[3], int n_colors);
/* The PNG file sd_png_write would write, in a malloc'd *buf of *len bytes
 * (TensorBoard image records). */
sd_status sd_png_encode(const sd_image *img, uint8_t **buf, size_t *len);
sd_status sd_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality);

sd_status sd_image_alloc(sd_image *img, int w, int h, int c, int depth);
void sd_image_free(sd_image *img);

#endif
