/* The segmentation networks by name: ResNet (Caffe-style DeepLab-v2,
 * torchvision, PSPNet deep-stem variants) and DeepLab-v2 VGG-16 backbones with
 * DeepLab-v2 ASPP, DeepLab-v3 ASPP and PSP heads, declared under the public
 * PyTorch parameter names. Discriminators are in disc.c, checkpoint glue in
 * model_io.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

typedef enum arch_kind { ARCH_RESNET = 0, ARCH_VGG } arch_kind;
typedef enum head_kind { HEAD_ASPP2 = 0, HEAD_ASPP3, HEAD_PSP } head_kind;

typedef struct model_def {
    const char *name, *description;
    sd_norm norm;
    arch_kind arch;
    bool bottleneck;
    int layers[4];
    int width[4];         /* planes of each stage (x4 channels out for bottlenecks) */
    int stem_width;
    bool deep_stem;       /* three 3x3 convs (PSPNet's ResNet), names layer0.N */
    bool stride_1x1;      /* Caffe-style: the stride on the first 1x1 conv */
    bool tv_dilation;     /* torchvision: a dilated stage's first block keeps the previous dilation */
    bool ceil_pool;
    const char *prefix;   /* backbone name prefix: "" or "backbone." */
    head_kind head;
    int rates[4];         /* DeepLab-v2 ASPP dilations */
    bool freeze_bn;       /* DeepLab-v2 weights are published for frozen BN */
} model_def;

static const model_def defs[] = {
    {"deeplab-mini", "ResNet-18-like 16-32-64-128, OS 8, DeepLab-v2 ASPP (2/4/6/8); CPU benchmark model",
     SD_NORM_IMAGENET, ARCH_RESNET, false, {2, 2, 2, 2}, {16, 32, 64, 128}, 16, false, false, false, true, "",
     HEAD_ASPP2, {2, 4, 6, 8}, false},
    {"deeplabv2-resnet101", "DeepLab-v2 ResNet-101 as AdaptSegNet/ADVENT publish it (Caffe bottlenecks, ASPP 6/12/18/24)",
     SD_NORM_CAFFE, ARCH_RESNET, true, {3, 4, 23, 3}, {64, 128, 256, 512}, 64, false, true, false, true, "",
     HEAD_ASPP2, {6, 12, 18, 24}, true},
    {"deeplabv2-resnet50", "DeepLab-v2 ResNet-50 (Caffe bottlenecks, ASPP 6/12/18/24)", SD_NORM_CAFFE, ARCH_RESNET,
     true, {3, 4, 6, 3}, {64, 128, 256, 512}, 64, false, true, false, true, "", HEAD_ASPP2, {6, 12, 18, 24}, true},
    {"deeplabv2-resnet18", "DeepLab-v2 ResNet-18 (dilated basic blocks, ASPP 6/12/18/24)", SD_NORM_IMAGENET,
     ARCH_RESNET, false, {2, 2, 2, 2}, {64, 128, 256, 512}, 64, false, false, false, true, "", HEAD_ASPP2,
     {6, 12, 18, 24}, true},
    {"deeplabv2-vgg16", "DeepLab-v2 VGG-16 (no pool4/pool5, dilated conv5, fc6/fc7 3x3 dil 4, ASPP)", SD_NORM_CAFFE,
     ARCH_VGG, false, {0}, {0}, 0, false, false, false, false, "", HEAD_ASPP2, {6, 12, 18, 24}, false},
    {"deeplabv3-resnet101", "torchvision DeepLab-v3 ResNet-101 (ASPP 12/24/36 + image pooling)", SD_NORM_IMAGENET,
     ARCH_RESNET, true, {3, 4, 23, 3}, {64, 128, 256, 512}, 64, false, false, true, false, "backbone.", HEAD_ASPP3,
     {0}, false},
    {"deeplabv3-resnet50", "torchvision DeepLab-v3 ResNet-50 (ASPP 12/24/36 + image pooling)", SD_NORM_IMAGENET,
     ARCH_RESNET, true, {3, 4, 6, 3}, {64, 128, 256, 512}, 64, false, false, true, false, "backbone.", HEAD_ASPP3,
     {0}, false},
    {"pspnet-resnet101", "PSPNet ResNet-101 deep stem, pyramid pooling 1/2/3/6 (semseg names)", SD_NORM_IMAGENET,
     ARCH_RESNET, true, {3, 4, 23, 3}, {64, 128, 256, 512}, 128, true, false, false, false, "", HEAD_PSP, {0},
     false},
    {"pspnet-resnet50", "PSPNet ResNet-50 deep stem, pyramid pooling 1/2/3/6 (semseg names)", SD_NORM_IMAGENET,
     ARCH_RESNET, true, {3, 4, 6, 3}, {64, 128, 256, 512}, 128, true, false, false, false, "", HEAD_PSP, {0}, false},
};
#define N_DEFS ((int)(sizeof defs / sizeof defs[0]))

