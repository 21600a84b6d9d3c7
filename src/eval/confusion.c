/* The confusion matrix: accumulation from label maps or from logits
 * (streaming bilinear upsample + argmax), and the metrics derived from it
 * with the official evaluator's formulas (see include/segda/eval.h for why
 * 19 x 20 counts reproduce its 34 x 34 matrix). No file I/O here. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "segda/eval.h"

void sd_confusion_init(sd_confusion *cm) { memset(cm, 0, sizeof *cm); }

void sd_confusion_merge(sd_confusion *cm, const sd_confusion *other)
{
    for (int g = 0; g < SD_NUM_CLASSES; g++)
        for (int p = 0; p < SD_EVAL_COLS; p++)
            cm->counts[g][p] += other->counts[g][p];
    cm->ignored += other->ignored;
    cm->images += other->images;
}

/* Column of each prediction byte; -1 marks a value outside the label space. */
static void pred_columns(sd_pred_kind kind, int col[256])
{
    for (int v = 0; v < 256; v++)
        col[v] = -1;
    if (kind == SD_PRED_LABEL_IDS) {
        uint8_t lut[256];
        sd_labels_id_to_train_lut(lut);
        for (int v = 0; v < SD_NUM_LABEL_IDS; v++)
            col[v] = lut[v] == SD_IGNORE ? SD_EVAL_VOID : lut[v];
    } else {
        for (int v = 0; v < SD_NUM_CLASSES; v++)
            col[v] = v;
        col[SD_IGNORE] = SD_EVAL_VOID;
    }
}

sd_status sd_confusion_add(sd_confusion *cm, const uint8_t *gt, const uint8_t *pred, int w, int h,
                           sd_pred_kind kind, const char *name)
{
    if (w < 0 || h < 0)
        return sd_fail(SD_ERR_ARG, "%s: bad image size %dx%d", name, w, h);
    int col[256];
    pred_columns(kind, col);
    /* counted in a local matrix so that a bad pixel leaves cm untouched */
    uint64_t local[SD_NUM_CLASSES][SD_EVAL_COLS];
    uint64_t ignored = 0;
    memset(local, 0, sizeof local);
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) {
        int g = gt[i], c = col[pred[i]];
        if (c < 0)
            return sd_fail(SD_ERR_DATA,
                           "%s: value %d at pixel (x %zu, y %zu) is not a %s", name, pred[i],
                           i % (size_t)w, i / (size_t)w,
                           kind == SD_PRED_LABEL_IDS
                               ? "Cityscapes label id (expected 0..33)"
                               : "trainId (expected 0..18, or 255 for no class)");
        if (g == SD_IGNORE) {
            ignored++;
            continue;
        }
        if (g >= SD_NUM_CLASSES)
            return sd_fail(SD_ERR_DATA,
                           "ground truth of %s: value %d at pixel (x %zu, y %zu) is not a trainId "
                           "(expected 0..18 or 255)",
                           name, g, i % (size_t)w, i / (size_t)w);
        local[g][c]++;
    }
    for (int g = 0; g < SD_NUM_CLASSES; g++)
        for (int p = 0; p < SD_EVAL_COLS; p++)
            cm->counts[g][p] += local[g][p];
    cm->ignored += ignored;
    cm->images++;
    return SD_OK;
}

/* Source indices and weights along one axis, as PyTorch's
 * compute_source_index_and_lambda computes them (float arithmetic, the
 * identity case copied, the source index clamped at 0 without
 * align_corners). */
static void linear_taps(int in, int out, bool align_corners, int *i0, int *i1, float *w0, float *w1)
{
    float scale;
    if (align_corners)
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    else
        scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        if (in == out) {
            i0[d] = i1[d] = d;
            w0[d] = 1.0f;
            w1[d] = 0.0f;
            continue;
        }
        float src = align_corners ? scale * (float)d : scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.0f)
            src = 0.0f;
        int a = (int)src;
        if (a > in - 1)
            a = in - 1;
        float lam = src - (float)a;
        lam = lam < 0.0f ? 0.0f : lam > 1.0f ? 1.0f : lam;
        i0[d] = a;
        i1[d] = a + (a < in - 1 ? 1 : 0);
        w1[d] = lam;
        w0[d] = 1.0f - lam;
    }
}

