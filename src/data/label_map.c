/* mapping.txt's format (labels.h: sd_label_map_parse): "src_id train_id"
 * lines of a folder: dataset. Depends on core only (the fuzz target
 * fuzz/fuzz_mapping.c builds it alone). Not here: finding the file
 * (dataset.c). */
#include <string.h>

#include "segda/labels.h"

sd_status sd_label_map_parse(const char *text, size_t len, const char *name, uint8_t lut[256], bool known[256])
{
    memset(lut, SD_IGNORE, 256);
    memset(known, 0, 256 * sizeof known[0]);
    char line[1024], what[1200];
    size_t i = 0;
    sd_status st = SD_OK;
    for (int ln = 1; i < len && !st; ln++) {
        size_t n = 0;
        for (; i < len && text[i] != '\n'; i++) {
            if (!text[i])
                return sd_fail(SD_ERR_FORMAT, "%s:%d: NUL byte in the line (mapping.txt is text)", name, ln);
            if (n + 1 < sizeof line)
                line[n++] = text[i];
            else if (!memchr(line, '#', n))
                return sd_fail(SD_ERR_FORMAT, "%s:%d: line longer than %zu characters", name, ln, sizeof line - 1);
        }
        i++;
        line[n] = 0;
        char *h = strchr(line, '#');
        if (h)
            *h = 0;
        char *tok[3], *save = NULL;
        int k = 0;
        for (char *t = strtok_r(line, " \t\r", &save); t && k < 3; t = strtok_r(NULL, " \t\r", &save))
            tok[k++] = t;
        if (k == 0)
            continue;
        int a = -1, b = -1;
        if (k != 2)
            return sd_fail(SD_ERR_FORMAT, "%s:%d: expected \"src_id train_id\"", name, ln);
        snprintf(what, sizeof what, "%s:%d: source id", name, ln);
        if (!st)
            st = sd_parse_int(tok[0], 0, 255, what, &a);
        snprintf(what, sizeof what, "%s:%d: train id", name, ln);
        if (!st)
            st = sd_parse_int(tok[1], 0, 255, what, &b);
        if (st)
            return SD_ERR_FORMAT; /* (with the parser's message) */
        if (!(b >= 0 && b < SD_NUM_CLASSES) && b != SD_IGNORE)
            return sd_fail(SD_ERR_FORMAT, "%s:%d: train id %d is neither 0..%d nor 255", name, ln, b,
                           SD_NUM_CLASSES - 1);
        if (known[a])
            return sd_fail(SD_ERR_FORMAT, "%s:%d: source id %d mapped twice", name, ln, a);
        lut[a] = (uint8_t)b;
        known[a] = true;
    }
    return SD_OK;
}
