/* A run's checkpoints: last.safetensors (the model, every module, optimiser
 * state and counter --resume needs) and best.safetensors, and --resume,
 * which refuses a checkpoint or a configuration of another run by name.
 * Not here: the safetensors format (src/io/checkpoint.c), the loop (loop.c). */
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

/* ---- checkpoints ---- */

static void set_meta_model(sd_ckpt_writer *w, sd_trainer *tr)
{
    const sd_model_opts *mo = sd_model_options(tr->model);
    char buf[64];
    sd_ckpt_writer_set_meta(w, SD_META_FORMAT, "segda");
    sd_ckpt_writer_set_meta(w, SD_META_MODEL, mo->name);
    snprintf(buf, sizeof buf, "%d", mo->classes);
    sd_ckpt_writer_set_meta(w, SD_META_CLASSES, buf);
    sd_ckpt_writer_set_meta(w, SD_META_NORM, sd_norm_name(tr->norm));
    sd_ckpt_writer_set_meta(w, SD_META_AUX, mo->aux ? "1" : "0");
    sd_ckpt_writer_set_meta(w, SD_META_ASPP2, mo->aspp_two_branch ? "1" : "0");
    snprintf(buf, sizeof buf, "%d", mo->output_stride);
    sd_ckpt_writer_set_meta(w, SD_META_OS, buf);
    snprintf(buf, sizeof buf, "%lld", (long long)tr->it);
    sd_ckpt_writer_set_meta(w, SD_META_ITER, buf);
    sd_ckpt_writer_set_meta(w, SD_META_METHOD, tr->method->name);
    sd_ckpt_writer_set_meta(w, SD_META_CONFIG, ((loop_priv *)tr->priv)->config_text);
}

/* Where a module's optimiser state lives in last.safetensors: module "disc:"
 * has its buffers under "opt:disc." and its step counts in "opt_steps:disc:"
 * (the model's are "opt:" and "opt_steps"). */
static void module_optim_names(const sd_train_module *m, char ns[80], char key[80])
{
    snprintf(ns, 80, "opt:%.*s.", (int)strlen(m->prefix) - 1, m->prefix);
    snprintf(key, 80, "opt_steps:%s", m->prefix);
}

/* last.safetensors: the model (loadable by predict/eval) plus every module,
 * optimiser state and counter --resume needs, written in one atomic file. */
sd_status train_save_last_file(sd_trainer *tr)
{
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    sd_status st = sd_ckpt_writer_add_params(&w, "", tr->params);
    char ns[80], key[80], buf[64];
    if (!st)
        st = sd_ckpt_writer_add_optim(&w, &tr->opt, "opt:", "opt_steps");
    for (int i = 0; i < tr->n_mods && !st; i++) {
        sd_train_module *m = &tr->mods[i];
        st = sd_ckpt_writer_add_params(&w, m->prefix, m->params);
        if (!st && m->trainable) {
            module_optim_names(m, ns, key);
            st = sd_ckpt_writer_add_optim(&w, &m->opt, ns, key);
        }
    }
    if (!st) {
        set_meta_model(&w, tr);
        snprintf(buf, sizeof buf, "%.17g", tr->best_miou);
        sd_ckpt_writer_set_meta(&w, "best_miou", buf);
        snprintf(buf, sizeof buf, "%lld", (long long)tr->best_it);
        sd_ckpt_writer_set_meta(&w, "best_iteration", buf);
        char path[4096];
        snprintf(path, sizeof path, "%s/last.safetensors", tr->rundir);
        st = sd_ckpt_writer_save(&w, path);
    }
    sd_ckpt_writer_free(&w);
    if (!st)
        tr->last_saved_it = tr->it;
    return st;
}

sd_status train_save_best(sd_trainer *tr)
{
    if (((loop_priv *)tr->priv)->rank != 0)
        return sd_dist_agree(SD_OK);
    sd_ckpt_writer w;
    sd_ckpt_writer_init(&w);
    sd_status st = sd_ckpt_writer_add_params(&w, "", tr->params);
    if (!st) {
        set_meta_model(&w, tr);
        char buf[64], path[4096];
        snprintf(buf, sizeof buf, "%.17g", tr->best_miou);
        sd_protocol pr = ((loop_priv *)tr->priv)->protocol;
        sd_ckpt_writer_set_meta(&w, pr == SD_PROTOCOL_16 ? "miou_16" : "miou_19", buf);
        snprintf(path, sizeof path, "%s/best.safetensors", tr->rundir);
        st = sd_ckpt_writer_save(&w, path);
    }
    sd_ckpt_writer_free(&w);
    return sd_dist_agree(st);
}

sd_status sd_train_set_resolved(sd_trainer *tr, const char *key, const char *value)
{
    loop_priv *pv = tr->priv;
    return sd_config_set(&pv->resolved, key, value, "resolved", true);
}


/* Settings a resumed run may change: where and how often it reports and
 * saves, threads and loader workers (the same batches and weights for any
 * number), evaluation-only settings, and --init (read by fresh runs only).
 * Everything else changes what the remaining iterations compute. */
