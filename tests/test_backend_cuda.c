/* The CUDA backend against the CPU one (tests/backend_compare.h: every
 * kernel of src/core/ops.def on random shapes). Without a GPU the comparison
 * prints SKIP; the harness itself always runs once with the CPU table on
 * both sides, and the table's completeness and the no-device message are
 * always checked. */
#include "backend_compare.h"

/* the harness itself, with the CPU on both sides: every comparison must hold */
static void test_harness_cpu_vs_cpu(void)
{
    run_all(&sd_backend_cpu, &sd_backend_cpu);
}

static void test_cuda_vs_cpu(void)
{
    run_all(&sd_backend_cpu, sd_backend_for(SD_DEVICE_CUDA));
}

static void test_cuda_table_complete(void)
{
    const sd_backend *b = sd_backend_compiled(SD_DEVICE_CUDA);
    if (!strstr(sd_backends_built(), "cuda")) {
        CHECK(b == NULL);
        return;
    }
    CHECK(b != NULL);
    const char *miss = b ? sd_backend_missing(b) : "table";
    CHECK_MSG(miss == NULL, "the CUDA table lacks %s", miss);
}

/* without a device a CUDA tape fails at once, saying why */
static void test_cuda_tape_without_device(void)
{
    sd_tape t;
    sd_status st = sd_tape_init_on(&t, 1, SD_DEVICE_CUDA);
    if (st == SD_OK) {
        CHECK(sd_backend_for(SD_DEVICE_CUDA) != NULL);
        sd_tape_free(&t);
        return;
    }
    CHECK(st == SD_ERR_UNSUPPORTED);
    if (strstr(sd_backends_built(), "cuda"))
        CHECK_ERR_HAS("no CUDA device");
    else
        CHECK_ERR_HAS("this build has no cuda backend");
    CHECK(sd_backend_for(SD_DEVICE_CUDA) == NULL);
    char buf[1024];
    sd_devices_describe(buf, sizeof buf);
    CHECK(strstr(buf, "cpu: ") == buf);
    CHECK_MSG(strstr(buf, "cuda: ") != NULL, "devices: %s", buf);
}

int main(void)
{
    RUN(test_cuda_table_complete);
    RUN(test_cuda_tape_without_device);
    RUN(test_harness_cpu_vs_cpu);
    if (sd_backend_for(SD_DEVICE_CUDA))
        RUN(test_cuda_vs_cpu);
    else
        printf("SKIP test_cuda_vs_cpu: no GPU (%s)\n", sd_device_unavailable(SD_DEVICE_CUDA));
    TESTS_DONE();
}
