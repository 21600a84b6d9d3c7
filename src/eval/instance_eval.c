/* Instance-aware metrics of cityscapesScripts (eval_inst.h): iIoU from the
 * pixel-level script and AP / AP50 from the instance-level one, following
 * their arithmetic step by step (the comments name the official variables).
 * No file reading here: the runners live in instance_run.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "segda/eval_inst.h"
#include "segda/labels.h"

const double sd_cityscapes_avg_inst_size[SD_NUM_THING_CLASSES] = {
    3462.4756337644,  /* person */
    3930.4788056518,  /* rider */
    12794.0202738185, /* car */
    27855.1264367816, /* truck */
    35732.1511111111, /* bus */
    67583.7075812274, /* train */
    6298.7200839748,  /* motorcycle */
    4672.3249222261,  /* bicycle */
};

/* ---- iIoU ---- */

void sd_iiou_init(sd_iiou *s, int w, int h)
{
    memset(s, 0, sizeof *s);
    double scale = (double)w * (double)h / (2048.0 * 1024.0);
    for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
        s->avg_size[k] = sd_cityscapes_avg_inst_size[k] * scale;
}

void sd_iiou_merge(sd_iiou *s, const sd_iiou *o)
{
    for (int k = 0; k < SD_NUM_THING_CLASSES; k++) {
        s->tp_w[k] += o->tp_w[k], s->fn_w[k] += o->fn_w[k];
        s->tp[k] += o->tp[k], s->fn[k] += o->fn[k];
        s->instances[k] += o->instances[k];
    }
}

sd_status sd_iiou_add(sd_iiou *s, const sd_instances *gt, const uint8_t *pred, const char *name)
{
    if (gt->n == 0)
        return SD_OK;
    int64_t *tp = calloc((size_t)gt->n, sizeof *tp);
    if (!tp)
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory for iIoU", name);
    size_t np = (size_t)gt->w * gt->h;
    for (size_t p = 0; p < np; p++) {
        int k = gt->map[p];
        if (k >= 0)
            tp[k] += pred[p] == gt->inst[k].train_id;
    }
    for (int i = 0; i < gt->n; i++) {
        const sd_instance *in = &gt->inst[i];
        int c = in->train_id - SD_FIRST_THING_TRAIN_ID;
        double weight = s->avg_size[c] / (double)in->area; /* avgClassSize / instSize */
        int64_t fn = in->area - tp[i];
        s->tp[c] += (uint64_t)tp[i], s->fn[c] += (uint64_t)fn;
        s->tp_w[c] += (double)tp[i] * weight;
        s->fn_w[c] += (double)fn * weight;
        s->instances[c]++;
    }
    free(tp);
    return SD_OK;
}

void sd_iiou_compute(const sd_iiou *s, const sd_confusion *cm, double iiou[SD_NUM_THING_CLASSES], double *mean)
{
    double sum = 0;
    int n = 0;
    for (int k = 0; k < SD_NUM_THING_CLASSES; k++) {
        int c = SD_FIRST_THING_TRAIN_ID + k;
        uint64_t fp = 0; /* column c over the evaluated rows other than c */
        for (int r = 0; r < SD_NUM_CLASSES; r++)
            if (r != c)
                fp += cm->counts[r][c];
        double denom = s->tp_w[k] + (double)fp + s->fn_w[k];
        iiou[k] = denom == 0 ? NAN : s->tp_w[k] / denom;
        if (!isnan(iiou[k]))
            sum += iiou[k], n++;
    }
    *mean = n ? sum / n : NAN;
}

/* ---- AP ---- */

void sd_ap_init(sd_ap *s) { memset(s, 0, sizeof *s); }

void sd_ap_free(sd_ap *s)
{
    for (int c = 0; c < SD_NUM_THING_CLASSES; c++)
        for (int o = 0; o < SD_AP_OVERLAPS; o++)
            free(s->e[c][o].score), free(s->e[c][o].hit);
    memset(s, 0, sizeof *s);
}

double sd_ap_overlap(int k) { return 0.5 + (double)k * 0.05; }

static int push(sd_ap_list *l, double score, int hit)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        double *s = realloc(l->score, (size_t)cap * sizeof *s);
        if (!s)
            return -1;
        l->score = s;
        uint8_t *h = realloc(l->hit, (size_t)cap);
        if (!h)
            return -1;
        l->hit = h;
        l->cap = cap;
    }
    l->score[l->n] = score;
    l->hit[l->n++] = (uint8_t)hit;
    return 0;
}

