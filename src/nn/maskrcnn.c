/* Mask R-CNN, ResNet-50-FPN, as torchvision's maskrcnn_resnet50_fpn (names,
 * shapes and eval-mode arithmetic; see include/segda/detect.h): the layers,
 * the inference pipeline and loading/saving. The box arithmetic lives in
 * detect_boxes.c; training (losses, sampling) in maskrcnn_train.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/detect_boxes.h"
#include "nn/maskrcnn.h"
#include "segda/checkpoint.h"
#include "segda/instances.h"
#include "segda/norm.h"

static const int stage_blocks[4] = {3, 4, 6, 3};
static const float anchor_ratios[3] = {0.5f, 1.0f, 2.0f};
static const float rpn_weights[4] = {1, 1, 1, 1}, roi_weights[4] = {10, 10, 5, 5};

sd_detector_opts sd_detector_opts_default(int classes)
{
    sd_detector_opts o = {
        .classes = classes, .min_size = 800, .max_size = 1333, .anchor_size = 32, .rpn_pre_nms = 1000, .rpn_post_nms = 1000,
        .rpn_pre_nms_train = 2000, .rpn_post_nms_train = 2000, .rpn_nms = 0.7f, .score_thresh = 0.05f,
        .nms = 0.5f, .detections = 100, .mask_thresh = 0.5f, .rpn_batch = 256, .rpn_pos_frac = 0.5f,
        .box_batch = 512, .box_pos_frac = 0.25f,
    };
    return o;
}

/* ---- declaration ---- */

static void decl_linear(nn_builder *b, det_linear *l, const char *name, int in, int out)
{
    char nm[128];
    snprintf(nm, sizeof nm, "%s.weight", name);
    l->w = b->st ? NULL : sd_params_declare(b->p, b->g_classifier, nm, 2, (int[]){out, in});
    snprintf(nm, sizeof nm, "%s.bias", name);
    l->b = b->st || !l->w ? NULL : sd_params_declare(b->p, b->g_classifier, nm, 1, (int[]){out});
    if (!l->w || !l->b)
        b->st = SD_ERR_ARG;
    l->in = in;
    l->out = out;
}

static void decl_model(sd_detector *d)
{
    nn_builder *b = &d->b;
    sd_params *p = &d->params;
    sd_params_init(p);
    b->p = p;
    b->g_backbone = sd_params_add_group(p, "backbone", 1.0f, 1.0f, false);
    /* the BN affine and conv1 + layer1 groups: trained or not (det_bn_mode) */
    b->g_norm = sd_params_add_group(p, "backbone_bn", 0.0f, 0.0f, false);
    b->g_classifier = sd_params_add_group(p, "heads", 1.0f, 1.0f, false);
    b->g_buffer = sd_params_add_group(p, "buffers", 0.0f, 0.0f, true);
    d->g_stem = sd_params_add_group(p, "stem", 0.0f, 0.0f, false);
    char nm[128];
    nn_conv_decl(b, &d->conv1, d->g_stem, "backbone.body.conv1", 3, 64, 7, 2, 3, 1, false);
    nn_bn_decl(b, &d->bn1, "backbone.body.bn1", 64, false);
    int inplanes = 64;
    for (int s = 0; s < 4; s++) {
        int planes = 64 << s;
        d->blocks[s] = calloc((size_t)stage_blocks[s], sizeof *d->blocks[s]);
        if (!d->blocks[s]) {
            b->st = SD_ERR_NOMEM;
            return;
        }
        for (int i = 0; i < stage_blocks[s]; i++) {
            det_block *k = &d->blocks[s][i];
            int stride = i == 0 && s > 0 ? 2 : 1, g = s == 0 ? d->g_stem : b->g_backbone;
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.conv1", s + 1, i);
            nn_conv_decl(b, &k->c1, g, nm, inplanes, planes, 1, 1, 0, 1, false);
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.bn1", s + 1, i);
            nn_bn_decl(b, &k->b1, nm, planes, false);
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.conv2", s + 1, i);
            nn_conv_decl(b, &k->c2, g, nm, planes, planes, 3, stride, 1, 1, false);
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.bn2", s + 1, i);
            nn_bn_decl(b, &k->b2, nm, planes, false);
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.conv3", s + 1, i);
            nn_conv_decl(b, &k->c3, g, nm, planes, planes * 4, 1, 1, 0, 1, false);
            snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.bn3", s + 1, i);
            nn_bn_decl(b, &k->b3, nm, planes * 4, false);
            k->has_down = i == 0;
            if (k->has_down) {
                snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.downsample.0", s + 1, i);
                nn_conv_decl(b, &k->dc, g, nm, inplanes, planes * 4, 1, stride, 0, 1, false);
                snprintf(nm, sizeof nm, "backbone.body.layer%d.%d.downsample.1", s + 1, i);
                nn_bn_decl(b, &k->db, nm, planes * 4, false);
            }
            inplanes = planes * 4;
        }
    }
    for (int l = 0; l < 4; l++) {
        snprintf(nm, sizeof nm, "backbone.fpn.inner_blocks.%d.0", l);
        nn_conv_decl(b, &d->fpn_inner[l], b->g_classifier, nm, 256 << l, 256, 1, 1, 0, 1, true);
        snprintf(nm, sizeof nm, "backbone.fpn.layer_blocks.%d.0", l);
        nn_conv_decl(b, &d->fpn_layer[l], b->g_classifier, nm, 256, 256, 3, 1, 1, 1, true);
    }
    nn_conv_decl(b, &d->rpn_conv, b->g_classifier, "rpn.head.conv.0.0", 256, 256, 3, 1, 1, 1, true);
    nn_conv_decl(b, &d->rpn_cls, b->g_classifier, "rpn.head.cls_logits", 256, 3, 1, 1, 0, 1, true);
    nn_conv_decl(b, &d->rpn_bbox, b->g_classifier, "rpn.head.bbox_pred", 256, 12, 1, 1, 0, 1, true);
    decl_linear(b, &d->fc6, "roi_heads.box_head.fc6", 256 * 7 * 7, 1024);
    decl_linear(b, &d->fc7, "roi_heads.box_head.fc7", 1024, 1024);
    decl_linear(b, &d->cls_score, "roi_heads.box_predictor.cls_score", 1024, d->o.classes);
    decl_linear(b, &d->bbox_pred, "roi_heads.box_predictor.bbox_pred", 1024, 4 * d->o.classes);
    for (int i = 0; i < 4; i++) {
        snprintf(nm, sizeof nm, "roi_heads.mask_head.%d.0", i);
        nn_conv_decl(b, &d->mask_fcn[i], b->g_classifier, nm, 256, 256, 3, 1, 1, 1, true);
    }
    /* ConvTranspose2d(256, 256, 2, 2): weight [in, out, 2, 2], declared with nn_conv's [cout, cin] order */
    nn_conv_decl(b, &d->mask_up, b->g_classifier, "roi_heads.mask_predictor.conv5_mask", 256, 256, 2, 2, 0, 1,
                 true);
    nn_conv_decl(b, &d->mask_logits, b->g_classifier, "roi_heads.mask_predictor.mask_fcn_logits", 256,
                 d->o.classes, 1, 1, 0, 1, true);
}

