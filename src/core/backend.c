/* The op registry's names, device -> backend lookup, the support check every
 * op makes, and the completeness check of a table. The tables themselves live
 * with their kernels (src/cpu/backend_cpu.c). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/backend.h"

const char *const sd_op_names[SD_OP_COUNT] = {
#define SD_OP(name) #name,
#include "core/ops.def"
#undef SD_OP
};

sd_op sd_op_lookup(const char *name)
{
    for (int i = 0; i < SD_OP_COUNT; i++)
        if (!strcmp(sd_op_names[i], name))
            return (sd_op)i;
    return SD_OP_COUNT;
}

const char *sd_dtype_name(sd_dtype d)
{
    switch (d) {
    case SD_DTYPE_F32: return "f32";
    case SD_DTYPE_BF16: return "bf16";
    case SD_DTYPE_F16: return "f16";
    default: return "?";
    }
}

const char *sd_device_name(sd_device d)
{
    switch (d) {
    case SD_DEVICE_CPU: return "cpu";
    case SD_DEVICE_CUDA: return "cuda";
    default: return "?";
    }
}

const sd_backend *sd_backend_for(sd_device dev)
{
    switch (dev) {
    case SD_DEVICE_CPU:
        return &sd_backend_cpu;
    default:
        return NULL;
    }
}

const sd_backend *sd_backend_checkn(sd_tape *t, const char *op, int n_in, const sd_tensor *const *in)
{
    sd_op id = sd_op_lookup(op);
    if (id == SD_OP_COUNT) {
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "%s: not an op of the registry (src/core/ops.def)", op);
        return NULL;
    }
    const sd_tensor *x = in[0];
    for (int i = 1; i < n_in; i++)
        if (in[i] && in[i]->device != x->device) {
            sd_tape_fail(t, SD_ERR_ARG, "%s: input 0 %s on %s, input %d %s on %s: expected one device", op,
                         sd_shape_str(x), sd_device_name(x->device), i, sd_shape_str(in[i]),
                         sd_device_name(in[i]->device));
            return NULL;
        }
    const sd_backend *be = sd_backend_for(x->device);
    if (!be) {
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "%s: input %s on %s: this build has no %s backend", op,
                     sd_shape_str(x), sd_device_name(x->device), sd_device_name(x->device));
        return NULL;
    }
    if (!be->supports(id, n_in, in)) {
        char what[256];
        size_t k = 0;
        for (int i = 0; i < n_in && k < sizeof what; i++)
            if (in[i])
                k += (size_t)snprintf(what + k, sizeof what - k, "%s%s %s", k ? ", " : "", sd_shape_str(in[i]),
                                      sd_dtype_name(in[i]->dtype));
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "%s: inputs %s: the %s backend has no kernel for them", op, what,
                     be->name);
        return NULL;
    }
    return be;
}

const char *sd_backend_missing(const sd_backend *b)
{
    if (!b->supports)
        return "supports";
#define SD_KERNEL(name, ret, params) \
    if (!b->name)                    \
        return #name;
#include "core/ops.def"
#undef SD_KERNEL
    return NULL;
}
