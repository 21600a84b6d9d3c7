/* Models without PyTorch: parameter names and shapes of the published
 * networks, output shapes by hand-derived arithmetic, FLOP counting against an
 * independent tally, discriminators, frozen BN, model checkpoints (metadata,
 * inference of aux/classes, strict failures naming tensors), inference and
 * `segda predict` outputs (sizes, palette, label ids). Logit and gradient
 * parity with PyTorch is tests/py/test_models_torch.py. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "nn/nn.h"
#include "segda/checkpoint.h"
#include "segda/image.h"
#include "segda/infer.h"
#include "segda/labels.h"
#include "segda/model.h"
#include "segda/ops.h"
#include "segda/optim.h"

static char tmpdir[256];

static bool has_shape(sd_model *m, const char *name, int ndim, const int *shape)
{
    sd_tensor *x = sd_params_find(sd_model_params(m), name);
    if (!x) {
        fprintf(stderr, "  no tensor %s\n", name);
        return false;
    }
    if (x->ndim != ndim)
        return false;
    for (int d = 0; d < ndim; d++)
        if (x->shape[d] != shape[d]) {
            fprintf(stderr, "  %s has %s\n", name, sd_shape_str(x));
            return false;
        }
    return true;
}

/* init false: every tensor zero, for tests of names and shapes only (the
 * initialisation of a big model takes seconds) */
static sd_model *build(const char *name, int classes, bool aux, bool init)
{
    sd_model_opts o = sd_model_opts_default(name);
    o.classes = classes;
    o.aux = aux;
    sd_model *m = NULL;
    if (init)
        CHECK_OK(sd_model_create(&o, &m));
    else
        CHECK_OK(nn_model_create_zeroed(&o, &m));
    return m;
}

static sd_model *make(const char *name, int classes, bool aux) { return build(name, classes, aux, true); }
static sd_model *make_zeroed(const char *name, int classes, bool aux) { return build(name, classes, aux, false); }

/* The parallel initialisation must give sd_rng_normal's stream exactly:
 * every backbone conv is std * sd_rng_normal() in declaration order. */
void TEST_init_matches_rng(void);
void TEST_init_matches_rng(void)
{
    sd_model *m = make("deeplab-mini", 19, false);
    if (!m)
        return;
    sd_model_init_weights(m, 7);
    sd_rng r;
    sd_rng_seed(&r, 7);
    sd_params *p = sd_model_params(m);
    int compared = 0, bad = 0;
    for (int i = 0; i < p->n; i++) {
        sd_tensor *x = p->tensors[i];
        if (x->ndim != 4)
            continue;
        float std = sqrtf(2.0f / (float)(x->shape[0] * x->shape[2] * x->shape[3]));
        bool head = !strncmp(x->name, "layer5.", 7); /* re-drawn from N(0, 0.01) afterwards */
        for (size_t j = 0; j < x->numel; j++) {
            float want = std * sd_rng_normal(&r);
            if (!head && F32(x->data)[j] != want && bad++ < 3)
                fprintf(stderr, "  %s[%zu] = %.9g, sd_rng_normal gives %.9g\n", x->name, j, F32(x->data)[j], want);
        }
        compared += !head && x->numel > 4096; /* spans the fill's chunks */
    }
    CHECK(bad == 0);
    CHECK(compared >= 4);
    sd_model_free(m);
}