void det_bn_mode(sd_detector *d)
{
    /* torchvision with pretrained weights: FrozenBatchNorm2d, conv1 and
     * layer1 frozen (trainable_backbone_layers=3); without: BatchNorm2d, all
     * five stages trained, weight decay on all as its reference script */
    int g[2] = {d->b.g_norm, d->g_stem};
    for (int i = 0; i < 2; i++) {
        sd_params_set_frozen(&d->params, g[i], !d->o.bn_train);
        d->params.groups[g[i]].lr_mult = d->params.groups[g[i]].wd_mult = d->o.bn_train ? 1.0f : 0.0f;
    }
}

static sd_status detector_build(const sd_detector_opts *o, sd_detector **out)
{
    *out = NULL;
    if (o->classes < 2 || o->classes > 1000)
        return sd_fail(SD_ERR_ARG, "detector: %d classes: expected 2..1000 (background included)", o->classes);
    if (o->min_size < 32 || o->max_size < o->min_size || o->anchor_size < 1 || o->anchor_size > 4096)
        return sd_fail(SD_ERR_ARG, "detector: min_size %d, max_size %d, anchor_size %d: expected 32 <= min_size <= "
                       "max_size and an anchor size in 1..4096", o->min_size, o->max_size, o->anchor_size);
    sd_detector *d = calloc(1, sizeof *d);
    if (!d)
        return sd_fail(SD_ERR_NOMEM, "detector: out of memory");
    d->o = *o;
    decl_model(d);
    sd_status st = d->b.st ? d->b.st : sd_params_alloc(&d->params);
    if (st) {
        sd_detector_free(d);
        return st;
    }
    det_bn_mode(d);
    *out = d;
    return SD_OK;
}

static void init_weights(sd_detector *d, uint64_t seed)
{
    sd_rng r;
    sd_rng_seed(&r, seed);
    nn_init_kaiming_out(d->conv1.w, &r);
    nn_bn_reset(&d->bn1);
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < stage_blocks[s]; i++) {
            det_block *k = &d->blocks[s][i];
            nn_init_kaiming_out(k->c1.w, &r);
            nn_init_kaiming_out(k->c2.w, &r);
            nn_init_kaiming_out(k->c3.w, &r);
            nn_bn_reset(&k->b1);
            nn_bn_reset(&k->b2);
            nn_bn_reset(&k->b3);
            /* a frozen BN at identity statistics cannot normalise: the
             * residual branches start small (scale 0.1, after torchvision's
             * zero_init_residual) so activations stay bounded; a trained BN
             * starts at 1, as torchvision's resnet50 */
            if (!d->o.bn_train)
                nn_init_const(k->b3.w, 0.1f);
            if (k->has_down) {
                nn_init_kaiming_out(k->dc.w, &r);
                nn_bn_reset(&k->db);
            }
        }
    /* torchvision: FPN kaiming_uniform(a=1), RPN/mask heads normal(0.01)
     * or kaiming; box head PyTorch's Linear default, predictor likewise */
    for (int l = 0; l < 4; l++) {
        nn_init_uniform_fanin(d->fpn_inner[l].w, NULL, &r);
        nn_init_uniform_fanin(d->fpn_layer[l].w, NULL, &r);
        nn_init_const(d->fpn_inner[l].b, 0);
        nn_init_const(d->fpn_layer[l].b, 0);
    }
    nn_conv *rpn[3] = {&d->rpn_conv, &d->rpn_cls, &d->rpn_bbox};
    for (int i = 0; i < 3; i++) {
        nn_init_normal(rpn[i]->w, 0.01f, &r);
        nn_init_const(rpn[i]->b, 0);
    }
    det_linear *fc[4] = {&d->fc6, &d->fc7, &d->cls_score, &d->bbox_pred};
    for (int i = 0; i < 4; i++)
        nn_init_uniform_fanin(fc[i]->w, fc[i]->b, &r);
    for (int i = 0; i < 4; i++) {
        nn_init_kaiming_out(d->mask_fcn[i].w, &r);
        nn_init_const(d->mask_fcn[i].b, 0);
    }
    nn_init_kaiming_out(d->mask_up.w, &r);
    nn_init_const(d->mask_up.b, 0);
    nn_init_kaiming_out(d->mask_logits.w, &r);
    nn_init_const(d->mask_logits.b, 0);
}