static const int psp_bins[4] = {1, 2, 3, 6};

typedef struct block {
    bool bottleneck, has_down;
    nn_conv c1, c2, c3, down;
    nn_bn b1, b2, b3, dbn;
} block;

/* VGG-16 convs in torchvision's features.N numbering after pool4's removal. */
typedef struct vgg_conv {
    int idx, cin, cout, dil;
    bool pool_after;
} vgg_conv;
static const vgg_conv vgg_cfg[13] = {
    {0, 3, 64, 1, false},     {2, 64, 64, 1, true},     {5, 64, 128, 1, false},   {7, 128, 128, 1, true},
    {10, 128, 256, 1, false}, {12, 256, 256, 1, false}, {14, 256, 256, 1, true},  {17, 256, 512, 1, false},
    {19, 512, 512, 1, false}, {21, 512, 512, 1, false}, {23, 512, 512, 2, false}, {25, 512, 512, 2, false},
    {27, 512, 512, 2, false},
};

struct sd_model {
    sd_model_opts o;
    char name[64];
    const model_def *def;
    sd_params params;
    nn_builder b;
    /* ResNet */
    int n_stem;
    nn_conv stem[3];
    nn_bn stem_bn[3];
    int n_blocks[4];
    block *blocks[4];
    int ch_mid, ch_feat;   /* channels of layer3 / layer4 (conv4 / fc7) */
    /* VGG */
    nn_conv vgg[15];       /* 13 convs, fc6, fc7 */
    /* heads */
    int n_aspp;
    nn_conv aspp[4], aux_aspp[4];
    nn_conv a3[5], a3_proj, h_conv, h_cls, aux_conv, aux_cls, ppm[4];
    nn_bn a3_bn[5], a3_proj_bn, h_bn, aux_bn, ppm_bn[4];
    sd_tape *last_tape;
};

static const model_def *find_def(const char *name)
{
    for (int i = 0; name && i < N_DEFS; i++)
        if (!strcmp(defs[i].name, name))
            return &defs[i];
    return NULL;
}

sd_model_opts sd_model_opts_default(const char *name)
{
    const model_def *d = find_def(name);
    sd_model_opts o = {.name = name, .classes = 19, .bn = d && d->freeze_bn ? SD_BN_FROZEN : SD_BN_TRAIN, .aux = false,
                       .aspp_two_branch = false, .output_stride = 0};
    return o;
}

const sd_model_info *sd_model_list(int *n)
{
    static sd_model_info info[N_DEFS];
    for (int i = 0; i < N_DEFS; i++)
        info[i] = (sd_model_info){defs[i].name, defs[i].description, defs[i].norm};
    *n = N_DEFS;
    return info;
}

/* ---- declaration ---- */