void TEST_published_names(void);
void TEST_published_names(void)
{
    sd_model *m = make_zeroed("deeplabv2-resnet50", 19, true);
    if (!m)
        return;
    /* Caffe style: the stride sits on layer2.0.conv1 (1x1), and dilated
     * stages get projection shortcuts */
    CHECK(has_shape(m, "conv1.weight", 4, (int[]){64, 3, 7, 7}));
    CHECK(has_shape(m, "bn1.running_var", 1, (int[]){64}));
    CHECK(has_shape(m, "layer1.0.downsample.0.weight", 4, (int[]){256, 64, 1, 1}));
    CHECK(has_shape(m, "layer1.0.downsample.1.running_mean", 1, (int[]){256}));
    CHECK(has_shape(m, "layer2.0.conv1.weight", 4, (int[]){128, 256, 1, 1}));
    CHECK(has_shape(m, "layer4.2.conv3.weight", 4, (int[]){2048, 512, 1, 1}));
    /* multi-level as AdaptSegNet's DeeplabMulti: layer6 on layer4, layer5 on layer3 */
    CHECK(has_shape(m, "layer6.conv2d_list.3.weight", 4, (int[]){19, 2048, 3, 3}));
    CHECK(has_shape(m, "layer6.conv2d_list.3.bias", 1, (int[]){19}));
    CHECK(has_shape(m, "layer5.conv2d_list.0.weight", 4, (int[]){19, 1024, 3, 3}));
    CHECK(sd_params_find(sd_model_params(m), "layer1.1.downsample.0.weight") == NULL);
    /* groups: frozen BN affine, classifier x10 */
    sd_params *p = sd_model_params(m);
    int gn = sd_model_group(m, "norm"), gc = sd_model_group(m, "classifier");
    CHECK(gn >= 0 && p->groups[gn].frozen);
    CHECK(gc >= 0 && p->groups[gc].lr_mult == 10.0f);
    CHECK(!sd_params_find(p, "bn1.weight")->requires_grad);
    CHECK(sd_params_find(p, "conv1.weight")->requires_grad);
    CHECK(sd_model_channels(m, "layer3") == 1024 && sd_model_channels(m, "layer4") == 2048);
    sd_model_free(m);

    m = make_zeroed("deeplabv2-vgg16", 16, false);
    CHECK(has_shape(m, "features.0.weight", 4, (int[]){64, 3, 3, 3}));
    CHECK(sd_params_find(sd_model_params(m), "features.28.bias") == NULL); /* a ReLU's index */
    CHECK(has_shape(m, "features.27.weight", 4, (int[]){512, 512, 3, 3}));
    CHECK(has_shape(m, "features.29.weight", 4, (int[]){1024, 512, 3, 3}));
    CHECK(has_shape(m, "features.31.weight", 4, (int[]){1024, 1024, 3, 3}));
    CHECK(has_shape(m, "classifier.conv2d_list.0.weight", 4, (int[]){16, 1024, 3, 3}));
    sd_model_free(m);

    sd_model_opts o = sd_model_opts_default("deeplabv3-resnet50");
    o.aux = true;
    CHECK_OK(nn_model_create_zeroed(&o, &m));
    CHECK(has_shape(m, "backbone.layer4.0.conv2.weight", 4, (int[]){512, 512, 3, 3}));
    CHECK(has_shape(m, "backbone.layer3.0.downsample.0.weight", 4, (int[]){1024, 512, 1, 1}));
    CHECK(has_shape(m, "classifier.0.convs.4.1.weight", 4, (int[]){256, 2048, 1, 1}));
    CHECK(has_shape(m, "classifier.0.project.0.weight", 4, (int[]){256, 1280, 1, 1}));
    CHECK(has_shape(m, "classifier.4.bias", 1, (int[]){19}));
    CHECK(has_shape(m, "aux_classifier.4.weight", 4, (int[]){19, 256, 1, 1}));
    sd_model_free(m);

    m = make_zeroed("pspnet-resnet50", 19, false);
    CHECK(has_shape(m, "layer0.6.weight", 4, (int[]){128, 64, 3, 3}));
    CHECK(has_shape(m, "layer1.0.conv1.weight", 4, (int[]){64, 128, 1, 1}));
    CHECK(has_shape(m, "ppm.features.3.1.weight", 4, (int[]){512, 2048, 1, 1}));
    CHECK(has_shape(m, "cls.0.weight", 4, (int[]){512, 4096, 3, 3}));
    sd_model_free(m);

    sd_model_opts bad = sd_model_opts_default("deeplabv9");
    CHECK(sd_model_create(&bad, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("unknown model 'deeplabv9'");
    CHECK_ERR_HAS("deeplabv2-resnet101");
    bad = sd_model_opts_default("deeplabv2-vgg16");
    bad.output_stride = 16;
    CHECK(sd_model_create(&bad, &m) == SD_ERR_ARG);
    CHECK_ERR_HAS("output stride 16");
}

/* Parameter counts of the published networks (ImageNet ResNet/VGG without
 * their fc layers, plus heads), tallied by hand. */
void TEST_param_counts(void);
void TEST_param_counts(void)
{
    size_t n;
    double gf;
    /* torchvision resnet101: 44,549,160 params incl. fc (2048*1000+1000) */
    size_t r101 = 44549160 - 2049000;
    sd_model_opts o = sd_model_opts_default("deeplabv2-resnet101");
    CHECK_OK(sd_model_cost(&o, 64, 64, &n, &gf));
    CHECK_MSG(n == r101 + 4 * (19 * 2048 * 9 + 19), "%zu", n);
    /* torchvision vgg16 features: 14,714,688 */
    o = sd_model_opts_default("deeplabv2-vgg16");
    CHECK_OK(sd_model_cost(&o, 64, 64, &n, &gf));
    CHECK_MSG(n == 14714688 + (1024 * 512 * 9 + 1024) + (1024 * 1024 * 9 + 1024) + 4 * (19 * 1024 * 9 + 19), "%zu", n);
    /* VGG FLOPs at 64x64: convs at 64, 32, 16 and (OS 8) 8 pixels square */
    double macs = 0;
    int cfg[15][3] = {{3, 64, 64},    {64, 64, 64},    {64, 128, 32},   {128, 128, 32},  {128, 256, 16},
                      {256, 256, 16}, {256, 256, 16},  {256, 512, 8},   {512, 512, 8},   {512, 512, 8},
                      {512, 512, 8},  {512, 512, 8},   {512, 512, 8},   {512, 1024, 8},  {1024, 1024, 8}};
    for (int i = 0; i < 15; i++)
        macs += (double)cfg[i][0] * cfg[i][1] * 9 * cfg[i][2] * cfg[i][2];
    macs += 4.0 * 1024 * 19 * 9 * 64;
    CHECK_NEAR(gf, 2 * macs * 1e-9, 1e-9);
    /* torchvision resnet50 (25,557,032 incl. fc) as the deeplabv3 backbone */
    o = sd_model_opts_default("deeplabv3-resnet50");
    CHECK_OK(sd_model_cost(&o, 64, 64, &n, &gf));
    size_t head = 2048 * 256 + 3 * 2048 * 256 * 9 + 2048 * 256 + 1280 * 256 + 256 * 256 * 9 + 256 * 19 + 19 +
                  7 * 2 * 256; /* seven BN layers of 256 */
    CHECK_MSG(n == 25557032 - 2049000 + head, "%zu", n);
    /* Each ResNet-101 model is its ResNet-50 twin with 17 more layer3 blocks:
     * torchvision's resnet101 - resnet50. The PyTorch parity script runs one
     * model of each pair and relies on this. */
    const char *twins[3][2] = {{"deeplabv2-resnet101", "deeplabv2-resnet50"},
                               {"deeplabv3-resnet101", "deeplabv3-resnet50"},
                               {"pspnet-resnet101", "pspnet-resnet50"}};
    for (int i = 0; i < 3; i++) {
        size_t n101 = 0, n50 = 0;
        o = sd_model_opts_default(twins[i][0]);
        CHECK_OK(sd_model_cost(&o, 64, 64, &n101, &gf));
        o = sd_model_opts_default(twins[i][1]);
        CHECK_OK(sd_model_cost(&o, 64, 64, &n50, &gf));
        CHECK_MSG(n101 - n50 == 44549160 - 25557032, "%s - %s: %zu", twins[i][0], twins[i][1], n101 - n50);
    }
}

void TEST_forward_shapes(void);
void TEST_forward_shapes(void)
{
    sd_model *m = make("deeplab-mini", 19, true);
    if (!m)
        return;
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_tensor *x = sd_tensor_zeros(&t, 4, (int[]){2, 3, 67, 93});
    sd_rng r;
    sd_rng_seed(&r, 3);
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = sd_rng_normal(&r);
    sd_model_out out;
    CHECK_OK(sd_model_forward(m, &t, x, true, &out));
    /* 67x93: conv 7/2 -> 34x47, ceil-mode pool -> 18x24, layer2 -> 9x12 */
    CHECK_MSG(out.logits && !strcmp(sd_shape_str(out.logits), "[2,19,9,12]"), "%s", sd_shape_str(out.logits));
    CHECK(out.aux_logits && !strcmp(sd_shape_str(out.aux_logits), "[2,19,9,12]"));
    CHECK(out.feat && out.feat->shape[1] == 128 && out.mid && out.mid->shape[1] == 64);
    CHECK(sd_model_feature(m, &out, "layer3") == out.mid);
    CHECK(sd_model_feature(m, &out, "nonsense") == NULL);
    sd_tensor *sm = sd_model_feature(m, &out, "softmax");
    CHECK(sm && fabsf(F32(sm->data)[0] + F32(sm->data)[9 * 12] - 1.0f) < 1.0f);
    /* a backward reaches the first conv */
    sd_tensor *loss = sd_mean(&t, out.logits);
    CHECK_OK(sd_backward1(&t, loss));
    sd_tensor *w = sd_params_find(sd_model_params(m), "conv1.weight");
    double s = 0;
    for (size_t i = 0; i < w->numel; i++)
        s += fabs(F32(w->grad)[i]);
    CHECK(s > 0);
    /* wrong input channels */
    sd_tensor *bad = sd_tensor_zeros(&t, 4, (int[]){1, 4, 32, 32});
    CHECK(sd_model_forward(m, &t, bad, false, &out) == SD_ERR_SHAPE);
    CHECK_ERR_HAS("expected [N, 3, H, W]");
    sd_tape_free(&t);
    sd_model_free(m);
}

void TEST_frozen_bn(void);
void TEST_frozen_bn(void)
{
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    o.bn = SD_BN_FROZEN;
    sd_model *m;
    CHECK_OK(sd_model_create(&o, &m));
    sd_tensor *rm = sd_params_find(sd_model_params(m), "layer1.0.bn1.running_mean");
    sd_tensor *g = sd_params_find(sd_model_params(m), "layer1.0.bn1.weight");
    CHECK(!g->requires_grad);
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_tensor *x = sd_tensor_zeros(&t, 4, (int[]){1, 3, 40, 40});
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = (float)(i % 7);
    sd_model_out out;
    CHECK_OK(sd_model_forward(m, &t, x, true, &out));
    CHECK_OK(sd_backward1(&t, sd_mean(&t, out.logits)));
    float mx = 0;
    for (size_t i = 0; i < rm->numel; i++)
        mx = fmaxf(mx, fabsf(F32(rm->data)[i]));
    CHECK(mx == 0.0f); /* running stats untouched */
    for (size_t i = 0; i < g->numel; i++)
        CHECK(F32(g->grad)[i] == 0.0f);
    sd_tape_free(&t);
    sd_model_free(m);
}

/* The three BN modes after one training forward, backward and SGD step
 * (weight decay on, so a frozen parameter that the optimiser touched would
 * move): batch-stats (the AdaptSegNet/ADVENT/FDA code) moves the running
 * statistics but not the affine parameters, frozen moves neither, train both.
 * bn_keep_running normalises with the batch but writes no statistics. */
void TEST_bn_modes(void);
void TEST_bn_modes(void)
{
    const sd_bn_mode modes[4] = {SD_BN_BATCH_STATS, SD_BN_FROZEN, SD_BN_TRAIN, SD_BN_BATCH_STATS};
    const bool stats_move[4] = {true, false, true, false}, affine_moves[4] = {false, false, true, false};
    float logits0[2] = {0, 0};
    for (int k = 0; k < 4; k++) {
        sd_model_opts o = sd_model_opts_default("deeplab-mini");
        o.bn = modes[k];
        o.bn_keep_running = k == 3;
        sd_model *m;
        CHECK_OK(sd_model_create(&o, &m));
        sd_params *p = sd_model_params(m);
        sd_tensor *rm = sd_params_find(p, "layer1.0.bn1.running_mean");
        sd_tensor *g = sd_params_find(p, "layer1.0.bn1.weight"), *b = sd_params_find(p, "layer1.0.bn1.bias");
        for (size_t i = 0; i < g->numel; i++)
            F32(g->data)[i] = 1.0f + 0.01f * (float)i;   /* away from 1 so decay would show */
        float g0 = F32(g->data)[3], b0 = F32(b->data)[3], rm0 = F32(rm->data)[3];
        sd_optim opt;
        sd_optim_opts oo = sd_optim_opts_sgd(0.9f, 5e-4f);
        CHECK_OK(sd_optim_init(&opt, p, &oo));
        sd_tape t;
        sd_tape_init(&t, 1);
        sd_tensor *x = sd_tensor_zeros(&t, 4, (int[]){2, 3, 40, 40});
        for (size_t i = 0; i < x->numel; i++)
            F32(x->data)[i] = (float)(i % 7) - 2.0f;
        sd_model_out out;
        CHECK_OK(sd_model_forward(m, &t, x, true, &out));
        if (k == 0 || k == 3)
            logits0[k == 3] = F32(out.logits->data)[5];
        CHECK_OK(sd_backward1(&t, sd_mean(&t, sd_mul(&t, out.logits, out.logits))));
        CHECK_OK(sd_optim_step(&opt, 0.1f));
        bool sm = F32(rm->data)[3] != rm0, am = F32(g->data)[3] != g0 || F32(b->data)[3] != b0;
        CHECK_MSG(sm == stats_move[k] && am == affine_moves[k], "bn %s%s: running stats %s, affine %s",
                  sd_bn_mode_name(modes[k]), k == 3 ? " (keep running)" : "", sm ? "moved" : "kept",
                  am ? "moved" : "kept");
        sd_optim_free(&opt);
        sd_tape_free(&t);
        sd_model_free(m);
    }
    CHECK(logits0[0] == logits0[1]);   /* the same batch statistics normalise either way */
    sd_bn_mode bm;
    CHECK_OK(sd_bn_mode_parse("batch-stats", &bm));
    CHECK(bm == SD_BN_BATCH_STATS);
    CHECK(sd_bn_mode_parse("eval", &bm) == SD_ERR_ARG);
    CHECK_ERR_HAS("expected frozen, batch-stats or train");
}

/* Under no_grad each activation's storage is reused once its last consumer
 * has run, so inference memory does not grow with depth; the logits are the
 * same bits as an eval-mode forward that keeps everything. */
void TEST_no_grad_memory(void);
void TEST_no_grad_memory(void)
{
    const char *names[] = {"deeplabv2-resnet18", "deeplabv2-vgg16"};
    for (int k = 0; k < 2; k++) {
        sd_model_opts o = sd_model_opts_default(names[k]);
        o.aux = true;
        sd_model *m;
        CHECK_OK(sd_model_create(&o, &m));
        size_t peak[2];
        float *logits[2];
        size_t n = 0;
        for (int ng = 0; ng < 2; ng++) {
            sd_tape t;
            sd_tape_init(&t, 1);
            if (ng)
                sd_tape_no_grad_begin(&t);
            sd_tensor *x = sd_tensor_new4(&t, 1, 3, 96, 128);
            for (size_t i = 0; i < x->numel; i++)
                F32(x->data)[i] = (float)(i % 11) * 0.1f - 0.5f;
            sd_model_out out;
            CHECK_OK(sd_model_forward(m, &t, x, false, &out));
            n = out.logits->numel;
            logits[ng] = malloc(n * sizeof(float));
            CHECK_OK(sd_tensor_to_host(out.logits, logits[ng]));
            CHECK(out.mid && !out.mid->released && out.feat && !out.feat->released && !x->released);
            peak[ng] = t.store.peak;
            sd_tape_free(&t);
        }
        CHECK(memcmp(logits[0], logits[1], n * sizeof(float)) == 0);
        /* (the tape keeps one tensor per fused conv + bias/BN + ReLU) */
        CHECK_MSG(peak[1] * 2 < peak[0], "%s: no_grad peak %zu bytes, with the tape %zu", names[k], peak[1],
                  peak[0]);
        free(logits[0]);
        free(logits[1]);
        sd_model_free(m);
    }
}

/* A multi-level network started from a single-level checkpoint takes its
 * main classifier (layer5 there, layer6 here) and keeps a fresh head on
 * layer3; the reverse takes layer6 as layer5. */
void TEST_main_head_across_levels(void);
void TEST_main_head_across_levels(void)
{
    char path[2][512];
    sd_model *m[2];
    for (int aux = 0; aux < 2; aux++) {
        sd_model_opts o = sd_model_opts_default("deeplab-mini");
        o.aux = aux;
        CHECK_OK(sd_model_create(&o, &m[aux]));
        sd_model_init_weights(m[aux], 5 + aux);
        snprintf(path[aux], sizeof path[aux], "%s/%s", tmpdir, aux ? "multi.safetensors" : "single.safetensors");
        sd_ckpt_writer w;
        sd_ckpt_writer_init(&w);
        CHECK_OK(sd_ckpt_writer_add_model(&w, m[aux], SD_NORM_IMAGENET));
        CHECK_OK(sd_ckpt_writer_save(&w, path[aux]));
        sd_ckpt_writer_free(&w);
    }
    for (int aux = 0; aux < 2; aux++) {
        /* load the other level's file into a fresh model of this level */
        sd_model_opts o = sd_model_opts_default("deeplab-mini");
        o.aux = aux;
        sd_model *x;
        CHECK_OK(sd_model_create(&o, &x));
        sd_model_init_weights(x, 9);
        sd_ckpt c;
        CHECK_OK(sd_ckpt_open(path[1 - aux], &c));
        sd_ckpt_report rep;
        CHECK_OK(sd_ckpt_load_weights(&c, sd_model_params(x), "deeplab-mini", false, &rep));
        sd_ckpt_close(&c);
        sd_tensor *got = sd_params_find(sd_model_params(x), aux ? "layer6.conv2d_list.1.weight" : "layer5.conv2d_list.1.weight");
        sd_tensor *want = sd_params_find(sd_model_params(m[1 - aux]), aux ? "layer5.conv2d_list.1.weight" : "layer6.conv2d_list.1.weight");
        CHECK(got && want && got->numel == want->numel && memcmp(got->data, want->data, got->numel * 4) == 0);
        CHECK(rep.mismatched == 0 && rep.unexpected == (aux ? 0 : 8));
        sd_model_free(x);
    }
    sd_model_free(m[0]);
    sd_model_free(m[1]);
}

void TEST_discriminators(void);
void TEST_discriminators(void)
{
    sd_disc *d;
    CHECK_OK(sd_disc_create(SD_DISC_OUTPUT, 19, 64, NULL, &d));
    sd_params *p = sd_disc_params(d);
    CHECK(p->n == 10);
    CHECK(!strcmp(p->tensors[0]->name, "conv1.weight") && p->tensors[0]->shape[0] == 64 &&
          p->tensors[0]->shape[1] == 19 && p->tensors[0]->shape[2] == 4);
    CHECK(!strcmp(p->tensors[8]->name, "classifier.weight") && p->tensors[8]->shape[1] == 512);
    sd_tape t;
    sd_tape_init(&t, 1);
    sd_tensor *x = sd_tensor_zeros(&t, 4, (int[]){1, 19, 65, 129});
    for (size_t i = 0; i < x->numel; i++)
        F32(x->data)[i] = (float)((i * 7) % 11) / 11.0f;
    sd_tensor *y = sd_disc_forward(d, &t, x);
    /* 65 -> 32 -> 16 -> 8 -> 4 -> 2; 129 -> 64 -> 32 -> 16 -> 8 -> 4 */
    CHECK(y && !strcmp(sd_shape_str(y), "[1,1,2,4]"));
    CHECK_OK(sd_backward1(&t, sd_bce_logits_const(&t, y, 1.0f)));
    double s = 0;
    for (size_t i = 0; i < p->tensors[0]->numel; i++)
        s += fabs(F32(p->tensors[0]->grad)[i]);
    CHECK(s > 0);
    CHECK(sd_disc_forward(d, &t, sd_tensor_zeros(&t, 4, (int[]){1, 7, 32, 32})) == NULL);
    CHECK_ERR_HAS("expected [N, 19, H, W]");
    sd_disc_free(d);

    sd_tape_reset(&t); /* clears the failure recorded above */
    CHECK_OK(sd_disc_create(SD_DISC_PIXEL, 64, 32, "region3.", &d));
    p = sd_disc_params(d);
    CHECK(p->n == 6 && !strcmp(p->tensors[0]->name, "region3.conv1.weight") && p->tensors[0]->shape[2] == 1);
    y = sd_disc_forward(d, &t, sd_tensor_zeros(&t, 4, (int[]){2, 64, 5, 7}));
    CHECK(y && !strcmp(sd_shape_str(y), "[2,1,5,7]"));
    sd_disc_free(d);
    CHECK(sd_disc_create(SD_DISC_OUTPUT, 0, 64, NULL, &d) == SD_ERR_ARG);
    sd_tape_free(&t);
}

/* A model whose output is a known class everywhere: all weights zero, the
 * first ASPP branch's bias favouring `cls`. */
static sd_model *constant_model(int cls)
{
    sd_model *m = make("deeplab-mini", 19, false);
    sd_params *p = sd_model_params(m);
    for (int g = 0; g < p->n_groups; g++)
        if (!p->groups[g].is_buffer)
            memset(p->groups[g].data, 0, p->groups[g].numel * sizeof(float));
    sd_tensor *b = sd_params_find(p, "layer5.conv2d_list.0.bias");
    F32(b->data)[cls] = 3.0f;
    return m;
}

void TEST_checkpoint_model(void);
void TEST_checkpoint_model(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/mini.safetensors", tmpdir);
    sd_model_opts o = sd_model_opts_default("deeplab-mini");
    o.classes = 5;
    o.aux = true;
    sd_model *m;
    CHECK_OK(sd_model_create(&o, &m));
    sd_model_init_weights(m, 42);
    CHECK_OK(sd_model_save(m, SD_NORM_CAFFE, path));
    sd_model *m2;
    sd_norm norm = SD_NORM_IMAGENET;
    CHECK_OK(sd_model_load(path, true, &m2, &norm));
    if (!m2)
        return;
    CHECK(norm == SD_NORM_CAFFE);
    CHECK(sd_model_options(m2)->classes == 5 && sd_model_options(m2)->aux);
    sd_params *a = sd_model_params(m), *b = sd_model_params(m2);
    for (int g = 0; g < a->n_groups; g++)
        CHECK(!memcmp(a->groups[g].data, b->groups[g].data, a->groups[g].numel * sizeof(float)));
    sd_model_free(m2);

    /* a foreign file without metadata for classes/aux: inferred */
    sd_ckpt c;
    CHECK_OK(sd_ckpt_open(path, &c));
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_params(&w, "", a));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_MODEL, "deeplab-mini"));
    char p2[512];
    snprintf(p2, sizeof p2, "%s/bare.safetensors", tmpdir);
    CHECK_OK(sd_ckpt_writer_save(&w, p2));
    sd_ckpt_writer_free(&w);
    sd_ckpt_close(&c);
    CHECK_OK(sd_model_load(p2, true, &m2, &norm));
    CHECK(m2 && sd_model_options(m2)->classes == 5 && sd_model_options(m2)->aux && norm == SD_NORM_IMAGENET);
    sd_model_free(m2);

    /* a tensor absent from the file keeps the initial value sd_model_create
     * gives it (not zero); the others are the file's */
    sd_ckpt_writer_init(&w);
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->tensors[i]->name, "layer1.0.conv1.weight"))
            CHECK_OK(sd_ckpt_writer_add_tensor(&w, a->tensors[i]->name, a->tensors[i]->ndim, a->tensors[i]->shape,
                                               a->tensors[i]->data));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_MODEL, "deeplab-mini"));
    CHECK_OK(sd_ckpt_writer_save(&w, p2));
    sd_ckpt_writer_free(&w);
    sd_log_set_level(0);
    CHECK_OK(sd_model_load(p2, false, &m2, &norm));
    sd_log_set_level(1);
    sd_model *fresh = NULL;
    CHECK_OK(sd_model_create(&o, &fresh));
    if (m2 && fresh) {
        const sd_tensor *got = sd_params_find(sd_model_params(m2), "layer1.0.conv1.weight");
        const sd_tensor *want = sd_params_find(sd_model_params(fresh), "layer1.0.conv1.weight");
        CHECK(got && want && !memcmp(got->data, want->data, want->numel * sizeof(float)) && F32(want->data)[0] != 0);
        got = sd_params_find(sd_model_params(m2), "layer1.0.conv2.weight");
        want = sd_params_find(a, "layer1.0.conv2.weight");
        CHECK(got && want && !memcmp(got->data, want->data, want->numel * sizeof(float)));
    }
    sd_model_free(fresh);
    sd_model_free(m2);

    /* the model says 5 classes, the checkpoint metadata 7: strict load fails naming a tensor */
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_model(&w, m, SD_NORM_CAFFE));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_CLASSES, "7"));
    CHECK_OK(sd_ckpt_writer_save(&w, p2));
    sd_ckpt_writer_free(&w);
    sd_log_set_level(0);
    CHECK(sd_model_load(p2, true, &m2, NULL) == SD_ERR_DATA);
    sd_log_set_level(1);
    CHECK_ERR_HAS("layer6.conv2d_list.0.weight' has shape [5,128,3,3] in the checkpoint, the model expects [7,128,3,3]");
    CHECK(m2 == NULL);
    /* bad metadata */
    sd_ckpt_writer_init(&w);
    CHECK_OK(sd_ckpt_writer_add_model(&w, m, SD_NORM_CAFFE));
    CHECK_OK(sd_ckpt_writer_set_meta(&w, SD_META_NORM, "zscore"));
    CHECK_OK(sd_ckpt_writer_save(&w, p2));
    sd_ckpt_writer_free(&w);
    CHECK(sd_model_load(p2, false, &m2, &norm) == SD_ERR_FORMAT);
    CHECK_ERR_HAS("\"norm\" is \"zscore\"");
    sd_model_free(m);
}

