/* The CUDA backend's own kernels (the .cu files of src/cuda), compiled for the host with
 * src/cuda/emulate.h and compared with the CPU's through the harness of
 * tests/backend_compare.h: their index arithmetic, tables and host/device
 * pointer handling run on every machine, GPU or not. Then the emulated
 * table stands in for the CUDA backend (sd_backend_override) for whole
 * training runs with --device cuda: the trainer's placement of parameters,
 * optimiser state, inputs and staging, its checkpoints (written from
 * "device" tensors, loaded and resumed on the CPU) against CPU runs. Not
 * checked here: the CUDA specifics (many threads per block, shared-memory
 * trees, streams, pinned memory, cuDNN; the convolutions are the CPU's in
 * this table), which need test_backend_cuda on a GPU; and host code that
 * reads device pointers directly (emulated device memory is host memory). */
#include <math.h>
#include <sys/stat.h>

#include "backend_compare.h"
#include "segda/checkpoint.h"
#include "segda/dist.h"
#include "segda/model.h"
#include "segda/train.h"
#include "util.h"

const sd_backend *sd_emu_backend(void); /* tests/cuda_emulate.cc */

static void test_emulated_cuda_kernels_vs_cpu(void)
{
    const sd_backend *emu = sd_emu_backend();
    const char *miss = sd_backend_missing(emu);
    CHECK_MSG(miss == NULL, "the emulated table lacks %s", miss);
    if (!miss)
        run_all(&sd_backend_cpu, emu);
}

static char bench[256], src_spec[300], tgt_spec[300];

/* The emulated table with counters on a few kernels: proof that a --device
 * cuda run computed through it (the CPU table never counts). */
static sd_backend counted;
static long n_conv, n_step, n_async, n_host_alloc;
static bool count_conv(const sd_conv_geom *g, const float *x, const float *w, const float *b, float *y)
{
    n_conv++;
    return sd_emu_backend()->conv2d_fwd(g, x, w, b, y);
}
static void count_sgd(size_t n, float lr, float wd, float m, float *w, const float *g, float *buf)
{
    n_step++;
    sd_emu_backend()->sgd_step(n, lr, wd, m, w, g, buf);
}
static void count_async(int slot, void *dst, const void *host, size_t bytes)
{
    n_async++;
    sd_emu_backend()->copy_from_host_async(slot, dst, host, bytes);
}
static void *count_host_alloc(size_t bytes)
{
    __atomic_add_fetch(&n_host_alloc, 1, __ATOMIC_RELAXED);   /* (loader threads) */
    return sd_emu_backend()->host_alloc(bytes);
}