sd_status sd_detector_create(const sd_detector_opts *o, uint64_t seed, sd_detector **out)
{
    sd_status st = detector_build(o, out);
    if (!st)
        init_weights(*out, seed);
    return st;
}

void sd_detector_free(sd_detector *d)
{
    if (!d)
        return;
    for (int s = 0; s < 4; s++)
        free(d->blocks[s]);
    if (d->tape_ready)
        sd_tape_free(&d->tape);
    sd_params_free(&d->params);
    free(d);
}

sd_detector_opts *sd_detector_options(sd_detector *d) { return &d->o; }
sd_params *sd_detector_params(sd_detector *d) { return &d->params; }

sd_status sd_detector_load(const char *path, sd_detector **out)
{
    *out = NULL;
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return st;
    const char *model = sd_ckpt_meta(&c, SD_META_MODEL);
    if (!model || strcmp(model, SD_DETECTOR_MODEL)) {
        st = sd_fail(SD_ERR_FORMAT,
                     "%s: metadata \"model\" is \"%s\", expected a detector (\"%s\"; convert torchvision's "
                     "maskrcnn_resnet50_fpn weights with tools/pth2safetensors.py, or train one with segda train "
                     "--method detect)%s",
                     path, model ? model : "(none)", SD_DETECTOR_MODEL,
                     model ? ": a segmentation network goes to --init/--model, not --detector" : "");
        sd_ckpt_close(&c);
        return st;
    }
    int classes = 0;
    const char *cv = sd_ckpt_meta(&c, SD_META_CLASSES);
    if (cv)
        classes = atoi(cv);
    int k = sd_st_find(&c.st, "roi_heads.box_predictor.cls_score.weight");
    if (!cv && k >= 0)
        classes = (int)c.st.tensors[k].shape[0];
    sd_detector_opts o = sd_detector_opts_default(classes);
    /* the input and anchor sizes it was trained at (files without them: torchvision's) */
    const char *keys[3] = {SD_META_DET_MIN_SIZE, SD_META_DET_MAX_SIZE, SD_META_DET_ANCHOR};
    int *vals[3] = {&o.min_size, &o.max_size, &o.anchor_size};
    for (int i = 0; i < 3; i++) {
        const char *v = sd_ckpt_meta(&c, keys[i]);
        if (v)
            *vals[i] = atoi(v);
    }
    const char *bn = sd_ckpt_meta(&c, SD_META_DET_BN);   /* (files without it: frozen) */
    o.bn_train = bn && !strcmp(bn, "train");
    sd_detector *d = NULL;
    if (!(st = detector_build(&o, &d)))
        st = sd_ckpt_load_params(&c, "", &d->params, true, NULL);
    if (st) {
        sd_detector_free(d);
        d = NULL;
        if (!strstr(sd_errmsg(), path))
            sd_fail_prefix(st, "%s", path);
    }
    sd_ckpt_close(&c);
    *out = d;
    return st;
}

sd_status sd_detector_write_meta(const sd_detector *d, sd_ckpt_writer *w)
{
    const char *keys[4] = {SD_META_CLASSES, SD_META_DET_MIN_SIZE, SD_META_DET_MAX_SIZE, SD_META_DET_ANCHOR};
    int vals[4] = {d->o.classes, d->o.min_size, d->o.max_size, d->o.anchor_size};
    sd_status st = sd_ckpt_writer_set_meta(w, SD_META_MODEL, SD_DETECTOR_MODEL);
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_NORM, "imagenet");
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_FORMAT, "segda");
    char buf[16];
    for (int i = 0; i < 4 && !st; i++) {
        snprintf(buf, sizeof buf, "%d", vals[i]);
        st = sd_ckpt_writer_set_meta(w, keys[i], buf);
    }
    if (!st)
        st = sd_ckpt_writer_set_meta(w, SD_META_DET_BN, d->o.bn_train ? "train" : "frozen");
    return st;
}

sd_status sd_detector_save(sd_detector *d, const char *path)
{
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    sd_status st = sd_ckpt_writer_add_params(&w, "", &d->params);
    if (!st)
        st = sd_detector_write_meta(d, &w);
    if (!st)
        st = sd_ckpt_writer_save(&w, path);
    sd_ckpt_writer_free(&w);
    return st;
}

/* ---- forward pieces ---- */

/* bn_train: BatchNorm2d (batch statistics in training), else FrozenBatchNorm2d */
static sd_tensor *cbr(nn_ctx *c, const sd_detector *d, const nn_conv *cv, const nn_bn *bn, sd_tensor *x, bool relu)
{
    sd_tensor *y = nn_bn_fwd(c, bn, nn_conv_fwd(c, cv, x), !d->o.bn_train);
    return relu ? nn_relu(c, y) : y;
}

static sd_tensor *block_fwd(nn_ctx *c, const sd_detector *d, const det_block *k, sd_tensor *x)
{
    sd_tensor *y = cbr(c, d, &k->c1, &k->b1, x, true);
    y = cbr(c, d, &k->c2, &k->b2, y, true);
    y = cbr(c, d, &k->c3, &k->b3, y, false);
    sd_tensor *id = k->has_down ? cbr(c, d, &k->dc, &k->db, x, false) : x;
    return nn_relu(c, nn_add(c, y, id));
}

