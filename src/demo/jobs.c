/* The demo's runs: each a job (a training run of a row, source-base, the
 * pretraining or a gap measure) with its configuration file, planned by
 * demo.c and run here through a runner (sd_demo_runner), at most its slots
 * at once, each after the jobs whose checkpoints it starts from. A job's
 * result is read back from the summary.json its run wrote; --resume keeps
 * the runs an earlier demo finished with the same configuration. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo_internal.h"
#include "segda/checkpoint.h"
#include "segda/progress.h"
#include "segda/tensor.h"
#include "segda/train.h"

demo_job *demo_job_add(demo_job *jobs, int *n, sd_demo_task_kind kind, const char *name)
{
    demo_job *j = &jobs[(*n)++];
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->dep = -1;
    snprintf(j->name, sizeof j->name, "%s", name);
    return j;
}

int demo_emit(const demo_setup *ds, sd_demo_event *ev, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sd_demo_event e = *ev;
    e.text = text;
    int r = ds->progress ? ds->progress(ds->ctx, &e) : 0;
    if (r && ds->stop)
        *ds->stop = 1;
    return r;
}

sd_status demo_set_compute(const demo_setup *ds)
{
    sd_dtype d;
    bool emulate;
    sd_device dev;
    int index;
    sd_status st = sd_dtype_parse(ds->precision, &d, &emulate);
    if (!st)
        st = sd_set_precision(d, emulate);
    if (!st && !(st = sd_device_parse(ds->device, &dev, &index)))
        st = sd_device_select(dev, index);
    return st;
}

/* An event about job j (its fields filled; miou NAN unless given). */
static sd_demo_event job_event(sd_demo_event_kind kind, const demo_job *j)
{
    return (sd_demo_event){.kind = kind, .name = j->name, .method = j->kind == SD_DEMO_TASK_TRAIN ? j->method : NULL,
                           .task = j->kind, .seed = j->seed, .iters = j->iters, .miou = NAN, .seconds = j->seconds};
}

/* A finished training run's result from its summary.json: mIoU-19 and the
 * class IoUs of the final evaluation. False unless the run ended "ok" after
 * all its iterations with a final evaluation. */
static bool read_final_eval(const char *rundir, double *miou, double ciou[SD_NUM_CLASSES], long long *it)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/summary.json", rundir);
    sd_run_result r;
    if (access(path, F_OK) != 0 || sd_run_summary_read(path, &r) || strcmp(r.status, "ok") ||
        strcmp(r.metric, "miou_19") || !r.has_class_iou)
        return false;
    *miou = r.final_value;
    memcpy(ciou, r.class_iou, sizeof r.class_iou);
    *it = (long long)r.iterations;
    return true;
}

/* A pretraining's CKPT.summary.json into *r; false (no error left) when
 * there is none or it does not read. */
static bool read_pretrain_summary(const char *ckpt, sd_run_result *r)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s.summary.json", ckpt);
    if (access(path, F_OK) == 0 && !sd_run_summary_read(path, r))
        return true;
    sd_error_clear();
    return false;
}

/* The val top-1 accuracy of a pretraining, from its summary (NAN if absent). */
double demo_read_top1(const char *ckpt)
{
    sd_run_result r;
    if (!read_pretrain_summary(ckpt, &r) || strcmp(r.metric, "val_top1"))
        return NAN;
    return r.final_value;
}

/* Whether the pretraining in CKPT ran in the precision the demo wants
 * (summaries say "f32" or "bf16", emulated or not); a file without a
 * summary (stopped partway) or with an older one passes. The runs that
 * start from it keep their configuration either way, so --resume cannot
 * swap the backbone under them: a mismatch is an error. */
static sd_status pretrain_precision_check(const char *ckpt, const demo_setup *ds)
{
    sd_run_result r;
    if (!read_pretrain_summary(ckpt, &r) || !r.precision[0])
        return SD_OK;
    if (!strcmp(ds->pretrain_precision, "f32") == !strcmp(r.precision, "f32"))
        return SD_OK;
    return sd_fail(SD_ERR_ARG,
                   "%s: pretrained in %s, but this demo pretrains in %s (--pretrain-precision, else --precision): "
                   "resume it with the precision it was made with, or use another --out",
                   ckpt, r.precision, ds->pretrain_precision);
}

/* Extra values naming rows ("pseudo-from=@fda-b01,@fda") become those rows'
 * checkpoints of the same seed, and the job waits for them. */
