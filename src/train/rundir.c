/* A run directory: config.txt, log.jsonl and the loop's part of
 * summary.json. Not here: checkpoints (resume.c), the loop (loop.c, on
 * the driver: driver.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/file.h"
#include "segda/checkpoint.h"
#include "segda/dist.h"
#include "segda/eval.h"
#include "segda/progress.h"
#include "segda/train.h"
#include "train/loop_priv.h"

/* ---- logging ---- */

/* On resume, drops log lines of iterations after the resumed checkpoint
 * (they were computed again). */
sd_status train_log_open(sd_trainer *tr, bool resume)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/log.jsonl", tr->rundir);
    if (resume) {
        FILE *in = fopen(path, "r");
        if (in) {
            io_tmp_name(tmp, sizeof tmp, path);
            FILE *out = fopen(tmp, "w");
            if (!out) {
                fclose(in);
                return sd_fail(SD_ERR_IO, "%s: %s", tmp, strerror(errno));
            }
            char *line = NULL;
            size_t cap = 0;
            while (getline(&line, &cap, in) > 0) {
                long long it = -1;
                if (sscanf(line, "{\"it\": %lld", &it) == 1 && it <= tr->it)
                    fputs(line, out);
            }
            free(line);
            fclose(in);
            if (fclose(out) || rename(tmp, path))
                return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
        }
    }
    tr->log = fopen(path, resume ? "a" : "w");
    if (!tr->log)
        return sd_fail(SD_ERR_IO, "%s: %s", path, strerror(errno));
    return SD_OK;
}

void train_log_iteration(sd_trainer *tr, float lr, double elapsed)
{
    if (!tr->log)
        return; /* (ranks other than 0 write nothing) */
    FILE *f = tr->log;
    fprintf(f, "{\"it\": %lld, \"lr\": %.6g, \"time\": %.3f, \"terms\": {", (long long)tr->it + 1, lr, elapsed);
    for (int i = 0; i < tr->n_terms; i++) {
        fprintf(f, "%s\"%s\": ", i ? ", " : "", tr->terms[i].name);
        sd_json_num(f, tr->terms[i].value, 6);
    }
    fprintf(f, "}}\n");
    fflush(f);
}

void train_log_eval(sd_trainer *tr, const sd_eval_result *r)
{
    if (!tr->log)
        return; /* (ranks other than 0 write nothing) */
    FILE *f = tr->log;
    fprintf(f, "{\"it\": %lld, \"eval\": {\"miou_19\": ", (long long)tr->it);
    sd_json_num(f, r->miou[SD_PROTOCOL_19], 6);
    fprintf(f, ", \"miou_16\": ");
    sd_json_num(f, r->miou[SD_PROTOCOL_16], 6);
    fprintf(f, ", \"miou_13\": ");
    sd_json_num(f, r->miou[SD_PROTOCOL_13], 6);
    fprintf(f, ", \"class_iou\": {");
    for (int c = 0; c < SD_NUM_CLASSES; c++) {
        fprintf(f, "%s\"%s\": ", c ? ", " : "", sd_class_short_names[c]);
        sd_json_num(f, r->class_iou[c], 6);
    }
    fprintf(f, "}}}\n");
    fflush(f);
}

/* A failed evaluation is a line of the log, so the run's record says which
 * iterations have no score and why. */
void train_log_eval_error(sd_trainer *tr, const char *msg)
{
    if (!tr->log)
        return; /* (ranks other than 0 write nothing) */
    fprintf(tr->log, "{\"it\": %lld, \"eval_error\": ", (long long)tr->it);
    sd_json_str(tr->log, msg);
    fprintf(tr->log, "}\n");
    fflush(tr->log);
}

void train_log_val_skipped(sd_trainer *tr)
{
    if (!tr->log)
        return; /* (ranks other than 0 write nothing) */
    const val_set *v = &((loop_priv *)tr->priv)->val;
    fprintf(tr->log, "{\"it\": %lld, \"val_skipped\": [", (long long)tr->it);
    for (int i = 0; i < v->n_skipped; i++) {
        fputs(i ? ", " : "", tr->log);
        sd_json_str(tr->log, v->skipped[i]);
    }
    fprintf(tr->log, "]}\n");
    fflush(tr->log);
}

static char *config_text(const sd_config *c)
{
    size_t n = 1;
    for (int i = 0; i < c->n; i++)
        n += strlen(c->e[i].key) + strlen(c->e[i].value) + 4;
    char *s = malloc(n), *p = s;
    if (!s)
        return NULL;
    *p = 0;
    for (int i = 0; i < c->n; i++)
        p += sprintf(p, "%s = %s\n", c->e[i].key, c->e[i].value);
    return s;
}

bool train_is_run_only_key(const char *k)
{
    return !strcmp(k, "resume") || !strcmp(k, "resume-force") || !strcmp(k, "stop-after") || !strcmp(k, "config");
}

sd_status train_write_config(sd_trainer *tr)
{
    sd_config keep;
    sd_config_init(&keep);
    loop_priv *pv = tr->priv;
    for (int i = 0; i < tr->cfg->n; i++)
        if (!train_is_run_only_key(tr->cfg->e[i].key)) {
            const char *used = sd_config_get(&pv->resolved, tr->cfg->e[i].key);
            sd_config_set(&keep, tr->cfg->e[i].key, used ? used : tr->cfg->e[i].value, tr->cfg->e[i].origin, true);
        }
    pv->config_text = config_text(&keep);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.txt", tr->rundir);
    sd_status st = !pv->config_text ? sd_fail(SD_ERR_NOMEM, "config: out of memory")
                   : pv->rank == 0  ? sd_config_write(&keep, path)
                                    : SD_OK;
    sd_config_free(&keep);
    return st;
}

/* The loop's part of summary.json (the driver fills status, message,
 * counts and time). */
void train_describe(sd_trainer *tr, const sd_train_summary *sum, sd_run_summary *s)
{
    loop_priv *pv = tr->priv;
    s->task = "train";
    s->method = tr->method ? tr->method->name : "";
    s->metric = pv->protocol == SD_PROTOCOL_16 ? "miou_16" : pv->protocol == SD_PROTOCOL_13 ? "miou_13" : "miou_19";
    s->final_value = pv->last_miou;
    s->best_value = tr->best_miou >= 0 ? tr->best_miou : NAN;
    s->best_iteration = tr->best_it;
    s->class_iou = sum->evaluated ? sum->class_iou : NULL;
    s->config = pv->config_text;
}