void TEST_infer(void);
void TEST_infer(void)
{
    sd_model *m = constant_model(13);
    int w = 45, h = 31;
    uint8_t *img = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        img[i] = (uint8_t)(i * 37);
    float *probs = malloc((size_t)19 * w * h * sizeof(float));
    uint8_t *pred = malloc((size_t)w * h);
    sd_tape t;
    sd_tape_init(&t, 0);
    sd_infer_opts o = sd_infer_opts_default(SD_NORM_IMAGENET);
    o.flip = true;
    o.n_scales = 2;
    o.scales[0] = 0.75f;
    o.scales[1] = 1.25f;
    CHECK_OK(sd_infer_probs(m, &t, img, w, h, 3, &o, probs));
    sd_probs_argmax(probs, 19, w, h, pred, NULL);
    int wrong = 0;
    for (int i = 0; i < w * h; i++) {
        float s = 0;
        for (int k = 0; k < 19; k++)
            s += probs[(size_t)k * w * h + i];
        wrong += pred[i] != 13 || fabsf(s - 1) > 1e-4f;
    }
    CHECK(wrong == 0);
    /* softmax of (3, 0, ..., 0) */
    CHECK_NEAR(probs[(size_t)13 * w * h], expf(3) / (expf(3) + 18), 1e-5);

    /* random weights: a window covering the image equals the whole image,
     * and overlapping windows stay close to it */
    sd_model_init_weights(m, 5);
    float *p2 = malloc((size_t)19 * w * h * sizeof(float));
    o = sd_infer_opts_default(SD_NORM_CAFFE);
    CHECK_OK(sd_infer_probs(m, &t, img, w, h, 3, &o, probs));
    o.win_w = 64;
    o.win_h = 64;
    CHECK_OK(sd_infer_probs(m, &t, img, w, h, 3, &o, p2));
    CHECK(!memcmp(probs, p2, (size_t)19 * w * h * sizeof(float)));
    o.win_w = 32;
    o.win_h = 24;
    CHECK_OK(sd_infer_probs(m, &t, img, w, h, 3, &o, p2));
    double s = 0;
    for (size_t i = 0; i < (size_t)19 * w * h; i++)
        s += p2[i];
    CHECK_NEAR(s, (double)w * h, 1e-2);
    o.n_scales = 1;
    o.scales[0] = 0.01f;
    CHECK(sd_infer_probs(m, &t, img, w, h, 3, &o, p2) == SD_ERR_ARG);
    CHECK_ERR_HAS("scale 0.01");
    /* normalisation: caffe is BGR minus the mean */
    float n3[3];
    uint8_t px[3] = {10, 20, 30};
    sd_normalize(px, 1, 1, sd_norm_params_of(SD_NORM_CAFFE), n3);
    CHECK_NEAR(n3[0], 30 - 104.00698793, 1e-5);
    CHECK_NEAR(n3[2], 10 - 122.67891434, 1e-5);
    sd_normalize(px, 1, 1, sd_norm_params_of(SD_NORM_IMAGENET), n3);
    CHECK_NEAR(n3[1], (20 / 255.0 - 0.456) / 0.224, 1e-5);
    free(p2);
    free(img);
    free(probs);
    free(pred);
    sd_tape_free(&t);
    sd_model_free(m);
}

