/* Mask R-CNN training: targets onto the network input, anchor and proposal
 * matching and sampling, and the five losses of torchvision's model in
 * training mode (rpn.py's compute_loss, roi_heads.py's fastrcnn_loss and
 * maskrcnn_loss), on the tape, then the backward. One image per call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/detect_boxes.h"
#include "nn/maskrcnn.h"

const char *const sd_detector_loss_names[SD_DET_LOSSES] = {"loss_objectness", "loss_rpn_box_reg",
                                                           "loss_classifier", "loss_box_reg", "loss_mask"};

static const float rpn_w[4] = {1, 1, 1, 1}, roi_w[4] = {10, 10, 5, 5};
static const float box_beta = 1.0f / 9.0f;

/* Host buffers of one step, freed together. */
typedef struct step_mem {
    void *p[48];
    int n;
} step_mem;

static void *grab(step_mem *m, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (p && m->n < 48)
        m->p[m->n++] = p;
    else if (p) {
        free(p);
        p = NULL;
    }
    if (!p)
        sd_fail(SD_ERR_NOMEM, "detector training: out of memory for %zu bytes", bytes);
    return p;
}

/* [n] values as a tensor without gradient */
static sd_tensor *const_tensor(sd_tape *t, int n, int block, const float *v)
{
    sd_tensor *x = sd_tensor_new(t, 2, (int[]){n, block});
    if (x && sd_tensor_from_host(x, v))
        return NULL;
    return x;
}

/* Every level's [1, k, h, w] output flattened and joined: [sum k*h*w, 1, 1, 1]. */
static sd_tensor *join_levels(sd_tape *t, sd_tensor *const lv[5])
{
    sd_tensor *flat[5];
    for (int l = 0; l < 5; l++)
        flat[l] = lv[l] ? sd_reshape(t, lv[l], 4, (int[]){(int)lv[l]->numel, 1, 1, 1}) : NULL;
    return sd_concat(t, 5, flat, 0);
}

/* Position of anchor k (torchvision's order: cell-major, anchor minor) in
 * the joined tensors of join_levels, channel j of `per` channels per anchor. */
static int32_t level_offset(const det_rpn_out *r, int k, int per, int j)
{
    int off = 0;
    for (int l = 0; l < 5; l++) {
        int hw = r->h[l] * r->w[l];
        if (k < hw * 3) {
            int p = k / 3, a = k % 3;
            return off + (a * per + j) * hw + p;
        }
        k -= hw * 3;
        off += hw * 3 * per;
    }
    return -1;
}

static sd_status rpn_losses(sd_detector *d, sd_tape *t, step_mem *m, const det_rpn_out *rpn, const float *anchors,
                            int n_anchors, const float *gt, int n_gt, sd_rng *rng, sd_tensor **l_obj,
                            sd_tensor **l_box)
{
    int *lab = grab(m, (size_t)n_anchors * sizeof *lab), *match = grab(m, (size_t)n_anchors * sizeof *match);
    float *iou = grab(m, (size_t)(n_gt ? n_gt : 1) * n_anchors * sizeof *iou);
    uint8_t *pos = grab(m, (size_t)n_anchors), *neg = grab(m, (size_t)n_anchors);
    if (!lab || !match || !iou || !pos || !neg)
        return SD_ERR_NOMEM;
    if (n_gt) {
        sd_box_iou(n_gt, gt, n_anchors, anchors, iou);
        sd_box_match(n_gt, n_anchors, iou, 0.7f, 0.3f, true, match);
    }
    for (int i = 0; i < n_anchors; i++)
        lab[i] = !n_gt || match[i] == -1 ? 0 : match[i] == -2 ? -1 : 1;
    sd_box_sample(n_anchors, lab, d->o.rpn_batch, d->o.rpn_pos_frac, rng, pos, neg);
    int ns = 0, np = 0;
    for (int i = 0; i < n_anchors; i++) {
        ns += pos[i] || neg[i];
        np += pos[i];
    }
    if (!ns)
        return SD_OK;
    int32_t *si = grab(m, (size_t)ns * sizeof *si), *bi = grab(m, (size_t)(np ? np : 1) * 4 * sizeof *bi);
    float *st = grab(m, (size_t)ns * sizeof *st), *bt = grab(m, (size_t)(np ? np : 1) * 4 * sizeof *bt);
    if (!si || !bi || !st || !bt)
        return SD_ERR_NOMEM;
    int k = 0, q = 0;
    for (int i = 0; i < n_anchors; i++) {
        if (!pos[i] && !neg[i])
            continue;
        si[k] = level_offset(rpn, i, 1, 0);
        st[k++] = pos[i] ? 1.0f : 0.0f;
        if (pos[i]) {
            sd_box_encode(1, gt + 4 * match[i], anchors + 4 * i, rpn_w, bt + 4 * q);
            for (int j = 0; j < 4; j++)
                bi[4 * q + j] = level_offset(rpn, i, 4, j);
            q++;
        }
    }
    sd_tensor *logits = join_levels(t, rpn->logits);
    *l_obj = sd_bce_logits(t, sd_gather(t, logits, ns, si, 1), const_tensor(t, ns, 1, st));
    if (np) {
        sd_tensor *deltas = join_levels(t, rpn->deltas);
        sd_tensor *sum = sd_smooth_l1(t, sd_gather(t, deltas, 4 * np, bi, 1), const_tensor(t, 4 * np, 1, bt), box_beta);
        *l_box = sd_scale(t, sum, 1.0f / (float)ns);
    }
    return t->status;
}

