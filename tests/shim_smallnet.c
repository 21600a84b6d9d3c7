/* sdt_smallnet_*: the small segmentation network of tests/py/test_smallnet.py,
 * built from weights given by the script. Test-only code. */
#include <stdlib.h>
#include <string.h>

#include "segda/optim.h"
#include "shim.h"

/* ---- the small network of tests/py/test_smallnet.py ----
 * x [N,3,H,W] -> conv3x3(3->8, pad 1) -> BN -> ReLU -> conv3x3(8->8, stride 2,
 * pad 1) -> BN -> ReLU -> sum of two 3x3 convs 8->K with bias, dilation 2 and
 * 4 (padding = dilation) -> bilinear upsampling to HxW (align_corners true)
 * -> cross-entropy with ignore 255. Parameters in two groups, "backbone"
 * (lr x1) and "classifier" (lr x10), BN running statistics as buffers; SGD
 * with momentum and weight decay from include/segda/optim.h. */
typedef struct smallnet {
    sd_tensor *c1, *bn1w, *bn1b, *bn1m, *bn1v, *c2, *bn2w, *bn2b, *bn2m, *bn2v, *b0w, *b0b, *b1w, *b1b;
} smallnet;

static sd_tensor *decl(sd_params *p, int g, const char *name, int ndim, int a, int b, int c, int d)
{
    return sd_params_declare(p, g, name, ndim, (int[]){a, b, c, d});
}

static sd_status smallnet_build(sd_params *p, smallnet *m, int k)
{
    sd_params_init(p);
    int bb = sd_params_add_group(p, "backbone", 1.0f, 1.0f, false);
    int cl = sd_params_add_group(p, "classifier", 10.0f, 1.0f, false);
    int bu = sd_params_add_group(p, "buffers", 0.0f, 0.0f, true);
    if (bb < 0 || cl < 0 || bu < 0)
        return SD_ERR_ARG;
    m->c1 = decl(p, bb, "conv1.weight", 4, 8, 3, 3, 3);
    m->bn1w = decl(p, bb, "bn1.weight", 1, 8, 0, 0, 0);
    m->bn1b = decl(p, bb, "bn1.bias", 1, 8, 0, 0, 0);
    m->c2 = decl(p, bb, "conv2.weight", 4, 8, 8, 3, 3);
    m->bn2w = decl(p, bb, "bn2.weight", 1, 8, 0, 0, 0);
    m->bn2b = decl(p, bb, "bn2.bias", 1, 8, 0, 0, 0);
    m->b0w = decl(p, cl, "branch0.weight", 4, k, 8, 3, 3);
    m->b0b = decl(p, cl, "branch0.bias", 1, k, 0, 0, 0);
    m->b1w = decl(p, cl, "branch1.weight", 4, k, 8, 3, 3);
    m->b1b = decl(p, cl, "branch1.bias", 1, k, 0, 0, 0);
    m->bn1m = decl(p, bu, "bn1.running_mean", 1, 8, 0, 0, 0);
    m->bn1v = decl(p, bu, "bn1.running_var", 1, 8, 0, 0, 0);
    m->bn2m = decl(p, bu, "bn2.running_mean", 1, 8, 0, 0, 0);
    m->bn2v = decl(p, bu, "bn2.running_var", 1, 8, 0, 0, 0);
    if (!m->bn2v)
        return SD_ERR_ARG;
    sd_status st = sd_params_alloc(p);
    if (st != SD_OK)
        return st;
    for (int i = 0; i < 8; i++)
        F32(m->bn1v->data)[i] = F32(m->bn2v->data)[i] = 1.0f;
    return SD_OK;
}