/* Network logits of a normalised RGB u8 image, computed here without infer. */
static float *direct_logits(sd_model *m, sd_tape *t, const uint8_t *rgb, int w, int h, sd_norm norm, int *lw,
                            int *lh)
{
    float *x = malloc((size_t)3 * w * h * sizeof *x);
    sd_normalize(rgb, w, h, sd_norm_params_of(norm), x);
    sd_tape_reset(t);
    sd_tape_no_grad_begin(t);
    sd_model_out out;
    sd_tensor *xt = sd_tensor_wrap(t, 4, (int[]){1, 3, h, w}, x);
    float *r = NULL;
    if (xt && sd_model_forward(m, t, xt, false, &out) == SD_OK) {
        *lh = out.logits->shape[2];
        *lw = out.logits->shape[3];
        size_t n = (size_t)out.logits->shape[1] * *lh * *lw;
        r = malloc(n * sizeof *r);
        memcpy(r, out.logits->data, n * sizeof *r);
    }
    sd_tape_no_grad_end(t);
    sd_tape_reset(t);
    free(x);
    return r;
}

void TEST_infer_logits(void);
void TEST_infer_logits(void)
{
    sd_model *m = make("deeplab-mini", 19, false);
    sd_model_init_weights(m, 11);
    int w = 45, h = 31;
    uint8_t *img = malloc((size_t)w * h * 3), *mir = malloc((size_t)w * h * 3), *grey = malloc((size_t)w * h),
            *grey3 = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        img[i] = (uint8_t)(i * 37 + (i / 7) * 5);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            memcpy(mir + ((size_t)y * w + x) * 3, img + ((size_t)y * w + (w - 1 - x)) * 3, 3);
            grey[y * w + x] = (uint8_t)(x * 5 + y * 3);
            memset(grey3 + ((size_t)y * w + x) * 3, grey[y * w + x], 3);
        }
    sd_tape t;
    sd_tape_init(&t, 0);
    int dw = 0, dh = 0, lw = 0, lh = 0;
    float *ref = direct_logits(m, &t, img, w, h, SD_NORM_CAFFE, &dw, &dh);
    float *refm = direct_logits(m, &t, mir, w, h, SD_NORM_CAFFE, &dw, &dh);
    CHECK(ref && refm && dw < w && dh < h); /* the head's own grid, not the image's */
    size_t n = (size_t)19 * dw * dh;
    /* one scale, no flip: exactly the network's output */
    sd_infer_opts o = sd_infer_opts_default(SD_NORM_CAFFE);
    float *lg = NULL;
    CHECK_OK(sd_infer_logits(m, &t, img, w, h, 3, &o, &lg, &lw, &lh));
    CHECK(lw == dw && lh == dh && lg && !memcmp(lg, ref, n * sizeof(float)));
    free(lg);
    /* flip: the mean of the logits and the mirrored logits of the mirror */
    o.flip = true;
    CHECK_OK(sd_infer_logits(m, &t, img, w, h, 3, &o, &lg, &lw, &lh));
    double err = 0;
    for (int k = 0; k < 19; k++)
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++) {
                size_t i = ((size_t)k * dh + y) * dw + x, j = ((size_t)k * dh + y) * dw + (dw - 1 - x);
                err = fmax(err, fabs(lg[i] - 0.5 * (ref[i] + refm[j])));
            }
    CHECK_MSG(err < 1e-5, "flip average off by %g", err);
    free(lg);
    /* scales {0.75, 1}: the grid is scale 1's, listed second */
    o.flip = false;
    o.n_scales = 2;
    o.scales[0] = 0.75f;
    o.scales[1] = 1.0f;
    CHECK_OK(sd_infer_logits(m, &t, img, w, h, 3, &o, &lg, &lw, &lh));
    CHECK(lw == dw && lh == dh);
    CHECK(lg && memcmp(lg, ref, n * sizeof(float)) != 0);
    free(lg);
    /* a network size: the grid follows the network input, not the image */
    o = sd_infer_opts_default(SD_NORM_CAFFE);
    o.net_w = 90;
    o.net_h = 62;
    CHECK_OK(sd_infer_logits(m, &t, img, w, h, 3, &o, &lg, &lw, &lh));
    CHECK(lw > dw && lh > dh && lw < 90 && lh < 62);
    free(lg);
    /* grey input reads as RGB with three equal channels */
    o = sd_infer_opts_default(SD_NORM_IMAGENET);
    float *lg3 = NULL;
    CHECK_OK(sd_infer_logits(m, &t, grey, w, h, 1, &o, &lg, &lw, &lh));
    CHECK_OK(sd_infer_logits(m, &t, grey3, w, h, 3, &o, &lg3, &lw, &lh));
    CHECK(lg && lg3 && !memcmp(lg, lg3, n * sizeof(float)));
    free(lg);
    free(lg3);
    /* errors leave *logits NULL */
    o.net_w = 4;
    o.net_h = 4;
    lg = (float *)1;
    CHECK(sd_infer_logits(m, &t, img, w, h, 3, &o, &lg, &lw, &lh) == SD_ERR_ARG);
    CHECK_ERR_HAS("network size 4x4");
    CHECK(lg == NULL);
    free(ref);
    free(refm);
    free(img);
    free(mir);
    free(grey);
    free(grey3);
    sd_tape_free(&t);
    sd_model_free(m);
}

