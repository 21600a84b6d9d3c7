/* PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory and encoding to
 * files written atomically (PATH.tmp.PID, then rename). Both libraries report
 * errors by longjmp; every buffer that must survive a jump lives in a context
 * struct, never in a local. No resizing or dataset logic here. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/file.h"
#include "segda/image.h"

/* Caps that keep a hostile header from asking for gigabytes: the largest
 * side and the largest decoded buffer we accept. Real data (2048x1024 RGB,
 * SYNTHIA 16-bit) is far below both. */
#define SD_IMAGE_MAX_SIDE 32768
#define SD_IMAGE_MAX_BYTES ((size_t)1 << 28)

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

sd_status sd_image_alloc(sd_image *img, int w, int h, int c, int depth)
{
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0 || c < 1 || c > 4 || (depth != 8 && depth != 16))
        return sd_fail(SD_ERR_ARG, "image alloc: bad shape %dx%dx%d depth %d (expected w,h > 0, c 1..4, depth 8 or 16)",
                       w, h, c, depth);
    size_t n = (size_t)w * (size_t)h * (size_t)c * (size_t)(depth / 8);
    img->data = sd_malloc(n);
    if (!img->data)
        return SD_ERR_NOMEM;
    img->w = w;
    img->h = h;
    img->c = c;
    img->depth = depth;
    return SD_OK;
}

void sd_image_free(sd_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ---- PNG decoding ---- */

typedef struct png_ctx {
    const char *name;
    const uint8_t *buf;
    size_t len, pos;
    int truncated;
    char msg[200];
    uint8_t *pixels;       /* freed on error after the jump */
    png_bytep *rows;
} png_ctx;

static void png_ctx_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_ctx_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* ancillary-chunk trouble; the pixels are still good */
}

static void png_ctx_read(png_structp png, png_bytep out, size_t n)
{
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->len - ctx->pos) {
        ctx->truncated = 1;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, ctx->buf + ctx->pos, n);
    ctx->pos += n;
}

/* header_only: stop after IHDR and report the shape the full read would give. */
static sd_status png_decode(const uint8_t *buf, size_t len, const char *name, sd_image *out,
                            bool keep_palette, bool header_only)
{
    png_ctx ctx = {.name = name, .buf = buf, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_ctx_error, png_ctx_warning);
    if (!png)
        return sd_fail(SD_ERR_NOMEM, "%s: cannot create PNG reader", name);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sd_fail(SD_ERR_NOMEM, "%s: cannot create PNG reader", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx.pixels);
        free(ctx.rows);
        if (ctx.truncated)
            return sd_fail(SD_ERR_FORMAT, "%s: truncated PNG (file ends after %zu bytes)", name, len);
        return sd_fail(SD_ERR_FORMAT, "%s: corrupt PNG: %s", name, ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_ctx_read);
    png_set_user_limits(png, SD_IMAGE_MAX_SIDE, SD_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    int color = png_get_color_type(png, info);

    if (color == PNG_COLOR_TYPE_PALETTE) {
        if (keep_palette) {
            if (bit_depth < 8)
                png_set_packing(png);
        } else {
            png_set_palette_to_rgb(png);
            if (png_get_valid(png, info, PNG_INFO_tRNS))
                png_set_tRNS_to_alpha(png);
        }
    } else if (color == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (bit_depth == 16 && host_is_little_endian())
        png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int c = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (c < 1 || c > 4 || (depth != 8 && depth != 16) || rowbytes != (size_t)w * c * (depth / 8))
        png_error(png, "unsupported pixel layout after expansion");
    if (rowbytes > SD_IMAGE_MAX_BYTES / h) {
        png_destroy_read_struct(&png, &info, NULL);
        return sd_fail(SD_ERR_FORMAT, "%s: PNG of %ux%u with %d channels is larger than the %zu-byte limit", name,
                       (unsigned)w, (unsigned)h, c, SD_IMAGE_MAX_BYTES);
    }
    if (header_only) {
        png_destroy_read_struct(&png, &info, NULL);
        out->w = (int)w;
        out->h = (int)h;
        out->c = c;
        out->depth = depth;
        out->data = NULL;
        return SD_OK;
    }
    ctx.pixels = malloc(rowbytes * h);
    ctx.rows = malloc(sizeof(png_bytep) * h);
    if (!ctx.pixels || !ctx.rows)
        png_error(png, "out of memory for the pixel buffer");
    for (png_uint_32 y = 0; y < h; y++)
        ctx.rows[y] = ctx.pixels + (size_t)y * rowbytes;
    png_read_image(png, ctx.rows);
    /* Reading up to IEND catches files cut short after the last row. */
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx.rows);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->depth = depth;
    out->data = ctx.pixels;
    return SD_OK;
}

/* ---- JPEG decoding ---- */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
    uint8_t *pixels;
} jpeg_ctx;