static void decl_block(sd_model *m, block *bk, int stage, int idx, int inplanes, int planes, int stride, int dil)
{
    nn_builder *b = &m->b;
    const model_def *d = m->def;
    char base[128], nm[160];
    snprintf(base, sizeof base, "%slayer%d.%d", d->prefix, stage + 1, idx);
    bk->bottleneck = d->bottleneck;
    int out = d->bottleneck ? planes * 4 : planes;
#define NM(s) (snprintf(nm, sizeof nm, "%s.%s", base, s), nm)
    if (d->bottleneck) {
        int s1 = d->stride_1x1 ? stride : 1, s3 = d->stride_1x1 ? 1 : stride;
        nn_conv_decl(b, &bk->c1, b->g_backbone, NM("conv1"), inplanes, planes, 1, s1, 0, 1, false);
        nn_bn_decl(b, &bk->b1, NM("bn1"), planes, false);
        nn_conv_decl(b, &bk->c2, b->g_backbone, NM("conv2"), planes, planes, 3, s3, dil, dil, false);
        nn_bn_decl(b, &bk->b2, NM("bn2"), planes, false);
        nn_conv_decl(b, &bk->c3, b->g_backbone, NM("conv3"), planes, out, 1, 1, 0, 1, false);
        nn_bn_decl(b, &bk->b3, NM("bn3"), out, false);
    } else {
        nn_conv_decl(b, &bk->c1, b->g_backbone, NM("conv1"), inplanes, planes, 3, stride, dil, dil, false);
        nn_bn_decl(b, &bk->b1, NM("bn1"), planes, false);
        nn_conv_decl(b, &bk->c2, b->g_backbone, NM("conv2"), planes, planes, 3, 1, dil, dil, false);
        nn_bn_decl(b, &bk->b2, NM("bn2"), planes, false);
    }
    bk->has_down = idx == 0 && (stride != 1 || inplanes != out);
    if (bk->has_down) {
        nn_conv_decl(b, &bk->down, b->g_backbone, NM("downsample.0"), inplanes, out, 1, stride, 0, 1, false);
        nn_bn_decl(b, &bk->dbn, NM("downsample.1"), out, false);
    }
#undef NM
}

static sd_status decl_resnet(sd_model *m, int os)
{
    const model_def *d = m->def;
    nn_builder *b = &m->b;
    char nm[128];
    if (d->deep_stem) {
        static const char *const cn[3] = {"layer0.0", "layer0.3", "layer0.6"};
        static const char *const bn[3] = {"layer0.1", "layer0.4", "layer0.7"};
        int cin[3] = {3, 64, 64}, cout[3] = {64, 64, d->stem_width};
        for (int i = 0; i < 3; i++) {
            snprintf(nm, sizeof nm, "%s%s", d->prefix, cn[i]);
            nn_conv_decl(b, &m->stem[i], b->g_backbone, nm, cin[i], cout[i], 3, i == 0 ? 2 : 1, 1, 1, false);
            snprintf(nm, sizeof nm, "%s%s", d->prefix, bn[i]);
            nn_bn_decl(b, &m->stem_bn[i], nm, cout[i], false);
        }
        m->n_stem = 3;
    } else {
        snprintf(nm, sizeof nm, "%sconv1", d->prefix);
        nn_conv_decl(b, &m->stem[0], b->g_backbone, nm, 3, d->stem_width, 7, 2, 3, 1, false);
        snprintf(nm, sizeof nm, "%sbn1", d->prefix);
        nn_bn_decl(b, &m->stem_bn[0], nm, d->stem_width, false);
        m->n_stem = 1;
    }
    /* Output stride 8: stages 3 and 4 keep stride 1 with dilation 2 and 4;
     * 16: stage 3 strides, stage 4 dilates by 2. */
    int stride[4] = {1, 2, os == 8 ? 1 : 2, 1};
    int dil[4] = {1, 1, os == 8 ? 2 : 1, os == 8 ? 4 : 2};
    int inplanes = d->stem_width, prev_dil = 1;
    for (int s = 0; s < 4; s++) {
        m->n_blocks[s] = d->layers[s];
        m->blocks[s] = calloc((size_t)d->layers[s], sizeof(block));
        if (!m->blocks[s])
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory", d->name);
        int out = d->bottleneck ? d->width[s] * 4 : d->width[s];
        for (int i = 0; i < d->layers[s]; i++) {
            int di = (d->tv_dilation && i == 0) ? prev_dil : dil[s];
            decl_block(m, &m->blocks[s][i], s, i, i == 0 ? inplanes : out, d->width[s], i == 0 ? stride[s] : 1, di);
        }
        inplanes = out;
        prev_dil = dil[s];
        if (s == 2)
            m->ch_mid = out;
    }
    m->ch_feat = inplanes;
    return b->st;
}

