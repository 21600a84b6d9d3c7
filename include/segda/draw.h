/* Drawing on 8-bit RGB images (sd_image, c = 3): filled rectangles, lines,
 * and text in a built-in 5x7 bitmap font (printable ASCII; other bytes draw
 * as '?'), for plots (`segda plot`), labelled example sheets and TensorBoard
 * image strips. Everything clips to the image. No anti-aliasing. */
#ifndef SEGDA_DRAW_H
#define SEGDA_DRAW_H

#include <stdint.h>

#include "segda/image.h"

/* One glyph cell: 5x7 pixels (descenders one row lower) plus one column and
 * one row of spacing, times scale. */
#define SD_FONT_W 6
#define SD_FONT_H 9

void sd_draw_rect(sd_image *img, int x, int y, int w, int h, const uint8_t rgb[3]);
/* A line of width `thick` pixels (1 or more) from (x0,y0) to (x1,y1), ends included. */
void sd_draw_line(sd_image *img, double x0, double y0, double x1, double y1, const uint8_t rgb[3], int thick);
/* Text with its top-left corner at (x, y); returns its width in pixels. */
int sd_draw_text(sd_image *img, int x, int y, const char *s, const uint8_t rgb[3], int scale);
int sd_text_width(const char *s, int scale);
/* Copies src (8-bit, c 1 or 3) with its top-left corner at (x, y), clipped. */
void sd_draw_blit(sd_image *dst, int x, int y, const sd_image *src);

/* The Cityscapes class-colour legend (a swatch and a class name per
 * trainId, in rows of `per_row`) drawn at (x, y); returns its height.
 * sd_draw_legend_size gives the width and height it needs. */
int sd_draw_class_legend(sd_image *img, int x, int y, int per_row, int scale);
void sd_draw_legend_size(int per_row, int scale, int *w, int *h);

#endif