void TEST_predict_cli(void);
void TEST_predict_cli(void)
{
    const char *bin = getenv("SEGDA_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP TEST_predict_cli (no SEGDA_BIN)\n");
        return;
    }
    char dir[600], ck[600], cmd[4096], path[900];
    snprintf(dir, sizeof dir, "%s/in/frankfurt", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    CHECK(system(cmd) == 0);
    const int W = 37, H = 29;
    sd_image img;
    CHECK_OK(sd_image_alloc(&img, W, H, 3, 8));
    uint8_t *px = img.data;
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)(i * 13);
    snprintf(path, sizeof path, "%s/frankfurt_000000_000294_leftImg8bit.png", dir);
    CHECK_OK(sd_png_write(path, &img));
    snprintf(path, sizeof path, "%s/in/other.jpg", tmpdir);
    CHECK_OK(sd_jpeg_write(path, px, W, H, 90));
    sd_model *m = constant_model(13); /* car */
    snprintf(ck, sizeof ck, "%s/const.safetensors", tmpdir);
    CHECK_OK(sd_model_save(m, SD_NORM_IMAGENET, ck));
    sd_model_free(m);
    snprintf(cmd, sizeof cmd,
             "'%s' predict --model '%s' --input '%s/in' --out '%s/out' --color --overlay --labelids --flip "
             "--scales 0.75,1 --window 24x24 --quiet",
             bin, ck, tmpdir, tmpdir);
    CHECK(system(cmd) == 0);
    sd_image r;
    /* the input's subfolder is mirrored under --out */
    snprintf(path, sizeof path, "%s/out/frankfurt/frankfurt_000000_000294_leftImg8bit_trainIds.png", tmpdir);
    if (sd_image_read(path, &r, true) == SD_OK) {
        CHECK(r.w == W && r.h == H && r.c == 1 && r.depth == 8);
        int bad = 0;
        for (int i = 0; i < W * H; i++)
            bad += ((uint8_t *)r.data)[i] != 13;
        CHECK(bad == 0);
        sd_image_free(&r);
    } else {
        CHECK_MSG(0, "%s", sd_errmsg());
    }
    snprintf(path, sizeof path, "%s/out/frankfurt/frankfurt_000000_000294_leftImg8bit_color.png", tmpdir);
    if (sd_image_read(path, &r, false) == SD_OK) {
        const uint8_t *q = r.data;
        CHECK(r.w == W && r.h == H && r.c == 3);
        CHECK(q[0] == 0 && q[1] == 0 && q[2] == 142); /* car */
        sd_image_free(&r);
    } else {
        CHECK_MSG(0, "%s", sd_errmsg());
    }
    snprintf(path, sizeof path, "%s/out/frankfurt/frankfurt_000000_000294_leftImg8bit_overlay.png", tmpdir);
    if (sd_image_read(path, &r, false) == SD_OK) {
        const uint8_t *q = r.data;
        CHECK(r.w == W && r.h == H && r.c == 3);
        CHECK(q[5] == (px[5] + 142 + 1) / 2 && q[4] == (px[4] + 1) / 2);
        sd_image_free(&r);
    } else {
        CHECK_MSG(0, "%s", sd_errmsg());
    }
    snprintf(path, sizeof path, "%s/out/frankfurt/frankfurt_000000_000294_leftImg8bit_labelIds.png", tmpdir);
    if (sd_image_read(path, &r, true) == SD_OK) {
        CHECK(r.w == W && r.h == H && ((uint8_t *)r.data)[W * H - 1] == 26);
        sd_image_free(&r);
    } else {
        CHECK_MSG(0, "%s", sd_errmsg());
    }
    snprintf(path, sizeof path, "%s/out/other_trainIds.png", tmpdir);
    CHECK(access(path, F_OK) == 0);
    /* errors: a missing checkpoint is named; bad usage exits 2 */
    snprintf(cmd, sizeof cmd, "'%s' predict --model '%s/none.safetensors' --input '%s/in' --out '%s/out' 2>/dev/null",
             bin, tmpdir, tmpdir, tmpdir);
    CHECK(WEXITSTATUS(system(cmd)) == 1);
    snprintf(cmd, sizeof cmd, "'%s' predict --model x --scales 0,1 --input y --out z 2>/dev/null", bin);
    CHECK(WEXITSTATUS(system(cmd)) == 2);
    sd_image_free(&img);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/segda-test-models-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(TEST_init_matches_rng);
    RUN(TEST_published_names);
    RUN(TEST_param_counts);
    RUN(TEST_forward_shapes);
    RUN(TEST_frozen_bn);
    RUN(TEST_bn_modes);
    RUN(TEST_no_grad_memory);
    RUN(TEST_main_head_across_levels);
    RUN(TEST_discriminators);
    RUN(TEST_checkpoint_model);
    RUN(TEST_infer);
    RUN(TEST_infer_logits);
    RUN(TEST_predict_cli);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return 1;
    TESTS_DONE();
}
