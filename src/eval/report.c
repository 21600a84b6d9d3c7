/* Reports of evaluation results: the protocol block, the papers' table
 * (classes as columns, one row per model, the mean last), CSV and JSON.
 * Computes nothing but means of given IoUs; the metrics are in confusion.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segda/eval.h"
#include "io/file.h"

const char *const sd_class_short_names[SD_NUM_CLASSES] = {
    "road", "side.", "build.", "wall", "fence", "pole", "light", "sign", "veg.", "terr.",
    "sky", "person", "rider", "car", "truck", "bus", "train", "mbike", "bike",
};

static const char *const category_short_names[SD_NUM_CATEGORIES] = {
    "flat", "constr.", "object", "nature", "sky", "human", "vehicle",
};

void sd_eval_setup_write(FILE *f, const sd_eval_setup *s)
{
    const sd_protocol_info *pi = &sd_protocols[s->protocol];
    fprintf(f, "protocol:   %s (%d classes; mean over classes present in ground truth or "
               "prediction), official Cityscapes formulas, one confusion matrix over all images\n",
            pi->name, pi->n);
    if (s->dataset)
        fprintf(f, "data:       %s%s%s\n", s->dataset, s->split ? ", split " : "",
                s->split ? s->split : "");
    if (s->source)
        fprintf(f, "scored:     %s\n", s->source);
    if (s->gt_w > 0)
        fprintf(f, "resolution: %dx%d (the ground truth's full resolution)\n", s->gt_w, s->gt_h);
    else
        fprintf(f, "resolution: each ground truth's full resolution (sizes vary)\n");
    if (s->align_corners >= 0)
        fprintf(f, "upsampling: bilinear, align_corners=%s\n", s->align_corners ? "True" : "False");
    else
        fprintf(f, "upsampling: none (predictions are at ground-truth size)\n");
    fprintf(f, "images:     %lld", (long long)s->images);
    if (s->skipped)
        fprintf(f, " (%lld skipped: no prediction)", (long long)s->skipped);
    fprintf(f, "\n");
}

static int name_width(int n_rows, const char *const *names)
{
    int nw = 5;
    for (int i = 0; i < n_rows; i++) {
        int l = (int)strlen(names[i] ? names[i] : "");
        if (l > nw)
            nw = l;
    }
    return nw;
}

static void put_pct(FILE *f, int width, double v)
{
    if (isnan(v))
        fprintf(f, " %*s", width, "-");
    else
        fprintf(f, " %*.1f", width, 100.0 * v);
}

static int col_width(const char *header) { return strlen(header) > 5 ? (int)strlen(header) : 5; }

void sd_iou_table_write(FILE *f, sd_protocol p, int n_rows, const char *const *names,
                        const double (*class_iou)[SD_NUM_CLASSES])
{
    const sd_protocol_info *pi = &sd_protocols[p];
    /* SYNTHIA tables print mIoU (16) and mIoU* (13) side by side */
    sd_protocol means[2] = {p, SD_PROTOCOL_13};
    int n_means = p == SD_PROTOCOL_16 ? 2 : 1;
    int nw = name_width(n_rows, names);
    fprintf(f, "%-*s", nw, "");
    for (int i = 0; i < pi->n; i++)
        fprintf(f, " %*s", col_width(sd_class_short_names[pi->classes[i]]),
                sd_class_short_names[pi->classes[i]]);
    for (int m = 0; m < n_means; m++)
        fprintf(f, " %*s", col_width(sd_protocols[means[m]].name), sd_protocols[means[m]].name);
    fprintf(f, "\n");
    for (int r = 0; r < n_rows; r++) {
        fprintf(f, "%-*s", nw, names[r] ? names[r] : "");
        for (int i = 0; i < pi->n; i++)
            put_pct(f, col_width(sd_class_short_names[pi->classes[i]]),
                    class_iou[r][pi->classes[i]]);
        for (int m = 0; m < n_means; m++)
            put_pct(f, col_width(sd_protocols[means[m]].name),
                    sd_eval_mean_iou(class_iou[r], means[m]));
        fprintf(f, "\n");
    }
}