static void decl_vgg(sd_model *m)
{
    nn_builder *b = &m->b;
    char nm[64];
    for (int i = 0; i < 13; i++) {
        snprintf(nm, sizeof nm, "features.%d", vgg_cfg[i].idx);
        nn_conv_decl(b, &m->vgg[i], b->g_backbone, nm, vgg_cfg[i].cin, vgg_cfg[i].cout, 3, 1, vgg_cfg[i].dil,
                     vgg_cfg[i].dil, true);
    }
    nn_conv_decl(b, &m->vgg[13], b->g_backbone, "features.29", 512, 1024, 3, 1, 4, 4, true);
    nn_conv_decl(b, &m->vgg[14], b->g_backbone, "features.31", 1024, 1024, 3, 1, 4, 4, true);
    m->ch_mid = 512;
    m->ch_feat = 1024;
}

static void decl_aspp2(sd_model *m, nn_conv *br, const char *base, int cin)
{
    char nm[96];
    for (int i = 0; i < m->n_aspp; i++) {
        snprintf(nm, sizeof nm, "%s.conv2d_list.%d", base, i);
        int r = m->def->rates[i];
        nn_conv_decl(&m->b, &br[i], m->b.g_classifier, nm, cin, m->o.classes, 3, 1, r, r, true);
    }
}

static void decl_heads(sd_model *m)
{
    nn_builder *b = &m->b;
    int C = m->o.classes, gc = b->g_classifier;
    bool vgg = m->def->arch == ARCH_VGG;
    char nm[96];
    switch (m->def->head) {
    case HEAD_ASPP2:
        m->n_aspp = m->o.aspp_two_branch ? 2 : 4;
        /* AdaptSegNet's DeeplabMulti and ADVENT's ResNetMulti name the
         * classifier on layer3 (aux) layer5 and the main one on layer4 layer6;
         * the single-level Deeplab names its one classifier layer5 */
        decl_aspp2(m, m->aspp, vgg ? "classifier" : m->o.aux ? "layer6" : "layer5", m->ch_feat);
        if (m->o.aux)
            decl_aspp2(m, m->aux_aspp, vgg ? "aux_classifier" : "layer5", m->ch_mid);
        break;
    case HEAD_ASPP3: {
        int rates[3] = {12, 24, 36};
        if (m->o.output_stride == 16)
            rates[0] = 6, rates[1] = 12, rates[2] = 18;
        nn_conv_decl(b, &m->a3[0], gc, "classifier.0.convs.0.0", m->ch_feat, 256, 1, 1, 0, 1, false);
        nn_bn_decl(b, &m->a3_bn[0], "classifier.0.convs.0.1", 256, true);
        for (int i = 1; i <= 3; i++) {
            snprintf(nm, sizeof nm, "classifier.0.convs.%d.0", i);
            nn_conv_decl(b, &m->a3[i], gc, nm, m->ch_feat, 256, 3, 1, rates[i - 1], rates[i - 1], false);
            snprintf(nm, sizeof nm, "classifier.0.convs.%d.1", i);
            nn_bn_decl(b, &m->a3_bn[i], nm, 256, true);
        }
        nn_conv_decl(b, &m->a3[4], gc, "classifier.0.convs.4.1", m->ch_feat, 256, 1, 1, 0, 1, false);
        nn_bn_decl(b, &m->a3_bn[4], "classifier.0.convs.4.2", 256, true);
        nn_conv_decl(b, &m->a3_proj, gc, "classifier.0.project.0", 5 * 256, 256, 1, 1, 0, 1, false);
        nn_bn_decl(b, &m->a3_proj_bn, "classifier.0.project.1", 256, true);
        nn_conv_decl(b, &m->h_conv, gc, "classifier.1", 256, 256, 3, 1, 1, 1, false);
        nn_bn_decl(b, &m->h_bn, "classifier.2", 256, true);
        nn_conv_decl(b, &m->h_cls, gc, "classifier.4", 256, C, 1, 1, 0, 1, true);
        if (m->o.aux) {
            nn_conv_decl(b, &m->aux_conv, gc, "aux_classifier.0", m->ch_mid, 256, 3, 1, 1, 1, false);
            nn_bn_decl(b, &m->aux_bn, "aux_classifier.1", 256, true);
            nn_conv_decl(b, &m->aux_cls, gc, "aux_classifier.4", 256, C, 1, 1, 0, 1, true);
        }
        break;
    }
    case HEAD_PSP:
        for (int i = 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "ppm.features.%d.1", i);
            nn_conv_decl(b, &m->ppm[i], gc, nm, m->ch_feat, m->ch_feat / 4, 1, 1, 0, 1, false);
            snprintf(nm, sizeof nm, "ppm.features.%d.2", i);
            nn_bn_decl(b, &m->ppm_bn[i], nm, m->ch_feat / 4, true);
        }
        nn_conv_decl(b, &m->h_conv, gc, "cls.0", 2 * m->ch_feat, 512, 3, 1, 1, 1, false);
        nn_bn_decl(b, &m->h_bn, "cls.1", 512, true);
        nn_conv_decl(b, &m->h_cls, gc, "cls.4", 512, C, 1, 1, 0, 1, true);
        if (m->o.aux) {
            nn_conv_decl(b, &m->aux_conv, gc, "aux.0", m->ch_mid, 256, 3, 1, 1, 1, false);
            nn_bn_decl(b, &m->aux_bn, "aux.1", 256, true);
            nn_conv_decl(b, &m->aux_cls, gc, "aux.4", 256, C, 1, 1, 0, 1, true);
        }
        break;
    }
}

