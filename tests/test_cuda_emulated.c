/* The CUDA backend's own kernels (the .cu files of src/cuda), compiled for the host with
 * src/cuda/emulate.h and compared with the CPU's through the harness of
 * tests/backend_compare.h: their index arithmetic, tables and host/device
 * pointer handling run on every machine, GPU or not. Not checked here: the
 * CUDA specifics (many threads per block, shared-memory trees, cuDNN; the
 * convolutions are the CPU's in this table), which need test_backend_cuda
 * on a GPU. */
#include "backend_compare.h"

const sd_backend *sd_emu_backend(void); /* tests/cuda_emulate.cc */

static void test_emulated_cuda_kernels_vs_cpu(void)
{
    const sd_backend *emu = sd_emu_backend();
    const char *miss = sd_backend_missing(emu);
    CHECK_MSG(miss == NULL, "the emulated table lacks %s", miss);
    if (!miss)
        run_all(&sd_backend_cpu, emu);
}

int main(void)
{
    RUN(test_emulated_cuda_kernels_vs_cpu);
    TESTS_DONE();
}
