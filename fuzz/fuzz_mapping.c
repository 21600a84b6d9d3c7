/* libFuzzer target over mapping.txt's parser (sd_label_map_parse, folder:
 * datasets). It checks that parsing never crashes or reads out of bounds,
 * that a failure leaves a message naming the file, and that an accepted map
 * sends every known id to a trainId or 255 and every unknown id to 255. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segda/labels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t lut[256];
    bool known[256];
    if (sd_label_map_parse((const char *)data, size, "mapping.txt", lut, known) != SD_OK) {
        if (!strstr(sd_errmsg(), "mapping.txt:"))
            abort();
        return 0;
    }
    for (int i = 0; i < 256; i++)
        if ((lut[i] >= SD_NUM_CLASSES && lut[i] != SD_IGNORE) || (!known[i] && lut[i] != SD_IGNORE))
            abort();
    return 0;
}