static void jpeg_ctx_error_exit(j_common_ptr cinfo)
{
    jpeg_ctx *ctx = (jpeg_ctx *)cinfo->err;
    cinfo->err->format_message(cinfo, ctx->msg);
    longjmp(ctx->jmp, 1);
}

static void jpeg_ctx_emit(j_common_ptr cinfo, int level)
{
    jpeg_ctx *ctx = (jpeg_ctx *)cinfo->err;
    /* libjpeg fills a cut-off file with grey and only warns; a label or
     * training image with a grey bottom is worse than an error. */
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        ctx->truncated = 1;
}

static sd_status jpeg_decode(const uint8_t *buf, size_t len, const char *name, sd_image *out, bool header_only)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_ctx_error_exit;
    ctx.pub.emit_message = jpeg_ctx_emit;
    if (setjmp(ctx.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        free(ctx.pixels);
        if (ctx.truncated)
            return sd_fail(SD_ERR_FORMAT, "%s: truncated JPEG (file ends after %zu bytes)", name, len);
        return sd_fail(SD_ERR_FORMAT, "%s: corrupt JPEG: %s", name, ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = 256L << 20;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (ctx.truncated) {
        jpeg_destroy_decompress(&cinfo);
        return sd_fail(SD_ERR_FORMAT, "%s: truncated JPEG (file ends after %zu bytes)", name, len);
    }
    int c;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) {
        cinfo.out_color_space = JCS_GRAYSCALE;
        c = 1;
    } else if (cinfo.jpeg_color_space == JCS_YCbCr || cinfo.jpeg_color_space == JCS_RGB) {
        cinfo.out_color_space = JCS_RGB;
        c = 3;
    } else {
        jpeg_destroy_decompress(&cinfo);
        return sd_fail(SD_ERR_UNSUPPORTED, "%s: JPEG colour space %d (CMYK/YCCK) is not supported; expected grey or RGB",
                       name, (int)cinfo.jpeg_color_space);
    }
    unsigned w = cinfo.image_width, h = cinfo.image_height;
    if (w == 0 || h == 0 || w > SD_IMAGE_MAX_SIDE || h > SD_IMAGE_MAX_SIDE ||
        (size_t)w * c > SD_IMAGE_MAX_BYTES / h) {
        jpeg_destroy_decompress(&cinfo);
        return sd_fail(SD_ERR_FORMAT, "%s: JPEG size %ux%u is outside the accepted range (1..%d per side)", name, w, h,
                       SD_IMAGE_MAX_SIDE);
    }
    if (header_only) {
        jpeg_destroy_decompress(&cinfo);
        out->w = (int)w;
        out->h = (int)h;
        out->c = c;
        out->depth = 8;
        out->data = NULL;
        return SD_OK;
    }
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != c || cinfo.output_width != w || cinfo.output_height != h) {
        jpeg_destroy_decompress(&cinfo);
        return sd_fail(SD_ERR_FORMAT, "%s: JPEG decoder gave an unexpected layout", name);
    }
    size_t stride = (size_t)w * c;
    ctx.pixels = malloc(stride * h);
    if (!ctx.pixels) {
        jpeg_destroy_decompress(&cinfo);
        return sd_fail(SD_ERR_NOMEM, "%s: cannot allocate the pixel buffer", name);
    }
    while (cinfo.output_scanline < h) {
        JSAMPROW row = ctx.pixels + (size_t)cinfo.output_scanline * stride;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1)
            break;
    }
    if (!ctx.truncated)
        jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (ctx.truncated) {
        free(ctx.pixels);
        return sd_fail(SD_ERR_FORMAT, "%s: truncated JPEG (file ends after %zu bytes)", name, len);
    }
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->depth = 8;
    out->data = ctx.pixels;
    return SD_OK;
}

/* ---- dispatch ---- */