sd_status demo_resolve_rows(demo_job *jobs, int first, int end, demo_job *j)
{
    int nres = 0;
    for (int e = 0; e < j->n_extra; e++) {
        const char *eq = strchr(j->extra[e], '=');
        if (!eq || !strchr(eq, '@'))
            continue;
        if (nres == 2)
            return sd_fail(SD_ERR_ARG, "demo: row %s: at most two values may name rows", j->name);
        char *out = j->resolved[nres++], list[256];
        size_t len = (size_t)(eq + 1 - j->extra[e]);
        if (!strncmp(j->extra[e], "init=@", 6))
            snprintf(j->init_row, sizeof j->init_row, "%s", j->extra[e] + 6);
        snprintf(out, sizeof j->resolved[0], "%.*s", (int)len, j->extra[e]);
        snprintf(list, sizeof list, "%s", eq + 1);
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            int r = -1;
            for (int k = first; k < end && tok[0] == '@'; k++)
                if (!strcmp(jobs[k].name, tok + 1))
                    r = k;
            if (r < 0 || j->n_waits == 4)
                return sd_fail(SD_ERR_ARG, "demo: row %s: '%s' is not a row of this run (or too many)", j->name, tok);
            j->waits[j->n_waits++] = r;
            size_t o = strlen(out);
            snprintf(out + o, sizeof j->resolved[0] - o, "%s%.600s/last.safetensors", out[o - 1] == '=' ? "" : ",",
                     jobs[r].rundir);
        }
        j->extra[e] = out;
    }
    return SD_OK;
}

static sd_status job_write_config(const demo_setup *ds, demo_job *jobs, demo_job *j, const char *path)
{
    char iters_s[32], seed_s[32], init_s[700];
    snprintf(iters_s, sizeof iters_s, "%d", j->iters);
    snprintf(seed_s, sizeof seed_s, "%d", j->seed);
    sd_config cfg;
    sd_config_init(&cfg);
    sd_config_set(&cfg, "method", j->method, "demo", true);
    sd_config_set(&cfg, "source", ds->src, "demo", true);
    sd_config_set(&cfg, "target", ds->tgt, "demo", true);
    sd_config_set(&cfg, "out", j->rundir, "demo", true);
    sd_config_set(&cfg, "model", "deeplab-mini", "demo", true);
    sd_config_set(&cfg, "iters", iters_s, "demo", true);
    sd_config_set(&cfg, "eval-every", iters_s, "demo", true);
    sd_config_set(&cfg, "seed", seed_s, "demo", true);
    sd_config_set(&cfg, "lr", j->lr, "demo", true);
    /* BN trained: the pretrained statistics are those of 64-px crops, not of
     * 256x128 street frames */
    sd_config_set(&cfg, "bn", "train", "demo", true);
    sd_config_set(&cfg, "lr-d", "1e-4", "demo", true);
    sd_config_set(&cfg, "batch", "2,2", "demo", true);
    sd_config_set(&cfg, "flip", "true", "demo", true);
    char th[16];
    snprintf(th, sizeof th, "%d", j->threads ? j->threads : ds->threads);
    sd_config_set(&cfg, "threads", th, "demo", true);
    sd_config_set(&cfg, "precision", ds->precision, "demo", true);
    sd_config_set(&cfg, "device", ds->device, "demo", true);
    sd_config_set(&cfg, "log-every", "100", "demo", true);
    if (j->dep >= 0 && jobs[j->dep].kind == SD_DEMO_TASK_PRETRAIN) {
        sd_config_set(&cfg, "init", jobs[j->dep].rundir, "demo", true);
        /* the pretrained backbone meets a fresh head: without a warm-up the
         * first steps' large gradients wreck its features */
        char wu[16];
        snprintf(wu, sizeof wu, "%d", DEMO_WARMUP);
        sd_config_set(&cfg, "warmup", wu, "demo", true);
    } else if (j->dep >= 0) {
        snprintf(init_s, sizeof init_s, "%.600s/last.safetensors", jobs[j->dep].rundir);
        sd_config_set(&cfg, "init", init_s, "demo", true);
    }
    /* FDA's published schedule switches entropy on after 50000 of 150000
     * iterations; a row's 400 would never reach it, so the demo's FDA rows
     * use the term from the start (as they were measured) */
    if (!strcmp(j->method, "fda"))
        sd_config_set(&cfg, "switch2entropy", "0", "demo", true);
    /* ROAD distils towards the pretrained backbone (the paper's "pretrained
     * real style model"), named explicitly: the pretraining this row's
     * --init chain starts from */
    if (!strcmp(j->method, "road"))
        for (int d = j->dep; d >= 0; d = jobs[d].dep)
            if (jobs[d].kind == SD_DEMO_TASK_PRETRAIN) {
                sd_config_set(&cfg, "teacher", jobs[d].rundir, "demo", true);
                break;
            }
    for (int k = 0; k < j->n_extra; k++) {
        char key[64];
        const char *eq = strchr(j->extra[k], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - j->extra[k]), j->extra[k]);
        sd_config_set(&cfg, key, eq + 1, "demo", true);
    }
    sd_status st = sd_config_write(&cfg, path);
    sd_config_free(&cfg);
    return st;
}

