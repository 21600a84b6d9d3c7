/* libFuzzer target over the safetensors header parser and the f32
 * conversion of every tensor it accepts. It checks that parsing never
 * crashes or reads out of bounds, that a failure leaves a message and an
 * empty file, and that accepted offsets lie inside the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segda/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sd_st_file f;
    if (sd_st_parse(data, size, "fuzz", &f) != SD_OK) {
        if (f.n || f.tensors || !sd_errmsg()[0])
            abort();
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const sd_st_tensor *t = &f.tensors[i];
        if (t->end < t->begin || f.data_start + t->end > size)
            abort();
        if (t->numel > (1u << 20))
            continue;
        float *dst = malloc((t->numel ? t->numel : 1) * sizeof(float));
        if (dst) {
            sd_st_to_f32(&f, i, dst);
            free(dst);
        }
    }
    sd_st_meta(&f, "model");
    sd_st_free(&f);
    return 0;
}