/* x [rows][cols] -> [cols][rows], a gather of single elements (the op
 * registry has no transpose; gather has forward, backward and CUDA). */
static sd_tensor *transpose2(nn_ctx *c, sd_tensor *x, int rows, int cols)
{
    int32_t *idx = x ? malloc((size_t)rows * cols * sizeof *idx) : NULL;
    if (!idx)
        return x ? sd_tape_fail(c->t, SD_ERR_NOMEM, "detector: out of memory transposing %dx%d", rows, cols) : NULL;
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++)
            idx[(size_t)j * rows + i] = i * cols + j;
    sd_tensor *y = sd_gather(c->t, x, rows * cols, idx, 1);
    free(idx);
    return y ? sd_reshape(c->t, y, 2, (int[]){cols, rows}) : NULL;
}

/* y = x W^T + b for x [k][in]. As one 1x1 convolution of a single image
 * whose k pixels are the rows ([1, in, k, 1]): one GEMM with the weights
 * packed once. A batch of k 1x1 images would be k matrix-vector products,
 * each repacking the whole weight matrix (fc6 is 1024 x 12544): that was
 * most of a training step at the benchmark's size. */
sd_tensor *det_linear_fwd(nn_ctx *c, const det_linear *l, sd_tensor *x, bool relu)
{
    if (!x)
        return NULL;
    int k = x->shape[0];
    sd_tensor *xt = transpose2(c, x, k, l->in);
    sd_tensor *x4 = xt ? sd_reshape(c->t, xt, 4, (int[]){1, l->in, k, 1}) : NULL;
    sd_tensor *w4 = sd_reshape(c->t, l->w, 4, (int[]){l->out, l->in, 1, 1});
    sd_tensor *y = x4 ? sd_conv2d(c->t, x4, w4, l->b, sd_conv_opts_default()) : NULL;
    y = y ? transpose2(c, y, l->out, k) : NULL;
    return relu ? nn_relu(c, y) : y;
}

sd_status det_features(sd_detector *d, nn_ctx *c, sd_tensor *x, sd_tensor *feat[5])
{
    sd_tensor *y = cbr(c, d, &d->conv1, &d->bn1, x, true);
    y = nn_maxpool(c, y, 3, 2, 1, false);
    sd_tensor *cs[4];
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < stage_blocks[s]; i++)
            y = block_fwd(c, d, &d->blocks[s][i], y);
        cs[s] = y;
    }
    sd_tensor *inner = nn_conv_fwd(c, &d->fpn_inner[3], cs[3]);
    feat[3] = nn_conv_fwd(c, &d->fpn_layer[3], inner);
    for (int l = 2; l >= 0; l--) {
        sd_tensor *lat = nn_conv_fwd(c, &d->fpn_inner[l], cs[l]);
        sd_tensor *up = lat ? sd_resize_nearest(c->t, inner, lat->shape[2], lat->shape[3]) : NULL;
        inner = nn_add(c, lat, up);
        feat[l] = nn_conv_fwd(c, &d->fpn_layer[l], inner);
    }
    feat[4] = nn_maxpool(c, feat[3], 1, 2, 0, false); /* LastLevelMaxPool */
    for (int l = 0; l < 5; l++)
        if (!feat[l])
            return c->t->status ? c->t->status : SD_ERR_ARG;
    return SD_OK;
}

/* Copies a tensor to a fresh host buffer (NULL + message on failure). */
float *det_host_copy(const sd_tensor *x)
{
    float *h = x ? malloc(x->numel * sizeof *h) : NULL;
    if (!h || sd_tensor_to_host(x, h)) {
        free(h);
        sd_fail(SD_ERR_NOMEM, "detector: out of memory copying %s", x ? sd_shape_str(x) : "?");
        return NULL;
    }
    return h;
}

sd_status det_rpn_head(sd_detector *d, nn_ctx *c, sd_tensor *feat[5], det_rpn_out *r)
{
    for (int l = 0; l < 5; l++) {
        sd_tensor *h = nn_relu(c, nn_conv_fwd(c, &d->rpn_conv, feat[l]));
        r->logits[l] = nn_conv_fwd(c, &d->rpn_cls, h);
        r->deltas[l] = nn_conv_fwd(c, &d->rpn_bbox, h);
        if (!r->logits[l] || !r->deltas[l])
            return c->t->status ? c->t->status : SD_ERR_ARG;
        r->h[l] = feat[l]->shape[2];
        r->w[l] = feat[l]->shape[3];
    }
    return SD_OK;
}

/* Anchors of every level for a padded input in_h x in_w: [total][4], with
 * the per-level counts; sides size << level (torchvision: 32..512), strides
 * by integer division as torchvision's. */
float *det_anchors(const det_rpn_out *r, int in_h, int in_w, int size, int counts[5])
{
    size_t total = 0;
    for (int l = 0; l < 5; l++) {
        counts[l] = r->h[l] * r->w[l] * 3;
        total += (size_t)counts[l];
    }
    float *a = malloc(total * 4 * sizeof *a);
    if (!a) {
        sd_fail(SD_ERR_NOMEM, "detector: out of memory for %zu anchors", total);
        return NULL;
    }
    size_t off = 0;
    for (int l = 0; l < 5; l++) {
        sd_box_anchors(r->h[l], r->w[l], in_h / r->h[l], in_w / r->w[l], (float)(size << l), 3, anchor_ratios,
                       a + off * 4);
        off += (size_t)counts[l];
    }
    return a;
}

/* Host copies of the RPN outputs in torchvision's order (cell-major, anchor
 * minor): logits [total], deltas [total][4]. */