static bool same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF;) {
        ca = getc(fa);
        cb = getc(fb);
        same = ca == cb;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* The detector's options as a file of "key = value" lines (j->cfg): the
 * record --resume compares, as a row's configuration. */
static sd_status det_write_config(const demo_setup *ds, const demo_job *j, const char *path)
{
    const sd_detect_train_opts *d = &j->detect;
    FILE *f = fopen(path, "w");
    if (!f)
        return sd_fail(SD_ERR_IO, "%s: cannot create", path);
    fprintf(f, "# segda demo: the detector's run (segda train --method detect --KEY VALUE ...)\n");
    fprintf(f, "data = %s\nout = %s\niters = %lld\nbatch = %d\nlr = %g\nmomentum = %g\nweight-decay = %g\n",
            d->data, d->out_dir, (long long)d->iters, d->batch, (double)d->lr, (double)d->momentum,
            (double)d->weight_decay);
    fprintf(f, "warmup = %lld\nmin-size = %d\nmax-size = %d\nanchor-size = %d\nbox-batch = %d\nsave-every = %d\n",
            (long long)d->warmup_iters, d->det.min_size, d->det.max_size, d->det.anchor_size, d->det.box_batch,
            d->save_every);
    fprintf(f, "bn = %s\nseed = %llu\nthreads = %d\n", sd_det_bn_name(d->bn), (unsigned long long)d->seed,
            j->threads ? j->threads : ds->threads);
    return fclose(f) ? sd_fail(SD_ERR_IO, "%s: write error", path) : SD_OK;
}

static sd_status write_config(const demo_setup *ds, demo_job *jobs, demo_job *j, const char *path)
{
    return j->kind == SD_DEMO_TASK_DETECT ? det_write_config(ds, j, path) : job_write_config(ds, jobs, j, path);
}

/* A finished run: a row's with its final evaluation (read into j), the
 * detector's with summary.json "ok" after all its steps. */
static bool run_finished(demo_job *j)
{
    long long it = -1;
    if (j->kind == SD_DEMO_TASK_TRAIN)
        return read_final_eval(j->rundir, &j->miou, j->class_iou, &it) && it == j->iters;
    char path[700];
    snprintf(path, sizeof path, "%.600s/summary.json", j->rundir);
    sd_run_result r;
    bool ok = access(path, F_OK) == 0 && !sd_run_summary_read(path, &r) && !strcmp(r.status, "ok") &&
              r.iterations == j->iters;
    sd_error_clear();
    return ok;
}

/* --resume, a row's or the detector's run: KEEP_DONE when an earlier demo
 * finished it with the configuration this one would write (its result is
 * read back), KEEP_RESUME when it stopped on the way with a checkpoint of
 * an earlier iteration (segda train --resume goes on, bit-identically),
 * KEEP_NONE otherwise (start over). */
enum { KEEP_NONE, KEEP_DONE, KEEP_RESUME };
static int kept_run(const demo_setup *ds, demo_job *jobs, demo_job *j)
{
    char fresh[640], path[700];
    snprintf(fresh, sizeof fresh, "%.600s.new", j->cfg);
    bool same = !write_config(ds, jobs, j, fresh) && same_file(fresh, j->cfg);
    unlink(fresh);
    if (!same)
        return KEEP_NONE;
    if (run_finished(j))
        return KEEP_DONE;
    /* No result: killed on the way (continue from the checkpoint), or
     * after its last iteration but before summary.json (its final
     * evaluation is lost with it: run it again, to the same weights) */
    snprintf(path, sizeof path, "%.600s/%s", j->rundir,
             j->kind == SD_DEMO_TASK_DETECT ? "detector.safetensors" : "last.safetensors");
    sd_ckpt c;
    if (access(path, F_OK) != 0 || sd_ckpt_open(path, &c)) {
        sd_error_clear();
        return KEEP_NONE;
    }
    const char *saved = sd_ckpt_meta(&c, SD_META_ITER);
    bool partway = saved && atoll(saved) >= 0 && atoll(saved) < j->iters;
    sd_ckpt_close(&c);
    return partway ? KEEP_RESUME : KEEP_NONE;
}

/* Hands job j to the runner: SD_DEMO_STARTED, or DONE_OK / DONE_FAILED
 * (kept from an earlier demo, run to its end in-process, or not started). */
static int job_start(const demo_setup *ds, demo_job *jobs, demo_job *j, int id)
{
    sd_demo_task t = {.kind = j->kind, .name = j->name, .seed = j->seed,
                      .threads = j->threads ? j->threads : ds->threads, .precision = ds->precision,
                      .device = ds->device, .log = j->log};
    if (j->fused) {
        /* scored in this process when it starts (below) */
    } else if (j->kind == SD_DEMO_TASK_TRAIN || j->kind == SD_DEMO_TASK_DETECT) {
        int keep = ds->resume ? kept_run(ds, jobs, j) : KEEP_NONE;
        if (keep == KEEP_DONE) {
            j->seconds = 0;
            return SD_DEMO_DONE_OK;
        }
        if (keep == KEEP_NONE) {
            if (sd_remove_tree(j->rundir))
                return sd_fail_prefix(SD_ERR_IO, "could not clear the run directory"), SD_DEMO_DONE_FAILED;
            if (write_config(ds, jobs, j, j->cfg))
                return SD_DEMO_DONE_FAILED;
        }
        t.config = j->cfg;
        t.resume = t.append = keep == KEEP_RESUME;   /* the log goes on where an earlier demo left it */
        if (j->kind == SD_DEMO_TASK_DETECT) {
            /* a detector that trains (on) has no instances on val yet */
            char inst[700];
            snprintf(inst, sizeof inst, "%.600s/val-instances", j->rundir);
            if (sd_remove_tree(inst) || sd_mkdir_p(j->rundir))
                return sd_fail_prefix(SD_ERR_IO, "detect"), SD_DEMO_DONE_FAILED;
            j->detect.resume = t.resume;
            t.detect = &j->detect;
            t.config = NULL;
            t.precision = "f32", t.device = "cpu";
        }
    } else if (j->kind == SD_DEMO_TASK_PRETRAIN) {
        /* --resume: the pretraining finishes the run in the file (or says
         * it is finished); its options must match the file's */
        j->pretrain.resume = ds->resume && access(j->rundir, F_OK) == 0;
        if (j->pretrain.resume && pretrain_precision_check(j->rundir, ds))
            return SD_DEMO_DONE_FAILED;
        if (!j->pretrain.resume && unlink(j->rundir) && errno != ENOENT)
            return sd_fail(SD_ERR_IO, "%s: could not remove the old checkpoint: %s", j->rundir, strerror(errno)),
                   SD_DEMO_DONE_FAILED;
        t.pretrain = &j->pretrain;
        t.append = j->pretrain.resume;
        t.precision = ds->pretrain_precision;
    } else {
        t.gap = &j->gap;
    }
    /* (the gap runs go without a line: the event's text is empty) */
    sd_demo_event ev = job_event(SD_DEMO_EV_START, j);
    if (ds->verbose)
        demo_emit(ds, &ev, "demo: started %s%s (seed %d%s%s) -> %s\n", j->kind == SD_DEMO_TASK_GAP ? "gap " : "",
                  j->name, j->seed, j->kind == SD_DEMO_TASK_TRAIN ? ", " : "",
                  j->kind == SD_DEMO_TASK_TRAIN ? j->method : "", j->log);
    else
        demo_emit(ds, &ev, "%s", "");
    j->t0 = sd_time_now();
    if (j->fused)
        return demo_det_score(ds, jobs, j) ? SD_DEMO_DONE_FAILED : SD_DEMO_DONE_OK;
    return ds->runner->start(ds->runner->self, &t, id);
}

/* A job's run ended (ok: its process would exit 0): its result, its event. */
static bool job_finish(const demo_setup *ds, demo_job *j, bool ok)
{
    j->seconds = sd_time_now() - j->t0;
    if (ok && !j->fused && (j->kind == SD_DEMO_TASK_TRAIN || j->kind == SD_DEMO_TASK_DETECT))
        ok = run_finished(j);
    j->state = ok ? JOB_OK : JOB_FAIL;
    sd_demo_event ev = job_event(ok ? SD_DEMO_EV_DONE : SD_DEMO_EV_FAILED, j);
    if (!ok) {
        demo_emit(ds, &ev, "demo: %s (seed %d) FAILED, see %s\n", j->name, j->seed, j->log);
    } else if (j->kind == SD_DEMO_TASK_TRAIN) {
        ev.miou = j->miou;
        demo_emit(ds, &ev, "demo: %-16s seed %d  %5d it  mIoU-19 %5.1f  (%.0f s)\n", j->name, j->seed, j->iters,
                  100 * j->miou, j->seconds);
    } else if (ds->verbose || j->kind != SD_DEMO_TASK_GAP) {
        demo_emit(ds, &ev, "demo: %s%s done (%.0f s)\n", j->kind == SD_DEMO_TASK_GAP ? "gap " : "", j->name,
                  j->seconds);
    } else {
        demo_emit(ds, &ev, "%s", "");
    }
    return ok;
}

int demo_pool_run(const demo_setup *ds, demo_job *jobs, int n)
{
    int running = 0, done = 0, failed = 0, slots = ds->slots > 0 ? ds->slots : 1;
    while (done < n) {
        for (int i = 0; i < n && running < slots && !*ds->stop; i++) {
            demo_job *j = &jobs[i];
            if (j->state != JOB_WAIT)
                continue;
            int before[5], nb = 0, bad = -1;
            bool ready = true;
            if (j->dep >= 0)
                before[nb++] = j->dep;
            for (int k = 0; k < j->n_waits; k++)
                before[nb++] = j->waits[k];
            for (int k = 0; k < nb; k++) {
                bad = jobs[before[k]].state == JOB_FAIL ? before[k] : bad;
                ready = ready && jobs[before[k]].state == JOB_OK;
            }
            if (bad >= 0) {
                j->state = JOB_FAIL;
                done++, failed++;
                sd_demo_event ev = job_event(SD_DEMO_EV_SKIPPED, j);
                demo_emit(ds, &ev, "demo: %s (seed %d) skipped: %s failed\n", j->name, j->seed, jobs[bad].name);
                continue;
            }
            if (!ready)
                continue;
            bool kept = ds->resume && (j->kind == SD_DEMO_TASK_TRAIN || j->kind == SD_DEMO_TASK_DETECT);
            int r = job_start(ds, jobs, j, i);
            kept = kept && r == SD_DEMO_DONE_OK && j->t0 == 0;
            if (r == SD_DEMO_STARTED) {
                j->state = JOB_RUN;
                running++;
                continue;
            }
            done++;
            if (kept) {   /* kept from an earlier demo (--resume) */
                j->state = JOB_OK;
                sd_demo_event ev = job_event(SD_DEMO_EV_KEPT, j);
                ev.miou = j->kind == SD_DEMO_TASK_DETECT ? NAN : j->miou;
                char m[32] = "";
                if (isfinite(ev.miou))
                    snprintf(m, sizeof m, "  mIoU-19 %5.1f", 100 * j->miou);
                demo_emit(ds, &ev, "demo: %-16s seed %d  %5d it%s  (kept from an earlier run)\n", j->name, j->seed,
                          j->iters, m);
            } else if (j->t0 == 0) {   /* could not start */
                j->state = JOB_FAIL;
                failed++;
                sd_demo_event ev = job_event(SD_DEMO_EV_FAILED, j);
                demo_emit(ds, &ev, "demo: %s: %s\n", j->name, sd_errmsg());
            } else {
                failed += !job_finish(ds, j, r == SD_DEMO_DONE_OK);
            }
            i = -1;   /* rows waiting on it may start now */
        }
        if (!running)
            break;
        int id = -1;
        bool ok = false;
        if (ds->runner->wait(ds->runner->self, &id, &ok) || id < 0 || id >= n || jobs[id].state != JOB_RUN)
            break;
        running--, done++;
        failed += !job_finish(ds, &jobs[id], ok);
    }
    return failed;
}