/* The Cityscapes label id of a thing trainId (person 24 ... bicycle 33). */
static int thing_label_id(int train_id)
{
    static const int ids[SD_NUM_THING_CLASSES] = {24, 25, 26, 27, 28, 31, 32, 33};
    return ids[train_id - SD_FIRST_THING_TRAIN_ID];
}

typedef struct gt_inst { int id; int64_t count; } gt_inst;

/* One class of one image: ground truth (all ids of its label, crowds
 * included, as instances2dict lists them) against its predictions. inter:
 * [np][ng] intersections; pcount, pvoid: [np]. */
static int ap_class_image(sd_ap *s, int c, const gt_inst *g, int ng, const float *score, const int64_t *pcount,
                          const int64_t *pvoid, const int64_t *inter, int np)
{
    bool *valid = calloc((size_t)(ng ? ng : 1), sizeof *valid);
    if (!valid)
        return -1;
    int nvalid = 0;
    for (int j = 0; j < ng; j++) {
        valid[j] = g[j].id >= 1000 && g[j].count >= SD_AP_MIN_REGION;
        nvalid += valid[j];
    }
    if (nvalid)
        s->have_gt[c] = true;
    if (np)
        s->have_pred[c] = true;
    s->gt_instances[c] += nvalid;
    s->predictions[c] += np;
    int rc = 0;
    for (int o = 0; o < SD_AP_OVERLAPS && !rc; o++) {
        double th = sd_ap_overlap(o);
        sd_ap_list *l = &s->e[c][o];
        for (int j = 0; j < ng && !rc; j++) {
            if (!valid[j])
                continue;
            /* the best-scored overlapping prediction is the match; every
             * further one is a false positive at its own score */
            bool matched = false;
            double best = 0;
            for (int i = 0; i < np && !rc; i++) {
                int64_t x = inter[(size_t)i * ng + j];
                if (x <= 0 || (double)x / (double)(g[j].count + pcount[i] - x) <= th)
                    continue;
                if (!matched) {
                    matched = true, best = score[i];
                } else {
                    rc = push(l, fmin(best, score[i]), 0);
                    best = fmax(best, score[i]);
                }
            }
            if (matched)
                rc = rc ? rc : push(l, best, 1);
            else
                s->hard_fn[c][o]++;
        }
        for (int i = 0; i < np && !rc; i++) {
            bool found = false;
            int64_t ignore = pvoid[i];
            for (int j = 0; j < ng; j++) {
                int64_t x = inter[(size_t)i * ng + j];
                if (x <= 0)
                    continue;
                if ((double)x / (double)(g[j].count + pcount[i] - x) > th) {
                    found = true;
                    break;
                }
                /* as the official loop: a crowd region under 100 pixels counts twice */
                if (g[j].id < 1000)
                    ignore += x;
                if (g[j].count < SD_AP_MIN_REGION)
                    ignore += x;
            }
            if (!found && (double)ignore / (double)pcount[i] <= th)
                rc = push(l, score[i], 0);
        }
    }
    free(valid);
    return rc;
}