sd_status sd_upsample_argmax(const float *logits, int c, int h, int w, int out_h, int out_w,
                             bool align_corners, uint8_t *out)
{
    if (c < 1 || c > 255 || h < 1 || w < 1 || out_h < 1 || out_w < 1)
        return sd_fail(SD_ERR_ARG,
                       "upsample+argmax: bad shape: logits [%d, %d, %d] to %dx%d (expected "
                       "1..255 classes and positive sizes)",
                       c, h, w, out_w, out_h);
    size_t plane = (size_t)h * (size_t)w;
    for (size_t i = 0; i < (size_t)c * plane; i++)
        if (!isfinite(logits[i]))
            return sd_fail(SD_ERR_NUMERIC,
                           "upsample+argmax: logit %g at class %zu, (x %zu, y %zu) is not finite",
                           (double)logits[i], i / plane, i % plane % (size_t)w,
                           i % plane / (size_t)w);
    int nt = sd_threads();
    /* the per-axis taps plus one best-value row per thread: O(W), never C x H x W */
    size_t nx = (size_t)out_w, ny = (size_t)out_h;
    int *ix = sd_malloc(sizeof(int) * 2 * nx);
    int *iy = sd_malloc(sizeof(int) * 2 * ny);
    float *wx = sd_malloc(sizeof(float) * 2 * nx);
    float *wy = sd_malloc(sizeof(float) * 2 * ny);
    float *best = sd_malloc(sizeof(float) * nx * (size_t)nt);
    if (!ix || !iy || !wx || !wy || !best) {
        free(ix), free(iy), free(wx), free(wy), free(best);
        return SD_ERR_NOMEM;
    }
    linear_taps(w, out_w, align_corners, ix, ix + nx, wx, wx + nx);
    linear_taps(h, out_h, align_corners, iy, iy + ny, wy, wy + ny);

#pragma omp parallel for schedule(static) num_threads(nt)
    for (int y = 0; y < out_h; y++) {
        float *bv = best + nx * (size_t)omp_get_thread_num();
        uint8_t *o = out + (size_t)y * nx;
        const float wy0 = wy[y], wy1 = wy[ny + y];
        for (int k = 0; k < c; k++) {
            const float *r0 = logits + (size_t)k * plane + (size_t)iy[y] * (size_t)w;
            const float *r1 = logits + (size_t)k * plane + (size_t)iy[ny + y] * (size_t)w;
            for (size_t x = 0; x < nx; x++) {
                /* PyTorch's order: each row lerped along x, then the rows along y */
                float t0 = r0[ix[x]] * wx[x] + r0[ix[nx + x]] * wx[nx + x];
                float t1 = r1[ix[x]] * wx[x] + r1[ix[nx + x]] * wx[nx + x];
                float v = t0 * wy0 + t1 * wy1;
                if (k == 0 || v > bv[x]) { /* strict: ties keep the lowest class */
                    bv[x] = v;
                    o[x] = (uint8_t)k;
                }
            }
        }
    }
    free(ix), free(iy), free(wx), free(wy), free(best);
    return SD_OK;
}

sd_status sd_confusion_add_logits(sd_confusion *cm, const float *logits, int c, int h, int w,
                                  const uint8_t *gt, int gt_w, int gt_h, bool align_corners,
                                  const char *name)
{
    if (c != SD_NUM_CLASSES && c != SD_NUM_CLASSES_SYNTHIA)
        return sd_fail(SD_ERR_SHAPE, "%s: logits have %d classes, expected %d (trainIds) or %d (SYNTHIA's)", name, c,
                       SD_NUM_CLASSES, SD_NUM_CLASSES_SYNTHIA);
    /* the argmax map is gt-sized bytes; the float upsampled tensor is never formed */
    uint8_t *pred = sd_malloc((size_t)gt_w * (size_t)gt_h);
    if (!pred)
        return SD_ERR_NOMEM;
    sd_status st = sd_upsample_argmax(logits, c, h, w, gt_h, gt_w, align_corners, pred);
    if (st == SD_OK)
        sd_class_set_to_train_ids(c, pred, (size_t)gt_w * gt_h);   /* a 16-class model's outputs */
    if (st == SD_OK)
        st = sd_confusion_add(cm, gt, pred, gt_w, gt_h, SD_PRED_TRAIN_IDS, name);
    else
        sd_fail_prefix(st, "%s", name);
    free(pred);
    return st;
}

static double ratio_or_nan(uint64_t num, uint64_t den)
{
    return den ? (double)num / (double)den : NAN;
}

double sd_eval_mean_iou(const double class_iou[SD_NUM_CLASSES], sd_protocol p)
{
    const sd_protocol_info *pi = &sd_protocols[p];
    double sum = 0;
    int n = 0;
    for (int i = 0; i < pi->n; i++)
        if (!isnan(class_iou[pi->classes[i]])) {
            sum += class_iou[pi->classes[i]];
            n++;
        }
    return n ? sum / n : NAN;
}

void sd_eval_compute(const sd_confusion *cm, sd_eval_result *out)
{
    uint64_t row[SD_NUM_CLASSES] = {0}, colsum[SD_NUM_CLASSES] = {0}, diag = 0, total = 0;
    for (int g = 0; g < SD_NUM_CLASSES; g++) {
        for (int p = 0; p < SD_EVAL_COLS; p++) {
            row[g] += cm->counts[g][p];
            if (p < SD_NUM_CLASSES)
                colsum[p] += cm->counts[g][p];
        }
        diag += cm->counts[g][g];
        total += row[g];
    }
    double acc_sum = 0;
    int acc_n = 0;
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        uint64_t tp = cm->counts[c][c];
        uint64_t fn = row[c] - tp, fp = colsum[c] - tp;
        out->class_iou[c] = ratio_or_nan(tp, tp + fp + fn);
        out->class_acc[c] = ratio_or_nan(tp, row[c]);
        if (row[c]) {
            acc_sum += out->class_acc[c];
            acc_n++;
        }
    }
    for (int k = 0; k < SD_NUM_CATEGORIES; k++) {
        uint64_t tp = 0, rows = 0, cols = 0;
        for (int g = 0; g < SD_NUM_CLASSES; g++)
            for (int p = 0; p < SD_NUM_CLASSES; p++) {
                bool gk = sd_class_category[g] == k, pk = sd_class_category[p] == k;
                if (gk && pk)
                    tp += cm->counts[g][p];
                else if (!gk && pk)
                    cols += cm->counts[g][p];
            }
        for (int g = 0; g < SD_NUM_CLASSES; g++)
            if (sd_class_category[g] == k)
                rows += row[g];
        /* FN = rows of K minus TP (void column included); FP = K's columns on rows outside K */
        out->category_iou[k] = ratio_or_nan(tp, rows + cols);
    }
    for (int p = 0; p < SD_PROTOCOL_COUNT; p++)
        out->miou[p] = sd_eval_mean_iou(out->class_iou, (sd_protocol)p);
    out->pixel_accuracy = ratio_or_nan(diag, total);
    out->mean_accuracy = acc_n ? acc_sum / acc_n : NAN;
    out->scored_pixels = total;
}