static sd_status model_build(const sd_model_opts *o, bool alloc, sd_model **out)
{
    *out = NULL;
    const model_def *d = find_def(o ? o->name : NULL);
    if (!d) {
        char names[512];
        size_t off = 0;
        for (int i = 0; i < N_DEFS && off < sizeof names; i++)
            off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "", defs[i].name);
        return sd_fail(SD_ERR_ARG, "unknown model '%s' (known: %s)", o && o->name ? o->name : "(null)", names);
    }
    if (o->classes < 1 || o->classes > 1000)
        return sd_fail(SD_ERR_ARG, "%s: --classes %d, expected 1..1000", d->name, o->classes);
    int os = o->output_stride ? o->output_stride : 8;
    if (os != 8 && !(os == 16 && d->arch == ARCH_RESNET))
        return sd_fail(SD_ERR_ARG, "%s: output stride %d, expected 8%s", d->name, os,
                       d->arch == ARCH_RESNET ? " or 16" : "");
    sd_model *m = calloc(1, sizeof *m);
    if (!m)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory", d->name);
    m->o = *o;
    snprintf(m->name, sizeof m->name, "%s", d->name);
    m->o.name = m->name;
    m->o.output_stride = os;
    m->def = d;
    sd_params_init(&m->params);
    m->b.p = &m->params;
    m->b.g_backbone = sd_params_add_group(&m->params, "backbone", 1, 1, false);
    m->b.g_classifier = sd_params_add_group(&m->params, "classifier", 10, 1, false);
    m->b.g_norm = sd_params_add_group(&m->params, "norm", 1, 1, false);
    m->b.g_buffer = sd_params_add_group(&m->params, "bn", 0, 0, true);
    sd_status st = d->arch == ARCH_RESNET ? decl_resnet(m, os) : (decl_vgg(m), m->b.st);
    if (!st) {
        decl_heads(m);
        st = m->b.st;
    }
    if (!st && alloc) {
        st = sd_params_alloc(&m->params);
        if (!st && o->bn != SD_BN_TRAIN)
            sd_params_set_frozen(&m->params, m->b.g_norm, true);
    }
    if (st) {
        sd_fail_prefix(st, "building %s", d->name);
        sd_model_free(m);
        return st;
    }
    *out = m;
    return SD_OK;
}

sd_status nn_model_create_zeroed(const sd_model_opts *o, sd_model **out) { return model_build(o, true, out); }

sd_status sd_model_create(const sd_model_opts *o, sd_model **out)
{
    sd_status st = model_build(o, true, out);
    if (!st)
        sd_model_init_weights(*out, 0);
    return st;
}

void sd_model_free(sd_model *m)
{
    if (!m)
        return;
    for (int s = 0; s < 4; s++)
        free(m->blocks[s]);
    sd_params_free(&m->params);
    free(m);
}

