/* RoIAlign (torchvision.ops.roi_align): the op, its checks and its tape node;
 * kernels in src/cpu/roi_cpu.c (and src/cuda/spatial.cu). The backward
 * ACCUMULATES (+=) into x's gradient; rois get none (they are constants). */
#include <math.h>
#include <string.h>

#include "core/backend.h"
#include "segda/ops.h"

typedef struct roi_saved {
    sd_roi_geom g;
    float *rois; /* [k*5] on the device */
} roi_saved;

static void roi_align_backward(sd_node *n)
{
    roi_saved *s = n->saved;
    if (sd_node_grad(n, 0))
        sd_backend_for(n->in[0]->device)->roi_align_bwd(&s->g, s->rois, n->out->grad, n->in[0]->grad);
}

sd_tensor *sd_roi_align(sd_tape *t, sd_tensor *x, int k, const float *rois, int out_h, int out_w, float scale,
                        int sampling, bool aligned)
{
    if (!x)
        return NULL;
    if (x->ndim != 4 || k < 1 || !rois || out_h < 1 || out_w < 1 || !(scale > 0) || !isfinite(scale))
        return sd_tape_fail(t, SD_ERR_ARG,
                            "roi_align: input %s, %d rois, output %dx%d, scale %g: expected 4-D NCHW input, "
                            "at least one roi, output >= 1x1 and a positive scale",
                            sd_shape_str(x), k, out_h, out_w, scale);
    for (int i = 0; i < k; i++) {
        const float *r = rois + 5 * i;
        if (!(r[0] >= 0 && r[0] < x->shape[0] && r[0] == floorf(r[0])) || !isfinite(r[1]) || !isfinite(r[2]) ||
            !isfinite(r[3]) || !isfinite(r[4]))
            return sd_tape_fail(t, SD_ERR_ARG,
                                "roi_align: input %s: roi %d (%g, %g, %g, %g, %g): expected a batch index in "
                                "[0, %d) and finite corners",
                                sd_shape_str(x), i, r[0], r[1], r[2], r[3], r[4], x->shape[0]);
    }
    const sd_backend *be = sd_backend_check(t, "roi_align", x);
    if (!be)
        return NULL;
    sd_roi_geom g = {.n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3], .k = k,
                     .oh = out_h, .ow = out_w, .scale = scale, .sampling = sampling, .aligned = aligned};
    float *dev_rois = sd_tape_scratch(t, (size_t)k * 5 * sizeof(float), "roi_align");
    sd_tensor *y = sd_tensor_new4(t, k, g.c, out_h, out_w);
    if (!dev_rois || !y)
        return NULL;
    y->device = x->device;
    be->copy_from_host(dev_rois, rois, (size_t)k * 5 * sizeof(float));
    be->roi_align_fwd(&g, x->data, dev_rois, y->data);
    sd_node *n = sd_tape_record(t, "roi_align", roi_align_backward, y, 1, &x);
    if (n) {
        roi_saved *s = sd_arena_alloc(&t->arena, sizeof *s);
        if (!s)
            return sd_tape_fail(t, SD_ERR_NOMEM, "roi_align: out of memory recording the node");
        s->g = g;
        s->rois = dev_rois;
        n->saved = s;
    }
    return y;
}