void sd_eval_table_write(FILE *f, sd_protocol p, const sd_eval_row *rows, int n_rows)
{
    const char **names = sd_malloc(sizeof(char *) * (size_t)(n_rows > 0 ? n_rows : 1));
    double(*iou)[SD_NUM_CLASSES] = sd_malloc(sizeof *iou * (size_t)(n_rows > 0 ? n_rows : 1));
    if (!names || !iou) {
        free(names), free(iou);
        fprintf(f, "(table: out of memory)\n");
        return;
    }
    for (int r = 0; r < n_rows; r++) {
        names[r] = rows[r].name;
        memcpy(iou[r], rows[r].r.class_iou, sizeof iou[r]);
    }
    sd_iou_table_write(f, p, n_rows, names, (const double(*)[SD_NUM_CLASSES])iou);

    /* summary: every protocol's mean, accuracies, then category IoU */
    static const char *const heads[] = {"mIoU-19", "mIoU-16", "mIoU-13", "mIoU-CV", "pixAcc", "mAcc"};
    int nw = name_width(n_rows, names);
    fprintf(f, "\n%-*s", nw, "");
    for (int i = 0; i < 6; i++)
        fprintf(f, " %*s", col_width(heads[i]), heads[i]);
    fprintf(f, " |");
    for (int k = 0; k < SD_NUM_CATEGORIES; k++)
        fprintf(f, " %*s", col_width(category_short_names[k]), category_short_names[k]);
    fprintf(f, "\n");
    for (int r = 0; r < n_rows; r++) {
        const sd_eval_result *e = &rows[r].r;
        double v[6] = {e->miou[SD_PROTOCOL_19], e->miou[SD_PROTOCOL_16], e->miou[SD_PROTOCOL_13],
                       e->miou[SD_PROTOCOL_CAMVID], e->pixel_accuracy, e->mean_accuracy};
        fprintf(f, "%-*s", nw, names[r] ? names[r] : "");
        for (int i = 0; i < 6; i++)
            put_pct(f, col_width(heads[i]), v[i]);
        fprintf(f, " |");
        for (int k = 0; k < SD_NUM_CATEGORIES; k++)
            put_pct(f, col_width(category_short_names[k]), e->category_iou[k]);
        fprintf(f, "\n");
    }
    fprintf(f, "(IoU and accuracy in percent; '-' = absent from ground truth and prediction, "
               "left out of the means; category IoU on the category confusion matrix)\n");
    free(names), free(iou);
}

/* Writers go to PATH.tmp and are renamed at the end, so a reader never sees
 * half a report. */