void sd_model_init_weights(sd_model *m, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    sd_params *p = &m->params;
    /* Every conv Kaiming (fan out) as torchvision, every BN 1/0 with unit
     * running variance; then the classifiers get DeepLab's N(0, 0.01). */
    for (int i = 0; i < p->n; i++) {
        sd_tensor *x = p->tensors[i];
        const char *leaf = strrchr(x->name, '.');
        leaf = leaf ? leaf + 1 : x->name;
        if (x->ndim == 4)
            nn_init_kaiming_out(x, &r);
        else if (!strcmp(leaf, "running_var") || (!strcmp(leaf, "weight") && x->ndim == 1))
            nn_init_const(x, 1);
        else
            nn_init_const(x, 0);
    }
    for (int i = 0; i < m->n_aspp; i++) {
        nn_init_normal(m->aspp[i].w, 0.01f, &r);
        if (m->o.aux)
            nn_init_normal(m->aux_aspp[i].w, 0.01f, &r);
    }
    if (m->h_cls.w)
        nn_init_normal(m->h_cls.w, 0.01f, &r);
    if (m->aux_cls.w)
        nn_init_normal(m->aux_cls.w, 0.01f, &r);
}

/* ---- forward ---- */

static bool bn_frozen(const sd_model *m, const nn_bn *bn) { return m->o.bn == SD_BN_FROZEN && !bn->head; }

static const char *const bn_names[SD_BN_COUNT] = {"train", "frozen", "batch-stats"};

const char *sd_bn_mode_name(sd_bn_mode m) { return (unsigned)m < SD_BN_COUNT ? bn_names[m] : "?"; }

sd_status sd_bn_mode_parse(const char *s, sd_bn_mode *out)
{
    for (int i = 0; s && i < SD_BN_COUNT; i++)
        if (!strcmp(s, bn_names[i])) {
            *out = (sd_bn_mode)i;
            return SD_OK;
        }
    return sd_fail(SD_ERR_ARG, "bn '%s': expected frozen, batch-stats or train", s ? s : "(null)");
}

/* Layer code hands every intermediate back with nn_done as soon as its last
 * consumer has run: under no_grad (inference, teachers, pseudo-labels) the
 * memory of a forward pass then stays at a few activations whatever the
 * depth; with gradients the tape keeps them all. */
/* conv, BN, then the residual res (or NULL) and ReLU when relu */
static sd_tensor *cbr_res(nn_ctx *c, sd_model *m, const nn_conv *cv, const nn_bn *bn, sd_tensor *x, sd_tensor *res,
                          bool relu)
{
    return nn_conv_post(c, cv, bn, bn_frozen(m, bn), x, res, relu ? SD_ACT_RELU : SD_ACT_NONE, 0.0f);
}

static sd_tensor *cbr(nn_ctx *c, sd_model *m, const nn_conv *cv, const nn_bn *bn, sd_tensor *x, bool relu)
{
    return cbr_res(c, m, cv, bn, x, NULL, relu);
}

/* x stays the caller's. The block's last conv adds the residual and applies
 * the ReLU in its epilogue (with a downsample, the downsample's conv adds
 * the main path's output). */
static sd_tensor *block_fwd(nn_ctx *c, sd_model *m, const block *bk, sd_tensor *x)
{
    const nn_conv *last = bk->bottleneck ? &bk->c3 : &bk->c2;
    const nn_bn *last_bn = bk->bottleneck ? &bk->b3 : &bk->b2;
    sd_tensor *y = cbr(c, m, &bk->c1, &bk->b1, x, true), *y2;
    if (bk->bottleneck) {
        y2 = cbr(c, m, &bk->c2, &bk->b2, y, true);
        nn_done(c, y, y2);
        y = y2;
    }
    if (!bk->has_down) {
        sd_tensor *out = cbr_res(c, m, last, last_bn, y, x, true);
        nn_done(c, y, out);
        return out;
    }
    y2 = cbr(c, m, last, last_bn, y, false);
    nn_done(c, y, y2);
    sd_tensor *out = cbr_res(c, m, &bk->down, &bk->dbn, x, y2, true);
    nn_done(c, y2, out);
    return out;
}

/* the branches' sum: each conv adds the sum so far in its epilogue */
static sd_tensor *aspp2_fwd(nn_ctx *c, sd_model *m, const nn_conv *br, sd_tensor *x)
{
    sd_tensor *out = nn_conv_fwd(c, &br[0], x);
    for (int i = 1; i < m->n_aspp; i++) {
        sd_tensor *sum = nn_conv_post(c, &br[i], NULL, false, x, out, SD_ACT_NONE, 0.0f);
        nn_done(c, out, sum);
        out = sum;
    }
    return out;
}