sd_status det_rpn_host(const det_rpn_out *r, float **logits, float **deltas)
{
    size_t total = 0;
    for (int l = 0; l < 5; l++)
        total += (size_t)r->h[l] * r->w[l] * 3;
    *logits = malloc(total * sizeof **logits);
    *deltas = malloc(total * 4 * sizeof **deltas);
    if (!*logits || !*deltas)
        return sd_fail(SD_ERR_NOMEM, "detector: out of memory for %zu anchors", total);
    size_t off = 0;
    for (int l = 0; l < 5; l++) {
        size_t hw = (size_t)r->h[l] * r->w[l];
        float *lg = det_host_copy(r->logits[l]), *dl = det_host_copy(r->deltas[l]);
        if (!lg || !dl) {
            free(lg);
            free(dl);
            return SD_ERR_NOMEM;
        }
        for (size_t p = 0; p < hw; p++)
            for (int a = 0; a < 3; a++) {
                (*logits)[off + p * 3 + a] = lg[a * hw + p];
                for (int j = 0; j < 4; j++)
                    (*deltas)[(off + p * 3 + a) * 4 + j] = dl[(a * 4 + j) * hw + p];
            }
        off += hw * 3;
        free(lg);
        free(dl);
    }
    return SD_OK;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

int det_proposals(const sd_detector *d, bool training, const float *anchors, const int counts[5], const float *logits,
                  const float *deltas, int img_h, int img_w, float **out)
{
    int pre = training ? d->o.rpn_pre_nms_train : d->o.rpn_pre_nms;
    int post = training ? d->o.rpn_post_nms_train : d->o.rpn_post_nms;
    size_t total = 0;
    for (int l = 0; l < 5; l++)
        total += (size_t)counts[l];
    int *sel = malloc(total * sizeof *sel), *lvl = malloc(total * sizeof *lvl), *keep = malloc(total * sizeof *keep);
    float *boxes = malloc(total * 4 * sizeof *boxes), *scores = malloc(total * sizeof *scores);
    int n = 0, m = 0;
    *out = NULL;
    if (!sel || !lvl || !keep || !boxes || !scores) {
        sd_fail(SD_ERR_NOMEM, "detector: out of memory for proposals");
        m = -1;
        goto done;
    }
    size_t off = 0;
    for (int l = 0; l < 5; l++) {
        int k = sd_box_topk(counts[l], logits + off, pre, sel + n);
        for (int i = 0; i < k; i++) {
            size_t a = off + (size_t)sel[n + i];
            sd_box_decode(1, deltas + 4 * a, anchors + 4 * a, rpn_weights, boxes + 4 * (n + i));
            scores[n + i] = sigmoidf(logits[a]);
            lvl[n + i] = l;
        }
        n += k;
        off += (size_t)counts[l];
    }
    sd_box_clip(n, boxes, img_h, img_w);
    int v = 0; /* remove_small_boxes(1e-3) and the score threshold 0 */
    for (int i = 0; i < n; i++) {
        float *b = boxes + 4 * i;
        if (b[2] - b[0] >= 1e-3f && b[3] - b[1] >= 1e-3f && scores[i] >= 0.0f) {
            memmove(boxes + 4 * v, b, 4 * sizeof *b);
            scores[v] = scores[i];
            lvl[v] = lvl[i];
            v++;
        }
    }
    m = sd_box_nms(v, boxes, scores, lvl, d->o.rpn_nms, keep);
    if (m > post)
        m = post;
    *out = malloc((size_t)(m > 0 ? m : 1) * 4 * sizeof **out);
    if (!*out) {
        sd_fail(SD_ERR_NOMEM, "detector: out of memory for proposals");
        m = -1;
        goto done;
    }
    for (int i = 0; i < m; i++)
        memcpy(*out + 4 * i, boxes + 4 * keep[i], 4 * sizeof(float));
done:
    free(sel);
    free(lvl);
    free(keep);
    free(boxes);
    free(scores);
    return m;
}

/* MultiScaleRoIAlign over P2..P5: each box pooled on the level of its size.
 * Returns [n, 256, out, out] with rows grouped by level; perm[r] is the box
 * of row r. */
sd_tensor *det_roi_pool(nn_ctx *c, sd_tensor *feat[5], int img_h, int n, const float *boxes, int out_size,
                        int *perm)
{
    float *rois = malloc((size_t)(n > 0 ? n : 1) * 5 * sizeof *rois);
    int *level = malloc((size_t)(n > 0 ? n : 1) * sizeof *level);
    sd_tensor *parts[4] = {0};
    int np = 0, r = 0;
    sd_tensor *y = NULL;
    if (!rois || !level) {
        sd_tape_fail(c->t, SD_ERR_NOMEM, "detector: out of memory pooling %d boxes", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const float *b = boxes + 4 * i;
        float s = sqrtf((b[2] - b[0]) * (b[3] - b[1]));
        float k = floorf(4.0f + log2f(s / 224.0f) + 1e-6f);
        level[i] = (int)fminf(fmaxf(k, 2.0f), 5.0f) - 2;
    }
    for (int l = 0; l < 4; l++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (level[i] == l) {
                rois[5 * k] = 0;
                memcpy(rois + 5 * k + 1, boxes + 4 * i, 4 * sizeof(float));
                perm[r + k] = i;
                k++;
            }
        if (!k)
            continue;
        /* _infer_scale: 2^round(log2(feature / image)) from the heights */
        float scale = exp2f(roundf(log2f((float)feat[l]->shape[2] / (float)img_h)));
        parts[np++] = sd_roi_align(c->t, feat[l], k, rois, out_size, out_size, scale, 2, false);
        r += k;
    }
    y = np == 1 ? parts[0] : sd_concat(c->t, np, parts, 0);
done:
    free(rois);
    free(level);
    return y;
}

sd_tensor *det_mask_logits(sd_detector *d, nn_ctx *c, sd_tensor *pooled)
{
    sd_tensor *y = pooled;
    for (int i = 0; i < 4; i++)
        y = nn_relu(c, nn_conv_fwd(c, &d->mask_fcn[i], y));
    sd_conv_opts up = sd_conv_opts_make(2, 0, 1);
    y = nn_relu(c, y ? sd_conv_transpose2d(c->t, y, d->mask_up.w, d->mask_up.b, up) : NULL);
    return nn_conv_fwd(c, &d->mask_logits, y);
}

/* ---- inference ---- */

/* COCO category ids (torchvision's 91-way labels) of the Cityscapes things */
static int coco_to_train_id(int label)
{
    switch (label) {
        case 1: return 11; /* person */
        case 3: return 13; /* car */
        case 8: return 14; /* truck */
        case 6: return 15; /* bus */
        case 7: return 16; /* train */
        case 4: return 17; /* motorcycle */
        case 2: return 18; /* bicycle */
        default: return -1;
    }
}

int sd_detector_train_id(const sd_detector *d, int label)
{
    if (d->o.classes == 1 + SD_NUM_THING_CLASSES)
        return label >= 1 && label <= SD_NUM_THING_CLASSES ? SD_FIRST_THING_TRAIN_ID - 1 + label : -1;
    if (d->o.classes == 91)
        return coco_to_train_id(label);
    return -1;
}

sd_tensor *det_input(sd_detector *d, sd_tape *t, const uint8_t *rgb, int w, int h, int *img_h, int *img_w)
{
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    sd_tensor *x = sd_tensor_new4(t, 1, 3, h, w);
    float *hx = malloc((size_t)3 * w * h * sizeof *hx);
    if (!x || !hx) {
        free(hx);
        return sd_tape_fail(t, SD_ERR_NOMEM, "detector: out of memory for a %dx%d image", w, h);
    }
    for (int ch = 0; ch < 3; ch++)
        for (size_t p = 0; p < (size_t)w * h; p++)
            hx[ch * (size_t)w * h + p] = ((float)rgb[p * 3 + ch] / 255.0f - mean[ch]) / std[ch];
    sd_tensor_from_host(x, hx);
    free(hx);
    double smin = w < h ? w : h, smax = w < h ? h : w;
    double scale = fmin(d->o.min_size / smin, d->o.max_size / smax);
    *img_h = (int)floor(h * scale);
    *img_w = (int)floor(w * scale);
    sd_tensor *y = sd_resize_bilinear(t, x, *img_h, *img_w, false);
    int ph = (*img_h + 31) / 32 * 32, pw = (*img_w + 31) / 32 * 32;
    return ph == *img_h && pw == *img_w ? y : sd_pad2d(t, y, 0, ph - *img_h, 0, pw - *img_w, false);
}

/* paste_masks_in_image with padding 1 (torchvision's expand_masks and
 * expand_boxes), then the probability threshold. */
static void paste_mask(const float *m28, int M, const float *box, int W, int H, float thresh, uint8_t *out)
{
    int P = M + 2;
    float scale = (float)P / (float)M;
    float wh = (box[2] - box[0]) * 0.5f * scale, hh = (box[3] - box[1]) * 0.5f * scale;
    float xc = (box[2] + box[0]) * 0.5f, yc = (box[3] + box[1]) * 0.5f;
    int b0 = (int)(xc - wh), b1 = (int)(yc - hh), b2 = (int)(xc + wh), b3 = (int)(yc + hh);
    int w = b2 - b0 + 1, h = b3 - b1 + 1;
    w = w > 1 ? w : 1;
    h = h > 1 ? h : 1;
    memset(out, 0, (size_t)W * H);
    int x0 = b0 > 0 ? b0 : 0, x1 = b2 + 1 < W ? b2 + 1 : W, y0 = b1 > 0 ? b1 : 0, y1 = b3 + 1 < H ? b3 + 1 : H;
    /* bilinear (align_corners false) from the padded P x P mask to h x w */
    float sy = (float)P / h, sx = (float)P / w;
    for (int y = y0; y < y1; y++) {
        float fy = ((y - b1) + 0.5f) * sy - 0.5f;
        fy = fy < 0 ? 0 : fy;
        int iy = (int)fy, iy1 = iy + 1 < P ? iy + 1 : P - 1;
        float ly = fy - iy;
        for (int x = x0; x < x1; x++) {
            float fx = ((x - b0) + 0.5f) * sx - 0.5f;
            fx = fx < 0 ? 0 : fx;
            int ix = (int)fx, ix1 = ix + 1 < P ? ix + 1 : P - 1;
            float lx = fx - ix;
#define PM(r, c) ((r) >= 1 && (r) <= M && (c) >= 1 && (c) <= M ? m28[((r)-1) * M + (c)-1] : 0.0f)
            float v = (1 - ly) * ((1 - lx) * PM(iy, ix) + lx * PM(iy, ix1)) +
                      ly * ((1 - lx) * PM(iy1, ix) + lx * PM(iy1, ix1));
#undef PM
            out[(size_t)y * W + x] = v > thresh;
        }
    }
}

static sd_status run_predict(sd_detector *d, const uint8_t *rgb, int w, int h, sd_detections *out,
                             sd_detector_trace *tr)
{
    memset(out, 0, sizeof *out);
    if (tr)
        memset(tr, 0, sizeof *tr);
    if (!rgb || w < 1 || h < 1)
        return sd_fail(SD_ERR_ARG, "detector: image %dx%d: expected a non-empty RGB image", w, h);
    out->w = w;
    out->h = h;
    sd_tape t;
    sd_status st = sd_tape_init(&t, 0);
    if (st)
        return st;
    t.training = false;
    sd_tape_no_grad_begin(&t);
    nn_ctx c = {.t = &t};
    int img_h, img_w, counts[5], n_props = 0, C = d->o.classes;
    sd_tensor *feat[5];
    det_rpn_out rpn = {0};
    float *anchors = NULL, *logits = NULL, *deltas = NULL, *props = NULL, *cls = NULL, *reg = NULL;
    float *dboxes = NULL, *dscores = NULL, *mprob = NULL;
    int *dlabels = NULL, *perm = NULL, *keep = NULL, n_det = 0;
    sd_tensor *x = det_input(d, &t, rgb, w, h, &img_h, &img_w);
    if (!x) {
        st = t.status;
        goto done;
    }
    if (tr) {
        tr->in_h = x->shape[2];
        tr->in_w = x->shape[3];
        tr->img_h = img_h;
        tr->img_w = img_w;
        tr->input = det_host_copy(x);
    }
    if ((st = det_features(d, &c, x, feat)) || (st = det_rpn_head(d, &c, feat, &rpn)))
        goto done;
    if (tr)
        for (int l = 0; l < 5; l++) {
            tr->feat_h[l] = feat[l]->shape[2];
            tr->feat_w[l] = feat[l]->shape[3];
            tr->feat[l] = det_host_copy(feat[l]);
        }
    if (!(anchors = det_anchors(&rpn, x->shape[2], x->shape[3], d->o.anchor_size, counts)) || (st = det_rpn_host(&rpn, &logits, &deltas)))
        goto fail;
    n_props = det_proposals(d, false, anchors, counts, logits, deltas, img_h, img_w, &props);
    if (n_props < 0)
        goto fail;
    if (tr) {
        tr->n_props = n_props;
        tr->props = malloc((size_t)(n_props ? n_props : 1) * 4 * sizeof(float));
        if (tr->props)
            memcpy(tr->props, props, (size_t)n_props * 4 * sizeof(float));
    }
    if (n_props == 0)
        goto done;
    perm = malloc((size_t)n_props * sizeof *perm);
    if (!perm)
        goto fail;
    sd_tensor *pooled = det_roi_pool(&c, feat, img_h, n_props, props, 7, perm);
    sd_tensor *flat = pooled ? sd_reshape(&t, pooled, 2, (int[]){n_props, 256 * 7 * 7}) : NULL;
    sd_tensor *hid = det_linear_fwd(&c, &d->fc7, det_linear_fwd(&c, &d->fc6, flat, true), true);
    sd_tensor *lg = det_linear_fwd(&c, &d->cls_score, hid, false), *rg = det_linear_fwd(&c, &d->bbox_pred, hid, false);
    float *lgh = lg ? det_host_copy(lg) : NULL, *rgh = rg ? det_host_copy(rg) : NULL;
    cls = malloc((size_t)n_props * C * sizeof *cls);
    reg = malloc((size_t)n_props * C * 4 * sizeof *reg);
    if (!lgh || !rgh || !cls || !reg) {
        free(lgh);
        free(rgh);
        st = t.status ? t.status : SD_ERR_NOMEM;
        goto done;
    }
    for (int r = 0; r < n_props; r++) { /* back to the proposals' order */
        memcpy(cls + (size_t)perm[r] * C, lgh + (size_t)r * C, (size_t)C * sizeof *cls);
        memcpy(reg + (size_t)perm[r] * C * 4, rgh + (size_t)r * C * 4, (size_t)C * 4 * sizeof *reg);
    }
    free(lgh);
    free(rgh);
    if (tr) {
        tr->class_logits = malloc((size_t)n_props * C * sizeof(float));
        tr->box_regression = malloc((size_t)n_props * C * 4 * sizeof(float));
        if (tr->class_logits && tr->box_regression) {
            memcpy(tr->class_logits, cls, (size_t)n_props * C * sizeof(float));
            memcpy(tr->box_regression, reg, (size_t)n_props * C * 4 * sizeof(float));
        }
    }
    /* postprocess_detections: softmax, per-class boxes, threshold, small
     * boxes, per-class NMS, the best `detections` */
    size_t cand = (size_t)n_props * (C - 1);
    float *cb = malloc(cand * 4 * sizeof *cb), *cs = malloc(cand * sizeof *cs);
    int *cl = malloc(cand * sizeof *cl);
    keep = malloc(cand * sizeof *keep);
    if (!cb || !cs || !cl || !keep) {
        free(cb);
        free(cs);
        free(cl);
        goto fail;
    }
    int nc = 0;
    for (int i = 0; i < n_props; i++) {
        float *z = cls + (size_t)i * C, mx = z[0], sum = 0;
        for (int j = 1; j < C; j++)
            mx = fmaxf(mx, z[j]);
        for (int j = 0; j < C; j++)
            sum += expf(z[j] - mx);
        for (int j = 1; j < C; j++) {
            float s = expf(z[j] - mx) / sum, b[4];
            sd_box_decode(1, reg + ((size_t)i * C + j) * 4, props + 4 * i, roi_weights, b);
            sd_box_clip(1, b, img_h, img_w);
            if (!(s > d->o.score_thresh) || b[2] - b[0] < 1e-2f || b[3] - b[1] < 1e-2f)
                continue;
            memcpy(cb + 4 * nc, b, sizeof b);
            cs[nc] = s;
            cl[nc] = j;
            nc++;
        }
    }
    n_det = sd_box_nms(nc, cb, cs, cl, d->o.nms, keep);
    if (n_det > d->o.detections)
        n_det = d->o.detections;
    dboxes = malloc((size_t)(n_det ? n_det : 1) * 4 * sizeof *dboxes);
    dscores = malloc((size_t)(n_det ? n_det : 1) * sizeof *dscores);
    dlabels = malloc((size_t)(n_det ? n_det : 1) * sizeof *dlabels);
    if (dboxes && dscores && dlabels)
        for (int i = 0; i < n_det; i++) {
            memcpy(dboxes + 4 * i, cb + 4 * keep[i], 4 * sizeof(float));
            dscores[i] = cs[keep[i]];
            dlabels[i] = cl[keep[i]];
        }
    free(cb);
    free(cs);
    free(cl);
    if (!dboxes || !dscores || !dlabels)
        goto fail;
    if (n_det > 0) { /* the mask branch on the detections */
        int *mperm = realloc(perm, (size_t)(n_props > n_det ? n_props : n_det) * sizeof *perm);
        if (!mperm)
            goto fail;
        perm = mperm;
        sd_tensor *mp = det_roi_pool(&c, feat, img_h, n_det, dboxes, 14, perm);
        sd_tensor *ml = mp ? det_mask_logits(d, &c, mp) : NULL;
        float *mlh = ml ? det_host_copy(ml) : NULL;
        mprob = malloc((size_t)n_det * 28 * 28 * sizeof *mprob);
        if (!mlh || !mprob) {
            free(mlh);
            st = t.status ? t.status : SD_ERR_NOMEM;
            goto done;
        }
        for (int r = 0; r < n_det; r++) {
            int i = perm[r];
            const float *src = mlh + ((size_t)r * C + dlabels[i]) * 28 * 28;
            for (int p = 0; p < 28 * 28; p++)
                mprob[(size_t)i * 28 * 28 + p] = sigmoidf(src[p]);
        }
        free(mlh);
    }
    if (tr) {
        tr->n_det = n_det;
        size_t nd = (size_t)(n_det ? n_det : 1);
        tr->det_boxes = malloc(nd * 4 * sizeof(float));
        tr->det_scores = malloc(nd * sizeof(float));
        tr->det_labels = malloc(nd * sizeof(int));
        tr->mask_probs = malloc(nd * 28 * 28 * sizeof(float));
        if (tr->det_boxes && tr->det_scores && tr->det_labels && tr->mask_probs && n_det) {
            memcpy(tr->det_boxes, dboxes, (size_t)n_det * 4 * sizeof(float));
            memcpy(tr->det_scores, dscores, (size_t)n_det * sizeof(float));
            memcpy(tr->det_labels, dlabels, (size_t)n_det * sizeof(int));
            memcpy(tr->mask_probs, mprob, (size_t)n_det * 28 * 28 * sizeof(float));
        }
    }
    out->d = calloc((size_t)(n_det ? n_det : 1), sizeof *out->d);
    if (!out->d)
        goto fail;
    /* transform.postprocess: boxes back to the input image, masks pasted */
    float rh = (float)h / (float)img_h, rw = (float)w / (float)img_w;
    for (int i = 0; i < n_det; i++) {
        sd_detection *e = &out->d[i];
        e->label = dlabels[i];
        e->train_id = sd_detector_train_id(d, dlabels[i]);
        e->score = dscores[i];
        e->box[0] = dboxes[4 * i] * rw;
        e->box[1] = dboxes[4 * i + 1] * rh;
        e->box[2] = dboxes[4 * i + 2] * rw;
        e->box[3] = dboxes[4 * i + 3] * rh;
        e->mask = malloc((size_t)w * h);
        if (!e->mask)
            goto fail;
        out->n = i + 1;
        paste_mask(mprob + (size_t)i * 28 * 28, 28, e->box, w, h, d->o.mask_thresh, e->mask);
    }
    goto done;
fail:
    if (!st)
        st = sd_errmsg()[0] && t.status ? t.status : sd_fail(SD_ERR_NOMEM, "detector: out of memory");
done:
    if (!st && t.status)
        st = t.status;
    free(anchors);
    free(logits);
    free(deltas);
    free(props);
    free(cls);
    free(reg);
    free(dboxes);
    free(dscores);
    free(dlabels);
    free(mprob);
    free(perm);
    free(keep);
    sd_tape_free(&t);
    if (st) {
        sd_detections_free(out);
        if (tr)
            sd_detector_trace_free(tr);
    }
    return st;
}

sd_status sd_detector_predict(sd_detector *d, const uint8_t *rgb, int w, int h, sd_detections *out)
{
    return run_predict(d, rgb, w, h, out, NULL);
}

sd_status sd_detector_predict_trace(sd_detector *d, const uint8_t *rgb, int w, int h, sd_detections *out,
                                    sd_detector_trace *trace)
{
    return run_predict(d, rgb, w, h, out, trace);
}

void sd_detections_free(sd_detections *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        free(r->d[i].mask);
    free(r->d);
    r->d = NULL;
    r->n = 0;
}

void sd_detector_trace_free(sd_detector_trace *tr)
{
    if (!tr)
        return;
    free(tr->input);
    for (int l = 0; l < 5; l++)
        free(tr->feat[l]);
    free(tr->props);
    free(tr->class_logits);
    free(tr->box_regression);
    free(tr->det_boxes);
    free(tr->det_scores);
    free(tr->det_labels);
    free(tr->mask_probs);
    memset(tr, 0, sizeof *tr);
}
