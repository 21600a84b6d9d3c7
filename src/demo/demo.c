/* sd_demo_run: the main job end to end on the built-in benchmark. Fills
 * the options' defaults, makes sure the benchmark is there, plans the runs
 * (the pretraining, then per seed source-base and every row: rows.c),
 * runs them through the runner (jobs.c), measures the domain gap with
 * `segda gap` runs, and writes the outputs (report.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo/demo_internal.h"
#include "segda/progress.h"
#include "segda/synth.h"
#include "segda/tensor.h"
#include "segda/train.h"

void sd_demo_opts_init(sd_demo_opts *o)
{
    memset(o, 0, sizeof *o);
    o->out = "demo-out";
    o->pretrain_iters = SD_DEMO_PRETRAIN_ITERS;
    o->lr = "0.01";
    o->adapt_lr = "0.0025";
}

/* ---- options by name (segda demo's flags; bindings' keyword options) ---- */
typedef enum { OPT_STR, OPT_BOOL, OPT_INT, OPT_LR } opt_type;
typedef struct demo_opt {
    const char *name;
    opt_type type;
    size_t off;
    int lo, hi;
} demo_opt;

#define O(f) offsetof(sd_demo_opts, f)
static const demo_opt demo_opts[] = {
    {"out", OPT_STR, O(out), 0, 0},
    {"full", OPT_BOOL, O(full), 0, 0},
    {"methods", OPT_STR, O(methods), 0, 0},
    {"rows", OPT_STR, O(rows), 0, 0},
    {"seeds", OPT_INT, O(seeds), 0, 1000},
    {"iters", OPT_INT, O(iters), 0, 100000000},
    {"adapt-iters", OPT_INT, O(adapt_iters), 0, 100000000},
    {"pretrain-iters", OPT_INT, O(pretrain_iters), 0, 100000000},
    {"lr", OPT_LR, O(lr), 0, 0},
    {"adapt-lr", OPT_LR, O(adapt_lr), 0, 0},
    {"jobs", OPT_INT, O(jobs), 0, 4096},
    {"threads", OPT_INT, O(threads), 0, 4096},
    {"no-gap", OPT_BOOL, O(no_gap), 0, 0},
    {"resume", OPT_BOOL, O(resume), 0, 0},
    {"precision", OPT_STR, O(precision), 0, 0},
    {"pretrain-precision", OPT_STR, O(pretrain_precision), 0, 0},
    {"device", OPT_STR, O(device), 0, 0},
    {"det-iters", OPT_INT, O(det_iters), 0, 100000000},
    {"simple-scenes", OPT_INT, O(simple_scenes), 0, 1000000},
};
#undef O

