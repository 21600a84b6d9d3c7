/* JSON string escaping shared by every writer of JSON files (run logs,
 * summaries, reports, gap features); numbers stay with their writers, whose
 * formats differ on purpose (log precision vs exact scores). */
#include "segda/core.h"

void sd_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
