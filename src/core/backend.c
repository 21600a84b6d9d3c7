/* The op registry's names, device -> backend lookup, the support check every
 * op makes, the completeness check of a table, and what segda --version and
 * segda devices report. The tables themselves live with their kernels
 * (src/cpu/backend_cpu.c, src/cuda/backend_cuda.c); this is the one file that
 * sees SEGDA_HAVE_CUDA. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend.h"

#ifdef SEGDA_HAVE_CUDA
/* src/cuda/backend_cuda.c (declared here: its header includes CUDA's) */
bool sd_cuda_present(void);
const char *sd_cuda_why(void);
size_t sd_cuda_describe(char *buf, size_t cap);
void sd_cuda_set_fast(bool on);
int sd_cuda_count(void);
bool sd_cuda_select(int index);
#endif

static const sd_backend *overridden[SD_DEVICE_COUNT];
static sd_device selected = SD_DEVICE_CPU;
static int selected_index;

void sd_backend_override(sd_device dev, const sd_backend *b)
{
    if (dev >= 0 && dev < SD_DEVICE_COUNT)
        overridden[dev] = b;
}

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

const sd_backend *sd_backend_compiled(sd_device dev)
{
    if (dev >= 0 && dev < SD_DEVICE_COUNT && overridden[dev])
        return overridden[dev];
    switch (dev) {
    case SD_DEVICE_CPU:
        return &sd_backend_cpu;
#ifdef SEGDA_HAVE_CUDA
    case SD_DEVICE_CUDA:
        return &sd_backend_cuda;
#endif
    default:
        return NULL;
    }
}

const sd_backend *sd_backend_for(sd_device dev)
{
    return sd_device_unavailable(dev)[0] ? NULL : sd_backend_compiled(dev);
}

const char *sd_device_unavailable(sd_device dev)
{
    static const char *no_backend[SD_DEVICE_COUNT] = {"this build has no cpu backend",
                                                      "this build has no cuda backend"};
    if (dev < 0 || dev >= SD_DEVICE_COUNT)
        return "no such device";
    if (!sd_backend_compiled(dev))
        return no_backend[dev];
#ifdef SEGDA_HAVE_CUDA
    if (dev == SD_DEVICE_CUDA && !overridden[dev] && !sd_cuda_present())
        return sd_cuda_why();
#endif
    return "";
}

sd_status sd_device_parse(const char *s, sd_device *dev, int *index)
{
    *dev = SD_DEVICE_CPU;
    *index = 0;
    if (s && !strcmp(s, "cpu"))
        return SD_OK;
    if (s && !strncmp(s, "cuda", 4) && (!s[4] || s[4] == ':')) {
        *dev = SD_DEVICE_CUDA;
        if (!s[4])
            return SD_OK;
        char *end;
        long k = s[5] >= '0' && s[5] <= '9' ? strtol(s + 5, &end, 10) : -1;
        if (k >= 0 && k < 1024 && !*end) {
            *index = (int)k;
            return SD_OK;
        }
    }
    return sd_fail(SD_ERR_ARG, "device '%s': expected cpu, cuda or cuda:N (N = 0, 1, ... as segda devices "
                   "lists them)", s ? s : "");
}

/* The CUDA devices this process sees (1 for an overriding table: tests). */
static int cuda_count(void)
{
    if (overridden[SD_DEVICE_CUDA])
        return 1;
#ifdef SEGDA_HAVE_CUDA
    return sd_cuda_count();
#else
    return 0;
#endif
}

sd_status sd_device_select(sd_device dev, int index)
{
    char name[32];
    snprintf(name, sizeof name, dev == SD_DEVICE_CUDA ? "%s:%d" : "%s", sd_device_name(dev), index);
    if (dev < 0 || dev >= SD_DEVICE_COUNT)
        return sd_fail(SD_ERR_ARG, "device %d: no such device", (int)dev);
    if (!sd_backend_compiled(dev))
        return sd_fail(SD_ERR_UNSUPPORTED, "device %s: this build has no %s backend (make builds it when nvcc and "
                       "cuDNN are found; segda --version lists the backends)", name, sd_device_name(dev));
    if (dev == SD_DEVICE_CUDA) {
        int n = cuda_count();
        if (n == 0) {
            /* the probe's "no CUDA device (WHY)": WHY alone */
            const char *why = sd_device_unavailable(dev), *p = strchr(why, '(');
            int len = p ? (int)strlen(p + 1) - 1 : (int)strlen(why);
            return sd_fail(SD_ERR_UNSUPPORTED, "device %s: no CUDA device: segda devices lists none (%.*s)", name,
                           len > 0 ? len : 0, p ? p + 1 : why);
        }
        if (index >= n)
            return sd_fail(SD_ERR_UNSUPPORTED, "device %s: segda devices lists %d CUDA device%s (cuda:0%s)", name,
                           n, n == 1 ? "" : "s", n == 1 ? "" : " .. cuda:N-1");
#ifdef SEGDA_HAVE_CUDA
        if (!overridden[dev] && !sd_cuda_select(index))
            return sd_fail(SD_ERR_UNSUPPORTED, "device %s: cannot make it current (%s)", name, sd_errmsg());
#endif
    }
    selected = dev;
    selected_index = dev == SD_DEVICE_CUDA ? index : 0;
    return SD_OK;
}

sd_device sd_device_selected(void) { return selected; }
int sd_device_count(sd_device dev)
{
    return dev == SD_DEVICE_CPU ? 1 : dev == SD_DEVICE_CUDA && sd_backend_compiled(dev) ? cuda_count() : 0;
}
int sd_device_selected_index(void) { return selected_index; }

const char *sd_backends_built(void)
{
#ifdef SEGDA_HAVE_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}

size_t sd_devices_describe(char *buf, size_t cap)
{
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *c = strchr(line, ':');
            if (!strncmp(line, "model name", 10) && c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        }
        fclose(f);
    }
    if (!cap)
        return 0;
    size_t k = (size_t)snprintf(buf, cap, "cpu: %s, %ld threads\n", model, sysconf(_SC_NPROCESSORS_ONLN));
    if (k >= cap)
        return cap - 1;
#ifdef SEGDA_HAVE_CUDA
    k += sd_cuda_describe(buf + k, cap - k);
#else
    k += (size_t)snprintf(buf + k, cap - k, "cuda: this build has no cuda backend\n");
#endif
    return k < cap ? k : cap - 1;
}

void sd_set_nondeterministic_convs(bool on)
{
#ifdef SEGDA_HAVE_CUDA
    sd_cuda_set_fast(on);
#else
    (void)on;
#endif
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
        sd_tape_fail(t, SD_ERR_UNSUPPORTED, "%s: input %s on %s: %s", op, sd_shape_str(x),
                     sd_device_name(x->device), sd_device_unavailable(x->device));
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