/* Trains into bench/NAME; extra: "key=value" settings. */
static sd_status train(const char *name, const char *method, const char *device, const char *iters,
                       const char *const *extra)
{
    char out[400];
    snprintf(out, sizeof out, "%s/%s", bench, name);
    sd_config c;
    sd_config_init(&c);
    const char *kv[][2] = {{"method", method}, {"source", src_spec}, {"target", tgt_spec}, {"out", out},
                           {"model", "deeplab-mini"}, {"threads", "1"}, {"workers", "1"}, {"log-every", "1000"},
                           {"crop", "48x32"}, {"batch", "2,1"}, {"iters", iters}, {"device", device}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        sd_config_set(&c, kv[i][0], kv[i][1], "test", true);
    for (int i = 0; extra && extra[i]; i++) {
        char k[64];
        const char *eq = strchr(extra[i], '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - extra[i]), extra[i]);
        sd_config_set(&c, k, eq + 1, "--test", true);
    }
    sd_status st = sd_train_run(&c);
    if (st)
        fprintf(stderr, "  train %s on %s: %s\n", name, device, sd_errmsg());
    sd_config_free(&c);
    return st;
}

/* test_ckpt_diff of two runs' last.safetensors: every f32 tensor (weights,
 * BN statistics, modules, optimiser state). */
static double ckpt_diff(const char *a, const char *b)
{
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/%s/last.safetensors", bench, a);
    snprintf(pb, sizeof pb, "%s/%s/last.safetensors", bench, b);
    return test_ckpt_diff(pa, pb, false);
}

/* Measured: 0, bit for bit (the emulated kernels sum in the CPU's order at
 * these sizes, and the convolutions are the CPU's). The tolerance leaves room
 * for kernels that reorder sums; one more step changes far more (checked). */
#define EMU_TOL 1e-4

/* 2 iterations of source-only (SGD, BN frozen and trained), adaptseg (two
 * discriminators with Adam: modules and their optimiser state on the
 * device), ROAD and the mean teacher on the emulated CUDA backend equal the
 * CPU's. */
static void test_train_on_emulated_cuda_equals_cpu(void)
{
    static const char *const bn[] = {"freeze-bn=true", NULL};
    CHECK(train("so-cpu", "source-only", "cpu", "2", bn) == SD_OK);
    CHECK_MSG(n_conv == 0 && n_step == 0 && n_async == 0 && n_host_alloc == 0,
              "a cpu run used the cuda table (%ld convolutions, %ld steps, %ld copies, %ld pinned buffers)", n_conv,
              n_step, n_async, n_host_alloc);
    CHECK(train("so-cuda", "source-only", "cuda", "2", bn) == SD_OK);
    /* every convolution, SGD step, staged input and loader batch on the device's table */
    printf("  the cuda run: %ld convolutions, %ld SGD group steps, %ld staged input copies, %ld pinned batch "
           "buffers\n", n_conv, n_step, n_async, n_host_alloc);
    CHECK(n_conv > 0 && n_step > 0 && n_async == 2 && n_host_alloc > 0);
    double d = ckpt_diff("so-cuda", "so-cpu");
    printf("  source-only, 2 iterations, emulated cuda vs cpu: max relative difference %.3g (tolerance %g)\n", d,
           EMU_TOL);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);
    CHECK(train("so-cpu3", "source-only", "cpu", "3", bn) == SD_OK);
    double far = ckpt_diff("so-cpu3", "so-cpu");
    CHECK_MSG(far > 10 * EMU_TOL, "one more iteration changes the weights by only %g", far);

    CHECK(train("as-cpu", "adaptseg", "cpu", "2", bn) == SD_OK);
    CHECK(train("as-cuda", "adaptseg", "cuda", "2", bn) == SD_OK);
    d = ckpt_diff("as-cuda", "as-cpu");
    printf("  adaptseg, 2 iterations, emulated cuda vs cpu: max relative difference %.3g\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);

    /* methods with host-side steps and a teacher copied from the student:
     * ROAD (region masks filled on the host), the mean teacher (softmax to
     * the host for its pseudo-labels, EMA by the device's kernels) */
    static const char *const road[] = {"freeze-bn=true", "distill=target", NULL};
    CHECK(train("road-cpu", "road", "cpu", "2", road) == SD_OK);
    CHECK(train("road-cuda", "road", "cuda", "2", road) == SD_OK);
    d = ckpt_diff("road-cuda", "road-cpu");
    printf("  road, 2 iterations: max relative difference %.3g\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);
    static const char *const mt[] = {"freeze-bn=true", "mode=mean-teacher", "ema=0.5", NULL};
    CHECK(train("mt-cpu", "selftrain", "cpu", "2", mt) == SD_OK);
    CHECK(train("mt-cuda", "selftrain", "cuda", "2", mt) == SD_OK);
    d = ckpt_diff("mt-cuda", "mt-cpu");
    printf("  selftrain mean teacher, 2 iterations: max relative difference %.3g (teacher included)\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);

    /* BN trained: batch statistics and running buffers on the device */
    CHECK(train("bn-cpu", "source-only", "cpu", "2", NULL) == SD_OK);
    CHECK(train("bn-cuda", "source-only", "cuda", "2", NULL) == SD_OK);
    d = ckpt_diff("bn-cuda", "bn-cpu");
    printf("  source-only with BN trained, 2 iterations: max relative difference %.3g\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);
}

/* A checkpoint written from device tensors is the same file format: it
 * loads into a CPU model and a run stopped on the device resumes on the CPU
 * (and the other way) to the uninterrupted run's weights. */
static void test_checkpoint_device_independent(void)
{
    static const char *const stop[] = {"freeze-bn=true", "stop-after=1", NULL};
    static const char *const res_cpu[] = {"freeze-bn=true", "resume=true", NULL};
    CHECK(train("mv", "adaptseg", "cuda", "2", stop) == SD_OK);
    CHECK(train("mv", "adaptseg", "cpu", "2", res_cpu) == SD_OK);
    double d = ckpt_diff("mv", "as-cpu");
    printf("  adaptseg stopped at 1 on emulated cuda, resumed on cpu: max relative difference %.3g\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);
    CHECK(train("mv2", "adaptseg", "cpu", "2", stop) == SD_OK);
    static const char *const res_cuda[] = {"freeze-bn=true", "resume=true", NULL};
    CHECK(train("mv2", "adaptseg", "cuda", "2", res_cuda) == SD_OK);
    d = ckpt_diff("mv2", "as-cpu");
    printf("  stopped on cpu, resumed on emulated cuda: max relative difference %.3g\n", d);
    CHECK_MSG(d >= 0 && d <= EMU_TOL, "difference %g", d);

    /* the device run's checkpoint in a CPU model */
    char p[512];
    snprintf(p, sizeof p, "%s/as-cuda/last.safetensors", bench);
    sd_model_opts mo = sd_model_opts_default("deeplab-mini");
    sd_model *m = NULL;
    sd_ckpt c;
    CHECK(sd_model_create(&mo, &m) == SD_OK);
    CHECK(sd_ckpt_open(p, &c) == SD_OK);
    sd_ckpt_report rep;
    CHECK(m && sd_ckpt_load_weights(&c, sd_model_params(m), "deeplab-mini", false, &rep) == SD_OK);
    CHECK(rep.loaded > 0 && rep.missing == 0 && rep.mismatched == 0);
    CHECK(sd_model_params(m)->device == SD_DEVICE_CPU);
    sd_ckpt_close(&c);
    if (m)
        sd_model_free(m);
}

/* --device values: the accepted and refused spellings; cuda:1 with one
 * (emulated) device. */
static void test_device_errors(void)
{
    sd_device dev;
    int k;
    CHECK(sd_device_parse("cpu", &dev, &k) == SD_OK && dev == SD_DEVICE_CPU && k == 0);
    CHECK(sd_device_parse("cuda", &dev, &k) == SD_OK && dev == SD_DEVICE_CUDA && k == 0);
    CHECK(sd_device_parse("cuda:0", &dev, &k) == SD_OK && dev == SD_DEVICE_CUDA && k == 0);
    static const char *const bad[] = {"gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cudax", "CPU", "", NULL};
    for (int i = 0; bad[i]; i++) {
        CHECK_MSG(sd_device_parse(bad[i], &dev, &k) == SD_ERR_ARG, "'%s' accepted", bad[i]);
        CHECK_MSG(strstr(sd_errmsg(), "expected cpu, cuda or cuda:N"), "'%s': %s", bad[i], sd_errmsg());
    }
    CHECK(sd_device_parse("cuda:1", &dev, &k) == SD_OK && dev == SD_DEVICE_CUDA && k == 1);
    CHECK(sd_device_select(dev, k) == SD_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(sd_errmsg(), "lists 1 CUDA device"), "message: %s", sd_errmsg());
    CHECK(sd_device_select(SD_DEVICE_CUDA, 0) == SD_OK && sd_device_selected() == SD_DEVICE_CUDA);
    CHECK(sd_device_select(SD_DEVICE_CPU, 0) == SD_OK && sd_device_selected() == SD_DEVICE_CPU);
}

int main(void)
{
    RUN(test_emulated_cuda_kernels_vs_cpu);
    counted = *sd_emu_backend();
    counted.conv2d_fwd = count_conv;
    counted.sgd_step = count_sgd;
    counted.copy_from_host_async = count_async;
    counted.host_alloc = count_host_alloc;
    sd_backend_override(SD_DEVICE_CUDA, &counted);
    test_tiny_bench("cuda-emu", 4, 2, bench, src_spec, tgt_spec);
    RUN(test_train_on_emulated_cuda_equals_cpu);
    RUN(test_checkpoint_device_independent);
    RUN(test_device_errors);
    sd_backend_override(SD_DEVICE_CUDA, NULL);
    if (!check_total_failed_)
        test_sh("rm -rf %s", bench);
    TESTS_DONE();
}
