/* libFuzzer target over the configuration parser (sd_config_parse, the
 * reader of --config files and of checkpoints' stored configurations). It
 * checks that parsing never crashes or reads out of bounds, that a failure
 * leaves a message naming the input, and that every accepted key is
 * non-empty, has no '=' or '#', and is found again with its origin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segda/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_config c;
    sd_config_init(&c);
    if (sd_config_parse(&c, (const char *)data, size, "fuzz.cfg") != SD_OK) {
        if (!strstr(sd_errmsg(), "fuzz.cfg"))
            abort();
    } else {
        for (int i = 0; i < c.n; i++) {
            const char *k = c.e[i].key;
            if (!*k || strchr(k, '=') || strchr(k, '#') || sd_config_get(&c, k) != c.e[i].value ||
                strncmp(sd_config_origin(&c, k), "fuzz.cfg:", 9))
                abort();
            sd_config_parse_bool(c.e[i].value);
            int w, h;
            sd_parse_size(c.e[i].value, &w, &h);
        }
    }
    sd_config_free(&c);
    return 0;
}