sd_status sd_ap_add(sd_ap *s, const uint16_t *gt_ids, int w, int h, const sd_inst_pred *preds, int n,
                    const char *name)
{
    size_t npx = (size_t)w * h;
    int32_t *slot = malloc(65536 * sizeof *slot);
    int64_t *cnt = calloc(65536, sizeof *cnt);
    if (!slot || !cnt) {
        free(slot), free(cnt);
        return sd_fail(SD_ERR_NOMEM, "%s: out of memory for AP", name);
    }
    sd_status st = SD_OK;
    for (size_t p = 0; p < npx; p++)
        cnt[gt_ids[p]]++;
    for (int v = 0; v < 65536 && !st; v++) {
        int label = v < 1000 ? v : v / 1000;
        if (cnt[v] && label >= SD_NUM_LABEL_IDS) {
            size_t p = 0;
            while (gt_ids[p] != v)
                p++;
            st = sd_fail(SD_ERR_DATA, "%s: pixel (x=%zu, y=%zu) has instance id %d, which decodes to no label "
                         "(expected ids < %d or labelId*1000 + k)", name, p % (size_t)w, p / (size_t)w, v,
                         SD_NUM_LABEL_IDS);
        }
    }
    for (int c = 0; c < SD_NUM_THING_CLASSES && !st; c++) {
        int lid = thing_label_id(SD_FIRST_THING_TRAIN_ID + c);
        /* ground truth of this label, in id order */
        int ng = 0;
        gt_inst *g = NULL;
        for (int v = 0; v < 65536; v++)
            if (cnt[v] && (v < 1000 ? v : v / 1000) == lid)
                ng++;
        int np = 0;
        for (int i = 0; i < n; i++)
            np += preds[i].train_id == SD_FIRST_THING_TRAIN_ID + c;
        if (!ng && !np)
            continue;
        g = malloc((size_t)(ng ? ng : 1) * sizeof *g);
        float *score = malloc((size_t)(np ? np : 1) * sizeof *score);
        int64_t *pcount = calloc((size_t)(np ? np : 1), sizeof *pcount);
        int64_t *pvoid = calloc((size_t)(np ? np : 1), sizeof *pvoid);
        int64_t *inter = calloc((size_t)(np ? np : 1) * (size_t)(ng ? ng : 1), sizeof *inter);
        if (!g || !score || !pcount || !pvoid || !inter)
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for AP", name);
        for (int v = 0, j = 0; !st && v < 65536; v++) {
            slot[v] = -1;
            if (cnt[v] && (v < 1000 ? v : v / 1000) == lid)
                g[j] = (gt_inst){v, cnt[v]}, slot[v] = j++;
        }
        int k = 0;
        for (int i = 0; i < n && !st; i++) {
            if (preds[i].train_id != SD_FIRST_THING_TRAIN_ID + c)
                continue;
            const uint8_t *m = preds[i].mask;
            int64_t *row = &inter[(size_t)k * (ng ? ng : 1)];
            for (size_t p = 0; p < npx; p++) {
                if (!m[p])
                    continue;
                int v = gt_ids[p];
                pcount[k]++;
                if (v < SD_NUM_LABEL_IDS && sd_labels[v].train_id == SD_IGNORE)
                    pvoid[k]++; /* voidIntersection: plain ids of labels ignored in evaluation */
                if (slot[v] >= 0)
                    row[slot[v]]++;
            }
            score[k] = preds[i].score;
            /* empty masks are passed over, as the official predPixelCount check does */
            if (pcount[k])
                k++;
            else
                memset(row, 0, (size_t)(ng ? ng : 1) * sizeof *row);
        }
        if (!st && ap_class_image(s, c, g, ng, score, pcount, pvoid, inter, k))
            st = sd_fail(SD_ERR_NOMEM, "%s: out of memory for AP", name);
        free(g), free(score), free(pcount), free(pvoid), free(inter);
    }
    free(slot), free(cnt);
    return st;
}

static int cmp_score(const void *a, const void *b, void *ctx)
{
    const double *s = ctx;
    double x = s[*(const int *)a], y = s[*(const int *)b];
    return x < y ? -1 : x > y;
}

/* One (class, overlap): the official precision/recall and its integration.
 * Scores sorted ascending; at each distinct score t, the examples scored >= t
 * are the detections kept: tp, fp among them, fn = true ones below t plus the
 * ground truth never matched. Then AP = sum_i p_i * (r_{i-1} - r_{i+1}) / 2
 * with r_{-1} = r_0 and a final point (p 1, r 0). */
