/* Memory behaviour that the benchmarks' peak RSS rests on, pinned by bytes
 * rather than by time: the arena merges what is handed back and lets empty
 * chunks go; a no_grad forward holds little beyond its live activations; a
 * frozen-BN training forward keeps one tensor per fused convolution; a
 * model's gradient buffers cost no memory until written. */
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "segda/model.h"
#include "segda/ops.h"

#define KB ((size_t)1 << 10)

/* Neighbours handed back merge into one block a larger request fits, and a
 * block reaching the chunk's top lowers the top: nothing new is allocated. */
static void arena_merges_blocks(void)
{
    sd_arena a;
    sd_arena_init(&a, 1024 * KB);
    unsigned char *p0 = sd_arena_alloc(&a, 256 * KB), *p1 = sd_arena_alloc(&a, 256 * KB),
                  *p2 = sd_arena_alloc(&a, 256 * KB);
    CHECK(p0 && p1 == p0 + 256 * KB && p2 == p1 + 256 * KB && a.held == 1024 * KB);
    sd_arena_give_back(&a, p0, 256 * KB);
    sd_arena_give_back(&a, p1, 256 * KB);
    CHECK(a.used == 256 * KB);
    unsigned char *q = sd_arena_alloc(&a, 512 * KB); /* needs p0 and p1 merged */
    CHECK_MSG(q == p0 && a.held == 1024 * KB, "merged block %p (expected %p), held %zu", (void *)q, (void *)p0,
              a.held);
    sd_arena_give_back(&a, q, 512 * KB);
    sd_arena_give_back(&a, p2, 256 * KB); /* the top: everything is free again */
    CHECK(a.used == 0);
    q = sd_arena_alloc(&a, 1000 * KB);
    CHECK_MSG(q == p0 && a.held == 1024 * KB, "whole chunk %p (expected %p), held %zu", (void *)q, (void *)p0,
              a.held);
    /* best fit: a small request takes the small hole, not the large top */
    sd_arena_reset(&a);
    p0 = sd_arena_alloc(&a, 64 * KB);
    p1 = sd_arena_alloc(&a, 64 * KB);
    sd_arena_give_back(&a, p0, 64 * KB);
    CHECK(sd_arena_alloc(&a, 32 * KB) == p0);
    sd_arena_free(&a);
    CHECK(a.held == 0);
}

/* An empty chunk goes back to the system before a larger one is made. */
static void arena_releases_empty_chunks(void)
{
    sd_arena a;
    sd_arena_init(&a, 1024 * KB);
    void *p = sd_arena_alloc(&a, 1024 * KB);
    sd_arena_give_back(&a, p, 1024 * KB);
    CHECK(sd_arena_alloc(&a, 3000 * KB) != NULL);
    CHECK_MSG(a.held == 3000 * KB, "held %zu bytes, expected only the new chunk's %zu", a.held, 3000 * KB);
    sd_arena_free(&a);
}

static sd_tensor *image(sd_tape *t, int h, int w)
{
    sd_tensor *x = sd_tensor_new4(t, 1, 3, h, w);
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = (float)(i % 13) * 0.1f - 0.6f;
    return x;
}

/* A no_grad ResNet forward in small chunks: what the arena holds stays
 * near its live peak (the chunks' leftovers and its holes are the rest);
 * before blocks merged, it held twice the peak. */
static void no_grad_forward_holds_its_peak(void)
{
    sd_model_opts o = sd_model_opts_default("deeplabv2-resnet18");
    sd_model *m;
    CHECK_OK(sd_model_create(&o, &m));
    sd_tape t;
    CHECK_OK(sd_tape_init(&t, 1));
    t.store.chunk_size = 256 * KB;
    sd_tape_no_grad_begin(&t);
    sd_model_out out;
    CHECK_OK(sd_model_forward(m, &t, image(&t, 160, 224), false, &out));
    size_t held = t.store.held, peak = t.store.peak;
    CHECK_MSG(held * 4 < peak * 5, "held %zu bytes for a peak of %zu", held, peak);
    sd_tape_free(&t);
    sd_model_free(m);
}

/* With frozen BN, conv + BN + ReLU (and the residual add) are one op whose
 * output is all the tape keeps; trained BN keeps conv, BN and ReLU outputs
 * (and the sum). The same network, input and tape otherwise. */
static void frozen_bn_keeps_one_tensor_per_conv(void)
{
    size_t peak[2];
    for (int frozen = 0; frozen < 2; frozen++) {
        sd_model_opts o = sd_model_opts_default("deeplabv2-resnet18");
        o.bn = frozen ? SD_BN_FROZEN : SD_BN_TRAIN;
        sd_model *m;
        CHECK_OK(sd_model_create(&o, &m));
        sd_tape t;
        CHECK_OK(sd_tape_init(&t, 1));
        sd_model_out out;
        CHECK_OK(sd_model_forward(m, &t, image(&t, 96, 128), true, &out));
        CHECK(out.logits && out.logits->requires_grad);
        peak[frozen] = t.store.peak;
        sd_tape_free(&t);
        sd_model_free(m);
    }
    CHECK_MSG(peak[1] * 2 < peak[0], "frozen BN forward keeps %zu bytes, trained BN %zu", peak[1], peak[0]);
}

static size_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Creating a model writes its weights but not its gradients: they are
 * zero-filled pages that cost nothing until a backward writes them
 * (inference never does). Were they written, the growth would be twice. */
static void gradient_buffers_cost_nothing_until_written(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) {
        printf("SKIP gradient_buffers_cost_nothing_until_written: no /proc/self/statm\n");
        return;
    }
    fclose(f);
    sd_model_opts o = sd_model_opts_default("deeplabv2-resnet18");
    size_t before = rss_bytes();
    sd_model *m;
    CHECK_OK(sd_model_create(&o, &m));
    size_t grown = rss_bytes() - before, data = sd_params_count(sd_model_params(m), false) * sizeof(float);
    CHECK_MSG(grown * 2 < data * 3, "creating the model grew RSS by %zu bytes for %zu bytes of weights", grown,
              data);
    sd_model_free(m);
}

int main(void)
{
    RUN(arena_merges_blocks);
    RUN(arena_releases_empty_chunks);
    RUN(no_grad_forward_holds_its_peak);
    RUN(frozen_bn_keeps_one_tensor_per_conv);
    RUN(gradient_buffers_cost_nothing_until_written);
    TESTS_DONE();
}