static sd_status decode_any(const uint8_t *buf, size_t len, const char *name, sd_image *out, bool keep_palette,
                            bool header_only)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (!name)
        name = "<memory>";
    if (len == 0)
        return sd_fail(SD_ERR_FORMAT, "%s: empty file, not an image", name);
    if (len >= 8 && !memcmp(buf, png_sig, 8))
        return png_decode(buf, len, name, out, keep_palette, header_only);
    if (len < 8 && !memcmp(buf, png_sig, len))
        return sd_fail(SD_ERR_FORMAT, "%s: truncated PNG (file ends after %zu bytes)", name, len);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return jpeg_decode(buf, len, name, out, header_only);
    return sd_fail(SD_ERR_FORMAT, "%s: not an image (no PNG or JPEG signature)", name);
}

sd_status sd_image_decode(const uint8_t *buf, size_t len, const char *name, sd_image *out, bool keep_palette)
{
    return decode_any(buf, len, name, out, keep_palette, false);
}

sd_status sd_image_read(const char *path, sd_image *out, bool keep_palette)
{
    uint8_t *buf;
    size_t len;
    memset(out, 0, sizeof *out);
    sd_status st = io_read_file(path, &buf, &len);
    if (st)
        return st;
    st = decode_any(buf, len, path, out, keep_palette, false);
    free(buf);
    return st;
}

sd_status sd_image_info(const char *path, int *w, int *h, int *c, int *depth)
{
    /* A header is near the start; 64 KiB covers PNG IHDR and JPEG SOF behind
     * ordinary EXIF blocks. Fall back to the whole file if that is short. */
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    sd_image img;
    sd_status st = decode_any(buf, n, path, &img, false, true);
    free(buf);
    if (st != SD_OK && n == cap) {
        uint8_t *all;
        size_t len;
        st = io_read_file(path, &all, &len);
        if (st)
            return st;
        st = decode_any(all, len, path, &img, false, true);
        free(all);
    }
    if (st)
        return st;
    if (w)
        *w = img.w;
    if (h)
        *h = img.h;
    if (c)
        *c = img.c;
    if (depth)
        *depth = img.depth;
    return SD_OK;
}

/* ---- writing ---- */

static char *tmp_path(const char *path)
{
    size_t n = strlen(path) + 32;
    char *t = sd_malloc(n);
    if (t)
        io_tmp_name(t, n, path);
    return t;
}