static double ap_of(const sd_ap_list *l, int64_t hard_fn)
{
    int n = l->n;
    if (n == 0)
        return 0; /* ground truth, predictions, but no example: recall 0 */
    int *ord = malloc((size_t)n * sizeof *ord);
    double *cum = malloc(((size_t)n + 1) * sizeof *cum);
    double *prec = malloc(((size_t)n + 1) * sizeof *prec), *rec = malloc(((size_t)n + 2) * sizeof *rec);
    if (!ord || !cum || !prec || !rec) {
        free(ord), free(cum), free(prec), free(rec);
        return NAN;
    }
    for (int i = 0; i < n; i++)
        ord[i] = i;
    qsort_r(ord, (size_t)n, sizeof *ord, cmp_score, l->score);
    double acc = 0;
    for (int i = 0; i < n; i++)
        cum[i] = acc += l->hit[ord[i]];
    double n_true = acc;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && l->score[ord[i]] == l->score[ord[i - 1]])
            continue;
        double below = i ? cum[i - 1] : 0;
        double tp = n_true - below, fp = (double)(n - i) - tp, fn = below + (double)hard_fn;
        prec[m] = tp / (tp + fp);
        rec[m] = tp / (tp + fn);
        m++;
    }
    prec[m] = 1, rec[m] = 0;
    m++;
    double ap = 0;
    for (int i = 0; i < m; i++) {
        double before = rec[i > 0 ? i - 1 : 0], after = i + 1 < m ? rec[i + 1] : 0;
        ap += prec[i] * 0.5 * (before - after);
    }
    free(ord), free(cum), free(prec), free(rec);
    return ap;
}

void sd_ap_compute(const sd_ap *s, sd_ap_result *out)
{
    double all = 0, all50 = 0;
    int n_all = 0, n50 = 0;
    for (int c = 0; c < SD_NUM_THING_CLASSES; c++) {
        double sum = 0;
        for (int o = 0; o < SD_AP_OVERLAPS; o++) {
            double a = s->have_gt[c] && s->have_pred[c] ? ap_of(&s->e[c][o], s->hard_fn[c][o])
                       : s->have_gt[c]                  ? 0.0
                                                        : NAN;
            out->ap[c][o] = a;
            sum += a;
            if (!isnan(a))
                all += a, n_all++;
        }
        out->class_ap[c] = sum / SD_AP_OVERLAPS; /* np.average: NAN stays NAN */
        out->class_ap50[c] = out->ap[c][0];
        if (!isnan(out->ap[c][0]))
            all50 += out->ap[c][0], n50++;
    }
    out->ap_mean = n_all ? all / n_all : NAN;
    out->ap50_mean = n50 ? all50 / n50 : NAN;
}

/* ---- tables ---- */

void sd_iiou_table_write(FILE *f, int n_rows, const char *const *names, const double (*iiou)[SD_NUM_THING_CLASSES],
                         const double *mean)
{
    fprintf(f, "iIoU (instance-weighted IoU, cityscapesScripts; %%)\n%-24s", "");
    for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
        fprintf(f, " %6.6s", sd_class_short_names[SD_FIRST_THING_TRAIN_ID + k]);
    fprintf(f, "  iIoU\n");
    for (int r = 0; r < n_rows; r++) {
        fprintf(f, "%-24.24s", names[r]);
        for (int k = 0; k < SD_NUM_THING_CLASSES; k++)
            isnan(iiou[r][k]) ? fprintf(f, " %6s", "-") : fprintf(f, " %6.1f", 100 * iiou[r][k]);
        isnan(mean[r]) ? fprintf(f, "  %4s\n", "-") : fprintf(f, "  %4.1f\n", 100 * mean[r]);
    }
}

void sd_ap_table_write(FILE *f, const char *name, const sd_ap *s, const sd_ap_result *r)
{
    fprintf(f, "instance-level AP (cityscapesScripts: overlaps 0.50:0.95:0.05, regions >= %d px) of %s\n",
            SD_AP_MIN_REGION, name);
    fprintf(f, "%-12s %8s %8s %8s %8s\n", "class", "AP", "AP50", "gt", "pred");
    for (int c = 0; c < SD_NUM_THING_CLASSES; c++) {
        fprintf(f, "%-12s", sd_class_names[SD_FIRST_THING_TRAIN_ID + c]);
        isnan(r->class_ap[c]) ? fprintf(f, " %8s", "-") : fprintf(f, " %8.3f", r->class_ap[c]);
        isnan(r->class_ap50[c]) ? fprintf(f, " %8s", "-") : fprintf(f, " %8.3f", r->class_ap50[c]);
        fprintf(f, " %8lld %8lld\n", (long long)s->gt_instances[c], (long long)s->predictions[c]);
    }
    fprintf(f, "%-12s", "average");
    isnan(r->ap_mean) ? fprintf(f, " %8s", "-") : fprintf(f, " %8.3f", r->ap_mean);
    isnan(r->ap50_mean) ? fprintf(f, " %8s\n", "-") : fprintf(f, " %8.3f\n", r->ap50_mean);
}
