/* ONNX export of a segmentation model: one eval-mode forward pass at a
 * fixed input size is recorded on a tape, and the tape is written as an
 * ONNX graph (opset 13) with the model's tensors as initializers, encoded
 * by the small protobuf writer below (no protobuf library). The graph's
 * input "input" is the normalised image [1, 3, H, W] (the normalisation is
 * in the metadata, key segda.norm); its output "logits" is the network's
 * main output as segda computes it. An op of the tape that this writer does
 * not map, or a step ONNX cannot express at that size, fails naming it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/node_info.h"
#include "io/file.h"
#include "io/protobuf.h"
#include "segda/ops.h"
#include "segda/api.h"
#include "segda/onnx.h"

/* ---- protobuf (io/protobuf.h) ---- */

typedef sd_pb pb;

/* Appends sub as a message field and frees it. */
static void pb_msg(pb *b, int field, pb *sub)
{
    sd_pb_msg(b, field, sub);
    sd_pb_free(sub);
}

/* ---- ONNX messages (field numbers of onnx.proto) ---- */

enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_INTS = 7 };

/* An AttributeProto on node: ints[n] (ATTR_INTS, or ATTR_INT with n 1), f
 * (ATTR_FLOAT) or s (ATTR_STRING). */
static void attr(pb *node, const char *name, int type, int n, const int64_t *ints, float f, const char *s)
{
    pb a = {0};
    sd_pb_str(&a, 1, name);
    if (type == ATTR_FLOAT)
        sd_pb_float(&a, 2, f);
    else if (type == ATTR_STRING)
        sd_pb_str(&a, 4, s);
    else
        for (int i = 0; i < n; i++)
            sd_pb_int(&a, type == ATTR_INT ? 3 : 8, ints[i]);
    sd_pb_int(&a, 20, type);
    pb_msg(node, 5, &a);
}

static void attr_ints(pb *node, const char *name, int n, const int64_t *v)
{
    attr(node, name, ATTR_INTS, n, v, 0, NULL);
}

static void attr_int(pb *node, const char *name, int64_t v)
{
    attr(node, name, ATTR_INT, 1, &v, 0, NULL);
}

static void attr_float(pb *node, const char *name, float v)
{
    attr(node, name, ATTR_FLOAT, 0, NULL, v, NULL);
}

static void attr_str(pb *node, const char *name, const char *v)
{
    attr(node, name, ATTR_STRING, 0, NULL, 0, v);
}

static void add_initializer(pb *graph, const char *name, int type, int ndim, const int64_t *dims, const void *data,
                            size_t bytes)
{
    pb t = {0};
    for (int i = 0; i < ndim; i++)
        sd_pb_int(&t, 1, dims[i]);
    sd_pb_int(&t, 2, type);
    sd_pb_str(&t, 8, name);
    sd_pb_bytes(&t, 9, data, bytes);
    pb_msg(graph, 5, &t);
}

