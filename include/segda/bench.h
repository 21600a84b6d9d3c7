/* Speed benchmarks of whole training and inference steps (`segda bench`,
 * `make bench`): the published DeepLab-v2 / AdaptSegNet workloads at batch 1
 * on random inputs from a fixed seed, the OpenBLAS sgemm peak they are
 * compared with, and the loader's batch rate. Printing and the PyTorch side
 * (bench/bench_torch.py) are not here.
 *
 * Workloads (each step is what one training iteration computes):
 *   vgg321     DeepLab-v2 VGG-16 at 321x321: forward, cross-entropy (ignore
 *              255) on logits upsampled to the input, backward, SGD step
 *   r101       DeepLab-v2 ResNet-101 at 512x256, frozen BN, same step
 *   adaptseg   one multi-level AdaptSegNet iteration at 512x256 (ResNet-101,
 *              frozen BN, aux weight 0.1): source CE on both outputs, target
 *              adversarial loss through both frozen discriminators, one
 *              backward, then both discriminators on detached outputs; SGD
 *              for the network, Adam for the discriminators
 *   r101-infer ResNet-101 inference on a 1024x512 image as `segda predict`
 *              does it (sd_infer_probs: no_grad forward, bilinear upsample
 *              to full size, softmax; then argmax)
 *   mini       the demo's deeplab-mini train step (BN trained) at its 256x128
 *   loader     batches/s of the threaded loader (2 workers, batch 1) at
 *              321x321 crops and at mini's 256x128, on a generated benchmark
 *              or a given dataset
 *
 * GFLOPs come from sd_model_cost (2 x multiply-adds of the convolutions):
 * a train step counts 3 x forward (forward, input and weight gradients),
 * inference 1 x forward; adaptseg adds its discriminators' convolutions
 * (3 x forward for each of their six passes). */
#ifndef SEGDA_BENCH_H
#define SEGDA_BENCH_H

#include <stdint.h>

#include "segda/core.h"
#include "segda/tensor.h"

typedef enum sd_bench_workload {
    SD_BENCH_VGG321 = 0,
    SD_BENCH_R101,
    SD_BENCH_ADAPTSEG,
    SD_BENCH_R101_INFER,
    SD_BENCH_R101_INFER_2K, /* the same at Cityscapes' full 2048x1024: the memory check */
    SD_BENCH_MINI,
    SD_BENCH_LOADER,
    SD_BENCH_COUNT
} sd_bench_workload;

const char *sd_bench_name(sd_bench_workload w);   /* "vgg321", ...; "?" if out of range */
int sd_bench_parse(const char *name);              /* -1 if unknown */

typedef struct sd_bench_opts {
    sd_dtype precision;   /* sets sd_tape.compute: F32 or BF16 */
    int threads;          /* >= 1: OpenMP and the sgemm peak */
    int warmup;           /* untimed steps first, >= 0 */
    int iters;            /* timed steps, >= 1 */
    uint64_t seed;        /* weights, inputs, labels */
    const char *data;     /* loader: a dataset spec (data.h); NULL generates one in a temp dir */
} sd_bench_opts;
/* precision F32, 2 threads, warmup 1, iters 3, seed 1, data NULL */
sd_bench_opts sd_bench_opts_default(void);

typedef struct sd_bench_result {
    char workload[16];
    char model[32];           /* "" for loader */
    int w, h, batch;          /* input size */
    int iters;                /* timed steps */
    double median_ms, min_ms, max_ms;
    double gflop;             /* per step (see the top of this file); 0 for loader */
    double gflops;            /* gflop / median, GFLOP/s */
    double peak_rss_mb;       /* of this workload alone: VmHWM of its own process */
    double arena_mb;          /* of which the step arena's chunks (activations, gradients, scratch) */
    double arena_peak_mb;     /* the most of it live at once (what a perfect allocator would hold) */
    double loss;              /* the last step's total loss (sanity; 0 for inference / loader) */
    /* loader only: batches/s at 321x321 crops and at mini's 256x128 */
    double loader_bps_321, loader_bps_mini;
} sd_bench_result;

/* Runs workload w in this process (threads, seed and precision from o) and
 * sets the process's thread count. Its peak RSS is left 0: that needs a
 * process of its own, which sd_bench_run_isolated gives (the one callers
 * usually want; libgomp's thread pool does not survive a fork, so a process
 * that forks workloads should not run them itself first). */
sd_status sd_bench_run(sd_bench_workload w, const sd_bench_opts *o, sd_bench_result *r);
/* The same in a forked child, so that peak_rss_mb is that workload's alone
 * and one workload's arena does not inflate the next; the child's message
 * comes back on failure. */
sd_status sd_bench_run_isolated(sd_bench_workload w, const sd_bench_opts *o, sd_bench_result *r);

/* OpenBLAS sgemm GFLOP/s on n x n x n (n >= 64) with `threads` BLAS
 * threads: the median of `iters` after one warm-up, in a forked child. */
sd_status sd_bench_sgemm_peak(int threads, int n, int iters, double *gflops);

#endif