/* Closes the temporary file and renames it into place, or removes it. */
static sd_status finish_tmp(FILE *f, const char *tmp, const char *path, sd_status st)
{
    if (!tmp)
        return st; /* (a stream of the caller's: sd_png_encode) */
    if (f && fclose(f) != 0 && st == SD_OK)
        st = sd_fail(SD_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (st == SD_OK && rename(tmp, path) != 0)
        st = sd_fail(SD_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (st != SD_OK)
        remove(tmp);
    return st;
}

typedef struct png_wctx {
    char msg[200];
    FILE *f;
    png_bytep *rows;
} png_wctx;

static void png_wctx_error(png_structp png, png_const_charp msg)
{
    png_wctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* palette != NULL: 8-bit indexed image of n_colors entries. mem != NULL:
 * into that stream (path only names it in messages), else PATH via a
 * temporary file. */
static sd_status png_write_any(const char *path, FILE *mem, const void *data, int w, int h, int c, int depth,
                               const uint8_t (*palette)[3], int n_colors)
{
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGBA};
    if (!data || w <= 0 || h <= 0 || w > SD_IMAGE_MAX_SIDE || h > SD_IMAGE_MAX_SIDE || c < 1 || c > 4 ||
        (depth != 8 && depth != 16))
        return sd_fail(SD_ERR_ARG, "%s: cannot write a PNG of %dx%dx%d depth %d (expected sides 1..%d, c 1..4, depth 8 or 16)",
                       path, w, h, c, depth, SD_IMAGE_MAX_SIDE);
    if (palette && (n_colors < 1 || n_colors > 256))
        return sd_fail(SD_ERR_ARG, "%s: palette of %d colours (expected 1..256)", path, n_colors);
    char *tmp = mem ? NULL : tmp_path(path);
    if (!mem && !tmp)
        return SD_ERR_NOMEM;
    png_wctx ctx = {.f = mem ? mem : fopen(tmp, "wb")};
    if (!ctx.f) {
        sd_status st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_wctx_error, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        sd_status st = finish_tmp(ctx.f, tmp, path, sd_fail(SD_ERR_NOMEM, "%s: cannot create PNG writer", path));
        free(tmp);
        return st;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(ctx.rows);
        sd_status st = finish_tmp(ctx.f, tmp, path, sd_fail(SD_ERR_IO, "%s: PNG write failed: %s", path, ctx.msg));
        free(tmp);
        return st;
    }
    png_init_io(png, ctx.f);
    /* Level 1 with the SUB filter only: writing is on the benchmark
     * generator's and predict's hot path, and files stay within ~20% of
     * the default's size. */
    png_set_compression_level(png, 1);
    png_set_filter(png, 0, PNG_FILTER_SUB);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, palette ? PNG_COLOR_TYPE_PALETTE : color_types[c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color pal[256];
        for (int i = 0; i < n_colors; i++) {
            pal[i].red = palette[i][0];
            pal[i].green = palette[i][1];
            pal[i].blue = palette[i][2];
        }
        png_set_PLTE(png, info, pal, n_colors);
    }
    png_write_info(png, info);
    if (depth == 16 && host_is_little_endian())
        png_set_swap(png);
    size_t stride = (size_t)w * c * (depth / 8);
    ctx.rows = malloc(sizeof(png_bytep) * h);
    if (!ctx.rows)
        png_error(png, "out of memory");
    for (int y = 0; y < h; y++)
        ctx.rows[y] = (png_bytep)data + (size_t)y * stride;
    png_write_image(png, ctx.rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(ctx.rows);
    sd_status st = finish_tmp(ctx.f, tmp, path, SD_OK);
    free(tmp);
    return st;
}

sd_status sd_png_write(const char *path, const sd_image *img)
{
    return png_write_any(path, NULL, img->data, img->w, img->h, img->c, img->depth, NULL, 0);
}

sd_status sd_png_encode(const sd_image *img, uint8_t **buf, size_t *len)
{
    char *mb = NULL;
    size_t ml = 0;
    FILE *f = open_memstream(&mb, &ml);
    if (!f)
        return sd_fail(SD_ERR_NOMEM, "PNG encoder: cannot open a memory stream");
    sd_status st = png_write_any("(PNG in memory)", f, img->data, img->w, img->h, img->c, img->depth, NULL, 0);
    if (fclose(f) && !st)
        st = sd_fail(SD_ERR_NOMEM, "PNG encoder: out of memory");
    if (st) {
        free(mb);
        return st;
    }
    *buf = (uint8_t *)mb;
    *len = ml;
    return SD_OK;
}

sd_status sd_png_write_palette(const char *path, const uint8_t *idx, int w, int h, const uint8_t (*palette)[3],
                               int n_colors)
{
    if (!palette)
        return sd_fail(SD_ERR_ARG, "%s: palette PNG without a palette", path);
    if (idx && w > 0 && h > 0) {
        for (size_t i = 0, n = (size_t)w * h; i < n; i++)
            if (idx[i] >= n_colors)
                return sd_fail(SD_ERR_ARG, "%s: pixel %zu has index %d outside the %d-colour palette", path, i, idx[i],
                               n_colors);
    }
    return png_write_any(path, NULL, idx, w, h, 1, 8, palette, n_colors);
}

typedef struct jpeg_wctx {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_wctx;

static void jpeg_wctx_error_exit(j_common_ptr cinfo)
{
    jpeg_wctx *ctx = (jpeg_wctx *)cinfo->err;
    cinfo->err->format_message(cinfo, ctx->msg);
    longjmp(ctx->jmp, 1);
}

sd_status sd_jpeg_write(const char *path, const uint8_t *rgb, int w, int h, int quality)
{
    if (!rgb || w <= 0 || h <= 0 || w > 65500 || h > 65500 || quality < 1 || quality > 100)
        return sd_fail(SD_ERR_ARG, "%s: cannot write a JPEG of %dx%d at quality %d (expected sides 1..65500, quality 1..100)",
                       path, w, h, quality);
    char *tmp = tmp_path(path);
    if (!tmp)
        return SD_ERR_NOMEM;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        sd_status st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return st;
    }
    struct jpeg_compress_struct cinfo;
    jpeg_wctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_wctx_error_exit;
    if (setjmp(ctx.jmp)) {
        jpeg_destroy_compress(&cinfo);
        sd_status st = finish_tmp(f, tmp, path, sd_fail(SD_ERR_IO, "%s: JPEG write failed: %s", path, ctx.msg));
        free(tmp);
        return st;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * w * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    sd_status st = finish_tmp(f, tmp, path, SD_OK);
    free(tmp);
    return st;
}
