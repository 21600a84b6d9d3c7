/* libFuzzer target over the image-loading path: PNG and JPEG bytes through
 * sd_image_decode, as palette indices and expanded. It checks only that
 * decoding never crashes, leaks or reports a shape its buffer does not hold;
 * the rest is the sanitizers' job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segda/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int keep = 0; keep < 2; keep++) {
        sd_image img;
        if (sd_image_decode(data, size, "fuzz", &img, keep) == SD_OK) {
            size_t n = (size_t)img.w * img.h * img.c * (img.depth / 8);
            if (img.w <= 0 || img.h <= 0 || img.c < 1 || img.c > 4 || !img.data)
                abort();
            /* touch the first and last byte so ASan sees a short buffer */
            volatile uint8_t s = ((uint8_t *)img.data)[0] ^ ((uint8_t *)img.data)[n - 1];
            (void)s;
        } else if (img.data || !sd_errmsg()[0]) {
            abort(); /* a failure must leave no buffer and say why */
        }
        sd_image_free(&img);
    }
    return 0;
}