static sd_tensor *small_head(nn_ctx *c, sd_model *m, sd_tensor *x)
{
    x = cbr(c, m, &m->aux_conv, &m->aux_bn, x, true);
    return nn_conv_fwd(c, &m->aux_cls, nn_dropout(c, x, 0.1f));
}

static sd_status forward_ctx(sd_model *m, nn_ctx *c, sd_tensor *x, sd_model_out *out)
{
    memset(out, 0, sizeof *out);
    if (!x)
        return c->t->status ? c->t->status : sd_fail(SD_ERR_ARG, "%s: no input", m->name);
    if (x->ndim != 4 || x->shape[1] != 3)
        return sd_fail(SD_ERR_SHAPE, "%s: input %s, expected [N, 3, H, W]", m->name, sd_shape_str(x));
    int H = x->shape[2], W = x->shape[3];
    if (H < 8 || W < 8)
        return sd_fail(SD_ERR_SHAPE, "%s: input %s is smaller than 8x8", m->name, sd_shape_str(x));
    sd_tensor *mid = NULL, *feat, *const input = x, *y;
    /* x becomes y: hand x back unless it is the caller's input or mid */
#define ADVANCE(expr)                                \
    do {                                             \
        y = (expr);                                  \
        if (x != input && x != mid)                  \
            nn_done(c, x, y);                        \
        x = y;                                       \
    } while (0)
    if (m->def->arch == ARCH_RESNET) {
        for (int i = 0; i < m->n_stem; i++)
            ADVANCE(cbr(c, m, &m->stem[i], &m->stem_bn[i], x, true));
        ADVANCE(nn_maxpool(c, x, 3, 2, 1, m->def->ceil_pool));
        for (int s = 0; s < 4; s++) {
            for (int i = 0; i < m->n_blocks[s]; i++)
                ADVANCE(block_fwd(c, m, &m->blocks[s][i], x));
            if (s == 2)
                mid = x;
        }
        feat = x;
    } else {
        for (int i = 0; i < 15; i++) {
            ADVANCE(nn_conv_post(c, &m->vgg[i], NULL, false, x, NULL, SD_ACT_RELU, 0.0f));
            if (i < 13 && vgg_cfg[i].pool_after)
                ADVANCE(nn_maxpool(c, x, 2, 2, 0, false));
            if (i == 9)
                mid = x;
        }
        feat = x;
    }
#undef ADVANCE
    sd_tensor *logits = NULL, *aux = NULL;
    switch (m->def->head) {
    case HEAD_ASPP2:
        logits = aspp2_fwd(c, m, m->aspp, feat);
        if (m->o.aux)
            aux = aspp2_fwd(c, m, m->aux_aspp, mid);
        break;
    case HEAD_ASPP3: {
        sd_tensor *br[5];
        for (int i = 0; i < 4; i++)
            br[i] = cbr(c, m, &m->a3[i], &m->a3_bn[i], feat, true);
        sd_tensor *pooled = nn_adaptive_avg(c, feat, 1, 1);
        pooled = cbr(c, m, &m->a3[4], &m->a3_bn[4], pooled, true);
        br[4] = feat ? nn_resize(c, pooled, feat->shape[2], feat->shape[3], false) : NULL;
        sd_tensor *y = cbr(c, m, &m->a3_proj, &m->a3_proj_bn, nn_concat(c, 5, br), true);
        y = nn_dropout(c, y, 0.5f);
        y = cbr(c, m, &m->h_conv, &m->h_bn, y, true);
        logits = nn_conv_fwd(c, &m->h_cls, y);
        if (m->o.aux)
            aux = small_head(c, m, mid);
        break;
    }
    case HEAD_PSP: {
        sd_tensor *br[5] = {feat};
        for (int i = 0; i < 4; i++) {
            sd_tensor *p = nn_adaptive_avg(c, feat, psp_bins[i], psp_bins[i]);
            p = cbr(c, m, &m->ppm[i], &m->ppm_bn[i], p, true);
            br[i + 1] = feat ? nn_resize(c, p, feat->shape[2], feat->shape[3], true) : NULL;
        }
        sd_tensor *y = cbr(c, m, &m->h_conv, &m->h_bn, nn_concat(c, 5, br), true);
        logits = nn_conv_fwd(c, &m->h_cls, nn_dropout(c, y, 0.1f));
        if (m->o.aux)
            aux = small_head(c, m, mid);
        break;
    }
    }
    if (!logits || (m->o.aux && !aux)) {
        sd_status st = c->t->status ? c->t->status : SD_ERR_ARG;
        return sd_fail_prefix(st, "%s forward", m->name);
    }
    out->logits = logits;
    out->aux_logits = aux;
    out->feat = feat;
    out->mid = mid;
    return SD_OK;
}

