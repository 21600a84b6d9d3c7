/* Prototypes of the CPU backend's kernels, sd_cpu_<name> for every
 * SD_KERNEL of src/core/ops.def (which documents what each computes). */
#ifndef SEGDA_CPU_KERNELS_H
#define SEGDA_CPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/backend.h"

#define SD_KERNEL(name, ret, params) ret sd_cpu_##name params;
#include "core/ops.def"
#undef SD_KERNEL

#endif