static void add_value_info(pb *graph, int field, const char *name, const sd_tensor *x)
{
    pb shape = {0}, tt = {0}, type = {0}, vi = {0};
    for (int d = 0; d < x->ndim; d++) {
        pb dim = {0};
        sd_pb_int(&dim, 1, x->shape[d]);
        pb_msg(&shape, 1, &dim);
    }
    sd_pb_int(&tt, 1, ONNX_FLOAT);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    sd_pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

/* ---- the tape as a graph ---- */

typedef struct named {
    const sd_tensor *t;
    char name[200];
} named;

typedef struct exporter {
    pb graph;
    named *names;
    int n_names, cap_names, n_consts;
    const sd_tensor *input;
    sd_status st;
} exporter;

static const char *find_name(exporter *e, const sd_tensor *t)
{
    for (int i = e->n_names - 1; i >= 0; i--)
        if (e->names[i].t == t)
            return e->names[i].name;
    return NULL;
}

static const char *set_name(exporter *e, const sd_tensor *t, const char *name)
{
    if (e->n_names == e->cap_names) {
        int cap = e->cap_names ? 2 * e->cap_names : 256;
        named *nn = realloc(e->names, (size_t)cap * sizeof *nn);
        if (!nn) {
            e->graph.oom = true;
            return "";
        }
        e->names = nn;
        e->cap_names = cap;
    }
    named *n = &e->names[e->n_names++];
    n->t = t;
    snprintf(n->name, sizeof n->name, "%s", name);
    return n->name;
}

/* The name of a node input: a node's output, the graph input, or a leaf
 * tensor written (once) as an initializer under its parameter name. */
static const char *input_name(exporter *e, const sd_tensor *t)
{
    const char *name = find_name(e, t);
    if (name)
        return name;
    char buf[200];
    if (t->name)
        snprintf(buf, sizeof buf, "%s", t->name);
    else
        snprintf(buf, sizeof buf, "const%d", e->n_consts++);
    int64_t dims[SD_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        dims[d] = t->shape[d];
    add_initializer(&e->graph, buf, ONNX_FLOAT, t->ndim, dims, t->data, t->numel * sizeof(float));
    return set_name(e, t, buf);
}

/* An int64 or float initializer of the export's own (pads, sizes, BN statistics). */
static const char *const_i64(exporter *e, const char *base, int n, const int64_t *v)
{
    static char buf[200];
    snprintf(buf, sizeof buf, "%s", base);
    int64_t dims[1] = {n};
    add_initializer(&e->graph, buf, ONNX_INT64, 1, dims, v, sizeof(int64_t) * (size_t)n);
    return buf;
}

static void const_f32(exporter *e, const char *name, int n, const float *v)
{
    int64_t dims[1] = {n};
    add_initializer(&e->graph, name, ONNX_FLOAT, 1, dims, v, sizeof(float) * (size_t)n);
}

static sd_status unsupported(const char *path, int i, const sd_node *n, const char *why)
{
    return sd_fail(SD_ERR_ARG, "%s: node %d, op '%s' (output %s): %s", path, i, n->op, sd_shape_str(n->out), why);
}

/* A NodeProto into the graph: inputs, output, name, op type, then the
 * attributes already encoded in attrs (freed). Inputs may point into static
 * buffers (const_i64): each is copied as it is written. */
static void emit(exporter *e, const char *op, const char *const *ins, int n_ins, const char *out, const char *name,
                 pb *attrs)
{
    pb head = {0};
    for (int k = 0; k < n_ins; k++)
        sd_pb_str(&head, 1, ins[k]);
    sd_pb_str(&head, 2, out);
    sd_pb_str(&head, 3, name);
    sd_pb_str(&head, 4, op);
    sd_pb_raw(&head, attrs->d, attrs->n);
    head.oom |= attrs->oom;
    sd_pb_free(attrs);
    pb_msg(&e->graph, 1, &head);
}

static void conv_attrs(pb *node, const sd_conv_geom *g)
{
    attr_ints(node, "kernel_shape", 2, (int64_t[]){g->kh, g->kw});
    attr_ints(node, "strides", 2, (int64_t[]){g->sh, g->sw});
    attr_ints(node, "pads", 4, (int64_t[]){g->ph, g->pw, g->ph, g->pw});
    attr_ints(node, "dilations", 2, (int64_t[]){g->dh, g->dw});
    attr_int(node, "group", g->groups);
}

/* conv2d_fused as Conv (the frozen BN folded into its weights and bias),
 * then Add of the residual and Relu / LeakyRelu, each when present. */
static sd_status export_conv_fused(exporter *e, const char *path, const sd_node *n, const char *name,
                                   const char *out_name)
{
    const sd_conv_geom *g;
    const float *scale, *shift;
    int act;
    float slope;
    if (!sd_node_conv_fused(n, &g, &scale, &shift, &act, &slope))
        return sd_fail(SD_ERR_ARG, "%s: %s: no fused-convolution state", path, name);
    const sd_tensor *w = n->in[1];
    const char *base = w->name ? w->name : name;
    char wn[200], bn[200], conv_out[96], add_out[96];
    snprintf(wn, sizeof wn, "%s", input_name(e, w));
    bn[0] = 0;
    if (scale) {   /* W'[o] = W[o] * scale[o] */
        float *fw = malloc(w->numel * sizeof *fw);
        if (!fw)
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        size_t per = w->numel / (size_t)g->cout;
        const float *src = w->data;
        for (size_t k = 0; k < w->numel; k++)
            fw[k] = src[k] * scale[k / per];
        snprintf(wn, sizeof wn, "%s.export_fused_weight", base);
        int64_t dims[SD_MAX_DIMS];
        for (int d = 0; d < w->ndim; d++)
            dims[d] = w->shape[d];
        add_initializer(&e->graph, wn, ONNX_FLOAT, w->ndim, dims, fw, w->numel * sizeof(float));
        free(fw);
    }
    if (scale && shift) {
        snprintf(bn, sizeof bn, "%s.export_fused_bias", base);
        const_f32(e, bn, g->cout, shift);
    } else if (n->in[2]) {
        snprintf(bn, sizeof bn, "%s", input_name(e, n->in[2]));
    }
    bool res = n->in[3] != NULL, has_act = act != SD_ACT_NONE;
    snprintf(conv_out, sizeof conv_out, "%s.conv", name);
    snprintf(add_out, sizeof add_out, "%s.add", name);
    pb attrs = {0};
    conv_attrs(&attrs, g);
    const char *ins[3] = {input_name(e, n->in[0]), wn, bn};
    char x_name[200];
    snprintf(x_name, sizeof x_name, "%s", ins[0]);
    ins[0] = x_name;
    emit(e, "Conv", ins, bn[0] ? 3 : 2, res || has_act ? conv_out : out_name, conv_out, &attrs);
    if (res) {
        char r_name[200];
        snprintf(r_name, sizeof r_name, "%s", input_name(e, n->in[3]));
        const char *ai[2] = {conv_out, r_name};
        emit(e, "Add", ai, 2, has_act ? add_out : out_name, add_out, &attrs);
    }
    if (has_act) {
        const char *ai[1] = {res ? add_out : conv_out};
        if (act == SD_ACT_LEAKY_RELU)
            attr_float(&attrs, "alpha", slope);
        emit(e, act == SD_ACT_LEAKY_RELU ? "LeakyRelu" : "Relu", ai, 1, out_name, name, &attrs);
    }
    return SD_OK;
}

/* One tape node as ONNX node(s). */
static sd_status export_node(exporter *e, const char *path, int i, const sd_node *n, const char *out_name)
{
    pb node = {0};
    char name[64];
    snprintf(name, sizeof name, "%s_%d", n->op, i);
    const char *op = NULL;
    const char *ins[5] = {0};
    int n_ins = 0;
    const sd_tensor *x = n->in[0];
    if (!strcmp(n->op, "conv2d_fused"))
        return export_conv_fused(e, path, n, name, out_name);
    if (!strcmp(n->op, "conv2d")) {
        const sd_conv_geom *g = sd_node_conv_geom(n);
        op = "Conv";
        ins[n_ins++] = input_name(e, x);
        ins[n_ins++] = input_name(e, n->in[1]);
        if (n->in[2])
            ins[n_ins++] = input_name(e, n->in[2]);
        conv_attrs(&node, g);
    } else if (!strcmp(n->op, "batch_norm")) {
        const float *mean, *invstd;
        bool batch;
        int C = x->shape[1];
        if (!sd_node_norm_stats(n, &mean, &invstd, &batch) || batch)
            return unsupported(path, i, n, "batch statistics (the export runs in eval mode; BN must use running ones)");
        float *buf = malloc(sizeof(float) * 2 * (size_t)C);
        if (!buf)
            return sd_fail(SD_ERR_NOMEM, "%s: out of memory", path);
        char nm[4][96];
        const char *base = n->in[1] && n->in[1]->name ? n->in[1]->name : name;
        snprintf(nm[0], sizeof nm[0], "%s.export_mean", base);
        snprintf(nm[1], sizeof nm[1], "%s.export_var", base);
        snprintf(nm[2], sizeof nm[2], "%s.export_scale", base);
        snprintf(nm[3], sizeof nm[3], "%s.export_bias", base);
        /* (x - mean) * invstd exactly: variance 1/invstd^2 with epsilon 0 */
        for (int c = 0; c < C; c++)
            buf[c] = 1.0f / (invstd[c] * invstd[c]);
        const_f32(e, nm[0], C, mean);
        const_f32(e, nm[1], C, buf);
        ins[0] = input_name(e, x);
        if (n->in[1]) {
            ins[1] = input_name(e, n->in[1]);
        } else {
            for (int c = 0; c < C; c++)
                buf[c] = 1;
            const_f32(e, nm[2], C, buf);
            ins[1] = nm[2];
        }
        if (n->in[2]) {
            ins[2] = input_name(e, n->in[2]);
        } else {
            for (int c = 0; c < C; c++)
                buf[c] = 0;
            const_f32(e, nm[3], C, buf);
            ins[2] = nm[3];
        }
        free(buf);
        ins[3] = nm[0];
        ins[4] = nm[1];
        n_ins = 5;
        op = "BatchNormalization";
        attr_float(&node, "epsilon", 0.0f);
        /* (pb_str copies the names before the buffers above go out of scope) */
        sd_pb_str(&node, 4, op);
        for (int k = 0; k < n_ins; k++)
            sd_pb_str(&node, 1, ins[k]);
        sd_pb_str(&node, 2, out_name);
        sd_pb_str(&node, 3, name);
        pb_msg(&e->graph, 1, &node);
        return SD_OK;
    } else if (!strcmp(n->op, "max_pool2d") || !strcmp(n->op, "avg_pool2d")) {
        const sd_pool_geom *g = sd_node_pool_geom(n);
        bool max = n->op[0] == 'm';
        op = max ? "MaxPool" : "AveragePool";
        ins[n_ins++] = input_name(e, x);
        /* PyTorch's ceil_mode shows as one more output than the floor formula */
        int fh = (g->h + 2 * g->ph - g->kh) / g->sh + 1, fw = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
        attr_ints(&node, "kernel_shape", 2, (int64_t[]){g->kh, g->kw});
        attr_ints(&node, "strides", 2, (int64_t[]){g->sh, g->sw});
        attr_ints(&node, "pads", 4, (int64_t[]){g->ph, g->pw, g->ph, g->pw});
        attr_int(&node, "ceil_mode", g->oh > fh || g->ow > fw);
        if (!max)
            attr_int(&node, "count_include_pad", g->count_include_pad);
    } else if (!strcmp(n->op, "adaptive_avg_pool2d")) {
        const sd_pool_geom *g = sd_node_pool_geom(n);
        ins[n_ins++] = input_name(e, x);
        if (g->oh == 1 && g->ow == 1) {
            op = "GlobalAveragePool";
        } else if (g->h % g->oh == 0 && g->w % g->ow == 0) {
            op = "AveragePool";
            attr_ints(&node, "kernel_shape", 2, (int64_t[]){g->h / g->oh, g->w / g->ow});
            attr_ints(&node, "strides", 2, (int64_t[]){g->h / g->oh, g->w / g->ow});
        } else {
            char why[200];
            snprintf(why, sizeof why,
                     "adaptive pooling of %dx%d to %dx%d has windows of unequal size, which no ONNX pooling op "
                     "expresses; choose --size so the feature map divides by %dx%d",
                     g->w, g->h, g->ow, g->oh, g->ow, g->oh);
            free(node.d);
            return unsupported(path, i, n, why);
        }
    } else if (!strcmp(n->op, "resize_bilinear")) {
        bool align;
        int pads[4];
        sd_node_resize_info(n, &align, pads);
        op = "Resize";
        ins[n_ins++] = input_name(e, x);
        ins[n_ins++] = "";
        ins[n_ins++] = "";
        char sz[96];
        snprintf(sz, sizeof sz, "%s.sizes", name);
        const int *s = n->out->shape;
        ins[n_ins++] = const_i64(e, sz, 4, (int64_t[]){s[0], s[1], s[2], s[3]});
        attr_str(&node, "mode", "linear");
        attr_str(&node, "coordinate_transformation_mode", align ? "align_corners" : "pytorch_half_pixel");
    } else if (!strcmp(n->op, "pad2d")) {
        bool reflect;
        int p[4];
        sd_node_resize_info(n, &reflect, p);
        op = "Pad";
        ins[n_ins++] = input_name(e, x);
        char nm[96];
        snprintf(nm, sizeof nm, "%s.pads", name);
        ins[n_ins++] = const_i64(e, nm, 8, (int64_t[]){0, 0, p[0], p[2], 0, 0, p[1], p[3]});
        attr_str(&node, "mode", reflect ? "reflect" : "constant");
    } else if (!strcmp(n->op, "concat")) {
        int dim;
        sd_node_concat_dim(n, &dim);
        op = "Concat";
        for (int k = 0; k < n->n_in; k++)
            ins[n_ins++] = input_name(e, n->in[k]);
        attr_int(&node, "axis", dim);
    } else {
        static const char *const same[][2] = {{"relu", "Relu"}, {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"},
                                              {"add", "Add"},   {"sub", "Sub"},         {"mul", "Mul"},
                                              {"dropout", "Identity"}, {"detach", "Identity"}};
        for (size_t k = 0; k < sizeof same / sizeof *same && !op; k++)
            if (!strcmp(n->op, same[k][0]))
                op = same[k][1];
        if (!op) {
            free(node.d);
            return unsupported(path, i, n, "this op has no ONNX counterpart in the exporter");
        }
        for (int k = 0; k < n->n_in; k++)
            ins[n_ins++] = input_name(e, n->in[k]);
    }
    emit(e, op, ins, n_ins, out_name, name, &node);
    return SD_OK;
}

sd_status sd_model_export_onnx(sd_model *m, sd_norm norm, int w, int h, const char *path)
{
    if (w < 8 || h < 8)
        return sd_fail(SD_ERR_ARG, "%s: input size %dx%d, expected at least 8x8", path, w, h);
    sd_tape t;
    sd_tape_init(&t, 0);
    exporter e = {0};
    sd_status st = SD_OK;
    sd_tensor *x = sd_tensor_new4(&t, 1, 3, h, w);
    if (!x) {
        sd_tape_free(&t);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory for a %dx%d input", path, w, h);
    }
    memset(x->data, 0, x->numel * sizeof(float));
    x->requires_grad = true;   /* every op downstream of the input is recorded */
    sd_model_out out;
    if ((st = sd_model_forward(m, &t, x, false, &out))) {
        sd_tape_free(&t);
        return sd_fail_prefix(st, "%s: forward pass at %dx%d", path, w, h);
    }
    const sd_model_opts *o = sd_model_options(m);
    set_name(&e, x, "input");
    add_value_info(&e.graph, 11, "input", x);
    for (int i = 0; i < t.n_nodes && !st; i++) {
        const sd_node *n = t.nodes[i];
        char nm[32];
        snprintf(nm, sizeof nm, "t%d", i);
        const char *out_name = set_name(&e, n->out, n->out == out.logits ? "logits" : nm);
        char copy[200];
        snprintf(copy, sizeof copy, "%s", out_name);   /* (names may move when the table grows) */
        st = export_node(&e, path, i, n, copy);
    }
    if (!st && !find_name(&e, out.logits))
        st = sd_fail(SD_ERR_ARG, "%s: the logits are not computed from the input on the tape", path);
    if (!st) {
        add_value_info(&e.graph, 12, "logits", out.logits);
        sd_pb_str(&e.graph, 2, o->name);
        pb model = {0}, opset = {0}, meta = {0};
        sd_pb_int(&model, 1, 7);   /* IR version 7: opset 13's */
        sd_pb_str(&model, 2, "segda");
        sd_pb_str(&model, 3, SD_VERSION);
        pb_msg(&model, 7, &e.graph);
        sd_pb_str(&opset, 1, "");
        sd_pb_int(&opset, 2, 13);
        pb_msg(&model, 8, &opset);
        const char *kv[3][2] = {{"segda.model", o->name}, {"segda.norm", sd_norm_name(norm)}, {NULL, NULL}};
        for (int k = 0; kv[k][0]; k++) {
            sd_pb_str(&meta, 1, kv[k][0]);
            sd_pb_str(&meta, 2, kv[k][1]);
            pb_msg(&model, 14, &meta);
        }
        if (model.oom) {
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory encoding the model", path);
        } else {
            char tmp[4200];
            if (io_tmp_name(tmp, sizeof tmp, path) >= (int)sizeof tmp) {
                st = sd_fail(SD_ERR_ARG, "%s: path too long", path);
            } else {
                FILE *f = fopen(tmp, "wb");
                if (!f)
                    st = sd_fail(SD_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
                else if ((fwrite(model.d, 1, model.n, f) != model.n) | (fclose(f) != 0)) {
                    st = sd_fail(SD_ERR_IO, "%s: write failed", tmp);
                    remove(tmp);
                } else if (rename(tmp, path)) {
                    st = sd_fail(SD_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
                    remove(tmp);
                }
            }
        }
        free(model.d);
    }
    free(e.graph.d);
    free(e.names);
    sd_tape_free(&t);
    return st;
}