sd_status sd_model_forward(sd_model *m, sd_tape *t, sd_tensor *x, bool training, sd_model_out *out)
{
    nn_ctx c = {.t = t, .training = training, .count = false, .bn_keep_running = m->o.bn_keep_running};
    m->last_tape = t;
    return forward_ctx(m, &c, x, out);
}

sd_status sd_model_reestimate_bn(sd_model *m, sd_tape *t, sd_tensor *x, int64_t k)
{
    if (k < 0)
        return sd_fail(SD_ERR_ARG, "%s: BN re-estimation batch index %lld, expected >= 0", m->name, (long long)k);
    nn_ctx c = {.t = t, .training = true, .bn_reestimate = true, .bn_momentum = (float)(1.0 / (double)(k + 1))};
    sd_model_out out;
    m->last_tape = t;
    sd_tape_no_grad_begin(t);
    sd_status st = forward_ctx(m, &c, x, &out);
    sd_tape_no_grad_end(t);
    return st;
}

sd_tensor *sd_model_feature(sd_model *m, const sd_model_out *out, const char *layer)
{
    if (!out || !layer)
        return NULL;
    if (!strcmp(layer, "layer4") || !strcmp(layer, "fc7") || !strcmp(layer, "feat"))
        return out->feat;
    if (!strcmp(layer, "layer3") || !strcmp(layer, "conv4") || !strcmp(layer, "mid"))
        return out->mid;
    if (!strcmp(layer, "conv5") && m->def->arch == ARCH_VGG)
        return out->feat;
    if (!strcmp(layer, "logits"))
        return out->logits;
    if (!strcmp(layer, "aux_logits"))
        return out->aux_logits;
    if (!strcmp(layer, "softmax") && m->last_tape && out->logits)
        return sd_softmax(m->last_tape, out->logits);
    return NULL;
}

sd_params *sd_model_params(sd_model *m) { return &m->params; }
const sd_model_opts *sd_model_options(const sd_model *m) { return &m->o; }

int sd_model_group(const sd_model *m, const char *group_name)
{
    for (int g = 0; g < m->params.n_groups; g++)
        if (!strcmp(m->params.groups[g].name, group_name))
            return g;
    return -1;
}

sd_norm sd_model_default_norm(const char *name)
{
    const model_def *d = find_def(name);
    return d ? d->norm : SD_NORM_IMAGENET;
}

int sd_model_channels(const sd_model *m, const char *layer)
{
    if (!strcmp(layer, "mid") || !strcmp(layer, "layer3") || !strcmp(layer, "conv4"))
        return m->ch_mid;
    if (!strcmp(layer, "feat") || !strcmp(layer, "layer4") || !strcmp(layer, "fc7") || !strcmp(layer, "conv5"))
        return m->ch_feat;
    if (!strcmp(layer, "logits"))
        return m->o.classes;
    return -1;
}

sd_status sd_model_cost(const sd_model_opts *o, int h, int w, size_t *params, double *gflops)
{
    sd_model *m;
    sd_status st = model_build(o, false, &m);
    if (st)
        return st;
    if (params)
        *params = sd_params_count(&m->params, false);
    if (gflops) {
        sd_tape t;
        sd_tape_init(&t, 0);
        sd_arena_free(&t.arena);
        sd_arena_init(&t.arena, 1 << 20);
        nn_ctx c = {.t = &t, .training = false, .count = true};
        sd_tensor *x = sd_arena_calloc(&t.arena, sizeof *x);
        sd_model_out out;
        if (x) {
            x->ndim = 4;
            x->shape[0] = 1;
            x->shape[1] = 3;
            x->shape[2] = h;
            x->shape[3] = w;
            x->numel = (size_t)3 * h * w;
        }
        st = x ? forward_ctx(m, &c, x, &out) : SD_ERR_NOMEM;
        *gflops = 2.0 * c.macs * 1e-9;
        sd_tape_free(&t);
    }
    sd_model_free(m);
    return st;
}