static sd_tensor *smallnet_forward(sd_tape *t, const smallnet *m, sd_tensor *x)
{
    sd_tensor *h = sd_conv2d(t, x, m->c1, NULL, sd_conv_opts_make(1, 1, 1));
    h = sd_relu(t, sd_batch_norm(t, h, m->bn1w, m->bn1b, m->bn1m, m->bn1v, true, 0.1f, 1e-5f));
    h = sd_conv2d(t, h, m->c2, NULL, sd_conv_opts_make(2, 1, 1));
    h = sd_relu(t, sd_batch_norm(t, h, m->bn2w, m->bn2b, m->bn2m, m->bn2v, true, 0.1f, 1e-5f));
    sd_tensor *y = sd_add(t, sd_conv2d(t, h, m->b0w, m->b0b, sd_conv_opts_make(1, 2, 2)),
                          sd_conv2d(t, h, m->b1w, m->b1b, sd_conv_opts_make(1, 4, 4)));
    return y ? sd_resize_bilinear(t, y, x->shape[2], x->shape[3], true) : NULL;
}

/* weights: the trainable parameters flattened in declaration order (the
 * order above). Runs `steps` SGD steps on one batch (x [n,3,h,w], labels
 * [n*h*w] as floats, 255 ignored) and writes each step's loss, the
 * gradients of the first step (same layout as weights), and the weights and
 * BN running statistics (mean1, var1, mean2, var2) after the last step.
 * Returns 0 or an sd_status (message in sdt_errmsg). */
int sdt_smallnet_run(const float *weights, int k, const float *x, int n, int h, int w, const float *labels,
                     int steps, float lr, float momentum, float wd, float *losses, float *grads0,
                     float *weights_out, float *stats_out)
{
    sd_params p;
    smallnet m;
    sd_tape t;
    sd_optim opt;
    sd_status st = smallnet_build(&p, &m, k);
    if (st != SD_OK) {
        sd_params_free(&p);
        return st;
    }
    size_t off = 0;
    for (int i = 0; i < p.n; i++)
        if (!p.groups[p.group_of[i]].is_buffer) {
            memcpy(p.tensors[i]->data, weights + off, p.tensors[i]->numel * sizeof(float));
            off += p.tensors[i]->numel;
        }
    size_t npix = (size_t)n * h * w;
    uint8_t *lab = sd_malloc(npix);
    sd_tape_init(&t, 1);
    sd_optim_opts oo = sd_optim_opts_sgd(momentum, wd);
    st = lab ? sd_optim_init(&opt, &p, &oo) : SD_ERR_NOMEM;
    if (st != SD_OK)
        goto out;
    for (size_t i = 0; i < npix; i++)
        lab[i] = (uint8_t)labels[i];
    for (int s = 0; s < steps && st == SD_OK; s++) {
        sd_tape_reset(&t);
        sd_params_zero_grad(&p);
        sd_tensor *xt = sd_tensor_wrap(&t, 4, (int[]){n, 3, h, w}, (float *)x);
        sd_tensor *loss = sd_cross_entropy(&t, smallnet_forward(&t, &m, xt), lab, NULL, 255);
        st = loss ? sd_backward1(&t, loss) : t.status;
        if (st != SD_OK)
            break;
        losses[s] = F32(loss->data)[0];
        if (s == 0) {
            off = 0;
            for (int i = 0; i < p.n; i++)
                if (!p.groups[p.group_of[i]].is_buffer) {
                    memcpy(grads0 + off, p.tensors[i]->grad, p.tensors[i]->numel * sizeof(float));
                    off += p.tensors[i]->numel;
                }
        }
        st = sd_optim_step(&opt, lr);
    }
    if (st == SD_OK) {
        off = 0;
        for (int i = 0; i < p.n; i++)
            if (!p.groups[p.group_of[i]].is_buffer) {
                memcpy(weights_out + off, p.tensors[i]->data, p.tensors[i]->numel * sizeof(float));
                off += p.tensors[i]->numel;
            }
        sd_tensor *stats[4] = {m.bn1m, m.bn1v, m.bn2m, m.bn2v};
        for (int i = 0; i < 4; i++)
            memcpy(stats_out + 8 * i, stats[i]->data, 8 * sizeof(float));
    }
    sd_optim_free(&opt);
out:
    free(lab);
    sd_tape_free(&t);
    sd_params_free(&p);
    return st;
}