static bool resume_may_change(const char *k)
{
    static const char *const ok[] = {"out", "device", "threads", "workers", "ranks", "log-every", "eval-every",
                                     "save-every", "val", "val-limit", "eval-size", "align-corners", "skip-bad",
                                     "init", "partial-init", "tb", "tb-images-every", NULL};
    for (int i = 0; ok[i]; i++)
        if (!strcmp(k, ok[i]))
            return true;
    return train_is_run_only_key(k);
}

/* Numbers compare by value ("2.5e-4" is "0.00025"), the rest as text. */
static bool same_setting(const char *a, const char *b)
{
    if (!strcmp(a, b))
        return true;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return *a && *b && !*ea && !*eb && x == y;
}

/* Compares the configuration stored in the checkpoint with this run's:
 * a difference in a setting that alters the result is refused by name
 * (every one listed), unless force, which keeps the list for the log. */
static sd_status resume_check_config(sd_trainer *tr, const char *path, const char *stored, bool force)
{
    loop_priv *pv = tr->priv;
    char diff[2048] = "";
    size_t nd = 0;
    int n_diff = 0;
    for (const char *p = stored; p && *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        const char *eq = strstr(p, " = ");
        if (eq && eq < end) {
            char key[128], old[1024];
            snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
            snprintf(old, sizeof old, "%.*s", (int)(end - eq - 3), eq + 3);
            const char *now = sd_config_get(tr->cfg, key);
            if (now && !strcmp(key, "ranks") && !same_setting(old, now) && pv->rank == 0)
                sd_log(0, "train: --resume with %s rank(s), the run was saved with %s: the global batch is now %s x "
                       "--batch (the remaining iterations read other batches than the uninterrupted run)\n",
                       now, old, now);
            /* a stored resolved value ("false") equals the "auto" that resolves to it */
            const char *used = sd_config_get(&pv->resolved, key);
            if (now && !resume_may_change(key) && !same_setting(old, now) && !(used && same_setting(old, used))) {
                n_diff++;
                if (nd < sizeof diff - 1)
                    nd += (size_t)snprintf(diff + nd, sizeof diff - nd, "%s%s: '%s' -> '%s'", nd ? "; " : "", key,
                                           old, now);
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (!n_diff)
        return SD_OK;
    if (!force)
        return sd_fail(SD_ERR_ARG, "%s: --resume with %d setting%s changed from the run's (saved -> now): %s; "
                       "resume with the run's settings, start a new --out, or pass --resume-force", path, n_diff,
                       n_diff > 1 ? "s" : "", diff);
    pv->forced = sd_strdup(diff);
    sd_log(0, "train: --resume-force: continuing %s with changed settings (saved -> now): %s\n", path, diff);
    return SD_OK;
}

sd_status train_resume_from(sd_trainer *tr)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/last.safetensors", tr->rundir);
    sd_ckpt c;
    sd_status st = sd_ckpt_open(path, &c);
    if (st)
        return sd_fail_prefix(st, "--resume");
    const char *m = sd_ckpt_meta(&c, SD_META_METHOD), *it = sd_ckpt_meta(&c, SD_META_ITER);
    if (!m || strcmp(m, tr->method->name) || !it) {
        sd_ckpt_close(&c);
        return sd_fail(SD_ERR_DATA, "%s: saved by method '%s', resuming '%s'", path, m ? m : "(none)",
                       tr->method->name);
    }
    const char *model = sd_ckpt_meta(&c, SD_META_MODEL), *want = sd_model_options(tr->model)->name;
    if (!model || strcmp(model, want)) {
        st = sd_fail(SD_ERR_DATA, "%s: holds model '%s', resuming with --model %s", path, model ? model : "(none)",
                     want);
        sd_ckpt_close(&c);
        return st;
    }
    char *ie;
    long long saved_it = strtoll(it, &ie, 10);
    if (*ie || !*it || saved_it < 0 || saved_it > tr->iters) {
        st = sd_fail(SD_ERR_DATA, "%s: stored iteration '%s' is outside this run's 0..%lld (a checkpoint of another "
                     "run?)", path, it, (long long)tr->iters);
        sd_ckpt_close(&c);
        return st;
    }
    if ((st = resume_check_config(tr, path, sd_ckpt_meta(&c, SD_META_CONFIG),
                                  sd_config_bool(tr->cfg, "resume-force")))) {
        sd_ckpt_close(&c);
        return st;
    }
    st = sd_ckpt_load_params(&c, "", tr->params, true, NULL);
    if (!st)
        st = sd_ckpt_read_optim(&c, &tr->opt, "opt:", "opt_steps");
    for (int i = 0; i < tr->n_mods && !st; i++) {
        sd_train_module *md = &tr->mods[i];
        st = sd_ckpt_load_params(&c, md->prefix, md->params, true, NULL);
        if (!st && md->trainable) {
            char ns[80], key[80];
            module_optim_names(md, ns, key);
            st = sd_ckpt_read_optim(&c, &md->opt, ns, key);
        }
    }
    if (!st) {
        tr->it = strtoll(it, NULL, 10);
        const char *b = sd_ckpt_meta(&c, "best_miou"), *bi = sd_ckpt_meta(&c, "best_iteration");
        tr->best_miou = b ? strtod(b, NULL) : -1;
        tr->best_it = bi ? strtoll(bi, NULL, 10) : -1;
        tr->last_saved_it = tr->it;
    }
    sd_ckpt_close(&c);
    return st;
}