/* Nearest-neighbour resize of one mask as F.interpolate(mode="nearest"). */
static void resize_mask(const uint8_t *src, int w, int h, float *dst, int ow, int oh)
{
    float sy = (float)h / oh, sx = (float)w / ow;
    for (int y = 0; y < oh; y++) {
        int iy = (int)floorf(y * sy);
        iy = iy < h - 1 ? iy : h - 1;
        for (int x = 0; x < ow; x++) {
            int ix = (int)floorf(x * sx);
            ix = ix < w - 1 ? ix : w - 1;
            dst[(size_t)y * ow + x] = src[(size_t)iy * w + ix] ? 1.0f : 0.0f;
        }
    }
}

sd_status sd_detector_backward(sd_detector *d, const uint8_t *rgb, int w, int h, const sd_detector_target *tg,
                               sd_rng *rng, float weight, float losses[SD_DET_LOSSES])
{
    for (int i = 0; i < SD_DET_LOSSES; i++)
        losses[i] = 0;
    if (!rgb || w < 1 || h < 1 || !tg || tg->n < 0 || (tg->n && (!tg->boxes || !tg->labels || !tg->masks)))
        return sd_fail(SD_ERR_ARG, "detector training: image %dx%d with %d instances: expected an image and, for "
                       "each instance, a box, a label and a mask", w, h, tg ? tg->n : -1);
    for (int i = 0; i < tg->n; i++) {
        const float *b = tg->boxes + 4 * i;
        if (tg->labels[i] < 1 || tg->labels[i] >= d->o.classes || !(b[2] > b[0]) || !(b[3] > b[1]))
            return sd_fail(SD_ERR_DATA, "detector training: instance %d: label %d, box (%g, %g, %g, %g): expected "
                           "a label in 1..%d and a box with x2 > x1, y2 > y1", i, tg->labels[i], b[0], b[1], b[2],
                           b[3], d->o.classes - 1);
    }
    if (!d->tape_ready) {
        sd_status st = sd_tape_init(&d->tape, 0);
        if (st)
            return st;
        d->tape_ready = true;
    }
    det_bn_mode(d);
    sd_tape *t = &d->tape;
    sd_tape_reset(t);
    t->training = true;
    nn_ctx c = {.t = t, .training = true};
    step_mem m = {0};
    sd_status st = SD_OK;
    sd_tensor *loss[SD_DET_LOSSES] = {0};
    det_rpn_out rpn = {0};
    sd_tensor *feat[5];
    int img_h, img_w, counts[5], n_gt = tg->n, C = d->o.classes;
    float *anchors = NULL, *logits = NULL, *deltas = NULL, *props = NULL;
    sd_tensor *x = det_input(d, t, rgb, w, h, &img_h, &img_w);
    if (!x || (st = det_features(d, &c, x, feat)) || (st = det_rpn_head(d, &c, feat, &rpn)))
        goto done;
    /* targets on the resized image (transform.resize: boxes by the size ratios) */
    float *gt = grab(&m, (size_t)(n_gt ? n_gt : 1) * 4 * sizeof *gt);
    if (!gt)
        goto nomem;
    float rw = (float)img_w / (float)w, rh = (float)img_h / (float)h;
    for (int i = 0; i < n_gt; i++) {
        gt[4 * i] = tg->boxes[4 * i] * rw;
        gt[4 * i + 1] = tg->boxes[4 * i + 1] * rh;
        gt[4 * i + 2] = tg->boxes[4 * i + 2] * rw;
        gt[4 * i + 3] = tg->boxes[4 * i + 3] * rh;
    }
    if (!(anchors = det_anchors(&rpn, x->shape[2], x->shape[3], d->o.anchor_size, counts)) || (st = det_rpn_host(&rpn, &logits, &deltas)))
        goto done;
    int n_anchors = counts[0] + counts[1] + counts[2] + counts[3] + counts[4];
    if ((st = rpn_losses(d, t, &m, &rpn, anchors, n_anchors, gt, n_gt, rng, &loss[SD_DET_LOSS_OBJECTNESS],
                         &loss[SD_DET_LOSS_RPN_BOX])))
        goto done;

    /* proposals (from the detached outputs) plus the ground truth boxes */
    int n_rpn = det_proposals(d, true, anchors, counts, logits, deltas, img_h, img_w, &props);
    if (n_rpn < 0)
        goto nomem;
    int np = n_rpn + n_gt;
    float *all = grab(&m, (size_t)np * 4 * sizeof *all), *iou = grab(&m, (size_t)(n_gt ? n_gt : 1) * np * sizeof *iou);
    int *match = grab(&m, (size_t)np * sizeof *match), *lab = grab(&m, (size_t)np * sizeof *lab);
    uint8_t *pos = grab(&m, (size_t)np), *neg = grab(&m, (size_t)np);
    if (!all || !iou || !match || !lab || !pos || !neg)
        goto nomem;
    memcpy(all, props, (size_t)n_rpn * 4 * sizeof *all);
    memcpy(all + 4 * n_rpn, gt, (size_t)n_gt * 4 * sizeof *all);
    if (n_gt) {
        sd_box_iou(n_gt, gt, np, all, iou);
        sd_box_match(n_gt, np, iou, 0.5f, 0.5f, false, match);
    }
    for (int i = 0; i < np; i++)
        lab[i] = !n_gt || match[i] == -1 ? 0 : match[i] == -2 ? -1 : tg->labels[match[i]];
    sd_box_sample(np, lab, d->o.box_batch, d->o.box_pos_frac, rng, pos, neg);
    int ns = 0, npos = 0;
    for (int i = 0; i < np; i++) {
        ns += pos[i] || neg[i];
        npos += pos[i] && lab[i] > 0;
    }
    if (!ns)
        goto backward;
    float *sb = grab(&m, (size_t)ns * 4 * sizeof *sb);
    int *sidx = grab(&m, (size_t)ns * sizeof *sidx), *perm = grab(&m, (size_t)ns * sizeof *perm);
    if (!sb || !sidx || !perm)
        goto nomem;
    for (int i = 0, k = 0; i < np; i++)
        if (pos[i] || neg[i]) {
            sidx[k] = i;
            memcpy(sb + 4 * k++, all + 4 * i, 4 * sizeof *sb);
        }
    /* the box head on the sampled proposals; rows come back grouped by level */
    sd_tensor *pooled = det_roi_pool(&c, feat, img_h, ns, sb, 7, perm);
    sd_tensor *flat = pooled ? sd_reshape(t, pooled, 2, (int[]){ns, 256 * 7 * 7}) : NULL;
    sd_tensor *hid = det_linear_fwd(&c, &d->fc7, det_linear_fwd(&c, &d->fc6, flat, true), true);
    sd_tensor *cls = det_linear_fwd(&c, &d->cls_score, hid, false), *reg = det_linear_fwd(&c, &d->bbox_pred, hid, false);
    uint8_t *rl = grab(&m, (size_t)ns);
    int32_t *bi = grab(&m, (size_t)(npos ? npos : 1) * sizeof *bi);
    float *bt = grab(&m, (size_t)(npos ? npos : 1) * 4 * sizeof *bt), *mb = grab(&m, (size_t)(npos ? npos : 1) * 5 * sizeof *mb);
    int32_t *mi = grab(&m, (size_t)(npos ? npos : 1) * sizeof *mi);
    float *pb = grab(&m, (size_t)(npos ? npos : 1) * 4 * sizeof *pb);
    int *pgt = grab(&m, (size_t)(npos ? npos : 1) * sizeof *pgt), *plab = grab(&m, (size_t)(npos ? npos : 1) * sizeof *plab);
    if (!rl || !bi || !bt || !mb || !mi || !pb || !pgt || !plab)
        goto nomem;
    int q = 0;
    for (int r = 0; r < ns; r++) {
        int i = sidx[perm[r]], l = lab[i] > 0 ? lab[i] : 0;
        rl[r] = (uint8_t)l;
        if (l > 0) {
            bi[q] = r * C + l;
            sd_box_encode(1, gt + 4 * match[i], all + 4 * i, roi_w, bt + 4 * q);
            q++;
        }
    }
    loss[SD_DET_LOSS_CLASSIFIER] =
        sd_cross_entropy(t, cls ? sd_reshape(t, cls, 4, (int[]){ns, C, 1, 1}) : NULL, rl, NULL, 255);
    if (npos) {
        sd_tensor *sum = sd_smooth_l1(t, reg ? sd_gather(t, reg, npos, bi, 4) : NULL, const_tensor(t, npos, 4, bt),
                                      box_beta);
        loss[SD_DET_LOSS_BOX] = sd_scale(t, sum, 1.0f / (float)ns);
        /* the mask head on the positive sampled proposals, in index order */
        for (int i = 0, k = 0; i < np; i++)
            if ((pos[i] || neg[i]) && lab[i] > 0) {
                memcpy(pb + 4 * k, all + 4 * i, 4 * sizeof *pb);
                pgt[k] = match[i];
                plab[k++] = lab[i];
            }
        int *mperm = grab(&m, (size_t)npos * sizeof *mperm);
        float *gm = grab(&m, (size_t)n_gt * img_h * img_w * sizeof *gm);
        if (!mperm || !gm)
            goto nomem;
        sd_tensor *ml = det_mask_logits(d, &c, det_roi_pool(&c, feat, img_h, npos, pb, 14, mperm));
        for (int r = 0; r < npos; r++) {
            int k = mperm[r];
            mi[r] = r * C + plab[k];
            mb[5 * r] = (float)pgt[k];
            memcpy(mb + 5 * r + 1, pb + 4 * k, 4 * sizeof *mb);
        }
        /* project_masks_on_boxes: the resized gt masks roi-aligned to 28x28 */
        for (int g = 0; g < n_gt; g++)
            resize_mask(tg->masks + (size_t)g * w * h, w, h, gm + (size_t)g * img_h * img_w, img_w, img_h);
        sd_tensor *gmt = sd_tensor_new4(t, n_gt, 1, img_h, img_w);
        if (!gmt || sd_tensor_from_host(gmt, gm))
            goto done;
        sd_tensor *mt = sd_roi_align(t, gmt, npos, mb, 28, 28, 1.0f, 0, false);
        sd_tensor *mt2 = mt ? sd_reshape(t, mt, 2, (int[]){npos, 28 * 28}) : NULL;
        loss[SD_DET_LOSS_MASK] = sd_bce_logits(t, ml ? sd_gather(t, ml, npos, mi, 28 * 28) : NULL, mt2);
    }
backward:;
    sd_tensor *ls[SD_DET_LOSSES];
    float wts[SD_DET_LOSSES];
    int nl = 0;
    for (int i = 0; i < SD_DET_LOSSES; i++)
        if (loss[i]) {
            losses[i] = sd_tensor_item(loss[i]);
            ls[nl] = loss[i];
            wts[nl++] = weight;
        }
    if (t->status)
        goto done;
    for (int i = 0; i < SD_DET_LOSSES; i++)
        if (!isfinite(losses[i])) {
            st = sd_fail(SD_ERR_NUMERIC, "detector training: %s is %g", sd_detector_loss_names[i], losses[i]);
            goto done;
        }
    if (nl)
        st = sd_backward(t, nl, ls, wts);
    goto done;
nomem:
    st = SD_ERR_NOMEM;
done:
    if (!st && t->status)
        st = t->status;
    free(anchors);
    free(logits);
    free(deltas);
    free(props);
    for (int i = 0; i < m.n; i++)
        free(m.p[i]);
    return st;
}