static FILE *open_tmp(const char *path, char **tmp)
{
    size_t n = strlen(path) + 32;
    *tmp = sd_malloc(n);
    if (!*tmp)
        return NULL;
    io_tmp_name(*tmp, n, path);
    FILE *f = fopen(*tmp, "w");
    if (!f) {
        sd_fail(SD_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(*tmp);
        *tmp = NULL;
    }
    return f;
}

static sd_status close_tmp(FILE *f, char *tmp, const char *path)
{
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad) {
        remove(tmp);
        free(tmp);
        return sd_fail(SD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        sd_status st = sd_fail(SD_ERR_IO, "%s: cannot rename %s: %s", path, tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return SD_OK;
}

static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    fputc(',', f);
    if (!isnan(v))
        fprintf(f, "%.10g", v);
}

sd_status sd_eval_csv_write(const char *path, const sd_eval_row *rows, int n_rows)
{
    char *tmp;
    FILE *f = open_tmp(path, &tmp);
    if (!f)
        return SD_ERR_IO;
    fputs("name", f);
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        fputc(',', f);
        csv_field(f, sd_class_names[c]);
    }
    fputs(",miou_19,miou_16,miou_13,miou_camvid,pixel_accuracy,mean_accuracy", f);
    for (int k = 0; k < SD_NUM_CATEGORIES; k++)
        fprintf(f, ",%s", sd_category_names[k]);
    bool iiou = false;   /* iIoU columns when any row has them (empty where absent) */
    for (int r = 0; r < n_rows; r++)
        iiou |= rows[r].has_iiou;
    for (int c = 0; c < 8 && iiou; c++)
        fprintf(f, ",iiou_%s", sd_class_names[11 + c]);
    if (iiou)
        fputs(",iiou", f);
    fputc('\n', f);
    for (int r = 0; r < n_rows; r++) {
        const sd_eval_result *e = &rows[r].r;
        csv_field(f, rows[r].name ? rows[r].name : "");
        for (int c = 0; c < SD_NUM_CLASSES; c++)
            csv_num(f, e->class_iou[c]);
        for (int p = 0; p < SD_PROTOCOL_COUNT; p++)
            csv_num(f, e->miou[p]);
        csv_num(f, e->pixel_accuracy);
        csv_num(f, e->mean_accuracy);
        for (int k = 0; k < SD_NUM_CATEGORIES; k++)
            csv_num(f, e->category_iou[k]);
        for (int c = 0; c < 9 && iiou; c++)
            csv_num(f, !rows[r].has_iiou ? NAN : c < 8 ? rows[r].iiou[c] : rows[r].iiou_mean);
        fputc('\n', f);
    }
    return close_tmp(f, tmp, path);
}

sd_status sd_eval_json_write(const char *path, const sd_eval_setup *s, const sd_eval_row *rows,
                             int n_rows)
{
    char *tmp;
    FILE *f = open_tmp(path, &tmp);
    if (!f)
        return SD_ERR_IO;
    const sd_protocol_info *pi = &sd_protocols[s->protocol];
    fputs("{\n  \"protocol\": {\"name\": ", f);
    sd_json_str(f, pi->name);
    fputs(", \"classes\": [", f);
    for (int i = 0; i < pi->n; i++) {
        fputs(i ? ", " : "", f);
        sd_json_str(f, sd_class_names[pi->classes[i]]);
    }
    fputs("],\n    \"means\": \"over the protocol's classes present in ground truth or prediction\",\n"
          "    \"matrix\": \"one confusion matrix over all images; ignored ground truth not "
          "scored; category IoU on the category matrix (cityscapesScripts formulas)\",\n"
          "    \"dataset\": ",
          f);
    if (s->dataset)
        sd_json_str(f, s->dataset);
    else
        fputs("null", f);
    fputs(", \"split\": ", f);
    if (s->split)
        sd_json_str(f, s->split);
    else
        fputs("null", f);
    fputs(", \"source\": ", f);
    if (s->source)
        sd_json_str(f, s->source);
    else
        fputs("null", f);
    fputs(",\n    \"resolution\": ", f);
    if (s->gt_w > 0)
        fprintf(f, "[%d, %d]", s->gt_w, s->gt_h);
    else
        fputs("\"ground truth's own (varies)\"", f);
    fprintf(f, ", \"align_corners\": %s, \"skipped\": %lld},\n",
            s->align_corners < 0 ? "null" : s->align_corners ? "true" : "false",
            (long long)s->skipped);
    fprintf(f, "  \"images\": %lld,\n  \"models\": [", (long long)s->images);
    for (int r = 0; r < n_rows; r++) {
        const sd_eval_result *e = &rows[r].r;
        fputs(r ? ",\n    {" : "\n    {", f);
        fputs("\"name\": ", f);
        sd_json_str(f, rows[r].name);
        static const char *const mk[SD_PROTOCOL_COUNT] = {"miou_19", "miou_16", "miou_13", "miou_camvid"};
        for (int p = 0; p < SD_PROTOCOL_COUNT; p++) {
            fprintf(f, ", \"%s\": ", mk[p]);
            sd_json_num(f, e->miou[p], 15);
        }
        fputs(", \"pixel_accuracy\": ", f);
        sd_json_num(f, e->pixel_accuracy, 15);
        fputs(", \"mean_accuracy\": ", f);
        sd_json_num(f, e->mean_accuracy, 15);
        fputs(",\n     \"class_iou\": {", f);
        for (int c = 0; c < SD_NUM_CLASSES; c++) {
            fputs(c ? ", " : "", f);
            sd_json_str(f, sd_class_names[c]);
            fputs(": ", f);
            sd_json_num(f, e->class_iou[c], 15);
        }
        fputs("},\n     \"category_iou\": {", f);
        for (int k = 0; k < SD_NUM_CATEGORIES; k++) {
            fputs(k ? ", " : "", f);
            sd_json_str(f, sd_category_names[k]);
            fputs(": ", f);
            sd_json_num(f, e->category_iou[k], 15);
        }
        fputs("},\n     \"iiou\": ", f);
        sd_json_num(f, rows[r].has_iiou ? rows[r].iiou_mean : NAN, 15);
        fputs(", \"class_iiou\": ", f);
        if (!rows[r].has_iiou)
            fputs("null", f);
        for (int c = 0; c < 8 && rows[r].has_iiou; c++) {
            fputs(c ? ", " : "{", f);
            sd_json_str(f, sd_class_names[11 + c]);
            fputs(": ", f);
            sd_json_num(f, rows[r].iiou[c], 15);
        }
        fputs(rows[r].has_iiou ? "}}" : "}", f);
    }
    fputs(n_rows ? "\n  ]\n}\n" : "]\n}\n", f);
    return close_tmp(f, tmp, path);
}