sd_status sd_demo_opts_set(sd_demo_opts *o, const char *key, const char *value)
{
    char name[40];
    snprintf(name, sizeof name, "%s", key + (strncmp(key, "--", 2) ? 0 : 2));
    for (char *p = name; *p; p++)
        *p = *p == '_' ? '-' : *p;
    const demo_opt *d = NULL;
    for (size_t i = 0; i < sizeof demo_opts / sizeof *demo_opts && !d; i++)
        d = strcmp(demo_opts[i].name, name) ? NULL : &demo_opts[i];
    if (!d) {
        char known[400] = "";
        for (size_t i = 0; i < sizeof demo_opts / sizeof *demo_opts; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", demo_opts[i].name);
        return sd_fail(SD_ERR_ARG, "unknown demo option '%s' (known: %s)", key, known);
    }
    if (!value)
        return sd_fail(SD_ERR_ARG, "%s: no value", key);
    void *field = (char *)o + d->off;
    switch (d->type) {
    case OPT_STR:
        *(const char **)field = value;
        return SD_OK;
    case OPT_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes") || !strcmp(value, "True"))
            *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no") || !strcmp(value, "False"))
            *(bool *)field = false;
        else
            return sd_fail(SD_ERR_ARG, "%s '%s', expected true or false", key, value);
        return SD_OK;
    case OPT_INT:
        /* whole-string numbers with ranges: "1e3" or "-1" is an error
         * naming the option, not a silent 1 or 0 */
        if (sd_parse_int(value, d->lo, d->hi, key, (int *)field)) {
            sd_error_clear();
            return sd_fail(SD_ERR_ARG, "%s '%s', expected an integer in %d..%d", key, value, d->lo, d->hi);
        }
        return SD_OK;
    case OPT_LR: {
        float v;
        if (sd_parse_float(value, 1e-12f, 100.0f, key, &v) || !(v > 0)) {
            sd_error_clear();
            return sd_fail(SD_ERR_ARG, "%s '%s', expected a number in (0, 100]", key, value);
        }
        *(const char **)field = value;   /* written into the configurations as given */
        return SD_OK;
    }
    }
    return SD_OK;
}

sd_status sd_demo_check(const sd_demo_opts *o)
{
    demo_row rows[DEMO_MAX_ROWS];
    if (!o->out || !*o->out)
        return sd_fail(SD_ERR_ARG, "demo: 'out' (the demo's folder) is empty");
    sd_dtype d;
    bool emulate;
    if (o->pretrain_precision && sd_dtype_parse(o->pretrain_precision, &d, &emulate))
        return sd_fail(SD_ERR_ARG, "pretrain-precision '%s': expected f32, bf16 or bf16-emulated",
                       o->pretrain_precision);
    return demo_rows_plan(o, o->full || o->rows, 256, 128, 400, rows) < 0 ? SD_ERR_ARG : SD_OK;
}

/* A benchmark is reused only when its completion marker says a finished
 * write (a demo killed while generating leaves none): otherwise it is
 * written anew, object crops included when pretraining needs them. A
 * benchmark written beforehand by `segda synth` (with its own options) is
 * kept whatever its size. *have gets the benchmark's options. */
static sd_status ensure_bench(const demo_setup *ds, const char *bench, int pretrain_iters, sd_synth_opts *have)
{
    sd_synth_opts so;
    sd_synth_opts_init(&so);
    so.crops = pretrain_iters > 0 ? DEMO_CROPS : 0;
    bool complete = sd_synth_read_marker(bench, have) == SD_OK;
    sd_error_clear();
    sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
    if (complete && (so.crops == 0 || have->crops > 0)) {
        demo_emit(ds, &ev, "demo: using the finished benchmark in %s (%d sim, %d real train, %d real val, %dx%d)\n",
                  bench, have->n_sim, have->n_real, have->n_real_val, have->w, have->h);
        return SD_OK;
    }
    char path[700];
    snprintf(path, sizeof path, "%.600s/real", bench);
    demo_emit(ds, &ev, "demo: %s the benchmark in %s (%d sim, %d real train, %d real val, %dx%d, %d object crops "
                       "per class)\n",
              complete ? "regenerating, with object crops for pretraining,"
              : access(path, F_OK) == 0 ? "regenerating (no completion marker: an interrupted generation)"
                                        : "generating",
              bench, so.n_sim, so.n_real, so.n_real_val, so.w, so.h, so.crops);
    *have = so;
    return sd_synth_ensure(bench, &so, NULL);
}

/* The jobs: one classification pretraining on the crops (the ImageNet
 * stand-in, shared by every seed as published weights are), on all cores
 * since everything waits for it; then per seed source-base (iters from the
 * pretrained backbone), every other row from its last checkpoint for
 * adapt_iters at the fine-tuning LR, source-only included (so it has the
 * same budget as the methods), and the oracle from the pretrained backbone
 * for iters + adapt_iters. Returns the count, or -1. */
static int plan_jobs(const sd_demo_opts *o, const demo_setup *ds, const char *bench, int seeds, int iters,
                     int adapt_iters, int par, const demo_row *runs, int nr, demo_job *jobs, int *pre_out,
                     const char *det_data, const sd_synth_opts *have)
{
    int nj = 0, pre = -1;
    if (o->pretrain_iters > 0) {
        demo_job *j = demo_job_add(jobs, &nj, SD_DEMO_TASK_PRETRAIN, "pretrain");
        pre = 0;
        j->seed = 1;
        j->iters = o->pretrain_iters;
        j->threads = par * ds->threads;
        snprintf(j->rundir, sizeof j->rundir, "%.480s/pretrain.safetensors", ds->runs_dir);
        snprintf(j->log, sizeof j->log, "%.500s/pretrain.log", ds->runs_dir);
        snprintf(j->cfg, sizeof j->cfg, "%.580s/crops", bench);
        snprintf(j->tb, sizeof j->tb, "%.480s/pretrain.tb", ds->runs_dir); /* segda pretrain's default */
        sd_pretrain_opts_init(&j->pretrain);
        j->pretrain.data = j->cfg;
        j->pretrain.out = j->rundir;
        j->pretrain.model = "deeplab-mini";
        j->pretrain.iters = o->pretrain_iters;
        j->pretrain.val_every = o->pretrain_iters;
        j->pretrain.log_every = 100;
        j->pretrain.tb = j->tb;
    }
    for (int s = 1; s <= seeds; s++) {
        /* the detector of the "+det" rows needs only the benchmark: first,
         * so that it runs beside the segmentation runs */
        int det = det_data ? nj : -1;
        if (det_data)
            demo_det_job(demo_job_add(jobs, &nj, SD_DEMO_TASK_DETECT, "detect"), ds, det_data, s,
                         o->det_iters ? o->det_iters : SD_DEMO_DET_ITERS, have->w, have->h);
        int base = nj;
        for (int i = -1; i < nr; i++) {
            demo_job *j = demo_job_add(jobs, &nj, SD_DEMO_TASK_TRAIN, i < 0 ? "source-base" : runs[i].name);
            snprintf(j->method, sizeof j->method, "%s", i < 0 ? "source-only" : runs[i].method);
            j->seed = s;
            j->row = i >= 0;
            if (i >= 0) {
                j->n_extra = runs[i].n_extra;
                memcpy(j->extra, runs[i].extra, sizeof j->extra);
            }
            bool scratch = i < 0 || !strcmp(runs[i].name, "oracle");
            bool random = i >= 0 && demo_row_from_random(&runs[i]);   /* issue 19's rows: no --init */
            j->dep = random ? -1 : scratch ? pre : base;
            j->iters = i < 0 ? iters : scratch ? iters + adapt_iters : adapt_iters;
            if (random && !strcmp(runs[i].method, "source-only"))
                j->iters = iters + adapt_iters, scratch = true;
            if (i >= 0 && !strcmp(runs[i].method, "adabn") && adapt_iters > DEMO_ADABN_ITERS)
                j->iters = DEMO_ADABN_ITERS;
            j->lr = scratch ? o->lr : o->adapt_lr;
            snprintf(j->rundir, sizeof j->rundir, "%s/%.60s-s%d", ds->runs_dir, j->name, s);
            snprintf(j->log, sizeof j->log, "%.500s/%.60s-s%d.log", ds->runs_dir, j->name, s);
            snprintf(j->cfg, sizeof j->cfg, "%.500s/%.60s-s%d.cfg", ds->runs_dir, j->name, s);
            if (i >= 0 && demo_row_is_fused(&runs[i])) {   /* scored, not trained: no iterations */
                j->fused = true, j->dep = -1, j->iters = 0;
                j->det_job = det;
                j->waits[j->n_waits++] = det;
                snprintf(j->init_row, sizeof j->init_row, "%s", strchr(runs[i].extra[0], '@') + 1);
            }
        }
        for (int k = base; k < nj; k++)
            if (demo_resolve_rows(jobs, base, nj, &jobs[k]))
                return -1;
    }
    *pre_out = pre;
    return nj;
}

/* Domain gap: pixel statistics (rgb) and labels (class_kl) without a model,
 * then layer4 features of source-only and of the best adapted row (seed 1),
 * each as sim vs real val and real train vs real val. */
static int plan_gap(const demo_setup *ds, const char *gap_dir, const char *src_ckpt, const char *ada_ckpt,
                    demo_job *gjobs, int gj[G_N][2])
{
    static const char *tag[G_N] = {"rgb", "labels", "source-only", "adapted"};
    int ng = 0;
    for (int g = 0; g < G_N; g++)
        for (int pr = 0; pr < 2; pr++) {
            gj[g][pr] = -1;
            const char *ckpt = g == G_SRC ? src_ckpt : g == G_ADA ? ada_ckpt : NULL;
            if ((g == G_SRC || g == G_ADA) && !ckpt)
                continue;
            char nm[64];
            snprintf(nm, sizeof nm, "%s-%s", tag[g], pr ? "ctrl" : "sim");
            demo_job *j = demo_job_add(gjobs, &ng, SD_DEMO_TASK_GAP, nm);
            gj[g][pr] = ng - 1;
            j->seed = 1;
            snprintf(j->log, sizeof j->log, "%.500s/%.60s.log", gap_dir, nm);
            sd_gap_run_opts *r = &j->gap;
            sd_gap_run_opts_init(r);
            r->labels_only = g == G_LAB;
            r->rgb = g == G_RGB;
            if (ckpt) {
                snprintf(j->gap_model, sizeof j->gap_model, "%.560s/last.safetensors", ckpt);
                r->model = j->gap_model;
                r->layer = "layer4";
            }
            if (pr)
                snprintf(j->gap_a, sizeof j->gap_a, "%.590s:train", ds->tgt);
            else
                snprintf(j->gap_a, sizeof j->gap_a, "%s", ds->src);
            snprintf(j->gap_b, sizeof j->gap_b, "%.590s:val", ds->tgt);
            r->a = j->gap_a;
            r->b = j->gap_b;
            r->n_images = 100;
            if (g != G_LAB) {
                r->pixels = 10;
                snprintf(j->gap_out, sizeof j->gap_out, "%.500s/%.60s", gap_dir, nm);
                r->out_dir = j->gap_out;
            }
            snprintf(j->gap_json, sizeof j->gap_json, "%.500s/%.60s.json", gap_dir, nm);
            r->json = j->gap_json;
        }
    return ng;
}

/* The table's results of the finished row jobs, in job order. */
static int collect_results(const demo_job *jobs, int nj, bool pretrained, demo_result *res)
{
    int n_res = 0;
    for (int i = 0; i < nj; i++) {
        if (!jobs[i].row || jobs[i].state != JOB_OK)
            continue;
        demo_result *r = &res[n_res++];
        snprintf(r->name, sizeof r->name, "%s", jobs[i].name);
        r->seed = jobs[i].seed;
        r->iters = jobs[i].iters;
        if (jobs[i].init_row[0])
            snprintf(r->init, sizeof r->init, "\"%s\"", jobs[i].init_row);
        else if (!strcmp(jobs[i].name, "oracle"))
            snprintf(r->init, sizeof r->init, "%s", pretrained ? "\"pretrain\"" : "null");
        else
            snprintf(r->init, sizeof r->init, "\"source-base\"");
        r->miou = jobs[i].miou;
        memcpy(r->class_iou, jobs[i].class_iou, sizeof r->class_iou);
        r->seconds = jobs[i].seconds;
        snprintf(r->rundir, sizeof r->rundir, "%s", jobs[i].rundir);
        r->fused = jobs[i].fused;
        r->det = jobs[i].det;
    }
    return n_res;
}

/* The row measured as "adapted": the best adapted row (not a control, not
 * a "+det" row: it has no network of its own). */
static int best_adapted(const demo_row_stat *rows, int n_rows, const demo_result *res)
{
    int best = -1;
    for (int k = 0; k < n_rows; k++)
        if (!res[rows[k].first].fused && strcmp(rows[k].name, "oracle") && strcmp(rows[k].name, "source-only") &&
            strcmp(rows[k].name, "bn-control") && strncmp(rows[k].name, "finetune", 8) &&
            strncmp(rows[k].name, "scratch", 7) && strncmp(rows[k].name, "taskgan", 7) &&
            (best < 0 || rows[k].miou_mean > rows[best].miou_mean))
            best = k;
    return best;
}

/* Precision and device of the options (NULL: the process's) applied, and
 * their names as the runs take them. */
static sd_status apply_compute(const sd_demo_opts *o, char precision[16], char device[24])
{
    sd_status st = SD_OK;
    if (o->precision) {
        sd_dtype d;
        bool emulate;
        if (sd_dtype_parse(o->precision, &d, &emulate))
            return sd_fail(SD_ERR_ARG, "precision '%s': expected f32, bf16 or bf16-emulated", o->precision);
        if ((st = sd_set_precision(d, emulate)))
            return st;
    }
    /* f32 when bf16 fell back */
    snprintf(precision, 16, "%s", sd_precision() == SD_DTYPE_F32 ? "f32"
                                  : o->precision && !strcmp(o->precision, "bf16-emulated") ? "bf16-emulated"
                                                                                           : "bf16");
    if (o->device) {
        sd_device dev;
        int index;
        if (sd_device_parse(o->device, &dev, &index))
            return sd_fail(SD_ERR_ARG, "device '%s': expected cpu, cuda or cuda:N", o->device);
        if ((st = sd_device_select(dev, index)))
            return sd_fail_prefix(st, "device");
    }
    snprintf(device, 24, sd_device_selected() == SD_DEVICE_CPU ? "%s" : "%s:%d",
             sd_device_name(sd_device_selected()), sd_device_selected_index());
    return SD_OK;
}

sd_status sd_demo_run(const sd_demo_opts *opts, const sd_demo_runner *runner, sd_demo_progress_fn progress,
                      void *ctx)
{
    sd_status st = sd_demo_check(opts);
    if (st)
        return st;
    sd_demo_opts o = *opts;
    bool full = o.full || o.rows;
    int iters = o.iters ? o.iters : full ? SD_DEMO_FULL_ITERS : SD_DEMO_ITERS;
    int adapt_iters = o.adapt_iters ? o.adapt_iters : full ? SD_DEMO_FULL_ADAPT_ITERS : SD_DEMO_ADAPT_ITERS;
    int seeds = o.seeds ? o.seeds : full ? 3 : 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    int par = o.jobs ? o.jobs : ncpu >= 4 ? 4 : (int)ncpu;
    int threads = o.threads ? o.threads : ncpu / par > 1 ? (int)(ncpu / par) : 1;
    char precision[16], device[24];
    if ((st = apply_compute(&o, precision, device)))
        return st;

    sd_demo_inprocess inproc = {.progress = progress, .ctx = ctx};
    sd_demo_runner in_runner = sd_demo_runner_inprocess(&inproc);
    int stop_flag = 0;
    char bench[512], src[600], tgt[600], runs_dir[400], gap_dir[600];
    snprintf(bench, sizeof bench, "%s/bench", o.out);
    snprintf(runs_dir, sizeof runs_dir, "%.380s/runs", o.out);
    snprintf(gap_dir, sizeof gap_dir, "%.500s/gap", o.out);
    snprintf(src, sizeof src, "gta5:%s/sim", bench);
    snprintf(tgt, sizeof tgt, "cityscapes:%s/real", bench);
    /* bf16 without native support runs f32 in the child, which says so */
    const char *pre_precision = o.pretrain_precision ? o.pretrain_precision : precision;
    demo_setup ds = {.src = src, .tgt = tgt, .runs_dir = runs_dir, .precision = precision,
                     .pretrain_precision = pre_precision, .device = device,
                     .threads = threads, .slots = runner && runner->slots ? runner->slots : runner ? par : 1,
                     .verbose = true, .resume = o.resume,
                     .runner = runner ? runner : &in_runner, .progress = progress, .ctx = ctx,
                     .stop = runner ? &stop_flag : &inproc.stop};
    if (sd_mkdir_p(o.out) || sd_mkdir_p(bench) || sd_mkdir_p(runs_dir))
        return SD_ERR_IO;

    double t_start = sd_time_now();
    sd_synth_opts have;
    if ((st = ensure_bench(&ds, bench, o.pretrain_iters, &have)))
        return st;
    demo_row runs[DEMO_MAX_ROWS];
    int nr = demo_rows_plan(&o, full, have.w, have.h, have.n_real, runs);
    if (nr < 0)
        return SD_ERR_ARG;
    /* the "+det" rows: the detector's training set beside the benchmark */
    char det_data[600];
    bool det = false;
    for (int i = 0; i < nr; i++)
        det |= demo_row_is_fused(&runs[i]);
    if (det && (st = demo_det_data(&ds, bench, &have, o.simple_scenes ? o.simple_scenes : SD_DEMO_SIMPLE_SCENES,
                                   o.out, det_data, sizeof det_data)))
        return st;
    int max_jobs = seeds * (nr + 2) + 16, pre = -1;
    demo_job *jobs = sd_calloc((size_t)max_jobs, sizeof *jobs);
    demo_result *res = sd_calloc((size_t)max_jobs, sizeof *res);
    demo_job *gjobs = sd_calloc(2 * G_N, sizeof *gjobs);
    int nj = jobs && res && gjobs ? plan_jobs(&o, &ds, bench, seeds, iters, adapt_iters, par, runs, nr, jobs, &pre,
                                                        det ? det_data : NULL, &have)
                                              : -1;
    if (nj < 0) {
        st = jobs && res && gjobs ? SD_ERR_ARG : SD_ERR_NOMEM;
        goto done;
    }
    const char *start = pre >= 0 ? "from the pretrained backbone" : "from random weights";
    sd_demo_event ev = {.kind = SD_DEMO_EV_NOTE, .miou = NAN, .seconds = NAN};
    demo_emit(&ds, &ev,
              "demo: %d runs (%d seed(s)): %s source-base %d it and oracle %d it %s at lr %s, "
              "the rest %d it from source-base at lr %s; %d at a time, %d thread(s) each\n",
              nj, seeds, pre >= 0 ? "pretrain, then" : "", iters, iters + adapt_iters, start, o.lr, adapt_iters,
              o.adapt_lr, par, threads);
    int n_fail = demo_pool_run(&ds, jobs, nj);
    if ((st = demo_set_compute(&ds)))   /* the runs in process set their own */
        goto done;
    int n_res = collect_results(jobs, nj, pre >= 0, res);
    if (*ds.stop) {
        st = sd_fail(SD_ERR_INTERRUPTED, "demo: stopped (%d of %d runs finished)", n_res, nj);
        goto done;
    }
    if (n_res == 0) {
        st = sd_fail(SD_ERR_DATA, "demo: no row finished (%d runs failed; see %s/*.log)", n_fail, runs_dir);
        goto done;
    }
    double t_train = sd_time_now() - t_start;
    demo_row_stat rows[DEMO_MAX_ROWS];
    int n_rows = demo_collect_rows(res, n_res, rows);

    int best = best_adapted(rows, n_rows, res), src_row = -1, gj[G_N][2], ng = 0;
    memset(gj, -1, sizeof gj);
    for (int k = 0; k < n_rows; k++)
        if (!strcmp(rows[k].name, "source-only"))
            src_row = k;
    if (!o.no_gap && !sd_mkdir_p(gap_dir)) {
        ng = plan_gap(&ds, gap_dir, src_row >= 0 ? res[rows[src_row].first].rundir : NULL,
                      best >= 0 ? res[rows[best].first].rundir : NULL, gjobs, gj);
        ds.verbose = false;
        demo_emit(&ds, &ev, "demo: measuring the domain gap (%d `segda gap` runs)\n", ng);
        demo_pool_run(&ds, gjobs, ng);
    }
    demo_report rep = {.o = &o, .bench = bench, .tgt = tgt, .precision = precision,
                       .pretrain_precision = pre_precision, .device = device,
                       .seeds = seeds, .iters = iters, .adapt_iters = adapt_iters, .par = par, .threads = threads,
                       .n_jobs = nj, .n_fail = n_fail, .pretrain = pre >= 0 ? &jobs[pre] : NULL, .t_start = t_start,
                       .t_train = t_train, .res = res, .n_res = n_res, .gap_jobs = gjobs, .n_gap = ng,
                       .gap_dir = gap_dir, .best = best};
    memcpy(rep.gap_idx, gj, sizeof gj);
    st = demo_report_write(&ds, &rep, rows, n_rows);
    if (!st && n_fail)
        st = sd_fail(SD_ERR_DATA, "demo: %d of %d runs failed (see %s/*.log); the report leaves them out", n_fail, nj,
                     runs_dir);
done:
    free(gjobs);
    free(res);
    free(jobs);
    return st;
}
