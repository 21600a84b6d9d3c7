/* The method registry: every adaptation / translation method the trainer
 * (src/train) can run, by name. Not here: the methods (one file each). */
#include <string.h>

#include "segda/train.h"


extern const sd_method sd_method_source_only, sd_method_oracle, sd_method_finetune, sd_method_feature_adv,
    sd_method_adaptseg, sd_method_road, sd_method_advent, sd_method_fda, sd_method_selftrain, sd_method_adabn,
    sd_method_taskgan;

static const sd_method *const methods[] = {
    &sd_method_source_only, &sd_method_oracle, &sd_method_finetune, &sd_method_feature_adv, &sd_method_adaptseg,
    &sd_method_road, &sd_method_advent, &sd_method_fda, &sd_method_selftrain, &sd_method_adabn,
    &sd_method_taskgan,
};

const sd_method *const *sd_method_list(int *n)
{
    *n = (int)(sizeof methods / sizeof methods[0]);
    return methods;
}

const sd_method *sd_method_find(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i]->name, name))
            return methods[i];
    return NULL;
}
